#!/usr/bin/env bash
# flash.sh IMG DEVICE: writes a card image to an SD card, with progress,
# and verifies it by reading it back. It refuses a device that is in use
# (mounted, swap, or held by LVM, device-mapper or md RAID, itself or any
# of its partitions), and, unless FORCE=1, one that is not removable or is
# larger than 256 GB (a laptop's own disk, most likely). MAMORU_PROC and
# MAMORU_SYS stand in for /proc and /sys in the tests.
set -euo pipefail
img=$1 dev=$2
force=${FORCE:-0}
proc=${MAMORU_PROC:-/proc} sys=${MAMORU_SYS:-/sys}
[ -f "$img" ] || { echo "make flash: IMG=$img: no such file" >&2; exit 2; }
[ -e "$dev" ] || { echo "make flash: DEVICE=$dev: no such device" >&2; exit 2; }
real=$(readlink -f "$dev")
name=$(basename "$real")
# In use, itself or any of its partitions: never, FORCE or not.
listed() { # listed FILE HEADER_LINES: does FILE's first column name the device or a partition of it?
  [ -r "$1" ] || return 1
  awk -v d="$real" -v skip="$2" 'NR > skip && ($1 == d || (index($1, d) == 1 && substr($1, length(d) + 1) ~ /^p?[0-9]+$/)) { found = 1 } END { exit !found }' "$1"
}
[ -r "$proc/mounts" ] || { echo "make flash: cannot read $proc/mounts to see whether $dev is mounted" >&2; exit 1; }
if listed "$proc/mounts" 0; then
  echo "make flash: $dev is mounted (see $proc/mounts): unmount it first" >&2
  exit 1
fi
if listed "$proc/swaps" 1; then
  echo "make flash: $dev is used as swap (see $proc/swaps): swapoff it first" >&2
  exit 1
fi
# A disk or partition that LVM, device-mapper (LUKS too) or md RAID is
# built on lists them under holders/; a partition is a subdirectory of its
# disk.
for d in "$sys/class/block/$name" "$sys/class/block/$name/$name"*; do
  [ -d "$d/holders" ] || continue
  held=$(ls -A "$d/holders")
  if [ -n "$held" ]; then
    echo "make flash: $dev is in use: $(basename "$d") is held by $(echo $held) (LVM, device-mapper or md RAID; see $d/holders): stop that first" >&2
    exit 1
  fi
done
reasons=()
refuse() { reasons+=("$1"); }
if [ -b "$real" ]; then
  [ "$(cat "$sys/class/block/$name/removable" 2>/dev/null || echo 0)" = 1 ] || refuse "$dev is not a removable device"
  size=$(blockdev --getsize64 "$real")
else
  refuse "$dev is not a block device"
  size=$(stat -c %s "$real")
fi
[ "$size" -le $((256 * 1000 ** 3)) ] || refuse "$dev holds $((size / 1000 ** 3)) GB, more than an SD card's 256 GB"
for r in "${reasons[@]}"; do
  if [ "$force" = 1 ]; then
    echo "make flash: warning: $r; going on because FORCE=1" >&2
  else
    echo "make flash: refusing: $r (FORCE=1 to write anyway)" >&2
  fi
done
[ ${#reasons[@]} = 0 ] || [ "$force" = 1 ] || exit 1
bytes=$(stat -c %s "$img")
if [ -b "$real" ] && [ "$bytes" -gt "$size" ]; then
  echo "make flash: $img ($bytes bytes) does not fit $dev ($size bytes)" >&2
  exit 1
fi
echo "writing $img to $dev ($bytes bytes)"
dd if="$img" of="$real" bs=4M conv=fsync,notrunc status=progress
sync
echo "verifying: reading $bytes bytes back"
if ! cmp -n "$bytes" "$img" "$real"; then
  echo "make flash: VERIFY FAILED: $dev does not hold $img; the card may be failing" >&2
  exit 1
fi
echo "$dev: written and verified"
