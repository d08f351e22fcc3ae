"""The lab's own bring-up graph: the README shows it as it is, and no step waits needlessly."""

import functools

import pytest

from components import kubeadm_steps
from tools import graph
from tools import stepgraph as sg

PROVIDERS = ["virtualbox", "libvirt"]


def test_readme_shows_the_current_graph_of_the_lab_stack():
    current = graph.current_readme_block(graph.README.read_text(), "lab")
    assert current is not None, "README.md lost its graph markers; see tools/graph.py"
    assert current == graph.readme_block("lab"), (
        "README.md's graph is stale: run `python3 -m tools.graph --update-readme`"
    )


def test_update_readme_rewrites_only_the_block_and_then_is_idempotent(tmp_path):
    readme = tmp_path / "README.md"
    begin, end = graph._markers("lab")
    readme.write_text(f"# intro\n\n{begin}\nold picture\n{end}\n\n## after\n")
    assert graph.update_readme(readme, "lab") is True
    text = readme.read_text()
    assert text.startswith("# intro\n\n") and text.endswith("\n\n## after\n")
    assert "old picture" not in text and "```mermaid\nflowchart LR\n" in text
    assert graph.update_readme(readme, "lab") is False


def test_update_readme_without_markers_says_which_lines_to_add(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit) as err:
        graph.update_readme(readme, "lab")
    assert "<!-- end graph:lab -->" in str(err.value)


def test_the_command_prints_mermaid_dot_and_the_chain(capsys):
    graph.main(["--stack", "lab", "--format", "dot"])
    assert capsys.readouterr().out.startswith('digraph "lab" {')
    graph.main(["--stack", "lab", "--format", "chain", "--set", "vagrant.provider=libvirt"])
    out = capsys.readouterr().out
    assert out.startswith("lab (libvirt): ") and "inherent with every phase a step of its own: 10" in out


@functools.lru_cache(maxsize=None)
def lab_graph(provider: str) -> tuple[sg.StepGraph, object]:
    """One mocks run per provider for the whole module (the graph is only read)."""
    run, cfg = graph.load("lab", {"vagrant.provider": provider})
    return sg.build(run, cfg), cfg


def serialised(g: sg.StepGraph, later_phases, earlier_phases) -> list[str]:
    """Every step of ``later_phases`` that waits for a step of ``earlier_phases``."""
    steps = lambda phases: [s for s in g.steps.values() if s.phase in phases]  # noqa: E731
    later, earlier = steps(later_phases), steps(earlier_phases)
    assert later and earlier, f"the lab has no {later_phases} or no {earlier_phases} steps to compare"
    return [f"{a.name} waits for {b.name}" for a in later for b in earlier if g.waits_for(a.urn, b.urn)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_joins_overlap_the_cni(provider):
    g, _ = lab_graph(provider)
    assert serialised(g, {"join"}, {"cni"}) == [] and serialised(g, {"cni"}, {"join"}) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_apps_install_while_metallb_comes_up(provider):
    g, _ = lab_graph(provider)
    assert serialised(g, {"apps"}, {"metallb", "pool", "l2"}) == []




@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_ingress_controller_installs_while_metallb_comes_up(provider):
    g, _ = lab_graph(provider)
    assert serialised(g, {"ingress"}, {"metallb", "pool", "l2"}) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_step_of_the_lab_waits_for_what_it_does_not_need(provider):
    g, cfg = lab_graph(provider)
    result = sg.report(g, cfg)
    assert result.unclassified == [] and result.missing_phases == ["ingress-ip"]
    assert result.meets_target, graph.chain_text(result, f"lab ({provider})")


# Every component the program has: all apps, the DNS server, and a second ingress flavour (lab2).
FULL_LAB = {"apps": ["demo", "argocd", "grafana", "online-boutique"], "dns.enabled": True, "dns.ip": "192.168.56.250"}


def _steps_and_components(stack: str, overrides: dict):
    """Each step of the stack's run with its program components above it, nearest first."""
    run, cfg = graph.load(stack, overrides)
    g = sg.build(run, cfg)
    by_urn = {r.urn: r for r in run.resources}
    for step in g.steps.values():
        r, chain, urn = by_urn[step.urn], [], by_urn[step.urn].parent
        while urn in by_urn:
            if by_urn[urn].type.split(":", 1)[0] in sg.LOCAL_PACKAGES:
                chain.append((by_urn[urn].type, by_urn[urn].name))
            urn = by_urn[urn].parent
        yield step, r, chain, cfg


@pytest.mark.parametrize("stack,overrides", [("lab", FULL_LAB), ("lab2", {})])
def test_phases_come_from_component_types_not_resource_names(stack, overrides):
    """Renaming every resource and component (opaque names, same types and nesting) keeps every
    step's phase and app; the kubeadm cluster's steps keep their role through the function that
    names them."""
    opaque: dict[str, str] = {}

    def rename(name: str) -> str:
        return opaque.setdefault(name, f"x{len(opaque)}")

    seen_phases = set()
    for step, r, chain, cfg in _steps_and_components(stack, overrides):
        renamed_chain = [(t, rename(n)) for t, n in chain]
        if chain and chain[0][0] == sg.KUBEADM_TYPE:
            role = kubeadm_steps.step_role(chain[0][1], r.name)
            assert role is not None, f"{r.name} is not named by kubeadm_steps.step_name"
            node = rename(r.name) if role in kubeadm_steps.PER_NODE_ROLES else None
            name = kubeadm_steps.step_name(renamed_chain[0][1], role, node)
        else:
            name = rename(r.name)
        inputs = r.inputs or {}
        phase = sg.classify(r.type, name, renamed_chain, inputs)
        assert phase == step.phase != sg.UNCLASSIFIED, (r.name, name, chain)
        if phase in ("apps", "route"):
            assert sg.instance_of(phase, name, inputs, sg.Names(), renamed_chain) == step.key, r.name
        seen_phases.add(phase)
        # The name-token model still agrees on the program's own names: an oracle for both.
        names = sg.Names.of(cfg)
        assert sg.classify(r.type, r.name, chain, inputs, (names.stack, *names.nodes), by_names=True) == phase
    everywhere = {"box", "vm", "prep", "init", "cni", "kubeconfig", "metallb", "pool", "l2", "ingress", "apps", "route"}
    assert everywhere | {"selfcheck"} <= seen_phases
    if stack == "lab":
        assert {"join", "dns", "tls"} <= seen_phases
