"""The lab's own bring-up graph: the README shows it as it is, and no step waits needlessly."""

import pytest

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
    assert out.startswith("lab (libvirt): ") and "inherent with every phase a step of its own: 9" in out


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_step_of_the_lab_waits_for_what_it_does_not_need(provider):
    run, cfg = graph.load("lab", {"vagrant.provider": provider})
    g = sg.build(run, cfg)
    if not g.steps:
        pytest.skip("the lab stack registers no steps yet (no cluster, MetalLB or ingress component)")
    result = sg.report(g, cfg)
    assert result.meets_target, graph.chain_text(result, f"lab ({provider})")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ingress_and_apps_install_while_metallb_comes_up_and_joins_overlap_the_cni(provider):
    run, cfg = graph.load("lab", {"vagrant.provider": provider})
    g = sg.build(run, cfg)
    by_phase = lambda *phases: [s for s in g.steps.values() if s.phase in phases]  # noqa: E731
    pairs = [
        (by_phase("ingress", "apps"), by_phase("metallb", "pool", "l2")),
        (by_phase("join"), by_phase("cni")),
        (by_phase("cni"), by_phase("join")),
    ]
    checked = [(a, b) for later, earlier in pairs if later and earlier for a in later for b in earlier]
    if not checked:
        pytest.skip("the lab stack has no ingress/apps beside MetalLB steps, nor joins beside a CNI step, yet")
    serialised = [f"{a.name} waits for {b.name}" for a, b in checked if g.waits_for(a.urn, b.urn)]
    assert serialised == []
