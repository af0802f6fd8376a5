# keyfiles.sh, sourced by image.sh and remote-install.sh.
#
# site_key_files MAMORU CONFIG WHAT sets key_names, key_paths and
# key_files: for each key file CONFIG names (as 'MAMORU check
# --list-key-files' lists them), its key, its path on the device and the
# file beside CONFIG under that path's base name, where the installer
# keeps it (docs/install.md). It names, after WHAT, every one that is not
# there, and then returns 1. It reads none of them.
site_key_files() {
  local mamoru=$1 config=$2 what=$3
  local site list key path missing=0
  site=$(dirname -- "$config")
  key_names=() key_paths=() key_files=()
  list=$("$mamoru" check --list-key-files --config "$config") || {
    echo "$what: the key files of $config cannot be listed (see above)" >&2
    return 1
  }
  while IFS=$'\t' read -r key path; do
    [ -n "$key" ] || continue
    if [ ! -f "$site/${path##*/}" ]; then
      echo "$what: '$key' = \"$path\" needs its file beside the configuration, as $site/${path##*/} (mode 0600 for a secret): it is not there" >&2
      missing=1
      continue
    fi
    key_names+=("$key")
    key_paths+=("$path")
    key_files+=("$site/${path##*/}")
  done <<<"$list"
  return "$missing"
}
