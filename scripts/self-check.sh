#!/usr/bin/env bash
# k8s-lab self-check: does every lab hostname answer through the ingress IP, as the laptop sees it?
#
# For each hostname it sends `GET /` to the ingress IP with that Host header (what the browser
# sends once /etc/hosts has the lab's line), retrying until every one answers 2xx/3xx or the
# timeout passes. On failure it names the likely cause from what it saw: no answer at all (the IP
# is not announced, or the laptop has no path to the host-only network), a refused connection
# (the controller is not ready), 404 (the controller has no rule for that host) or 5xx (the app
# behind it is not ready). It reads the laptop's own route and ARP tables; it sends nothing but
# the HTTP requests. Given the lab CA (LAB_CA_CERT) it also requests https://<hostname> through
# the same IP and requires a certificate that chains to that CA and names the host. Given the
# lab's DNS server (LAB_DNS_IP) it also asks it for each hostname and requires the ingress IP.
#
# `pulumi up` runs it whenever what it checks is new (README, Self-check); `./lab check` any time.
#
# Environment:
#   LAB_INGRESS_IP        the ingress IP (required)
#   LAB_HOSTNAMES         space-separated hostnames (required; empty for a lab without apps: then
#                         the ingress IP itself must answer HTTP, any status, as the controller
#                         does for a host it has no rule for)
#   LAB_TIMEOUT_SECONDS   give up after this long (default 300)
#   LAB_RETRY_SECONDS     pause between rounds (default 5)
#   LAB_INGRESS_PORT      HTTP port of the ingress (default 80)
#   LAB_NETWORK_CIDR      the host-only network, for the diagnosis (optional)
#   LAB_CONTROLLER        ingress-nginx or traefik, for the diagnosis (optional)
#   LAB_CA_CERT           the lab CA's certificate (PEM); when set, HTTPS is checked too (optional)
#   LAB_HTTPS_PORT        HTTPS port of the ingress (default 443)
#   LAB_DNS_IP            the lab's DNS server; when set, every hostname must resolve there (optional)
#   LAB_DNS_PORT          its port (default 53)
#   LAB_PYTHON            a Python with dnspython, for the DNS query (default python3)
#
# Exit status: 0 all hostnames answer; 1 some do not (the reason is printed); 2 bad usage or no curl.
set -euo pipefail

ip=${LAB_INGRESS_IP:-}
hostnames=${LAB_HOSTNAMES:-}
timeout=${LAB_TIMEOUT_SECONDS:-300}
retry=${LAB_RETRY_SECONDS:-5}
port=${LAB_INGRESS_PORT:-80}
cidr=${LAB_NETWORK_CIDR:-}
controller=${LAB_CONTROLLER:-the ingress controller}
ca_cert=${LAB_CA_CERT:-}
https_port=${LAB_HTTPS_PORT:-443}
dns_ip=${LAB_DNS_IP:-}
dns_port=${LAB_DNS_PORT:-53}
python=${LAB_PYTHON:-python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage_error() {
  echo "self-check: $*" >&2
  echo "usage: LAB_INGRESS_IP=192.168.56.200 LAB_HOSTNAMES='app.lab.local grafana.lab.local' $0" >&2
  exit 2
}

[ -n "$ip" ] || usage_error "LAB_INGRESS_IP is not set"
[ -n "${LAB_HOSTNAMES+set}" ] || usage_error "LAB_HOSTNAMES is not set (set it empty for a lab without apps)"
read -r -a hosts <<<"$hostnames"
# No app routes: probe the IP itself; the controller's own answer (its 404) shows it serves.
controller_only=""
if [ ${#hosts[@]} -eq 0 ]; then
  controller_only=1
  hosts=("$ip")
fi
[[ $timeout =~ ^[0-9]+$ ]] || usage_error "LAB_TIMEOUT_SECONDS must be a whole number of seconds, not '$timeout'"
[[ $retry =~ ^[0-9]+$ ]] || usage_error "LAB_RETRY_SECONDS must be a whole number of seconds, not '$retry'"

if ! command -v curl >/dev/null 2>&1; then
  echo "self-check: curl is not installed on this machine, so the lab cannot be checked." >&2
  echo "  Install it (Debian/Ubuntu: sudo apt-get install curl; macOS ships it; Fedora: sudo dnf install curl)," >&2
  echo "  or turn the check off: pulumi config set --path self_check.enabled false" >&2
  exit 2
fi

cafile=""
if [ -n "$ca_cert" ]; then
  cafile=$(mktemp)
  trap 'rm -f "$cafile"' EXIT
  printf '%s\n' "$ca_cert" >"$cafile"
fi

# -- the laptop's view of the network (read-only lookups) ----------------------------------------

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# in_cidr 192.168.56.200 192.168.56.0/24
in_cidr() {
  local address=$1 network=${2%/*} bits=${2#*/}
  local mask=$(((0xffffffff << (32 - bits)) & 0xffffffff))
  [ $(($(ip_to_int "$address") & mask)) -eq $(($(ip_to_int "$network") & mask)) ]
}

# The IPv4 addresses of this machine's interfaces, one a line.
local_addresses() {
  if command -v ip >/dev/null 2>&1; then
    ip -o -4 addr show 2>/dev/null | awk '{split($4, a, "/"); print a[1]}'
  elif command -v ifconfig >/dev/null 2>&1; then
    ifconfig 2>/dev/null | awk '$1 == "inet" {sub("addr:", "", $2); print $2}'
  fi
}

# How packets to $1 leave this machine: "local", "gateway", "direct <interface>" or "unknown".
route_to() {
  local out dev
  if command -v ip >/dev/null 2>&1; then
    out=$(ip -o route get "$1" 2>/dev/null) || { echo unknown; return; }
    case "$out" in
      local* | *" dev lo "*) echo local ;;
      *" via "*) echo gateway ;;
      *)
        dev=$(awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}' <<<"$out")
        echo "direct ${dev:-?}"
        ;;
    esac
  elif command -v route >/dev/null 2>&1; then
    out=$(route -n get "$1" 2>/dev/null) || { echo unknown; return; }
    dev=$(awk '$1 == "interface:" {print $2}' <<<"$out")
    if [[ $dev == lo* ]]; then
      echo local
    elif grep -q "gateway:" <<<"$out"; then
      echo gateway
    else
      echo "direct ${dev:-?}"
    fi
  else
    echo unknown
  fi
}

# The MAC address that answered ARP for $1, empty when nobody did (or the tools are missing).
neighbour_mac() {
  local out
  if command -v ip >/dev/null 2>&1; then
    out=$(ip neigh show "$1" 2>/dev/null || true)
    awk '/lladdr/ && !/FAILED|INCOMPLETE/ {for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}' <<<"$out"
  elif command -v arp >/dev/null 2>&1; then
    out=$(arp -n "$1" 2>/dev/null || true)
    awk '/ at / && !/incomplete/ {for (i = 1; i < NF; i++) if ($i == "at") print $(i + 1)}' <<<"$out"
  fi
}

# -- probing ---------------------------------------------------------------------------------------

# result[i] is what http://hosts[i] last gave: "ok 200", "http 404", "refused", "unreachable",
# "timeout" or "error <text>"; tls_result[i] is what https://hosts[i] last gave: the same words
# but "unreachable", or "chain" (the certificate does not chain to the lab CA) or "name" (it does
# not name the host). (Indexed arrays, not associative ones: macOS still ships bash 3.2.)
result=()
tls_result=()

# probe http|https HOST: request / from HOST through the ingress IP once; print what it gave.
probe() {
  local scheme=$1 host=$2 code err status=0 outcome=""
  local -a target
  if [ "$scheme" = https ]; then
    # --resolve: the request goes to the ingress IP with the hostname as SNI and Host, as a
    # browser's would once the name resolves; --cacert: only the lab CA is trusted.
    target=(--cacert "$cafile" --resolve "$host:$https_port:$ip" "https://$host:$https_port/")
  else
    target=(--header "Host: $host" "http://$ip:$port/")
  fi
  err=$(mktemp)
  code=$(curl --silent --show-error --output /dev/null --write-out '%{http_code}' \
    --connect-timeout 3 --max-time 10 "${target[@]}" 2>"$err") || status=$?
  if [ "$status" -eq 0 ]; then
    if [[ $code =~ ^[23] ]] || { [ "$scheme" = http ] && [ -n "$controller_only" ] && [[ $code =~ ^[1-5] ]]; }; then
      outcome="ok $code"
    else
      outcome="http $code"
    fi
  elif [ "$scheme" = http ]; then
    if grep -qiE "no route|unreachable" "$err"; then outcome=unreachable; fi
  elif grep -qiE "subject name|does not match|no alternative" "$err"; then
    outcome=name
  elif [ "$status" -eq 60 ]; then
    outcome=chain
  fi
  if [ -z "$outcome" ]; then
    case "$status" in
      # Newer curl words a refused connection "Couldn't connect to server": exit 7 it is.
      7) outcome=refused ;;
      28) outcome=timeout ;;
      *) outcome="error $(tr '\n' ' ' <"$err")" ;;
    esac
  fi
  rm -f "$err"
  printf '%s\n' "$outcome"
}

# dns_result[i] is what the lab's DNS server said for hosts[i]: "ok" (the ingress IP), "wrong
# <addresses>", "nodata", "timeout", an rcode such as REFUSED, or "error <text>".
dns_result=()

probe_dns() {
  local out line name answer i
  out=$("$python" "$here/dns-query.py" "$dns_ip" "$dns_port" "${hosts[@]}" 2>&1) || {
    for i in "${!hosts[@]}"; do dns_result[i]="error $(tr '\n' ' ' <<<"$out")"; done
    return
  }
  for i in "${!hosts[@]}"; do
    line=$(grep -m1 "^${hosts[$i]} " <<<"$out" || true)
    read -r name answer <<<"$line"
    if [ -z "$name" ]; then
      dns_result[i]="error no answer line"
    elif [[ $answer == ok* ]]; then
      # shellcheck disable=SC2086 # the addresses are words on purpose
      if printf '%s\n' ${answer#ok } | grep -qx "$ip"; then dns_result[i]=ok; else dns_result[i]="wrong ${answer#ok }"; fi
    else
      dns_result[i]=$answer
    fi
  done
}

all_ok() {
  local i
  for i in "${!hosts[@]}"; do
    [[ ${result[$i]:-} == ok* ]] || return 1
    [ -z "$cafile" ] || [[ ${tls_result[$i]:-} == ok* ]] || return 1
    [ -z "$dns_ip" ] || [ "${dns_result[$i]:-}" = ok ] || return 1
  done
}

# -- diagnosis -------------------------------------------------------------------------------------

# Why no HTTP connection reaches $ip:$port, from the laptop's own tables.
connection_cause() {
  local route mac address on_segment=""
  if [ -n "$cidr" ]; then
    if ! in_cidr "$ip" "$cidr"; then
      echo "$ip is not inside the host-only network $cidr: MetalLB hands it out but nothing on the VMs' segment can answer for it. Move the pool (metallb.pools) and ingress.ip inside $cidr."
      return
    fi
    for address in $(local_addresses); do
      if in_cidr "$address" "$cidr"; then
        on_segment=$address
      fi
    done
    if [ -z "$on_segment" ]; then
      echo "this machine has no address on the host-only network $cidr, so it cannot reach the lab: the host-only adapter (VirtualBox: vboxnet0; libvirt: its network) is down or has another range. Start the VMs (vagrant up) or fix the adapter's range."
      return
    fi
  fi
  route=$(route_to "$ip")
  case "$route" in
    gateway)
      echo "packets to $ip leave through your default gateway, not the host-only network: the pool is off the host-only segment, or the host-only adapter is down."
      return
      ;;
    local)
      echo "$ip is an address of this machine itself, and nothing listens on port $port there."
      return
      ;;
  esac
  mac=$(neighbour_mac "$ip")
  if [ -n "$mac" ]; then
    echo "$ip is announced ($mac answered ARP) but no connection reaches $controller on port $port: the controller is not ready (a Service without ready endpoints is refused by kube-proxy), or another machine on the network owns $ip. Check: $not_ready_hint."
  elif [ "${route%% *}" = direct ]; then
    echo "nobody answered ARP for $ip (${route#direct } on this machine): MetalLB has not announced it. $not_announced_hint."
  else
    echo "no connection reaches $ip:$port. Either MetalLB has not announced $ip ($not_announced_hint) or $controller is not ready ($not_ready_hint)."
  fi
}

not_announced_hint="Check that the speakers run on the workers (kubectl -n metallb-system get pods -o wide), that the L2Advertisement's interfaces name the host-only NIC, and that the ingress Service has the IP (kubectl get svc -A | grep LoadBalancer)"
not_ready_hint="kubectl get pods -A | grep -E 'ingress|traefik'"

report_failure() {
  local i host outcome refused=0 silent=0 missing=0 backend=0 other=0
  if [ -n "$controller_only" ]; then
    echo "self-check FAILED after $((SECONDS - start))s (timeout ${timeout}s): the lab has no apps, and $controller does not answer on $ip:$port"
  else
    echo "self-check FAILED after $((SECONDS - start))s (timeout ${timeout}s): not every lab hostname answers through $ip:$port"
  fi
  for i in "${!hosts[@]}"; do
    host=${hosts[$i]}
    outcome=${result[$i]:-untried}
    case "$outcome" in
      ok*) echo "  ok    http://$host -> HTTP ${outcome#ok }" ;;
      "http 404")
        echo "  FAIL  http://$host -> HTTP 404 from the ingress: no rule for this host"
        missing=$((missing + 1))
        ;;
      "http 5"*)
        echo "  FAIL  http://$host -> HTTP ${outcome#http } from the ingress: the app behind it is not ready"
        backend=$((backend + 1))
        ;;
      "http "*)
        echo "  FAIL  http://$host -> HTTP ${outcome#http }"
        other=$((other + 1))
        ;;
      refused)
        echo "  FAIL  http://$host -> connection refused"
        refused=$((refused + 1))
        ;;
      unreachable | timeout)
        echo "  FAIL  http://$host -> no answer ($outcome)"
        silent=$((silent + 1))
        ;;
      *)
        echo "  FAIL  http://$host -> $outcome"
        other=$((other + 1))
        ;;
    esac
  done
  local chain=0 name=0 tls_other=0
  if [ -n "$cafile" ]; then
    for i in "${!hosts[@]}"; do
      host=${hosts[$i]}
      outcome=${tls_result[$i]:-untried}
      case "$outcome" in
        ok*) echo "  ok    https://$host -> HTTP ${outcome#ok }, certificate from the lab CA" ;;
        chain)
          echo "  FAIL  https://$host -> the certificate does not chain to the lab CA"
          chain=$((chain + 1))
          ;;
        name)
          echo "  FAIL  https://$host -> the certificate does not name $host"
          name=$((name + 1))
          ;;
        *)
          echo "  FAIL  https://$host -> $outcome"
          tls_other=$((tls_other + 1))
          ;;
      esac
    done
  fi
  local dns_silent=0 dns_wrong=0 dns_other=0
  if [ -n "$dns_ip" ]; then
    for i in "${!hosts[@]}"; do
      host=${hosts[$i]}
      outcome=${dns_result[$i]:-untried}
      case "$outcome" in
        ok) echo "  ok    $host resolves to $ip through the lab's DNS server $dns_ip" ;;
        wrong*)
          echo "  FAIL  $host resolves to ${outcome#wrong } through $dns_ip, not to $ip"
          dns_wrong=$((dns_wrong + 1))
          ;;
        timeout | error*)
          echo "  FAIL  $host: no answer from the DNS server $dns_ip ($outcome)"
          dns_silent=$((dns_silent + 1))
          ;;
        *)
          echo "  FAIL  $host: the DNS server $dns_ip answers $outcome"
          dns_other=$((dns_other + 1))
          ;;
      esac
    done
  fi
  echo
  if [ $((silent + refused)) -gt 0 ]; then
    echo "Likely cause: $(connection_cause)"
  elif [ "$missing" -gt 0 ]; then
    echo "Likely cause: $controller answers on $ip but has no rule for the failing hostnames: their Ingress is missing, names another class, or was not loaded yet. Check: kubectl get ingress -A."
  elif [ "$backend" -gt 0 ]; then
    echo "Likely cause: the ingress routes the hostnames, but the apps' pods are not ready yet (HTTP 5xx). Check: kubectl get pods -A | grep -v Running."
  elif [ "$chain" -gt 0 ]; then
    echo "Likely cause: $controller answers HTTPS with a certificate the lab CA did not sign, usually its own default one: the lab-tls Secret is missing beside the route (the app's namespace for an Ingress, the Gateway's namespace for the Gateway API). Check: kubectl get secret -A | grep lab-tls."
  elif [ "$name" -gt 0 ]; then
    echo "Likely cause: the lab's certificate names *.<domain> and <domain> only; a hostname outside the lab's domain, or two labels below it, is not covered."
  elif [ "$dns_silent" -gt 0 ]; then
    echo "Likely cause: nothing answers DNS on $dns_ip:$dns_port: MetalLB has not announced dns.ip (is its pool in an L2 advertisement?) or the DNS server's pod is not ready. Check: kubectl -n lab-dns get pods,svc."
  elif [ "$dns_wrong" -gt 0 ]; then
    echo "Likely cause: the lab's DNS server hands out another address than the ingress IP: it still serves an older configuration. Check: kubectl -n lab-dns get configmap lab-dns -o yaml."
  elif [ "$dns_other" -gt 0 ]; then
    echo "Likely cause: the DNS server on $dns_ip does not serve these names: they are outside the lab's domain, or another server owns $dns_ip."
  elif [ "$tls_other" -gt 0 ]; then
    echo "Likely cause: HTTP works but HTTPS does not: $controller does not serve port $https_port on $ip. Try: curl -v --cacert <lab CA> --resolve <hostname>:$https_port:$ip https://<hostname>/"
  else
    echo "Likely cause: unexpected answers (above); try: curl -v -H 'Host: <hostname>' http://$ip:$port/"
  fi
  echo "Re-run this check with ./lab check once fixed."
}

# -- main ------------------------------------------------------------------------------------------

start=$SECONDS
while :; do
  for i in "${!hosts[@]}"; do
    [[ ${result[$i]:-} == ok* ]] || result[i]=$(probe http "${hosts[$i]}")
    [ -z "$cafile" ] || [[ ${tls_result[$i]:-} == ok* ]] || tls_result[i]=$(probe https "${hosts[$i]}")
  done
  [ -z "$dns_ip" ] || probe_dns
  if all_ok; then
    if [ -n "$controller_only" ]; then
      echo "self-check ok: the lab has no apps; $controller answers on $ip:$port (HTTP ${result[0]#ok })"
      exit 0
    fi
    for i in "${!hosts[@]}"; do
      echo "self-check ok: http://${hosts[$i]} -> HTTP ${result[$i]#ok } through $ip:$port"
      [ -z "$cafile" ] || echo "self-check ok: https://${hosts[$i]} -> HTTP ${tls_result[$i]#ok } through $ip:$https_port, certificate from the lab CA"
      [ -z "$dns_ip" ] || echo "self-check ok: ${hosts[$i]} resolves to $ip through the lab's DNS server $dns_ip"
    done
    exit 0
  fi
  if [ $((SECONDS - start + retry)) -ge "$timeout" ]; then
    report_failure
    exit 1
  fi
  sleep "$retry"
done
