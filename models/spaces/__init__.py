"""The four cell spaces as data: op vocabulary and structural rules.

Search code (`nas/spaces/`) adds sampling, mutation and encoding on top; the
models library needs only what makes a genotype valid and what a supernet mixes.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SpaceRules:
  name: str
  ops: tuple[str, ...]
  num_inputs: int                # cell inputs: 2 = (h[i-2], h[i-1]); 1 = NB201
  num_blocks: int                # blocks in a full cell of this space
  edges_per_block: int | None    # None: block j takes one edge from every earlier node (NB201)
  has_reduce_cell: bool
  combines: tuple[str, ...] = ("add",)  # how a block may combine its edges
  default_skeleton: str = "cifar"       # the models.zoo skeleton a genotype of this space gets


NASNET = SpaceRules(
    name="nasnet",
    ops=("identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3",
         "avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7",
         "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"),
    num_inputs=2, num_blocks=5, edges_per_block=2, has_reduce_cell=True,
    combines=("add", "concat"))

PNAS = SpaceRules(
    name="pnas",
    ops=("identity", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
         "conv_1x7_7x1", "avg_pool_3x3", "max_pool_3x3", "dil_conv_3x3"),
    num_inputs=2, num_blocks=5, edges_per_block=2, has_reduce_cell=True)

DARTS = SpaceRules(
    name="darts",
    ops=("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
         "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"),
    num_inputs=2, num_blocks=4, edges_per_block=2, has_reduce_cell=True)

NB201 = SpaceRules(
    name="nb201",
    ops=("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
    num_inputs=1, num_blocks=3, edges_per_block=None, has_reduce_cell=False,
    default_skeleton="nb201")

SPACES: dict[str, SpaceRules] = {s.name: s for s in (NASNET, PNAS, DARTS, NB201)}

ALL_OPS: tuple[str, ...] = tuple(sorted({op for s in SPACES.values() for op in s.ops}))


def get_space(name: str) -> SpaceRules:
  try:
    return SPACES[name]
  except KeyError:
    raise ValueError(f"unknown search space {name!r} (known: {', '.join(SPACES)})") from None
