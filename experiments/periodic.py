"""The one way to say "every N steps": `"500 steps"`, `"2 epochs"`, `"0"` (never)."""
from __future__ import annotations

import dataclasses
import math

from models.errors import UserError

_UNITS = {"step": 1, "steps": 1, "epoch": None, "epochs": None}


@dataclasses.dataclass(frozen=True)
class Every:
  """Fires on multiples of `steps` and on the last step; `steps == 0` never fires."""
  steps: int

  def __call__(self, step: int, total_steps: int) -> bool:
    return self.steps > 0 and (step % self.steps == 0 or step == total_steps)


def parse(text: str, *, steps_per_epoch: int, where: str = "period") -> Every:
  """`"N steps"` or `"X epochs"` (fractions allowed) -> `Every`; `"0"` or `""` -> never."""
  parts = str(text).split()
  if not parts or parts == ["0"]:
    return Every(0)
  try:
    amount = float(parts[0])
    unit = parts[1] if len(parts) == 2 else "steps"
    if unit not in _UNITS or len(parts) > 2 or amount < 0:
      raise ValueError
  except ValueError:
    raise UserError(f"{where}: cannot read {text!r}; write e.g. '200 steps' or '1 epoch'") from None
  scale = steps_per_epoch if _UNITS[unit] is None else 1
  return Every(max(1, math.ceil(amount * scale)) if amount > 0 else 0)
