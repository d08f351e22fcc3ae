"""An offline bundle on disk: its files, its image archives, and ``bundle.json``, the index of both.

Layout (one directory, shared by every stack; file names carry their versions, so stacks with
different pins only add to it)::

    bundle.json                                  every entry: path, sha256, size, where it came from
    files/<host>/<path>                          release files and manifests, mirroring their URLs
    charts/<repository host>/<name>-<version>.tgz
    images/<registry>/<repository>/<tag>.tar     OCI archives (components.bundle.oci)

An entry is recorded only once its file was checked (checksum, digest) and renamed into place,
so a cut-off fill leaves nothing that looks complete. Pure: no Pulumi, no network.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

INDEX = "bundle.json"
FORMAT = 1
DEFAULT_BUNDLE = "~/.cache/k8s-lab/bundle"


def default_bundle_dir() -> Path:
    return Path(os.path.expanduser(os.environ.get("K8S_LAB_BUNDLE", DEFAULT_BUNDLE)))


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the bundle
    sha256: str
    size: int
    origin: str  # the URL it was fetched from, or what built it
    image: Optional[str] = None  # for an image archive: the full name it carries


class Bundle:
    """A bundle directory and its index."""

    def __init__(self, root: Path):
        self.root = root
        self.entries: dict[str, Entry] = {}
        index = root / INDEX
        if index.is_file():
            data = json.loads(index.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"{index} is bundle format {data.get('format')}, this k8s-lab reads {FORMAT}")
            self.entries = {e["path"]: Entry(**e) for e in data.get("entries", [])}

    @property
    def exists(self) -> bool:
        return (self.root / INDEX).is_file()

    def file(self, path: str) -> Path:
        return self.root / path

    def has(self, path: str) -> bool:
        """Recorded, and still there at the recorded size (cheap: no hashing)."""
        entry = self.entries.get(path)
        if entry is None:
            return False
        try:
            return self.file(path).stat().st_size == entry.size
        except OSError:
            return False

    def record(self, path: str, origin: str, *, image: Optional[str] = None, sha256: Optional[str] = None) -> Entry:
        """Record a file that is in place and checked; the index is written at once."""
        target = self.file(path)
        entry = Entry(path, sha256 or sha256_file(target), target.stat().st_size, origin, image)
        self.entries[path] = entry
        self.save()
        return entry

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT, "entries": [asdict(e) for _, e in sorted(self.entries.items())]}
        part = self.root / f"{INDEX}.part"
        part.write_text(json.dumps(data, indent=1) + "\n")
        part.replace(self.root / INDEX)

    def missing(self, paths: Iterable[str]) -> list[str]:
        return [p for p in paths if not self.has(p)]

    def size(self, paths: Iterable[str]) -> int:
        return sum(self.entries[p].size for p in paths if p in self.entries)
