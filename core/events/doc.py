"""`docs/events.md`, generated from the contracts: `python -m core.events.doc` writes
it, `python -m core.events.doc --check` fails when it is stale (a test runs the check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from core.events.catalog import CONTRACTS
from core.events.contract import EventContract, topic_name
from core.settings import TopicSettings
from core.stripe import event_types
from core.stripe.event import event_type_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"

INTRO = """\
# Events

Generated from the contracts in `core/events/` and `core/stripe/event.py` by
`python -m core.events.doc`; do not edit by hand (a test fails when this file is stale).

Every event travels in the envelope described in [architecture.md](architecture.md#event-envelope);
this page describes each event type's `data`. One msgspec Struct per event type is the
contract: the API (and the payment consumer, for `payment.processed`) builds the event
from it, the handlers decode `data` into it.

- **Tolerant reading.** Fields not listed are ignored. A field that is not required may
  be absent; producers of this platform always write every field.
- **Actor.** Where a field says it defaults to the envelope's `user_id`, the envelope's
  `user_id` is that same user, and a reader uses it when the field is absent.
- **Invalid events.** Data that does not decode, or a `schema_version` the contract does
  not read, is a permanent error: the record is parked in the dead-letter topic and the
  `dead_letters` table at once (architecture invariant 6).
- **schema_version.** Written into the envelope from the contract. A change that a reader
  of the previous version could misread raises it, and the contract then says how the
  older version reads: events written before the change may still be in the outbox or a
  topic.
"""


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        kinds = [_type(s) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(kinds)
    if "$ref" in schema:
        return "object"
    if "enum" in schema:
        return " or ".join(f'`"{v}"`' for v in schema["enum"])
    kind = str(schema.get("format", schema.get("type", "any")))
    limits = []
    if "minLength" in schema or "maxLength" in schema:
        limits.append(f"{schema.get('minLength', 0)}..{schema.get('maxLength', '')} chars")
    if "minimum" in schema or "maximum" in schema:
        limits.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    return f"{kind} ({', '.join(limits)})" if limits else kind


def _description(schema: dict[str, Any]) -> str:
    found = [schema.get("description", "")]
    found += [s.get("description", "") for s in schema.get("anyOf", [])]
    return " ".join(d for d in found if d)


def _fields(
    schema: dict[str, Any], defs: dict[str, Any], prefix: str = ""
) -> list[tuple[str, str, bool, str]]:
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        if "$ref" in prop:
            nested = defs[prop["$ref"].rsplit("/", 1)[-1]]
            rows.append((prefix + name, "object", name in required, _description(prop)))
            rows += _fields(nested, defs, f"{prefix}{name}.")
            continue
        rows.append((prefix + name, _type(prop), name in required, _description(prop)))
    return rows


def _section(contract: type[EventContract], defs: dict[str, Any]) -> list[str]:
    schema = defs[contract.__name__]
    lines = [
        f"## `{contract.event_type}`",
        "",
        schema.get("description", ""),
        "",
        f"Topic: `{contract.topic}` (default `{topic_name(TopicSettings(), contract.topic)}`)."
        f" Key: {contract.keyed_by()}. schema_version: {contract.schema_version}."
        f" Contract: `{contract.__module__}.{contract.__name__}`.",
        "",
        "| field | type | required | notes |",
        "|---|---|---|---|",
    ]
    for name, kind, required, notes in _fields(schema, defs):
        lines.append(f"| `{name}` | {kind} | {'yes' if required else 'no'} | {notes} |")
    if contract.matches(event_type_of("")):
        moving = (
            *event_types.PAYMENT_INTENT,
            *event_types.SUBSCRIPTION,
            *event_types.INVOICE_PAYMENT_STATUS,
        )
        listed = ", ".join(f"`{event_type_of(t)}`" for t in moving)
        lines += [
            "",
            f"Types that move a payment or a subscription: {listed}. Every other type is"
            " recorded as processed and changes nothing.",
        ]
    return [*lines, ""]


def render() -> str:
    _, defs = msgspec.json.schema_components(CONTRACTS)
    lines = [INTRO, "| event type | topic | key | schema_version |", "|---|---|---|---|"]
    for contract in CONTRACTS:
        lines.append(
            f"| [`{contract.event_type}`](#{_anchor(contract.event_type)}) | {contract.topic}"
            f" | {contract.keyed_by()} | {contract.schema_version} |"
        )
    lines.append("")
    for contract in CONTRACTS:
        lines += _section(contract, defs)
    return "\n".join(lines).rstrip("\n") + "\n"


def _anchor(event_type: str) -> str:
    # GitHub's heading anchors: lowercase, punctuation other than - and _ dropped.
    return "".join(c for c in event_type.lower() if c.isalnum() or c in "-_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/events.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is stale: run python -m core.events.doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
