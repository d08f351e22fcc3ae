"""A copy of the project driven by the real Pulumi CLI (used by the engine tests and the bench), and
where the upstream reference copies are (../shared/reference, beside the project; a user's clone
has none, and what needs them skips)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import yaml


ROOT = Path(__file__).resolve().parent.parent

SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"


PROJECT_FILES = ("__main__.py", "Pulumi.yaml", "Vagrantfile", "requirements.txt", "components", "scripts")
METALLB_MANIFEST = "metallb/metallb-native-v0.14.9.yaml"
INGRESS_MANIFEST = "ingress-nginx/deploy-cloud-controller-v1.15.1.yaml"


def run_tool(argv: Sequence[str], what: str, *, check: bool = True, timeout: float = 600, **options) -> subprocess.CompletedProcess:
    """Run a command line with its output captured; with ``check`` a failure raises with that output.

    It runs in a process group of its own: past ``timeout`` the whole group is ended (the Pulumi
    CLI's plugins with it, which would otherwise outlive it), then TimeoutExpired is raised.
    """
    input_ = options.pop("input", None)
    with subprocess.Popen(
        list(argv), stdin=subprocess.PIPE if input_ is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True, **options,
    ) as process:  # fmt: skip
        try:
            stdout, stderr = process.communicate(input_, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                stdout, stderr = process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stdout, stderr = process.communicate()
            raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr) from None
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class Project:
    """A copy of the project in a temporary directory, with its own file backend."""

    def __init__(self, root: Path, wrapper: Sequence[str] = ()):
        self.dir = root / "k8s-lab"
        self.wrapper = tuple(wrapper)  # what every `pulumi` runs inside (LOOPBACK_ONLY, say)
        self.dir.mkdir()
        for name in PROJECT_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, self.dir / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, self.dir / name)
        # Use this interpreter (it has the SDKs) rather than creating .venv in the copy; the lab's
        # local commands that run Python (the CA's) name .venv/bin/python, so .venv is this one.
        (self.dir / ".venv").symlink_to(Path(sys.prefix))
        project = yaml.safe_load((self.dir / "Pulumi.yaml").read_text())
        project["runtime"] = {"name": "python", "options": {"toolchain": "pip"}}
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        state = root / "state"
        state.mkdir()
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("KUBECONFIG", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE")
        }
        self.env.update(
            PULUMI_BACKEND_URL=f"file://{state}",
            PULUMI_CONFIG_PASSPHRASE="k8s-lab-test-passphrase",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_PYTHON_CMD=sys.executable,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK="true",
        )

    def pulumi(self, *args: str, check: bool = True, wrapper: Sequence[str] = (), timeout: float = 600) -> subprocess.CompletedProcess:
        """Run the CLI in the project; ``wrapper`` is a command line that execs it (a namespace, say),
        the project's own by default."""
        argv = [*(wrapper or self.wrapper), shutil.which("pulumi") or "pulumi", *args, "--non-interactive"]
        return run_tool(argv, f"pulumi {' '.join(args)}", check=check, timeout=timeout, cwd=self.dir, env=self.env)

    def stack(self, name: str, config: dict) -> None:
        (self.dir / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
        self.pulumi("stack", "init", name)


def lab_config(**overrides) -> dict:
    config = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())["config"]
    config["k8s-lab:metallb"]["manifest"] = str(REFERENCE / METALLB_MANIFEST)
    config["k8s-lab:ingress"]["manifest"] = str(REFERENCE / INGRESS_MANIFEST)
    config.update(overrides)
    return config


