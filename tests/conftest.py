"""Shared fixtures: no network, no real provider, offline tokenizer, fresh data dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stellar_graph.tokens import ensure_offline_encodings

pytest_plugins = ["tests.pg"]  # the private PostgreSQL cluster fixtures

FIXED_NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-live", action="store_true", help="run tests marked `live` (real LLM provider)"
    )


def pytest_configure(config: pytest.Config) -> None:
    # Seed tiktoken's cache once for the session (tests never download encodings).
    cache = Path(config.rootpath) / ".pytest_cache" / "tiktoken"
    os.environ.setdefault("STELLAR_GRAPH_CACHE_DIR", str(cache.parent))
    ensure_offline_encodings()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-live"):
        return
    skip = pytest.mark.skip(reason="live test: pass --run-live")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_real_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Dummy keys, no configured model, and a private data dir for every test."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("STELLAR_GRAPH_MODEL", raising=False)
    monkeypatch.delenv("STELLAR_GRAPH_DATABASE_URL", raising=False)
    monkeypatch.setenv("STELLAR_GRAPH_DATA_DIR", str(tmp_path / "data"))
    yield


@pytest.fixture
def fixed_clock():
    return lambda: FIXED_NOW
