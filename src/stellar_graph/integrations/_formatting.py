"""How an orchestra event reads in a notification: a title, a severity and a few fields."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

__all__ = ["EventSummary", "email_message", "slack_payload", "summarize"]

_SEVERITY = {
    "emergency": "critical",
    "agent_failure": "warning",
    "system_alert": "warning",
    "task_failed": "warning",
    "workload_imbalance": "warning",
}
_DETAIL_KEYS = ("message", "reason", "error", "summary")
_MAX_FIELDS = 10  # Slack's limit of fields in one section block
_MAX_VALUE = 300


@dataclass(frozen=True)
class EventSummary:
    """An event as people read it."""

    event_type: str
    severity: str
    title: str
    fields: tuple[tuple[str, str], ...]


def _one_line(text: str, limit: int) -> str:
    # Newlines in a title would let event text forge e-mail headers; keep titles on one line.
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def summarize(event: Mapping[str, Any]) -> EventSummary:
    """Title, severity and display fields of an event dict."""
    event_type = str(event.get("type", "event"))
    severity = str(event.get("severity") or _SEVERITY.get(event_type, "info"))
    subject = next(
        (f"{k.removesuffix('_id')} {event[k]}" for k in ("task_id", "agent_id") if event.get(k)), ""
    )
    detail = next((str(event[k]) for k in _DETAIL_KEYS if event.get(k)), "")
    title = event_type.replace("_", " ").capitalize()
    title += f": {subject}" if subject else ""
    title += f" - {detail}" if detail else ""  # ASCII: encoded words in folded subjects gain spaces
    fields = tuple(
        (key, _one_line(_as_text(value), _MAX_VALUE))
        for key, value in sorted(event.items())
        if key != "type" and value not in (None, "", [], {})
    )[:_MAX_FIELDS]
    return EventSummary(event_type, severity, _one_line(title, 200), fields)


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(summary: EventSummary, *, now: datetime | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (fallback and push notification) plus blocks."""
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    text = f"[{summary.severity.upper()}] {summary.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _one_line(text, 150)}},
    ]
    if summary.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"}
                    for k, v in summary.fields
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"stellar_graph · {summary.event_type} · {stamp}"}
            ],
        }
    )
    return {"text": _slack_escape(text), "blocks": blocks}


def email_message(
    summary: EventSummary, event: Mapping[str, Any], *, sender: str, recipients: list[str]
) -> EmailMessage:
    """A plain-text e-mail about the event."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"[stellar_graph] [{summary.severity.upper()}] {summary.title}"
    lines = [summary.title, ""]
    lines += [f"{key}: {value}" for key, value in summary.fields]
    lines += ["", "Event:", json.dumps(dict(event), default=str, indent=2, sort_keys=True)]
    message.set_content("\n".join(lines))
    return message
