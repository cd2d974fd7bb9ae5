"""The two-input cell spaces (NASNet, PNAS, DARTS): B blocks of two (input, op) edges.

The decision sequence follows the NASNet controller: for each cell (normal, then
reduce) and each block, the two inputs (over h[i-2], h[i-1] and earlier blocks), the
two ops, then the combine rule where the space lets it vary (NASNet: add or concat).
"""
from __future__ import annotations

from typing import Sequence

from models.genotypes import genotype as gt
from models.spaces import SpaceRules
from nas.spaces.base import Decision, SearchSpace

CELL_NAMES = ("normal", "reduce")


class CellSpace(SearchSpace):
  """A two-input cell space; the subclasses differ only in data.

  Class attributes: `rules`, `op_choices` (the ops a discrete search picks from,
  a subset of `rules.ops`), `combines` and `concat_all` (the output is the concat of
  every block; otherwise of every block no other block reads).
  """
  rules: SpaceRules
  op_choices: tuple[str, ...]
  combines: tuple[str, ...] = ("add",)
  concat_all: bool = False

  def __init__(self, num_blocks: int | None = None):
    self.num_blocks = self.rules.num_blocks if num_blocks is None else int(num_blocks)
    if self.num_blocks < 1:
      raise gt.GenotypeError(f"num_blocks: must be >= 1, got {num_blocks}")
    self._decisions = []
    for cell in CELL_NAMES:
      for b in range(self.num_blocks):
        inputs, ops = self.rules.num_inputs + b, len(self.op_choices)
        self._decisions += [Decision("input", inputs, cell, b, 0),
                            Decision("input", inputs, cell, b, 1),
                            Decision("op", ops, cell, b, 0), Decision("op", ops, cell, b, 1)]
        if len(self.combines) > 1:
          self._decisions.append(Decision("combine", len(self.combines), cell, b))
    self._per_block = 4 + (len(self.combines) > 1)

  def decisions(self) -> list[Decision]:
    return list(self._decisions)

  def _concat(self) -> tuple[int, ...] | None:
    n = self.rules.num_inputs
    return tuple(range(n, n + self.num_blocks)) if self.concat_all else None

  def decode(self, choices: Sequence[int]) -> gt.Genotype:
    if len(choices) != len(self._decisions):
      raise gt.GenotypeError(f"choices: expected {len(self._decisions)} decisions for the "
                             f"{self.name} space, got {len(choices)}")
    for i, (c, d) in enumerate(zip(choices, self._decisions)):
      if not 0 <= int(c) < d.num_choices:
        raise gt.GenotypeError(f"choices[{i}]: {c} out of range 0..{d.num_choices - 1} "
                               f"({d.cell} block {d.block} {d.kind})")
    cells = {}
    per_cell = self.num_blocks * self._per_block
    for k, cell in enumerate(CELL_NAMES):
      blocks = []
      for b in range(self.num_blocks):
        at = k * per_cell + b * self._per_block
        i0, i1, o0, o1 = (int(c) for c in choices[at:at + 4])
        combine = self.combines[int(choices[at + 4])] if self._per_block == 5 else self.combines[0]
        blocks.append(gt.Block((gt.Edge(i0, self.op_choices[o0]), gt.Edge(i1, self.op_choices[o1])),
                               combine))
      cells[cell] = gt.Cell(tuple(blocks), self._concat(), self.rules.num_inputs)
    return gt.validate(gt.Genotype(cells["normal"], cells["reduce"], self.name))

  def encode(self, genotype: gt.Genotype) -> list[int]:
    out = []
    for cell in CELL_NAMES:
      c = genotype.cells().get(cell)
      if c is None:
        raise gt.GenotypeError(f"{cell}: missing, the {self.name} space has one")
      if len(c.blocks) != self.num_blocks:
        raise gt.GenotypeError(f"{cell}.blocks: {len(c.blocks)} blocks, this {self.name} space "
                               f"has {self.num_blocks}")
      expected = gt.Cell(c.blocks, self._concat(), c.num_inputs).output_nodes()
      if c.concat != self._concat() and c.output_nodes() != expected:
        raise gt.GenotypeError(f"{cell}.concat: {c.concat} is not the {self.name} space's "
                               f"output rule")
      for b, block in enumerate(c.blocks):
        at = f"{cell}.blocks[{b}]"
        if len(block.edges) != 2:
          raise gt.GenotypeError(f"{at}.edges: {len(block.edges)} edges, expected 2")
        ops = []
        for j, e in enumerate(block.edges):
          if e.op not in self.op_choices:
            raise gt.GenotypeError(f"{at}.edges[{j}].op: {e.op!r} is not searched in the "
                                   f"{self.name} space (choices: {', '.join(self.op_choices)})")
          ops.append(self.op_choices.index(e.op))
        if block.combine not in self.combines:
          raise gt.GenotypeError(f"{at}.combine: {block.combine!r} not in {list(self.combines)}")
        out += [block.edges[0].input, block.edges[1].input] + ops
        if self._per_block == 5:
          out.append(self.combines.index(block.combine))
    return out
