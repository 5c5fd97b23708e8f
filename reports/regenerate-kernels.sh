#!/bin/sh
# Regenerate the kernel matrix: the NFS and SMB targets on three kernels, each in its own
# Docker-host VM (one after another), and the kernel view of the results.
#
#   sh reports/regenerate-kernels.sh
#
# Writes into reports/:
#   kernels.json       the raw results; targets are named target@kernel (prober diff takes it:
#                      prober diff reports/kernels.json reports/kernels.json --old-kernel 6.1 --new-kernel 6.12)
#   kernels.md         the kernel view: rows that differ between kernels first, with each side's steps
#   kernels-matrix.md  the whole matrix of the run
# Environment: PROBER_KERNELS (default 5.10,6.1,6.12), PROBER_FS (default nfs,smb),
# PROBER_PYTHON (default python3). A VM this script's run boots is stopped when its kernel is done.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${PROBER_PYTHON:-python3}
kernels=${PROBER_KERNELS:-5.10,6.1,6.12}
fs=${PROBER_FS:-nfs,smb}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cd "$repo"
status=0
"$py" -m prober run --fs "$fs" --kernel "$kernels" --out "$work/run" --format md --timings || status=$?
cp "$work/run/results.json" "$here/kernels.json"
chmod 644 "$here/kernels.json"
"$py" -m prober report "$here/kernels.json" --kernel-view --out "$here/kernels.md"
"$py" -m prober report "$here/kernels.json" --format md --out "$here/kernels-matrix.md"
exit "$status"
