"""DARTS and NB201 notations: round trips, the published strings, and parse errors."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings

from models.genotypes import genotype as G
from models.genotypes import notation
from models import spaces
from tests.models.test_genotype import darts_v2, genotypes, nb201_cell

DARTS_V2_TEXT = (
    "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))")

# The AmoebaNet entry of DARTS's genotypes.py: 5 blocks and DARTS's name for 1x7-then-7x1.
AMOEBA_TEXT = """Genotype(
  normal = [('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2),
            ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1),
            ('skip_connect', 0), ('avg_pool_3x3', 1)],
  normal_concat = [4, 5, 6],
  reduce = [('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2),
            ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1),
            ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)],
  reduce_concat = [3, 4, 6]
)"""

NB201_TEXT = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
              "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def _explicit_concat(c: G.Cell) -> G.Cell:
  return dataclasses.replace(c, concat=c.output_nodes())


# ----------------------------------------------------------------------------- DARTS

def test_darts_v2_parses_to_the_published_cells():
  g = notation.from_darts(DARTS_V2_TEXT)
  assert g == darts_v2()
  assert g.space == "darts"


def test_amoeba_entry_maps_darts_op_names_and_has_no_space():
  g = notation.parse_any(AMOEBA_TEXT)
  assert g.space is None  # sep_conv_7x7 and the 1x7/7x1 conv are not DARTS-space ops
  assert len(g.normal.blocks) == len(g.reduce.blocks) == 5
  assert g.reduce.blocks[4].edges == (G.Edge(0, "conv_1x7_7x1"), G.Edge(5, "sep_conv_3x3"))
  assert g.normal.concat == (4, 5, 6) and g.reduce.concat == (3, 4, 6)
  # Printing uses DARTS's spelling again, so the text stays loadable by DARTS code.
  assert "('conv_7x1_1x7', 0)" in notation.to_darts(g)
  assert notation.from_darts(notation.to_darts(g)) == g


@settings(max_examples=150, deadline=None)
@given(genotypes(space_names=("nasnet", "pnas", "darts")))
def test_darts_round_trip(g):
  text = notation.to_darts(g)
  back = notation.from_darts(text)
  assert back.normal == _explicit_concat(g.normal)
  assert back.reduce == _explicit_concat(g.reduce)
  all_darts_ops = set(back.normal.ops() + back.reduce.ops()) <= set(spaces.DARTS.ops)
  assert back.space == ("darts" if all_darts_ops else None)
  assert notation.to_darts(back) == text
  assert notation.parse_any(f"  \n{text}\n") == back


def test_concat_accepts_range_tuple_and_list():
  base = "Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], normal_concat={}, " \
         "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])"
  for concat in ("range(2, 3)", "range(3)", "(2,)", "[2]"):
    g = notation.from_darts(base.format(concat))
    assert g.normal.concat == ((0, 1, 2) if concat == "range(3)" else (2,))


def test_positional_darts_fields():
  g = notation.from_darts("Genotype([('skip_connect', 0), ('skip_connect', 1)], [2], "
                          "[('max_pool_3x3', 0), ('max_pool_3x3', 1)], [2])")
  assert g.reduce.ops() == ("max_pool_3x3", "max_pool_3x3")


def test_to_darts_rejects_cells_it_cannot_write():
  with pytest.raises(G.GenotypeError, match=r"^normal.num_inputs: DARTS notation needs 2"):
    notation.to_darts(nb201_cell([["skip_connect"]]))
  c = G.cell([[("identity", 0), ("identity", 1)]], combine="concat")
  with pytest.raises(G.GenotypeError, match=r"^normal.blocks\[0\]: DARTS notation needs two edges"):
    notation.to_darts(G.Genotype(c, c))


_PAIRS = "[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)]"
DARTS_ERRORS = [
    (f"Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_9x9', 1)], normal_concat=[2], "
     f"reduce={_PAIRS}, reduce_concat=[2])", "normal[1]: unknown op 'sep_conv_9x9'"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2], reduce=[('max_pool_3x3', 0)], "
     f"reduce_concat=[2])", "reduce: 1 pairs, expected two per block"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2], reduce=[], reduce_concat=[2])",
     "reduce: empty cell"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2])", "reduce: the darts space needs a reduction"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2], reduce={_PAIRS}, reduce_concat=[2], "
     f"stride=2)", "stride: unknown field"),
    (f"Genotype(normal={_PAIRS}, reduce={_PAIRS}, reduce_concat=[2])", "normal_concat: missing"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2], reduce={_PAIRS}, reduce_concat=x)",
     "reduce_concat: expected a list of node indices or range(a, b)"),
    (f"Genotype(normal={_PAIRS}, normal_concat=range(2, 'a'), reduce={_PAIRS}, reduce_concat=[2])",
     "normal_concat: expected range(a, b)"),
    (f"Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 5)], normal_concat=[2], "
     f"reduce={_PAIRS}, reduce_concat=[2])", "normal.blocks[0].edges[1].input: bad input index 5"),
    (f"Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 2)], normal_concat=[2], "
     f"reduce={_PAIRS}, reduce_concat=[2])", "normal.blocks[0].edges[1].input: cycle"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2, 7], reduce={_PAIRS}, reduce_concat=[2])",
     "normal.concat[1]: bad node index 7"),
    (f"Genotype(normal=[('sep_conv_3x3', 0), (__import__('os'), 1)], normal_concat=[2], "
     f"reduce={_PAIRS}, reduce_concat=[2])", "normal[1]: expected an (op name, input index) pair"),
    (f"Genotype(normal=[('sep_conv_3x3', 0), 'skip'], normal_concat=[2], "
     f"reduce={_PAIRS}, reduce_concat=[2])", "normal[1]: expected an (op, input) pair"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2], reduce={_PAIRS}, reduce_concat=[2]",
     "Genotype: not valid DARTS notation"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2]); Genotype(normal={_PAIRS})",
     "Genotype: expected exactly one"),
    (f"Genotype(normal={_PAIRS}, normal_concat=[2], reduce_concat=[2])",
     "reduce: missing (only reduce_concat given)"),
]


@pytest.mark.parametrize("text,message", DARTS_ERRORS)
def test_darts_errors_name_the_field(text, message):
  with pytest.raises(G.GenotypeError) as info:
    notation.parse_any(text)
  assert str(info.value).startswith(message), str(info.value)


# ----------------------------------------------------------------------------- NB201

def test_nb201_string_parses_to_the_cell():
  g = notation.from_nb201(NB201_TEXT)
  assert g == nb201_cell([["nor_conv_3x3"], ["nor_conv_3x3", "avg_pool_3x3"],
                          ["skip_connect", "nor_conv_3x3", "skip_connect"]])
  assert g.space == "nb201" and g.reduce is None
  assert g.normal.num_inputs == 1 and g.normal.concat == (3,)
  assert notation.to_nb201(g) == NB201_TEXT


@settings(max_examples=150, deadline=None)
@given(genotypes(space_names=("nb201",)))
def test_nb201_round_trip(g):
  text = notation.to_nb201(g)
  back = notation.from_nb201(text)
  assert back == dataclasses.replace(g, normal=_explicit_concat(g.normal))
  assert notation.to_nb201(back) == text
  assert notation.parse_any(f"\t{text}  \n") == back


def test_to_nb201_rejects_two_input_cells():
  with pytest.raises(G.GenotypeError, match=r"^reduce: NB201 notation has no reduction cell"):
    notation.to_nb201(darts_v2())


NB201_ERRORS = [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|",
     "normal.blocks[1].edges: wrong arity, 1 edges, expected 2"),
    ("|conv_3x3~0|", "normal.blocks[0].edges[0].op: unknown op 'conv_3x3'"),
    ("|nor_conv_3x3~1|", "normal.blocks[0].edges[0].input"),
    ("|nor_conv_3x3~0|+|none~0|none~0|", "normal.blocks[1].edges: node 2 needs one edge from each"),
    ("|nor_conv_3x3-0|", "normal.blocks[0].edges[0]: expected op~input, got 'nor_conv_3x3-0'"),
    ("|nor_conv_3x3~0|+nor_conv_3x3~0|none~1|", "normal.blocks[1]: expected |op~i|...| for node 2"),
    ("|nor_conv_3x3~0||", "normal.blocks[0].edges[1]: expected op~input, got ''"),
    ("|", "normal.blocks[0]: expected |op~i|...| for node 1"),
]


@pytest.mark.parametrize("text,message", NB201_ERRORS)
def test_nb201_errors_name_the_field(text, message):
  with pytest.raises(G.GenotypeError) as info:
    notation.parse_any(text)
  assert str(info.value).startswith(message), str(info.value)


# ----------------------------------------------------------------------------- any

def test_parse_any_tells_the_notations_apart():
  g = darts_v2()
  assert notation.parse_any(G.to_json(g)) == g
  assert notation.parse_any(DARTS_V2_TEXT) == g
  assert notation.parse_any("genotypes.Genotype" + DARTS_V2_TEXT.split("Genotype", 1)[1]) == g
  assert notation.parse_any(NB201_TEXT).space == "nb201"


@pytest.mark.parametrize("text", ["", "   ", "resnet50", "Genome(normal=[])", "[1, 2]"])
def test_parse_any_rejects_other_text_in_one_line(text):
  with pytest.raises(G.GenotypeError) as info:
    notation.parse_any(text)
  assert str(info.value).startswith("genotype: unrecognised notation")
  assert "\n" not in str(info.value)
