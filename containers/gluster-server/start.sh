#!/bin/sh
# PID 1 of the lab's GlusterFS server: glusterd, then two volumes with their bricks on the
# brick volume (/bricks), each FUSE-mounted here at /export/<volume>:
#   single    one brick (type Distribute)
#   replica2  two bricks, replica 2 (type Replicate; both on this server: `force`)
# Volumes are named by the server address, the one the clients use. Prints
# "prober-gluster: ready ..." once both are mounted; on SIGTERM it unmounts and stops.
set -eu
say() { echo "prober-gluster: $*"; }
log=/var/log/glusterfs/glusterd.log
mkdir -p /bricks /export /var/log/glusterfs /var/lib/glusterd
[ -e /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229
addr=$(hostname -i | awk '{print $1}')
glusterd -N -l "$log" &
pid=$!
stop() {
    for m in /export/*; do umount -l "$m" 2>/dev/null || true; done
    kill -TERM $pid 2>/dev/null; wait $pid
    pkill -TERM -x glusterfsd 2>/dev/null || true
    say stopped
    exit 0
}
trap stop TERM INT
fail() { say "$*"; tail -n 20 "$log" /var/log/glusterfs/bricks/*.log 2>/dev/null || true; exit 1; }
g() { timeout 60 gluster --mode=script "$@" >/dev/null || fail "gluster $* failed"; }
i=0
while ! timeout 10 gluster --mode=script pool list >/dev/null 2>&1; do
    i=$((i + 1))
    kill -0 $pid 2>/dev/null || fail "glusterd exited"
    [ $i -lt 300 ] || fail "glusterd did not answer"
    sleep 0.2
done
g volume create single "$addr:/bricks/single" force
g volume create replica2 replica 2 "$addr:/bricks/replica2-a" "$addr:/bricks/replica2-b" force
for v in single replica2; do
    g volume start "$v"
    mkdir -p "/export/$v"
    mount -t glusterfs "$addr:/$v" "/export/$v" || fail "mounting $v here failed"
done
say "ready $(dpkg-query -W -f '${Version}' glusterfs-server)"
while :; do
    sleep 3600 &
    wait $! || true
done
