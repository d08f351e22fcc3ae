"""`./lab preview` as a user runs it, in a git clone of the project, with no network at all.

Once `.venv` holds the requirements, `./lab` must not reach for PyPI again (it only installs when
`.venv` is missing or a requirements file changed), and running it must leave `git status`
clean: the secrets salt Pulumi writes into the stack file is kept out of git and restored from
the stack's state when a `git pull` drops it. Every `./lab` runs in a network namespace with only
loopback, so any download attempt fails the test instead of leaving the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.project import INGRESS_MANIFEST, METALLB_MANIFEST, Project
from tools.testbed.netns import LOOPBACK_ONLY
from harness import REFERENCE, ROOT, reference_file

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engine-front-door")]

if shutil.which("pulumi") is None:
    pytest.skip(
        "the Pulumi CLI is not on PATH (tools/build-pulumi-toolchain.sh builds it; .ci/run does)",
        allow_module_level=True,
    )
if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None or shutil.which("git") is None:
    pytest.skip("these tests run ./lab offline in a network namespace, which needs root, unshare, ip and git", allow_module_level=True)

VENV = Path(sys.prefix)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A git repository holding a copy of the project, its .venv the one running these tests."""
    reference_file(METALLB_MANIFEST)
    reference_file(INGRESS_MANIFEST)
    root = tmp_path_factory.mktemp("front-door")
    project = Project(root)
    for name in ("lab", "Pulumi.lab.yaml", "Pulumi.lab2.yaml", "requirements-dev.txt", ".gitattributes", ".gitignore"):
        shutil.copy2(ROOT / name, project.dir / name)
    shutil.copy2(ROOT / "Pulumi.yaml", project.dir / "Pulumi.yaml")  # the real runtime: .venv
    if not (VENV / "bin" / "python").exists() or not (VENV / ".requirements.txt.sha").exists():
        pytest.skip(f"{VENV} is not a .venv made by ./lab (run the suite with ./lab test)")
    # Offline, the manifests come from the local reference copies (README: Offline labs). Edited
    # as text, as a user would, so the file keeps the layout Pulumi writes it back in.
    stack_file = project.dir / "Pulumi.lab.yaml"
    text = stack_file.read_text()
    for anchor, key, path in (
        ('  k8s-lab:metallb:\n    version: "0.14.9"\n', "manifest", REFERENCE / METALLB_MANIFEST),
        ("  k8s-lab:ingress:\n    controller: ingress-nginx\n", "manifest", REFERENCE / INGRESS_MANIFEST),
    ):
        assert anchor in text, f"Pulumi.lab.yaml no longer has {anchor!r}"
        text = text.replace(anchor, f"{anchor}    {key}: {path}\n")
    stack_file.write_text(text)
    env = {**project.env, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    env.pop("PULUMI_PYTHON_CMD", None)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project.dir, env=env, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("-c", "user.name=lab", "-c", "user.email=lab@example.invalid", "add", "-A")
    git("-c", "user.name=lab", "-c", "user.email=lab@example.invalid", "commit", "-qm", "k8s-lab")

    def lab(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*LOOPBACK_ONLY, "./lab", *args], cwd=project.dir, env=env, capture_output=True, text=True, timeout=600
        )

    return project, lab, git


def test_preview_works_offline_and_leaves_git_status_clean(clone):
    project, lab, git = clone
    result = lab("preview", "--non-interactive")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pip" not in result.stderr and "installing" not in result.stderr
    # Pulumi needs the salt in the stack file; git must not see it.
    assert "encryptionsalt:" in (project.dir / "Pulumi.lab.yaml").read_text()
    assert git("status", "--porcelain") == ""


def test_a_dropped_salt_is_restored_from_the_stack_state(clone):
    project, lab, git = clone
    file = project.dir / "Pulumi.lab.yaml"
    if "encryptionsalt:" not in file.read_text():  # run alone: the first preview writes the salt
        assert lab("preview", "--non-interactive").returncode == 0
    salt = [line for line in file.read_text().splitlines() if line.startswith("encryptionsalt:")]
    assert salt, "pulumi wrote no encryptionsalt into the stack file"
    # What a `git pull` that changed the file does: the work tree gets the committed text.
    file.write_text(file.read_text().replace(salt[0] + "\n", ""))
    assert "encryptionsalt:" not in file.read_text()
    result = lab("preview", "--non-interactive")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line for line in file.read_text().splitlines() if line.startswith("encryptionsalt:")] == salt
    assert git("status", "--porcelain") == ""
