#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine (run as root):
# filesystem tools for the loop-mounted targets, QEMU and debootstrap for the Docker-host VM,
# the Docker client, Chromium for the HTML report test, and prober with its dev extras in a
# venv (.venv): Debian's own Python has no pip and refuses system-wide installs (PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  e2fsprogs xfsprogs btrfs-progs util-linux mount procps kmod
  qemu-system-x86 qemu-utils debootstrap docker.io iproute2 iptables
  chromium samba python3-venv
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[dev]'
