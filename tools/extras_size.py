"""Installed size of stellar-graph's core and of what each extra adds, from this environment.

    python tools/extras_size.py

Walks the dependency closure of the package and of each extra through the installed
distributions' metadata (markers evaluated for this interpreter) and sums the files each
distribution installed. A fresh install is measured by ``tools/install_size.sh``; this gives the
per-extra split for the README's table without one install per extra.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re

from packaging.requirements import Requirement

PACKAGE = "stellar-graph"


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _size(dist: md.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        path = dist.locate_file(f)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Distributions ``name[extras]`` pulls in, itself included."""
    seen: set[str] = set()
    todo = [(name, extras)]
    while todo:
        current, wanted = todo.pop()
        try:
            dist = md.distribution(current)
        except md.PackageNotFoundError:
            continue
        key = _name(dist.metadata["Name"])
        if key in seen and not wanted:
            continue
        seen.add(key)
        for line in dist.requires or []:
            req = Requirement(line)
            env = {"extra": ""}
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            if req.marker is not None and "extra" not in str(req.marker) and not req.marker.evaluate(env):
                continue
            if _name(req.name) not in seen or req.extras:
                todo.append((req.name, frozenset(req.extras)))
    return seen


def main() -> None:
    sizes = {_name(d.metadata["Name"]): _size(d) for d in md.distributions()}
    core = closure(PACKAGE)
    mb = lambda names: sum(sizes.get(n, 0) for n in names) / 2**20  # noqa: E731
    print(f"{'core (no extras)':<12} {mb(core):7.1f} MB  {len(core)} distributions")
    extras = md.metadata(PACKAGE).get_all("Provides-Extra") or []
    for extra in extras:
        added = closure(PACKAGE, frozenset({extra})) - core
        biggest = sorted(added, key=lambda n: -sizes.get(n, 0))[:4]
        print(f"[{extra}]{'':<{10 - len(extra)}} +{mb(added):6.1f} MB  ({', '.join(biggest)})")


if __name__ == "__main__":
    main()
