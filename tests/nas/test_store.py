"""The SQLite trial store: lifecycle, atomic claims across processes, resume helpers."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from models.genotypes import genotype as gt
from nas.spaces import get_search_space
from nas.store import TrialStore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cells(n, seed=0):
  space = get_search_space("nb201")
  rng = np.random.default_rng(seed)
  return [space.sample(rng) for _ in range(n)]


def test_trial_lifecycle(tmp_path):
  store = TrialStore(str(tmp_path / "trials.sqlite"))
  cells = _cells(3)
  ids = store.add_trials("rea/seed0", 0, cells, seed=7)
  assert [t.status for t in store.trials("rea/seed0")] == ["pending"] * 3
  t = store.claim("w1", "rea/seed0")
  assert (t.id, t.status, t.worker, t.seed) == (ids[0], "running", "w1", 7)
  assert t.genotype == cells[0] and t.hash == gt.genotype_hash(cells[0])
  store.finish(t.id, 0.5, {"reward": 0.5, "acc": 0.9})
  t2 = store.claim("w1", "rea/seed0")
  store.finish(t2.id, math.nan, {"reward": math.nan}, error="non-finite reward nan")
  done, failed = store.get(t.id), store.get(t2.id)
  assert (done.status, done.reward, done.metrics) == ("done", 0.5, {"reward": 0.5, "acc": 0.9})
  assert (failed.status, failed.reward, failed.metrics) == ("failed", None, {"reward": None})
  assert failed.error == "non-finite reward nan" and done.finished >= done.started >= done.created
  assert store.count("rea/seed0") == 3 and store.count("other") == 0


def test_requeue_and_duplicates(tmp_path):
  store = TrialStore(str(tmp_path / "t.sqlite"))
  a, b = _cells(2)
  ids = store.add_trials("r", 0, [a, b, a])
  first = store.claim("w", "r")
  store.claim("w", "r")
  assert store.requeue_running("r") == 2
  assert [t.status for t in store.trials("r")] == ["pending"] * 3
  assert store.result_for("r", first.hash, ids[2]) is None      # nothing finished yet
  store.finish(ids[0], 1.0, {"reward": 1.0})
  assert store.result_for("r", first.hash, ids[2]).id == ids[0]
  assert store.result_for("r", first.hash, ids[0]) is None       # only earlier trials


def test_transaction_rolls_back(tmp_path):
  store = TrialStore(str(tmp_path / "t.sqlite"))
  with pytest.raises(RuntimeError):
    with store.transaction():
      store.add_trials("r", 0, _cells(2))
      store.save_strategy_state("r", 0, False, b"state")
      raise RuntimeError("crash")
  assert store.count("r") == 0 and store.load_strategy_state("r") is None
  store.save_strategy_state("r", 3, True, b"\x00\x01")
  reopened = TrialStore(str(tmp_path / "t.sqlite"))
  s = reopened.load_strategy_state("r")
  assert (s.batch, s.told, s.state) == (3, True, b"\x00\x01")


def test_copy_run_renumbers(tmp_path):
  memory = TrialStore(":memory:")
  a, b = _cells(2)
  ids = memory.add_trials("r", 0, [a, b, a])
  for i, reward in zip(ids[:2], (1.0, 2.0)):
    memory.claim("w", "r")
    memory.finish(i, reward, {"reward": reward})
  memory.claim("w", "r")
  memory.finish(ids[2], 1.0, {"reward": 1.0}, cached_from=ids[0])
  disk = TrialStore(str(tmp_path / "t.sqlite"))
  disk.add_trials("other", 0, [b])
  disk.copy_run(memory, "r")
  copied = disk.trials("r")
  assert [t.reward for t in copied] == [1.0, 2.0, 1.0]
  assert copied[2].cached_from == copied[0].id != ids[0]


_CLAIMER = """
import sys, time
from nas.store import TrialStore
store = TrialStore(sys.argv[1])
while True:
  t = store.claim(sys.argv[2], "r")
  if t is None:
    break
  print(t.id, flush=True)
  time.sleep(0.02)  # a slow evaluation, so that every worker gets some
  store.finish(t.id, 1.0, {"worker": sys.argv[2]})
"""


def test_concurrent_claims_are_exclusive(tmp_path):
  path = str(tmp_path / "t.sqlite")
  store = TrialStore(path)
  cells = _cells(120, seed=1)
  store.add_trials("r", 0, cells)
  env = dict(os.environ, PYTHONPATH=ROOT)
  procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, path, f"w{k}"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, text=True) for k in range(4)]
  claimed = [int(line) for p in procs for line in p.communicate(timeout=120)[0].split()]
  assert [p.returncode for p in procs] == [0] * 4
  assert sorted(claimed) == sorted(t.id for t in store.trials("r"))   # each exactly once
  trials = store.trials("r")
  assert [t.status for t in trials] == ["done"] * 120
  assert all(t.metrics["worker"] == t.worker for t in trials)
  assert len({t.worker for t in trials}) >= 2
