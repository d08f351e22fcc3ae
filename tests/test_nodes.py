"""Real nodes: `up` brings up a kubeadm cluster on docker nodes, and `curl http://app.lab.local` answers.

Everything below the API server runs for real here: Vagrant's docker provider creates the node
containers (systemd as PID 1, from scripts/node-image.sh's file system), node preparation installs
kubeadm, the kubelet, containerd, runc and the CNI plugins from the offline bundle and imports its
images, kubeadm initialises and joins, flannel and kube-proxy carry the traffic, MetalLB's
controller assigns 192.168.56.200 and its **speaker answers ARP** for it, Traefik serves the demo
app, and the self-check's curl passes. Every binary and image was built from upstream source on
this machine (tools/nodes/tier.py); nothing is a stand-in.

Everything runs inside a network namespace this test creates: its own dockerd (and its node
containers), the lab's 192.168.56.0/24 network as a docker network whose gateway, .1, is the
"laptop", and every pulumi, vagrant, curl and kubectl. The namespace has no route anywhere else.

What the tier uses instead of what a user has: Traefik instead of ingress-nginx (whose nginx needs
OpenResty, not buildable here) and agnhost's serve-hostname as the demo's image (whoami's module is
not served here); both are stack settings a user can choose too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tools.testbed.netns import LoopbackNetns
from tools.nodes import tier
from tools.nodes.dockerd import Dockerd
from tools.project import REFERENCE, Project

pytestmark = [pytest.mark.nodes, pytest.mark.xdist_group("nodes")]

for tool, why in (
    ("pulumi", "the Pulumi CLI (tools/build-pulumi-toolchain.sh builds it; .ci/run does)"),
    ("vagrant", "Vagrant (apt-get install vagrant)"),
    ("dockerd", "Docker's daemon (apt-get install docker.io)"),
    ("docker", "the docker CLI (apt-get install docker.io)"),
    ("unshare", "unshare (util-linux)"),
    ("ip", "ip (iproute2)"),
    ("curl", "curl"),
):
    if shutil.which(tool) is None:
        pytest.skip(f"the node tier needs {why}", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("the node tier needs root (network namespaces, dockerd)", allow_module_level=True)
if not (REFERENCE / "traefik").is_dir():
    pytest.skip(f"the Traefik chart comes from {REFERENCE}, which is not here", allow_module_level=True)
if tier.missing():
    pytest.skip(
        "the node software and its bundle are not built: python3 -m tools.nodes.tier builds them (.ci/run does)",
        allow_module_level=True,
    )

HOSTNAME = "app.lab.local"
NODES = {"k8s-cp": "192.168.56.10", "k8s-w1": "192.168.56.11", "k8s-w2": "192.168.56.12"}


class Lab:
    """The tier's running lab: its namespace, its docker, its project, and what `up` printed."""

    def __init__(self, root: Path):
        self.root = root
        self.netns = LoopbackNetns()
        self.docker = Dockerd(self.netns, root / "docker")
        self.project = Project(root)
        self.project.env.update(self.docker.env)
        self.project.env["VAGRANT_HOME"] = str(root / "vagrant.d")
        self.project.env["VAGRANT_CHECKPOINT_DISABLE"] = "1"
        self.project.env["PULUMI_DEBUG_COMMANDS"] = "true"  # for --event-log
        self.timings: dict[str, float] = {}
        self.figures: dict[str, float] = {}

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        with self.netns.inside():
            return self.project.pulumi(*args, check=check)

    def run(self, *argv: str, check: bool = True, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        with self.netns.inside():
            result = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, env={**self.project.env, **(env or {})}
            )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def kubectl(self, *args: str) -> str:
        return self.run(self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args).stdout

    def objects(self, *args: str) -> list[dict]:
        return json.loads(self.kubectl("get", *args, "-o", "json"))["items"]

    def wait_until_announced(self, limit: float = 300) -> None:
        """Every node Ready and the ingress IP announced by a running speaker (after a restart)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            nodes = self.objects("nodes")
            ready = all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes)
            speakers = [p for p in self.objects("pods", "-n", "metallb-system", "-l", "component=speaker") if p["status"].get("phase") == "Running"]
            if ready and len(speakers) == len(nodes):
                return
            time.sleep(2)
        raise AssertionError("the lab did not come back: nodes not Ready or speakers not running")

    def container(self, node: str) -> str:
        (name,) = [n for n in self.docker.docker("ps", "-a", "--format", "{{.Names}}").stdout.split() if n.endswith(f"_{node}")]
        return name


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("nodes")
    lab = Lab(root)
    bundle = tier.bundle_dir()
    try:
        lab.docker.start()
        (rootfs,) = [p for p in (bundle / "node-image").glob("*.tar")]
        started = time.monotonic()
        lab.run("bash", str(lab.project.dir / "scripts/node-image.sh"), "import", str(rootfs), "k8s-lab/node:bookworm", timeout=600)
        lab.timings["node image import"] = time.monotonic() - started
        lab.project.stack(tier.STACK, tier.stack_config(bundle))
        started = time.monotonic()
        lab.up = lab.pulumi("up", "--yes", "--skip-preview", "--stack", tier.STACK, "--event-log", str(root / "up.jsonl"))
        lab.timings["up"] = time.monotonic() - started
        outputs = json.loads(lab.pulumi("stack", "output", "--json", "--show-secrets", "--stack", tier.STACK).stdout)
        lab.outputs = outputs
        lab.kubeconfig = root / "kubeconfig"
        lab.kubeconfig.write_text(outputs["kubeconfig"])
        # The kubectl the nodes got, from the bundle.
        (lab.kubectl_bin,) = [str(p) for p in bundle.glob("files/dl.k8s.io/release/*/bin/linux/*/kubectl")]
        yield lab
    finally:
        _keep_figures(lab)
        try:
            if (lab.project.dir / f"Pulumi.{tier.STACK}.yaml").exists():
                lab.pulumi("destroy", "--yes", "--skip-preview", "--stack", tier.STACK, check=False)
        finally:
            lab.docker.stop()
            lab.netns.close()


def _keep_figures(lab: Lab) -> None:
    """What bench/run.py reports of the last run: its event log and its figures."""
    last = tier.tier_dir() / "last-run"
    last.mkdir(parents=True, exist_ok=True)
    if (lab.root / "up.jsonl").exists():
        shutil.copyfile(lab.root / "up.jsonl", last / "up.jsonl")
    (last / "figures.json").write_text(json.dumps({**lab.timings, **lab.figures}, indent=1) + "\n")


def test_up_ends_with_a_passing_self_check(lab):
    out = lab.up.stdout
    assert f"self-check ok: http://{HOSTNAME} -> HTTP 200 through {tier.INGRESS_IP}:80" in out
    assert f"self-check ok: https://{HOSTNAME} -> HTTP 200 through {tier.INGRESS_IP}:443, certificate from the lab CA" in out
    assert f"self-check ok: {HOSTNAME} resolves to {tier.INGRESS_IP} through the lab's DNS server {tier.DNS_IP}" in out
    assert lab.outputs["ingress_ip"] == tier.INGRESS_IP


def test_the_whole_lab_fits_in_a_laptops_memory(lab):
    # What the three nodes use with the lab up (every process in them, pods included).
    usage = lab.docker.docker("stats", "--no-stream", "--format", "{{.MemUsage}}").stdout.split("\n")
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    total = 0.0
    for line in filter(None, usage):
        used = line.split("/")[0].strip()
        number, unit = re.match(r"([0-9.]+)\s*([KMG]iB)", used).groups()
        total += float(number) * units[unit]
    lab.figures["memory of the three nodes (MiB)"] = round(total)
    assert 0 < total < 6 * 1024  # the docs' 12 GB is for three 4 GB VMs; containers use what they need


def test_every_node_is_ready(lab):
    nodes = {n["metadata"]["name"]: n for n in lab.objects("nodes")}
    assert set(nodes) == set(NODES)
    for name, node in nodes.items():
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", (name, ready)
        internal = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        assert internal == NODES[name]  # the host-only IP, not docker's eth0


def _demo_pods(lab) -> set[str]:
    return {p["metadata"]["name"] for p in lab.objects("pods", "-n", "demo")}


def test_http_from_the_laptop_is_answered_by_a_demo_pod(lab):
    answer = lab.run("curl", "-sS", "--max-time", "10", "--resolve", f"{HOSTNAME}:80:{tier.INGRESS_IP}", f"http://{HOSTNAME}/").stdout
    assert answer in _demo_pods(lab)


def test_https_from_the_laptop_chains_to_the_lab_ca(lab):
    ca = lab.root / "ca.crt"
    ca.write_text(lab.outputs["ca_certificate"])
    answer = lab.run(
        "curl", "-sS", "--max-time", "10", "--cacert", str(ca), "--resolve", f"{HOSTNAME}:443:{tier.INGRESS_IP}", f"https://{HOSTNAME}/"
    ).stdout
    assert answer in _demo_pods(lab)


def test_the_arp_answer_comes_from_the_node_metallb_names(lab):
    (status,) = [s for s in lab.objects("servicel2statuses.metallb.io", "-n", "metallb-system") if s["status"]["serviceName"] == "traefik"]
    node = status["status"]["node"]
    assert node in ("k8s-w1", "k8s-w2")  # never the control plane (kubeadm's exclusion label)
    mac = lab.docker.docker("exec", lab.container(node), "cat", "/sys/class/net/eth1/address").stdout.strip()
    lab.run("curl", "-sS", "--max-time", "10", "-o", "/dev/null", f"http://{tier.INGRESS_IP}/", check=False)
    neighbour = lab.run("ip", "neigh", "show", tier.INGRESS_IP).stdout
    assert f"lladdr {mac}" in neighbour, (node, mac, neighbour)


def test_each_worker_runs_a_controller_a_demo_and_a_dns_pod(lab):
    # One of each per worker: a worker that stops leaves the other serving all three (without the
    # spread both replicas may share a worker, and nothing answers until Kubernetes evicts them).
    for namespace in ("traefik", "demo", "lab-dns"):
        pods = [p for p in lab.objects("pods", "-n", namespace) if p["status"].get("phase") == "Running"]
        assert sorted(p["spec"]["nodeName"] for p in pods) == ["k8s-w1", "k8s-w2"], namespace


def test_the_lab_dns_answers_with_the_ingress_ip(lab):
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [tier.DNS_IP]
    with lab.netns.inside():
        answer = resolver.resolve(HOSTNAME, "A", lifetime=10)
    assert [r.address for r in answer] == [tier.INGRESS_IP]


def test_a_second_up_runs_no_command(lab):
    log = lab.root / "second.jsonl"
    lab.pulumi("up", "--yes", "--skip-preview", "--stack", tier.STACK, "--event-log", str(log))
    steps = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    ops = [e["resOutputsEvent"]["metadata"]["op"] for e in steps if "resOutputsEvent" in e]
    assert set(ops) <= {"same"}, ops


def _announcing(lab) -> str:
    (status,) = [s for s in lab.objects("servicel2statuses.metallb.io", "-n", "metallb-system") if s["status"]["serviceName"] == "traefik"]
    return status["status"]["node"]


def _answered_after(lab, started: float, in_a_row: int, limit: float = 600) -> float:
    """Seconds from ``started`` until the laptop's curl to app.lab.local through .200 is answered by
    a demo pod ``in_a_row`` times in a row (counted from the first of them). Once is the IP answering again;
    ten in a row is every request answered: until the lost node is found NotReady its pods stay
    endpoints, and kube-proxy sends a share of the connections to them."""
    first_of_run, run = 0.0, 0
    while time.monotonic() - started < limit:
        now = time.monotonic()
        # -f: an error page from Traefik (no ready demo pod: 502/503) is no answer.
        result = lab.run(
            "curl", "-fsS", "--max-time", "2", "--resolve", f"{HOSTNAME}:80:{tier.INGRESS_IP}", f"http://{HOSTNAME}/", check=False
        )
        if result.returncode == 0 and result.stdout.strip() in _demo_pods(lab):
            first_of_run, run = (first_of_run if run else now), run + 1
            if run == in_a_row:
                return first_of_run - started
            continue
        run = 0
        time.sleep(0.5)
    raise AssertionError(f"{tier.INGRESS_IP} did not answer {in_a_row} times in a row within {limit:.0f} s")


def _mac(lab, node: str) -> str:
    return lab.docker.docker("exec", lab.container(node), "cat", "/sys/class/net/eth1/address").stdout.strip()


def _laptop_sees(lab) -> str:
    """The worker whose MAC the laptop's ARP entry for the ingress IP holds, freshly asked."""
    lab.run("ip", "neigh", "flush", "to", tier.INGRESS_IP, check=False)
    lab.run("curl", "-sS", "--max-time", "2", "-o", "/dev/null", f"http://{tier.INGRESS_IP}/", check=False)
    neighbour = lab.run("ip", "neigh", "show", tier.INGRESS_IP).stdout
    return next((n for n in ("k8s-w1", "k8s-w2") if f"lladdr {_mac(lab, n)}" in neighbour), "")


def _settled(lab, limit: float = 300) -> str:
    """After a node came back: both workers serve again (every controller and demo pod Ready) and
    the node MetalLB names is the one answering the laptop's ARP (the IP may move back to the
    node that returned; until then the status can name the node it is leaving). Returns it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pods = [p for ns in ("traefik", "demo") for p in lab.objects("pods", "-n", ns)]
        ready = all(any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []) for p in pods)
        if ready and len(pods) == 4 and (node := _announcing(lab)) == _laptop_sees(lab):
            time.sleep(3)
            if _announcing(lab) == node == _laptop_sees(lab):
                return node
        time.sleep(2)
    raise AssertionError("the lab did not settle: pods not Ready, or the announcing node not the one answering ARP")


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_failover_when_the_announcing_node_goes_away(lab, how):
    # `docker stop`: the node shuts down in order, its speaker leaves MetalLB's memberlist;
    # `docker kill`: the node is gone at once, the other speakers must notice.
    lab.wait_until_announced()
    announcing = _settled(lab)
    other = {"k8s-w1": "k8s-w2", "k8s-w2": "k8s-w1"}[announcing]
    started = time.monotonic()
    lab.docker.docker(how, lab.container(announcing))
    try:
        lab.figures[f"failover after docker {how} (s)"] = round(_answered_after(lab, started, in_a_row=1), 1)
        neighbour = lab.run("ip", "neigh", "show", tier.INGRESS_IP).stdout
        assert f"lladdr {_mac(lab, other)}" in neighbour, (announcing, neighbour)
        lab.figures[f"every request answered after docker {how} (s)"] = round(_answered_after(lab, started, in_a_row=10), 1)
    finally:
        lab.docker.docker("start", lab.container(announcing))


def test_destroy_leaves_no_container_network_volume_or_resource(lab):
    lab.pulumi("destroy", "--yes", "--skip-preview", "--stack", tier.STACK)
    assert lab.docker.docker("ps", "-aq").stdout.split() == []
    assert lab.docker.docker("volume", "ls", "-q").stdout.split() == []
    networks = set(lab.docker.docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    assert networks == {"bridge", "host", "none"}
    exported = json.loads(lab.pulumi("stack", "export", "--stack", tier.STACK).stdout)
    assert [r["type"] for r in exported["deployment"].get("resources") or []] == []
