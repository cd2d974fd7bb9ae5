"""Exported model definitions: a found cell frozen into a buildable network.

An export directory holds `model.json` (this module's format: skeleton, size
overrides, classes, image size and the genotype, all plain data), optionally
`params/` and `batch_stats/` (orbax, trained weights to fine-tune from) and cell diagrams.
Anything that takes a zoo name also takes an export directory.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from flax import nnx

from models.genotypes import genotype as genotype_lib
from models.errors import UserError

FORMAT = "nas-model/1"
MODEL_FILE = "model.json"
PARAMS_DIR = "params"            # orbax checkpoints, the layout `init_checkpoint` reads
BATCH_STATS_DIR = "batch_stats"
_SCALARS = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class ModelDefinition:
  name: str
  skeleton: str                    # a models.zoo.catalog name that takes a genotype, e.g. "cifar"
  genotype: genotype_lib.Genotype
  num_classes: int
  image_size: int
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_dict(self) -> dict[str, Any]:
    return {"format": FORMAT, "name": self.name, "skeleton": self.skeleton,
            "num_classes": self.num_classes, "image_size": self.image_size,
            "overrides": dict(self.overrides), "genotype": genotype_lib.to_dict(self.genotype)}


def is_export(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MODEL_FILE)) or (
      path.endswith(".json") and os.path.isfile(path) and _looks_like_model_file(path))


def _looks_like_model_file(path: str) -> bool:
  try:
    with open(path) as f:
      return json.load(f).get("format") == FORMAT
  except (OSError, ValueError, AttributeError):
    return False


def save(definition: ModelDefinition, directory: str) -> str:
  """Writes `directory/model.json` atomically; returns its path."""
  for key, value in definition.overrides.items():
    if not isinstance(value, _SCALARS) and not (
        isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value)):
      raise UserError(f"overrides.{key}: only numbers, strings and lists of them can be "
                      f"exported, got {type(value).__name__}")
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, MODEL_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(definition.to_dict(), f, indent=2)
    f.write("\n")
  os.replace(tmp, path)
  return path


def load(path: str) -> ModelDefinition:
  """Reads an export directory (or its model.json); every fault is a UserError."""
  file = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
  try:
    with open(file) as f:
      d = json.load(f)
  except OSError as e:
    raise UserError(f"{file}: cannot read exported model ({e.strerror})") from None
  except json.JSONDecodeError as e:
    raise UserError(f"{file}: not valid JSON ({e.msg} at line {e.lineno})") from None
  if not isinstance(d, dict) or d.get("format") != FORMAT:
    raise UserError(f"{file}: format: expected {FORMAT!r}")
  fields = {"name": str, "skeleton": str, "num_classes": int, "image_size": int,
            "overrides": dict}
  for key, kind in fields.items():
    if not isinstance(d.get(key), kind) or isinstance(d.get(key), bool):
      raise UserError(f"{file}: {key}: expected {kind.__name__}")
  try:
    genotype = genotype_lib.from_dict(d.get("genotype"))
  except genotype_lib.GenotypeError as e:
    raise UserError(f"{file}: genotype.{e}") from None
  return ModelDefinition(name=d["name"], skeleton=d["skeleton"], genotype=genotype,
                         num_classes=d["num_classes"], image_size=d["image_size"],
                         overrides=d["overrides"])


def checkpoint_path(path: str) -> str | None:
  """The export's orbax parameter checkpoint, if it has one."""
  directory = path if os.path.isdir(path) else os.path.dirname(path)
  ckpt = os.path.join(directory, PARAMS_DIR)
  return os.path.abspath(ckpt) if os.path.isdir(ckpt) else None


def build(definition: ModelDefinition, *, rngs: nnx.Rngs, **extra: Any) -> nnx.Module:
  from models.zoo import catalog as zoo
  overrides = {**definition.overrides, **extra}
  return zoo.build_model(definition.skeleton, genotype=definition.genotype,
                         num_classes=definition.num_classes, image_size=definition.image_size,
                         rngs=rngs, **overrides)
