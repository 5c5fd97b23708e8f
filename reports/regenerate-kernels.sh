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
# Environment: PROBER_KERNELS (default 5.10,6.12,6.1), PROBER_FS (default: the NFS and SMB
# targets below; nfs,smb for every variant), PROBER_EXPERIMENTS (default: the rows between
# clients and against the server, where the server's and the clients' kernel decide; * for
# all), PROBER_PYTHON (default python3). A VM this script's run boots is stopped when its
# kernel is done. The published kernels.json was made with the defaults (README: how long).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${PROBER_PYTHON:-python3}
kernels=${PROBER_KERNELS:-5.10,6.12,6.1}
fs=${PROBER_FS:-nfs3,nfs4.1,nfs4.2,smb3,smb3-nobrl}
rows=${PROBER_EXPERIMENTS:-*.clients,*.server-vs-client,*.client-vs-server,*.exclusive.readonly-fd,lockfileex.*}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cd "$repo"
status=0
"$py" -m prober run --fs "$fs" --experiment "$rows" --kernel "$kernels" --out "$work/run" --format md --timings || status=$?
cp "$work/run/results.json" "$here/kernels.json"
chmod 644 "$here/kernels.json"
"$py" -m prober report "$here/kernels.json" --kernel-view --out "$here/kernels.md"
"$py" -m prober report "$here/kernels.json" --format md --out "$here/kernels-matrix.md"
exit "$status"
