"""The DARTS bilevel step as pure functions over pytrees.

`loss_fn(w, alpha, state, batch) -> (loss, aux)` is the supernet's loss on one
batch with weights `w`, architecture parameters `alpha` and non-trained state
(BatchNorm statistics); `aux` is returned untouched. Inside `jax.shard_map` pass
`axis_name` and every gradient is averaged over it, so all devices hold the same
w', the same hypergradient and hence the same α. (Replicated inputs are first cast
to per-device values: differentiating a per-device loss w.r.t. a replicated input
would sum the gradients over devices rather than give each device its own.)

The unrolled weights follow the weight optimizer's own next step, as the reference
implementation does: w' = w - ξ (μ m + ∇_w L_train + λ w) with momentum buffer m,
momentum μ and weight decay λ (μ = λ = 0 gives the paper's w - ξ ∇_w L_train).
Neither m nor λw depends on α, so the hypergradient keeps the paper's form
∇_α L_val(w', α) - ξ ∇²_{α,w} L_train(w, α) · ∇_{w'} L_val(w', α).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

LossFn = Callable[[Any, Any, Any, Any], tuple[jax.Array, Any]]
HVP_MODES = ("exact", "finite_difference")


def _pmean(tree, axis_name: str | None):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _per_device(tree, axis_name: str | None):
  if axis_name is None:
    return tree
  cast = lambda x: (x if axis_name in jax.typeof(x).manual_axis_type.varying
                    else jax.lax.pcast(x, axis_name, to="varying"))
  return jax.tree.map(cast, tree)


def grads(loss_fn: LossFn, w, alpha, state, batch, argnums, axis_name: str | None = None):
  """(loss, aux), gradient w.r.t. `argnums` (0: w, 1: α), averaged over `axis_name`."""
  w, alpha = _per_device((w, alpha), axis_name)
  (loss, aux), g = jax.value_and_grad(loss_fn, argnums=argnums, has_aux=True)(
      w, alpha, state, batch)
  return (_pmean(loss, axis_name), aux), _pmean(g, axis_name)


def unrolled_weights(w, grad_w, xi, *, momentum: float = 0.0, weight_decay: float = 0.0,
                     momentum_buffer=None):
  """One virtual SGD step: w - ξ (μ m + g + λ w)."""
  def step(p, g, m):
    direction = g + weight_decay * p
    if m is not None:
      direction = direction + momentum * m
    return p - xi * direction
  if momentum_buffer is None:
    return jax.tree.map(lambda p, g: step(p, g, None), w, grad_w)
  return jax.tree.map(step, w, grad_w, momentum_buffer)


def mixed_hvp_exact(loss_fn: LossFn, w, alpha, state, batch, v, axis_name: str | None = None):
  """∇²_{α,w} L(w, α) · v by forward-over-reverse autodiff (jvp of ∇_α along v)."""
  w, alpha, v = _per_device((w, alpha, v), axis_name)
  grad_alpha = lambda w_: jax.grad(loss_fn, argnums=1, has_aux=True)(w_, alpha, state, batch)[0]
  _, hv = jax.jvp(grad_alpha, (w,), (v,))
  return _pmean(hv, axis_name)


def mixed_hvp_finite_difference(loss_fn: LossFn, w, alpha, state, batch, v,
                                axis_name: str | None = None, scale: float = 0.01):
  """The paper's central difference: (∇_α L(w+εv) - ∇_α L(w-εv)) / 2ε, ε = scale/‖v‖."""
  eps = scale / optax.tree.norm(v)
  w, alpha, v = _per_device((w, alpha, v), axis_name)
  grad_alpha = lambda w_: jax.grad(loss_fn, argnums=1, has_aux=True)(w_, alpha, state, batch)[0]
  shifted = lambda sign: jax.tree.map(lambda p, d: p + sign * eps * d, w, v)
  hv = jax.tree.map(lambda a, b: (a - b) / (2 * eps),
                    grad_alpha(shifted(1.0)), grad_alpha(shifted(-1.0)))
  return _pmean(hv, axis_name)


def alpha_grad_first_order(loss_fn: LossFn, w, alpha, state, val_batch,
                           axis_name: str | None = None):
  """∇_α L_val(w, α): first-order DARTS (weights treated as constant)."""
  (loss, aux), g = grads(loss_fn, w, alpha, state, val_batch, 1, axis_name)
  return g, (loss, aux)


def alpha_grad_second_order(loss_fn: LossFn, w, alpha, state, train_batch, val_batch, xi, *,
                            hvp: str = "exact", momentum: float = 0.0,
                            weight_decay: float = 0.0, momentum_buffer=None,
                            axis_name: str | None = None):
  """The unrolled hypergradient of L_val(w'(α), α); returns (grad, (val loss at w', aux))."""
  if hvp not in HVP_MODES:
    raise ValueError(f"hvp: unknown mode {hvp!r} (known: {', '.join(HVP_MODES)})")
  _, grad_w = grads(loss_fn, w, alpha, state, train_batch, 0, axis_name)
  w_unrolled = unrolled_weights(w, grad_w, xi, momentum=momentum, weight_decay=weight_decay,
                                momentum_buffer=momentum_buffer)
  (loss, aux), (dw, dalpha) = grads(loss_fn, w_unrolled, alpha, state, val_batch, (0, 1),
                                    axis_name)
  mixed = mixed_hvp_exact if hvp == "exact" else mixed_hvp_finite_difference
  hv = mixed(loss_fn, w, alpha, state, train_batch, dw, axis_name)
  return jax.tree.map(lambda a, h: a - xi * h, dalpha, hv), (loss, aux)


def alpha_grad(loss_fn: LossFn, w, alpha, state, train_batch, val_batch, xi, *, order: int,
               hvp: str = "exact", momentum: float = 0.0, weight_decay: float = 0.0,
               momentum_buffer=None, axis_name: str | None = None):
  """First- (`order=1`) or second-order (`order=2`) architecture gradient."""
  if order == 1:
    return alpha_grad_first_order(loss_fn, w, alpha, state, val_batch, axis_name)
  if order == 2:
    return alpha_grad_second_order(
        loss_fn, w, alpha, state, train_batch, val_batch, xi, hvp=hvp, momentum=momentum,
        weight_decay=weight_decay, momentum_buffer=momentum_buffer, axis_name=axis_name)
  raise ValueError(f"order: expected 1 or 2, got {order}")


def momentum_buffer_of(opt_state):
  """The SGD momentum buffer (optax `TraceState.trace`) inside a weight optimizer state."""
  return optax.tree_utils.tree_get(opt_state, "trace")


def search_step(loss_fn: LossFn, w, alpha, state, w_opt_state, alpha_opt_state,
                train_batch, val_batch, *, w_tx: optax.GradientTransformation,
                alpha_tx: optax.GradientTransformation, xi, order: int, hvp: str = "exact",
                momentum: float = 0.0, weight_decay: float = 0.0,
                axis_name: str | None = None):
  """One DARTS iteration: α step on the validation batch, then a weight step on train.

  Here `loss_fn`'s aux is `(new_state, metrics)`. Returns
  `(w, alpha, state, w_opt_state, alpha_opt_state, metrics)`.
  """
  buffer = momentum_buffer_of(w_opt_state) if order == 2 and momentum else None
  g_alpha, (val_loss, _) = alpha_grad(
      loss_fn, w, alpha, state, train_batch, val_batch, xi, order=order, hvp=hvp,
      momentum=momentum, weight_decay=weight_decay, momentum_buffer=buffer,
      axis_name=axis_name)
  updates, alpha_opt_state = alpha_tx.update(g_alpha, alpha_opt_state, alpha)
  alpha = optax.apply_updates(alpha, updates)
  (loss, (state, metrics)), g_w = grads(loss_fn, w, alpha, state, train_batch, 0, axis_name)
  updates, w_opt_state = w_tx.update(g_w, w_opt_state, w)
  w = optax.apply_updates(w, updates)
  metrics = dict(_pmean(metrics, axis_name), train_loss=loss, val_loss=val_loss)
  return w, alpha, state, w_opt_state, alpha_opt_state, metrics
