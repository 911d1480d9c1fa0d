#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries are there for the tests (they start a throwaway
# cluster of their own with initdb/pg_ctl from /usr/lib/postgresql/*/bin).
#
#   scripts/install_postgres.sh     as root with apt-get: install Debian's `postgresql`
#                                   when missing; otherwise only say the tests will skip
#
# The package's own "main" cluster is not wanted (it would start a daemon on 5432):
# createcluster.conf tells postgresql-common not to make it. Idempotent.
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server not installed (and not root with apt-get): the PostgreSQL tests will skip" >&2
  exit 0
fi
mkdir -p /etc/postgresql-common
conf=/etc/postgresql-common/createcluster.conf
if ! grep -qs '^create_main_cluster' "$conf"; then
  echo 'create_main_cluster = false' >> "$conf"
fi
apt_opts=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive
echo "Installing PostgreSQL (apt-get install postgresql) for the tests..." >&2
if ! apt-get install "${apt_opts[@]}" postgresql >/dev/null; then
  apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
  apt-get install "${apt_opts[@]}" postgresql >/dev/null
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
