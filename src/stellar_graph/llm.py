"""The chat model: ``ChatOpenAI`` built from config, with plain ``httpx`` clients.

Any OpenAI-compatible endpoint works through the usual variables (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``) or the config. Plain httpx clients are passed because openai 3.x otherwise
uses its own HTTP stack, which respx (our tests) and users' transport settings do not reach.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel

from stellar_graph.config import LLMConfig
from stellar_graph.errors import ConfigurationError

__all__ = ["MODEL_ENV", "ChatModels", "make_chat_model", "model_secrets"]

MODEL_ENV = "STELLAR_GRAPH_MODEL"
"""Setting this (e.g. ``gpt-4o-mini``) turns simulated agents into real LLM agents."""


def make_chat_model(config: LLMConfig, **overrides: Any) -> BaseChatModel | None:
    """Build ``ChatOpenAI`` if a model is configured (``model=`` override, config or
    ``STELLAR_GRAPH_MODEL``), else ``None``.

    Returns:
        The chat model, or ``None`` meaning "simulate the agents".
    """
    name = overrides.pop("model", None) or config.model or os.environ.get(MODEL_ENV)
    if not name:
        return None
    ChatOpenAI = chat_openai_class()

    timeout = httpx.Timeout(config.timeout_seconds)
    kwargs: dict[str, Any] = {
        "model": name,
        "temperature": config.temperature,
        "timeout": config.timeout_seconds,
        "max_retries": config.max_retries,
        "http_client": httpx.Client(timeout=timeout),
        "http_async_client": httpx.AsyncClient(timeout=timeout),
        # Token counting must work for proxy model names too (tiktoken only knows OpenAI's).
        "tiktoken_model_name": "gpt-4o",
    }
    if config.base_url:
        kwargs["base_url"] = config.base_url
    kwargs.update(overrides)
    model: BaseChatModel = ChatOpenAI(**kwargs)
    return model


def chat_openai_class() -> Any:
    """``langchain_openai.ChatOpenAI``, imported when a model is configured (simulated runs never
    need it).

    Raises:
        ConfigurationError: the ``openai`` extra is not installed; the message says how to install it.
    """
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise ConfigurationError(
            f"A chat model is configured but {exc.name!r} is not installed. Fix: pip install "
            "'stellar-graph[openai]', or unset the model (llm.model, STELLAR_GRAPH_MODEL) to simulate the agents.",
            field="llm.model",
        ) from None
    return ChatOpenAI


def model_secrets(model: Any) -> list[str]:
    """The credentials a chat model sends (its API key, and ``OPENAI_API_KEY``): an endpoint may
    echo them in an error body, which must not reach checkpoints, reports or logs."""
    import os

    found: list[object] = [os.environ.get("OPENAI_API_KEY")]
    for name in ("openai_api_key", "api_key"):
        value = getattr(model, name, None)
        reveal = getattr(value, "get_secret_value", None)
        found.append(reveal() if callable(reveal) else value)
    return [s for s in found if isinstance(s, str) and s]


class ChatModels:
    """Chat models by name, each built once from one ``llm`` config: the models agent types and
    instances name (``AgentSpec.model``, ``AgentProfile.model``)."""

    def __init__(self, config: LLMConfig | None = None) -> None:
        self._config = config or LLMConfig()
        self._built: dict[str, BaseChatModel] = {}

    def __call__(self, name: str) -> BaseChatModel:
        """The model called ``name`` (built on first use)."""
        if name not in self._built:
            model = make_chat_model(self._config, model=name)
            assert model is not None  # a name was given
            self._built[name] = model
        return self._built[name]
