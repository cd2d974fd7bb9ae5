"""Cloud TPU slices: accelerator types, their hosts, and the TPU VM software to ask for.

An accelerator type is `GENERATION-SIZE` (`v4-32`, `v5litepod-16`, `v6e-8`). SIZE
counts TensorCores for v2, v3, v4 and v5p (two per chip) and chips for v5e and v6e
(one TensorCore each). Each host (TPU VM, one JAX process) drives 4 chips, except
single-host v5e/v6e slices, which put up to 8 chips on one VM. Runtime versions are
the ones Google's TPU software-versions page names for JAX.
"""
from __future__ import annotations

import dataclasses
import re

from models.errors import UserError


@dataclasses.dataclass(frozen=True)
class Generation:
  cores_per_chip: int     # what SIZE counts per chip
  runtime_version: str    # TPU VM software version for JAX
  sizes: tuple[int, ...]  # SIZE values Cloud TPU offers
  single_host_chips: int = 4


def _powers_of_two(low: int, high: int) -> tuple[int, ...]:
  return tuple(2 ** k for k in range(low.bit_length() - 1, high.bit_length()))


GENERATIONS = {
    "v2": Generation(2, "tpu-ubuntu2204-base", (8, 32, 128, 256, 512)),
    "v3": Generation(2, "tpu-ubuntu2204-base", _powers_of_two(8, 2048)),
    "v4": Generation(2, "tpu-ubuntu2204-base", tuple(range(8, 8193, 8))),
    "v5p": Generation(2, "v2-alpha-tpuv5", tuple(range(8, 12289, 8))),
    "v5litepod": Generation(1, "v2-alpha-tpuv5-lite", (1, 4, 8, 16, 32, 64, 128, 256), 8),
    "v6e": Generation(1, "v2-alpha-tpuv6e", (1, 4, 8, 16, 32, 64, 128, 256), 8),
}
ALIASES = {"v5e": "v5litepod"}
_TYPE = re.compile(r"^(v\d+[a-z]*)-(\d+)$")


@dataclasses.dataclass(frozen=True)
class AcceleratorType:
  generation: str
  size: int

  @property
  def name(self) -> str:
    return f"{self.generation}-{self.size}"

  @property
  def chips(self) -> int:
    return self.size // GENERATIONS[self.generation].cores_per_chip

  @property
  def hosts(self) -> int:
    """TPU VMs of the slice: `--worker` takes 0 .. hosts - 1."""
    single = GENERATIONS[self.generation].single_host_chips
    return 1 if self.chips <= single else self.chips // 4

  @property
  def runtime_version(self) -> str:
    return GENERATIONS[self.generation].runtime_version


def parse(text: str) -> AcceleratorType:
  known = ", ".join(f"{g}-N" for g in GENERATIONS)
  match = _TYPE.match(text.strip().lower())
  if not match:
    raise UserError(f"--accelerator: unknown accelerator type {text!r} "
                    f"(known: {known}; e.g. v4-32)")
  generation, size = ALIASES.get(match.group(1), match.group(1)), int(match.group(2))
  if generation not in GENERATIONS:
    raise UserError(f"--accelerator: unknown TPU generation in {text!r} (known: {known})")
  sizes = GENERATIONS[generation].sizes
  if size not in sizes:
    shown = ", ".join(map(str, sizes[:8])) + (", ..." if len(sizes) > 8 else "")
    raise UserError(f"--accelerator: {generation} has no size {size} (sizes: {shown})")
  return AcceleratorType(generation, size)
