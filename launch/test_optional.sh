#!/usr/bin/env bash
# The optional reference suite: logits parity of imported weights with timm (PNASNet-5
# Large, NASNet-A Large) and with full-size Keras NASNetLarge. Installs
# requirements-reference.txt into .venv (torch + torchvision, about 5.5 GB) and runs
# tests/optional; -s shows the measured errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh
.venv/bin/python -m pip install -q -r requirements-reference.txt
export NAS_REFERENCE_SUITE=1
exec .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/optional "$@"
