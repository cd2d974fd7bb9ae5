"""One genotype format for NASNet, PNAS, DARTS and NAS-Bench-201 cells.

A cell has `num_inputs` input nodes (2: h[i-2], h[i-1]; NB201: 1) followed by one
node per block, numbered in order: node `num_inputs + k` is block k. A block applies
one op per incoming edge and combines the results (`add` or `concat`). The cell's
output is the channel concat of `concat` (node indices, inputs allowed, as in
NASNet-A's normal cell); `concat=None` means every block no other block reads.

Genotype files are data: `from_json` parses and validates, nothing is evaluated
(`models.genotypes.files` reads and writes them in any notation).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterable, Mapping

from models import spaces
from models.errors import UserError

COMBINES = ("add", "concat")
JSON_FORMAT = "nas-genotype/1"


class GenotypeError(UserError, ValueError):
  """A genotype that cannot be built; the message names the offending field."""


@dataclasses.dataclass(frozen=True)
class Edge:
  input: int
  op: str


@dataclasses.dataclass(frozen=True)
class Block:
  edges: tuple[Edge, ...]
  combine: str = "add"


@dataclasses.dataclass(frozen=True)
class Cell:
  blocks: tuple[Block, ...]
  concat: tuple[int, ...] | None = None
  num_inputs: int = 2

  @property
  def num_nodes(self) -> int:
    return self.num_inputs + len(self.blocks)

  def block_node(self, k: int) -> int:
    return self.num_inputs + k

  def output_nodes(self) -> tuple[int, ...]:
    if self.concat is not None:
      return self.concat
    read = {e.input for b in self.blocks for e in b.edges}
    return tuple(n for n in range(self.num_inputs, self.num_nodes) if n not in read)

  def ops(self) -> tuple[str, ...]:
    return tuple(e.op for b in self.blocks for e in b.edges)


@dataclasses.dataclass(frozen=True)
class Genotype:
  normal: Cell
  reduce: Cell | None = None
  space: str | None = None

  def cells(self) -> dict[str, Cell]:
    out = {"normal": self.normal}
    if self.reduce is not None:
      out["reduce"] = self.reduce
    return out


def cell(blocks: Iterable[Iterable[tuple[str, int]]], concat: Iterable[int] | None = None,
         num_inputs: int = 2, combine: str = "add") -> Cell:
  """Builds a cell from DARTS-like pairs: `[[(op, input), (op, input)], ...]`."""
  return Cell(
      blocks=tuple(Block(tuple(Edge(int(i), str(op)) for op, i in b), combine) for b in blocks),
      concat=None if concat is None else tuple(int(c) for c in concat),
      num_inputs=num_inputs)


# ----------------------------------------------------------------------------- validation

def validate(g: Genotype) -> Genotype:
  """Returns `g` unchanged or raises GenotypeError naming the first fault."""
  rules = None
  if g.space is not None:
    if g.space not in spaces.SPACES:
      raise GenotypeError(f"space: unknown space {g.space!r} (known: {', '.join(spaces.SPACES)})")
    rules = spaces.SPACES[g.space]
    if rules.has_reduce_cell and g.reduce is None:
      raise GenotypeError(f"reduce: the {g.space} space needs a reduction cell")
    if not rules.has_reduce_cell and g.reduce is not None:
      raise GenotypeError(f"reduce: the {g.space} space has no reduction cell")
  for name, c in g.cells().items():
    _validate_cell(c, name, rules)
  return g


def _validate_cell(c: Cell, where: str, rules: spaces.SpaceRules | None) -> None:
  known_ops = rules.ops if rules else spaces.ALL_OPS
  if rules and c.num_inputs != rules.num_inputs:
    raise GenotypeError(f"{where}.num_inputs: {c.num_inputs}, the {rules.name} space has "
                        f"{rules.num_inputs}")
  if c.num_inputs < 1:
    raise GenotypeError(f"{where}.num_inputs: must be >= 1, got {c.num_inputs}")
  if not c.blocks:
    raise GenotypeError(f"{where}.blocks: empty cell (a cell needs at least one block)")
  for k, b in enumerate(c.blocks):
    node = c.block_node(k)
    at = f"{where}.blocks[{k}]"
    if b.combine not in COMBINES:
      raise GenotypeError(f"{at}.combine: unknown combine {b.combine!r} (known: add, concat)")
    arity = node if (rules and rules.edges_per_block is None) else (
        rules.edges_per_block if rules else None)
    if not b.edges or (arity is not None and len(b.edges) != arity):
      want = f"{arity}" if arity is not None else "at least 1"
      raise GenotypeError(f"{at}.edges: wrong arity, {len(b.edges)} edges, expected {want}")
    for j, e in enumerate(b.edges):
      if e.op not in known_ops:
        space = f"the {rules.name} space" if rules else "any space"
        raise GenotypeError(f"{at}.edges[{j}].op: unknown op {e.op!r} in {space} "
                            f"(known: {', '.join(known_ops)})")
      if not 0 <= e.input < c.num_nodes:
        raise GenotypeError(f"{at}.edges[{j}].input: bad input index {e.input}, the cell has "
                            f"nodes 0..{c.num_nodes - 1}")
      if e.input >= node:
        if _reaches(c, e.input, node):
          raise GenotypeError(f"{at}.edges[{j}].input: cycle, node {node} reads node {e.input} "
                              f"which depends on node {node}")
        raise GenotypeError(f"{at}.edges[{j}].input: node {e.input} is a later block; list "
                            f"blocks in topological order")
    if rules and rules.edges_per_block is None:
      inputs = sorted(e.input for e in b.edges)
      if inputs != list(range(node)):
        raise GenotypeError(f"{at}.edges: node {node} needs one edge from each of nodes "
                            f"0..{node - 1}, got inputs {inputs}")
  if c.concat is not None:
    if not c.concat:
      raise GenotypeError(f"{where}.concat: empty (the cell would have no output)")
    for i, n in enumerate(c.concat):
      if not 0 <= n < c.num_nodes:
        raise GenotypeError(f"{where}.concat[{i}]: bad node index {n}, the cell has nodes "
                            f"0..{c.num_nodes - 1}")
    if len(set(c.concat)) != len(c.concat):
      raise GenotypeError(f"{where}.concat: repeated node index in {list(c.concat)}")


def _reaches(c: Cell, start: int, target: int) -> bool:
  """Whether node `start` depends (transitively) on node `target`."""
  seen, stack = set(), [start]
  while stack:
    n = stack.pop()
    if n == target:
      return True
    if n in seen or n < c.num_inputs:
      continue
    seen.add(n)
    stack.extend(e.input for e in c.blocks[n - c.num_inputs].edges if 0 <= e.input < c.num_nodes)
  return False


# ----------------------------------------------------------------------------- JSON

def to_dict(g: Genotype) -> dict[str, Any]:
  out: dict[str, Any] = {"format": JSON_FORMAT}
  if g.space is not None:
    out["space"] = g.space
  for name, c in g.cells().items():
    out[name] = {
        "num_inputs": c.num_inputs,
        "blocks": [{"edges": [[e.op, e.input] for e in b.edges], "combine": b.combine}
                   for b in c.blocks],
        "concat": None if c.concat is None else list(c.concat),
    }
  return out


def to_json(g: Genotype, indent: int | None = 2) -> str:
  return json.dumps(to_dict(g), indent=indent)


def from_dict(d: Any) -> Genotype:
  """Parses the JSON form strictly and validates it."""
  if not isinstance(d, Mapping):
    raise GenotypeError("genotype: expected a JSON object")
  fmt = d.get("format", JSON_FORMAT)
  if fmt != JSON_FORMAT:
    raise GenotypeError(f"format: unsupported {fmt!r}, expected {JSON_FORMAT!r}")
  unknown = set(d) - {"format", "space", "normal", "reduce"}
  if unknown:
    raise GenotypeError(f"{sorted(unknown)[0]}: unknown field")
  space = d.get("space")
  if space is not None and not isinstance(space, str):
    raise GenotypeError("space: expected a string")
  if "normal" not in d:
    raise GenotypeError("normal: missing")
  normal = _cell_from_dict(d["normal"], "normal")
  reduce = None if d.get("reduce") is None else _cell_from_dict(d["reduce"], "reduce")
  return validate(Genotype(normal=normal, reduce=reduce, space=space))


def _cell_from_dict(d: Any, where: str) -> Cell:
  if not isinstance(d, Mapping):
    raise GenotypeError(f"{where}: expected an object")
  unknown = set(d) - {"num_inputs", "blocks", "concat"}
  if unknown:
    raise GenotypeError(f"{where}.{sorted(unknown)[0]}: unknown field")
  num_inputs = d.get("num_inputs", 2)
  if not _is_int(num_inputs):
    raise GenotypeError(f"{where}.num_inputs: expected an integer")
  blocks_raw = d.get("blocks")
  if not isinstance(blocks_raw, list):
    raise GenotypeError(f"{where}.blocks: expected a list")
  blocks = []
  for k, b in enumerate(blocks_raw):
    at = f"{where}.blocks[{k}]"
    if not isinstance(b, Mapping) or not isinstance(b.get("edges"), list):
      raise GenotypeError(f"{at}: expected an object with a list 'edges'")
    unknown = set(b) - {"edges", "combine"}
    if unknown:
      raise GenotypeError(f"{at}.{sorted(unknown)[0]}: unknown field")
    combine = b.get("combine", "add")
    if not isinstance(combine, str):
      raise GenotypeError(f"{at}.combine: expected a string")
    edges = []
    for j, e in enumerate(b["edges"]):
      if (not isinstance(e, list) or len(e) != 2 or not isinstance(e[0], str)
          or not _is_int(e[1])):
        raise GenotypeError(f"{at}.edges[{j}]: expected [op_name, input_index], got {e!r}")
      edges.append(Edge(input=e[1], op=e[0]))
    blocks.append(Block(tuple(edges), combine))
  concat = d.get("concat")
  if concat is not None:
    if not isinstance(concat, list) or not all(_is_int(n) for n in concat):
      raise GenotypeError(f"{where}.concat: expected a list of node indices or null")
    concat = tuple(concat)
  return Cell(blocks=tuple(blocks), concat=concat, num_inputs=num_inputs)


def _is_int(x: Any) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def from_json(text: str) -> Genotype:
  try:
    d = json.loads(text)
  except json.JSONDecodeError as e:
    raise GenotypeError(f"genotype: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
  return from_dict(d)


# ----------------------------------------------------------------------------- canonical form

def canonical(g: Genotype) -> Genotype:
  """An equivalent genotype in a canonical form.

  Edges of a block are sorted, and blocks are renumbered in an order fixed by what
  they compute (not by how they were listed), so encodings that differ only by
  edge order or by the order of independent blocks map to the same value.
  """
  return dataclasses.replace(g, **{name: _canonical_cell(c) for name, c in g.cells().items()})


def _canonical_cell(c: Cell) -> Cell:
  sig: dict[int, str] = {i: f"in{i}" for i in range(c.num_inputs)}
  for k, b in enumerate(c.blocks):
    parts = sorted(f"{e.op}({sig[e.input]})" for e in b.edges)
    sig[c.block_node(k)] = hashlib.sha256(f"{b.combine}[{','.join(parts)}]".encode()).hexdigest()
  depth: dict[int, int] = {i: 0 for i in range(c.num_inputs)}
  for k, b in enumerate(c.blocks):
    depth[c.block_node(k)] = 1 + max(depth[e.input] for e in b.edges)
  order = sorted(range(len(c.blocks)), key=lambda k: (depth[c.block_node(k)], sig[c.block_node(k)]))
  remap = {i: i for i in range(c.num_inputs)}
  remap.update({c.block_node(k): c.block_node(new) for new, k in enumerate(order)})
  # Blocks with equal signatures compute the same tensor and tie in `order`, so an edge
  # reads the first of them and the output takes the first ones of each kind; otherwise
  # the stable sort would keep whichever of two identical blocks was listed first.
  same_sig: dict[str, list[int]] = {}
  for n in sorted(remap, key=remap.get):
    same_sig.setdefault(sig[n], []).append(remap[n])
  blocks = []
  for k in order:
    b = c.blocks[k]
    edges = sorted((Edge(same_sig[sig[e.input]][0], e.op) for e in b.edges),
                   key=lambda e: (e.input, e.op))
    blocks.append(Block(tuple(edges), b.combine))
  wanted: dict[str, int] = {}
  for n in c.output_nodes():
    wanted[sig[n]] = wanted.get(sig[n], 0) + 1
  concat = tuple(sorted(p for s, count in wanted.items() for p in same_sig[s][:count]))
  return Cell(tuple(blocks), concat, c.num_inputs)


def genotype_hash(g: Genotype) -> str:
  """A stable hex digest under which equivalent encodings agree."""
  return hashlib.sha256(to_json(canonical(g), indent=None).encode()).hexdigest()[:16]
