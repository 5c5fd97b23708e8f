#!/bin/bash
# PID 1 of the lab's SMB server: Samba's smbd sharing /export as [prober] for the user
# prober (password from PROBER_SMB_PASSWORD). Prints "prober-smb: ready" when it listens.
set -eu
say() { echo "prober-smb: $*"; }
mkdir -p /export /var/log/samba /run/samba
chmod 0777 /export
printf '%s\n%s\n' "$PROBER_SMB_PASSWORD" "$PROBER_SMB_PASSWORD" | smbpasswd -s -a prober >/dev/null
smbd --foreground --no-process-group &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' TERM INT
i=0
while ! (echo >/dev/tcp/127.0.0.1/445) 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 300 ] || { say "smbd did not listen"; exit 1; }
    sleep 0.1
done
say "ready $(smbd --version)"
wait $pid
