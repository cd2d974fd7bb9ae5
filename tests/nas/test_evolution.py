"""Random search and regularized evolution: semantics, state, and that REA beats random."""
from __future__ import annotations

import numpy as np
import pytest

from models.errors import UserError
from nas import loop
from nas.spaces import get_search_space
from nas.store import TrialStore
from nas.strategies import known_strategies, make_strategy
from tests.nas import synthetic_table

SPACE = get_search_space("nb201")


def test_registry():
  assert {"random", "rea"} <= set(known_strategies())
  with pytest.raises(UserError, match=r"unknown strategy 'nope' \(known: .*random, rea"):
    make_strategy("nope", SPACE, 0)
  with pytest.raises(UserError, match="sample_size"):
    make_strategy("rea", SPACE, 0, population_size=3, sample_size=5)


def test_initial_population_is_random():
  rea = make_strategy("rea", SPACE, 11, population_size=10, sample_size=3)
  rnd = make_strategy("random", SPACE, 11)
  # Asked in a batch before any tell: the first P are the random search's samples.
  assert [rea.ask() for _ in range(10)] == [rnd.ask() for _ in range(10)]


def test_child_mutates_the_tournament_winner_and_oldest_dies():
  rea = make_strategy("rea", SPACE, 0, population_size=5, sample_size=5)
  members = [rea.ask() for _ in range(5)]
  for k, g in enumerate(members):
    rea.tell(g, [1.0, 5.0, 2.0, 3.0, 0.0][k])
  child = rea.ask()     # S = P: the winner is the best member, members[1]
  diff = [a != b for a, b in zip(SPACE.encode(child), SPACE.encode(members[1]))]
  assert sum(diff) == 1
  rea.tell(child, -1.0)
  # Aging: the oldest member left, although it was not the worst.
  assert [r for _, r in rea.population] == [5.0, 2.0, 3.0, 0.0, -1.0]
  rea.tell(members[0], None)  # a failed trial does not join
  assert len(rea.population) == 5


def test_state_round_trip_continues_identically():
  a = make_strategy("rea", SPACE, 3, population_size=8, sample_size=3)
  rng = np.random.default_rng(0)
  for _ in range(12):
    a.tell(a.ask(), float(rng.normal()))
  blob = loop.pack_state(a.state_dict())
  b = make_strategy("rea", SPACE, 99, population_size=8, sample_size=3)
  b.load_state_dict(loop.unpack_state(blob))
  rewards = rng.normal(size=20)
  for r in rewards:
    ga, gb = a.ask(), b.ask()
    assert ga == gb
    a.tell(ga, float(r))
    b.tell(gb, float(r))
  assert loop.pack_state(a.state_dict()) == loop.pack_state(b.state_dict())


def test_pack_state_keeps_arrays_and_big_ints():
  state = {"rng": make_strategy("random", SPACE, 5).state_dict()["rng"],
           "w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.int64(3), "l": [1, "x"]}
  back = loop.unpack_state(loop.pack_state(state))
  np.testing.assert_array_equal(back["w"], state["w"])
  assert back["w"].dtype == np.float32 and back["n"] == 3 and back["l"] == [1, "x"]
  assert back["rng"] == state["rng"] and int(back["rng"]["state"]["state"]) > 2 ** 64


def _regrets(name, repeats, budget=100):
  evaluator = synthetic_table.evaluator()
  store = TrialStore(":memory:")
  results = loop.run_repeats(lambda seed: make_strategy(name, SPACE, seed), evaluator, store,
                             name=name, repeats=repeats, budget=budget,
                             report_metric=synthetic_table.REPORT)
  return np.array([synthetic_table.regret(r["report"]) for r in results])


def test_evolution_beats_random_on_mean_regret():
  random_regret, rea_regret = _regrets("random", 50), _regrets("rea", 50)
  se = np.sqrt(random_regret.var() / 50 + rea_regret.var() / 50)
  print(f"mean regret over 50 repeats x 100 trials: random {random_regret.mean():.3f}, "
        f"rea {rea_regret.mean():.3f} (se of the difference {se:.3f})")
  assert rea_regret.mean() + 3 * se < random_regret.mean()
  assert (random_regret >= 0).all() and (rea_regret >= 0).all()
