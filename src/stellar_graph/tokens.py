"""Offline token counting with tiktoken.

tiktoken downloads its encoding files from the internet the first time an encoding is used, which
fails on machines without network access (CI, air-gapped deployments). stellar_graph ships
``o200k_base`` and ``cl100k_base`` (gzip, in ``stellar_graph/_data``) and seeds tiktoken's cache
directory with them: tiktoken looks for ``$TIKTOKEN_CACHE_DIR/<sha1(url)>`` on every load and
accepts a cached file whose sha256 equals its ``expected_hash``, so after
:func:`ensure_offline_encodings` both ``tiktoken.get_encoding`` and langchain-openai's
``ChatOpenAI.get_num_tokens_from_messages`` work without a network.

Example:
    >>> count_tokens("hello world")
    2
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import os
import tempfile
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken.model
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage

from stellar_graph.errors import ConfigurationError, InvalidInputError

__all__ = [
    "DEFAULT_ENCODING",
    "SHIPPED_ENCODINGS",
    "count_message_tokens",
    "count_tokens",
    "encoding_for",
    "ensure_offline_encodings",
]

logger = logging.getLogger(__name__)

DEFAULT_ENCODING = "o200k_base"
"""Encoding used for model names tiktoken does not know (custom or proxy names)."""

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# sha256 of the decompressed files: tiktoken's ``expected_hash`` in
# tiktoken_ext/openai_public.py (checked against the installed tiktoken by the tests).
_EXPECTED_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
SHIPPED_ENCODINGS: tuple[str, ...] = tuple(_EXPECTED_SHA256)
"""Encodings whose files ship with stellar_graph and work offline."""

# Module-level so tests can point it at a directory holding a corrupted file.
_DATA_DIR = Path(__file__).resolve().parent / "_data"

# OpenAI's chat accounting (gpt-3.5-turbo and later): every message is wrapped as
# <|start|>{role/name}\n{content}<|end|>\n, and every reply is primed with <|start|>assistant.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMER = 3
# OpenAI does not document how tool_call_id is billed; langchain-openai uses 3 and we match it.
_TOKENS_PER_TOOL_CALL_ID = 3

# langchain-core message.type -> OpenAI role
_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
}

_lock = threading.Lock()
_seeded: set[str] = set()


@dataclass(frozen=True)
class _Shipped:
    name: str
    sha256: str

    @property
    def cache_key(self) -> str:
        # tiktoken names cache entries by the sha1 of the download URL.
        return hashlib.sha1(_URL.format(name=self.name).encode()).hexdigest()

    @property
    def source(self) -> Path:
        return _DATA_DIR / f"{self.name}.tiktoken.gz"


_SHIPPED = tuple(_Shipped(name, sha) for name, sha in _EXPECTED_SHA256.items())


def ensure_offline_encodings(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Seed tiktoken's cache with the shipped encoding files so tiktoken never downloads them.

    The directory is, in order: ``cache_dir``; an already-set ``TIKTOKEN_CACHE_DIR``;
    ``$STELLAR_GRAPH_CACHE_DIR/tiktoken``; ``~/.cache/stellar_graph/tiktoken``. Missing or
    damaged cache files are (re)written atomically (temporary file + ``os.replace``), so
    concurrent threads and processes are safe. ``TIKTOKEN_CACHE_DIR`` is set to the directory
    when it was unset (or empty, which would make tiktoken download every time). The work is done
    once per directory per process; later calls only compute the directory.

    Args:
        cache_dir: directory to seed. When given while ``TIKTOKEN_CACHE_DIR`` names another
            directory, that variable is left alone and a warning is logged, because tiktoken
            will keep reading the variable's directory.

    Returns:
        The seeded directory.

    Raises:
        ConfigurationError: if a shipped file is missing or corrupted (the message names the
            file, the expected and the actual sha256), or the directory cannot be written.
    """
    directory, set_env = _pick_cache_dir(cache_dir)
    key = str(directory)
    if key not in _seeded:
        with _lock:
            if key not in _seeded:
                for shipped in _SHIPPED:
                    _seed_one(shipped, directory)
                _seeded.add(key)
                logger.debug("tiktoken encodings ready in %s", directory)
    if set_env:
        os.environ["TIKTOKEN_CACHE_DIR"] = key
    return directory


def _pick_cache_dir(cache_dir: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Return (directory, whether TIKTOKEN_CACHE_DIR must be set to it)."""
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    if env == "":
        logger.warning(
            "TIKTOKEN_CACHE_DIR is empty, which disables tiktoken's cache and makes it download "
            "every encoding; stellar_graph replaces it with a cache directory so that token "
            "counting works offline"
        )
        env = None
    if cache_dir is not None:
        directory = Path(cache_dir).expanduser().absolute()
        if env is not None and Path(env).absolute() != directory:
            logger.warning(
                "Seeding %s, but TIKTOKEN_CACHE_DIR=%r is where tiktoken looks; "
                "unset it or pass the same directory to ensure_offline_encodings()",
                directory,
                env,
            )
        return directory, env is None
    if env is not None:
        # Used as given (no ~ expansion): tiktoken joins it as-is.
        return Path(env), False
    root = os.environ.get("STELLAR_GRAPH_CACHE_DIR") or "~/.cache/stellar_graph"
    return (Path(root).expanduser() / "tiktoken").absolute(), True


def _seed_one(shipped: _Shipped, directory: Path) -> None:
    target = directory / shipped.cache_key
    if _has_hash(target, shipped.sha256):
        return
    if target.exists():
        logger.warning("Replacing damaged tiktoken cache file %s (%s)", target, shipped.name)
    data = _read_shipped(shipped)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{shipped.cache_key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot write tiktoken's cache file {str(target)!r}: {exc}. Fix: point "
            f"TIKTOKEN_CACHE_DIR or STELLAR_GRAPH_CACHE_DIR at a writable directory.",
            field="TIKTOKEN_CACHE_DIR",
            value=str(directory),
        ) from exc


def _has_hash(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def _read_shipped(shipped: _Shipped) -> bytes:
    """Decompress a shipped file and check it against tiktoken's expected sha256."""
    source = shipped.source
    fix = "Fix: reinstall stellar_graph, or regenerate it with tools/make_tiktoken_data.py."
    try:
        data = gzip.decompress(source.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise ConfigurationError(
            f"Shipped tiktoken file {str(source)!r} cannot be read: {exc}. {fix}",
            field="tiktoken_data",
            value=str(source),
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != shipped.sha256:
        raise ConfigurationError(
            f"Shipped tiktoken file {str(source)!r} is corrupted: the sha256 of its "
            f"decompressed bytes is {actual!r}, expected {shipped.sha256!r} "
            f"({shipped.name}). {fix}",
            field="tiktoken_data",
            value=str(source),
        )
    return data


@functools.lru_cache(maxsize=256)
def encoding_for(model: str = "gpt-4o") -> tiktoken.Encoding:
    """Return the tiktoken encoding of an OpenAI model, working offline.

    Args:
        model: model name, e.g. ``"gpt-4o-mini"`` or ``"gpt-4"``. Names tiktoken does not know
            (custom or proxy names) and models whose encoding is not shipped (pre-GPT-3.5
            models using ``p50k_base``/``r50k_base``/``gpt2``) get ``o200k_base``.

    Returns:
        The encoding; the same object for the same name.

    Raises:
        ConfigurationError: if the shipped files cannot be installed (see
            :func:`ensure_offline_encodings`).
    """
    ensure_offline_encodings()
    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        logger.debug("Unknown model %r for tiktoken; counting with %s", model, DEFAULT_ENCODING)
        name = DEFAULT_ENCODING
    if name not in _EXPECTED_SHA256:
        # Any other encoding would make tiktoken download it, which fails offline.
        logger.warning(
            "Model %r uses %s, which is not shipped for offline use; counting with %s instead",
            model,
            name,
            DEFAULT_ENCODING,
        )
        name = DEFAULT_ENCODING
    return tiktoken.get_encoding(name)


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    """Count the tokens of a text for a model, offline.

    Special-token strings such as ``"<|endoftext|>"`` are counted as ordinary text, as the
    OpenAI API treats them in user content.

    Args:
        text: the text.
        model: model name (see :func:`encoding_for`).

    Returns:
        The number of tokens.

    Raises:
        ConfigurationError: if the shipped encoding files cannot be installed.
    """
    return len(encoding_for(model).encode_ordinary(text))


def count_message_tokens(
    messages: Sequence[BaseMessage | Mapping[str, str]], model: str = "gpt-4o"
) -> int:
    """Count the prompt tokens of chat messages with OpenAI's chat accounting, offline.

    Each message costs 3 tokens plus the tokens of its role and content (plus its name and 1
    more when it has one), and the reply primer adds 3. Like langchain-openai, tool calls count
    their function name and JSON arguments, and a ``tool_call_id`` counts 3. Plain mappings are
    counted as OpenAI's cookbook does: every value is text.

    Args:
        messages: langchain-core messages, or mappings such as
            ``{"role": "user", "content": "hi"}``.
        model: model name (see :func:`encoding_for`).

    Returns:
        The number of prompt tokens the messages use.

    Raises:
        InvalidInputError: if a message is neither a chat message nor a mapping, or holds a
            non-text content block (image, audio, file), which this function cannot count.
        ConfigurationError: if the shipped encoding files cannot be installed.
    """
    encoding = encoding_for(model)
    total = _REPLY_PRIMER
    for index, message in enumerate(messages):
        fields = _message_fields(message, index)
        total += _TOKENS_PER_MESSAGE
        for key, value in fields.items():
            total += _count_value(encoding, key, value, index)
    return total


def _message_fields(message: object, index: int) -> Mapping[str, Any]:
    if isinstance(message, BaseMessage):
        return _base_message_fields(message, index)
    if isinstance(message, Mapping):
        return message
    raise InvalidInputError(
        f"messages[{index}] is {type(message).__name__} ({message!r:.80}), not a chat message. "
        f"Fix: pass langchain_core messages or mappings like {{'role': 'user', 'content': ...}}.",
        errors=[{"field": f"messages[{index}]", "value": message, "message": "not a message"}],
    )


def _base_message_fields(message: BaseMessage, index: int) -> dict[str, Any]:
    if isinstance(message, ChatMessage):
        role = message.role
    elif message.type in _ROLES:
        role = _ROLES[message.type]
    else:
        raise InvalidInputError(
            f"messages[{index}] has type {message.type!r}, which is not sent to the model. "
            f"Fix: pass only system, human, ai, tool, function or chat messages.",
            errors=[{"field": f"messages[{index}]", "value": message.type, "message": "type"}],
        )
    fields: dict[str, Any] = {"role": role, "content": message.content}
    name = message.name or message.additional_kwargs.get("name")
    if name:
        fields["name"] = name
    if isinstance(message, AIMessage):
        calls = [(c["name"], json.dumps(c["args"], ensure_ascii=False)) for c in message.tool_calls]
        calls += [(c.get("name") or "", c.get("args") or "") for c in message.invalid_tool_calls]
        if calls:
            fields["tool_calls"] = calls
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id:
        fields["tool_call_id"] = tool_call_id
    return fields


def _count_value(encoding: tiktoken.Encoding, key: str, value: Any, index: int) -> int:
    if key == "tool_call_id":
        return _TOKENS_PER_TOOL_CALL_ID
    if key == "tool_calls":
        return sum(len(encoding.encode_ordinary(part)) for call in value for part in call)
    if not value:
        return 0
    if isinstance(value, str):
        count = len(encoding.encode_ordinary(value))
    elif isinstance(value, list):
        count = sum(len(encoding.encode_ordinary(_block_text(b, index))) for b in value)
    else:
        count = len(encoding.encode_ordinary(str(value)))
    return count + (_TOKENS_PER_NAME if key == "name" else 0)


def _block_text(block: object, index: int) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, Mapping) and block.get("type") == "text":
        return str(block.get("text", ""))
    kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
    raise InvalidInputError(
        f"messages[{index}] has a {kind!r} content block; only text can be counted. "
        f"Fix: count images, audio and files separately and pass only the text blocks.",
        errors=[{"field": f"messages[{index}].content", "value": kind, "message": "not text"}],
    )
