#!/bin/sh
# PID 1 of the lab's NFS-Ganesha server: rpcbind and rpc.statd (Ganesha's NLM registers with
# the one and monitors clients through the other), then ganesha.nfsd in the foreground.
# Prints "prober-ganesha: ready ..." once it listens on 2049; on SIGTERM it stops Ganesha.
set -eu
say() { echo "prober-ganesha: $*"; }
mkdir -p /export /run/ganesha /var/lib/nfs/ganesha
chmod 0777 /export
# FSAL_VFS finds the exported filesystem in /etc/mtab (setmntent(3)); a container may lack it.
[ -e /etc/mtab ] || ln -s /proc/self/mounts /etc/mtab
rpcbind -w
# A restart (`prober run` fault rows stop and start this container) keeps the container's
# /var/lib/nfs, as a rebooted server keeps its disk: Ganesha's recovery directory
# (/var/lib/nfs/ganesha, RecoveryBackend fs) and statd's list. A restarted server then holds
# its grace period for the clients' reclaims (ganesha-core-config(8) Graceless = false), and
# statd notifies the NFSv3 clients it had (statd(8)); a first start has nothing to reclaim.
FIRST=/var/lib/nfs/.prober-served
if [ -e "$FIRST" ]; then
    START=restart GRACELESS=false
    rpc.statd
else
    START=first GRACELESS=true
    rpc.statd --no-notify
fi
touch "$FIRST"
sed "s/^  Graceless = true;/  Graceless = $GRACELESS;/" /etc/ganesha/ganesha.conf >/run/ganesha/ganesha.conf
grep -q "Graceless = $GRACELESS;" /run/ganesha/ganesha.conf || { say "no Graceless line to set"; exit 1; }
say "start=$START graceless=$GRACELESS"
ganesha.nfsd -F -L /dev/stdout -f /run/ganesha/ganesha.conf -p /run/ganesha/ganesha.pid &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; say stopped; exit 0' TERM INT
i=0
# ss lists the listening socket once Ganesha has bound it (its own log says nothing then).
while ! ss -Hltn 'sport = :2049' | grep -q .; do
    i=$((i + 1))
    kill -0 $pid 2>/dev/null || { say "ganesha.nfsd exited"; exit 1; }
    [ $i -lt 600 ] || { say "ganesha.nfsd did not listen"; exit 1; }
    sleep 0.2
done
# A rejected EXPORT block leaves Ganesha running with nothing exported: not ready.
showmount -e 127.0.0.1 | grep -q '^/export ' || { say "ganesha.nfsd exports nothing"; exit 1; }
say "ready $(dpkg-query -W -f '${Version}' nfs-ganesha)"
wait $pid
