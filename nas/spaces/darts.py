"""The DARTS space (Liu et al., 2019) as a discrete space: 4 blocks, output = all blocks.

`none` is left out of the choices: it only exists to let the supernet weigh edges,
and no derived DARTS cell contains it. Inputs may repeat (a derived DARTS cell takes
two distinct predecessors; sampled cells are a superset of those).
"""
from __future__ import annotations

from models import spaces
from nas.spaces.base import register
from nas.spaces.cells import CellSpace


@register("darts")
class DARTSSpace(CellSpace):
  rules = spaces.DARTS
  op_choices = tuple(op for op in spaces.DARTS.ops if op != "none")
  concat_all = True
