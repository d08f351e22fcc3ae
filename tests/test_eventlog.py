"""Time per phase from `pulumi up --event-log` files."""

import json

from tools import eventlog

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
