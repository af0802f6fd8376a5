#!/bin/bash
# mamoru first boot: run once by systemd from the kernel command line (as
# Raspberry Pi Imager's firstrun.sh is). It installs the mamoru package and
# the site's configuration from the boot partition, enables the service,
# then removes itself from the command line and the partition.
set -euo pipefail
exec >>/var/log/mamoru-firstboot.log 2>&1
echo "mamoru first boot: $(date)"
boot=/boot/firmware
[ -d "$boot/mamoru" ] || boot=/boot
src="$boot/mamoru"
# The package's dependencies (ffmpeg) come from the network: wait for it.
for _ in $(seq 60); do
  getent hosts deb.debian.org >/dev/null && break
  sleep 5
done
apt-get update
apt-get install -y "$src"/mamoru_*.deb
install -D -m 0640 -o root -g mamoru "$src/mamoru.toml" /etc/mamoru/mamoru.toml
for k in signing.key s3-access-key s3-secret-key; do
  [ -f "$src/$k" ] && install -m 0600 -o mamoru -g mamoru "$src/$k" "/etc/mamoru/$k"
done
systemctl enable mamoru.service
# Done: never again.
sed -i 's| systemd.run=[^ ]*mamoru-firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target||' "$boot/cmdline.txt"
rm -rf "$src" "$boot/mamoru-firstrun.sh"
echo "mamoru first boot: done"
exit 0
