"""The network a config asks for: a zoo name, or a genotype file in a zoo skeleton."""
from __future__ import annotations

import os

import ml_collections
from flax import nnx

from experiments.parallel import DATA_AXIS
from models.zoo import exported
from models.genotypes import genotype as genotype_lib
from models.genotypes import files as genotype_files
from models.errors import UserError

# Genotypes of these spaces are built in their own macro skeleton; all others in `cifar`.
SKELETON_OF_SPACE = {"nb201": "nb201"}
DEFAULT_SKELETON = "cifar"


def model_spec(config: ml_collections.ConfigDict
               ) -> tuple[str, genotype_lib.Genotype | None, dict]:
  """(zoo name, genotype or None, overrides) for `config`.

  `model_overrides` size NASNet-style networks (`config.model` or the `cifar`
  skeleton); `nb201_overrides` size the NB201 skeleton. `config.model` may also
  be an export directory (`experiments.export`), which brings its own sizes.
  """
  g = None
  name = config.model
  if exported.is_export(name):
    # An exported model carries its own skeleton, sizes and cell.
    definition = exported.load(name)
    if config.genotype:
      raise UserError("config.genotype: leave empty when config.model is an exported model")
    overrides = dict(definition.overrides)
    if config.cross_replica_bn:
      overrides["bn_axis_name"] = DATA_AXIS
    return definition.skeleton, definition.genotype, overrides
  if config.genotype:
    if not os.path.isfile(config.genotype):
      raise UserError(f"config.genotype: no genotype file at {config.genotype!r}")
    g = genotype_files.load(config.genotype)
    name = SKELETON_OF_SPACE.get(g.space or "", DEFAULT_SKELETON)
  overrides = dict(config.nb201_overrides if name == "nb201" else config.model_overrides)
  if config.cross_replica_bn:
    overrides["bn_axis_name"] = DATA_AXIS
  return name, g, overrides


def build_model(config: ml_collections.ConfigDict, *, num_classes: int, image_size: int,
                rngs: nnx.Rngs) -> nnx.Module:
  from models.zoo import catalog as zoo  # the model library is only needed once a model is built
  name, genotype, overrides = model_spec(config)
  if name not in zoo.model_names():
    raise UserError(f"config.model: unknown model {name!r}; "
                    f"choose one of {', '.join(sorted(zoo.model_names()))}")
  if config.genotype_as_input:
    return _build_anycell(name, genotype, overrides, num_classes=num_classes,
                          image_size=image_size, rngs=rngs)
  try:
    return zoo.build_model(name, genotype=genotype, num_classes=num_classes,
                           image_size=image_size, rngs=rngs, **overrides)
  except TypeError as e:
    raise UserError(f"config.model_overrides: {e}") from None


def _build_anycell(name: str, genotype: genotype_lib.Genotype | None, overrides: dict, *,
                   num_classes: int, image_size: int, rngs: nnx.Rngs) -> nnx.Module:
  """The `models.networks.anycell` network of `genotype`: one program for its whole space."""
  from models.networks import anycell
  from models import spaces
  from models.zoo import catalog as zoo
  where = "config.genotype_as_input"
  two_input = ", ".join(s.name for s in spaces.SPACES.values() if s.num_inputs == 2)
  if genotype is None or name not in zoo.MODELS:
    raise UserError(f"{where}: needs a genotype file of a two-input cell space "
                    f"({two_input}) in a NASNet-style skeleton")
  rules = spaces.SPACES.get(genotype.space or "")
  if rules is None or rules.num_inputs != 2:
    raise UserError(f"{where}: the genotype's space is {genotype.space!r}; the program is "
                    f"built for a space's op set, one of {two_input}")
  config = zoo.model_config(name, num_classes=num_classes, image_size=image_size, **overrides)
  reason = anycell.space_supports(genotype, config)
  if reason is not None:
    raise UserError(f"{where}: {reason}")
  return anycell.build(genotype, config, rules.ops, concat_combine="concat" in rules.combines,
                       rngs=rngs)
