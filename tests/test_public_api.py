"""Every public name imports; every exception is re-exported from the top level."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import stellar_graph
from stellar_graph import errors


def test_all_names_import() -> None:
    for name in stellar_graph.__all__:
        assert getattr(stellar_graph, name) is not None
    assert len(stellar_graph.__all__) <= 30  # ~25 by the style guide; the exception tree counts for 12


def test_every_public_module_declares_all() -> None:
    for info in pkgutil.walk_packages(stellar_graph.__path__, "stellar_graph."):
        if info.name.rsplit(".", 1)[-1].startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.{name}"


def test_every_exception_is_reexported() -> None:
    classes = {n for n, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception) and c.__module__ == errors.__name__}
    assert classes <= set(stellar_graph.__all__)
