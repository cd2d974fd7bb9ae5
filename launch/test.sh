#!/usr/bin/env bash
# The test command: sets up the environment if needed, then runs the whole suite
# on 4 simulated CPU devices (tests/conftest.py sets XLA_FLAGS before JAX loads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
