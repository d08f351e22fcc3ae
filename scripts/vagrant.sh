#!/usr/bin/env bash
# k8s-lab's one door to the Vagrant CLI. The program's steps and the ./lab lifecycle commands all
# call it from the project root. Every action is safe to run again after a half-finished attempt.
#
#   box BOX VERSION        download the box once (provider: VAGRANT_DEFAULT_PROVIDER)
#   up NODE                create or boot a machine, then record its spec for plain vagrant use
#   destroy NODE           remove a machine (nothing to do when it is already gone)
#   run NODE SCRIPT        run SCRIPT as root inside NODE, with the variables K8S_LAB_FORWARD names
#   join CP WORKER         mint a fresh join token on CP and join WORKER with it
#   leave CP WORKER        best effort: delete WORKER's Node object through CP
#   kubeconfig CP SERVER   print CP's admin kubeconfig once it is checked to point at SERVER
#   stop | start | status | ssh NODE
#                          the ./lab lifecycle commands, on the machines recorded for the stack
#
# Environment: VAGRANT_DOTFILE_PATH (the stack's own Vagrant state), K8S_LAB_NODES (JSON specs of
# the nodes this call touches; the Vagrantfile reads the recorded specs when it is unset).
#
# Runs on the laptop, so it sticks to what macOS's bash 3.2 understands.
set -euo pipefail

die() {
  echo "k8s-lab: $*" >&2
  exit 1
}

# Vagrant runs one command on a machine at a time: another one meanwhile fails at once, "because
# it is locked", and `vagrant ssh` holds the machine as long as its command runs. The lab's steps
# on the control plane run side by side (the CNI, each join's token, the kubeconfig), so a call
# the lock refuses (before doing anything or reading stdin) waits its turn and is made again, for
# up to ten minutes; Vagrant's refusal is left out of the output, which otherwise streams as it comes.
vagrant() {
  local attempt=1 status errors said=""
  errors=$(mktemp "${TMPDIR:-/tmp}/k8s-lab-vagrant.XXXXXX")
  while :; do
    status=0
    { command vagrant "$@" 2>&1 1>&3 3>&- | tee "$errors" |
      awk '/because it is locked/ { skip = 1 } !skip { print; fflush() } skip && /^Provider: / { skip = 0 }' >&2; } 3>&1 || status=$?
    if [ "$status" -ne 0 ] && [ "$attempt" -lt 300 ] && grep -q "because it is locked" "$errors"; then
      if [ -z "$said" ]; then
        echo "k8s-lab: another vagrant command holds the machine; waiting for it" >&2
        said=1
      fi
      attempt=$((attempt + 1))
      sleep 2
      continue
    fi
    rm -f "$errors"
    return "$status"
  done
}

need_vagrant() {
  type -P vagrant >/dev/null 2>&1 ||
    die "vagrant is not installed or not on PATH. Install Vagrant (https://developer.hashicorp.com/vagrant/install) with VirtualBox, or with the vagrant-libvirt plugin for vagrant.provider: libvirt, then run this again"
}

records_dir() {
  echo "${VAGRANT_DOTFILE_PATH:?VAGRANT_DOTFILE_PATH must name the stack\'s Vagrant state directory}/k8s-lab-nodes"
}

# The command run inside the VM: read the whole script first, so that nothing inside it can eat
# the rest of its own text from stdin, and so values (a join command) never reach an argv.
remote_runner() {
  # shellcheck disable=SC2016 # expanded inside the VM
  printf '%s' 'sudo bash -c '\''script=$(cat); bash <(printf "%s" "$script") </dev/null'\'''
}

preamble() {
  local name
  for name in ${K8S_LAB_FORWARD:-}; do
    case $name in
      *[!A-Za-z0-9_]*) die "cannot forward '$name': not a variable name" ;;
    esac
    printf 'export %s=%q\n' "$name" "${!name-}"
  done
}

run_script() {
  local node=$1 script=$2
  [ -f "$script" ] || die "no script $script in $(pwd)"
  need_vagrant
  copy_bundle "$node"
  { preamble; cat "$script"; } | vagrant ssh "$node" --no-tty -c "$(remote_runner)"
}

# The offline bundle's files a VM needs (K8S_LAB_BUNDLE_FILES: "size path" lines, relative to
# K8S_LAB_BUNDLE), copied into it over vagrant ssh, except those it holds already at that size.
# A docker node has the bundle mounted instead (the Vagrantfile), so nothing is copied.
NODE_BUNDLE=/var/cache/k8s-lab/bundle
copy_bundle() {
  local node=$1 have missing
  [ -n "${K8S_LAB_BUNDLE:-}" ] && [ -n "${K8S_LAB_BUNDLE_FILES:-}" ] || return 0
  [ "${VAGRANT_DEFAULT_PROVIDER:-}" != docker ] || return 0
  [ -d "$K8S_LAB_BUNDLE" ] || die "the offline bundle $K8S_LAB_BUNDLE is not there; fill it with ./lab bundle fill"
  have=$(vagrant ssh "$node" --no-tty -c "sudo find $NODE_BUNDLE -type f -printf '%s %P\\n' 2>/dev/null || true" | tr -d '\r')
  missing=$(printf '%s\n' "$K8S_LAB_BUNDLE_FILES" | awk 'NR == FNR { have[$0] = 1; next } NF == 2 && !($0 in have) { print $2 }' \
    <(printf '%s\n' "$have") -)
  [ -n "$missing" ] || return 0
  echo "k8s-lab: copying $(printf '%s\n' "$missing" | grep -c .) files of the offline bundle into $node" >&2
  # shellcheck disable=SC2086 # one path per word; bundle paths have no spaces
  (cd "$K8S_LAB_BUNDLE" && tar -cf - $missing) |
    vagrant ssh "$node" --no-tty -c "sudo mkdir -p $NODE_BUNDLE && sudo tar -C $NODE_BUNDLE -xf -"
}

# Succeeds when `vagrant box list` (on stdin) has exactly this box, provider and version. It
# prints "NAME (PROVIDER, VERSION)" or "NAME (PROVIDER, VERSION, (ARCH))", NAME padded with
# spaces; a substring match would take generic/debian12 4.3.12 for 4.3, or mybento/x for bento/x.
box_listed() {
  awk -v name="$1" -v provider="$2" -v version="$3" '
    $1 == name {
      fields = $0
      sub(/^[^(]*\(/, "", fields)
      split(fields, f, /, */)
      gsub(/[()[:space:]]/, "", f[1])
      gsub(/[()[:space:]]/, "", f[2])
      if (f[1] == provider && f[2] == version) found = 1
    }
    END { exit !found }'
}

box() {
  local name=$1 version=$2 provider=${VAGRANT_DEFAULT_PROVIDER:-virtualbox}
  need_vagrant
  if [ "$provider" = docker ]; then
    # Docker nodes run from an image, built here rather than downloaded.
    command -v docker >/dev/null 2>&1 || die "vagrant.provider is docker but the docker CLI is not on PATH; install Docker"
    docker image inspect "$name" >/dev/null 2>&1 ||
      die "the node image $name is not in Docker; build it with ./lab node-image"
    echo "k8s-lab: node image $name is here"
    return
  fi
  if vagrant box list 2>/dev/null | box_listed "$name" "$provider" "$version"; then
    echo "k8s-lab: box $name $version ($provider) is already here"
    return
  fi
  vagrant box add "$name" --box-version "$version" --provider "$provider"
}

record() {
  local dir
  dir=$(records_dir)
  mkdir -p "$dir"
  printf '%s\n' "${K8S_LAB_NODES:?K8S_LAB_NODES must hold the node specs}" >"$dir/$1.json.tmp"
  mv -f "$dir/$1.json.tmp" "$dir/$1.json"
}

up() {
  need_vagrant
  # On an existing machine this only boots it when it is off; on a half-created one it resumes.
  vagrant up "$1" --provider "${VAGRANT_DEFAULT_PROVIDER:-virtualbox}"
  record "$1"
}

destroy() {
  need_vagrant
  vagrant destroy -f "$1"
  rm -f "$(records_dir)/$1.json"
}

join_worker() {
  local cp=$1 worker=$2 join_command
  need_vagrant
  echo "k8s-lab: minting a join token on $cp for $worker" >&2
  # The token lives in this shell's memory only: never printed, never in an argument list.
  join_command=$(vagrant ssh "$cp" --no-tty -c 'sudo kubeadm token create --ttl 15m --print-join-command')
  join_command=$(printf '%s\n' "$join_command" | tr -d '\r' | sed -n '/^kubeadm join /p' | tail -n 1)
  [ -n "$join_command" ] || die "$cp printed no join command; is the control plane initialised?"
  JOIN_COMMAND=$join_command K8S_LAB_FORWARD="${K8S_LAB_FORWARD:-} JOIN_COMMAND" \
    run_script "$worker" scripts/node/join.sh
}

leave() {
  local cp=$1 worker=$2
  if ! type -P vagrant >/dev/null 2>&1; then
    echo "k8s-lab: vagrant is not on PATH; node $worker stays listed in the cluster" >&2
    return 0
  fi
  # Best effort: on `destroy` the whole cluster goes anyway, and a halted control plane must not
  # block it.
  vagrant ssh "$cp" --no-tty -c "sudo kubectl --kubeconfig /etc/kubernetes/admin.conf delete node $(printf '%q' "$worker") --ignore-not-found --wait=false" >&2 ||
    echo "k8s-lab: could not reach $cp to delete node $worker; continuing" >&2
}

read_kubeconfig() {
  local cp=$1 server=$2 config
  need_vagrant
  config=$(vagrant ssh "$cp" --no-tty -c 'sudo cat /etc/kubernetes/admin.conf' | tr -d '\r')
  case $config in
    *"server: $server"*) ;;
    *) die "the admin kubeconfig on $cp does not point at $server; the laptop could not use it" ;;
  esac
  printf '%s\n' "$config"
}

# -- lifecycle, on the machines recorded for the stack --

recorded_machines() {
  local dir file
  dir=$(records_dir)
  for file in "$dir"/*.json; do
    [ -f "$file" ] && basename "$file" .json
  done
  return 0
}

machine_states() {
  # "NAME STATE" per line, from vagrant's machine-readable status.
  vagrant status --machine-readable | awk -F, '$3 == "state" { print $2, $4 }'
}

gone_hint() {
  echo "k8s-lab: $1 no longer exists (deleted outside Pulumi?). Recreate it and what is built on it with" >&2
  echo "           pulumi up --replace <URN>   (find it with: pulumi stack --show-urns | grep '$1-vm')" >&2
}

lifecycle() {
  local action=$1 machines running=() name state
  need_vagrant
  unset K8S_LAB_NODES
  machines=$(recorded_machines)
  [ -n "$machines" ] || die "no lab machines recorded in $VAGRANT_DOTFILE_PATH; create them with ./lab up"
  case $action in
    status)
      vagrant status
      while read -r name state; do
        [ "$state" != not_created ] || gone_hint "$name"
      done < <(machine_states)
      ;;
    stop)
      vagrant halt
      ;;
    start)
      # Boot what exists; a machine that is gone must be rebuilt through Pulumi, not booted bare.
      while read -r name state; do
        if [ "$state" = not_created ]; then
          gone_hint "$name"
        else
          running+=("$name")
        fi
      done < <(machine_states)
      [ ${#running[@]} -eq 0 ] || vagrant up --no-provision "${running[@]}"
      echo "k8s-lab: machines started; the nodes turn Ready within a minute or two (kubectl get nodes)" >&2
      ;;
  esac
}

action=${1:-}
[ $# -gt 0 ] && shift
case $action in
  box) box "${1:?box name}" "${2:?box version}" ;;
  up) up "${1:?node name}" ;;
  destroy) destroy "${1:?node name}" ;;
  run) run_script "${1:?node name}" "${2:?script}" ;;
  join) join_worker "${1:?control-plane name}" "${2:?worker name}" ;;
  leave) leave "${1:?control-plane name}" "${2:?worker name}" ;;
  kubeconfig) read_kubeconfig "${1:?control-plane name}" "${2:?API server URL}" ;;
  stop | start | status) lifecycle "$action" ;;
  ssh)
    need_vagrant
    unset K8S_LAB_NODES
    exec vagrant ssh "${1:?node name}"
    ;;
  *) die "unknown action '$action' (box, up, destroy, run, join, leave, kubeconfig, stop, start, status, ssh)" ;;
esac
