#!/bin/sh
# PID 1 of the lab's ksmbd server. ksmbd is one server per kernel: this container loads its
# module, resets whatever server an earlier lab left in the kernel and prints
# "prober-ksmbd: prepared". prober then runs prober-ksmbd-serve, which writes the share and
# the SMB user and starts ksmbd.mountd (the share's path is the export volume's path on the
# Docker host, which only prober knows). On SIGTERM the kernel server is shut down.
set -eu
say() { echo "prober-ksmbd: $*"; }
[ -d /sys/module/ksmbd ] || modprobe ksmbd 2>/dev/null || true
[ -d /sys/module/ksmbd ] || { say "the Docker host's kernel has no ksmbd module"; exit 1; }
# A server left by a killed run would answer the kernel's heartbeat and refuse this one.
ksmbd.control --shutdown >/dev/null 2>&1 || true
mkdir -p /export /etc/ksmbd
chmod 0777 /export
stop() {
    ksmbd.control --shutdown >/dev/null 2>&1 || true
    say stopped
    exit 0
}
trap stop TERM INT
say "prepared"
while :; do
    sleep 3600 &
    wait $! || true
done
