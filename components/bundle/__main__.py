"""``./lab bundle``: what the stack fetches, and the offline bundle that holds it.

    ./lab bundle list            every file and image the stack fetches, and which the bundle holds
    ./lab bundle fill            fetch what the bundle lacks (resumable; nothing twice)
    ./lab bundle verify          re-check every file of the bundle against its recorded SHA-256

(``node-image`` prints the docker nodes' image and the bundle's file system for it, for
``./lab node-image``.)

The bundle is ``offline.bundle`` when the stack sets it, else --bundle, else
~/.cache/k8s-lab/bundle (K8S_LAB_BUNDLE). The stack's config comes on stdin as
``pulumi config --json --show-secrets`` prints it (./lab does that).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from components.bundle.contents import ARCH, bundle_contents
from components.bundle.fill import FillError, Progress, Registry, fill
from components.bundle.store import Bundle, default_bundle_dir, sha256_file
from components.config.parsing import parse
from components.config.problems import ConfigError
from components.config.stack import PROBLEMS_EXIT_CODE, raw_from_cli_json


def _size(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="./lab bundle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("list", "fill", "verify", "node-image"))
    parser.add_argument("--stack", required=True)
    parser.add_argument("--bundle", type=Path, help="the bundle directory (default: offline.bundle, else ~/.cache/k8s-lab/bundle)")
    parser.add_argument("--arch", default=ARCH, help="the nodes' architecture (default amd64)")
    parser.add_argument("--mirror", help="an HTTP mirror of the release files and charts, as <mirror>/<host>/<path>")
    parser.add_argument("--registry-mirror", help="one registry holding every image as <registry>/<repository>")
    args = parser.parse_args(argv)
    try:
        raw, secret_keys = raw_from_cli_json(sys.stdin.read())
    except (ValueError, AttributeError):
        print("error: could not read the stack's config", file=sys.stderr)
        return 2
    # The bundle is what is being made: its own completeness is not a problem here.
    offline = raw.pop("offline", None) or {}
    try:
        cfg = parse(raw, stack=args.stack, secret_keys=secret_keys)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return PROBLEMS_EXIT_CODE
    root = args.bundle or (Path(os.path.expanduser(offline["bundle"])) if offline.get("bundle") else default_bundle_dir())
    bundle = Bundle(root.absolute())
    contents = bundle_contents(cfg, args.arch)

    if args.action == "node-image":
        from components.config.schema import VagrantConfig

        image = VagrantConfig.model_validate({**(raw.get("vagrant") or {}), "provider": "docker"}).box
        from components.bundle.contents import NodeImage

        path = NodeImage(image).path
        print(image, bundle.file(path) if bundle.has(path) else "")
        return 0

    if args.action == "fill":
        try:
            report = fill(
                contents,
                bundle,
                arch=args.arch,
                progress=Progress(),
                mirror=args.mirror,
                registry_for=Registry.mirror(args.registry_mirror) if args.registry_mirror else Registry,
            )
        except FillError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(
            f"{bundle.root}: {report.fetched} fetched, {report.kept} already there; "
            f"{len(bundle.entries)} files, {_size(report.size)} in all ({report.seconds:.0f} s)"
        )
        if not offline.get("bundle"):
            print(f"use it: pulumi config set --path offline.bundle {bundle.root}")
        return 0

    if args.action == "verify":
        bad = 0
        for path, entry in sorted(bundle.entries.items()):
            file = bundle.file(path)
            if not file.is_file() or sha256_file(file) != entry.sha256:
                print(f"BAD  {path}")
                bad += 1
        print(f"{len(bundle.entries) - bad} of {len(bundle.entries)} files match their SHA-256")
        return 1 if bad else 0

    # list
    def located(source):
        if isinstance(source.origin, Path):
            return source.origin
        return bundle.file(source.origin.path) if bundle.has(source.origin.path) else None

    mark = lambda path: "ok " if bundle.has(path) else "-- "  # noqa: E731
    print(f"bundle: {bundle.root} ({'holds ' + str(len(bundle.entries)) + ' files' if bundle.exists else 'empty'})")
    print("files:")
    for path, origin in contents.files():
        print(f"  {mark(path)}{path}")
    images, pending = contents.all_images(located)
    print("images:")
    for image in images:
        print(f"  {mark(image.ref.archive)}{image.ref.name}  ({image.source}; {image.where})")
    for source in pending:
        print(f"  ?  the images of {source.what}: known once it is fetched")
    wanted = [p for p, _ in contents.files()] + [i.ref.archive for i in images]
    missing = bundle.missing(wanted)
    print(f"{len(wanted) - len(missing)} of {len(wanted)} in the bundle ({_size(bundle.size(wanted))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
