"""Progressive NAS (Liu et al., 2018): grow cells one block at a time, ranked by a surrogate.

Stage 1 proposes every 1-block cell (or `max_initial` random ones when there are
more). When all of a stage's results are in, the surrogate (`nas.surrogate`) is
refit on every cell seen so far, the `beam_size` best cells of the stage are
expanded by one block in every way (at most `max_expansions` random ones), and the
surrogate's `beam_size` best expansions become the next stage. After the last stage
each further round ranks the one-decision neighbours of the best full cells the
same way, so a search may run past the progressive schedule.

A cell is a decision sequence of the full space with -1 for the blocks it does not
have yet. Spaces whose cells grow (PNAS, NASNet, DARTS) evaluate a b-block cell
through the space built with `num_blocks=b`. NAS-Bench-201 has a fixed skeleton, so
stage b fixes the ops into nodes 1..b and wires each later node as a skip from the
node before it (`none` from the others): the cell computes exactly its first b
nodes, the analogue of a b-block cell.

Asks beyond a stage's queue while its results are outstanding get uniform random
full cells; their results also train the surrogate.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from models.errors import UserError
from models.genotypes.genotype import Genotype, genotype_hash
from nas.strategies.base import Strategy, register
from nas.surrogate import Surrogate


@register("pnas")
class PNAS(Strategy):

  def __init__(self, space, seed: int, beam_size: int = 8, max_initial: int = 256,
               max_expansions: int = 4096, ensemble_size: int = 5,
               surrogate_steps: int = 100, surrogate_hidden: int = 64,
               surrogate_learning_rate: float = 1e-2):
    super().__init__(space, seed)
    if beam_size < 1 or max_initial < 1 or max_expansions < 1:
      raise UserError("strategy.pnas: beam_size, max_initial and max_expansions must be >= 1")
    self.beam_size = beam_size
    self.max_initial = max_initial
    self.max_expansions = max_expansions
    self.surrogate_options = dict(ensemble_size=ensemble_size, steps=surrogate_steps,
                                  hidden=(surrogate_hidden, surrogate_hidden),
                                  learning_rate=surrogate_learning_rate)
    self.decisions = space.decisions()
    self.block_of = np.asarray([d.block for d in self.decisions])
    self.num_blocks = int(self.block_of.max()) + 1
    self.fixed_skeleton = space.rules.edges_per_block is None
    self._stage_spaces: dict[int, Any] = {}
    if self.fixed_skeleton:
      self.fill = self._skeleton_fill()
    self.issued: dict[str, list[list[Any]]] = {}   # hash -> [[cell, stage], ...] not told yet
    self.results: list[tuple[list[int], int, float | None]] = []   # (cell, blocks, reward)
    self.stage = 1
    self.queue = self._initial_cells()
    self.next_index = 0
    self.stage_told = 0

  # ----------------------------------------------------------------------------- cells

  def _skeleton_fill(self) -> list[int]:
    """Per decision, the op a not-yet-searched NB201 edge gets: skip from the node before."""
    ops = self.space.rules.ops
    if "skip_connect" not in ops or "none" not in ops:
      raise UserError(f"strategy.pnas: the {self.space.name} space needs 'none' and "
                      f"'skip_connect' ops to grow cells node by node")
    if any(d.kind != "op" or d.edge is None for d in self.decisions):
      raise UserError(f"strategy.pnas: the {self.space.name} space has a fixed skeleton but "
                      f"non-op decisions")
    return [ops.index("skip_connect") if d.edge == d.block else ops.index("none")
            for d in self.decisions]

  def _stage_space(self, b: int):
    if b not in self._stage_spaces:
      from nas.spaces import get_search_space
      stage_space = get_search_space(self.space.name, num_blocks=b)
      expected = [d for d in self.decisions if d.block < b]
      if stage_space.decisions() != expected:
        raise UserError(f"strategy.pnas: the {self.space.name} space with num_blocks={b} does "
                        f"not list the first {b} blocks' decisions of the full space")
      self._stage_spaces[b] = stage_space
    return self._stage_spaces[b]

  def genotype(self, cell: list[int]) -> Genotype:
    """The evaluable genotype of a (partial) cell."""
    b = self._cell_blocks(cell)
    if self.fixed_skeleton:
      return self.space.decode([c if c >= 0 else f for c, f in zip(cell, self.fill)])
    if b == self.num_blocks:
      return self.space.decode(cell)
    return self._stage_space(b).decode([c for c in cell if c >= 0])

  def _cell_blocks(self, cell: list[int]) -> int:
    present = self.block_of[np.asarray(cell) >= 0]
    return int(present.max()) + 1

  def _block_choices(self, block: int, count: int) -> list[tuple[int, ...]]:
    """All (or `count` distinct random) choice tuples for the decisions of `block`."""
    sizes = [d.num_choices for d in self.decisions if d.block == block]
    if int(np.prod(sizes, dtype=object)) <= count:
      return list(itertools.product(*(range(n) for n in sizes)))
    picked: dict[tuple[int, ...], None] = {}
    while len(picked) < count:
      picked[tuple(int(self.rng.integers(n)) for n in sizes)] = None
    return list(picked)

  def _with_block(self, cell: list[int], block: int, values: tuple[int, ...]) -> list[int]:
    out, it = list(cell), iter(values)
    for t in np.flatnonzero(self.block_of == block):
      out[t] = next(it)
    return out

  def _initial_cells(self) -> list[list[int]]:
    empty = [-1] * len(self.decisions)
    return self._unseen([self._with_block(empty, 0, v)
                         for v in self._block_choices(0, self.max_initial)], self.max_initial)

  def _unseen(self, cells: list[list[int]], count: int) -> list[list[int]]:
    """The first `count` cells whose genotypes were not evaluated (nor listed earlier)."""
    seen = {genotype_hash(self.genotype(c)) for c, _, _ in self.results}
    out = []
    for c in cells:
      h = genotype_hash(self.genotype(c))
      if h not in seen:
        seen.add(h)
        out.append(c)
        if len(out) == count:
          break
    return out

  # ----------------------------------------------------------------------------- ask / tell

  def ask(self) -> Genotype:
    if self.next_index < len(self.queue):
      cell, stage = self.queue[self.next_index], self.stage
      self.next_index += 1
    else:
      cell, stage = [int(c) for c in self.space.encode(self.space.sample(self.rng))], 0
    genotype = self.genotype(cell)
    self.issued.setdefault(genotype_hash(genotype), []).append([cell, stage])
    return genotype

  def tell(self, genotype: Genotype, reward: float | None) -> None:
    h = genotype_hash(genotype)
    records = self.issued.get(h)
    if records:
      cell, stage = records.pop(0)
      if not records:
        del self.issued[h]
    else:  # not proposed by this search: a full cell
      cell, stage = [int(c) for c in self.space.encode(genotype)], 0
    self.results.append((cell, self._cell_blocks(cell), None if reward is None else float(reward)))
    if stage == self.stage:
      self.stage_told += 1
      if self.stage_told == len(self.queue):
        self._next_stage()

  # ----------------------------------------------------------------------------- stages

  def _beam(self, blocks: int) -> list[list[int]]:
    done = [(r, c) for c, b, r in self.results if b == blocks and r is not None]
    done.sort(key=lambda rc: -rc[0])
    return [c for _, c in done[:self.beam_size]]

  def _next_stage(self) -> None:
    growing = self.stage < self.num_blocks
    beam = self._beam(self.stage)
    if growing:
      per_parent = max(1, self.max_expansions // max(len(beam), 1))
      candidates = [self._with_block(c, self.stage, v) for c in beam
                    for v in self._block_choices(self.stage, per_parent)]
    else:
      candidates = self._neighbours(beam)
    candidates = [list(c) for c in dict.fromkeys(tuple(c) for c in candidates)]
    self.queue = self._unseen(self._rank(candidates), self.beam_size)
    self.stage += int(growing)
    self.next_index = 0
    self.stage_told = 0
    if not self.queue:   # nothing new to propose: random full cells from here on
      self.queue = [[int(c) for c in self.space.encode(self.space.sample(self.rng))]]

  def _neighbours(self, beam: list[list[int]]) -> list[list[int]]:
    out = []
    for cell in beam:
      for t, d in enumerate(self.decisions):
        out += [cell[:t] + [v] + cell[t + 1:] for v in range(d.num_choices) if v != cell[t]]
    if len(out) > self.max_expansions:
      out = [out[int(i)] for i in self.rng.choice(len(out), self.max_expansions, replace=False)]
    return out

  def _rank(self, candidates: list[list[int]]) -> list[list[int]]:
    if not candidates:
      return []
    known = [(c, r) for c, _, r in self.results if r is not None]
    if not known:
      order = self.rng.permutation(len(candidates))
    else:
      surrogate = Surrogate([d.num_choices for d in self.decisions],
                            seed=int(self.rng.integers(2**31)), **self.surrogate_options)
      surrogate.fit(np.asarray([c for c, _ in known]), np.asarray([r for _, r in known]))
      order = np.argsort(-surrogate.predict(np.asarray(candidates)), kind="stable")
    return [candidates[int(i)] for i in order]

  # ----------------------------------------------------------------------------- state

  def state_dict(self) -> dict[str, Any]:
    return {
        **super().state_dict(),
        "stage": self.stage,
        "queue": [list(c) for c in self.queue],
        "next_index": self.next_index,
        "stage_told": self.stage_told,
        "issued": {h: [[list(c), s] for c, s in recs] for h, recs in self.issued.items()},
        "results": [[list(c), b, r] for c, b, r in self.results],
    }

  def load_state_dict(self, state: dict[str, Any]) -> None:
    super().load_state_dict(state)
    self.stage = int(state["stage"])
    self.queue = [[int(x) for x in c] for c in state["queue"]]
    self.next_index = int(state["next_index"])
    self.stage_told = int(state["stage_told"])
    self.issued = {h: [[[int(x) for x in c], int(s)] for c, s in recs]
                   for h, recs in state["issued"].items()}
    self.results = [([int(x) for x in c], int(b), None if r is None else float(r))
                    for c, b, r in state["results"]]
