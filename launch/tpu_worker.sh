#!/usr/bin/env bash
# Runs on one TPU worker (started by `python -m launch tpu run|up`): the command under
# `python -m launch multihost --cluster=tpu`, its output kept in ~/nas-logs/run.log and
# streamed to the ssh session, its pid in ~/nas-logs/run.pid (for `launch tpu stop`).
# Usage: bash launch/tpu_worker.sh experiments.MODULE [flags...]
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p "$HOME/nas-logs"
log="$HOME/nas-logs/run.log"
: > "$log"
.venv/bin/python -m launch multihost --cluster=tpu -- "$@" >> "$log" 2>&1 &
pid=$!
echo "$pid" > "$HOME/nas-logs/run.pid"
tail -n +1 -F --pid="$pid" "$log" 2>/dev/null &
wait "$pid"
code=$?
wait
exit "$code"
