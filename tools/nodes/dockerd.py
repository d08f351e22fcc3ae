"""A Docker daemon of the node tier's own: inside the tier's network namespace (its bridges, its
node containers, its "laptop" address 192.168.56.1 all live there) and a mount namespace of its
own, with its own data, run directories and socket. Nothing of it is in the host's namespaces.

Docker 20.10 gives a ``--privileged`` container every capability; where the host's root lacks
one (some CI machines drop CAP_SYS_RESOURCE), runc refuses to start it. The daemon's default
runtime is then :data:`CAPS_RUNTIME`, runc behind a filter that drops, from each container's
spec, the capabilities this machine cannot grant. A laptop has them all and needs none of this.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from tools.testbed.netns import LoopbackNetns

CAPS_RUNTIME = '''#!{python}
"""runc, minus the capabilities this machine's root does not hold (its CapBnd)."""
import json, os, sys

NAMES = ("CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
         "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT "
         "SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE "
         "AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ "
         "PERFMON BPF CHECKPOINT_RESTORE").split()
mask = next(int(l.split()[1], 16) for l in open("/proc/self/status") if l.startswith("CapBnd:"))
held = {{"CAP_" + n for i, n in enumerate(NAMES) if mask >> i & 1}}

def drop(path, process_key):
    with open(path) as f:
        spec = json.load(f)
    process = spec.get("process", {{}}) if process_key else spec
    for kind, caps in (process.get("capabilities") or {{}}).items():
        process["capabilities"][kind] = [c for c in caps if c in held]
    with open(path, "w") as f:
        json.dump(spec, f)

args = sys.argv[1:]
for i, arg in enumerate(args):
    value = args[i + 1] if i + 1 < len(args) else None
    if arg in ("--bundle", "-b") and value:
        drop(os.path.join(value, "config.json"), True)
    elif arg.startswith("--bundle="):
        drop(os.path.join(arg.split("=", 1)[1], "config.json"), True)
    elif arg in ("--process", "-p") and value:
        drop(value, False)
    elif arg.startswith("--process="):
        drop(arg.split("=", 1)[1], False)
os.execv("{runc}", ["runc", *args])
'''


def missing_capabilities() -> bool:
    """True when this machine's root cannot grant every capability a privileged container asks for."""
    mask = next(int(line.split()[1], 16) for line in open("/proc/self/status") if line.startswith("CapBnd:"))
    return mask & (1 << 24) == 0  # CAP_SYS_RESOURCE, the one measured missing


class Dockerd:
    """dockerd in ``netns`` with everything under ``root``; ``env`` points docker clients at it."""

    def __init__(self, netns: LoopbackNetns, root: Path):
        self.netns = netns
        self.root = root
        self.socket = root / "docker.sock"
        self.log = root / "dockerd.log"
        self.process: Optional[subprocess.Popen] = None

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": f"unix://{self.socket}"}

    def start(self, timeout: float = 60) -> "Dockerd":
        for tool in ("dockerd", "unshare"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (apt-get install docker.io util-linux)")
        for sub in ("data", "exec", "config"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        command = [
            "dockerd",
            f"--host=unix://{self.socket}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'docker.pid'}",
            f"--config-file={self.root / 'config' / 'daemon.json'}",
            "--storage-driver=overlay2",
            # Its own containerd namespaces: nothing shared with another daemon on the machine.
            "--containerd-namespace=k8slab",
            "--containerd-plugins-namespace=k8slab-plugins",
        ]
        if missing_capabilities():
            runtime = self.root / "caps-runtime"
            runc = shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/runc"
            runtime.write_text(CAPS_RUNTIME.format(python=sys.executable, runc=runc))
            runtime.chmod(0o755)
            command += [f"--add-runtime=caps={runtime}", "--default-runtime=caps"]
        (self.root / "config" / "daemon.json").write_text("{}\n")
        with self.netns.inside(), self.log.open("ab") as log:
            # A mount namespace of its own: its overlay mounts and /etc/docker stay out of the host's.
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.3)
        raise RuntimeError(f"dockerd did not answer in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def docker(self, *args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        with self.netns.inside():
            result = subprocess.run(
                ["docker", *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout, **kwargs
            )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
        finally:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
