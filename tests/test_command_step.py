"""The scripts digest of components/command_step.py, against the scripts the lab's steps really run.

A step re-runs in place when the digest of its scripts changes (K8S_LAB_SCRIPTS_SHA256). The digest
is of what a script does: an edit of its comments (a `git pull` that only rewords them) must run
nothing, while an edit of a command, or of a line a here-document writes to a node (a `#` line
there included), must re-run the step.
"""

from __future__ import annotations

import re

import pytest

from components import kubeadm, vm
from components.command_step import ROOT, read_scripts, script_behaviour, scripts_digest

STEP_SCRIPTS = [vm.VAGRANT_SCRIPT, kubeadm.PREPARE_SCRIPT, kubeadm.INIT_SCRIPT, kubeadm.JOIN_SCRIPT,
                kubeadm.CNI_SCRIPT, kubeadm.KUBECONFIG_FILE_SCRIPT]  # fmt: skip


def digest(relative: str, text: str) -> str:
    return scripts_digest({relative: text})


def heredoc_lines(lines: list[str]) -> set[int]:
    """Indices of the lines inside a here-document's body (between `<<WORD` and the line `WORD`)."""
    inside, word = set(), None
    for index, line in enumerate(lines):
        if word is not None:
            if line.strip() == word:
                word = None
            else:
                inside.add(index)
            continue
        opened = re.search(r"<<-?\s*'?\"?(\w+)", line)
        if opened and "<<<" not in line:
            word = opened[1]
    return inside


def comment_only_edits(text: str) -> dict[str, str]:
    """Edits a `git pull` may bring that touch comments only, each applied to the whole script."""
    lines = text.split("\n")
    heredoc = heredoc_lines(lines)
    comment = [i for i, line in enumerate(lines) if re.match(r"\s*#", line) and i not in heredoc and i > 0]
    assert comment, "the script has no comment line to edit"
    header_end = next(i for i in range(1, len(lines)) if not lines[i].startswith("#"))
    strict = lines.index("set -euo pipefail")
    return {
        "a comment line added after the shebang": "\n".join([lines[0], "# an added comment", *lines[1:]]),
        "every comment line reworded": "\n".join(
            re.sub(r"#.*", "# reworded", line) if i in comment else line for i, line in enumerate(lines)
        ),
        "the header comment removed": "\n".join([lines[0], *lines[header_end:]]),
        "every comment line removed": "\n".join(line for i, line in enumerate(lines) if i not in comment),
        "a comment after a command": "\n".join(
            f"{line}  # stop at the first error" if i == strict else line for i, line in enumerate(lines)
        ),
        "blank lines and trailing spaces": "\n".join(f"{line}   \n" if i == strict else line for i, line in enumerate(lines)),
        "a comment at the end": text + "\n# the end\n",
        "another shebang": "\n".join(["#!/bin/bash", *lines[1:]]),
    }


@pytest.mark.parametrize("relative", STEP_SCRIPTS)
def test_a_comment_only_edit_keeps_the_digest(relative):
    text = read_scripts([relative])[relative]
    for edit, edited in comment_only_edits(text).items():
        assert edited != text, edit
        assert digest(relative, edited) == digest(relative, text), f"{relative}: {edit} changed the digest"


@pytest.mark.parametrize("relative", STEP_SCRIPTS)
def test_a_command_edit_changes_the_digest_and_its_comment_does_not(relative):
    text = read_scripts([relative])[relative]
    traced = text.replace("set -euo pipefail", "set -euxo pipefail", 1)
    assert digest(relative, traced) != digest(relative, text)
    commented = text.replace("set -euo pipefail", "set -euo pipefail # -x to trace", 1)
    assert digest(relative, commented) == digest(relative, text)


def test_a_hash_line_inside_a_here_document_is_content():
    # node-image.sh writes a systemd unit from a here-document: a `#` line there reaches the
    # node's file, the same line one line above the here-document does not.
    relative = "scripts/node-image.sh"
    text = read_scripts([relative])[relative]
    unit = "cat >\"$root/etc/systemd/system/k8s-lab-shared-root.service\" <<'UNIT'\n[Unit]\n"
    assert unit in text
    inside = text.replace(unit, unit + "# managed by k8s-lab\n", 1)
    outside = text.replace(unit, "# managed by k8s-lab\n  " + unit, 1)
    assert digest(relative, inside) != digest(relative, text)
    assert digest(relative, outside) == digest(relative, text)
    # Its blank lines and spaces are content too.
    assert digest(relative, text.replace(unit, unit + "\n", 1)) != digest(relative, text)
    assert digest(relative, text.replace("[Unit]\n", "[Unit]  \n", 1)) != digest(relative, text)


def test_a_hash_line_inside_a_quoted_string_spanning_lines_is_content():
    # vagrant.sh hands awk a program in a quoted string over several lines: its text is data.
    relative = vm.VAGRANT_SCRIPT
    text = read_scripts([relative])[relative]
    program = "awk -v name=\"$1\" -v provider=\"$2\" -v version=\"$3\" '\n"
    assert program in text
    inside = text.replace(program, program + "    # first field: the box name\n", 1)
    outside = text.replace(program, "# first field: the box name\n  " + program, 1)
    assert digest(relative, inside) != digest(relative, text)
    assert digest(relative, outside) == digest(relative, text)


@pytest.mark.parametrize("relative", STEP_SCRIPTS)
def test_comments_are_told_apart_where_bash_parses_and_nowhere_else(relative):
    text = (ROOT / relative).read_text()
    behaviour = script_behaviour(text)
    # Every step script parses: what is left has no comment line and is not the text as it was.
    assert behaviour != text
    code = re.sub(r"\0[^\0]*\0", "", behaviour)  # here-documents and strings spanning lines are data
    assert not [line for line in code.split("\n") if line.lstrip().startswith("#")]
    assert "set -euo pipefail\n" in behaviour
    # A script bash's grammar cannot parse is taken whole: every edit of it counts, comments too.
    broken = text + "\nif then fi ((\n"
    assert script_behaviour(broken) == broken
    assert digest(relative, broken + "# a comment\n") != digest(relative, broken)
