"""PNAS: the surrogate ranks unseen cells, stages grow cells block by block, state round-trips."""
from __future__ import annotations

import numpy as np
import pytest

from models.genotypes import notation
from nas.loop import pack_state, unpack_state
from nas.spaces import get_search_space
from nas.strategies import make_strategy
from nas.surrogate import Surrogate, one_hot
from tests.nas import synthetic_table

NB201 = get_search_space("nb201")


def _spearman(a, b) -> float:
  ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
  return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def test_one_hot_pads_absent_decisions_with_zeros():
  x = one_hot(np.asarray([[1, -1], [0, 2]]), [2, 3])
  np.testing.assert_array_equal(x, [[0, 1, 0, 0, 0], [1, 0, 0, 0, 1]])


def test_surrogate_ranks_held_out_cells():
  table = synthetic_table.table()
  cells = np.asarray(list(table.rows))
  rewards = np.asarray([m[synthetic_table.REWARD] for m in table.rows.values()])
  order = np.random.default_rng(0).permutation(len(cells))
  train, test = order[:300], order[300:2300]
  surrogate = Surrogate([d.num_choices for d in NB201.decisions()], seed=0)
  predicted = surrogate.fit(cells[train], rewards[train]).predict(cells[test])
  rho = _spearman(predicted, rewards[test])
  print(f"surrogate Spearman on {len(test)} held-out cells: {rho:.3f}")
  assert rho > 0.5


def _tell_all(strategy, genotypes, reward_fn):
  for g in genotypes:
    strategy.tell(g, reward_fn(g))


def test_nb201_stages_fix_one_more_node_each():
  pnas = make_strategy("pnas", NB201, 0, beam_size=4)
  reward = lambda g: synthetic_table.table().lookup(g)[synthetic_table.REWARD]
  first = [pnas.ask() for _ in range(5)]
  # stage 1: the op into node 1 varies; node 2 = skip(node 1), node 3 = skip(node 2)
  strings = sorted(notation.to_nb201(g) for g in first)
  assert strings == sorted(f"|{op}~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
                           for op in NB201.rules.ops)
  _tell_all(pnas, first, reward)
  second = [pnas.ask() for _ in range(4)]
  assert pnas.stage == 2
  parents = {notation.to_nb201(g).split("+")[0] for g in first}
  for g in second:
    node1, node2, node3 = notation.to_nb201(g).split("+")
    assert node1 in parents and node3 == "|none~0|none~1|skip_connect~2|"
  _tell_all(pnas, second, reward)
  third = [pnas.ask() for _ in range(4)]
  assert pnas.stage == 3
  seen = {notation.to_nb201(g) for g in first + second}
  assert len({notation.to_nb201(g) for g in third} - seen) == 4
  # all four came from stage-2 parents: their first two nodes are a stage-2 cell's
  heads = {tuple(notation.to_nb201(g).split("+")[:2]) for g in second}
  assert all(tuple(notation.to_nb201(g).split("+")[:2]) in heads for g in third)


def test_grown_cells_use_the_smaller_spaces():
  space = get_search_space("pnas", num_blocks=3)
  pnas = make_strategy("pnas", space, 0, beam_size=3, max_initial=6, max_expansions=30,
                       surrogate_steps=20)
  rng = np.random.default_rng(0)
  for blocks in (1, 2, 3, 3):
    batch = [pnas.ask() for _ in range(len(pnas.queue))]
    assert {len(g.normal.blocks) for g in batch} == {blocks}
    assert {len(g.reduce.blocks) for g in batch} == {blocks}
    _tell_all(pnas, batch, lambda g: float(rng.normal()))
  assert len(pnas.results) == 6 + 3 + 3 + 3


def test_pnas_beats_random_search_on_mean_regret():
  from tests.nas.test_rl import _search_regret
  repeats = 20
  random = np.asarray([_search_regret("random", s) for s in range(repeats)])
  pnas = np.asarray([_search_regret("pnas", s, beam_size=8) for s in range(repeats)])
  print(f"pnas: mean regret {pnas.mean():.3f} vs random {random.mean():.3f}")
  assert pnas.mean() < random.mean() - 1.0


@pytest.mark.parametrize("space_name", ["nb201", "pnas"])
def test_state_round_trip_continues_identically(space_name):
  space = get_search_space(space_name, **({} if space_name == "nb201" else {"num_blocks": 2}))
  cfg = dict(beam_size=3, max_initial=5, max_expansions=20, surrogate_steps=20)
  original = make_strategy("pnas", space, 3, **cfg)
  rng = np.random.default_rng(0)

  def drive(strategy, steps, rng):
    asked, waiting = [], []
    for _ in range(steps):
      waiting.append(strategy.ask())
      asked.append(repr(waiting[-1]))
      if len(waiting) > 2:
        strategy.tell(waiting.pop(0), float(rng.normal()) if rng.random() > 0.1 else None)
    return asked

  drive(original, 9, rng)
  assert original.stage >= 2 and original.issued
  restored = make_strategy("pnas", space, 99, **cfg)
  restored.load_state_dict(unpack_state(pack_state(original.state_dict())))
  assert drive(restored, 10, np.random.default_rng(1)) == drive(original, 10,
                                                                np.random.default_rng(1))
