"""Regenerate the tiktoken encoding files shipped in ``src/stellar_graph/_data/``.

tiktoken downloads ``o200k_base`` and ``cl100k_base`` from the internet on first use, which fails
on machines without network access. stellar_graph ships the two files (gzip -9) instead and seeds
tiktoken's cache with them (see ``stellar_graph.tokens``).

The bytes come from the MIT-licensed PyPI wheel ``quicktok-v1`` 0.4.0, whose
``quicktok/data/{o200k,cl100k}.vocab`` hold the same vocabularies in a binary layout: a u32
little-endian record count, then ``count`` records of (u16 LE length, token bytes, u32 LE rank).
This script turns them back into tiktoken's text format (``base64(token) rank\\n`` sorted by
rank) and refuses to write anything whose sha256 differs from the ``expected_hash`` in the
installed tiktoken's ``tiktoken_ext/openai_public.py``, so the result is byte-identical to
OpenAI's published files.

Usage::

    pip download --no-deps -d /tmp/qt quicktok-v1==0.4.0
    python tools/make_tiktoken_data.py /tmp/qt/quicktok_v1-0.4.0-*.whl
    python tools/make_tiktoken_data.py --check      # verify the shipped files only

quicktok-v1 is never imported or installed: the wheel is read as a zip archive.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import importlib.util
import re
import struct
import sys
import zipfile
from pathlib import Path

__all__ = ["ENCODINGS", "convert_vocab", "expected_hashes", "gzip_bytes", "main"]

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "src" / "stellar_graph" / "_data"
URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# tiktoken encoding name -> member of the quicktok-v1 wheel holding its vocabulary
ENCODINGS = {
    "o200k_base": "quicktok/data/o200k.vocab",
    "cl100k_base": "quicktok/data/cl100k.vocab",
}


def convert_vocab(data: bytes) -> bytes:
    """Convert a quicktok ``.vocab`` blob into tiktoken's ``.tiktoken`` text format.

    Args:
        data: the whole ``.vocab`` file.

    Returns:
        The ``base64(token) rank`` lines, sorted by rank, each ending in ``\\n``.

    Raises:
        ValueError: if the blob is truncated, has trailing bytes, or its ranks are not exactly
            ``0..count-1``.
    """
    (count,) = struct.unpack_from("<I", data, 0)
    offset = 4
    rows: list[tuple[int, bytes]] = []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        offset += 2
        token = data[offset : offset + length]
        offset += length
        (rank,) = struct.unpack_from("<I", data, offset)
        offset += 4
        rows.append((rank, token))
    if offset != len(data):
        raise ValueError(f"vocab has {len(data) - offset} trailing bytes after {count} records")
    rows.sort()
    if [rank for rank, _ in rows] != list(range(count)):
        raise ValueError("vocab ranks are not exactly 0..count-1")
    return b"".join(base64.b64encode(tok) + b" " + str(rank).encode() + b"\n" for rank, tok in rows)


def expected_hashes() -> dict[str, str]:
    """Read each encoding's ``expected_hash`` from the installed tiktoken's source.

    Returns:
        Encoding name -> lowercase hex sha256 of its ``.tiktoken`` file.

    Raises:
        SystemExit: if tiktoken is not installed or an encoding's hash is not found.
    """
    spec = importlib.util.find_spec("tiktoken_ext.openai_public")
    if spec is None or spec.origin is None:
        raise SystemExit("tiktoken is not installed; run `pip install tiktoken` first")
    source = Path(spec.origin).read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for name in ENCODINGS:
        pattern = re.escape(URL.format(name=name)) + r'",\s*expected_hash="([0-9a-f]{64})"'
        match = re.search(pattern, source)
        if match is None:
            raise SystemExit(f"expected_hash for {name!r} not found in {spec.origin}")
        found[name] = match.group(1)
    return found


def gzip_bytes(data: bytes) -> bytes:
    """Compress with gzip level 9, no file name and mtime 0, so the output is reproducible."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _describe(name: str, raw: bytes, packed: bytes) -> str:
    return (
        f"{name}.tiktoken.gz: {len(packed):,} bytes, sha256 {hashlib.sha256(packed).hexdigest()}\n"
        f"  decompressed: {len(raw):,} bytes, sha256 {hashlib.sha256(raw).hexdigest()}\n"
        f"  tiktoken cache name: {hashlib.sha1(URL.format(name=name).encode()).hexdigest()}"
    )


def _generate(wheel: Path, hashes: dict[str, str]) -> int:
    with zipfile.ZipFile(wheel) as archive:
        vocabs = {name: archive.read(member) for name, member in ENCODINGS.items()}
    failed = 0
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name, vocab in vocabs.items():
        raw = convert_vocab(vocab)
        actual = hashlib.sha256(raw).hexdigest()
        if actual != hashes[name]:
            print(f"{name}: sha256 {actual} != tiktoken's {hashes[name]}; NOT written")
            failed += 1
            continue
        packed = gzip_bytes(raw)
        (DATA_DIR / f"{name}.tiktoken.gz").write_bytes(packed)
        print(_describe(name, raw, packed))
    return failed


def _check(hashes: dict[str, str]) -> int:
    failed = 0
    for name in ENCODINGS:
        path = DATA_DIR / f"{name}.tiktoken.gz"
        packed = path.read_bytes()
        raw = gzip.decompress(packed)
        ok = hashlib.sha256(raw).hexdigest() == hashes[name]
        failed += not ok
        print(("OK   " if ok else "BAD  ") + _describe(name, raw, packed))
    return failed


def main(argv: list[str] | None = None) -> int:
    """Generate (from a quicktok-v1 wheel) or ``--check`` the shipped encoding files.

    Args:
        argv: command-line arguments; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code: 0 when every file matches tiktoken's expected hash.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", nargs="?", type=Path, help="path to quicktok_v1-0.4.0-*.whl")
    parser.add_argument("--check", action="store_true", help="only verify the shipped files")
    args = parser.parse_args(argv)
    hashes = expected_hashes()
    if args.check:
        return 1 if _check(hashes) else 0
    if args.wheel is None:
        parser.error("give the quicktok-v1 wheel path, or --check")
    return 1 if _generate(args.wheel, hashes) else 0


if __name__ == "__main__":
    sys.exit(main())
