"""A stand-in for `gcloud compute tpus ...` that keeps a slice's state in a folder.

Installed as `gcloud` on PATH by the tests. Every call is appended to `calls.jsonl`;
`state` holds the slice's state. A worker's run (`ssh --worker=K` of tpu_worker.sh)
follows `script.json`: {"round": [per-worker action, ...]}, where an action is
"ok", "sleep" (until killed), "fail" (exit 1), "term" (exit 143, as a run stopped by
SIGTERM) or "preempt" (the slice becomes PREEMPTED, exit 1).
"""
import json
import os
import sys
import time

HERE = os.environ["FAKE_GCLOUD_DIR"]


def _read(name, default):
  path = os.path.join(HERE, name)
  return open(path).read().strip() if os.path.exists(path) else default


def _write(name, text):
  with open(os.path.join(HERE, name), "w") as f:
    f.write(text)


def main(argv):
  with open(os.path.join(HERE, "calls.jsonl"), "a") as f:
    f.write(json.dumps(argv) + "\n")
  verb = argv[4] if len(argv) > 4 else ""  # argv[0] is this file
  flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
  if verb == "create":
    _write("state", "READY")
  elif verb == "delete":
    _write("state", "NOT_FOUND")
  elif verb == "describe":
    state = _read("state", "NOT_FOUND")
    if state == "NOT_FOUND":
      return 1
    print(json.dumps({"state": state, "networkEndpoints": [{"ipAddress": "10.0.0.1"},
                                                           {"ipAddress": "10.0.0.2"}]}))
  elif verb == "ssh" and "tpu_worker.sh" in flags.get("command", ""):
    return _worker(int(flags["worker"]))
  return 0


def _worker(worker: int) -> int:
  rounds = json.loads(_read("script.json", "[]"))
  started = int(_read(f"runs-{worker}", "0"))
  _write(f"runs-{worker}", str(started + 1))
  action = rounds[min(started, len(rounds) - 1)][worker]
  print(f"worker {worker} round {started}: {action}", flush=True)
  if action == "sleep":
    time.sleep(600)
  if action in ("fail", "term"):
    return 1 if action == "fail" else 143
  if action == "preempt":
    time.sleep(0.5)
    _write("state", "PREEMPTED")
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
