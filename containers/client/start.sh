#!/bin/sh
# PID 1 of a lab client: rpcbind and rpc.statd (NFSv3 locking needs them in the client's
# network namespace), then idle. On SIGTERM it unmounts whatever the lab mounted.
say() { echo "prober-client: $*"; }
stop() {
    for m in $(awk '$2 ~ "^/lab/" {print $2}' /proc/self/mounts | sort -r); do
        umount -f -l "$m" 2>/dev/null
    done
    exit 0
}
trap stop TERM INT
mkdir -p /lab
# FUSE mounts (sshfs) need /dev/fuse; the container may use it (its device cgroup rule).
[ -e /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229 || say "no /dev/fuse (FUSE mounts will fail)"
# Started again after a crash (a fault row), the client tells the NFSv3 servers it had that
# it rebooted (statd(8), sm-notify(8)), and they drop the locks it held, as for a real reboot.
FIRST=/var/lib/nfs/.prober-started
if [ -e "$FIRST" ]; then NOTIFY=; else NOTIFY=--no-notify; fi
touch "$FIRST"
rpcbind -w && rpc.statd $NOTIFY || say "rpc.statd did not start (NFSv3 locks will fail)"
# sshd for cluster checks (`prober check --hosts`), with host keys made now: none is in the
# image or the repository. Clients accept only keys the lab puts in authorized_keys.
mkdir -p /run/sshd && ssh-keygen -A -q && /usr/sbin/sshd -o PasswordAuthentication=no \
    || say "sshd did not start (cluster checks cannot reach this client)"
say ready
while :; do
    sleep 3600 &
    wait $!
done
