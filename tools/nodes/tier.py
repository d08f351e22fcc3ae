"""The real-node tier's lab: a stack like the seed's on docker nodes, offline from a bundle built
from source, and the command that makes that bundle ready (CI runs it before the tests).

    python3 -m tools.nodes.tier            build what is missing (binaries, images, node image)
    python3 -m tools.nodes.tier --check    exit 1 unless everything is built; print the bundle

The stack is the seed's (one control plane, two workers on 192.168.56.10-.12, lab-pool
.200-.250, lab-l2), with what this machine can build: Traefik on .200 (ingress-nginx's nginx
needs OpenResty, which is not built here), the demo app on agnhost's serve-hostname (it answers
with its pod's name; whoami is not served by the module proxy), HTTPS from the lab CA and the lab
DNS on .250.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from components.bundle.contents import bundle_contents
from components.bundle.plan import missing_from_bundle
from components.config import LabConfig, parse
from tools.project import REFERENCE, ROOT

STACK = "lab"
DEMO_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
DEMO_ARGS = ["serve-hostname", "--port=8080"]
INGRESS_IP = "192.168.56.200"
DNS_IP = "192.168.56.250"
TRAEFIK_VERSION = "3.7.11"  # the appVersion of the Traefik chart the tier runs (41.3.0)


def tier_dir() -> Path:
    return Path(os.environ.get("K8S_LAB_NODE_TIER_DIR", Path.home() / ".cache" / "k8s-lab" / "node-tier"))


def bundle_dir() -> Path:
    return tier_dir() / "bundle"


def stack_config(bundle: Path) -> dict[str, Any]:
    """``Pulumi.lab.yaml``'s config, made the tier's: docker nodes, offline, Traefik, the demo on agnhost."""
    config = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())["config"]
    config["k8s-lab:vagrant"] = {"provider": "docker"}
    for node in config["k8s-lab:nodes"]:
        node["memory_mb"] = 2048
    config["k8s-lab:ingress"] = {"controller": "traefik", "ip": INGRESS_IP}
    config["k8s-lab:app_options"] = {"demo": {"image": DEMO_IMAGE, "args": DEMO_ARGS}}
    config["k8s-lab:dns"] = {"enabled": True, "ip": DNS_IP}
    config["k8s-lab:local_domain_acknowledged"] = True
    config["k8s-lab:offline"] = {"bundle": str(bundle)}
    return config


def lab_config(bundle: Path) -> LabConfig:
    """The tier's stack as the program parses it, without its bundle (what the bundle is made for)."""
    raw = {k.split(":", 1)[1]: v for k, v in stack_config(bundle).items() if k.startswith("k8s-lab:")}
    raw.pop("offline")
    return parse(raw, stack=STACK)


def software_bin() -> Optional[Path]:
    """The built node software's bin directory, when every binary of the tier's versions is there."""
    import subprocess

    from tools.nodes.sourcebundle import BUILD_SCRIPT, node_software_versions

    cfg = lab_config(bundle_dir())
    env = {**os.environ, **node_software_versions(cfg, TRAEFIK_VERSION)}
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], env=env, capture_output=True, text=True)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def missing() -> list[str]:
    cfg = lab_config(bundle_dir())
    if not (bundle_dir() / "bundle.json").is_file():
        return [f"the bundle {bundle_dir()}"]
    return missing_from_bundle(cfg, bundle_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        absent = missing()
        if absent:
            print(f"not built: {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}", file=sys.stderr)
            return 1
        print(bundle_dir())
        return 0
    if not (REFERENCE / "traefik").is_dir():
        print(f"the Traefik chart comes from {REFERENCE}, which is not here", file=sys.stderr)
        return 1
    from tools.nodes.sourcebundle import fill_from_source

    started = time.monotonic()
    cfg = lab_config(bundle_dir())
    bundle = fill_from_source(cfg, bundle_dir(), cache=tier_dir() / "cache", log=lambda m: print(m, file=sys.stderr))
    contents = bundle_contents(cfg)
    total = sum(e.size for e in bundle.entries.values())
    print(
        f"{bundle_dir()}: {len(bundle.entries)} files, {total / 1e6:.0f} MB "
        f"({len(contents.node_files)} node files; ready in {time.monotonic() - started:.0f} s)",
        file=sys.stderr,
    )
    print(bundle_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
