"""The NAS-Bench-201 space (Dong & Yang, 2020): one op on each of 6 edges, 5^6 cells.

Node j (1..3) sums one edge from every earlier node; the decision order is the NB201
string's order, edge (i -> j) for j = 1..3, i = 0..j-1, and `enumerate` walks the
15625 cells in that order (last edge fastest).
"""
from __future__ import annotations

import itertools
from typing import Iterator, Sequence

from models.genotypes import genotype as gt
from models import spaces
from nas.spaces.base import Decision, SearchSpace, register


@register("nb201")
class NB201Space(SearchSpace):
  rules = spaces.NB201

  def __init__(self):
    n = self.rules.num_blocks
    self._decisions = [Decision("op", len(self.rules.ops), "normal", b, i)
                       for b in range(n) for i in range(b + 1)]

  def decisions(self) -> list[Decision]:
    return list(self._decisions)

  def decode(self, choices: Sequence[int]) -> gt.Genotype:
    if len(choices) != len(self._decisions):
      raise gt.GenotypeError(f"choices: expected {len(self._decisions)} decisions for the nb201 "
                             f"space, got {len(choices)}")
    ops = self.rules.ops
    for i, c in enumerate(choices):
      if not 0 <= int(c) < len(ops):
        raise gt.GenotypeError(f"choices[{i}]: {c} out of range 0..{len(ops) - 1}")
    it = iter(int(c) for c in choices)
    blocks = tuple(gt.Block(tuple(gt.Edge(i, ops[next(it)]) for i in range(b + 1)))
                   for b in range(self.rules.num_blocks))
    last = self.rules.num_blocks  # the output node, as in the NB201 notation
    return gt.validate(gt.Genotype(gt.Cell(blocks, (last,), 1), None, self.name))

  def encode(self, genotype: gt.Genotype) -> list[int]:
    c = genotype.normal
    if genotype.reduce is not None or c.num_inputs != 1 or len(c.blocks) != self.rules.num_blocks:
      raise gt.GenotypeError("genotype: not an nb201 cell (one input node, 3 blocks, no "
                             "reduction cell)")
    out = []
    for b, block in enumerate(c.blocks):
      by_input = {e.input: e.op for e in block.edges}
      if sorted(by_input) != list(range(b + 1)) or len(block.edges) != b + 1:
        raise gt.GenotypeError(f"normal.blocks[{b}].edges: node {b + 1} needs one edge from "
                               f"each of nodes 0..{b}")
      for i in range(b + 1):
        if by_input[i] not in self.rules.ops:
          raise gt.GenotypeError(f"normal.blocks[{b}].edges[{i}].op: unknown op {by_input[i]!r} "
                                 f"(known: {', '.join(self.rules.ops)})")
        out.append(self.rules.ops.index(by_input[i]))
    return out

  def enumerate(self) -> Iterator[gt.Genotype]:
    for choices in itertools.product(*(range(d.num_choices) for d in self._decisions)):
      yield self.decode(choices)
