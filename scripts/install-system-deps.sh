#!/usr/bin/env bash
# Installs the Debian packages ferry's tests and demo use, when they are missing:
#   iproute2  (ip: network namespaces and veth pairs for the two-host tests and the demo)
#   util-linux (unshare, nsenter), procps
# Runs as root; does nothing when everything is already there.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v pgrep >/dev/null 2>&1 || need+=(procps)
for extra in "$@"; do
  case "$extra" in
    redis) command -v redis-server >/dev/null 2>&1 || need+=(redis-server) ;;
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium) ;;
  esac
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ferry: missing system packages: ${need[*]} (run as root: apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
