"""The bench's figures of real nodes and of the offline bundle (bench/run.py --nodes).

- **Bring-up**: the last real-node tier run (tests/test_nodes.py keeps its event log and figures
  in ~/.cache/k8s-lab/node-tier/last-run): `up`'s wall time per phase from the event log
  (tools/eventlog.py), beside the longest chain of those phases, failover after `docker stop`
  and `docker kill` of the announcing node, and the memory of the three nodes with the lab up.
- **Build**: what building the node software from source cost, cold (as recorded per component
  when built) and warm.
- **Bundle**: what the seed's lab fetches (files and images, counted from its configuration) and
  the size of the tier's bundle, built from source; then `./lab bundle fill` of that bundle into a
  new directory from loopback servers (an HTTP mirror of its files, distribution's registry
  holding its images), in a network namespace with only loopback: the fill's own time and rate.
"""

from __future__ import annotations

import http.server
import io
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from components.bundle.contents import bundle_contents
from components.bundle.fill import Progress, Registry, fill
from components.bundle.store import Bundle
from tools import eventlog, graph
from tools.nodes import tier
from tools.nodes.registry import LoopbackRegistry, free_port
from tools.testbed.netns import LoopbackNetns


def bring_up() -> tuple[list[list[str]], str]:
    last = tier.tier_dir() / "last-run"
    figures_file, log = last / "figures.json", last / "up.jsonl"
    if not figures_file.exists():
        return [["real-node tier", "-", "no run yet: ./lab test nodes"]], ""
    figures = json.loads(figures_file.read_text())
    rows = [[name, f"{value:.0f}" if "MiB" in name else f"{value:.1f} s", ""] for name, value in figures.items()]
    details = ""
    if log.exists():
        cfg = tier.lab_config(tier.bundle_dir())
        details = eventlog.format_report(eventlog.report(eventlog.read(log), cfg))
    return rows, details


def build() -> list[list[str]]:
    rows = []
    software = tier.software_bin()
    if software is None:
        return [["node software", "-", "not built: python3 -m tools.nodes.tier"]]
    recorded = software.parent / "logs" / "build-seconds.tsv"
    if recorded.exists():
        total = 0
        for line in recorded.read_text().splitlines():
            name, seconds = line.split("\t")
            total += int(seconds)
            rows.append([f"node software cold build: {name}", f"{int(seconds)} s", "recorded when built"])
        rows.append(["node software cold build: total", f"{total} s", ""])
    started = time.perf_counter()
    tier.software_bin()
    rows.append(["node software warm check", f"{time.perf_counter() - started:.1f} s", ""])
    return rows


class _Mirror(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def bundle() -> list[list[str]]:
    seed = graph.config("lab")
    contents = bundle_contents(seed)
    rows = [["seed's lab: files it fetches", str(len(contents.files())), "release files, manifests"]]
    known = len(contents.images)
    rows.append(["seed's lab: images known from its config", str(known), "plus those its manifests name"])
    source = Bundle(tier.bundle_dir())
    if not source.exists:
        return rows + [["tier bundle", "-", "not built: python3 -m tools.nodes.tier"]]
    size = sum(e.size for e in source.entries.values())
    images = [e for e in source.entries.values() if e.image]
    rows.append(["tier bundle (built from source)", f"{size / 1e6:.0f} MB", f"{len(source.entries)} files, {len(images)} images"])
    software = tier.software_bin()
    if software is None or not (software / "registry").exists():
        return rows + [["fill from loopback", "-", "registry not built"]]
    cfg = tier.lab_config(tier.bundle_dir())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        netns = LoopbackNetns()
        try:
            with netns.inside():
                registry = LoopbackRegistry(software / "registry", root / "registry").start()
                port = free_port()
                mirror = source.root / "files"
                server = http.server.ThreadingHTTPServer(("127.0.0.1", port), lambda *a: _Mirror(*a, directory=str(mirror)))
                threading.Thread(target=server.serve_forever, daemon=True).start()
                for entry in images:
                    registry.push_archive(source.file(entry.path))
                target_bundle = Bundle(root / "filled")
                contents = bundle_contents(cfg)
                # The node image's file system is built, not downloaded, and a chart comes from its
                # repository's index, which the mirror does not serve: both are copied as they are.
                for path, _ in contents.files():
                    if path.startswith(("node-image/", "charts/")):
                        destination = target_bundle.file(path)
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(source.file(path), destination)
                        target_bundle.record(path, "copied")
                started = time.monotonic()
                report = fill(
                    contents,
                    target_bundle,
                    arch="amd64",
                    progress=Progress(io.StringIO()),
                    mirror=f"http://127.0.0.1:{port}",
                    registry_for=Registry.mirror(registry.url),
                )
                seconds = time.monotonic() - started
                server.shutdown()
                registry.stop()
        finally:
            netns.close()
    fetched = sum(e.size for p, e in target_bundle.entries.items() if not p.startswith(("node-image/", "charts/")))
    rows.append(
        [
            "fill from loopback (HTTP mirror + registry)",
            f"{seconds:.1f} s",
            f"{report.fetched} fetched, {fetched / 1e6:.0f} MB, {fetched / 1e6 / max(seconds, 0.1):.0f} MB/s",
        ]
    )
    return rows
