#!/bin/sh
# PID 1 of the lab's sshfs server: OpenSSH's sshd (its SFTP subsystem is what sshfs talks to)
# serving /export to root, with host keys made now (the image carries none). The lab adds
# each client's public key to /root/.ssh/authorized_keys once it is up. Prints
# "prober-sshfs: ready ..." once sshd listens; on SIGTERM it stops sshd.
set -eu
say() { echo "prober-sshfs: $*"; }
mkdir -p /export /run/sshd /root/.ssh
chmod 0777 /export
chmod 0700 /root/.ssh
touch /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
/usr/sbin/sshd -D -e -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password \
    -o HostKey=/etc/ssh/ssh_host_ed25519_key &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; say stopped; exit 0' TERM INT
i=0
while ! ss -Hltn 'sport = :22' | grep -q .; do
    i=$((i + 1))
    kill -0 $pid 2>/dev/null || { say "sshd exited"; exit 1; }
    [ $i -lt 300 ] || { say "sshd did not listen"; exit 1; }
    sleep 0.2
done
say "ready $(dpkg-query -W -f '${Version}' openssh-server)"
wait $pid
