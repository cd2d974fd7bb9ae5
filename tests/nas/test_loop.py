"""The search loop: batches, duplicates, failed children, exact resume after crashes."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from models.genotypes import genotype as gt
from nas import loop, report
from nas.evaluators.base import Evaluator
from nas.spaces import get_search_space
from nas.store import TrialStore
from nas.strategies import make_strategy
from nas.strategies.base import Strategy
from tests.nas import synthetic_table

SPACE = get_search_space("nb201")


class Crash(BaseException):
  """Stands in for a killed process: nothing in the loop may catch it."""


class Countdown:
  """Raises Crash on the n-th tick (counted across everything sharing it)."""

  def __init__(self, n: int | None):
    self.n = n

  def tick(self):
    if self.n is not None:
      self.n -= 1
      if self.n == 0:
        raise Crash()


class CountingEvaluator(Evaluator):
  def __init__(self, countdown=None, nan=(), broken=()):
    self.inner = synthetic_table.evaluator()
    self.countdown = countdown or Countdown(None)
    self.nan, self.broken = set(nan), set(broken)
    self.evaluated: list[str] = []

  def evaluate(self, genotype, trial_id):
    self.countdown.tick()
    h = gt.genotype_hash(genotype)
    if h in self.broken:
      raise ValueError("child diverged")
    result = self.inner.evaluate(genotype, trial_id)
    if h in self.nan:
      result = dataclasses.replace(result, reward=math.nan)
    self.evaluated.append(h)
    return result


class CrashingStrategy(Strategy):
  """Delegates to a real strategy; ticks the countdown on every ask and tell."""

  def __init__(self, inner, countdown):
    self.inner, self.countdown = inner, countdown

  def ask(self):
    self.countdown.tick()
    return self.inner.ask()

  def tell(self, genotype, reward):
    self.countdown.tick()
    self.inner.tell(genotype, reward)

  def state_dict(self):
    return self.inner.state_dict()

  def load_state_dict(self, state):
    self.inner.load_state_dict(state)


def _rea(seed=0):
  return make_strategy("rea", SPACE, seed, population_size=6, sample_size=3)


def _summary(trials):
  return [(t.batch, t.hash, t.status, t.reward, t.cached_from is not None) for t in trials]


def _search(store, strategy, evaluator, **kw):
  kw = {"run": "rea/seed0", "budget": 30, "batch_size": 4, **kw}
  return loop.run_search(strategy, evaluator, store, **kw)


def test_batches_budget_and_results(tmp_path):
  seen = []
  evaluator = CountingEvaluator()
  trials = _search(TrialStore(str(tmp_path / "t.sqlite")), _rea(), evaluator,
                   on_result=lambda i, t, best: seen.append((i, t.id, best)))
  assert len(trials) == 30 and [t.batch for t in trials] == [k // 4 for k in range(30)]
  assert all(t.status == "done" for t in trials)
  assert [i for i, _, _ in seen] == list(range(30))
  assert [b for _, _, b in seen] == report.best_so_far(trials)
  # Every distinct cell evaluated once; repeats answered from the store.
  assert sorted(evaluator.evaluated) == sorted({t.hash for t in trials})
  for t in trials:
    assert t.reward == synthetic_table.table().lookup(t.genotype)[synthetic_table.REWARD]


class Cycle(Strategy):
  def __init__(self, cells):
    super().__init__(SPACE, 0)
    self.cells, self.k, self.told = cells, 0, []

  def ask(self):
    self.k += 1
    return self.cells[(self.k - 1) % len(self.cells)]

  def tell(self, genotype, reward):
    self.told.append(reward)


def test_duplicates_are_not_evaluated_again(tmp_path):
  a, b = (SPACE.sample(np.random.default_rng(s)) for s in (1, 2))
  evaluator = CountingEvaluator()
  strategy = Cycle([a, b, a])
  trials = _search(TrialStore(":memory:"), strategy, evaluator, budget=9, batch_size=3)
  assert len(evaluator.evaluated) == 2
  assert [t.cached_from for t in trials] == [None, None, trials[0].id] + \
      [trials[0].id, trials[1].id, trials[0].id] * 2
  assert strategy.told[2] == strategy.told[0] and len(strategy.told) == 9


def test_failed_children_are_recorded_and_the_search_goes_on(tmp_path):
  cells = [SPACE.sample(np.random.default_rng(s)) for s in range(3)]
  nan, broken = gt.genotype_hash(cells[0]), gt.genotype_hash(cells[1])
  strategy = Cycle(cells)
  evaluator = CountingEvaluator(nan={nan}, broken={broken})
  trials = _search(TrialStore(":memory:"), strategy, evaluator, budget=6, batch_size=2)
  assert [t.status for t in trials] == ["failed", "failed", "done"] * 2
  assert trials[0].error == "non-finite reward nan" and trials[0].reward is None
  assert trials[1].error == "ValueError: child diverged"
  assert strategy.told[:2] == [None, None] and strategy.told[2] is not None
  assert report.best_trial(trials).hash == gt.genotype_hash(cells[2])


def _crashing_run(path, crash_at):
  """Runs to completion, crashing at the crash_at[i]-th tick of attempt i."""
  evaluations = 0
  for n in list(crash_at) + [None]:
    countdown = Countdown(n)
    evaluator = CountingEvaluator(countdown)
    try:
      trials = _search(TrialStore(path), CrashingStrategy(_rea(), countdown), evaluator)
    except Crash:
      trials = None
    evaluations += len(evaluator.evaluated)
    if trials is not None:
      return trials, evaluations
  raise AssertionError("did not finish")


@pytest.mark.parametrize("crash_at", [[1], [5], [9, 9, 9], [3, 14, 2, 27], [40], [59, 1, 61]])
def test_resume_after_crashes_is_exact(tmp_path, crash_at):
  reference = CountingEvaluator()
  expected = _search(TrialStore(str(tmp_path / "ref.sqlite")), _rea(), reference)
  trials, evaluations = _crashing_run(str(tmp_path / "crashed.sqlite"), crash_at)
  assert _summary(trials) == _summary(expected)
  assert evaluations == len(reference.evaluated)   # nothing evaluated twice, nothing lost


def test_time_budget_stops_between_batches():
  evaluator = synthetic_table.evaluator(delay_s=0.05)
  trials = loop.run_search(_rea(), evaluator, TrialStore(":memory:"), run="r", budget=1000,
                           batch_size=2, time_budget_s=0.3)
  assert 2 <= len(trials) <= 14 and len(trials) % 2 == 0


def test_repeats_resume_exactly(tmp_path):
  def run(store, countdown=None):
    evaluator = CountingEvaluator(countdown)
    return loop.run_repeats(lambda s: _rea(s), evaluator, store, name="rea", repeats=4,
                            budget=20, seed=10, report_metric=synthetic_table.REPORT)

  expected = run(TrialStore(":memory:"))
  path = str(tmp_path / "t.sqlite")
  with pytest.raises(Crash):
    run(TrialStore(path), Countdown(50))   # in the third repeat
  store = TrialStore(path)
  assert store.run_result("rea/repeats/seed11") is not None
  assert store.run_result("rea/repeats/seed12") is None
  assert run(store) == expected
  assert [r["seed"] for r in expected] == [10, 11, 12, 13]
  assert len(store.trials("rea/repeats/seed12")) == 20
