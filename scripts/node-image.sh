#!/usr/bin/env bash
# Builds the image docker nodes run (vagrant.provider: docker): a Debian 12 system with systemd as
# PID 1, sshd for `vagrant ssh` and a `vagrant` user, from Debian's packages by mmdebstrap, loaded
# into the local Docker. No kernel: a container node runs on the host's. Kubernetes itself is not
# in the image; node preparation installs it, as on a VM.
#
#   scripts/node-image.sh IMAGE [MIRROR]     (./lab node-image does this for the stack's image)
#
# Needs mmdebstrap (apt-get install mmdebstrap) and docker. MIRROR defaults to
# http://deb.debian.org/debian; an offline machine gives a local mirror.
set -euo pipefail

IMAGE=${1:?the image name, e.g. k8s-lab/node:bookworm}
MIRROR=${2:-http://deb.debian.org/debian}
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

command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is not installed (Debian/Ubuntu: sudo apt-get install mmdebstrap)"
command -v docker >/dev/null 2>&1 || die "the docker CLI is not on PATH; install Docker"
docker info >/dev/null 2>&1 || die "docker cannot reach its daemon (is it running, and may this user use it?)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

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
  printf '[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n' >"$root/etc/systemd/system/ssh.service.d/k8s-lab.conf"
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
}
# mmdebstrap runs hooks with sh: the function goes into a bash script of its own.
{
  echo 'set -euo pipefail'
  printf 'VAGRANT_INSECURE_KEY=%q\n' "$VAGRANT_INSECURE_KEY"
  declare -f customize
  # shellcheck disable=SC2016 # expanded when the hook runs
  echo 'customize "$1"'
} >"$work/customize.sh"

echo "node-image: building $IMAGE from Debian $SUITE packages ($MIRROR)" >&2
mmdebstrap --variant=minbase --include="$PACKAGES" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook="bash $work/customize.sh \"\$1\"" \
  "$SUITE" "$work/rootfs.tar" "$MIRROR"
docker import --change 'CMD ["/sbin/init"]' --change 'ENV container=docker' "$work/rootfs.tar" "$IMAGE" >/dev/null
echo "node-image: $IMAGE is ready ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%d MB", $1 / 1e6 }'))" >&2
