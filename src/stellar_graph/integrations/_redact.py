"""Redaction of secrets from text that leaves the process's control: tool results a model reads,
error texts stored in checkpoints and reports.

An exact string replace misses the forms an echo takes: a JSON-escaped copy inside a JSON body,
a URL-encoded copy in a reflected query, a base64 copy in an echoed ``Authorization`` header, a
case-changed copy. Every such form of each secret is replaced, case-insensitively.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "redact_secrets"]

REDACTED = "[REDACTED]"
_MIN_SECRET = 4
"""Shorter values are not redacted (they would blank out ordinary text)."""


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret), raw.hex()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        forms |= {text, text.rstrip("=")}
    return {f for f in forms if len(f) >= _MIN_SECRET}


def redact_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of every secret (at least four characters) replaced."""
    forms = sorted({f for s in secrets if s and len(s) >= _MIN_SECRET for f in _forms(s)}, key=len, reverse=True)
    if not forms or not text:
        return text
    pattern = re.compile("|".join(re.escape(f) for f in forms), re.IGNORECASE)
    return pattern.sub(REDACTED, text)
