#!/usr/bin/env bash
# Writes the lab's admin kubeconfig (given on stdin) to PATH readable by its owner only, or
# removes it. Safe to re-run: the file is replaced whole, never half-written.
#
#   kubeconfig-file.sh write PATH < kubeconfig
#   kubeconfig-file.sh remove PATH
set -euo pipefail

action=${1:?write or remove}
path=${2:?path of the kubeconfig file}

case $action in
  write)
    mkdir -p "$(dirname "$path")"
    tmp="$path.tmp.$$"
    (umask 077 && cat >"$tmp")
    if [ ! -s "$tmp" ]; then
      rm -f "$tmp"
      echo "k8s-lab: no kubeconfig on stdin; $path left as it was" >&2
      exit 1
    fi
    mv -f "$tmp" "$path"
    echo "k8s-lab: wrote $path; use it with: export KUBECONFIG=$path" >&2
    ;;
  remove)
    rm -f "$path"
    ;;
  *)
    echo "k8s-lab: unknown action '$action' (write or remove)" >&2
    exit 1
    ;;
esac
