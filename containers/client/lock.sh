#!/bin/sh
# Regenerates requirements.txt: prober's dependency closure as pip resolves it for the client
# image's interpreter (bookworm's CPython 3.11, x86_64), from PyPI, pinned with hashes.
# cryptography, cffi and pycparser are left to Debian's python3-cryptography.
# Usage: sh containers/client/lock.sh 'typer==X' 'rich==Y' ...  (prober's dependencies)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT
PIP_CONFIG_FILE=/dev/null python3 -m pip download --isolated -q -d "$dl" \
    --index-url https://pypi.org/simple --only-binary :all: --implementation cp \
    --python-version 3.11 --abi cp311 --platform manylinux_2_36_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$@"
{
    sed -n '1,3p' "$here/requirements.txt"
    for f in "$dl"/*.whl; do
        name=$(basename "$f" | cut -d- -f1 | tr _ - | tr A-Z a-z)
        version=$(basename "$f" | cut -d- -f2)
        case $name in cryptography|cffi|pycparser) continue ;; esac
        echo "$name==$version --hash=sha256:$(sha256sum "$f" | cut -d' ' -f1)"
    done
} >"$here/requirements.txt.new"
mv "$here/requirements.txt.new" "$here/requirements.txt"
