"""`open_runtime`: both graphs compiled on one checkpointer, live on one orchestra thread.

The shortest way to run the orchestra from Python without the facade::

    async with open_runtime({"persistence": {"backend": "memory"}}, thread_id="demo") as runtime:
        state = await runtime.run({"register_agents": [...], "submit_tasks": [...]})

``runtime.run`` submits one event and returns the state once nothing is left to do by itself
(every task finished, escalated, or waiting on something only a later event can change).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from stellar_graph.agents.spec import AgentSpec
from stellar_graph.board import utc_now
from stellar_graph.config import OrchestraConfig
from stellar_graph.graph import create_orchestra
from stellar_graph.graphs.task import create_task_graph
from stellar_graph.llm import make_chat_model
from stellar_graph.persistence import open_persistence
from stellar_graph.runtime.control import OrchestraRuntime

__all__ = ["open_runtime"]


@asynccontextmanager
async def open_runtime(
    config: OrchestraConfig | Mapping[str, Any] | str | None = None,
    *,
    thread_id: str,
    model: BaseChatModel | None = None,
    agents: Sequence[AgentSpec] | None = None,
    seed: int = 0,
    clock: Callable[[], datetime] = utc_now,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
) -> AsyncIterator[OrchestraRuntime]:
    """Compile the control and task graphs and run them live on ``thread_id``.

    Args:
        config: the orchestra config; its ``persistence`` is opened unless ``checkpointer`` is given.
        thread_id: the orchestra's thread.
        model: the agents' chat model (``None``: ``config.llm``, else simulated agents).
        agents: the agent types.
        seed: simulation and learner seed.
        clock: time source.
        checkpointer: use this checkpointer (and ``store``) instead of ``config.persistence``.
        store: the LangGraph Store.

    Yields:
        The started :class:`OrchestraRuntime`; on exit it waits until idle, then closes.
    """
    cfg = OrchestraConfig.load(config)
    chat = model if model is not None else make_chat_model(cfg.llm)
    options: dict[str, Any] = {"model": chat, "agents": agents, "seed": seed, "clock": clock}
    async with AsyncExitStack() as stack:
        if checkpointer is None:
            checkpointer, store = await stack.enter_async_context(open_persistence(cfg.persistence))
        control = create_orchestra(cfg, **options).compile(checkpointer=checkpointer, store=store, name="stellar_orchestra")
        tasks = create_task_graph(cfg, **options).compile(checkpointer=checkpointer, store=store, name="stellar_task")
        runtime = OrchestraRuntime(control, tasks, thread_id=thread_id, durability=cfg.persistence.durability)
        await runtime.start()
        try:
            yield runtime
            await runtime.wait_idle()
        finally:
            await runtime.close()
