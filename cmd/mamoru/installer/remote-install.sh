#!/usr/bin/env bash
# remote-install.sh HOST MAKE: installs mamoru on a running Pi over ssh: asks
# it for its architecture, builds the package for it, copies it into a
# fresh private directory there, installs it, restarts the service and runs
# the quick self-test there.
set -euo pipefail
host=$1 make=$2
# HOST is [user@]host or an ssh alias. One starting with '-' would be an
# option to ssh (-oProxyCommand=… runs a command here); "--" below ends
# the options as well, for any ssh that reads them after the host.
# An IPv6 address cannot be HOST: scp splits "$host:$dir" at its first
# ':', and would copy the package to another host.
if [[ $host == *:* ]]; then
  echo "make install: HOST=$host holds ':'; for an IPv6 address, give the Pi a name (in /etc/hosts, or a Host entry with HostName in ~/.ssh/config) and use that" >&2
  exit 2
fi
if [[ $host == -* || ! $host =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+$ ]]; then
  echo "make install: HOST=$host is not [user@]host (letters, digits, '.', '_', '-'; not starting with '-')" >&2
  exit 2
fi
arch=$(ssh -- "$host" dpkg --print-architecture)
case "$arch" in arm64|armhf|amd64) ;; *) echo "make install: $host is $arch; mamoru builds for arm64, armhf and amd64" >&2; exit 1;; esac
echo "$host is $arch"
deb=$($make --no-print-directory -s deb ARCH="$arch" | tail -n 1)
name=$(basename "$deb")
[[ $name =~ ^[A-Za-z0-9._+~-]+\.deb$ ]] || { echo "make install: the build named its package '$name', not a .deb" >&2; exit 1; }
# A directory only this login may enter, under a name nobody can guess:
# the package never goes through a /tmp path another user on the Pi could
# have prepared.
dir=$(ssh -- "$host" mktemp -d)
[[ $dir =~ ^/[A-Za-z0-9._/-]+$ ]] || { echo "make install: mktemp -d on $host answered '$dir', not a directory path" >&2; exit 1; }
trap 'ssh -- "$host" rm -rf -- "$dir"' EXIT
scp -- "$deb" "$host:$dir/"
# The Pi's own configuration stays: dpkg keeps a changed conffile without
# asking, where a prompt would hang the ssh session.
ssh -- "$host" "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $dir/$name && sudo systemctl restart mamoru && sudo systemctl stop mamoru && sudo -u mamoru mamoru selftest --quick --config /etc/mamoru/mamoru.toml; status=\$?; sudo systemctl start mamoru; exit \$status"
