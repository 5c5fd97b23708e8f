#!/bin/sh
# PID 1 of the lab's NFS server: configures the Docker host's kernel nfsd in this
# container's network namespace and serves /export (v3, v4.0, v4.1, v4.2).
# Prints "prober-nfs: ready" once the server answers; on SIGTERM it stops nfsd.
set -eu
GRACE=${PROBER_NFS_GRACE:-10}
say() { echo "prober-nfs: $*"; }

stop() {
    rpc.nfsd 0 2>/dev/null || true
    exportfs -ua 2>/dev/null || true
    say stopped
    exit 0
}
trap stop TERM INT

mkdir -p /export
chmod 0777 /export
mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd
# lockd's grace period (roundup of nlm_grace_period to nlm_timeout) also holds back NFSv4
# locks while it lasts; without this it is 50 s. The sysctl is the Docker host's.
if [ -w /proc/sys/fs/nfs/nlm_grace_period ]; then
    echo "$GRACE" >/proc/sys/fs/nfs/nlm_grace_period
fi
# fsid=0: /export is the NFSv4 pseudo-root (v4 clients mount SERVER:/<dir>, v3 clients
# SERVER:/export/<dir>); nfsd's own threads cannot see this container's mounts otherwise.
echo "/export *(rw,sync,no_subtree_check,no_root_squash,insecure,fsid=0)" >/etc/exports
rpcbind -w
# A restart (`prober run` fault rows stop and start this container) keeps the container's
# /var/lib/nfs, as a rebooted server keeps its disk: statd then notifies the NFSv3 clients it
# had (sm-notify, statd(8)) and the grace period is left to run for their reclaims.
FIRST=/var/lib/nfs/.prober-served
if [ -e "$FIRST" ]; then START=restart; rpc.statd; else START=first; rpc.statd --no-notify; fi
touch "$FIRST"
exportfs -r
# NFSv4 client tracking: in a container the kernel refuses its legacy directory and the
# nfsdcltrack helper, and uses nfsdcld alone; without a tracker no client may reclaim its
# locks after a restart. nfsdcld keeps its database in /var/lib/nfs/nfsdcld.
mkdir -p /run/rpc_pipefs /var/lib/nfs/nfsdcld
mountpoint -q /run/rpc_pipefs || mount -t rpc_pipefs rpc_pipefs /run/rpc_pipefs || true
nfsdcld -p /run/rpc_pipefs || say "nfsdcld did not start (NFSv4 clients cannot reclaim after a restart)"
# 10 s is the smallest grace and lease the kernel accepts.
rpc.nfsd -G "$GRACE" -L "$GRACE" 8
rpc.mountd
# Nothing to reclaim on a fresh server: end the NFSv4 grace period now (Linux >= 4.?;
# the file is absent on older kernels).
if [ "$START" = first ] && [ -w /proc/fs/nfsd/v4_end_grace ]; then
    echo Y >/proc/fs/nfsd/v4_end_grace || true
fi
say "ready start=$START grace=${GRACE}s lease=${GRACE}s versions=$(cat /proc/fs/nfsd/versions)"
while :; do
    sleep 3600 &
    wait $! || true
done
