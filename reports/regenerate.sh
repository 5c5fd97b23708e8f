#!/bin/sh
# Regenerate the project's published matrix from a real run of every target.
#
#   sh reports/regenerate.sh
#
# Runs `prober run` on the host targets (local, tmpfs, ext4, xfs, btrfs: needs root for the
# mounts) and the lab targets (nfs3, nfs4.0, nfs4.1, nfs4.2, smb3, smb3-nobrl, smb3-noposixlocking,
# smb3-nolease, overlay, volume, container-tmpfs: need the Docker-host VM), then the targets that
# need a newer kernel than the default VM's (the catalogue's kernel_min: ksmbd) on that kernel's
# VM. Every row runs, the opt-in fault rows too (--experiment '*'): each served target then has
# a lab of its own, and PROBER_JOBS of them run at once. Then it writes into reports/:
#   results.json   the raw results (schema prober-results; `prober diff` takes it)
#   results-6.12.json  the newer kernel's run (targets named target@6.12)
#   matrix.md      summary, targets, matrix, legend, error names, notes (Markdown)
#   summary.md     the summary view alone, for the README
#   matrix.html    the same as one self-contained page; matrix.json: everything as data
#   screenshot.png the HTML page in headless Chromium (skipped if chromium is missing)
# A target that cannot run here stays in the report with the reason.
#
# Environment: PROBER_FS (default: local,tmpfs,ext4,xfs,btrfs,lab), PROBER_DOCKER_HOST
# (default: vm; empty: none), PROBER_NEWER_FS (default: ksmbd; empty: none, and the reports
# keep the results-6.12.json that is there), PROBER_JOBS (default 6: lab targets at once; a
# fault row mostly waits), PROBER_PYTHON (default: python3).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${PROBER_PYTHON:-python3}
fs=${PROBER_FS:-local,tmpfs,ext4,xfs,btrfs,lab}
docker_host=${PROBER_DOCKER_HOST-vm}
newer_fs=${PROBER_NEWER_FS-ksmbd}
jobs=${PROBER_JOBS:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cd "$repo"
# The local target measures the filesystem this repository lives on.
set -- --fs "$fs" --path "$repo" --out "$work/run" --format md --experiment '*' --jobs "$jobs"
if [ -n "$docker_host" ]; then
    set -- "$@" --docker-host "$docker_host"
fi
"$py" -m prober run "$@"

cp "$work/run/results.json" "$here/results.json"
chmod 644 "$here/results.json"
if [ -n "$newer_fs" ] && [ -n "$docker_host" ]; then
    # The lab targets that must not run on a kernel older than 6.12 (their kernel_min).
    "$py" -m prober run --fs "$newer_fs" --kernel 6.12 --out "$work/newer" --format md \
        --experiment '*' --jobs "$jobs"
    cp "$work/newer/results.json" "$here/results-6.12.json"
    chmod 644 "$here/results-6.12.json"
fi
set -- "$here/results.json"
if [ -e "$here/results-6.12.json" ]; then
    set -- "$@" "$here/results-6.12.json"
fi
for fmt in md html json; do
    "$py" -m prober report "$@" --format "$fmt" --out "$here/matrix.$fmt"
done
"$py" - "$here/summary.md" "$@" <<'PY'
import sys
from pathlib import Path

from prober.report.markdown import summary_markdown
from prober.report.matrix import build
from prober.results import load

runs = [load(Path(name)) for name in sys.argv[2:]]
Path(sys.argv[1]).write_text(summary_markdown(build(runs)), "utf-8")
PY

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$chromium" ]; then
    timeout 120 "$chromium" --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --user-data-dir="$work/profile" --window-size=1400,1800 \
        --screenshot="$here/screenshot.png" "file://$here/matrix.html" 2>/dev/null
else
    echo "regenerate.sh: chromium not installed; screenshot.png left as it was" >&2
fi
echo "regenerate.sh: wrote $here/{results.json,results-6.12.json,matrix.md,summary.md,matrix.html,matrix.json}"
