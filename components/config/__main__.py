"""Before the engine: ``./lab up`` and ``./lab preview`` check the stack's config first, so that a
mistake ends with the problem list alone rather than followed by the CLI's resource summary.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from components.config.parsing import parse
from components.config.problems import ConfigError
from components.config.stack import PROBLEMS_EXIT_CODE, raw_from_cli_json


def main(argv: Optional[list[str]] = None) -> int:
    """``pulumi config --json --show-secrets | python -m components.config --stack lab``."""
    parser = argparse.ArgumentParser(description="Check a k8s-lab stack's config as `pulumi config --json` lists it.")
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    try:
        raw, secret_keys = raw_from_cli_json(sys.stdin.read())
    except (ValueError, AttributeError):
        return 0  # not what was expected: the program checks it again under pulumi
    try:
        parse(raw, stack=args.stack, secret_keys=secret_keys)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return PROBLEMS_EXIT_CODE
    except Exception:  # noqa: BLE001 - whatever it is, the program meets it again under pulumi
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
