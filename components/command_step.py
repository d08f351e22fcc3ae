"""The one way k8s-lab runs a command on the laptop: :func:`command_step`.

pulumi-command's ``local.Command`` has semantics that are easy to get wrong, so every step of the
lab goes through this helper, which encodes them once:

- A changed input (the command line, its environment) re-runs ``create`` *in place*; nothing is
  deleted first, and a VM that is already running ignores new CPUs or memory. Only a change of
  ``triggers`` replaces the resource. So each step's triggers carry a hash of what defines the
  thing it makes (its command lines and environment) and the ids of the steps it builds on: a
  replaced upstream step gets a new id, and everything built on it runs again.
- Values a step gets from another step's output (the NIC name found by node preparation) are
  in its environment but not in its triggers: that step's id is, and an output is unknown while
  its step is about to re-run, which would make every preview of a re-run show a replacement.
- The content of the scripts a step runs is *not* in its triggers: an edited script (a
  ``git pull``) must never destroy a VM or make a worker leave the cluster. Their digest goes
  into the step's environment instead (``K8S_LAB_SCRIPTS_SHA256``), so an edit re-runs the step
  in place, which every script is written to survive. The digest is of what a script does, not
  of its comments (:func:`script_behaviour`): an edit that only touches comments runs nothing.
  A step that only reads (the kubeconfig) is not re-run for a script edit: its output feeds the
  Kubernetes provider, and a re-run would make the provider's configuration unknown in the
  preview.
- Steps that own a fixed name or address (a VM, a node's membership, a file) delete before they
  create, or the new one would collide with the old one.
- Steps whose stdout is a credential log no stdout (only stderr, which the scripts keep free of
  secrets), keep stdout secret in the state, do not hand the previous stdout to the next run's
  environment, and return ``Output.secret``.
- No step stores a working directory: the command provider runs commands in the Pulumi project's
  directory, and every path a step names is relative to it. A stored absolute ``dir`` would
  re-run every step after the project is moved or cloned elsewhere, and ``destroy`` would fail
  on the old path.

The scripts themselves are safe to re-run after a half-finished attempt; that is their contract,
kept in ``scripts/``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pulumi
import tree_sitter
import tree_sitter_bash
from pulumi_command import local

ROOT = Path(__file__).resolve().parent.parent
"""The project root: commands run here and script paths are relative to it."""

VENV_PYTHON = ".venv/bin/python"
"""The project's virtualenv (Pulumi.yaml), for commands that need its packages; relative, as
every path a command names."""


SCRIPTS_VARIABLE = "K8S_LAB_SCRIPTS_SHA256"
"""The environment variable carrying the digest of a step's scripts (see the module docstring)."""


def spec_hash(create: str, delete: Optional[str], environment: Mapping[str, str]) -> str:
    """A stable digest of what defines a step's result; equal specs give equal hashes."""
    spec = {"create": create, "delete": delete, "environment": dict(environment)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# Text that reaches a command as data, whose every line and space counts: a here-document's body
# (written into a file on the node) and a quoted string that spans lines (an awk program, say).
_VERBATIM = frozenset({"heredoc_body", "string", "raw_string", "ansi_c_string", "translated_string"})


@functools.lru_cache(maxsize=1)
def _bash_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


@functools.lru_cache(maxsize=None)
def script_behaviour(text: str) -> str:
    """What a bash script does, as the text its digest is made of.

    Comments (the shebang too), blank lines and trailing whitespace are left out, so that an edit
    of them changes nothing. A here-document's body and a quoted string spanning lines are kept
    exactly, a ``#`` line in them included: they are data the script writes or passes on. A
    script bash's grammar cannot parse is kept whole, so that every edit of it counts.
    """
    source = text.encode()
    root = _bash_parser().parse(source).root_node
    if root.has_error:
        return text
    comments: list[tuple[int, int]] = []
    verbatim: list[tuple[int, int]] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if node.type == "comment":
            comments.append((node.start_byte, node.end_byte))
        elif node.type in _VERBATIM and node.start_point.row != node.end_point.row:
            verbatim.append((node.start_byte, node.end_byte))
        else:
            pending.extend(node.children)
    # Each verbatim span becomes a placeholder with no whitespace in it while the code around it is
    # tidied, so that tidying can never reach into it; then it is put back, marked as data.
    spans: list[str] = []
    code: list[str] = []
    position = 0
    for start, end, is_verbatim in sorted([(s, e, False) for s, e in comments] + [(s, e, True) for s, e in verbatim]):
        code.append(source[position:start].decode())
        if is_verbatim:
            code.append(f"\0{len(spans)}\0")
            spans.append(source[start:end].decode())
        position = end
    code.append(source[position:].decode())
    lines = [line.rstrip() for line in "".join(code).split("\n") if line.strip()]
    return re.sub(r"\0(\d+)\0", lambda found: f"\0{spans[int(found[1])]}\0", "".join(f"{line}\n" for line in lines))


def scripts_digest(scripts: Mapping[str, str]) -> str:
    """One digest of the scripts a step runs, path and behaviour: any edit but a comment changes it."""
    listing = {path: hashlib.sha256(script_behaviour(text).encode()).hexdigest() for path, text in scripts.items()}
    return hashlib.sha256(json.dumps(listing, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_scripts(paths: Sequence[str]) -> dict[str, str]:
    """The content of each script (relative to the project root); a missing one is a bug, said at once."""
    scripts = {}
    for relative in paths:
        path = ROOT / relative
        if not path.is_file():
            raise FileNotFoundError(f"k8s-lab step script {relative} is missing from {ROOT}")
        scripts[relative] = path.read_text()
    return scripts


@dataclass(frozen=True)
class Step:
    """One command resource and what later steps need from it."""

    command: local.Command
    stdout: pulumi.Output[str]
    """The command's stdout; a Pulumi secret when the step is sensitive."""

    @property
    def id(self) -> pulumi.Output[str]:
        """Changes whenever the step is replaced (pulumi-command mints a fresh id on create)."""
        return self.command.id


def command_step(
    name: str,
    *,
    parent: pulumi.Resource,
    create: str,
    environment: Mapping[str, pulumi.Input[str]],
    scripts: Sequence[str] = (),
    delete: Optional[str] = None,
    builds_on: Sequence[Step] = (),
    after: Sequence[pulumi.Resource] = (),
    fixed_identity: bool = False,
    sensitive: bool = False,
    rerun_on_script_edit: bool = True,
    stdin: Optional[pulumi.Input[str]] = None,
    in_place: Optional[Mapping[str, pulumi.Input[str]]] = None,
) -> Step:
    """Register one local command with the lab's rules.

    ``builds_on``: steps whose work this one builds on; their ids go into the triggers, so
    replacing one of them runs this step again. ``after``: ordering only (the VirtualBox chain).
    ``rerun_on_script_edit``: off for a step that only reads (see the module docstring).
    ``fixed_identity``: the step owns a name or address that cannot exist twice, so it is deleted
    before it is created again. ``sensitive``: stdout is a credential. ``stdin`` is passed as is
    and is not part of the spec hash (a changed stdin re-runs the step in place), and so are the
    ``in_place`` variables: what the step installs rather than what it is (the images a node
    imports, where its files come from), which a re-run updates without replacing anything.
    """
    # Values from other steps are named, not hashed (see the module docstring).
    spec = {key: value if isinstance(value, str) else "<from another step>" for key, value in environment.items()}
    triggers = pulumi.Output.all(spec_hash(create, delete, spec), *[step.id for step in builds_on]).apply(list)
    run_environment = {**environment, **(in_place or {})}
    if scripts and rerun_on_script_edit:
        run_environment[SCRIPTS_VARIABLE] = scripts_digest(read_scripts(scripts))
    command = local.Command(
        name,
        create=create,
        delete=delete,
        environment=run_environment,
        triggers=triggers,
        stdin=stdin,
        # The console would otherwise print a kubeconfig or a token as it streams by.
        logging=local.Logging.STDERR if sensitive else local.Logging.STDOUT_AND_STDERR,
        add_previous_output_in_env=not sensitive,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[*after, *(step.command for step in builds_on)],
            delete_before_replace=fixed_identity,
            additional_secret_outputs=["stdout"] if sensitive else None,
        ),
    )
    stdout = pulumi.Output.secret(command.stdout) if sensitive else command.stdout
    return Step(command=command, stdout=stdout)
