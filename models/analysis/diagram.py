"""Graphviz diagrams of a genotype's cells (PNG/SVG), DARTS-paper style.

Inputs are c_{k-2}, c_{k-1} (one-input cells: c_{k-1}), blocks are numbered
from 0, edges carry readable op names, and the output c_{k} collects the
concatenated nodes. A block that concatenates (rather than adds) its edges is
drawn as a box marked "concat".
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Sequence

import graphviz

from models.genotypes.genotype import Cell, Genotype

_KINDS = {"sep_conv": "sep", "dil_conv": "dil", "nor_conv": "conv", "conv": "conv",
          "max_pool": "max pool", "avg_pool": "avg pool"}
_SPECIAL = {"identity": "identity", "skip_connect": "identity", "none": "zero"}
_warned_no_dot = False


def op_label(op: str) -> str:
  """A readable name: 'sep_conv_3x3' -> 'sep 3x3', 'conv_1x7_7x1' -> 'conv 1x7 7x1'."""
  if op in _SPECIAL:
    return _SPECIAL[op]
  m = re.fullmatch(r"([a-z_]+?)_(\d+x\d+(?:_\d+x\d+)*)", op)
  if m is None or m.group(1) not in _KINDS:
    return op.replace("_", " ")
  return f"{_KINDS[m.group(1)]} {m.group(2).replace('_', ' ')}"


def input_label(c: Cell, i: int) -> str:
  """c_{k-2}, c_{k-1} for the usual two inputs; c_{k-1} for a one-input cell."""
  offset = c.num_inputs - i
  return f"c_{{k-{offset}}}"


def cell_graph(c: Cell, title: str = "") -> graphviz.Digraph:
  """The diagram of one cell as a graphviz Digraph (not rendered)."""
  dot = graphviz.Digraph(format="png",
                         graph_attr={"rankdir": "LR", "label": title, "fontname": "helvetica"},
                         node_attr={"style": "filled", "fontname": "helvetica"},
                         edge_attr={"fontname": "helvetica", "fontsize": "11"})
  for i in range(c.num_inputs):
    dot.node(str(i), input_label(c, i), fillcolor="darkseagreen2", shape="box")
  for k, b in enumerate(c.blocks):
    node = c.block_node(k)
    if b.combine == "concat":
      dot.node(str(node), f"{k} (concat)", fillcolor="lightblue", shape="box3d")
    else:
      dot.node(str(node), str(k), fillcolor="lightblue", shape="box")
    for e in b.edges:
      dot.edge(str(e.input), str(node), label=op_label(e.op),
               style="dashed" if e.op == "none" else "solid")
  dot.node("out", "c_{k}", fillcolor="palegoldenrod", shape="box")
  for n in c.output_nodes():
    dot.edge(str(n), "out", color="gray")
  return dot


def draw_genotype(g: Genotype, out_path_without_ext: str,
                  formats: Sequence[str] = ("png", "svg")) -> list[str]:
  """Writes `<out>_<cell>.<fmt>` for each cell and format; returns the paths.

  Without the `dot` binary, writes `<out>_<cell>.dot` sources instead and warns once.
  """
  global _warned_no_dot
  directory = os.path.dirname(os.path.abspath(out_path_without_ext))
  os.makedirs(directory, exist_ok=True)
  written = []
  for name, c in g.cells().items():
    graph = cell_graph(c, title=f"{name} cell")
    stem = f"{out_path_without_ext}_{name}"
    try:
      for fmt in formats:
        written.append(graph.render(outfile=f"{stem}.{fmt}", format=fmt, cleanup=True))
    except graphviz.ExecutableNotFound:
      source = f"{stem}.dot"
      with open(source, "w") as f:
        f.write(graph.source)
      written.append(source)
      if not _warned_no_dot:
        warnings.warn("graphviz `dot` not found: wrote .dot sources instead of images "
                      "(render them with `dot -Tpng`)", stacklevel=2)
        _warned_no_dot = True
  return written
