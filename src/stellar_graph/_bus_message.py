"""Bus messages: the edge model, the compact internal envelope and the content checks.

A message is validated once, when it is sent. Plain dicts with exactly the expected types take a
hand-written fast path (the bus's throughput target leaves ~20 µs per message, and pydantic
alone costs 7-11 µs on the reference VM); anything else, including every invalid input, goes
through the pydantic :class:`Message` model, so all errors read the same.
"""

from __future__ import annotations

import json
import math
import os
import random
import reprlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from stellar_graph.errors import InvalidInputError

__all__ = [
    "DEFAULT_MAX_CONTENT_BYTES",
    "PROTOCOL_FIELDS",
    "Envelope",
    "Message",
    "check_content",
    "encode_json",
    "new_message_id",
    "parse_message",
]

DEFAULT_MAX_CONTENT_BYTES: Final = 64 * 1024

PROTOCOL_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    # Contract Net (FIPA SC00029H)
    "cfp": ("subtask_id", "deadline"),
    "propose": ("cfp_id", "score"),
    "refuse": ("cfp_id", "reason"),
    "accept-proposal": ("cfp_id",),
    "reject-proposal": ("cfp_id",),
    "inform-done": ("cfp_id", "result"),
    "failure": ("cfp_id", "reason"),
    # voting
    "proposal": ("proposal_id", "description"),
    "vote": ("proposal_id", "choice", "reason"),
    "result": ("proposal_id", "outcome"),
}
"""Message type -> content keys it must carry. Other message types are free-form."""

_FIELD_KINDS: Final = {
    "subtask_id": "id",
    "cfp_id": "id",
    "proposal_id": "id",
    "score": "number",
    "deadline": "time",
}
_MISSING: Final = object()
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80


_UUID_KEEP: Final = ~(0xF000 << 64) & ~(0xC000 << 48)
_UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


# Ids need to be unique, not secret: a private generator seeded from the OS (and reseeded in a
# forked child) avoids a syscall per id, and a user's random.seed(...) cannot make ids repeat.
_rng = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rng.seed)


def new_message_id() -> str:
    """Return a random version-4 UUID string, about 3x faster than ``str(uuid.uuid4())``."""
    h = "%032x" % ((_rng.getrandbits(128) & _UUID_KEEP) | _UUID_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _no_default(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


try:  # the C encoder built once: json.dumps(...) with options rebuilds it on every call
    from _json import make_encoder as _make_encoder

    _c_encode = _make_encoder(
        None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def encode_json(value: object) -> str:
        """Encode ``value`` as compact UTF-8-ready JSON, refusing NaN/inf and unknown types.

        Raises:
            TypeError: a value of a type JSON cannot hold.
            ValueError: NaN or an infinity.
            RecursionError: a circular or absurdly deep structure.
        """
        return "".join(_c_encode(value, 0))

except ImportError:  # pragma: no cover - interpreters without the C accelerator
    _py_encode = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
    ).encode

    def encode_json(value: object) -> str:
        """Encode ``value`` as compact JSON (pure-Python fallback)."""
        return _py_encode(value)


def check_content(message_type: object, content: object, max_bytes: int) -> str:
    """Check a message's content and return its JSON encoding.

    Args:
        message_type: the message type; protocol types need their :data:`PROTOCOL_FIELDS`.
        content: the content to check.
        max_bytes: the largest JSON encoding allowed, in UTF-8 bytes.

    Returns:
        The compact JSON encoding of ``content``.

    Raises:
        ValueError: content is not JSON-serialisable, too large, or misses protocol keys.
    """
    try:
        text = encode_json(content)
    except (TypeError, ValueError, RecursionError) as exc:
        why = "circular or too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(
            f"content must be JSON-serialisable ({why}); send dicts, lists, str, int, finite "
            f"float, bool or None only"
        ) from None
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_bytes:
        raise ValueError(
            f"content is {size} bytes as JSON, over the limit of {max_bytes} bytes; send a "
            f"reference (a path, URL or store key) instead, or raise max_content_bytes"
        )
    if isinstance(message_type, str) and message_type in PROTOCOL_FIELDS:
        _check_protocol(message_type, content, PROTOCOL_FIELDS[message_type])
    return text


def _check_protocol(message_type: str, content: object, fields: tuple[str, ...]) -> None:
    if type(content) is not dict and not isinstance(content, Mapping):
        raise ValueError(
            f"a {message_type!r} message needs a dict content with keys {list(fields)}, "
            f"got {type(content).__name__}"
        )
    for name in fields:
        if name not in content:
            missing = [f for f in fields if f not in content]
            raise ValueError(
                f"a {message_type!r} message needs content keys {list(fields)}; missing "
                f"{missing}. Add them (see stellar_graph.bus.PROTOCOL_FIELDS)"
            )
        kind = _FIELD_KINDS.get(name)
        if kind is not None:
            _check_kind(name, content[name], kind)


def _check_kind(name: str, value: object, kind: str) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "id" and not (isinstance(value, str) and value):
        raise ValueError(f"content[{name!r}]={_repr.repr(value)} must be a non-empty id string")
    if kind == "number" and not (number and math.isfinite(value)):  # type: ignore[arg-type]
        raise ValueError(f"content[{name!r}]={_repr.repr(value)} must be a finite number")
    if kind == "time" and not (number or isinstance(value, str)):
        raise ValueError(
            f"content[{name!r}]={_repr.repr(value)} must be epoch seconds or an ISO time"
        )


_Id = Annotated[str, Field(min_length=1, max_length=256)]


class Message(BaseModel):
    """One bus message as a sender writes it (validated at the edge, strict types).

    Example:
        >>> Message(sender="stellar-orchestra", recipients=["all-agents"],
        ...         message_type="emergency", priority_level=10, content={"alert": "disk"})
        Message(message_id=..., ...)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    message_id: _Id = Field(default_factory=new_message_id, description="Unique id (uuid4).")
    sender: _Id
    recipients: list[_Id] = Field(
        min_length=1,
        description="Agent ids, 'all-agents', agent types or group names "
        "('type:X' / 'group:X' / 'agent:X' disambiguate).",
    )
    message_type: str = Field(min_length=1, max_length=128)
    priority_level: int = Field(default=5, ge=1, le=10, description="10 is the most urgent.")
    content: Any = Field(
        default_factory=dict, validate_default=True, description="JSON-serialisable payload."
    )
    ttl_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    requires_ack: bool = False
    conversation_id: _Id | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC), strict=False)

    def __repr__(self) -> str:
        return f"Message(message_id={self.message_id!r}, ...)"

    @field_validator("content")
    @classmethod
    def _content(cls, v: Any, info: ValidationInfo) -> Any:
        limit = (info.context or {}).get("max_content_bytes", DEFAULT_MAX_CONTENT_BYTES)
        check_content(info.data.get("message_type"), v, limit)
        return v

    @field_validator("created_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v


_KEYS: Final = frozenset(Message.model_fields)


class Envelope:
    """A message inside the bus: a slots object shared by all its recipients.

    Receivers get envelopes from :meth:`AdvancedMessageBus.receive`; treat them (and their
    ``content``) as read-only, since a broadcast hands the same object to every recipient.

    Attributes:
        message_id, sender, message_type, priority_level, content, ttl_seconds, requires_ack,
        conversation_id: as sent.
        targets: the recipients as addressed (``("all-agents",)``).
        recipients: the agent ids they resolved to, in resolution order.
    """

    __slots__ = (
        "_expires",
        "_open",
        "_queued",
        "_routed",
        "_seq",
        "_status",
        "content",
        "conversation_id",
        "created_ts",
        "message_id",
        "message_type",
        "priority_level",
        "recipients",
        "requires_ack",
        "sender",
        "targets",
        "ttl_seconds",
    )

    def __init__(
        self,
        message_id: str,
        sender: str,
        targets: tuple[str, ...],
        message_type: str,
        priority_level: int,
        content: Any,
        ttl_seconds: float | None,
        requires_ack: bool,
        conversation_id: str | None,
        created_ts: float,
    ) -> None:
        self.message_id = message_id
        self.sender = sender
        self.targets = targets
        self.message_type = message_type
        self.priority_level = priority_level
        self.content = content
        self.ttl_seconds = ttl_seconds
        self.requires_ack = requires_ack
        self.conversation_id = conversation_id
        self.created_ts = created_ts
        self.recipients: tuple[str, ...] = ()
        self._seq = 0
        self._expires: float | None = None
        self._status: dict[str, str] = {}
        self._queued = 0  # recipients still waiting to receive it
        self._open = 0  # recipients not in a final state
        self._routed = 0  # recipients the router has handed to inboxes so far

    @property
    def created_at(self) -> datetime:
        """When the message was created (UTC)."""
        return datetime.fromtimestamp(self.created_ts, UTC)

    def to_dict(self) -> dict[str, Any]:
        """Return the message as a JSON-able dict that :class:`Message` accepts back."""
        return {
            "message_id": self.message_id,
            "sender": self.sender,
            "recipients": list(self.targets),
            "message_type": self.message_type,
            "priority_level": self.priority_level,
            "content": self.content,
            "ttl_seconds": self.ttl_seconds,
            "requires_ack": self.requires_ack,
            "conversation_id": self.conversation_id,
            "created_at": self.created_at.isoformat(),
        }

    def to_message(self) -> Message:
        """Return the message as a :class:`Message` (not re-validated)."""
        data = self.to_dict()
        data["created_at"] = self.created_at
        return Message.model_construct(**data)

    def __repr__(self) -> str:
        return (
            f"Envelope({self.message_id!r}, {self.message_type!r}, p={self.priority_level}, "
            f"{self.sender!r} -> {list(self.targets)!r})"
        )


def parse_message(data: object, max_content_bytes: int) -> tuple[Envelope, str]:
    """Validate ``data`` into an envelope (recipients not resolved yet) and its content JSON.

    Args:
        data: a :class:`Message` or a mapping of its fields.
        max_content_bytes: the content size limit.

    Returns:
        ``(envelope, content_json)``.

    Raises:
        InvalidInputError: naming each bad field, its value and a fix.
    """
    fast = _parse_fast(data, max_content_bytes)
    if fast is not None:
        return fast
    if isinstance(data, Message):
        model = data
        text = _content_json(model, max_content_bytes)
    else:
        try:
            model = Message.model_validate(data, context={"max_content_bytes": max_content_bytes})
        except ValidationError as exc:
            raise _invalid(exc, data) from None
        text = encode_json(model.content)
    env = Envelope(
        model.message_id,
        model.sender,
        tuple(model.recipients),
        model.message_type,
        model.priority_level,
        model.content,
        model.ttl_seconds,
        model.requires_ack,
        model.conversation_id,
        model.created_at.timestamp(),
    )
    return env, text


def _content_json(model: Message, max_bytes: int) -> str:
    # A Message built elsewhere was checked against the default limit, maybe not this bus's.
    try:
        return check_content(model.message_type, model.content, max_bytes)
    except ValueError as exc:
        err = {"field": "content", "value": model.content, "message": str(exc)}
        raise InvalidInputError(
            f"Invalid message {model.message_id!r}: `content`={_repr.repr(model.content)}: {exc}.",
            errors=[err],
        ) from None


def _parse_fast(data: object, limit: int) -> tuple[Envelope, str] | None:
    """The common case, checked by hand; ``None`` means "let pydantic decide".

    Accepts exactly what :class:`Message` accepts with these exact types and produces the same
    values (the test suite checks both paths against each other).
    """
    if type(data) is not dict:
        return None
    get = data.get
    sender = get("sender")
    mtype = get("message_type")
    rcpts = get("recipients")
    prio = get("priority_level", 5)
    if not (
        type(sender) is str
        and 0 < len(sender) <= 256
        and type(mtype) is str
        and 0 < len(mtype) <= 128
        and type(prio) is int
        and 1 <= prio <= 10
        and type(rcpts) is list
        and (
            (len(rcpts) == 1 and type(rcpts[0]) is str and 0 < len(rcpts[0]) <= 256)
            or _ids_ok(rcpts)
        )
    ):
        return None
    found = 4 if "priority_level" in data else 3  # known keys seen, to spot unknown ones
    mid = get("message_id", _MISSING)
    if mid is _MISSING:
        mid = new_message_id()
    elif type(mid) is str and 0 < len(mid) <= 256:
        found += 1
    else:
        return None
    content = get("content", _MISSING)
    if content is _MISSING:
        content = {}
    else:
        found += 1
    extra = len(data) - found
    ttl = ack = conv = None
    if extra:  # the optional fields, rarely present
        ttl, ack, conv, seen = _optional(data)
        if seen != extra:
            return None  # unknown key, created_at, or a value pydantic must judge
    try:
        text = check_content(mtype, content, limit)
    except ValueError:
        return None
    env = Envelope(
        mid, sender, tuple(rcpts), mtype, prio, content, ttl, bool(ack), conv, time.time()
    )
    return env, text


def _ids_ok(values: list[Any]) -> bool:
    return bool(values) and all(type(v) is str and 0 < len(v) <= 256 for v in values)


def _optional(data: dict[str, Any]) -> tuple[float | None, bool, str | None, int]:
    """ttl_seconds, requires_ack, conversation_id and how many were validly present."""
    seen = 0
    ttl = data.get("ttl_seconds", _MISSING)
    if ttl is _MISSING:
        ttl = None
    elif ttl is None or (type(ttl) in (int, float) and 0 < ttl < math.inf):
        seen += 1
        ttl = None if ttl is None else float(ttl)
    else:
        return None, False, None, -1
    ack = data.get("requires_ack", _MISSING)
    if ack is _MISSING:
        ack = False
    elif type(ack) is bool:
        seen += 1
    else:
        return None, False, None, -1
    conv = data.get("conversation_id", _MISSING)
    if conv is _MISSING:
        conv = None
    elif conv is None or (type(conv) is str and 0 < len(conv) <= 256):
        seen += 1
    else:
        return None, False, None, -1
    return ttl, ack, conv, seen


_FIXES: Final = {
    "priority_level": "use an int from 1 (lowest) to 10 (most urgent)",
    "recipients": "give a non-empty list of agent ids, 'all-agents', 'type:<AgentType>' "
    "or 'group:<name>'",
    "ttl_seconds": "give seconds > 0, or null for no expiry",
    "requires_ack": "give true or false",
    "message_id": "omit it to get a fresh uuid4, or give a non-empty string",
}


def _invalid(exc: ValidationError, data: object) -> InvalidInputError:
    errors, parts = [], []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field; allowed fields: {sorted(_KEYS)}"
        elif err["type"] == "missing":
            msg = "required field is missing; add it"
        elif not err["type"].startswith("value_error") and str(err["loc"][0]) in _FIXES:
            msg = f"{msg}; {_FIXES[str(err['loc'][0])]}"
        parts.append(f"`{field}`={_repr.repr(err.get('input'))}: {msg}")
        errors.append({"field": field, "value": err.get("input"), "message": msg})
    mid = data.get("message_id") if isinstance(data, Mapping) else None
    ident = f" {mid!r}" if isinstance(mid, str) else ""
    return InvalidInputError(f"Invalid message{ident}: " + "; ".join(parts) + ".", errors=errors)
