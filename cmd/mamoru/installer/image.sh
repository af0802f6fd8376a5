#!/usr/bin/env bash
# image.sh BASE CONFIG DEB OUT MAMORU: a copy of the Raspberry Pi OS image
# BASE (.img or .img.xz) whose FAT boot partition also holds the mamoru
# package DEB, the site's CONFIG, the key files it names (taken from beside
# it, under the base name of each configured path) and a first-boot script
# the kernel command line runs once. MAMORU, a mamoru for this machine,
# lists the key files ('mamoru check --list-key-files'). It uses mtools on
# the image file: no mounting, no loop devices, no root.
set -euo pipefail
base=$1 config=$2 deb=$3 out=$4 mamoru=$5
here=$(cd "$(dirname "$0")" && pwd)
for f in "$base" "$config" "$deb"; do
  [ -f "$f" ] || { echo "make image: $f: no such file" >&2; exit 2; }
done
[ -x "$mamoru" ] || { echo "make image: $mamoru: not an executable mamoru for this machine (make build makes bin/mamoru)" >&2; exit 2; }
# Absolute, so that mtools never reads a relative "x:…" as a drive.
config=$(cd -- "$(dirname -- "$config")" && pwd)/$(basename -- "$config")
# Each key file the configuration names (storage keys, alert targets'
# secrets, tokens, passwords and CAs) must be beside it under the base name
# of its path: site/ntfy.token for "/etc/mamoru/ntfy.token". All are
# looked for before anything is built, and every one missing is named.
. "$here/keyfiles.sh"
bad=0
site_key_files "$mamoru" "$config" "make image" || bad=1
site=$(dirname -- "$config")
# The boot partition is FAT: no \ : * ? " < > | in a name, and one name
# whatever its case. The configuration and the package are there too.
declare -A onCard=()
for i in "${!key_paths[@]}"; do
  key=${key_names[$i]} path=${key_paths[$i]}
  name=${path##*/}
  lower=${name,,}
  case "$name" in
  mamoru.toml | mamoru_*.deb | *[\\:*?\"\<\>\|]*)
    echo "make image: '$key' = \"$path\": the card's FAT boot partition cannot hold its file as '$name' beside the configuration; give it another name" >&2
    bad=1
    ;;
  esac
  if [ -n "${onCard["$lower"]:-}" ]; then
    echo "make image: '$key' = \"$path\" and '${onCard["$lower"]}' differ only in case, and would be one file on the card's FAT boot partition; give one another name" >&2
    bad=1
  fi
  onCard["$lower"]=$key
done
[ "$bad" = 0 ] || exit 2
case "$base" in
  *.xz) xz -dc "$base" >"$out.tmp" ;;
  *) cp --sparse=always "$base" "$out.tmp" ;;
esac
# The first FAT partition (types c, b, e or EFI) is the boot partition.
start=$(sfdisk -d "$out.tmp" 2>/dev/null | awk -F'[=,]' '
  /^[^ ]+ : start=/ { s=$2+0; for (i=1;i<=NF;i++) if ($i ~ /type/) { t=$(i+1); gsub(/ /,"",t) }
                      if (t ~ /^(c|b|e|ef|C12A7328-F81F-11D2-BA4B-00A0C93EC93B)$/) { print s; exit } }')
if [ -z "$start" ]; then
  rm -f "$out.tmp"
  echo "make image: $base has no FAT boot partition" >&2
  exit 2
fi
img="$out.tmp@@$((start * 512))"
export MTOOLS_SKIP_CHECK=1
mtype -i "$img" ::cmdline.txt >/dev/null 2>&1 || { rm -f "$out.tmp"; echo "make image: the boot partition of $base has no cmdline.txt: is it a Raspberry Pi OS image?" >&2; exit 2; }
mmd -i "$img" ::mamoru 2>/dev/null || true
mcopy -o -i "$img" "$deb" "::mamoru/$(basename "$deb")"
mcopy -o -i "$img" "$config" ::mamoru/mamoru.toml
# The key files go beside it: the first boot installs each at its path,
# readable by mamoru only, and deletes them here, which does not erase
# them from the card (docs/install.md). The signing key never goes: the
# device makes its own at first boot.
for f in "${key_files[@]}"; do
  mcopy -o -i "$img" "$f" "::mamoru/${f##*/}"
done
if [ -f "$site/signing.key" ]; then
  echo "make image: $site/signing.key stays on this machine and is not this card's key: the device makes its own at first boot and leaves its public key in mamoru-public-key.txt on the boot partition; give that one to the managers" >&2
fi
mcopy -o -i "$img" "$here/firstrun.sh" ::mamoru-firstrun.sh
# cmdline.txt is one line: run the script once on the next boot.
cmdline=$(mtype -i "$img" ::cmdline.txt | tr -d '\r\n')
case "$cmdline" in
  *mamoru-firstrun.sh*) ;;
  *) cmdline="$cmdline systemd.run=/boot/firmware/mamoru-firstrun.sh systemd.run_success_action=reboot systemd.run_failure_action=reboot systemd.unit=kernel-command-line.target" ;;
esac
printf '%s\n' "$cmdline" >"$out.cmdline"
mcopy -o -i "$img" "$out.cmdline" ::cmdline.txt
rm -f "$out.cmdline"
mv "$out.tmp" "$out"
echo "$out: $(basename "$deb"), $(basename "$config"), ${#key_files[@]} key file(s) beside it and the first-boot script are on the boot partition"
