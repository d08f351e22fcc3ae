"""Time per phase of a real ``pulumi up``, from its engine event log.

    PULUMI_DEBUG_COMMANDS=true ./lab up --event-log up.jsonl      # or pulumi up --stack lab ...
    python3 -m tools.eventlog up.jsonl [--stack lab]

The CLI offers ``--event-log`` only with ``PULUMI_DEBUG_COMMANDS=true``. The file holds one JSON
engine event per line (``sdk/go/common/apitype/events.go``'s ``EngineEvent``): ``sequence``,
``timestamp`` (whole Unix seconds, so every time here is +-1 s) and one payload, e.g.
``resourcePreEvent`` / ``resOutputsEvent`` / ``resOpFailedEvent`` with ``metadata.urn``,
``metadata.type`` and ``metadata.op``, ``diagnosticEvent``, ``preludeEvent``, ``summaryEvent``.

A phase (see :mod:`tools.stepgraph`) lasts from the first pre-event of its steps to the last
outputs (or failure) event of its steps. The time to the first successful curl is when the
self-check step's outputs arrive, counted from the update's first event. ``pulumi up --yes``
logs the update alone; preview events, should a log hold any (``planning``, or a run whose
summary says ``isPreview``), are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from tools import stepgraph as sg

RESOURCE_EVENTS = ("resourcePreEvent", "resOutputsEvent", "resOpFailedEvent")


def read(path: Path) -> list[dict]:
    """The events of a log file, in sequence order. A line cut short by an interrupted run is skipped."""
    events = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return sorted(events, key=lambda e: e.get("sequence", 0))


def split_urn(urn: str) -> tuple[list[str], str]:
    """``urn:pulumi:stack::project::a$b$type::name`` -> (``[a, b, type]``, ``name``)."""
    parts = urn.split("::", 3)
    if len(parts) < 4:
        return [], urn
    return parts[2].split("$"), parts[3]


def _kind(event: dict) -> Optional[str]:
    return next((k for k in event if k.endswith("Event")), None)


def update_events(events: list[dict]) -> list[dict]:
    """The events of the (last) update in a log: each run opens with a prelude and closes with a
    summary, and one whose summary says ``isPreview`` is a preview."""
    runs: list[list[dict]] = [[]]
    for event in events:
        if "preludeEvent" in event and runs[-1]:
            runs.append([])
        runs[-1].append(event)
    updates = [r for r in runs if not any(e.get("summaryEvent", {}).get("isPreview") for e in r)]
    chosen = updates[-1] if updates else runs[-1]
    return [e for e in chosen if not (e.get(_kind(e) or "", {}) or {}).get("planning")]


@dataclass
class Phase:
    name: str
    steps: set[str] = field(default_factory=set)
    start: Optional[int] = None
    end: Optional[int] = None
    failed: int = 0
    ops: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> Optional[int]:
        return None if self.start is None or self.end is None else self.end - self.start


@dataclass
class Report:
    origin: Optional[int]  # timestamp of the update's first event
    total_seconds: Optional[int]  # from the summary event, else first to last event
    phases: dict[str, Phase]
    first_curl: Optional[int]  # seconds from origin to the self-check's outputs; None: none succeeded
    self_check: str  # "ok", "failed", or "absent"
    errors: list[tuple[str, str]]  # (resource name, message) of each error a resource reported
    result: str  # "succeeded", "failed", or "incomplete" (no summary: interrupted)


def _is_step(types: list[str], local_packages: frozenset[str]) -> bool:
    type_ = types[-1] if types else ""
    return (
        type_ != sg.STACK_TYPE
        and not type_.startswith(sg.PROVIDER_PREFIX)
        and type_.split(":", 1)[0] not in local_packages
    )


def report(events: Iterable[dict], cfg: Any = None, local_packages: frozenset[str] = sg.LOCAL_PACKAGES) -> Report:
    events = update_events(list(events))
    names = sg.Names.of(cfg)
    ignore = (names.stack, *names.nodes)
    parents: dict[str, str] = {}
    for event in events:
        metadata = (event.get(_kind(event) or "") or {}).get("metadata") or {}
        for state in (metadata.get("new"), metadata.get("old")):
            if state and state.get("parent"):
                parents.setdefault(metadata.get("urn", ""), state["parent"])

    def ancestors(urn: str) -> list[tuple[str, str]]:
        chain, seen = [], set()
        types, _ = split_urn(urn)
        parent = parents.get(urn)
        for type_ in reversed(types[:-1]):  # the URN lists its parents' types, outermost first
            name = split_urn(parent)[1] if parent and parent not in seen else ""
            chain.append((type_, name))
            if parent:
                seen.add(parent)
                parent = parents.get(parent)
        return chain

    phases: dict[str, Phase] = {}
    origin = min((e["timestamp"] for e in events if "timestamp" in e), default=None)
    first_curl, self_check, errors, summary = None, "absent", [], None
    for event in events:
        kind = _kind(event)
        stamp = event.get("timestamp")
        if kind == "summaryEvent":
            summary = event["summaryEvent"]
        if kind == "diagnosticEvent" and event[kind].get("severity") == "error" and event[kind].get("urn"):
            errors.append((split_urn(event[kind]["urn"])[1], event[kind].get("message", "")))
        if kind not in RESOURCE_EVENTS or stamp is None:
            continue
        metadata = event[kind].get("metadata") or {}
        urn = metadata.get("urn", "")
        types, name = split_urn(urn)
        if not _is_step(types, local_packages):
            continue
        inputs = ((metadata.get("new") or {}).get("inputs")) or {}
        phase_name = sg.classify(types[-1], name, ancestors(urn), inputs, ignore, by_names=True)
        phase = phases.setdefault(phase_name, Phase(phase_name))
        phase.steps.add(urn)
        if kind == "resourcePreEvent":
            phase.start = stamp if phase.start is None else min(phase.start, stamp)
            op = metadata.get("op", "?")
            phase.ops[op] = phase.ops.get(op, 0) + 1
        else:
            phase.end = stamp if phase.end is None else max(phase.end, stamp)
            if kind == "resOpFailedEvent":
                phase.failed += 1
        if phase_name == "selfcheck":
            if kind == "resOutputsEvent" and self_check != "failed":
                self_check = "ok"
                first_curl = stamp - origin if first_curl is None else min(first_curl, stamp - origin)
            elif kind == "resOpFailedEvent":
                self_check = "failed"
    if summary is not None:
        total = summary.get("durationSeconds")
    else:
        last = max((e["timestamp"] for e in events if "timestamp" in e), default=None)
        total = None if origin is None else last - origin
    failed = bool(errors) or any(p.failed for p in phases.values())
    if summary is None:
        result = "incomplete"
    else:  # newer CLIs say so in the summary
        result = summary.get("result") or ("failed" if failed else "succeeded")
    ordered = {p: phases[p] for p in (*sg.PHASES, sg.UNCLASSIFIED) if p in phases}
    return Report(origin, total, ordered, first_curl, self_check, errors, result)


def _seconds(value: Optional[int]) -> str:
    return "-" if value is None else f"{value} s"


def format_report(r: Report) -> str:
    rows = []
    for phase in r.phases.values():
        start = None if phase.start is None or r.origin is None else phase.start - r.origin
        end = None if phase.end is None or r.origin is None else phase.end - r.origin
        ops = ", ".join(f"{n} {op}" for op, n in sorted(phase.ops.items()))
        failed = f", {phase.failed} failed" if phase.failed else ""
        rows.append([phase.name, str(len(phase.steps)), f"+{_seconds(start)}", f"+{_seconds(end)}", _seconds(phase.seconds), ops + failed])
    header = ["phase", "steps", "first start", "last end", "duration", "operations"]
    widths = [max(len(c) for c in column) for column in zip(header, *rows)] if rows else [len(h) for h in header]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    lines = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    curl = {
        "ok": f"+{_seconds(r.first_curl)}",
        "failed": "never: the self-check failed",
        "absent": "no self-check step in this run",
    }[r.self_check]
    lines += [
        "",
        f"update {r.result}, {_seconds(r.total_seconds)} in all (event times are whole seconds)",
        f"first successful curl: {curl}",
    ]
    for name, message in r.errors:
        text = " | ".join(line.strip() for line in message.splitlines() if line.strip())
        lines.append(f"error in {name}: {text[:300]}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.eventlog", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the file `pulumi up --event-log FILE` wrote")
    parser.add_argument("--stack", help="read node names from Pulumi.<stack>.yaml (better phase names)")
    args = parser.parse_args(argv)
    cfg = None
    if args.stack:
        from tools import graph

        cfg = graph.config(args.stack)
    print(format_report(report(read(args.file), cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
