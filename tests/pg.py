"""A private PostgreSQL cluster for the tests (pytest plugin; see ``pytest_plugins`` in conftest).

``postgres_server`` (session) runs ``initdb`` + ``pg_ctl`` from Debian's packages in a temporary
directory, on a free 127.0.0.1 port, with ``fsync=off`` and trust auth, and stops it at the end.
``postgres_url`` (per test) creates a fresh database on it and returns its URL.

Skipped with a reason when PostgreSQL's server binaries are missing, unless ``CI`` is set: CI
must run these tests (``.ci/run`` installs the packages).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    """A running private cluster."""

    bindir: Path
    datadir: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` as the ``postgres`` superuser (trust auth)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def _bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root; as root, run the server tools as the `postgres` user.
    if os.geteuid() != 0:
        return args
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in args)]


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str]) -> None:
    proc = subprocess.run(
        _as_postgres(args), capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )


def _start(bindir: Path, root: Path) -> PostgresServer:
    datadir = root / "data"
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
    )
    last = ""
    for _ in range(3):  # the free port can be taken between probe and bind: retry on another one
        port = _free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        try:
            _run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(datadir),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            )
            return PostgresServer(bindir, datadir, port)
        except RuntimeError as exc:
            last = str(exc)
    raise RuntimeError(f"PostgreSQL did not start: {last}; log: {root / 'server.log'}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session."""
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail(
                "PostgreSQL server binaries (initdb) are missing; .ci/run installs `postgresql`."
            )
        pytest.skip("PostgreSQL server binaries (initdb) not installed: apt-get install postgresql")
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="stellar-graph-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        server = _start(bindir, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        _run([str(bindir / "pg_ctl"), "-D", str(server.datadir), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's cluster; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(name)
