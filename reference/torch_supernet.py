"""PyTorch twin of our DARTS search network and search step, for timing against JAX.

`build_search_network` mirrors `models.networks.supernet.SearchNetwork` in DARTS's per-edge form
(`load_jax_state` copies a JAX supernet into it); `make_search_step` does
what `nas.darts.bilevel.search_step` does with our DARTS optimizers: an α step (Adam,
L2 decay) on the validation batch, first order or unrolled second order with the
finite-difference Hessian-vector product, then a weight step (global-norm clipping,
L2 decay, momentum SGD) on the training batch. As in ours, the α gradient's forward
passes leave the BN running statistics untouched; only the weight step updates them.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Callable, Iterator, Sequence

import jax
import torch
import torch.nn.functional as F
from torch import nn

from reference import torch_nets
from experiments.benchmarks.timing import time_steps
from models.ops import OpStyle

ARCH_NAMES = ("alpha_normal", "alpha_reduce")


class PoolBN(nn.Module):
  def __init__(self, pool: nn.Module, channels: int, style: OpStyle):
    super().__init__()
    self.pool = pool
    self.bn = torch_nets.batch_norm(channels, style)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.bn(self.pool(x))


class MixedOp(nn.Module):
  def __init__(self, op_names: Sequence[str], channels: int, stride: int, style: OpStyle):
    super().__init__()
    self.ops = nn.ModuleList()
    for name in op_names:
      op = torch_nets.make_op(name, channels, stride, style)
      self.ops.append(PoolBN(op, channels, style) if "pool" in name else op)

  def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):
  def __init__(self, op_names: Sequence[str], *, steps: int, multiplier: int, C_prev_prev: int,
               C_prev: int, C: int, reduction: bool, reduction_prev: bool, style: OpStyle):
    super().__init__()
    self.reduction, self.steps, self.multiplier = reduction, steps, multiplier
    if reduction_prev:
      self.preprocess0 = torch_nets.FactorizedReduce(C_prev_prev, C, style=style)
    else:
      self.preprocess0 = torch_nets.ConvBN(C_prev_prev, C, 1, style=style)
    self.preprocess1 = torch_nets.ConvBN(C_prev, C, 1, style=style)
    self.edges = nn.ModuleList([
        MixedOp(op_names, C, 2 if reduction and j < 2 else 1, style)
        for k in range(steps) for j in range(2 + k)])

  def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    states = [self.preprocess0(s0), self.preprocess1(s1)]
    offset = 0
    for _ in range(self.steps):
      states.append(sum(self.edges[offset + j](h, weights[offset + j])
                        for j, h in enumerate(states)))
      offset += len(states) - 1
    return torch.cat(states[-self.multiplier:], dim=1)


class SearchNetwork(nn.Module):
  def __init__(self, op_names: Sequence[str], *, layers: int, channels: int, steps: int,
               multiplier: int, num_classes: int, stem_multiplier: int, init_scale: float):
    super().__init__()
    style, stem_style = OpStyle(bn_affine=False), OpStyle()
    C_curr = stem_multiplier * channels
    self.stem = torch_nets.ConvBN(3, C_curr, 3, style=stem_style, relu=False)
    C_prev_prev, C_prev, C_curr = C_curr, C_curr, channels
    self.cells, reduction_prev = nn.ModuleList(), False
    for i in range(layers):
      reduction = i in (layers // 3, 2 * layers // 3)
      if reduction:
        C_curr *= 2
      self.cells.append(SearchCell(op_names, steps=steps, multiplier=multiplier,
                                   C_prev_prev=C_prev_prev, C_prev=C_prev, C=C_curr,
                                   reduction=reduction, reduction_prev=reduction_prev,
                                   style=style))
      reduction_prev = reduction
      C_prev_prev, C_prev = C_prev, multiplier * C_curr
    self.classifier = nn.Linear(C_prev, num_classes)
    shape = (sum(2 + k for k in range(steps)), len(op_names))
    self.alpha_normal = nn.Parameter(init_scale * torch.randn(shape))
    self.alpha_reduce = nn.Parameter(init_scale * torch.randn(shape))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    weights_normal = F.softmax(self.alpha_normal, dim=-1)
    weights_reduce = F.softmax(self.alpha_reduce, dim=-1)
    s0 = s1 = self.stem(x)
    for cell in self.cells:
      s0, s1 = s1, cell(s0, s1, weights_reduce if cell.reduction else weights_normal)
    return self.classifier(s1.mean(dim=(2, 3)))

  def weight_parameters(self) -> list[nn.Parameter]:
    return [p for name, p in self.named_parameters() if name not in ARCH_NAMES]

  def arch_parameters(self) -> list[nn.Parameter]:
    return [self.alpha_normal, self.alpha_reduce]


def build_search_network(op_names: Sequence[str], *, layers: int = 8, channels: int = 16,
                         steps: int = 4, multiplier: int = 4, num_classes: int = 10,
                         stem_multiplier: int = 3, init_scale: float = 1e-3) -> SearchNetwork:
  """The twin of `models.networks.supernet.SearchNetwork` (per-device BN statistics)."""
  if not 1 <= multiplier <= steps:
    raise ValueError(f"multiplier: {multiplier} must be in 1..steps ({steps})")
  return SearchNetwork(op_names, layers=layers, channels=channels, steps=steps,
                       multiplier=multiplier, num_classes=num_classes,
                       stem_multiplier=stem_multiplier, init_scale=init_scale)


def _edge_index(node: int, source: int) -> int:
  """DARTS's edge order: node 0's edges from sources 0 and 1, then node 1's from 0, 1, 2..."""
  return sum(2 + k for k in range(node)) + source


def jax_search_variables(jax_model: Any, *filters: Any) -> dict[str, Any]:
  """Our supernet's variables under this module's paths.

  Ours may hold the edges leaving one node stacked (`cells.i.sources.s.mixed.*`, leading
  axis over the nodes in `cells[i].targets[s]`); they are split into DARTS's per-edge
  modules (`cells.i.edges.e.*`). Abstract values (`nnx.eval_shape`) give abstract edges.
  """
  out = {}
  for key, value in torch_nets.jax_variables(jax_model, *filters).items():
    match = re.fullmatch(r"cells\.(\d+)\.sources\.(\d+)\.mixed\.(.+)", key)
    if match is None:
      out[key] = value
      continue
    cell, source, rest = int(match[1]), int(match[2]), match[3]
    for e, node in enumerate(jax_model.cells[cell].targets[source]):
      edge = (jax.ShapeDtypeStruct(value.shape[1:], value.dtype)
              if isinstance(value, jax.ShapeDtypeStruct) else value[e])
      out[f"cells.{cell}.edges.{_edge_index(node, source)}.{rest}"] = edge
  return out


def load_jax_state(net: SearchNetwork, jax_model: Any) -> None:
  """Copies our supernet's weights, BN statistics and α into its PyTorch twin."""
  torch_nets.load_variables(net, jax_search_variables(jax_model))


# ----------------------------------------------------------------------------- the step

@contextlib.contextmanager
def frozen_batch_stats(net: nn.Module) -> Iterator[None]:
  """Restores every buffer (BN running statistics) on exit."""
  saved = [b.clone() for b in net.buffers()]
  try:
    yield
  finally:
    with torch.no_grad():
      for b, s in zip(net.buffers(), saved):
        b.copy_(s)


def _loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
  return F.cross_entropy(net(x), y)


HVP_MODES = ("finite_difference", "exact")


@torch.no_grad()
def _assign(params: Sequence[torch.Tensor], values: Sequence[torch.Tensor], *,
            shift: Sequence[torch.Tensor] | None = None, scale: float = 0.0) -> None:
  """params <- values (+ scale * shift)."""
  torch._foreach_copy_(list(params), list(values))
  if shift is not None:
    torch._foreach_add_(list(params), list(shift), alpha=scale)


def mixed_hvp_finite_difference(net: SearchNetwork, batch, v: Sequence[torch.Tensor], *,
                                scale: float = 0.01):
  """(∇_α L(w + εv) - ∇_α L(w - εv)) / 2ε, ε = scale / ‖v‖; the weights end where they began."""
  weights, alphas = net.weight_parameters(), net.arch_parameters()
  eps = float(scale / torch.linalg.vector_norm(
      torch.stack([torch.linalg.vector_norm(d) for d in v])))
  backup = [p.detach().clone() for p in weights]
  grads = []
  for sign in (1.0, -1.0):
    _assign(weights, backup, shift=v, scale=sign * eps)
    grads.append(torch.autograd.grad(_loss(net, *batch), alphas))
  _assign(weights, backup)
  return [(plus - minus) / (2 * eps) for plus, minus in zip(*grads)]


def mixed_hvp_exact(net: SearchNetwork, batch, v: Sequence[torch.Tensor]):
  """∇_α (∇_w L · v) by double backpropagation."""
  weights, alphas = net.weight_parameters(), net.arch_parameters()
  grad_w = torch.autograd.grad(_loss(net, *batch), weights, create_graph=True)
  return list(torch.autograd.grad(sum((g * d).sum() for g, d in zip(grad_w, v)), alphas))


def alpha_grad_second_order(net: SearchNetwork, weight_optimizer: torch.optim.SGD,
                            train_batch, val_batch, *, hvp: str = "finite_difference",
                            fd_scale: float = 0.01):
  """∇_α L_val(w', α) - ξ ∇²_{α,w} L_train(w, α) · ∇_{w'} L_val(w', α); (grads, L_val(w')).

  w' = w - ξ (μ m + ∇_w L_train + λ w): the weight optimizer's next step (unclipped),
  as `nas.darts.bilevel.unrolled_weights`. The weights are moved in place and restored
  from a copy. `fd_scale`: the finite difference's shift ‖εv‖ (the paper's 0.01).
  """
  if hvp not in HVP_MODES:
    raise ValueError(f"hvp: unknown mode {hvp!r} (known: {', '.join(HVP_MODES)})")
  weights, alphas = net.weight_parameters(), net.arch_parameters()
  group = weight_optimizer.param_groups[0]
  xi, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
  backup = [p.detach().clone() for p in weights]
  grad_w = torch.autograd.grad(_loss(net, *train_batch), weights)
  with torch.no_grad():
    direction = torch._foreach_add(grad_w, weights, alpha=decay)
    buffers = [weight_optimizer.state.get(p, {}).get("momentum_buffer") for p in weights]
    buffered = [(d, b) for d, b in zip(direction, buffers) if b is not None]
    if momentum and buffered:
      torch._foreach_add_([d for d, _ in buffered], [b for _, b in buffered], alpha=momentum)
    torch._foreach_add_(weights, direction, alpha=-xi)
    del grad_w, direction, buffers, buffered
  val_loss = _loss(net, *val_batch)
  grads = torch.autograd.grad(val_loss, weights + alphas)
  val_loss = val_loss.detach()
  dw, dalpha = grads[:len(weights)], grads[len(weights):]
  _assign(weights, backup)
  if hvp == "exact":
    hv = mixed_hvp_exact(net, train_batch, dw)
  else:
    hv = mixed_hvp_finite_difference(net, train_batch, dw, scale=fd_scale)
  return [a - xi * h for a, h in zip(dalpha, hv)], val_loss


def make_search_step(net: SearchNetwork, *, order: int, lr: float = 0.025,
                     momentum: float = 0.9, weight_decay: float = 3e-4,
                     alpha_lr: float = 3e-4, alpha_betas: tuple[float, float] = (0.5, 0.999),
                     alpha_weight_decay: float = 1e-3, grad_clip: float = 5.0,
                     hvp: str = "finite_difference") -> Callable[..., dict[str, float]]:
  """`step(train_x, train_y, val_x, val_y) -> {"train_loss", "val_loss"}`: one DARTS step.

  `hvp` (order 2): "finite_difference" (the paper's, DARTS's code) or "exact" (double
  backpropagation). The optimizers are `step.weight_optimizer` and `step.alpha_optimizer`.
  """
  if order not in (1, 2):
    raise ValueError(f"order: expected 1 or 2, got {order}")
  if hvp not in HVP_MODES:
    raise ValueError(f"hvp: unknown mode {hvp!r} (known: {', '.join(HVP_MODES)})")
  weights, alphas = net.weight_parameters(), net.arch_parameters()
  weight_optimizer = torch.optim.SGD(weights, lr=lr, momentum=momentum,
                                     weight_decay=weight_decay)
  alpha_optimizer = torch.optim.Adam(alphas, lr=alpha_lr, betas=alpha_betas,
                                     weight_decay=alpha_weight_decay)

  def step(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
           val_y: torch.Tensor) -> dict[str, float]:
    net.train()
    weight_optimizer.zero_grad(set_to_none=True)
    alpha_optimizer.zero_grad(set_to_none=True)
    with frozen_batch_stats(net):
      if order == 1:
        val_loss = _loss(net, val_x, val_y)
        grad_alpha = torch.autograd.grad(val_loss, alphas)
        val_loss = val_loss.detach()   # frees the graph's saved tensors
      else:
        grad_alpha, val_loss = alpha_grad_second_order(
            net, weight_optimizer, (train_x, train_y), (val_x, val_y), hvp=hvp)
    for a, g in zip(alphas, grad_alpha):
      a.grad = g
    alpha_optimizer.step()
    train_loss = _loss(net, train_x, train_y)
    for p, g in zip(weights, torch.autograd.grad(train_loss, weights)):
      p.grad = g
    train_loss = train_loss.detach()
    nn.utils.clip_grad_norm_(weights, grad_clip)
    weight_optimizer.step()
    return {"train_loss": float(train_loss), "val_loss": float(val_loss)}

  step.weight_optimizer, step.alpha_optimizer = weight_optimizer, alpha_optimizer
  return step


# ----------------------------------------------------------------------------- measuring

def time_search_step(step_fn: Callable[..., Any], train_x: torch.Tensor, train_y: torch.Tensor,
                     val_x: torch.Tensor, val_y: torch.Tensor, *, steps: int,
                     warmup: int = 2) -> dict[str, Any]:
  """Median seconds per search step and every timed duration; the caller sets threads."""
  return time_steps(lambda: step_fn(train_x, train_y, val_x, val_y),
                                     steps=steps, warmup=warmup)


def _allocations(prof: torch.profiler.profile) -> list[tuple[int, int]]:
  """(time, bytes) of every CPU allocation (+) and free (-), in order. From the profiler's
  event tree: its public event list folds allocations into the ops that made them."""
  from torch._C._profiler import _EventType
  events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
  while stack:
    node = stack.pop()
    stack.extend(node.children)
    if node.tag == _EventType.Allocation and str(node.extra_fields.device) == "cpu":
      events.append((node.start_time_ns, node.extra_fields.alloc_size))
  return sorted(events)


def search_step_peak_memory(net: nn.Module, step_fn: Callable[..., Any], train_x: torch.Tensor,
                            train_y: torch.Tensor, val_x: torch.Tensor,
                            val_y: torch.Tensor) -> dict[str, float]:
  """Peak CPU memory of one search step, from the allocator events torch.profiler records.

  `step_peak_mib`: the highest total of tensor bytes (PyTorch's CPU allocator) allocated
  during the step and not yet freed: activations, gradients (the step's last ones stay
  allocated), temporaries, weight copies of the unrolled step, and optimizer state the
  step creates (run a warm-up step first so that it already exists). What was live
  before the step is not counted. `state_mib`: parameters, buffers and optimizer state
  after the step, to set beside XLA's argument size. Profiling slows the step: time it
  separately.
  """
  for optimizer in (step_fn.weight_optimizer, step_fn.alpha_optimizer):
    optimizer.zero_grad(set_to_none=True)   # frees before profiling go unrecorded
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                              profile_memory=True) as prof:
    step_fn(train_x, train_y, val_x, val_y)
  live, peak = 0, 0
  for _, size in _allocations(prof):
    live += size
    peak = max(peak, live)
  tensors = list(net.parameters()) + list(net.buffers())
  for optimizer in (step_fn.weight_optimizer, step_fn.alpha_optimizer):
    tensors += [v for s in optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor)]
  state = sum(t.numel() * t.element_size() for t in tensors)
  mib = lambda b: round(b / 2 ** 20, 2)
  return {"step_peak_mib": mib(peak), "state_mib": mib(state)}
