#!/bin/sh
# Run the lab catalogue several times on a warm lab and diff every run against the first:
# a cell whose verdict or decisive outcome flips between runs is a bug or a nondeterminism
# to pin down before the matrix is published.
#
#   sh reports/stability.sh [RUNS]        (default 3; needs the Docker-host VM)
#
# Environment: PROBER_FS (default: lab), PROBER_DOCKER_HOST (default: vm), PROBER_PYTHON
# (default: python3), PROBER_STABILITY_DIR (default: a fresh temporary directory, kept).
# Exit 0 when every run agrees with the first, 1 when a cell flipped.
set -eu

runs=${1:-3}
py=${PROBER_PYTHON:-python3}
fs=${PROBER_FS:-lab}
docker_host=${PROBER_DOCKER_HOST:-vm}
out=${PROBER_STABILITY_DIR:-$(mktemp -d)}

i=1
while [ "$i" -le "$runs" ]; do
    "$py" -m prober run --fs "$fs" --docker-host "$docker_host" --out "$out/run$i" --format md
    i=$((i + 1))
done

status=0
i=2
while [ "$i" -le "$runs" ]; do
    echo "== run 1 -> run $i"
    "$py" -m prober diff "$out/run1/results.json" "$out/run$i/results.json" --format md \
        >"$out/diff-1-$i.md" || true
    head -n 3 "$out/diff-1-$i.md"
    if grep -q '^| ' "$out/diff-1-$i.md"; then
        status=1
    fi
    i=$((i + 1))
done
echo "stability.sh: results and diffs in $out"
exit "$status"
