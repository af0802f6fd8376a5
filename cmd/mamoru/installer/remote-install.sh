#!/usr/bin/env bash
# remote-install.sh HOST MAKE [CONFIG MAMORU]: installs mamoru on a running
# Pi over ssh: asks it for its architecture, builds the package for it,
# copies it into a fresh private directory there, installs it, restarts
# the service and runs the quick self-test there. With CONFIG, the site's
# configuration goes to /etc/mamoru/mamoru.toml and each key file it names
# (as MAMORU, a mamoru for this machine, lists them), kept beside it under
# the base name of its path, to that path, as the first boot does.
set -euo pipefail
host=$1 make=$2 config=${3:-} mamoru=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
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
# Every key file is looked for before the Pi is touched.
if [ -n "$config" ]; then
  [ -f "$config" ] || { echo "make install: $config: no such file" >&2; exit 2; }
  # Absolute, so that scp never reads a ':' in a relative local path as
  # a host's name.
  config=$(cd -- "$(dirname -- "$config")" && pwd)/$(basename -- "$config")
  . "$here/keyfiles.sh"
  site_key_files "$mamoru" "$config" "make install" || exit 2
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
# The site's files go to the Pi under names of our own (key-0, …), which
# neither collide nor need quoting there; the commands that install them
# quote each device path for the Pi's shell (KeyFiles refuses a path with
# a control character, so %q gives plain backslashes). Only keys and
# paths are printed, never what the files hold. A file at a path outside
# /etc/mamoru that the Pi already has is the system's and stays.
setup=
if [ -n "$config" ]; then
  scp -- "$config" "$host:$dir/mamoru.toml"
  setup="sudo install -m 0640 -o root -g mamoru $dir/mamoru.toml /etc/mamoru/mamoru.toml && "
  for i in "${!key_files[@]}"; do
    scp -- "${key_files[$i]}" "$host:$dir/key-$i"
    mode=0600
    case "${key_names[$i]}" in *ca_file) mode=0644 ;; esac
    path=$(printf '%q' "${key_paths[$i]}")
    say=$(printf '%q' "${key_names[$i]}: ${key_paths[$i]}")
    install="sudo install -D -m $mode -o mamoru -g mamoru $dir/key-$i $path && echo $say installed"
    case "${key_paths[$i]}" in
    /etc/mamoru/*) setup+="$install && " ;;
    *) setup+="{ if sudo test -e $path; then echo $say is there already and is kept; else $install; fi; } && " ;;
    esac
  done
fi
# Without CONFIG the Pi's own configuration stays: dpkg keeps a changed
# conffile without asking, where a prompt would hang the ssh session.
ssh -- "$host" "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $dir/$name && ${setup}sudo systemctl restart mamoru && sudo systemctl stop mamoru && sudo -u mamoru mamoru selftest --quick --config /etc/mamoru/mamoru.toml; status=\$?; sudo systemctl start mamoru; exit \$status"
