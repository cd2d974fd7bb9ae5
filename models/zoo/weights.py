"""Published NASNet-A / PNASNet-5 weights in our networks.

    from models.zoo import weights
    model = weights.from_keras("NASNet-mobile.h5", "nasnet_a_mobile")
    model = weights.from_torch("pnasnet5large.pth", "pnasnet_5_large")
    logits = model(images, train=False)   # NHWC float32 in [-1, 1]; pre-softmax

Sources: a Keras NASNetMobile/NASNetLarge model or its weights file (the `.h5` layout,
by layer name, the ImageNet weights ship in); a timm `nasnetalarge` /
`pnasnet5large` state dict, `.pth` or `.safetensors` (torch is optional).

Convert for training (`--config.init_checkpoint=DIR/params`):
    python -m models.zoo.weights convert --from keras NASNet-mobile.h5 --model nasnet_a_mobile --out DIR
DIR/params holds the `nnx.Param` state (orbax StandardCheckpointer, the layout
`init_checkpoint` reads); DIR/batch_stats the BatchNorm statistics.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Callable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import ops
from models.zoo import weight_maps, catalog as zoo
from models.errors import UserError, exit_on_user_error

KERAS_MODELS = ("nasnet_a_mobile", "nasnet_a_large")
TORCH_MODELS = ("nasnet_a_large", "pnasnet_5_large")

# Axis order taking a reference array to ours, per layout.
_KERAS_TO_OURS = {"conv": None, "depthwise": (0, 1, 3, 2), "dense": None, "vector": None}
_TORCH_TO_OURS = {"conv": (2, 3, 1, 0), "depthwise": (2, 3, 1, 0), "dense": (1, 0),
                  "vector": None}


# ----------------------------------------------------------------------------- readers

def _basename(weight_name: str) -> str:
  return weight_name.split("/")[-1].split(":")[0]


def _keras_model_tensors(model: Any) -> dict[str, Any]:
  out = {}
  for layer in model.layers:
    for w in layer.weights:
      out[f"{layer.name}/{_basename(w.name)}"] = np.asarray(w.numpy())
  return out


def _h5_tensors(path: str, f) -> Mapping[str, Any]:
  if "model_weights" in f:  # a whole model saved with `model.save("x.h5")`
    f = f["model_weights"]
  if "layer_names" in f.attrs:
    out = {}
    for layer in f.attrs["layer_names"]:
      layer = layer.decode() if isinstance(layer, bytes) else str(layer)
      group = f[layer]
      for weight_name in group.attrs.get("weight_names", []):
        weight_name = weight_name.decode() if isinstance(weight_name, bytes) else str(weight_name)
        out[f"{layer}/{_basename(weight_name)}"] = group[weight_name]
    return out
  if "layers" in f:
    # Keras 3 names a layer's group by its type and position, not by the layer's name.
    raise UserError(f"weights: {path!r} is a Keras 3 .weights.h5 file; load it into "
                    f"keras.applications.NASNetMobile/NASNetLarge and pass the model instead")
  raise UserError(f"weights: {path!r} is not a Keras weights file (no layer_names)")


def _import_torch():
  try:
    import torch
  except ImportError:
    raise UserError("weights: reading PyTorch weights needs torch (pip install -r "
                    "requirements-reference.txt)") from None
  return torch


def _torch_tensors(source: Any) -> dict[str, np.ndarray]:
  if isinstance(source, (str, os.PathLike)):
    path = os.fspath(source)
    if not os.path.isfile(path):
      raise UserError(f"weights: no weights file at {path!r}")
    if path.endswith(".safetensors"):
      try:
        from safetensors.numpy import load_file
      except ImportError:
        raise UserError("weights: reading .safetensors needs the safetensors package") from None
      return dict(load_file(path))
    torch = _import_torch()
    try:
      source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
      raise UserError(f"weights: cannot read {path!r} as a PyTorch state dict: "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if isinstance(source, Mapping) and "state_dict" in source:
      source = source["state_dict"]
  if not isinstance(source, Mapping):
    raise UserError(f"weights: expected a state dict (name -> tensor), got {type(source).__name__}")
  return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v))
          for k, v in source.items()}


# ----------------------------------------------------------------------------- loading

def _reference_shape(shape: tuple[int, ...], perm: tuple[int, ...] | None) -> tuple[int, ...]:
  if perm is None:
    return tuple(shape)
  inverse = np.argsort(perm)
  return tuple(shape[i] for i in inverse)


def _abstract_model(name: str, num_classes: int | None, overrides: dict[str, Any]) -> nnx.Module:
  """The zoo network, shapes only: every value is about to be replaced."""
  return nnx.eval_shape(lambda: zoo.build_model(name, num_classes=num_classes,
                                                rngs=nnx.Rngs(0), **overrides))


def load_into(model: nnx.Module, targets: list[weight_maps.Target], tensors: Mapping[str, Any],
              to_ours: Mapping[str, tuple[int, ...] | None], *, what: str) -> nnx.Module:
  """Sets every variable of `model` from `tensors`; the first missing, misshapen or
  unused reference tensor is a UserError."""
  variables = {id(v) for _, v in nnx.iter_graph(model) if isinstance(v, nnx.Variable)}
  mapped = {id(t.variable) for t in targets}
  if mapped != variables or len(targets) != len(mapped):
    raise RuntimeError(f"weight map covers {len(mapped)} of {len(variables)} variables "
                       f"({len(targets)} targets)")
  used = set()
  for t in targets:
    if t.key not in tensors:
      raise UserError(f"weights: {what} has no tensor {t.key!r}")
    array = tensors[t.key]
    perm = to_ours[t.layout]
    want = _reference_shape(t.variable.shape, perm)
    if tuple(array.shape) != want:
      raise UserError(f"weights: tensor {t.key!r} in {what} has shape {tuple(array.shape)}, "
                      f"the model expects {want}")
    value = np.asarray(array, np.float32)
    t.variable.set_value(jnp.asarray(value if perm is None else np.transpose(value, perm)))
    used.add(t.key)
  unused = [k for k in tensors if k not in used and not k.endswith("num_batches_tracked")]
  if unused:
    raise UserError(f"weights: tensor {unused[0]!r} in {what} has no place in the model "
                    f"({len(unused)} unused)")
  return model


def _check_name(name: str, known: tuple[str, ...], source: str) -> None:
  if name not in known:
    raise UserError(f"weights: no {source} weights for model {name!r} (known: {', '.join(known)})")


def from_keras(source: Any, name: str, *, num_classes: int | None = None,
               **overrides: Any) -> nnx.Module:
  """`name` (nasnet_a_mobile|nasnet_a_large) with weights from a Keras model or .h5 file.

  `overrides` (`NetworkConfig` fields) size the network like a Keras `NASNet(...)` built
  with other filters or cell counts.
  """
  _check_name(name, KERAS_MODELS, "Keras")
  model = _abstract_model(name, num_classes, overrides)
  targets = weight_maps.keras_nasnet(model)
  if not isinstance(source, (str, os.PathLike)):
    return load_into(model, targets, _keras_model_tensors(source), _KERAS_TO_OURS,
                     what=f"the Keras model {getattr(source, 'name', '')!r}")
  path = os.fspath(source)
  if not os.path.isfile(path):
    raise UserError(f"weights: no weights file at {path!r}")
  import h5py
  try:
    f = h5py.File(path, "r")
  except OSError:
    raise UserError(f"weights: {path!r} is not an HDF5 file") from None
  with f:
    return load_into(model, targets, _h5_tensors(path, f), _KERAS_TO_OURS, what=repr(path))


def timm_style(name: str) -> ops.OpStyle:
  """The op style reproducing timm's model `name`.

  timm's NASNet-A Large pads stride-2 pools TensorFlow's way (max ignores the padding)
  but its average pools count the zero padding; Keras zero-pads both. The
  "zeros_avg" pool padding says exactly that.
  """
  style = zoo.model_config(name).style
  if name != "nasnet_a_large":
    return style
  return dataclasses.replace(style, stride2_pool_padding="zeros_avg")


def from_torch(source: Any, name: str, *, num_classes: int | None = None,
               **overrides: Any) -> nnx.Module:
  """`name` (nasnet_a_large|pnasnet_5_large) from a timm state dict or its file."""
  _check_name(name, TORCH_MODELS, "timm")
  overrides.setdefault("style", timm_style(name))
  model = _abstract_model(name, num_classes, overrides)
  what = repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "the state dict"
  return load_into(model, weight_maps.timm_map(name, model), _torch_tensors(source),
                   _TORCH_TO_OURS, what=what)


LOADERS: dict[str, Callable[..., nnx.Module]] = {"keras": from_keras, "torch": from_torch}


# ----------------------------------------------------------------------------- CLI

def save_converted(model: nnx.Module, out_dir: str) -> str:
  """Writes DIR/params (what `init_checkpoint` reads) and DIR/batch_stats; returns DIR/params."""
  import orbax.checkpoint as ocp
  out_dir = os.path.abspath(out_dir)
  params = nnx.state(model, nnx.Param)
  batch_stats = nnx.state(model, nnx.BatchStat)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(out_dir, "params"), params, force=True)
    checkpointer.save(os.path.join(out_dir, "batch_stats"), batch_stats, force=True)
  return os.path.join(out_dir, "params")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m models.zoo.weights", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  convert = commands.add_parser("convert", help="published weights -> orbax checkpoint")
  convert.add_argument("--from", dest="source", choices=tuple(LOADERS), required=True)
  convert.add_argument("path", help="Keras .h5 / timm .pth or .safetensors file")
  convert.add_argument("--model", required=True,
                       choices=sorted(set(KERAS_MODELS) | set(TORCH_MODELS)))
  convert.add_argument("--out", required=True, help="output directory")
  convert.add_argument("--num_classes", type=int, default=None)
  return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  model = LOADERS[args.source](args.path, args.model, num_classes=args.num_classes)
  params_dir = save_converted(model, args.out)
  print(f"wrote {params_dir} (use --config.init_checkpoint={params_dir})")


if __name__ == "__main__":
  main()
