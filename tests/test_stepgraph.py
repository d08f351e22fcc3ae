"""The bring-up graph on small hand-made runs: what waits for what, chains, phases, pictures."""

from __future__ import annotations

import pytest

from components import config as lab_config
from components import kubeadm_steps
from harness import Registered, Run, stack_config
from tools import stepgraph as sg


class FakeRun:
    """Builds a Run the way the harness records one: URNs, parents, expanded dependencies."""

    def __init__(self, stack: str = "lab"):
        self.stack = stack
        self.resources: list[Registered] = []

    def _add(self, type_, name, *, custom, parent=None, depends_on=(), provider=None, inputs=None) -> Registered:
        parent_urn = parent.urn if parent else f"urn:pulumi:{self.stack}::k8s-lab::pulumi:pulumi:Stack::k8s-lab-{self.stack}"
        qualified = f"{parent.urn.split('::')[2]}${type_}" if parent else type_
        r = Registered(
            type=type_,
            name=name,
            urn=f"urn:pulumi:{self.stack}::k8s-lab::{qualified}::{name}",
            parent=parent_urn,
            custom=custom,
            inputs=inputs or {},
            secret_inputs=set(),
            dependencies={d.urn for d in depends_on},
            property_dependencies={},
            provider=f"{provider.urn}::{provider.name}-id" if provider else "",
            options={},
        )
        self.resources.append(r)
        return r

    def component(self, name, type_="k8s-lab:test:Part", **kw) -> Registered:
        return self._add(type_, name, custom=False, **kw)

    def command(self, name, **kw) -> Registered:
        return self._add("command:local:Command", name, custom=True, **kw)

    def k8s(self, type_, name, **kw) -> Registered:
        return self._add(f"kubernetes:{type_}", name, custom=True, **kw)

    def provider(self, name, **kw) -> Registered:
        return self._add("pulumi:providers:kubernetes", name, custom=True, **kw)

    def remote(self, type_, name, **kw) -> Registered:
        return self._add(f"kubernetes:{type_}", name, custom=False, **kw)

    def run(self) -> Run:
        return Run(self.resources, {}, set(), [])


def names(steps) -> list[str]:
    return [s.name for s in steps]


def lab_cfg(**overrides) -> lab_config.LabConfig:
    raw = {k.split(":", 1)[1]: v for k, v in stack_config("lab").items() if k.startswith("k8s-lab:")}
    for key, value in overrides.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return lab_config.parse(raw, stack="lab")


# -- what waits for what --


def test_a_dependency_on_a_component_waits_for_all_its_members_nested_too():
    fake = FakeRun()
    part = fake.component("part")
    inner = fake.component("inner", parent=part)
    a = fake.command("a", parent=part)
    b = fake.command("b", parent=inner)
    later = fake.command("later", depends_on=[part])
    graph = sg.build(fake.run())
    assert graph.waits_for(later.urn, a.urn) and graph.waits_for(later.urn, b.urn)
    assert not graph.waits_for(a.urn, b.urn)


def test_a_recorded_run_and_its_step_graph_agree_on_what_waits_for_what():
    fake = FakeRun()
    provider = fake.provider("provider", depends_on=[fake.command("cni")])
    part = fake.component("part", depends_on=[fake.command("box")])
    inner = fake.component("inner", parent=part)
    fake.k8s("core/v1:Namespace", "ns", parent=inner, provider=provider)
    fake.command("later", depends_on=[part])
    run = fake.run()
    graph = sg.build(run)
    steps = [r for r in run.resources if r.urn in graph.steps]
    for later in steps:
        for earlier in steps:
            assert run.waits_for(later, earlier) == graph.waits_for(later.urn, earlier.urn), (later.name, earlier.name)
    assert run.waits_for(run.named("later"), part) and not run.waits_for(run.named("box"), part)


def test_children_of_a_component_inherit_its_depends_on_even_nested():
    fake = FakeRun()
    first = fake.command("first")
    part = fake.component("part", depends_on=[first])
    inner = fake.component("inner", parent=part)
    child = fake.command("child", parent=inner)
    free = fake.command("free", parent=fake.component("other"))
    graph = sg.build(fake.run())
    assert graph.waits_for(child.urn, first.urn)
    assert not graph.waits_for(free.urn, first.urn)


def test_a_kubernetes_object_waits_for_what_its_provider_waits_for():
    fake = FakeRun()
    kubeconfig = fake.command("k8s-cp-kubeconfig")
    provider = fake.provider("lab-provider", depends_on=[kubeconfig])
    namespace = fake.k8s("core/v1:Namespace", "lab-ingress-ns", provider=provider)
    graph = sg.build(fake.run())
    assert graph.waits_for(namespace.urn, kubeconfig.urn)
    assert graph.waits[namespace.urn] == {kubeconfig.urn}


def test_steps_exclude_components_and_providers_but_include_provider_side_components():
    fake = FakeRun()
    part = fake.component("lab-metallb", "k8s-lab:metallb:MetalLB")
    fake.provider("lab-provider")
    install = fake.remote("yaml/v2:ConfigFile", "lab-metallb-install", parent=part)
    graph = sg.build(fake.run())
    assert list(graph.steps) == [install.urn]
    assert graph.steps[install.urn].component == part.urn


def test_waits_implied_by_others_are_not_kept_as_direct_edges():
    fake = FakeRun()
    a = fake.command("a")
    b = fake.command("b", depends_on=[a])
    c = fake.command("c", depends_on=[a, b])
    graph = sg.build(fake.run())
    assert graph.waits[c.urn] == {b.urn}
    assert graph.waits_for(c.urn, a.urn)


# -- chains --


def test_the_longest_chain_counts_steps_and_ignores_parallel_branches():
    fake = FakeRun()
    root = fake.command("root")
    slow = [fake.command("slow-1", depends_on=[root])]
    slow.append(fake.command("slow-2", depends_on=[slow[-1]]))
    fake.command("fast", depends_on=[root])
    end = fake.command("end", depends_on=[slow[-1]])
    graph = sg.build(fake.run())
    assert names(sg.longest_chain(graph)) == ["root", "slow-1", "slow-2", "end"]
    assert len(graph.steps) == 5
    assert end.urn in graph.steps


def test_steps_of_one_stage_count_once_and_reading_the_kubeconfig_counts_zero():
    fake = FakeRun()
    init = fake.command("k8s-cp-init")
    kubeconfig = fake.command("k8s-cp-kubeconfig", depends_on=[init])
    provider = fake.provider("lab-provider", depends_on=[kubeconfig])
    ns = fake.k8s("core/v1:Namespace", "lab-ingress-ns", provider=provider)
    fake.remote("yaml/v2:ConfigFile", "lab-ingress-nginx", provider=provider, depends_on=[ns])
    graph = sg.build(fake.run(), lab_cfg())
    chain = sg.longest_chain(graph)
    assert names(chain) == ["k8s-cp-init", "k8s-cp-kubeconfig", "lab-ingress-ns", "lab-ingress-nginx"]
    assert sg.stages_along(chain) == [("init", None), ("kubeconfig", None), ("ingress", None)]
    assert sg.stage_length(sg.stages_along(chain)) == 2


def test_a_chain_that_leaves_a_stage_and_comes_back_counts_it_twice():
    fake = FakeRun()
    a = fake.command("lab-ingress-a")
    b = fake.command("lab-metallb-install", depends_on=[a])
    fake.command("lab-ingress-b", depends_on=[b])
    graph = sg.build(fake.run())
    assert sg.stage_length(sg.stages_along(sg.longest_chain(graph, by="stages"))) == 3


# -- phases --


@pytest.mark.parametrize(
    "type_,name,phase,key",
    [
        ("command:local:Command", "k8s-cp-vm", "vm", "k8s-cp"),
        ("command:local:Command", "k8s-w1-prep", "prep", "k8s-w1"),
        ("command:local:Command", "k8s-cp-init", "init", None),
        ("command:local:Command", "k8s-cp-kubeconfig", "kubeconfig", None),
        ("command:local:Command", "lab-cni", "cni", None),
        ("command:local:Command", "k8s-w2-join", "join", "k8s-w2"),
        ("kubernetes:yaml/v2:ConfigFile", "lab-metallb-install", "metallb", None),
        ("kubernetes:metallb.io/v1beta1:IPAddressPool", "lab-metallb-lab-pool", "pool", "lab-pool"),
        ("kubernetes:metallb.io/v1beta1:L2Advertisement", "lab-metallb-lab-l2", "l2", "lab-l2"),
        ("kubernetes:yaml/v2:ConfigFile", "lab-ingress-nginx", "ingress", None),
        ("kubernetes:helm.sh/v4:Chart", "lab-traefik", "ingress", None),
        ("kubernetes:networking.k8s.io/v1:Ingress", "lab-apps-demo-ingress", "route", "demo"),
        ("kubernetes:core/v1:Service", "lab-apps-demo-service", "apps", "demo"),
        ("kubernetes:yaml/v2:ConfigFile", "lab-online-boutique", "apps", "online-boutique"),
        ("command:local:Command", "lab-selfcheck", "selfcheck", None),
        ("command:local:Command", "lab-self-check", "selfcheck", None),
        ("command:local:Command", "lab-token", "unclassified", None),
    ],
)
def test_steps_are_classified_by_type_and_name(type_, name, phase, key):
    names_ = sg.Names.of(lab_cfg())
    assert sg.classify(type_, name, ignore=("lab", *names_.nodes)) == phase
    assert sg.instance_of(phase, name, {}, names_) == key


def test_node_and_stack_names_are_not_read_as_phases():
    assert sg.classify("command:local:Command", "demo-cp-vm", ignore=("demo-cp",)) == "vm"
    assert sg.classify("command:local:Command", "demo-ingress-nginx", ignore=("demo",)) == "ingress"
    assert sg.classify("command:local:Command", "lab-demo-cp-join", ignore=("lab", "demo-cp")) == "join"


def test_the_ingress_load_balancer_service_is_the_ingress_ip_step_and_an_app_one_is_not():
    lb = {"spec": {"type": "LoadBalancer"}}
    assert sg.classify("kubernetes:core/v1:Service", "lab-ingress-nginx-controller", inputs=lb) == "ingress-ip"
    assert sg.classify("kubernetes:core/v1:Service", "lab-ingress-nginx-admission", inputs={"spec": {"type": "ClusterIP"}}) == "ingress"
    assert sg.classify("kubernetes:core/v1:Service", "lab-boutique-frontend-external", inputs=lb) == "apps"


def test_a_step_named_vaguely_takes_the_phase_of_its_component():
    ancestors = [("k8s-lab:selfcheck:SelfCheck", "lab-check"), ("k8s-lab:apps:Apps", "lab-apps")]
    assert sg.classify("command:local:Command", "lab-curl-job", ancestors) == "selfcheck"
    assert sg.classify("kubernetes:core/v1:Namespace", "lab-ns", [("k8s-lab:metallb:MetalLB", "lab")]) == "metallb"


def test_unclassified_steps_are_listed_not_guessed():
    fake = FakeRun()
    fake.command("lab-mystery")
    graph = sg.build(fake.run(), lab_cfg())
    assert names(graph.unclassified) == ["lab-mystery"]
    assert sg.report(graph, lab_cfg()).unclassified == graph.unclassified


# -- the inherent chain, from the configuration --


def test_the_lab_needs_ten_stages_and_the_worker_vms_boot_while_the_control_plane_comes_up():
    expected = (
        "box -> vm(k8s-cp) -> prep(k8s-cp) -> init -> cni -> metallb -> pool(lab-pool) -> ingress-ip"
        " -> route(demo) -> selfcheck"
    )
    for provider in ("virtualbox", "libvirt"):
        chain = sg.inherent_chain(lab_cfg(vagrant={"provider": provider}))
        assert sg.format_stages(chain) == expected
        assert sg.stage_length(chain) == 10


def seven_nodes(provider: str, interface=None) -> lab_config.LabConfig:
    # The workers first, to show the control plane boots first wherever it is listed.
    nodes = [{"name": f"k8s-w{i}", "role": "worker", "ip": f"192.168.56.{10 + i}"} for i in range(1, 7)]
    nodes.append({"name": "k8s-cp", "role": "control-plane", "ip": "192.168.56.10"})
    raw = {k.split(":", 1)[1]: v for k, v in stack_config("lab").items() if k.startswith("k8s-lab:")}
    raw.update(nodes=nodes, vagrant={"provider": provider}, network={"cidr": "192.168.56.0/24", "interface": interface})
    return lab_config.parse(raw, stack="lab")


def test_virtualbox_boots_vms_one_after_another_and_libvirt_at_once():
    vbox = sg.inherent_chain(seven_nodes("virtualbox"))
    # The ingress controller spreads a pod per worker, so it needs the last one joined: with VMs
    # booted one at a time, the last worker's boot, preparation and join lead to it.
    assert sg.format_stages(vbox) == "box -> " + " -> ".join(
        ["vm(k8s-cp)"] + [f"vm(k8s-w{i})" for i in range(1, 7)] + ["prep(k8s-w6)", "join(k8s-w6)", "ingress", "route(demo)", "selfcheck"]
    )
    assert sg.stage_length(sg.inherent_chain(seven_nodes("virtualbox", interface="eth1"))) == 13
    req = sg.inherent_requirements(seven_nodes("libvirt"))
    assert all(req[("vm", f"k8s-w{i}")] == {("box", None), ("vm", "k8s-cp")} for i in range(1, 7))
    assert sg.stage_length(sg.inherent_chain(seven_nodes("libvirt"))) == 10


def test_metallb_needs_the_cni_and_the_first_worker_and_what_spreads_every_worker():
    req = sg.inherent_requirements(lab_cfg())
    assert req[("metallb", None)] == {("kubeconfig", None), ("cni", None), ("join", "k8s-w1")}
    # The ingress controller and the demo run a pod per worker: the scheduler spreads them only
    # over the workers there when it places them.
    every_worker = {("join", "k8s-w1"), ("join", "k8s-w2")}
    assert req[("ingress", None)] == {("kubeconfig", None), ("cni", None)} | every_worker
    # An app also holds the lab's certificate beside its Ingress; the certificate needs nothing.
    assert req[("apps", "demo")] == {("kubeconfig", None), ("cni", None), ("tls", None)} | every_worker
    argocd = sg.inherent_requirements(lab_cfg(apps=["demo", "argocd"]))
    assert argocd[("apps", "argocd")] == {("kubeconfig", None), ("cni", None), ("join", "k8s-w1"), ("tls", None)}
    assert req[("tls", None)] == set()
    gateway = sg.inherent_requirements(lab_cfg(ingress={"controller": "traefik", "api": "gateway"}))
    assert ("tls", None) in gateway[("ingress", None)] and ("tls", None) not in gateway[("apps", "demo")]
    assert req[("join", "k8s-w2")] == {("init", None), ("prep", "k8s-w2")}
    assert req[("pool", "lab-pool")] == {("kubeconfig", None), ("metallb", None)}
    preps = {("prep", n) for n in ("k8s-cp", "k8s-w1", "k8s-w2")}
    assert req[("l2", "lab-l2")] == {("kubeconfig", None), ("metallb", None)} | preps
    assert req[("route", "demo")] == {("kubeconfig", None), ("ingress", None), ("ingress-ip", None), ("apps", "demo")}


def test_without_a_self_check_or_a_separate_ingress_ip_step_the_chain_is_shorter():
    cfg = lab_cfg(self_check={"enabled": False}, vagrant={"provider": "libvirt"})
    assert sg.stage_length(sg.inherent_chain(cfg)) == 9
    present = set(sg.PHASES) - {"ingress-ip", "prep", "box"}
    assert sg.format_stages(sg.inherent_chain(lab_cfg(), present)) == (
        "vm(k8s-cp) -> init -> cni -> metallb -> pool(lab-pool) -> route(demo) -> selfcheck"
    )


# -- a lab-shaped program against the target --


def lab_program(provider="virtualbox", *, ingress_waits_for_metallb=False, joins_wait_for_cni=False, provider_waits_for_joins=False):
    """The shape the lab's components take (HTTP only), with optional mistakes."""
    cfg = lab_cfg(vagrant={"provider": provider}, tls={"enabled": False})
    fake = FakeRun()
    cluster = fake.component("lab", "k8s-lab:kubeadm:KubeadmCluster")
    box = fake.command("lab-box", parent=cluster)
    vms, preps, previous = {}, {}, None
    for node in cfg.nodes:  # the control plane first, then the workers: in turn, or together
        vm = fake.component(f"lab-{node.name}", "k8s-lab:vm:VirtualMachine", parent=cluster)
        vms[node.name] = fake.command(f"lab-{node.name}-vm", parent=vm, depends_on=[box] + ([previous] if previous else []))
        if provider == "virtualbox" or previous is None:
            previous = vms[node.name]
    for node in cfg.nodes:
        preps[node.name] = fake.command(f"lab-{node.name}-prepare", parent=cluster, depends_on=[vms[node.name]])
    init = fake.command("lab-init", parent=cluster, depends_on=[preps["k8s-cp"]])
    cni = fake.command("lab-cni", parent=cluster, depends_on=[init])
    joins = [
        fake.command(f"lab-{w.name}-join", parent=cluster, depends_on=[init, preps[w.name]] + ([cni] if joins_wait_for_cni else []))
        for w in cfg.workers
    ]
    kubeconfig = fake.command("lab-kubeconfig", parent=cluster, depends_on=[init])
    provider_ = fake.provider("lab-provider", parent=cluster, depends_on=[kubeconfig, cni] + (joins if provider_waits_for_joins else []))
    metallb = fake.component("lab-metallb", "k8s-lab:metallb:MetalLB")
    install = fake.remote("yaml/v2:ConfigFile", "lab-metallb-install", parent=metallb, provider=provider_)
    pool = fake.k8s("metallb.io/v1beta1:IPAddressPool", "lab-pool", parent=metallb, provider=provider_, depends_on=[install])
    fake.k8s("metallb.io/v1beta1:L2Advertisement", "lab-l2", parent=metallb, provider=provider_, depends_on=[install])
    ingress = fake.component("lab-ingress", "k8s-lab:ingress:Ingress", depends_on=[metallb] if ingress_waits_for_metallb else [])
    controller = fake.remote("yaml/v2:ConfigFile", "lab-ingress-install", parent=ingress, provider=provider_)
    service = fake.k8s(
        "core/v1:Service", "lab-ingress-controller", parent=ingress, provider=provider_,
        depends_on=[pool], inputs={"spec": {"type": "LoadBalancer"}},
    )  # fmt: skip
    apps = fake.component("lab-apps", "k8s-lab:apps:Apps")
    app = fake.remote("yaml/v2:ConfigFile", "lab-apps-demo-install", parent=apps, provider=provider_)
    route = fake.k8s("networking.k8s.io/v1:Ingress", "lab-apps-demo-ingress", parent=apps, provider=provider_, depends_on=[controller])
    fake.command("lab-self-check", depends_on=[controller, service, app, route, metallb])
    return fake.run(), cfg


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_a_lab_without_needless_waits_meets_the_inherent_chain(provider):
    run, cfg = lab_program(provider)
    result = sg.report(sg.build(run, cfg), cfg)
    assert result.needless == [] and result.unclassified == [] and result.missing_phases == []
    # The route relies on its await for the ingress IP: the graph is shorter than physics.
    assert (result.chain_stages, result.inherent_length) == (9, 10)
    assert result.meets_target
    box_vms_preps, init_cni_kubeconfig, joins, metallb, ingress, app, check = 7, 3, 2, 3, 2, 2, 1
    assert result.steps == box_vms_preps + init_cni_kubeconfig + joins + metallb + ingress + app + check
    assert len(result.chain) < result.steps


def test_an_ingress_that_waits_for_metallb_is_named():
    run, cfg = lab_program("libvirt", ingress_waits_for_metallb=True)
    result = sg.report(sg.build(run, cfg), cfg)
    needless = {(a.name, b.name) for a, b in result.needless}
    assert {("lab-ingress-install", "lab-pool"), ("lab-ingress-install", "lab-l2")} <= needless
    # The count of stages stays within the inherent one: the ingress stage took the ingress IP's
    # place on the chain. The named waits are what shows the controller's rollout queued behind MetalLB.
    assert result.chain_stages == result.inherent_length and not result.meets_target


def test_joins_that_wait_for_the_cni_are_named():
    run, cfg = lab_program("libvirt", joins_wait_for_cni=True)
    result = sg.report(sg.build(run, cfg), cfg)
    assert {(a.name, b.name) for a, b in result.needless} == {("lab-k8s-w1-join", "lab-cni"), ("lab-k8s-w2-join", "lab-cni")}
    assert not result.meets_target


def test_a_kubeconfig_read_after_every_join_holds_metallb_back_for_the_last_worker():
    run, cfg = lab_program("virtualbox", provider_waits_for_joins=True)
    result = sg.report(sg.build(run, cfg), cfg)
    # The read itself is cheap: what it delays (everything using the provider) is what counts.
    # The ingress controller and the demo wait for every worker anyway (they spread over them).
    assert {(a.name, b.name) for a, b in result.needless} == {("lab-metallb-install", "lab-k8s-w2-join")}
    assert result.chain_stages == 10 and not result.meets_target


def test_phases_the_program_lacks_are_contracted_out_of_the_target():
    run, cfg = lab_program("libvirt")
    run.resources = [r for r in run.resources if not r.name.endswith("-prepare")]
    result = sg.report(sg.build(run, cfg), cfg)
    assert result.missing_phases == ["prep"]
    assert result.inherent_length == sg.stage_length(result.inherent_all_phases) - 1


# -- pictures --


def test_mermaid_draws_components_as_subgraphs_and_marks_the_chain():
    run, cfg = lab_program("libvirt")
    graph = sg.build(run, cfg)
    chain = sg.longest_chain(graph)
    text = sg.to_mermaid(graph, chain)
    assert text.startswith("flowchart LR\n")
    assert 'subgraph c0["lab (KubeadmCluster)"]' in text and '["lab-metallb (MetalLB)"]' in text
    assert text.index('["lab-k8s-cp (VirtualMachine)"]') > text.index('["lab (KubeadmCluster)"]')
    edges = [line.strip() for line in text.splitlines() if "-->" in line]
    assert len(edges) == sum(len(w) for w in graph.waits.values())
    style = next(line for line in text.splitlines() if "linkStyle" in line)
    assert len(style.split()[1].split(",")) == len(chain) - 1
    ids = {s.urn: f"s{i}" for i, s in enumerate(graph.steps.values())}
    assert f"class {','.join(ids[s.urn] for s in chain)} chain" in text


def test_dot_draws_components_as_clusters_and_marks_the_chain():
    run, cfg = lab_program("libvirt")
    graph = sg.build(run, cfg)
    chain = sg.longest_chain(graph)
    text = sg.to_dot(graph, chain, "lab")
    assert text.startswith('digraph "lab" {') and text.rstrip().endswith("}")
    assert text.count("subgraph cluster_") == 3 + 3 + 1  # cluster, its 3 VMs, metallb, ingress, apps
    assert 's0 [label="lab-box\\nbox"' in text  # Graphviz's own line break, not an escaped backslash
    lines = text.splitlines()
    assert sum("->" in line and "penwidth=3" in line for line in lines) == len(chain) - 1
    assert sum("->" not in line and "penwidth=3" in line for line in lines) == len(chain)


def test_an_empty_program_still_draws():
    graph = sg.build(FakeRun().run())
    assert "no steps registered" in sg.to_mermaid(graph)
    assert sg.longest_chain(graph) == []


def test_a_step_takes_its_phase_from_its_component_whatever_its_name():
    assert sg.classify("command:local:Command", "lab-ingress-x", [("k8s-lab:vm:VirtualMachine", "lab-k8s-cp")]) == "vm"
    assert sg.classify("kubernetes:core/v1:Secret", "lab-dns-tls", [("k8s-lab:apps:Grafana", "g")]) == "apps"
    grafana = [("k8s-lab:apps:Grafana", "g"), ("k8s-lab:apps:Apps", "a")]
    assert sg.instance_of("apps", "opaque", {}, sg.Names(), grafana) == "grafana"
    lb = {"spec": {"type": "LoadBalancer"}}
    assert sg.classify("kubernetes:core/v1:Service", "s", [("k8s-lab:ingress:Ingress", "i")], lb) == "ingress-ip"
    assert sg.classify("kubernetes:networking.k8s.io/v1:Ingress", "s", [("k8s-lab:ingress:Ingress", "i")]) == "route"


def test_a_kubeadm_step_takes_its_phase_from_its_role_not_from_words_in_its_name():
    cluster = [("k8s-lab:kubeadm:KubeadmCluster", "c1")]
    roles = [("box", "box"), ("init", "init"), ("cni", "cni"), ("kubeconfig", "kubeconfig"), ("kubeconfig-file", "kubeconfig")]
    for role, phase in roles:
        assert sg.classify("command:local:Command", kubeadm_steps.step_name("c1", role), cluster) == phase
    assert sg.classify("command:local:Command", kubeadm_steps.step_name("c1", "join", "init"), cluster) == "join"
    assert sg.classify("command:local:Command", kubeadm_steps.step_name("c1", "prepare", "n-vm"), cluster) == "prep"
    # Named by another hand, a step of the cluster is listed as unclassified, not guessed from "init".
    assert sg.classify("command:local:Command", "other-init", cluster) == "unclassified"
    # A recorded event log still reads the names.
    assert sg.classify("command:local:Command", "other-init", cluster, by_names=True) == "init"


def test_kubeadm_step_names_and_roles_round_trip():
    assert kubeadm_steps.step_name("lab", "join", "k8s-w1") == "lab-k8s-w1-join"
    assert kubeadm_steps.step_role("lab", "lab-k8s-w1-join") == "join"
    assert kubeadm_steps.step_role("lab", "lab-kubeconfig-file") == "kubeconfig-file"
    assert kubeadm_steps.step_role("lab", "lab2-init") is None
    with pytest.raises(ValueError, match="needs node name"):
        kubeadm_steps.step_name("lab", "join")
    with pytest.raises(ValueError, match="unknown kubeadm step role 'boot'"):
        kubeadm_steps.step_name("lab", "boot")
