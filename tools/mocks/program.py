"""Running ``__main__.py`` under the mocks and returning what it registered."""

from __future__ import annotations

import asyncio
import copy
import logging
import runpy
from pathlib import Path
from typing import Any, Optional

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.config import ConfigReported
from tools.mocks.monitor import LabMocks, _Capture, _record, _record_read, _RecordingMonitor
from tools.mocks.record import Run
from tools.mocks.stackconfig import DELETE, PROJECT, ROOT, _encode, set_path, stack_config


def _fresh_event_loop() -> None:
    """A new event loop per run, closing the previous one (a dangling loop complains when collected)."""
    try:
        previous = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        previous = None
    if previous is not None and not previous.is_running():
        previous.close()
    asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(
    stack: str = "lab",
    overrides: Optional[dict[str, Any]] = None,
    *,
    stack_file: Optional[Path] = None,
    secret_keys: tuple[str, ...] = (),
    preview: bool = False,
    mocks: Optional[LabMocks] = None,
    program: Optional[Path] = None,
) -> Run:
    """Run ``__main__.py`` (or ``program``) under mocks. Exceptions from the program (ConfigError) propagate."""
    config = copy.deepcopy(stack_config(stack, stack_file))
    for path, value in (overrides or {}).items():
        set_path(config, path, value if value is DELETE else copy.deepcopy(value))

    mocks = mocks or LabMocks()
    monitor = _RecordingMonitor(mocks)
    capture = _Capture()
    logger = logging.getLogger(f"k8s-lab-test-{id(monitor)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(capture)

    _fresh_event_loop()
    # As pulumi-language-python-exec does: a program that ends early (ConfigReported) leaves a
    # finished task whose exception asyncio would otherwise log as "never retrieved".
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    # A fresh root stack per run, or stack outputs of an earlier run would leak into this one.
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor, logger=logger)
    pulumi.runtime.set_all_config(
        {k: _encode(v) for k, v in config.items()},
        [k if ":" in k else f"{PROJECT}:{k}" for k in secret_keys],
    )
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    main = str(program or ROOT / "__main__.py")
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(main, run_name="__main__")))
    except ConfigReported as exit:
        # The program logged the problem list and ended with the executor's "message shown" code;
        # tests get the ConfigError itself, with what was logged and the exit code.
        err = exit.error
        err.registered = [urn for req, urn in monitor.requests if req.type != "pulumi:pulumi:Stack"]  # type: ignore[attr-defined]
        err.logged = list(capture.records)  # type: ignore[attr-defined]
        err.exit_code = exit.code  # type: ignore[attr-defined]
        raise err from None
    except Exception as err:
        # Lets tests assert that a failing program registered nothing before it failed.
        err.registered = [urn for req, urn in monitor.requests if req.type != "pulumi:pulumi:Stack"]  # type: ignore[attr-defined]
        raise

    root = settings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for name, output in getattr(root, "outputs", {}).items():
        out = pulumi.Output.from_input(output)
        outputs[name] = _sync_await(out.future(with_unknowns=True))
        if _sync_await(out.is_secret()):
            secret_outputs.add(name)

    resources = [_record(req, urn, monitor.transforms) for req, urn in monitor.requests if req.type != "pulumi:pulumi:Stack"]
    warnings = [msg for level, msg in capture.records if level == logging.WARNING]
    errors = [msg for level, msg in capture.records if level >= logging.ERROR]
    reads = [_record_read(req, urn) for req, urn in monitor.reads]
    return Run(resources, outputs, secret_outputs, warnings, errors, reads, list(monitor.invokes))
