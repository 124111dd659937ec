"""Tests for stellar_graph.tokens: offline tiktoken encodings and token counting."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from stellar_graph import tokens
from stellar_graph.errors import ConfigurationError, InvalidInputError
from stellar_graph.tokens import (
    count_message_tokens,
    count_tokens,
    encoding_for,
    ensure_offline_encodings,
)

SRC = Path(__file__).resolve().parent.parent / "src"
# sha1 of "https://openaipublic.blob.core.windows.net/encodings/<name>.tiktoken"
CACHE_NAMES = {
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
}
SHIPPED_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}


@pytest.fixture(scope="module", autouse=True)
def _seeded_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point tiktoken at a seeded temporary cache for the whole module, then restore the env."""
    saved = {k: os.environ.get(k) for k in ("TIKTOKEN_CACHE_DIR", "STELLAR_GRAPH_CACHE_DIR")}
    os.environ.pop("TIKTOKEN_CACHE_DIR", None)
    directory = ensure_offline_encodings(tmp_path_factory.mktemp("tiktoken"))
    yield directory
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _listing(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def _seeded_listing() -> dict[str, str]:
    return {CACHE_NAMES[name]: sha for name, sha in SHIPPED_SHA256.items()}


# --- shipped data ------------------------------------------------------------------------------


def test_expected_hashes_match_installed_tiktoken_source() -> None:
    import tiktoken_ext.openai_public as public

    source = Path(public.__file__).read_text(encoding="utf-8")
    for name, sha in SHIPPED_SHA256.items():
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        match = re.search(re.escape(url) + r'",\s*expected_hash="([0-9a-f]{64})"', source)
        assert match is not None, name
        assert match.group(1) == sha == tokens._EXPECTED_SHA256[name]
        assert hashlib.sha1(url.encode()).hexdigest() == CACHE_NAMES[name]
    assert tokens.SHIPPED_ENCODINGS == ("o200k_base", "cl100k_base")


@pytest.mark.parametrize(("name", "ranks"), [("o200k_base", 199_998), ("cl100k_base", 100_256)])
def test_shipped_file_is_tiktokens_file(name: str, ranks: int) -> None:
    raw = gzip.decompress((tokens._DATA_DIR / f"{name}.tiktoken.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SHIPPED_SHA256[name]
    lines = raw.splitlines()
    assert len(lines) == ranks
    assert lines[0].split()[1] == b"0" and lines[-1].split()[1] == str(ranks - 1).encode()


# --- offline end to end (fresh process: tiktoken caches encodings per process) ------------------

_OFFLINE_SCRIPT = r"""
import json, os, socket

def _no_network(*args, **kwargs):
    raise OSError("network disabled by test")

socket.getaddrinfo = _no_network
socket.socket.connect = _no_network

import tiktoken
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

out = {}
try:
    tiktoken.get_encoding("o200k_base")
    out["before"] = "loaded"
except Exception as exc:  # proves the cache was empty and the network is off
    out["before"] = type(exc).__name__

from stellar_graph.tokens import ensure_offline_encodings

out["dir"] = str(ensure_offline_encodings())
out["env"] = os.environ["TIKTOKEN_CACHE_DIR"]
out["ids"] = {n: tiktoken.get_encoding(n).encode("hello world") for n in ("o200k_base", "cl100k_base")}
llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test")
out["chat"] = llm.get_num_tokens_from_messages(
    [SystemMessage("You are terse."), HumanMessage("hello world")]
)
print(json.dumps(out))
"""


def test_offline_end_to_end_in_fresh_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    env |= {"STELLAR_GRAPH_CACHE_DIR": str(tmp_path / "sg"), "PYTHONPATH": str(SRC)}
    env |= {"HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == "ConnectionError"
    expected_dir = tmp_path / "sg" / "tiktoken"
    assert out["dir"] == out["env"] == str(expected_dir)
    assert _listing(expected_dir) == _seeded_listing()
    assert out["ids"] == {"o200k_base": [24912, 2375], "cl100k_base": [15339, 1917]}
    # 3 + system(1) + "You are terse."(4) + 3 + user(1) + "hello world"(2) + 3 primer
    assert out["chat"] == 17


# --- ensure_offline_encodings ------------------------------------------------------------------


def test_explicit_dir_is_seeded_and_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    target = tmp_path / "explicit"
    assert ensure_offline_encodings(target) == target
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(target)
    assert _listing(target) == _seeded_listing()


def test_existing_tiktoken_cache_dir_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tk"))
    monkeypatch.setenv("STELLAR_GRAPH_CACHE_DIR", str(tmp_path / "sg"))
    assert ensure_offline_encodings() == tmp_path / "tk"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "tk")
    assert _listing(tmp_path / "tk") == _seeded_listing()
    assert not (tmp_path / "sg").exists()


def test_default_dir_is_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("STELLAR_GRAPH_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".cache" / "stellar_graph" / "tiktoken"
    assert ensure_offline_encodings() == expected
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(expected)


def test_empty_tiktoken_cache_dir_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setenv("STELLAR_GRAPH_CACHE_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="stellar_graph.tokens"):
        directory = ensure_offline_encodings()
    assert directory == tmp_path / "tiktoken"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(directory)
    assert "TIKTOKEN_CACHE_DIR is empty" in caplog.text


def test_second_call_is_idempotent_and_skips_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    first = ensure_offline_encodings(tmp_path / "c")
    stats = {p.name: p.stat().st_ino for p in first.iterdir()}

    # Only the module-level flag can make the second call succeed: any file work now raises.
    def _no_work(*args: object) -> None:
        raise AssertionError("second call touched the files")

    monkeypatch.setattr(tokens, "_seed_one", _no_work)
    assert ensure_offline_encodings(tmp_path / "c") == first
    assert ensure_offline_encodings() == first  # the exported env var names the same dir
    assert {p.name: p.stat().st_ino for p in first.iterdir()} == stats


def test_damaged_cache_file_is_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    target = tmp_path / "damaged"
    target.mkdir()
    (target / CACHE_NAMES["o200k_base"]).write_bytes(b"not a vocabulary\n")
    ensure_offline_encodings(target)
    assert _listing(target) == _seeded_listing()


def test_concurrent_calls_seed_once_without_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    target = tmp_path / "threads"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_offline_encodings(target)))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [target] * 6
    assert _listing(target) == _seeded_listing()  # no stray .tmp files


def _bad_data_dir(tmp_path: Path, o200k_payload: bytes) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "o200k_base.tiktoken.gz").write_bytes(o200k_payload)
    good = (tokens._DATA_DIR / "cl100k_base.tiktoken.gz").read_bytes()
    (data / "cl100k_base.tiktoken.gz").write_bytes(good)
    return data


def test_corrupted_shipped_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"aGVsbG8= 0\n"
    data = _bad_data_dir(tmp_path, gzip.compress(payload))
    monkeypatch.setattr(tokens, "_DATA_DIR", data)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    with pytest.raises(ConfigurationError) as info:
        ensure_offline_encodings(tmp_path / "cache")
    message = str(info.value)
    assert str(data / "o200k_base.tiktoken.gz") in message
    assert SHIPPED_SHA256["o200k_base"] in message
    assert hashlib.sha256(payload).hexdigest() in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert "TIKTOKEN_CACHE_DIR" not in os.environ  # nothing exported on failure


def test_unreadable_shipped_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_DATA_DIR", _bad_data_dir(tmp_path, b"definitely not gzip"))
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    with pytest.raises(ConfigurationError, match=r"o200k_base\.tiktoken\.gz.*cannot be read"):
        ensure_offline_encodings(tmp_path / "cache")


def test_unwritable_cache_dir_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    with pytest.raises(ConfigurationError, match="STELLAR_GRAPH_CACHE_DIR") as info:
        ensure_offline_encodings(blocker / "sub")
    assert info.value.field == "TIKTOKEN_CACHE_DIR"


# --- encodings and counting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("my-proxy/llama-in-a-trenchcoat", "o200k_base"),
    ],
)
def test_encoding_for_maps_models(model: str, name: str) -> None:
    encoding = encoding_for(model)
    assert encoding.name == name
    assert encoding is encoding_for(model) is tiktoken.get_encoding(name)


def test_unshipped_encoding_falls_back_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    encoding_for.cache_clear()
    with caplog.at_level(logging.WARNING, logger="stellar_graph.tokens"):
        assert encoding_for("text-davinci-003").name == "o200k_base"
    assert "p50k_base" in caplog.text


@pytest.mark.parametrize(
    ("text", "gpt4o", "gpt4"),
    [
        ("hello world", 2, 2),
        ("Hello, world!", 4, 4),
        ("The quick brown fox jumps over the lazy dog.", 10, 10),
        ("日本語", 2, 4),  # o200k has a token for 日本; cl100k splits 語 into two byte tokens
        ("<|endoftext|>", 7, 7),  # special-token text counts as plain text, no error
        ("", 0, 0),
    ],
)
def test_count_tokens_exact(text: str, gpt4o: int, gpt4: int) -> None:
    assert count_tokens(text) == gpt4o
    assert count_tokens(text, "gpt-4") == gpt4


def test_count_message_tokens_by_hand() -> None:
    # 3 per message + role "user" (1) + "hello world" (2) + 3 for the reply primer
    assert count_message_tokens([{"role": "user", "content": "hello world"}]) == 9
    # a name adds its tokens ("bob": 1) plus 1
    named = {"role": "user", "content": "hello world", "name": "bob"}
    assert count_message_tokens([named]) == 11
    assert count_message_tokens([HumanMessage("hello world", name="bob")]) == 11
    assert count_message_tokens([]) == 3


def test_count_message_tokens_matches_langchain_openai() -> None:
    from langchain_openai import ChatOpenAI

    messages = [
        SystemMessage("You are terse."),
        HumanMessage([{"type": "text", "text": "hello"}, "world"], name="bob"),
        AIMessage("", tool_calls=[{"name": "search", "args": {"q": "日本", "n": 3}, "id": "c1"}]),
        ToolMessage("result: 42", tool_call_id="c1"),
        AIMessage("The answer is 42."),
    ]
    for model in ("gpt-4o-mini", "gpt-4"):
        expected = ChatOpenAI(model=model, api_key="sk-test").get_num_tokens_from_messages(messages)
        assert count_message_tokens(messages, model) == expected


def test_count_message_tokens_rejects_non_text() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(InvalidInputError, match=r"messages\[1\].*'image_url'") as info:
        count_message_tokens([HumanMessage("hi"), HumanMessage([image])])
    assert info.value.field == "messages[1].content"
    with pytest.raises(InvalidInputError, match=r"messages\[0\] is int"):
        count_message_tokens([42])  # type: ignore[list-item]
