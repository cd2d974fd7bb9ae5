"""The search loop: strategy <-> evaluator <-> trial store, resumable at any moment.

A run proceeds in batches: ask the strategy for `batch_size` proposals, evaluate
them (the concurrency parallel workers would have: none of them sees another's
result), then tell the results in proposal order.

Resume reproduces an uninterrupted run exactly because the strategy state is
saved in the same SQLite transaction as the trials it depends on, twice a batch:
  1. after the asks, with the new pending trials (`told=False`);
  2. after the tells, once every trial of the batch is finished (`told=True`).
A restart loads the last state: after (1) it finishes the open batch's remaining
trials (a trial that was running at the crash runs again, a finished one is never
re-evaluated) and tells the whole batch; after (2) it asks the next batch. Either
way the strategy sees the same asks and tells in the same order. Replaying the
tells instead would need every strategy to be a pure function of its history,
which an RL controller trained by SGD is only up to float reassociation.

A proposal whose cell (canonical hash) already has a result in the run is
answered from the store without re-evaluation.

Several processes may run `work` on the same store to evaluate a batch in
parallel (the driver claims trials too, and waits for the others' results). A
restarted driver re-queues every trial of its run left running, so restart the
workers with it.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import msgpack
import numpy as np
import tqdm

from models.errors import Preempted, UserError
from nas.evaluators.base import REWARD, Evaluator
from nas.store import Trial, TrialStore
from nas.strategies.base import Strategy

OnResult = Callable[[int, Trial, float], None]


_NDARRAY = 1  # msgpack extension code: (dtype, shape, raw bytes)


def _pack_array(x):
  if isinstance(x, np.generic):
    return x.item()
  if hasattr(x, "__array__"):  # numpy and jax arrays
    a = np.ascontiguousarray(np.asarray(x))
    return msgpack.ExtType(_NDARRAY, msgpack.packb([a.dtype.str, list(a.shape), a.tobytes()]))
  raise TypeError(f"strategy state: cannot serialize a {type(x).__name__}")


def _unpack_array(code: int, data: bytes):
  if code != _NDARRAY:
    return msgpack.ExtType(code, data)
  dtype, shape, raw = msgpack.unpackb(data)
  return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()


def pack_state(state: dict) -> bytes:
  """msgpack of a strategy state; numpy/jax arrays are kept as typed raw bytes."""
  return msgpack.packb(state, default=_pack_array)


def unpack_state(blob: bytes) -> dict:
  return msgpack.unpackb(blob, ext_hook=_unpack_array, strict_map_key=False)


def evaluate_trial(evaluator: Evaluator, store: TrialStore, trial: Trial) -> None:
  """Evaluates one claimed trial and records it; a NaN or an exception fails it."""
  earlier = store.result_for(trial.run, trial.hash, trial.id)
  if earlier is not None:
    store.finish(trial.id, earlier.reward, earlier.metrics, earlier.error,
                 cached_from=earlier.cached_from or earlier.id)
    return
  try:
    result = evaluator.evaluate(trial.genotype, trial.id)
    metrics, reward = dict(result.metrics), float(result.reward)
    error = None if math.isfinite(reward) else f"non-finite reward {reward}"
  except (UserError, Preempted):
    raise  # the set-up is wrong, or the process must stop: the trial stays to run again
  except Exception as e:  # a broken child must not end the search
    metrics, reward, error = {}, None, f"{type(e).__name__}: {e}"
  store.finish(trial.id, reward, metrics, error)


def work(evaluator: Evaluator, store: TrialStore, worker: str, run: str | None = None) -> int:
  """A worker process's loop: evaluates pending trials until none is left."""
  count = 0
  while (trial := store.claim(worker, run)) is not None:
    evaluate_trial(evaluator, store, trial)
    count += 1
  return count


def run_search(strategy: Strategy, evaluator: Evaluator, store: TrialStore, *, run: str,
               budget: int, batch_size: int = 1, time_budget_s: float = 0.0, seed: int = 0,
               worker: str = "main", progress: bool = False, poll_s: float = 1.0,
               on_result: OnResult | None = None) -> list[Trial]:
  """Runs (or resumes) `run` until `budget` trials or `time_budget_s` seconds.

  The time budget counts from the run's first trial, across restarts, and is
  checked between batches. Returns every trial of the run in proposal order.
  `on_result(index, trial, best_so_far)` sees each trial once its batch is told.
  """
  if budget < 1 or batch_size < 1:
    raise UserError(f"budget ({budget}) and batch_size ({batch_size}) must be >= 1")
  saved = store.load_strategy_state(run)
  batch, told = -1, True
  if saved is not None:
    strategy.load_state_dict(unpack_state(saved.state))
    batch, told = saved.batch, saved.told
  store.requeue_running(run)
  finished = [t for t in store.trials(run) if t.status in ("done", "failed")]
  best = max([t.reward for t in finished if t.status == "done"
              and (told or t.batch < batch)] + [-math.inf])
  index = sum(1 for t in finished if told or t.batch < batch)
  bar = tqdm.tqdm(total=budget, initial=len(finished), disable=not progress, desc=run,
                  unit="trial")
  while True:
    if told:
      started = store.first_created(run) if time_budget_s else None
      out_of_time = started is not None and time.time() - started >= time_budget_s
      n = min(batch_size, budget - store.count(run))
      if n <= 0 or out_of_time:
        break
      proposals = [strategy.ask() for _ in range(n)]
      batch += 1
      with store.transaction():
        store.add_trials(run, batch, proposals, seed)
        store.save_strategy_state(run, batch, False, pack_state(strategy.state_dict()))
    while (trial := store.claim(worker, run, batch)) is not None:
      evaluate_trial(evaluator, store, trial)
      bar.update(1)
    results = store.trials(run, batch)
    while any(t.status not in ("done", "failed") for t in results):
      time.sleep(poll_s)  # another worker holds one of this batch's trials
      results = store.trials(run, batch)
    for t in results:
      reward = t.reward if t.status == "done" else None
      strategy.tell(t.genotype, reward)
      if reward is not None:
        best = max(best, reward)
      if on_result is not None:
        on_result(index, t, best)
      index += 1
    store.save_strategy_state(run, batch, True, pack_state(strategy.state_dict()))
    told = True
    bar.set_postfix(best=f"{best:.4g}")
  bar.close()
  return store.trials(run)


def run_repeats(make_strategy: Callable[[int], Strategy], evaluator: Evaluator,
                store: TrialStore, *, name: str, repeats: int, budget: int, seed: int = 0,
                batch_size: int = 1, report_metric: str = REWARD, progress: bool = False
                ) -> list[dict]:
  """`repeats` independent runs of one strategy (seeds seed, seed+1, ...).

  Each repeat runs against an in-memory store and is then copied, with its
  result, into `store` in one transaction, so a repeat is the unit of resume: a
  finished one is read back, an interrupted one runs again from its seed. Returns
  per repeat: seed, the pick's reward, report metric and hash, and the
  best-so-far curve.
  """
  from nas import report
  results = []
  for r in tqdm.trange(repeats, disable=not progress, desc=f"{name} repeats"):
    run = f"{name}/repeats/seed{seed + r}"
    result = store.run_result(run)
    if result is None:
      memory = TrialStore(":memory:")
      trials = run_search(make_strategy(seed + r), evaluator, memory, run=run, budget=budget,
                          batch_size=batch_size, seed=seed + r)
      pick = report.best_trial(trials)
      result = {"seed": seed + r,
                "reward": None if pick is None else pick.reward,
                "report": None if pick is None else pick.metrics.get(report_metric),
                "hash": None if pick is None else pick.hash,
                "best_so_far": [None if math.isnan(v) else v for v in report.best_so_far(trials)]}
      with store.transaction():
        store.copy_run(memory, run)
        store.finish_run(run, result)
      memory.close()
    results.append(result)
  return results
