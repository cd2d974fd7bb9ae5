"""Named models: published networks at their papers' sizes, and generic skeletons.

`build_model(name, genotype=..., rngs=...)`; overrides are `NetworkConfig` fields
(`filters`, `normal_cells`, `aux_head`, `dropout`, `style`, ...) plus `layers`, DARTS's
total cell count (reduction cells included).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from flax import nnx

from models import ops
from models.zoo import published
from models.errors import UserError
from models.genotypes.genotype import Genotype
from models.networks.nasnet import Network, NetworkConfig, darts_normal_cells


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  genotype: Genotype | None          # None: the caller supplies one
  config: NetworkConfig
  image_size: int


def _imagenet(**kw: Any) -> NetworkConfig:
  return NetworkConfig(num_classes=1000, stem="nasnet_imagenet", final_relu=True, dropout=0.5,
                       **kw)


_NASNET = ops.KERAS_NASNET_STYLE
_PNAS = ops.TF_PNASNET_STYLE

MODELS: dict[str, ModelSpec] = {
    "nasnet_a_mobile": ModelSpec(published.NASNET_A, _imagenet(
        filters=44, normal_cells=(4, 4, 4), stem_filters=32, image_size=224, style=_NASNET), 224),
    "nasnet_a_large": ModelSpec(published.NASNET_A, _imagenet(
        filters=168, normal_cells=(6, 6, 6), stem_filters=96, image_size=331,
        skip_reduction_input=True, style=_NASNET), 331),
    "nasnet_a_cifar": ModelSpec(published.NASNET_A, NetworkConfig(
        filters=32, normal_cells=(6, 6, 6), stem_filters=96, aux_head=True, final_relu=True,
        style=_NASNET), 32),
    # TF-slim counts the reduction cells among PNASNet's cells: 9 = 3 + 1 + 2 + 1 + 2.
    "pnasnet_5_mobile": ModelSpec(published.PNASNET_5, _imagenet(
        filters=54, normal_cells=(3, 2, 2), stem_filters=32, image_size=224, style=_PNAS), 224),
    "pnasnet_5_large": ModelSpec(published.PNASNET_5, _imagenet(
        filters=216, normal_cells=(4, 3, 3), stem_filters=96, image_size=331, style=_PNAS), 331),
    "amoebanet_a_cifar": ModelSpec(published.AMOEBANET_A, NetworkConfig(
        filters=36, normal_cells=(6, 6, 6), aux_head=True), 32),
    "darts_v2_cifar": ModelSpec(published.DARTS_V2, NetworkConfig(
        filters=36, normal_cells=darts_normal_cells(20), aux_head=True), 32),
    "darts_v2_imagenet": ModelSpec(published.DARTS_V2, NetworkConfig(
        num_classes=1000, filters=48, normal_cells=darts_normal_cells(14), stem="darts_imagenet",
        image_size=224, aux_head=True), 224),
    "cifar": ModelSpec(None, NetworkConfig(
        filters=36, normal_cells=darts_normal_cells(20), aux_head=True), 32),
    "imagenet": ModelSpec(None, NetworkConfig(
        num_classes=1000, filters=48, normal_cells=darts_normal_cells(14), stem="darts_imagenet",
        image_size=224, aux_head=True), 224),
}


def _build_nb201(genotype: Genotype, num_classes: int, image_size: int, rngs: nnx.Rngs,
                 **overrides: Any) -> nnx.Module:
  del image_size
  from models.networks.nb201 import NB201Network  # another skeleton; imported on demand
  if "bn_axis_name" in overrides:
    overrides["style"] = dataclasses.replace(overrides.get("style") or ops.DARTS_STYLE,
                                             bn_axis_name=overrides.pop("bn_axis_name"))
  return NB201Network(genotype, num_classes, rngs=rngs, **overrides)


# Skeletons that are not NASNet-style stacks: name -> (builder, classes, image size).
OTHER_SKELETONS: dict[str, tuple[Callable[..., nnx.Module], int, int]] = {
    "nb201": (_build_nb201, 10, 32),
}


def model_names() -> tuple[str, ...]:
  return tuple(MODELS) + tuple(OTHER_SKELETONS)


def _unknown(name: str) -> UserError:
  return UserError(f"model: unknown model {name!r} (known: {', '.join(model_names())})")


def default_image_size(name: str) -> int:
  if name in OTHER_SKELETONS:
    return OTHER_SKELETONS[name][2]
  if name not in MODELS:
    raise _unknown(name)
  return MODELS[name].image_size


def default_num_classes(name: str) -> int:
  if name in OTHER_SKELETONS:
    return OTHER_SKELETONS[name][1]
  if name not in MODELS:
    raise _unknown(name)
  return MODELS[name].config.num_classes


def model_config(name: str, *, num_classes: int | None = None, image_size: int | None = None,
                 **overrides: Any) -> NetworkConfig:
  """The `NetworkConfig` `build_model` would use."""
  if name not in MODELS:
    raise _unknown(name)
  spec = MODELS[name]
  if "layers" in overrides:
    overrides["normal_cells"] = darts_normal_cells(int(overrides.pop("layers")))
  if "bn_axis_name" in overrides:  # cross-replica BatchNorm over this mesh axis
    overrides["style"] = dataclasses.replace(overrides.get("style", spec.config.style),
                                             bn_axis_name=overrides.pop("bn_axis_name"))
  known = {f.name for f in dataclasses.fields(NetworkConfig)}
  unknown = sorted(set(overrides) - known)
  if unknown:
    raise UserError(f"model.{unknown[0]}: unknown override for {name!r} "
                    f"(known: layers, bn_axis_name, {', '.join(sorted(known))})")
  if num_classes is not None:
    overrides["num_classes"] = num_classes
  overrides["image_size"] = image_size or spec.image_size
  if "normal_cells" in overrides:
    overrides["normal_cells"] = tuple(overrides["normal_cells"])
  try:
    return dataclasses.replace(spec.config, **overrides)
  except ValueError as e:
    raise UserError(f"model {name!r}: {e}") from None


def build_model(name: str, *, genotype: Genotype | None = None, num_classes: int | None = None,
                image_size: int | None = None, rngs: nnx.Rngs, **overrides: Any) -> nnx.Module:
  if name in OTHER_SKELETONS:
    builder, classes, size = OTHER_SKELETONS[name]
    if genotype is None:
      raise UserError(f"model {name!r}: needs a genotype")
    return builder(genotype, num_classes or classes, image_size or size, rngs, **overrides)
  config = model_config(name, num_classes=num_classes, image_size=image_size, **overrides)
  genotype = genotype or MODELS[name].genotype
  if genotype is None:
    raise UserError(f"model {name!r}: needs a genotype (the generic skeletons take any cell)")
  return Network(genotype, config, rngs=rngs)
