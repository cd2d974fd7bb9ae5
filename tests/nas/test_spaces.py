"""Search spaces: decision specs, encode/decode, mutation, enumeration, registry."""
from __future__ import annotations

import numpy as np
import pytest

from models.genotypes import genotype as gt
from models.genotypes import notation
from models.errors import UserError
from nas.spaces import get_search_space

SPACES = ("nasnet", "pnas", "darts", "nb201")


@pytest.mark.parametrize("name,length", [("nasnet", 2 * 5 * 5), ("pnas", 2 * 5 * 4),
                                         ("darts", 2 * 4 * 4), ("nb201", 6)])
def test_decision_counts(name, length):
  space = get_search_space(name)
  decisions = space.decisions()
  assert len(decisions) == length
  for d in decisions:
    if d.kind == "input":
      assert d.num_choices == 2 + d.block   # h[i-2], h[i-1] and the earlier blocks
  ops = {d.num_choices for d in decisions if d.kind == "op"}
  assert ops == {len(space.rules.ops) - (name == "darts")}   # DARTS drops `none`
  assert any(d.kind == "combine" for d in decisions) == (name == "nasnet")


@pytest.mark.parametrize("name", SPACES)
def test_encode_decode_round_trip(name):
  space = get_search_space(name)
  rng = np.random.default_rng(1)
  decisions = space.decisions()
  for _ in range(50):
    g = space.sample(rng)
    assert g.space == name
    choices = space.encode(g)
    assert all(0 <= c < d.num_choices for c, d in zip(choices, decisions))
    assert space.decode(choices) == g
    assert gt.from_json(gt.to_json(g)) == g


@pytest.mark.parametrize("name", SPACES)
def test_mutation_changes_exactly_one_decision(name):
  space = get_search_space(name)
  rng = np.random.default_rng(2)
  kinds = set()
  for _ in range(200):
    g = space.sample(rng)
    child = space.mutate(g, rng)
    before, after = space.encode(g), space.encode(child)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(changed) == 1
    kinds.add(space.decisions()[changed[0]].kind)
    assert gt.genotype_hash(child) != gt.genotype_hash(g)
  assert kinds >= ({"op"} if name == "nb201" else {"op", "input"})


def test_nb201_enumeration_order_and_size():
  space = get_search_space("nb201")
  cells = list(space.enumerate())
  assert len(cells) == 15625 == space.size()
  assert len({gt.genotype_hash(g) for g in cells}) == 15625
  for k in (0, 1, 5, 777, 15624):
    assert space.encode(cells[k]) == [int(d) for d in np.base_repr(k, 5).zfill(6)]
  assert notation.to_nb201(cells[0]) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
  assert notation.to_nb201(cells[1]).endswith("skip_connect~2|")


def test_nb201_matches_notation():
  space = get_search_space("nb201")
  text = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
          "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
  g = notation.from_nb201(text)
  ops = space.rules.ops
  assert space.encode(g) == [ops.index(o) for o in ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3",
                                                    "skip_connect", "nor_conv_3x3", "skip_connect")]
  assert space.decode(space.encode(g)) == g
  assert notation.to_nb201(space.decode(space.encode(g))) == text
  swapped = notation.from_nb201(text.replace("|skip_connect~0|nor_conv_3x3~1|",
                                             "|nor_conv_3x3~1|skip_connect~0|"))
  assert space.encode(swapped) == space.encode(g)


def test_uniform_sampling():
  space = get_search_space("nb201")
  rng = np.random.default_rng(3)
  counts = np.zeros((6, 5))
  for _ in range(5000):
    for edge, c in enumerate(space.encode(space.sample(rng))):
      counts[edge, c] += 1
  chi2 = ((counts - 1000) ** 2 / 1000).sum(axis=1)
  assert chi2.max() < 25   # 4 degrees of freedom: p < 1e-4 for a fair sampler


def test_pnas_progressive_blocks():
  space = get_search_space("pnas", num_blocks=2)
  assert len(space.decisions()) == 2 * 2 * 4
  g = space.sample(np.random.default_rng(4))
  assert len(g.normal.blocks) == 2 and g.normal.concat == (2, 3)
  with pytest.raises(gt.GenotypeError, match="blocks"):
    get_search_space("pnas").encode(g)


def test_nasnet_combine_and_output_rule():
  space = get_search_space("nasnet")
  rng = np.random.default_rng(5)
  combines = {b.combine for _ in range(20) for b in space.sample(rng).normal.blocks}
  assert combines == {"add", "concat"}
  g = space.sample(rng)
  assert g.normal.concat is None  # NASNet: concat of the unused hidden states


def test_encode_rejects_foreign_cells():
  darts = get_search_space("darts")
  g = darts.sample(np.random.default_rng(6))
  bad = gt.Genotype(gt.cell([[("none", 0), ("sep_conv_3x3", 1)]] * 4, concat=[2, 3, 4, 5]),
                    g.reduce, "darts")
  with pytest.raises(gt.GenotypeError, match=r"normal.blocks\[0\].edges\[0\].op"):
    darts.encode(bad)
  with pytest.raises(gt.GenotypeError, match="out of range"):
    darts.decode([99] + darts.encode(g)[1:])


def test_registry_unknown_name():
  with pytest.raises(UserError, match="known: darts, nasnet, nb201, pnas"):
    get_search_space("nope")


def test_space_sizes():
  assert get_search_space("nb201").size() == 5 ** 6
  per_block = [(2 + b) ** 2 * 7 ** 2 for b in range(4)]
  assert get_search_space("darts").size() == int(np.prod(per_block, dtype=object)) ** 2
