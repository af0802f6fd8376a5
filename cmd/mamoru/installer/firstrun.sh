#!/bin/bash
# mamoru first boot, in two stages.
#
# 1. With no argument, systemd runs it once from the kernel command line, as
#    Raspberry Pi Imager's firstrun.sh is run: early, before the network is
#    up. It copies the package, the site's configuration and keys from the
#    boot partition to /var/lib/mamoru-firstboot, installs itself as the
#    mamoru-firstboot service, and takes itself off the command line. The
#    Pi then reboots into the normal system.
# 2. With "install", the mamoru-firstboot service runs it once the network
#    is online: it installs the package (its dependencies, such as ffmpeg,
#    come from the network), puts the configuration in /etc/mamoru and
#    each key file it names (storage keys, alert targets' secrets, tokens,
#    passwords and CAs) at its path, makes the device's signing key
#    ('mamoru keygen': the key is never on the boot partition), writes its
#    public key to the journal and to mamoru-public-key.txt on the boot
#    partition, enables and starts mamoru, and removes itself. If it
#    fails (no network yet), systemd tries again every minute, and at
#    every boot, until it works; the Pi meanwhile runs as usual,
#    reachable over ssh.
#
# Everything it does is logged to /var/log/mamoru-firstboot.log.
# MAMORU_ROOT (tests only) is prefixed to every path it touches, and
# MAMORU_OWNER (tests only) replaces the mamoru user as the files' owner.
# (A signing key staged by an older 'make image' is not installed: it sat
# on the FAT partition; the device makes a new one.)
set -euo pipefail
root=${MAMORU_ROOT:-}
owner=${MAMORU_OWNER:-mamoru}
stage=$root/var/lib/mamoru-firstboot
unit=$root/etc/systemd/system/mamoru-firstboot.service
self=$root/usr/local/sbin/mamoru-firstboot
mkdir -p "$root/var/log"
exec >>"$root/var/log/mamoru-firstboot.log" 2>&1

case "${1:-}" in
"")
  echo "mamoru first boot, stage 1 (copy from the boot partition): $(date)"
  boot=$root/boot/firmware
  [ -d "$boot/mamoru" ] || boot=$root/boot
  # Whatever happens below, the next boot is a normal one: a script that
  # failed here must not stop the Pi from booting, or run again.
  trap 'sed -i -e "s| systemd.run=[^ ]*mamoru-firstrun.sh||" -e "s| systemd.run_success_action=reboot||" \
    -e "s| systemd.run_failure_action=reboot||" -e "s| systemd.unit=kernel-command-line.target||" "$boot/cmdline.txt"' EXIT
  mkdir -p "$stage"
  cp -a "$boot/mamoru/." "$stage/"
  chmod 0700 "$stage"
  install -D -m 0755 "$0" "$self"
  mkdir -p "$(dirname "$unit")/multi-user.target.wants"
  cat >"$unit" <<'UNIT'
[Unit]
Description=mamoru first boot: install the recorder once the network is up
Wants=network-online.target
After=network-online.target
ConditionPathExists=/var/lib/mamoru-firstboot

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/mamoru-firstboot install
Restart=on-failure
RestartSec=60

[Install]
WantedBy=multi-user.target
UNIT
  ln -sf ../mamoru-firstboot.service "$(dirname "$unit")/multi-user.target.wants/mamoru-firstboot.service"
  rm -rf "$boot/mamoru" "$boot/mamoru-firstrun.sh"
  echo "mamoru first boot, stage 1: done; rebooting into the system"
  ;;
install)
  echo "mamoru first boot, stage 2 (install): $(date)"
  debs=("$stage"/mamoru_*.deb)
  [ -f "${debs[0]}" ] || { echo "no mamoru package in $stage"; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # The site's configuration is installed below, so dpkg keeps whatever
  # conffile is there without asking.
  apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${debs[0]}"
  install -D -m 0640 -o root -g "$owner" "$stage/mamoru.toml" "$root/etc/mamoru/mamoru.toml"
  # The key files the configuration names came beside it under the base
  # names of their paths (make image): each goes to its path, mamoru's
  # alone (a CA, which holds no secret, readable by all). A file already
  # at a path outside /etc/mamoru belongs to the system and is kept.
  # Only keys and paths are logged, never what the files hold.
  list=$(mamoru check --list-key-files --config "$root/etc/mamoru/mamoru.toml")
  while IFS=$'\t' read -r key path; do
    [ -n "$key" ] || continue
    name=${path##*/}
    if [ ! -f "$stage/$name" ]; then
      echo "$key: $path was not on the card: mamoru will not start until it is put there (owner $owner, mode 0600)"
      continue
    fi
    mode=0600
    case "$key" in *ca_file) mode=0644 ;; esac
    case "$path" in
    /etc/mamoru/*) ;;
    *)
      if [ -e "$root$path" ]; then
        echo "$key: $path is there already and is kept; the card's copy is not installed"
        continue
      fi
      ;;
    esac
    install -D -m "$mode" -o "$owner" -g "$owner" "$stage/$name" "$root$path"
    echo "$key: installed $path (mode $mode)"
  done <<<"$list"
  # The signing key is made here, on the device, so no copy of it was ever
  # on the card's FAT partition. Its public key, which holds no secret,
  # goes to the journal and to the boot partition for the installer.
  boot=$root/boot/firmware
  [ -d "$boot" ] || boot=$root/boot
  pub=$(mamoru keygen --config "$root/etc/mamoru/mamoru.toml" --owner "$owner" --public-out "$boot/mamoru-public-key.txt")
  printf '%s\n' "$pub"
  printf '%s\n' "$pub" | logger -t mamoru-firstboot || true
  # The package's postinst started mamoru on its example configuration:
  # restart it on the site's. --no-block: installing has succeeded, and a
  # recorder that cannot start (a faulty indicator) is systemd's to retry,
  # not a reason to run this again.
  # daemon-reload runs the package's generator again, on the site's
  # configuration: MemoryMax follows its capture.ring_max_mb.
  systemctl daemon-reload
  systemctl enable mamoru.service
  systemctl restart --no-block mamoru.service
  # Done: never again.
  systemctl disable mamoru-firstboot.service
  rm -rf "$stage" "$unit" "$self"
  echo "mamoru first boot, stage 2: done; mamoru is running"
  ;;
*)
  echo "usage: $0 [install]" >&2
  exit 2
  ;;
esac
