"""Time per phase from `pulumi up --event-log` files."""

import json

from harness import ROOT
from tools import eventlog
from tools.graph import config as load_config

URN = "urn:pulumi:lab::k8s-lab::"


def event(seq, stamp, kind, urn=None, op="create", planning=False, **payload):
    body = dict(payload)
    if urn is not None:
        qualified = urn.split("::")[2]
        body["metadata"] = {"op": op, "urn": urn, "type": qualified.split("$")[-1]}
    if planning:
        body["planning"] = True
    return {"sequence": seq, "timestamp": stamp, kind: body}


def test_preview_events_are_left_out_of_the_update():
    vm = URN + "k8s-lab:vm:VirtualMachine$command:local:Command::lab-k8s-cp-vm"
    events = [
        event(0, 100, "preludeEvent", config={}),
        event(1, 100, "resourcePreEvent", vm, planning=True),
        event(2, 100, "summaryEvent", isPreview=True, durationSeconds=0),
        event(3, 105, "preludeEvent", config={}),
        event(4, 106, "resourcePreEvent", vm),
        event(5, 146, "resOutputsEvent", vm),
        event(6, 147, "summaryEvent", isPreview=False, durationSeconds=42),
    ]
    result = eventlog.report(events)
    assert result.origin == 105 and result.total_seconds == 42 and result.result == "succeeded"
    assert result.phases["vm"].ops == {"create": 1}
    assert (result.phases["vm"].start, result.phases["vm"].seconds) == (106, 40)
    assert result.self_check == "absent"


def test_a_step_named_vaguely_takes_its_phase_from_its_parents_in_the_urn():
    urn = URN + "k8s-lab:metallb:MetalLB$kubernetes:yaml/v2:ConfigFile::lab-manifest"
    result = eventlog.report([event(1, 10, "resourcePreEvent", urn), event(2, 30, "resOutputsEvent", urn)])
    assert list(result.phases) == ["metallb"] and result.result == "incomplete"


def test_an_interrupted_log_with_a_cut_line_still_reports(tmp_path):
    urn = URN + "command:local:Command::lab-init"
    lines = [json.dumps(event(1, 10, "resourcePreEvent", urn)), json.dumps(event(2, 70, "resOutputsEvent", urn))]
    path = tmp_path / "up.jsonl"
    path.write_text("\n".join(lines) + '\n{"sequence": 3, "timest')
    result = eventlog.report(eventlog.read(path))
    assert result.phases["init"].seconds == 60 and result.total_seconds == 60 and result.result == "incomplete"


# -- logs a real engine wrote --
#
# tests/fixtures/eventlog/record.sh recorded these with the Pulumi CLI (version in
# recorded-with.txt) and the command provider: `pulumi up --yes --event-log` of
# fixtures/eventlog/program, local commands named like the lab's steps that sleep a fraction of a
# second each, in a temporary directory with a file backend. The second log is the same program
# with its self-check failing (`exit 1` after printing a 503).

FIXTURES = ROOT / "tests" / "fixtures" / "eventlog"
CHAIN = ("box", "vm", "prep", "init", "cni", "metallb", "pool", "selfcheck")


def test_a_real_up_gives_every_phase_its_time_and_the_first_curl():
    result = eventlog.report(eventlog.read(FIXTURES / "up-ok.jsonl"), load_config("lab"))
    assert result.result == "succeeded" and result.errors == []
    assert set(result.phases) == {
        "box", "vm", "prep", "init", "kubeconfig", "cni", "join", "metallb", "pool", "l2", "ingress", "apps", "selfcheck"
    }  # fmt: skip
    assert {name: len(p.steps) for name, p in result.phases.items() if len(p.steps) > 1} == {"vm": 2, "prep": 2}
    assert all(p.ops == {"create": len(p.steps)} and 0 <= p.seconds <= result.total_seconds for p in result.phases.values())
    # The program's waits show in the times: each phase of its chain ends before the next starts.
    for earlier, later in zip(CHAIN, CHAIN[1:]):
        assert result.phases[earlier].end <= result.phases[later].start, (earlier, later)
    assert result.self_check == "ok"
    assert result.first_curl == result.phases["selfcheck"].end - result.origin
    assert 0 < result.first_curl <= result.total_seconds == 7


def test_a_failed_self_check_means_no_successful_curl_and_says_why():
    result = eventlog.report(eventlog.read(FIXTURES / "up-selfcheck-fails.jsonl"))
    assert result.result == "failed" and result.self_check == "failed" and result.first_curl is None
    assert result.phases["selfcheck"].failed == 1
    assert [name for name, _ in result.errors] == ["lab-self-check"] and "503" in result.errors[0][1]
    text = eventlog.format_report(result)
    assert "first successful curl: never: the self-check failed" in text
    assert "error in lab-self-check: " in text and "503" in text


def test_a_real_log_cut_short_reports_what_happened_so_far(tmp_path):
    lines = (FIXTURES / "up-ok.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if "lab-metallb-install" in line and "resOutputsEvent" in line)
    (tmp_path / "up.jsonl").write_text("\n".join(lines[:cut]) + "\n" + lines[cut][:40])
    result = eventlog.report(eventlog.read(tmp_path / "up.jsonl"))
    assert result.result == "incomplete" and result.self_check == "absent"
    assert "selfcheck" not in result.phases and result.phases["metallb"].end is None


def test_the_command_prints_the_table(capsys):
    eventlog.main([str(FIXTURES / "up-ok.jsonl"), "--stack", "lab"])
    out = capsys.readouterr().out
    assert out.startswith("| phase ") and "| metallb " in out
    assert "update succeeded, 7 s in all" in out and "first successful curl: +" in out
