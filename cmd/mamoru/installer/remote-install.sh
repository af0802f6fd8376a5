#!/usr/bin/env bash
# remote-install.sh HOST MAKE: installs mamoru on a running Pi over ssh: asks
# it for its architecture, builds the package for it, copies it over,
# installs it, restarts the service and runs the quick self-test there.
set -euo pipefail
host=$1 make=$2
arch=$(ssh "$host" dpkg --print-architecture)
case "$arch" in arm64|armhf|amd64) ;; *) echo "make install: $host is $arch; mamoru builds for arm64, armhf and amd64" >&2; exit 1;; esac
echo "$host is $arch"
deb=$($make --no-print-directory -s deb ARCH="$arch" | tail -n 1)
scp "$deb" "$host:/tmp/"
# The Pi's own configuration stays: dpkg keeps a changed conffile without
# asking, where a prompt would hang the ssh session.
ssh "$host" "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold /tmp/$(basename "$deb") && sudo systemctl restart mamoru && sudo systemctl stop mamoru && sudo -u mamoru mamoru selftest --quick --config /etc/mamoru/mamoru.toml; status=\$?; sudo systemctl start mamoru; exit \$status"
