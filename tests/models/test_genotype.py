"""Genotype JSON form, validation errors and the canonical form/hash."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings, strategies as st

from models.genotypes import genotype as G

from models.genotypes import files as genotype_files
from models import spaces


# ----------------------------------------------------------------------------- strategy

@st.composite
def cells(draw, rules: spaces.SpaceRules, combine_concat: bool = False) -> G.Cell:
  """A random valid cell of `rules` (1..num_blocks blocks)."""
  num_blocks = draw(st.integers(1, rules.num_blocks))
  blocks = []
  for k in range(num_blocks):
    node = rules.num_inputs + k
    ops = st.sampled_from(rules.ops)
    if rules.edges_per_block is None:
      inputs = draw(st.permutations(range(node)))
    else:
      inputs = draw(st.lists(st.integers(0, node - 1), min_size=rules.edges_per_block,
                             max_size=rules.edges_per_block))
    combine = draw(st.sampled_from(G.COMBINES)) if combine_concat else "add"
    blocks.append(G.Block(tuple(G.Edge(i, draw(ops)) for i in inputs), combine))
  num_nodes = rules.num_inputs + num_blocks
  if rules.edges_per_block is None:
    concat = draw(st.sampled_from([None, (num_nodes - 1,)]))
  else:
    concat = draw(st.one_of(st.none(), st.lists(st.integers(0, num_nodes - 1), min_size=1,
                                                max_size=num_nodes, unique=True).map(tuple)))
  return G.Cell(tuple(blocks), concat, rules.num_inputs)


@st.composite
def genotypes(draw, space_names=tuple(spaces.SPACES), combine_concat: bool = False) -> G.Genotype:
  rules = spaces.SPACES[draw(st.sampled_from(space_names))]
  normal = draw(cells(rules, combine_concat))
  reduce = draw(cells(rules, combine_concat)) if rules.has_reduce_cell else None
  return G.validate(G.Genotype(normal, reduce, rules.name))


def darts_v2() -> G.Genotype:
  normal = G.cell([[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
                   [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
                   [("sep_conv_3x3", 1), ("skip_connect", 0)],
                   [("skip_connect", 0), ("dil_conv_3x3", 2)]], concat=[2, 3, 4, 5])
  reduce = G.cell([[("max_pool_3x3", 0), ("max_pool_3x3", 1)],
                   [("skip_connect", 2), ("max_pool_3x3", 1)],
                   [("max_pool_3x3", 0), ("skip_connect", 2)],
                   [("skip_connect", 2), ("max_pool_3x3", 1)]], concat=[2, 3, 4, 5])
  return G.validate(G.Genotype(normal, reduce, "darts"))


def nb201_cell(ops_by_node) -> G.Genotype:
  blocks = [[(op, i) for i, op in enumerate(ops)] for ops in ops_by_node]
  return G.validate(G.Genotype(G.cell(blocks, concat=[len(blocks)], num_inputs=1), None, "nb201"))


# ----------------------------------------------------------------------------- JSON

@settings(max_examples=150, deadline=None)
@given(genotypes(combine_concat=True))
def test_json_round_trip(g):
  assert G.from_json(G.to_json(g)) == g
  assert G.from_json(G.to_json(g, indent=None)) == g


def test_save_then_load_gives_the_same_genotype(tmp_path):
  path = str(tmp_path / "genotype.json")
  genotype_files.save(darts_v2(), path)
  assert genotype_files.load(path) == darts_v2()
  assert [p.name for p in tmp_path.iterdir()] == ["genotype.json"]  # no temp file left


def test_load_missing_file_is_a_genotype_error(tmp_path):
  missing = str(tmp_path / "nope.json")
  with pytest.raises(G.GenotypeError, match="nope.json: cannot read genotype file"):
    genotype_files.load(missing)


def test_load_names_the_file_and_the_fault(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text('{"normal": {"blocks": []}}')
  with pytest.raises(G.GenotypeError, match=r"bad.json: normal.blocks: empty cell"):
    genotype_files.load(str(path))


# ----------------------------------------------------------------------------- validation

def _darts_dict():
  return G.to_dict(darts_v2())


def _nasnet_dict():
  c = G.cell([[("sep_conv_5x5", 1), ("sep_conv_3x3", 0)], [("avg_pool_3x3", 1), ("identity", 0)]])
  return G.to_dict(G.Genotype(c, c, "nasnet"))


def _nb201_dict():
  return G.to_dict(nb201_cell([["nor_conv_3x3"], ["nor_conv_3x3", "avg_pool_3x3"],
                               ["skip_connect", "nor_conv_3x3", "skip_connect"]]))


def _walk(d, path: str):
  """The container and key at a slash path like "normal/blocks/0/edges"."""
  *head, last = [int(k) if k.lstrip("-").isdigit() else k for k in path.split("/")]
  for key in head:
    d = d[key]
  return d, last


def _set(d, path, value):
  d, key = _walk(d, path)
  d[key] = value


def _delete(d, path):
  d, key = _walk(d, path)
  del d[key]


# (case name, base dict, edit, field the message must start with, words it must contain)
VALIDATION_CASES = [
    ("unknown op", _darts_dict, lambda d: _set(d, "normal/blocks/1/edges/0/0", "conv_9x9"),
     "normal.blocks[1].edges[0].op", "unknown op 'conv_9x9'"),
    ("op of another space", _darts_dict,
     lambda d: _set(d, "reduce/blocks/0/edges/1/0", "nor_conv_3x3"),
     "reduce.blocks[0].edges[1].op", "unknown op 'nor_conv_3x3' in the darts space"),
    ("input index too large", _darts_dict, lambda d: _set(d, "normal/blocks/0/edges/1/1", 9),
     "normal.blocks[0].edges[1].input", "bad input index 9"),
    ("negative input index", _darts_dict, lambda d: _set(d, "normal/blocks/2/edges/0/1", -1),
     "normal.blocks[2].edges[0].input", "bad input index -1"),
    ("cycle", _darts_dict, lambda d: (_set(d, "normal/blocks/0/edges/0/1", 3),
                                      _set(d, "normal/blocks/1/edges/0/1", 2)),
     "normal.blocks[0].edges[0].input", "cycle"),
    ("self loop", _darts_dict, lambda d: _set(d, "normal/blocks/1/edges/0/1", 3),
     "normal.blocks[1].edges[0].input", "cycle"),
    ("forward reference", _darts_dict, lambda d: _set(d, "normal/blocks/0/edges/0/1", 4),
     "normal.blocks[0].edges[0].input", "later block"),
    ("empty cell", _darts_dict, lambda d: _set(d, "normal/blocks", []),
     "normal.blocks", "empty cell"),
    ("empty block", _darts_dict, lambda d: _set(d, "reduce/blocks/2/edges", []),
     "reduce.blocks[2].edges", "wrong arity, 0 edges"),
    ("nasnet block with 3 edges", _nasnet_dict,
     lambda d: _set(d, "normal/blocks/0/edges", [["identity", 0]] * 3),
     "normal.blocks[0].edges", "wrong arity, 3 edges, expected 2"),
    ("nb201 node with too few edges", _nb201_dict,
     lambda d: _set(d, "normal/blocks/2/edges", [["skip_connect", 0], ["skip_connect", 1]]),
     "normal.blocks[2].edges", "wrong arity, 2 edges, expected 3"),
    ("nb201 node reading one node twice", _nb201_dict,
     lambda d: _set(d, "normal/blocks/1/edges", [["skip_connect", 0], ["skip_connect", 0]]),
     "normal.blocks[1].edges", "one edge from each of nodes 0..1"),
    ("concat out of range", _darts_dict, lambda d: _set(d, "normal/concat", [2, 3, 6]),
     "normal.concat[2]", "bad node index 6"),
    ("concat repeated", _darts_dict, lambda d: _set(d, "reduce/concat", [2, 2]),
     "reduce.concat", "repeated node index"),
    ("concat empty", _darts_dict, lambda d: _set(d, "normal/concat", []),
     "normal.concat", "empty"),
    ("concat not a list", _darts_dict, lambda d: _set(d, "normal/concat", "2,3"),
     "normal.concat", "expected a list"),
    ("missing reduce cell", _darts_dict, lambda d: _delete(d, "reduce"),
     "reduce", "needs a reduction cell"),
    ("reduce cell in nb201", _nb201_dict, lambda d: _set(d, "reduce", d["normal"]),
     "reduce", "has no reduction cell"),
    ("unknown space", _darts_dict, lambda d: _set(d, "space", "resnet"),
     "space", "unknown space 'resnet'"),
    ("wrong num_inputs for the space", _nb201_dict, lambda d: _set(d, "normal/num_inputs", 2),
     "normal.num_inputs", "the nb201 space has 1"),
    ("unknown combine", _darts_dict, lambda d: _set(d, "normal/blocks/0/combine", "mul"),
     "normal.blocks[0].combine", "unknown combine 'mul'"),
    ("unknown top-level field", _darts_dict, lambda d: _set(d, "normal_concat", [2, 3]),
     "normal_concat", "unknown field"),
    ("unknown cell field", _darts_dict, lambda d: _set(d, "reduce/stride", 2),
     "reduce.stride", "unknown field"),
    ("unknown block field", _darts_dict, lambda d: _set(d, "normal/blocks/3/ops", []),
     "normal.blocks[3].ops", "unknown field"),
    ("edge not a pair", _darts_dict, lambda d: _set(d, "normal/blocks/1/edges/1", ["sep_conv_3x3"]),
     "normal.blocks[1].edges[1]", "expected [op_name, input_index]"),
    ("boolean input index", _darts_dict, lambda d: _set(d, "normal/blocks/1/edges/1/1", True),
     "normal.blocks[1].edges[1]", "expected [op_name, input_index]"),
    ("missing normal", _darts_dict, lambda d: _delete(d, "normal"),
     "normal", "missing"),
    ("wrong format", _darts_dict, lambda d: _set(d, "format", "other/2"),
     "format", "unsupported 'other/2'"),
]


@pytest.mark.parametrize("name,base,edit,field,words", VALIDATION_CASES,
                         ids=[c[0] for c in VALIDATION_CASES])
def test_validation_error_names_the_field(name, base, edit, field, words):
  d = base()
  G.from_dict(d)  # the unedited base is valid
  edit(d)
  with pytest.raises(G.GenotypeError) as info:
    G.from_json(json.dumps(d))
  message = str(info.value)
  assert message.startswith(f"{field}: "), message
  assert words in message
  assert "\n" not in message


@pytest.mark.parametrize("text,words", [
    ('{"normal": ', "genotype: not valid JSON"),
    ("[1, 2]", "genotype: expected a JSON object"),
    ("", "genotype: not valid JSON"),
])
def test_bad_json_is_a_genotype_error(text, words):
  with pytest.raises(G.GenotypeError, match=words):
    G.from_json(text)


# ----------------------------------------------------------------------------- canonical form

def _swap_edges(g: G.Genotype, cell_name: str, k: int) -> G.Genotype:
  c = g.cells()[cell_name]
  blocks = list(c.blocks)
  blocks[k] = dataclasses.replace(blocks[k], edges=tuple(reversed(blocks[k].edges)))
  return dataclasses.replace(g, **{cell_name: dataclasses.replace(c, blocks=tuple(blocks))})


def _reorder_blocks(c: G.Cell, order: list[int]) -> G.Cell:
  """The same cell with block `order[n]` listed n-th (order must be topological)."""
  remap = {i: i for i in range(c.num_inputs)}
  remap.update({c.block_node(old): c.block_node(new) for new, old in enumerate(order)})
  blocks = tuple(G.Block(tuple(G.Edge(remap[e.input], e.op) for e in c.blocks[old].edges),
                         c.blocks[old].combine) for old in order)
  concat = None if c.concat is None else tuple(remap[n] for n in c.concat)
  return G.Cell(blocks, concat, c.num_inputs)


@st.composite
def topological_orders(draw, c: G.Cell) -> list[int]:
  """A random order of the blocks in which every block comes after the blocks it reads."""
  order, placed = [], set(range(c.num_inputs))
  remaining = list(range(len(c.blocks)))
  while remaining:
    ready = [k for k in remaining if all(e.input in placed for e in c.blocks[k].edges)]
    k = draw(st.sampled_from(ready))
    order.append(k)
    placed.add(c.block_node(k))
    remaining.remove(k)
  return order


@settings(max_examples=100, deadline=None)
@given(genotypes(combine_concat=True), st.data())
def test_hash_ignores_edge_order_and_independent_block_order(g, data):
  cell_name = data.draw(st.sampled_from(sorted(g.cells())))
  c = g.cells()[cell_name]
  k = data.draw(st.integers(0, len(c.blocks) - 1))
  swapped = _swap_edges(g, cell_name, k)
  assert G.genotype_hash(swapped) == G.genotype_hash(g)
  order = data.draw(topological_orders(c))
  reordered = dataclasses.replace(g, **{cell_name: _reorder_blocks(c, order)})
  G.validate(reordered)
  assert G.genotype_hash(reordered) == G.genotype_hash(g)
  assert G.canonical(reordered) == G.canonical(g)


@settings(max_examples=100, deadline=None)
@given(genotypes(), st.data())
def test_hash_changes_when_one_op_changes(g, data):
  rules = spaces.SPACES[g.space]
  cell_name = data.draw(st.sampled_from(sorted(g.cells())))
  c = g.cells()[cell_name]
  k = data.draw(st.integers(0, len(c.blocks) - 1))
  j = data.draw(st.integers(0, len(c.blocks[k].edges) - 1))
  old = c.blocks[k].edges[j]
  new_op = data.draw(st.sampled_from([op for op in rules.ops if op != old.op]))
  edges = list(c.blocks[k].edges)
  edges[j] = G.Edge(old.input, new_op)
  blocks = list(c.blocks)
  blocks[k] = dataclasses.replace(blocks[k], edges=tuple(edges))
  changed = dataclasses.replace(g, **{cell_name: dataclasses.replace(c, blocks=tuple(blocks))})
  assert G.genotype_hash(changed) != G.genotype_hash(g)


def test_hash_examples():
  a = darts_v2()
  # Blocks 0 and 1 of DARTS-V2's normal cell are the same block, so listing them the
  # other way round (and fixing references) is the same cell.
  swapped = dataclasses.replace(a, normal=_reorder_blocks(a.normal, [1, 0, 2, 3]))
  assert G.genotype_hash(swapped) == G.genotype_hash(a)
  # Reading block 1 instead of its twin block 0 is the same cell; reading block 2 is not.
  moved = dataclasses.replace(a, normal=G.cell(
      [[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
       [("sep_conv_3x3", 1), ("skip_connect", 0)], [("skip_connect", 0), ("dil_conv_3x3", 3)]],
      concat=[2, 3, 4, 5]))
  assert G.genotype_hash(moved) == G.genotype_hash(a)
  moved = dataclasses.replace(moved, normal=dataclasses.replace(moved.normal, blocks=(
      *moved.normal.blocks[:3], G.Block((G.Edge(0, "skip_connect"), G.Edge(4, "dil_conv_3x3"))))))
  assert G.genotype_hash(moved) != G.genotype_hash(a)
  # Normal and reduction cells are not interchangeable.
  flipped = dataclasses.replace(a, normal=a.reduce, reduce=a.normal)
  assert G.genotype_hash(flipped) != G.genotype_hash(a)
  # `concat=None` means "every unused block", so spelling it out is the same cell.
  implicit = dataclasses.replace(a, normal=dataclasses.replace(a.normal, concat=None))
  assert a.normal.output_nodes() != implicit.normal.output_nodes()  # DARTS concats used nodes
  assert G.genotype_hash(implicit) != G.genotype_hash(a)
  explicit = dataclasses.replace(implicit, normal=dataclasses.replace(
      a.normal, concat=implicit.normal.output_nodes()))
  assert G.genotype_hash(explicit) == G.genotype_hash(implicit)
  assert len(G.genotype_hash(a)) == 16 and int(G.genotype_hash(a), 16) >= 0
