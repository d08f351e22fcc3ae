"""What each node gets: the release files and images node preparation installs, from the bundle
(offline) or from upstream, as the environment scripts/node/prepare.sh reads.

Pure: no Pulumi, no network (the bundle's index is read from disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from components.bundle.contents import CONTROL_PLANE, BundleContents, Source, bundle_contents
from components.bundle.store import Bundle
from components.config import LabConfig
from components.config.offline import bundle_dir

NODE_BUNDLE = "/var/cache/k8s-lab/bundle"
"""Where a node finds the bundle: mounted there (docker) or copied there (VMs)."""


def _located(contents: BundleContents, bundle: Optional[Bundle]):
    def located(source: Source) -> Optional[Path]:
        if isinstance(source.origin, Path):
            return source.origin if source.origin.exists() else None
        if bundle is not None and source.path is not None and bundle.has(source.path):
            return bundle.file(source.path)
        return None

    return located


def missing_from_bundle(cfg: LabConfig, root: Path) -> list[str]:
    """Every path this stack needs that the bundle at ``root`` does not hold (complete and recorded)."""
    bundle = Bundle(root)
    contents = bundle_contents(cfg)
    wanted = [path for path, _ in contents.files()]
    images, pending = contents.all_images(_located(contents, bundle))
    wanted += [image.ref.archive for image in images]
    missing = bundle.missing(wanted)
    # A source not yet in the bundle hides its images: it is named itself.
    return missing + [f"the images of {s.what}" for s in pending if s.path not in missing]


@dataclass(frozen=True)
class NodePlan:
    files: str
    """NODE_FILES: "name path url checksum-url sha256" per release file."""
    images: dict[str, str] = field(default_factory=dict)
    """NODE_IMAGES per node role: "name archive" per image."""
    bundle: Optional[Path] = None
    """The bundle's directory on the laptop (offline labs)."""
    uploads: dict[str, str] = field(default_factory=dict)
    """Per node role, "size path" per bundle file the node needs (copied to VMs before preparation)."""


def node_plan(cfg: LabConfig) -> NodePlan:
    root = bundle_dir(cfg)
    bundle = Bundle(root) if root is not None else None
    contents = bundle_contents(cfg)
    images, _ = contents.all_images(_located(contents, bundle))
    lines = []
    for name, download in contents.node_files.items():
        sha = bundle.entries[download.path].sha256 if bundle and download.path in bundle.entries else "-"
        lines.append(" ".join((name, download.path, download.url, download.checksum_url or "-", sha)))
    per_role: dict[str, list[str]] = {"control-plane": [], "worker": []}
    for image in images:
        roles = ["control-plane"] if image.where == CONTROL_PLANE else ["control-plane", "worker"]
        for role in roles:
            per_role[role].append(f"{image.ref.name} {image.ref.archive}")
    uploads: dict[str, str] = {}
    if bundle is not None:
        for role, entries in per_role.items():
            paths = [d.path for d in contents.node_files.values()] + [line.split(" ", 1)[1] for line in entries]
            uploads[role] = "\n".join(f"{bundle.entries[p].size} {p}" for p in paths if p in bundle.entries)
    return NodePlan(
        files="\n".join(lines),
        images={role: "\n".join(entries) for role, entries in per_role.items()},
        bundle=root,
        uploads=uploads,
    )
