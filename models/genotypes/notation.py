"""The two genotype notations users already have, parsed without eval.

DARTS: `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
reduce=[...], reduce_concat=range(2, 6))`, pairs listed two per block.
NB201: `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|`, one `+`-separated
group per node listing its incoming edges `op~i`.
`parse_any` tells them (and the JSON form) apart by shape.
"""
from __future__ import annotations

import ast
import re

from models import spaces
from models.genotypes.genotype import Block, Cell, Edge, Genotype, GenotypeError, from_json, validate

# Names DARTS's genotypes.py uses for ops we spell differently.
DARTS_ALIASES = {"conv_7x1_1x7": "conv_1x7_7x1"}
_TO_DARTS_NAME = {ours: theirs for theirs, ours in DARTS_ALIASES.items()}
_DARTS_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


# ----------------------------------------------------------------------------- DARTS

def to_darts(g: Genotype) -> str:
  """The DARTS `Genotype(...)` text of `g` (two-edge, two-input, add-combine cells)."""
  parts = []
  for name in ("normal", "reduce"):
    c = g.cells().get(name)
    if c is None:
      continue
    _check_darts_cell(c, name)
    pairs = ", ".join(f"({_TO_DARTS_NAME.get(e.op, e.op)!r}, {e.input})"
                      for b in c.blocks for e in b.edges)
    parts.append(f"{name}=[{pairs}]")
    parts.append(f"{name}_concat={list(c.output_nodes())}")
  return f"Genotype({', '.join(parts)})"


def _check_darts_cell(c: Cell, where: str) -> None:
  if c.num_inputs != 2:
    raise GenotypeError(f"{where}.num_inputs: DARTS notation needs 2 cell inputs, got "
                        f"{c.num_inputs}")
  for k, b in enumerate(c.blocks):
    if len(b.edges) != 2 or b.combine != "add":
      raise GenotypeError(f"{where}.blocks[{k}]: DARTS notation needs two edges combined by "
                          f"add, got {len(b.edges)} combined by {b.combine}")


def from_darts(text: str) -> Genotype:
  """Parses DARTS notation (optionally `NAME = Genotype(...)`) and validates it."""
  call = _darts_call(text)
  fields: dict[str, ast.expr] = {}
  if len(call.args) > len(_DARTS_FIELDS):
    raise GenotypeError(f"Genotype: {len(call.args)} positional arguments, expected at most 4")
  fields.update(zip(_DARTS_FIELDS, call.args))
  for kw in call.keywords:
    if kw.arg not in _DARTS_FIELDS:
      raise GenotypeError(f"{kw.arg or '**'}: unknown field (known: {', '.join(_DARTS_FIELDS)})")
    if kw.arg in fields:
      raise GenotypeError(f"{kw.arg}: given twice")
    fields[kw.arg] = kw.value
  if "normal" not in fields:
    raise GenotypeError("normal: missing")
  cells = {}
  for name in ("normal", "reduce"):
    if name in fields:
      if f"{name}_concat" not in fields:
        raise GenotypeError(f"{name}_concat: missing")
      cells[name] = Cell(blocks=_darts_blocks(fields[name], name),
                         concat=_darts_concat(fields[f"{name}_concat"], f"{name}_concat"))
    elif f"{name}_concat" in fields:
      raise GenotypeError(f"{name}: missing (only {name}_concat given)")
  ops = {op for c in cells.values() for op in c.ops()}
  space = "darts" if ops <= set(spaces.DARTS.ops) else None
  return validate(Genotype(normal=cells["normal"], reduce=cells.get("reduce"), space=space))


def _darts_call(text: str) -> ast.Call:
  try:
    tree = ast.parse(text.strip())
  except SyntaxError as e:
    raise GenotypeError(f"Genotype: not valid DARTS notation (syntax error at line {e.lineno})"
                        ) from None
  if len(tree.body) != 1:
    raise GenotypeError("Genotype: expected exactly one Genotype(...) expression")
  stmt = tree.body[0]
  if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
    node = stmt.value
  elif isinstance(stmt, ast.Expr):
    node = stmt.value
  else:
    raise GenotypeError("Genotype: expected `Genotype(...)` or `NAME = Genotype(...)`")
  func = node.func if isinstance(node, ast.Call) else None
  name = getattr(func, "id", None) or getattr(func, "attr", None)  # Genotype or x.Genotype
  if name != "Genotype":
    raise GenotypeError("Genotype: expected a call `Genotype(normal=..., normal_concat=..., "
                        "reduce=..., reduce_concat=...)`")
  return node


def _darts_blocks(node: ast.expr, where: str) -> tuple[Block, ...]:
  if not isinstance(node, (ast.List, ast.Tuple)):
    raise GenotypeError(f"{where}: expected a list of (op, input) pairs")
  edges = []
  for j, item in enumerate(node.elts):
    at = f"{where}[{j}]"
    if not (isinstance(item, (ast.Tuple, ast.List)) and len(item.elts) == 2):
      raise GenotypeError(f"{at}: expected an (op, input) pair")
    op, index = (_literal(x) for x in item.elts)
    if not isinstance(op, str) or not _is_int(index):
      raise GenotypeError(f"{at}: expected an (op name, input index) pair, got "
                          f"{ast.unparse(item)}")
    op = DARTS_ALIASES.get(op, op)
    if op not in spaces.ALL_OPS:
      raise GenotypeError(f"{at}: unknown op {op!r}")
    edges.append(Edge(input=index, op=op))
  if not edges:
    raise GenotypeError(f"{where}: empty cell (a cell needs at least one block)")
  if len(edges) % 2:
    raise GenotypeError(f"{where}: {len(edges)} pairs, expected two per block")
  return tuple(Block((edges[i], edges[i + 1])) for i in range(0, len(edges), 2))


def _darts_concat(node: ast.expr, where: str) -> tuple[int, ...]:
  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
    bounds = [_literal(a) for a in node.args]
    if node.keywords or not 1 <= len(bounds) <= 2 or not all(_is_int(b) for b in bounds):
      raise GenotypeError(f"{where}: expected range(a, b) with integer bounds")
    return tuple(range(*bounds))
  if isinstance(node, (ast.List, ast.Tuple)):
    values = [_literal(x) for x in node.elts]
    if all(_is_int(v) for v in values):
      return tuple(values)
  raise GenotypeError(f"{where}: expected a list of node indices or range(a, b)")


_NOT_LITERAL = object()


def _literal(node: ast.expr) -> object:
  """The value of a constant (negative ints included), else a sentinel."""
  if isinstance(node, ast.Constant):
    return node.value
  if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
      and isinstance(node.operand, ast.Constant) and _is_int(node.operand.value)):
    return -node.operand.value
  return _NOT_LITERAL


def _is_int(x: object) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


# ----------------------------------------------------------------------------- NB201

_NB201_EDGE = re.compile(r"([A-Za-z0-9_]+)~(\d+)")


def to_nb201(g: Genotype) -> str:
  """The NB201 string of a one-input cell where node j reads every earlier node once."""
  if g.reduce is not None:
    raise GenotypeError("reduce: NB201 notation has no reduction cell")
  c = g.normal
  if c.num_inputs != 1:
    raise GenotypeError(f"normal.num_inputs: NB201 notation needs 1 cell input, got "
                        f"{c.num_inputs}")
  groups = []
  for k, b in enumerate(c.blocks):
    node = c.block_node(k)
    if sorted(e.input for e in b.edges) != list(range(node)) or b.combine != "add":
      raise GenotypeError(f"normal.blocks[{k}]: NB201 notation needs one edge from each of "
                          f"nodes 0..{node - 1}, combined by add")
    groups.append("|" + "|".join(f"{e.op}~{e.input}" for e in b.edges) + "|")
  if c.output_nodes() != (c.num_nodes - 1,):
    raise GenotypeError(f"normal.concat: NB201 notation outputs the last node only, got "
                        f"{list(c.output_nodes())}")
  return "+".join(groups)


def from_nb201(text: str) -> Genotype:
  """Parses an NB201 string into a one-cell genotype of the nb201 space."""
  blocks = []
  for k, group in enumerate(text.strip().split("+")):
    at = f"normal.blocks[{k}]"
    if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
      raise GenotypeError(f"{at}: expected |op~i|...| for node {k + 1}, got {group!r}")
    edges = []
    for j, token in enumerate(group[1:-1].split("|")):
      m = _NB201_EDGE.fullmatch(token)
      if m is None:
        raise GenotypeError(f"{at}.edges[{j}]: expected op~input, got {token!r}")
      edges.append(Edge(input=int(m.group(2)), op=m.group(1)))
    blocks.append(Block(tuple(edges)))
  normal = Cell(blocks=tuple(blocks), concat=(len(blocks),), num_inputs=1)
  return validate(Genotype(normal=normal, space="nb201"))


# ----------------------------------------------------------------------------- any

def parse_any(text: str) -> Genotype:
  """A JSON object, DARTS `Genotype(...)` or NB201 string, told apart by shape."""
  stripped = text.strip()
  if stripped.startswith("{"):
    return from_json(stripped)
  if stripped.startswith("|"):
    return from_nb201(stripped)
  if re.match(r"([A-Za-z_]\w*\s*=\s*)?([A-Za-z_]\w*\.)*Genotype\s*\(", stripped):
    return from_darts(stripped)
  head = stripped[:30] + ("..." if len(stripped) > 30 else "")
  raise GenotypeError(f"genotype: unrecognised notation {head!r} (expected a JSON object, "
                      f"DARTS Genotype(...) or an NB201 |op~i|+... string)")
