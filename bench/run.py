"""k8s-lab's benchmark: ``python3 bench/run.py [--stack lab] [--samples 7] [--event-log FILE]``.

Prints one table:
- program evaluation under the test mocks, the stack beside a one-resource program with the
  same imports (every module the stack's run loads), each sample a fresh process (target:
  ratio at most 1.5);
- the whole test suite's wall time (target: under 20 s on 2 cores);
- per VM provider, the bring-up graph's longest chain beside the serial count of its steps and
  the chain the configuration itself imposes (target: no longer, and no needless wait);
- with ``--event-log``, the phases of a real ``pulumi up --event-log FILE``.
See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

try:
    import pulumi  # noqa: F401 - the bench runs the program, so it needs the project's packages
except ImportError:
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
    sys.exit("bench: the pulumi packages are not importable; `./lab test` creates .venv with them, then run this again")

sys.path.insert(0, str(ROOT))

from tools import eventlog  # noqa: E402
from tools import graph  # noqa: E402
from tools import stepgraph as sg  # noqa: E402

RATIO_TARGET = 1.5
SUITE_TARGET_SECONDS = 20.0
PROVIDERS = ("virtualbox", "libvirt", "docker")


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _evaluate(program: str, stack: str, *extra: str, env: Optional[dict] = None) -> dict:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "evaluate.py"), program, "--stack", stack, *extra],
        cwd=ROOT, capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def evaluation(stack: str, samples: int) -> list[list[str]]:
    """Median seconds of fresh-process evaluations, the programs interleaved so drift hits all.

    Besides the yardstick with the same modules, one with only ``__main__.py``'s import lines
    shows what pulumi-kubernetes' lazily loaded API groups cost the program.
    """
    times: dict[str, list[float]] = {"lab": [], "baseline": [], "import-lines": []}
    resources: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        modules = Path(tmp) / "modules.txt"
        _evaluate("lab", stack, "--modules-out", str(modules))  # untimed: records what the lab imports
        same_modules = {**os.environ, "K8S_LAB_BENCH_MODULES": str(modules)}
        for _ in range(samples):
            for variant in times:
                program = "lab" if variant == "lab" else "baseline"
                result = _evaluate(program, stack, env=same_modules if variant == "baseline" else None)
                times[variant].append(result["seconds"])
                resources[variant] = result["resources"]
    lab, base, lines = (statistics.median(times[v]) for v in ("lab", "baseline", "import-lines"))
    ratio = lab / base
    return [
        [f"stack {stack} under mocks ({resources['lab']} resources)", f"{lab:.2f} s", ""],
        ["one resource, the same modules loaded", f"{base:.2f} s", ""],
        ["ratio", f"{ratio:.2f}", f"<= {RATIO_TARGET}: {_met(ratio <= RATIO_TARGET)}"],
        ["(one resource, __main__.py's import lines only)", f"{lines:.2f} s", "lazy API groups not loaded"],
    ]


def _pytest(*selection: str, env: Optional[dict] = None) -> tuple[float, str, int]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection, "tests"],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    summary = (out.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= ")
    return seconds, re.sub(r" in [\d.]+s.*$", "", summary), out.returncode


def test_suite() -> list[list[str]]:
    """The suite as `./lab test` runs it, and its two parts: the fast mocks suite and the engine tests.

    The target is the mocks suite's (the engine tests start real `pulumi` processes and only run
    where a CLI is on PATH).
    """
    rows = []
    seconds, summary, code = _pytest()
    rows.append([f"whole suite ({summary})", f"{seconds:.1f} s", "as ./lab test runs it"])
    seconds, summary, code = _pytest("-m", "not engine")
    ok = code == 0 and seconds < SUITE_TARGET_SECONDS
    rows.append([f"without engine tests ({summary})", f"{seconds:.1f} s", f"< {SUITE_TARGET_SECONDS:.0f} s: {_met(ok)}"])
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # Without a bytecode cache every run compiles the project and pytest rewrites the asserts
        # of every test module again (about 2.4 s a worker); a shell without the variable caches them.
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        _pytest("-m", "not engine", env=cached)  # writes the cache
        seconds, summary, code = _pytest("-m", "not engine", env=cached)
        ok = code == 0 and seconds < SUITE_TARGET_SECONDS
        rows.append(
            [f"without engine tests, bytecode cached ({summary})", f"{seconds:.1f} s", f"< {SUITE_TARGET_SECONDS:.0f} s: {_met(ok)} (this shell sets PYTHONDONTWRITEBYTECODE)"]
        )
    if shutil.which("pulumi"):
        seconds, summary, code = _pytest("-m", "engine")
        rows.append([f"engine tests only ({summary})", f"{seconds:.1f} s", "real pulumi CLI"])
    return rows


def chains(stack: str) -> tuple[list[list[str]], list[str]]:
    rows, details = [], []
    for provider in PROVIDERS:
        # Docker nodes run from the node image, not the stack's Vagrant box.
        overrides = {"vagrant": {"provider": "docker"}} if provider == "docker" else {"vagrant.provider": provider}
        run, cfg = graph.load(stack, overrides)
        result = sg.report(sg.build(run, cfg), cfg)
        rows.append([
            provider,
            f"{result.steps} / {result.serial_stages}",
            f"{len(result.chain)} / {result.chain_stages}",
            f"{result.inherent_length} ({sg.stage_length(result.inherent_all_phases)} with every phase)",
            _met(result.meets_target) if result.steps else "no steps yet",
        ])  # fmt: skip
        details.append(graph.chain_text(result, f"{stack} ({provider})"))
    return rows, details


def engine(stack: str) -> list[list[str]]:
    """The real engine: toolchain build cost (cold as recorded when built, warm now) and a preview."""
    script = ROOT / "tools" / "build-pulumi-toolchain.sh"
    rows: list[list[str]] = []
    start = time.perf_counter()
    check = subprocess.run(["bash", str(script), "--check", "-q"], cwd=ROOT, capture_output=True, text=True)
    if check.returncode == 0:
        bin_dir = Path(check.stdout.strip().splitlines()[-1])
        warm = subprocess.run(["bash", str(script), "--print-path", "-q"], cwd=ROOT, capture_output=True, text=True)
        warm_seconds = time.perf_counter() - start
        recorded = bin_dir.parent / "logs" / "build-seconds.tsv"
        if recorded.exists():
            for line in recorded.read_text().splitlines():
                name, seconds = line.split("\t")
                rows.append([f"toolchain cold build: {name}", f"{int(seconds)} s", "recorded when built"])
            total = sum(int(line.split("\t")[1]) for line in recorded.read_text().splitlines())
            rows.append(["toolchain cold build: total", f"{total} s", "CI budget 5400 s"])
        rows.append(["toolchain warm run", f"{warm_seconds:.1f} s", "ok" if warm.returncode == 0 else "failed"])
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    if shutil.which("pulumi") is None:
        return rows + [["pulumi preview", "-", "no pulumi CLI (tools/build-pulumi-toolchain.sh builds one)"]]
    if stack != "lab":
        return rows + [["pulumi preview", "-", "measured for the lab stack only (its manifests have local copies)"]]
    with tempfile.TemporaryDirectory() as tmp:
        rows += front_door(Path(tmp), stack)
    return rows


# A pod's start-up in the second control-plane round: an image already pulled, a process that
# starts in a few seconds, as on a warm lab.
POD_START_MODEL_SECONDS = 5.0
TIER_TARGET_SECONDS = 90.0

# The program's order, for the script beside `pulumi up`: each phase applied, then waited for.
_SCRIPT_PHASES = ("metallb", "metallb-objects", "ingress", "app", "app-ingress")


def _script_phase(obj: dict) -> str:
    kind, meta = obj.get("kind", ""), obj.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    if kind in ("IPAddressPool", "L2Advertisement"):
        return "metallb-objects"
    if kind == "Ingress":
        return "app-ingress"
    if namespace == "metallb-system" or "metallb" in name:
        return "metallb"
    if namespace == "ingress-nginx" or "ingress-nginx" in name or kind == "IngressClass":
        return "ingress"
    return "app"


def _kubectl_script(plane, phases: dict[str, list[dict]], workdir: Path, ip: str) -> float:
    """`kubectl apply --server-side` phase by phase, each followed by `kubectl wait` for what `up` awaits."""
    import yaml

    waits = {
        "metallb": [
            ["wait", "-n", "metallb-system", "--for=condition=Available", "deployment/controller", "--timeout=300s"],
            ["rollout", "status", "-n", "metallb-system", "daemonset/speaker", "--timeout=300s"],
        ],
        "ingress": [
            ["wait", "-n", "ingress-nginx", "--for=condition=Complete", "job", "--all", "--timeout=300s"],
            ["wait", "-n", "ingress-nginx", "--for=condition=Available", "deployment/ingress-nginx-controller", "--timeout=300s"],
            ["wait", "-n", "ingress-nginx", f"--for=jsonpath={{.status.loadBalancer.ingress[0].ip}}={ip}", "service/ingress-nginx-controller", "--timeout=300s"],
        ],
        "app": [["wait", "-n", "demo", "--for=condition=Available", "deployment/demo", "--timeout=300s"]],
        "app-ingress": [["wait", "-n", "demo", f"--for=jsonpath={{.status.loadBalancer.ingress[0].ip}}={ip}", "ingress/demo", "--timeout=300s"]],
    }
    start = time.perf_counter()
    for phase in _SCRIPT_PHASES:
        path = workdir / f"{phase}.yaml"
        # CRDs and Namespaces first, as a script would order one file.
        objs = sorted(phases.get(phase, []), key=lambda o: o.get("kind") not in ("CustomResourceDefinition", "Namespace"))
        path.write_text(yaml.safe_dump_all(objs))
        plane.kubectl("apply", "--server-side", "--field-manager=bench-script", "-f", str(path))
        for wait in waits.get(phase, []):
            plane.kubectl(*wait)
    return time.perf_counter() - start


def control_plane_tier() -> list[str]:
    """Wall time of the control-plane tests, warm (binaries cached), as `./lab test` runs them."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_controlplane.py"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    summary = re.sub(r" in [\d.]+s.*$", "", (out.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= "))
    ok = out.returncode == 0 and "skipped" not in summary and seconds < TIER_TARGET_SECONDS
    return [f"control-plane tier, warm ({summary})", f"{seconds:.1f} s", f"< {TIER_TARGET_SECONDS:.0f} s: {_met(ok)}"]


def control_plane(pod_start_seconds: float = 0.0, plane_rows: bool = True) -> list[list[str]]:
    """A real control plane on loopback: its start-up and memory, then `pulumi up` beside a script.

    ``pod_start_seconds``: every pod takes that long to start before it may turn Ready (a model of
    image pulls and process start-up; 0 leaves only the real waits: MetalLB's controller, the
    Secrets pods need).
    """
    import tools.controlplane as cp

    reason = cp.skip_reason()
    if reason:
        return [["control-plane tier", "-", reason]]
    if shutil.which("pulumi") is None:
        return [["control-plane tier", "-", "no pulumi CLI (tools/build-pulumi-toolchain.sh builds one)"]]
    import yaml
    from tools.project import Project

    rows: list[list[str]] = []
    ip = "192.168.56.200"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The objects `up` applies, as render mode writes them (no cluster needed for that).
        (tmp / "render").mkdir()
        (tmp / "engine").mkdir()
        render = Project(tmp / "render")
        rendered = tmp / "rendered"
        config = cp.existing_cluster_config(**{"k8s-lab:cluster": {"render_yaml_to_directory": str(rendered)}})
        render.stack("render", config)
        render.pulumi("up", "--stack", "render", "--yes", "--skip-preview")
        phases: dict[str, list[dict]] = {}
        for path in sorted(rendered.rglob("*.yaml")):
            for obj in yaml.safe_load_all(path.read_text()):
                if obj:
                    phases.setdefault(_script_phase(obj), []).append(obj)
        netns = cp.LoopbackNetns()
        with netns.inside():
            plane = cp.ControlPlane(bin=cp.control_plane_bin(), dir=tmp / "plane", pod_start_seconds=pod_start_seconds)
            try:
                plane.start()
                if plane_rows:
                    rows.append(["control plane start-up", f"{plane.started_seconds:.1f} s", "etcd, kube-apiserver, controller-manager, scheduler, kwok; 2 nodes Ready"])
                    rows.append(["control plane memory, idle", f"{plane.memory_mb():.0f} MB", "resident, all processes"])
                project = Project(tmp / "engine")
                project.stack("bench", cp.existing_cluster_config())
                cp.set_kubeconfig(project, "bench", plane.kubeconfig)
                start = time.perf_counter()
                project.pulumi("up", "--stack", "bench", "--yes", "--skip-preview")
                up = time.perf_counter() - start
                if plane_rows:
                    rows.append(["control plane memory, lab up", f"{plane.memory_mb():.0f} MB", "with MetalLB's controller"])
                start = time.perf_counter()
                project.pulumi("up", "--stack", "bench", "--yes", "--skip-preview")
                fixed = time.perf_counter() - start
                project.pulumi("destroy", "--stack", "bench", "--yes", "--skip-preview")
                script = _kubectl_script(plane, phases, tmp, ip)
                for phase in reversed(_SCRIPT_PHASES):
                    plane.kubectl("delete", "--ignore-not-found", "--wait=true", "-f", str(tmp / f"{phase}.yaml"), check=False)
            finally:
                plane.stop()
        netns.close()
    held = f"pods start in {pod_start_seconds:g} s" if pod_start_seconds else "real waits only"
    rows.append([f"pulumi up, {held}", f"{up:.1f} s", "existing-cluster mode, MetalLB 0.14.9, ingress-nginx, demo"])
    rows.append([f"kubectl apply --server-side + wait, {held}", f"{script:.1f} s", "the same rendered objects, the program's order, in turn"])
    rows.append([f"ratio up / script, {held}", f"{up / script:.2f}", _met(up / script <= 1.0) + " (target at most 1.0)"])
    rows.append([f"engine fixed cost (no-op up), {held}", f"{fixed:.1f} s", f"up without it: {up - fixed:.1f} s, ratio {(up - fixed) / script:.2f}"])
    return rows


FRONT_DOOR_TARGET = 1.5


def front_door(tmp: Path, stack: str, samples: int = 5) -> list[list[str]]:
    """Warm `./lab preview` of the stack beside a warm `pulumi preview` of the yardstick program
    (bench/one_per_provider: one command, one Kubernetes object through an explicit provider), on
    one file backend, both with the project's .venv; medians of interleaved samples."""
    from tools.project import Project, lab_config

    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists():
        return [["./lab preview", "-", "no .venv (./lab test creates it)"]]
    project = Project(tmp)
    for name in ("lab", "Pulumi.yaml", "requirements-dev.txt"):
        shutil.copy2(ROOT / name, project.dir / name)
    (project.dir / f"Pulumi.{stack}.yaml").write_text(json.dumps({"config": lab_config()}))
    # The same lab without HTTPS: what the lab CA and its certificate add to a preview.
    no_tls = f"{stack}-no-tls"
    (project.dir / f"Pulumi.{no_tls}.yaml").write_text(json.dumps({"config": lab_config(**{"k8s-lab:tls": {"enabled": False}})}))
    yardstick = tmp / "yardstick"
    shutil.copytree(ROOT / "bench" / "one_per_provider", yardstick)
    (yardstick / ".venv").symlink_to(venv)
    env = {k: v for k, v in project.env.items() if k != "PULUMI_PYTHON_CMD"}

    def run(argv: list[str], cwd: Path) -> float:
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=True)
        return time.perf_counter() - start

    subprocess.run(["pulumi", "stack", "init", "one"], cwd=yardstick, env=env, capture_output=True, check=True)
    subprocess.run(["pulumi", "stack", "init", no_tls], cwd=project.dir, env=env, capture_output=True, check=True)
    commands = {
        "lab": (["./lab", "preview", "--non-interactive"], project.dir),
        "plain": (["pulumi", "preview", "--stack", stack, "--non-interactive"], project.dir),
        "no-tls": (["pulumi", "preview", "--stack", no_tls, "--non-interactive"], project.dir),
        "one": (["pulumi", "preview", "--stack", "one", "--non-interactive"], yardstick),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, (argv, cwd) in commands.items():
        run(argv, cwd)  # warm-up: the stack exists, caches are filled
    for _ in range(samples):
        for name, (argv, cwd) in commands.items():
            times[name].append(run(argv, cwd))
    lab, plain, plain_no_tls, one = (statistics.median(times[n]) for n in ("lab", "plain", "no-tls", "one"))
    return [
        [f"./lab preview of {stack} (warm)", f"{lab:.1f} s", f"median of {samples}"],
        [f"pulumi preview of {stack} (warm)", f"{plain:.1f} s", f"ratio to the yardstick {plain / one:.2f}"],
        [f"pulumi preview of {stack}, tls.enabled: false", f"{plain_no_tls:.1f} s", f"ratio to the yardstick {plain_no_tls / one:.2f}"],
        ["pulumi preview, one command + one Kubernetes object", f"{one:.1f} s", "the yardstick"],
        ["./lab preview / yardstick", f"{lab / one:.2f}", f"<= {FRONT_DOOR_TARGET}: {_met(lab / one <= FRONT_DOOR_TARGET)}"],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="lab")
    parser.add_argument("--samples", type=int, default=7, help="fresh processes per program (default 7)")
    parser.add_argument("--event-log", type=Path, help="a `pulumi up --event-log` file to report on")
    parser.add_argument("--skip-suite", action="store_true", help="do not time the test suite")
    parser.add_argument("--skip-engine", action="store_true", help="do not time the real engine")
    parser.add_argument("--skip-control-plane", action="store_true", help="do not run the control-plane figures")
    parser.add_argument("--skip-nodes", action="store_true", help="do not report the real-node tier and the offline bundle")
    args = parser.parse_args(argv)

    print(f"k8s-lab bench: stack {args.stack}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print(f"Program evaluation (median of {args.samples} fresh processes each)")
    print(table(["program", "time", "target"], evaluation(args.stack, args.samples)))
    if not args.skip_suite:
        print("\nTest suite")
        print(table(["run", "wall time", "target"], test_suite()))
    if not args.skip_engine:
        print("\nReal engine")
        print(table(["what", "time", "note"], engine(args.stack)))
    if not args.skip_engine and not args.skip_control_plane:
        print("\nControl plane on loopback (held readiness; both wait for the same real events)")
        rows = [control_plane_tier()]
        rows += control_plane() + control_plane(pod_start_seconds=POD_START_MODEL_SECONDS, plane_rows=False)
        print(table(["what", "value", "note"], rows))
    if not args.skip_nodes:
        from bench import nodes

        rows, details = nodes.bring_up()
        print("\nReal nodes: the last `./lab test nodes` run (docker nodes, kubeadm, flannel, MetalLB's speaker, Traefik)")
        print(table(["what", "value", "note"], rows))
        if details:
            print("\n" + details)
        print("\nNode software, built from source")
        print(table(["what", "value", "note"], nodes.build()))
        print("\nOffline bundle")
        print(table(["what", "value", "note"], nodes.bundle()))
    rows, details = chains(args.stack)
    print("\nBring-up chain (steps / stages; target: longest chain no longer than inherent, no needless wait)")
    print(table(["provider", "serial", "longest chain", "inherent", "target"], rows))
    for text in details:
        print("\n" + text)
    if args.event_log:
        print(f"\nEvent log {args.event_log}")
        print(eventlog.format_report(eventlog.report(eventlog.read(args.event_log), graph.config(args.stack))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
