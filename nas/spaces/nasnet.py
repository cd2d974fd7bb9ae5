"""The NASNet search space (Zoph et al., 2018): 13 ops, 5 blocks, add or concat."""
from __future__ import annotations

from models import spaces
from nas.spaces.base import register
from nas.spaces.cells import CellSpace


@register("nasnet")
class NASNetSpace(CellSpace):
  rules = spaces.NASNET
  op_choices = spaces.NASNET.ops
  combines = spaces.NASNET.combines
