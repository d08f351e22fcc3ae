#!/usr/bin/env bash
# Builds the image docker nodes run (vagrant.provider: docker): a Debian 12 system with systemd as
# PID 1, sshd for `vagrant ssh` and a `vagrant` user, from Debian's packages by mmdebstrap, loaded
# into the local Docker. No kernel: a container node runs on the host's. Kubernetes itself is not
# in the image; node preparation installs it, as on a VM.
#
#   scripts/node-image.sh rootfs OUT.tar [MIRROR]   the root file system, from Debian's packages
#   scripts/node-image.sh import ROOTFS.tar IMAGE   that file system as the Docker image IMAGE
#   scripts/node-image.sh build IMAGE [MIRROR]      both (./lab node-image: from the offline
#                                                   bundle's rootfs when it has one, else this)
#
# `rootfs` needs mmdebstrap (apt-get install mmdebstrap) and a Debian mirror (default
# http://deb.debian.org/debian); `import` needs only docker, so an air-gapped machine imports the
# file system the bundle carries.
set -euo pipefail

SUITE=bookworm
# What a node needs besides Kubernetes' release files: systemd, sshd and sudo for vagrant, the
# tools kubeadm's preflight and the CNI plugins run (ip, iptables, mount, losetup), curl for an
# online lab.
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,iptables,kmod,procps,ca-certificates,curl
# Vagrant's well-known insecure key: `vagrant up` swaps it for a key of its own on first boot.
VAGRANT_INSECURE_KEY='ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key'

die() {
  echo "node-image: $*" >&2
  exit 1
}

# Runs in the new root after the packages are in, as mmdebstrap's customize hook ($1: the root).
customize() {
  local root=$1
  chroot "$root" useradd --create-home --shell /bin/bash --uid 1000 vagrant
  install -d -m 0700 "$root/home/vagrant/.ssh"
  printf '%s\n' "$VAGRANT_INSECURE_KEY" >"$root/home/vagrant/.ssh/authorized_keys"
  chmod 0600 "$root/home/vagrant/.ssh/authorized_keys"
  chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
  echo "vagrant ALL=(ALL) NOPASSWD: ALL" >"$root/etc/sudoers.d/vagrant"
  chmod 0440 "$root/etc/sudoers.d/vagrant"
  # Nothing to mount, no console to log in on, no timers a lab needs.
  : >"$root/etc/fstab"
  chroot "$root" systemctl mask getty.target console-getty.service systemd-logind.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1
  chroot "$root" systemctl enable ssh >/dev/null 2>&1
  # Each node its own identity: a machine ID and SSH host keys made at first boot, not shared.
  : >"$root/etc/machine-id"
  rm -f "$root"/etc/ssh/ssh_host_*
  mkdir -p "$root/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$root/etc/systemd/system/ssh.service.d/k8s-lab.conf"
  # The kubelet and the CNI need mounts to propagate (a container's root is private by default).
  cat >"$root/etc/systemd/system/k8s-lab-shared-root.service" <<'UNIT'
[Unit]
Description=Make / a shared mount, as the kubelet expects
DefaultDependencies=no
Before=local-fs.target

[Service]
Type=oneshot
ExecStart=/bin/mount --make-rshared /

[Install]
WantedBy=local-fs.target
UNIT
  chroot "$root" systemctl enable k8s-lab-shared-root.service >/dev/null 2>&1
  # Pods' DNS: docker's embedded DNS server (127.0.0.11, in a container on a user-defined
  # network) answers the node's own processes only; a pod handed the node's resolv.conf would ask
  # itself (CoreDNS stops on the loop). So names go through the node's default gateway address,
  # which docker's own NAT rules for its DNS server are taught to take, from pods too (as kind's
  # nodes do). Again at every boot: docker writes its rules anew into each new network namespace.
  cat >"$root/usr/local/sbin/k8s-lab-docker-dns" <<'SCRIPT'
#!/bin/bash
set -euo pipefail
embedded=127.0.0.11
gateway=$(ip -4 route show default | awk '{ print $3; exit }')
[ -n "$gateway" ] || exit 0
save= rules=
for candidate in iptables-nft-save iptables-legacy-save; do
  rules=$("$candidate" -t nat 2>/dev/null || true)
  if grep -q -- "-d $embedded/32 .*DNAT" <<<"$rules"; then
    save=$candidate
    break
  fi
done
if [ -n "$save" ]; then
  sysctl -q -w net.ipv4.conf.all.route_localnet=1
  printf '%s\n' "$rules" | sed \
    -e "s/-d $embedded/-d $gateway/g" \
    -e 's/^-A OUTPUT \(.*\) -j DOCKER_OUTPUT$/&\n-A PREROUTING \1 -j DOCKER_OUTPUT/' \
    -e "s/--to-source :53/--to-source $gateway:53/g" \
    -e "s/p -j DNAT --to-destination $embedded/p --dport 53 -j DNAT --to-destination $embedded/g" |
    "${save%-save}-restore"
fi
if grep -q "^nameserver $embedded" /etc/resolv.conf; then
  # docker bind-mounts the file: rewrite it in place.
  sed -e "s/^nameserver $embedded/nameserver $gateway/" /etc/resolv.conf >/run/k8s-lab-resolv.conf
  cat /run/k8s-lab-resolv.conf >/etc/resolv.conf
fi
SCRIPT
  chmod 0755 "$root/usr/local/sbin/k8s-lab-docker-dns"
  cat >"$root/etc/systemd/system/k8s-lab-docker-dns.service" <<'UNIT'
[Unit]
Description=Let pods reach docker's DNS server through the node's gateway address
After=network.target
Before=containerd.service kubelet.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/k8s-lab-docker-dns

[Install]
WantedBy=multi-user.target
UNIT
  chroot "$root" systemctl enable k8s-lab-docker-dns.service >/dev/null 2>&1
}
rootfs() {
  local out=${1:?the output tar} mirror=${2:-http://deb.debian.org/debian} work
  command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is not installed (Debian/Ubuntu: sudo apt-get install mmdebstrap)"
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the directory is known now
  trap "rm -rf '$work'" EXIT
  # mmdebstrap runs hooks with sh: the function goes into a bash script of its own.
  {
    echo 'set -euo pipefail'
    printf 'VAGRANT_INSECURE_KEY=%q\n' "$VAGRANT_INSECURE_KEY"
    declare -f customize
    # shellcheck disable=SC2016 # expanded when the hook runs
    echo 'customize "$1"'
  } >"$work/customize.sh"
  echo "node-image: building the node's file system from Debian $SUITE packages ($mirror)" >&2
  mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="bash $work/customize.sh \"\$1\"" \
    "$SUITE" "$work/rootfs.tar" "$mirror"
  mkdir -p "$(dirname "$out")"
  mv -f "$work/rootfs.tar" "$out"
}

import_image() {
  local tar=${1:?the root file system tar} image=${2:?the image name}
  [ -f "$tar" ] || die "$tar is not there"
  command -v docker >/dev/null 2>&1 || die "the docker CLI is not on PATH; install Docker"
  docker info >/dev/null 2>&1 || die "docker cannot reach its daemon (is it running, and may this user use it?)"
  docker import --change 'CMD ["/sbin/init"]' --change 'ENV container=docker' "$tar" "$image" >/dev/null
  echo "node-image: $image is ready ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%d MB", $1 / 1e6 }'))" >&2
}

action=${1:-}
[ $# -gt 0 ] && shift
case $action in
  rootfs) rootfs "$@" ;;
  import) import_image "$@" ;;
  build)
    image=${1:?the image name, e.g. k8s-lab/node:bookworm}
    tmp=$(mktemp -d)
    rootfs "$tmp/rootfs.tar" "${2:-}"
    import_image "$tmp/rootfs.tar" "$image"
    rm -rf "$tmp"
    ;;
  *) die "usage: scripts/node-image.sh rootfs OUT.tar [MIRROR] | import ROOTFS.tar IMAGE | build IMAGE [MIRROR]" ;;
esac
