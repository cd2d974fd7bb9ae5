"""Cell diagrams: PNG/SVG files, op labels, node count, and the no-`dot` fallback."""
from __future__ import annotations

import re
import shutil
import warnings
import xml.etree.ElementTree as ET

import pytest

from models.analysis import diagram
from models.genotypes import genotype as G
from tests.models.test_genotype import darts_v2, nb201_cell

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` not installed")


def _svg_nodes_and_text(path):
  root = ET.parse(path).getroot()
  ns = {"s": "http://www.w3.org/2000/svg"}
  nodes = root.findall(".//s:g[@class='node']", ns)
  texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
  return nodes, texts


@pytest.mark.parametrize("op,label", [
    ("sep_conv_3x3", "sep 3x3"), ("dil_conv_5x5", "dil 5x5"), ("max_pool_3x3", "max pool 3x3"),
    ("avg_pool_3x3", "avg pool 3x3"), ("identity", "identity"), ("skip_connect", "identity"),
    ("none", "zero"), ("nor_conv_1x1", "conv 1x1"), ("conv_1x7_7x1", "conv 1x7 7x1"),
    ("conv_3x3", "conv 3x3"), ("max_pool_7x7", "max pool 7x7")])
def test_op_labels(op, label):
  assert diagram.op_label(op) == label


@needs_dot
def test_darts_cells_draw_as_png_and_svg(tmp_path):
  g = darts_v2()
  paths = diagram.draw_genotype(g, str(tmp_path / "darts_v2"))
  expected = [str(tmp_path / f"darts_v2_{cell}.{fmt}") for cell in ("normal", "reduce")
              for fmt in ("png", "svg")]
  assert paths == expected
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.split("/")[-1] for p in expected)
  for cell_name, c in g.cells().items():
    png = (tmp_path / f"darts_v2_{cell_name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    nodes, texts = _svg_nodes_and_text(tmp_path / f"darts_v2_{cell_name}.svg")
    assert len(nodes) == 2 + len(c.blocks) + 1  # c_{k-2}, c_{k-1}, blocks, c_{k}
    for op in c.ops():
      assert diagram.op_label(op) in texts
    assert texts.count("max pool 3x3") == c.ops().count("max_pool_3x3")
    assert {"c_{k-2}", "c_{k-1}", "c_{k}", "0", "1", "2", "3"} <= set(texts)
    assert f"{cell_name} cell" in texts


@needs_dot
def test_nb201_cell_and_concat_marker(tmp_path):
  g = nb201_cell([["nor_conv_3x3"], ["none", "avg_pool_3x3"],
                  ["skip_connect", "nor_conv_1x1", "skip_connect"]])
  paths = diagram.draw_genotype(g, str(tmp_path / "nb201"), formats=("svg",))
  assert paths == [str(tmp_path / "nb201_normal.svg")]
  nodes, texts = _svg_nodes_and_text(paths[0])
  assert len(nodes) == 1 + 3 + 1
  assert "c_{k-1}" in texts and "c_{k-2}" not in texts
  assert texts.count("identity") == 2 and "zero" in texts and "conv 1x1" in texts
  # An edge into c_{k} from node 3 only: 6 op edges + 1 output edge.
  svg = open(paths[0]).read()
  assert len(re.findall(r'<g id="edge\d+" class="edge">', svg)) == 7

  concat_cell = G.cell([[("identity", 0), ("max_pool_3x3", 1)], [("identity", 2), ("identity", 1)]],
                       combine="concat")
  path = diagram.draw_genotype(G.Genotype(concat_cell), str(tmp_path / "cat"), formats=("svg",))[0]
  _, texts = _svg_nodes_and_text(path)
  assert texts.count("0 (concat)") == 1 and texts.count("1 (concat)") == 1


def test_without_dot_writes_sources_and_warns_once(tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path / "empty"))
  monkeypatch.setattr(diagram, "_warned_no_dot", False)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    paths = diagram.draw_genotype(darts_v2(), str(tmp_path / "out" / "cells"))
  assert paths == [str(tmp_path / "out" / "cells_normal.dot"),
                   str(tmp_path / "out" / "cells_reduce.dot")]
  assert len([w for w in caught if "dot" in str(w.message)]) == 1
  source = open(paths[0]).read()
  assert source.startswith("digraph") and source.count("sep 3x3") == 5
