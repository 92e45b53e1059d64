"""docs/format.md is normative: every JSON example in it parses and follows the rules it states."""

from __future__ import annotations

import json
import re
from pathlib import Path

from runjournal.format import FORMAT_VERSION, Event, Status, decode_value

FORMAT_DOC = Path(__file__).parent.parent / "docs" / "format.md"
JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)


def _examples() -> list[dict[str, object]]:
    blocks = JSON_BLOCK.findall(FORMAT_DOC.read_text(encoding="utf-8"))
    return [json.loads(block) for block in blocks]


def test_every_json_example_in_the_format_doc_parses_as_one_object() -> None:
    """Each ```json block is a single JSON object a strict parser accepts."""
    examples = _examples()
    assert len(examples) >= 10
    assert all(isinstance(example, dict) for example in examples)


def test_event_examples_use_known_kinds_statuses_and_required_fields() -> None:
    """Every event example has event, time and seg, a documented kind, and a known status."""
    kinds = {
        Event.START,
        Event.RESUME,
        Event.TAGS,
        Event.NOTE,
        Event.HEARTBEAT,
        Event.ERROR,
        Event.ALERT,
        Event.END,
    }
    events = [example for example in _examples() if "event" in example]
    assert {event["event"] for event in events} == kinds
    for event in events:
        assert isinstance(event["time"], float) and isinstance(event["seg"], int)
        if event["event"] == Event.END:
            assert event["status"] in Status.RECORDED
        if event["event"] in (Event.START, Event.RESUME):
            assert event["format"] == FORMAT_VERSION


def test_metric_examples_decode_to_numbers() -> None:
    """Metric lines have an int step and values that decode to numbers (tags included)."""
    lines = [example for example in _examples() if "m" in example]
    assert lines
    for line in lines:
        assert isinstance(line["step"], int)
        values = decode_value(line["m"])
        assert all(isinstance(v, (int, float)) for v in values.values())
