#!/bin/sh
# Starts ksmbd.mountd for one share over /export, which is the Docker host's directory SHARE_PATH
# (the kernel's threads resolve share paths in the Docker host's mount namespace; the same
# path is bound here too so that both sides name one directory). Usage: SHARE_PATH PASSWORD.
# Prints "ready <ksmbd-tools version>" once the kernel listens on port 445.
set -eu
path=$1
password=$2
mkdir -p "$path"
mountpoint -q "$path" || mount --bind /export "$path"
# ksmbd.conf(5): the share keeps ksmbd's defaults but for what the lab's actors need (files
# and directories every actor may write, as the Samba share's masks).
cat >/etc/ksmbd/ksmbd.conf <<CONF
[global]
	server min protocol = SMB2_10
[prober]
	path = $path
	read only = no
	valid users = prober
	force user = root
	create mask = 0666
	directory mask = 0777
CONF
ksmbd.adduser -a prober -p "$password" >/dev/null 2>&1 || ksmbd.adduser -u prober -p "$password" >/dev/null
ksmbd.mountd
i=0
while ! ss -Hltn 'sport = :445' | grep -q .; do
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "ksmbd did not listen on 445"; ss -Hltn; exit 1; }
    sleep 0.2
done
echo "ready $(dpkg-query -W -f '${Version}' ksmbd-tools)"
