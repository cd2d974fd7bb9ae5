"""The benchmark suites of `python -m experiments.benchmark`; each returns table rows.

A row has `name`, `jax_s`, `torch_s` (None without PyTorch), `jax/torch` and a short
`detail`, plus every raw measurement.
"""
from __future__ import annotations

import importlib
import statistics
from typing import Any

import jax
import numpy as np
from flax import nnx

from experiments.benchmarks import compile_time as compile_lib
from experiments.benchmarks import darts_memory, jax_train_step
from experiments.benchmarks.timing import time_steps
from models import spaces
from models.zoo import catalog as zoo
from models.errors import UserError

# (zoo model, batch size, overrides and image size for --quick)
TRAIN_STEP_MODELS = (
    ("darts_v2_cifar", 64, dict(layers=5, filters=8), 32),
    ("nasnet_a_mobile", 32, dict(filters=8, normal_cells=(1, 1, 1)), 96),
)


def torch_or_none():
  try:
    return importlib.import_module("torch")
  except ImportError:
    return None


def _ratio(jax_s: float | None, torch_s: float | None) -> float | None:
  return None if jax_s is None or torch_s is None else round(jax_s / torch_s, 3)


def _row(name: str, jax_s: float | None, torch_s: float | None, detail: str, **raw) -> dict:
  return {"name": name, "jax_s": jax_s, "torch_s": torch_s, "jax/torch": _ratio(jax_s, torch_s),
          "detail": detail, **raw}


# ----------------------------------------------------------------------------- train step

def _time_jax_train_step(model, batch, depthwise: str, steps: int) -> dict[str, Any]:
  compiled = jax_train_step.compile_train_step(model, batch, depthwise=depthwise)
  timed = time_steps(compiled.run, steps=steps, warmup=1)
  return {"num_params": compiled.num_params, "compile_s": round(compiled.compile_s, 2),
          **timed}


def _time_torch_train_step(genotype, config, batch, steps: int) -> dict[str, Any] | None:
  torch = torch_or_none()
  if torch is None:
    return None
  from reference import torch_nets
  module = torch_nets.build_network(genotype, config)
  images = torch.from_numpy(np.ascontiguousarray(batch["image"].transpose(0, 3, 1, 2)))
  labels = torch.from_numpy(batch["label"].astype(np.int64))
  timed = torch_nets.time_train_step(module, images, labels, steps=steps, warmup=1)
  return {"num_params": torch_nets.count_params(module), **timed}


def train_step(*, steps: int, quick: bool, **_) -> list[dict[str, Any]]:
  """SGD train step (no drop path, no aux loss) of published networks, JAX vs PyTorch.

  JAX runs twice: with XLA's grouped convolution for depthwise convs ("lax") and with
  the shifted multiply-add form ("shifted", the CPU default).
  """
  rows = []
  for name, batch_size, quick_overrides, quick_image in TRAIN_STEP_MODELS:
    # The timed step has no auxiliary loss, so neither network carries the head.
    overrides = dict(quick_overrides if quick else {}, aux_head=False)
    image = quick_image if quick else zoo.default_image_size(name)
    batch_size = 4 if quick else batch_size
    config = zoo.model_config(name, image_size=image, **dict(overrides))
    genotype = zoo.MODELS[name].genotype
    batch = jax_train_step.random_batch(batch_size, image, config.num_classes)
    torch_result = _time_torch_train_step(genotype, config, batch, steps)
    jax_results = {}
    for depthwise in ("lax", "shifted"):
      model = zoo.build_model(name, image_size=image, rngs=nnx.Rngs(0), **dict(overrides))
      jax_results[depthwise] = _time_jax_train_step(model, batch, depthwise, steps)
    num_params = jax_results["lax"]["num_params"]
    if torch_result is not None and torch_result["num_params"] != num_params:
      raise AssertionError(f"{name}: PyTorch reference has {torch_result['num_params']} "
                           f"parameters, ours {num_params}")
    torch_s = None if torch_result is None else torch_result["median_s"]
    for depthwise, result in jax_results.items():
      rows.append(_row(f"{name} b{batch_size} {image}px depthwise={depthwise}",
                       result["median_s"], torch_s,
                       f"{num_params:,} params, compile {result['compile_s']} s",
                       model=name, batch=batch_size, image=image, depthwise=depthwise,
                       jax=result, torch=torch_result))
  return rows


# ----------------------------------------------------------------------------- compile

def _proxy_steps() -> tuple[int, dict]:
  """Train steps of one child in the default proxy-training recipe."""
  from experiments.data import pipeline
  from experiments.proxy_evaluator import child_config
  config = child_config()
  builder = pipeline.open_dataset(config.data.name, config.data.data_dir)
  train_split, _ = pipeline.carve_splits(builder, config.data.train_split,
                                         config.data.validation_fraction, config.data.eval_split)
  per_epoch = pipeline.steps_per_epoch(builder, train_split, config.batch_size)
  return max(1, int(round(config.num_epochs * per_epoch))), config


def compile_time(*, children: int, quick: bool, **_) -> list[dict[str, Any]]:
  """Trace + compile seconds (train and eval step) of random NASNet-space children.

  At the default proxy child's size: cold, with a persistent compilation cache
  (filled by one process, read by the next), and as `genotype_as_input` children
  sharing one program (the default of proxy search; its first child compiles). At
  the 20-cell evaluation size, cold and with identical cells scanned. The compile share is against the child's
  proxy training: its steps x the measured step time.
  """
  proxy_steps, config = _proxy_steps()
  layers, filters = config.model_overrides.layers, config.model_overrides.filters
  sizes = dict(batch_size=config.batch_size)
  if quick:
    children, layers, filters, sizes = min(children, 2), 2, 4, dict(batch_size=8)
  proxy = compile_lib.measure_variants(children=children, layers=layers, filters=filters,
                                       variants=("cold", "cache", "genotype_as_input"),
                                       **sizes)
  deep_layers = 5 if quick else 20
  deep = compile_lib.measure_variants(children=max(1, min(children, 3)), layers=deep_layers,
                                      filters=filters, variants=("cold", "scan"), **sizes)
  rows = []
  for variant, summary in proxy.items():
    step_s = statistics.median(c["step_s"] for c in summary["children"])
    train_s = step_s * proxy_steps
    compile_s = summary["median_total_s"]
    rows.append(_row(f"proxy child ({layers} layers, F={filters}) {variant}", compile_s, None,
                     f"{100 * compile_s / (compile_s + train_s):.0f}% of the child's "
                     f"{proxy_steps}-step proxy training",
                     proxy_steps=proxy_steps, proxy_train_s=round(train_s, 1), **summary))
  for variant, summary in deep.items():
    rows.append(_row(f"eval-size child ({deep_layers} layers, F={filters}) {variant}",
                     summary["median_total_s"], None,
                     f"median over {len(summary['children'])} children", **summary))
  return rows


# ----------------------------------------------------------------------------- DARTS

def darts_step(*, steps: int, quick: bool, darts_layers: int = 8,
               darts_orders: tuple[int, ...] = (1, 2), **_) -> list[dict[str, Any]]:
  """One DARTS search step (exact HVP for order 2) at the paper's batch and image size."""
  size = (dict(batch=8, image=16, layers=3, channels=4) if quick
          else dict(batch=64, image=32, layers=darts_layers, channels=16))
  rows = []
  for order in darts_orders:
    ours = darts_memory.measure(order=order, steps=steps, **size)
    reference = _torch_search_step(order, steps, **size)
    if reference is not None and reference["num_weights"] != ours["num_weights"]:
      raise AssertionError(f"DARTS supernet: PyTorch reference has {reference['num_weights']} "
                           f"weights, ours {ours['num_weights']}")
    rows.append(_row(
        f"DARTS search step order {order} b{size['batch']} {size['image']}px "
        f"{size['layers']} cells {size['channels']} ch",
        ours["step_s"], None if reference is None else reference["median_s"],
        f"peak MiB: jax {ours['xla_peak_mib']}, torch "
        f"{None if reference is None else reference['step_peak_mib']}",
        jax=ours, torch=reference))
  return rows


def _torch_search_step(order: int, steps: int, *, batch: int, image: int, layers: int,
                       channels: int) -> dict[str, Any] | None:
  torch = torch_or_none()
  if torch is None:
    return None
  from reference import torch_supernet
  net = torch_supernet.build_search_network(spaces.DARTS.ops, layers=layers, channels=channels)
  step = torch_supernet.make_search_step(net, order=order, hvp="exact")
  g = torch.Generator().manual_seed(0)
  data = [torch.randn(batch, 3, image, image, generator=g),
          torch.randint(0, 10, (batch,), generator=g),
          torch.randn(batch, 3, image, image, generator=g),
          torch.randint(0, 10, (batch,), generator=g)]
  timed = torch_supernet.time_search_step(step, *data, steps=steps, warmup=1)
  memory = torch_supernet.search_step_peak_memory(net, step, *data)
  num_weights = sum(p.numel() for p in net.weight_parameters())
  return {"num_weights": num_weights, **timed, **memory}
