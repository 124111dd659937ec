#!/usr/bin/env bash
# Size of a fresh `pip install stellar-graph` (no extras), before and after a change, side by side.
#
#   bash tools/install_size.sh [BASE_REV]      # default BASE_REV: the commit before lean installs
#
# Installs BASE_REV and the working tree, each into a new virtual environment under a temporary
# directory, and prints the installed size (site-packages) and the ten largest distributions.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE="${1:-a46b78a}"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'git -C "$ROOT" worktree remove --force "$WORK/base" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

measure() {  # measure LABEL SOURCE_DIR
  local venv="$WORK/venv-$1"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1
  "$venv/bin/python" -m pip install -q "$2" >/dev/null 2>"$WORK/pip-$1.log" || { cat "$WORK/pip-$1.log"; exit 1; }
  local site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  "$venv/bin/python" -m pip uninstall -q -y pip >/dev/null  # not part of what the package brings
  local total
  total="$(du -sm "$site" | cut -f1)"
  echo "$1: $total MB in site-packages"
  "$venv/bin/python" - "$site" <<'PY'
import importlib.metadata as md, os, sys
site = sys.argv[1]
sizes = {}
for dist in md.distributions(path=[site]):
    size = 0
    for f in dist.files or []:
        p = os.path.join(site, f)
        if os.path.isfile(p):
            size += os.path.getsize(p)
    sizes[dist.metadata["Name"]] = size
for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:10]:
    print(f"    {size / 2**20:7.1f} MB  {name}")
PY
  echo "$total" > "$WORK/$1.total"
}

git -C "$ROOT" worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
measure "before ($BASE)" "$WORK/base"
measure "after (working tree)" "$ROOT"
before="$(cat "$WORK/before ($BASE).total")"
after="$(cat "$WORK/after (working tree).total")"
echo
echo "no-extras install: before $before MB, after $after MB, ratio $(python3 -c "print(f'{$after/$before:.2f}')")x"
