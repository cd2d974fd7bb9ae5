"""Parameter and multiply-add counts, by the conventions behind the papers' figures.

`count_params`: elements of trainable `nnx.Param`s (conv kernels, BN scale/offset,
dense weights and biases), leaving out everything under an `aux_head` attribute. This is
what Keras reports as "trainable" and DARTS's `count_parameters_in_MB` counts; BN moving
statistics are not parameters.

`count_mult_adds`: traces one inference at batch 1 (abstractly: nothing is allocated)
and sums the multiply-adds of every convolution (`conv_general_dilated`) and matrix
product (`dot_general`), read from their shapes. Pooling, BN, activations and additions
are not counted, as in the NASNet/PNASNet/DARTS tables.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import jax
from flax import nnx

from models import ops

AUX_HEAD = "aux_head"


def count_params(model: nnx.Module) -> int:
  params = nnx.state(model, nnx.Param)
  total = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
    if AUX_HEAD not in names:
      total += math.prod(leaf.shape)
  return total


def count_mult_adds(model: nnx.Module, image_size: int, channels: int = 3) -> int:
  graphdef, state = nnx.split(model)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)

  def forward(state, x):
    return nnx.merge(graphdef, state)(x, train=False)

  image = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jax.numpy.float32)
  with ops.depthwise_impl("lax"):
    jaxpr = jax.make_jaxpr(forward)(abstract, image)
  return _jaxpr_mult_adds(jaxpr.jaxpr)


def _jaxpr_mult_adds(jaxpr: Any) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      out = eqn.outvars[0].aval.shape
      rhs = eqn.invars[1].aval.shape
      out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
      total += math.prod(out) * math.prod(rhs) // rhs[out_feature_dim]
    elif name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    repeats = eqn.params["length"] if name == "scan" else 1  # a scan's body runs length times
    for sub in _sub_jaxprs(eqn.params):
      total += repeats * _jaxpr_mult_adds(sub)
  return total


def _sub_jaxprs(params: dict[str, Any]) -> Iterator[Any]:
  def walk(v):
    if hasattr(v, "eqns"):
      yield v
    elif hasattr(v, "jaxpr") and hasattr(v, "consts"):
      yield v.jaxpr
    elif isinstance(v, (tuple, list)):
      for item in v:
        yield from walk(item)
  for value in params.values():
    yield from walk(value)
