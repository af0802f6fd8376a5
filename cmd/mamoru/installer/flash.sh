#!/usr/bin/env bash
# flash.sh IMG DEVICE: writes a card image to an SD card, with progress,
# and verifies it by reading it back. It refuses a device that is mounted,
# not removable, or larger than 256 GB (a laptop's own disk, most likely)
# unless FORCE=1.
set -euo pipefail
img=$1 dev=$2
force=${FORCE:-0}
mounts=${MAMORU_MOUNTS:-/proc/mounts}
[ -f "$img" ] || { echo "make flash: IMG=$img: no such file" >&2; exit 2; }
[ -e "$dev" ] || { echo "make flash: DEVICE=$dev: no such device" >&2; exit 2; }
real=$(readlink -f "$dev")
# Mounted, itself or any of its partitions: never, FORCE or not.
if awk '{print $1}' "$mounts" | grep -qE "^${real}(p?[0-9]+)?$"; then
  echo "make flash: $dev is mounted (see $mounts): unmount it first" >&2
  exit 1
fi
reasons=()
refuse() { reasons+=("$1"); }
if [ -b "$real" ]; then
  name=$(basename "$real")
  [ "$(cat "/sys/class/block/$name/removable" 2>/dev/null || echo 0)" = 1 ] || refuse "$dev is not a removable device"
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
