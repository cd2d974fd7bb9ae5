#!/usr/bin/env bash
# Creates .venv with the pinned requirements (once), and the graphviz `dot` binary
# that cell diagrams need. Safe to run again: it does nothing when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || "$(cat $stamp)" != "$want" ]]; then
  echo "[setup] creating .venv with requirements.txt" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > $stamp
fi

if ! command -v dot >/dev/null; then
  echo "[setup] installing graphviz (dot) for cell diagrams" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -q graphviz >/dev/null 2>&1 || \
    { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q graphviz >/dev/null 2>&1; } || \
    echo "[setup] warning: could not install graphviz; diagrams will be written as .dot only" >&2
fi
