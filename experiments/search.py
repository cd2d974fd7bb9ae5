"""Architecture search from a config: discrete (any strategy) or DARTS.

  python -m experiments.search --config=experiments/configs/nb201.py --workdir=DIR

The workdir holds the trial store (`trials.sqlite`), TensorBoard events (`tb/`),
`report.json`, `genotype.json`, `best_so_far.png` and, with `repeats > 1`,
`summary.json`. Running again on the same workdir resumes.
"""
from __future__ import annotations

import math
import os
from typing import Any

import ml_collections
from absl import flags
from ml_collections import config_flags

from experiments import config_util
from models.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Search config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for everything the search writes.")


def use_compilation_cache(directory: str) -> None:
  """Keeps compiled children in the workdir (JAX's persistent cache), so a resumed search
  does not compile its children's program again; `JAX_COMPILATION_CACHE_DIR` wins."""
  import jax
  if jax.config.jax_compilation_cache_dir:  # JAX reads JAX_COMPILATION_CACHE_DIR into it
    return
  jax.config.update("jax_compilation_cache_dir", directory)


def make_evaluator(config: ml_collections.ConfigDict, workdir: str):
  """The evaluator `config.evaluator` names, and the metric final picks are judged by."""
  if config.evaluator == "tabular":
    from nas.evaluators import synthetic
    from nas.evaluators.tabular import Table, TabularEvaluator
    path = config.benchmark.table
    if not path:
      path = os.path.join(workdir, "synthetic_nb201.csv")
      if not os.path.exists(path):
        synthetic.write_table(path)
    table = Table(path, required=(config.benchmark.reward, config.benchmark.report))
    evaluator = TabularEvaluator(table, config.benchmark.reward, config.benchmark.report,
                                 delay_s=config.benchmark.delay_s,
                                 log_path=config.benchmark.log or None)
    return evaluator, evaluator.report_metric
  if config.evaluator == "proxy":
    from experiments.proxy_evaluator import ProxyEvaluator
    use_compilation_cache(os.path.join(workdir, "xla_cache"))
    evaluator = ProxyEvaluator(config.proxy, os.path.join(workdir, "children"))
    return evaluator, evaluator.report_metric
  raise UserError(f"evaluator: unknown evaluator {config.evaluator!r} (known: tabular, proxy)")


def run_discrete_search(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """One search (resumable trial by trial), or `config.repeats` of them (summary.json)."""
  from nas.spaces import get_search_space
  from nas.store import TrialStore
  from nas.strategies import make_strategy

  name = config.strategy.name
  # Cell spaces take a block count (PNAS's final B, or fewer for cheap children).
  space = get_search_space(config.space, **({"num_blocks": config.num_blocks}
                                            if "num_blocks" in config else {}))
  options = dict(config.strategy.get(name, {}))

  def new_strategy(seed: int):
    return make_strategy(name, space, seed, **options)

  new_strategy(config.seed)  # a bad name or option fails before any work
  if config.repeats < 1:
    raise UserError(f"config.repeats: must be >= 1, got {config.repeats}")
  workdir = config_util.prepare_workdir(workdir)
  evaluator, report_metric = make_evaluator(config, workdir)
  store = TrialStore(os.path.join(workdir, "trials.sqlite"))
  run = _repeated_search if config.repeats > 1 else _single_search
  return run(config, workdir, new_strategy, evaluator, store, report_metric)


def _single_search(config, workdir, new_strategy, evaluator, store, report_metric):
  from nas import loop, report
  name = config.strategy.name
  tensorboard = report.TensorBoardLogger(os.path.join(workdir, "tb"))
  try:
    trials = loop.run_search(new_strategy(config.seed), evaluator, store,
                             run=f"{name}/seed{config.seed}", budget=config.budget,
                             batch_size=config.batch_size, time_budget_s=config.time_budget_s,
                             seed=config.seed, progress=True, on_result=tensorboard)
  finally:
    tensorboard.close()
  columns = [report_metric] if report_metric != "reward" else []
  print(report.write_search_report(workdir, trials, k=config.top_k, columns=columns, label=name))
  pick = report.best_trial(trials)
  return {"trials": len(trials), "best_reward": None if pick is None else pick.reward,
          "best_hash": None if pick is None else pick.hash,
          report_metric: None if pick is None else pick.metrics.get(report_metric)}


def _repeated_search(config, workdir, new_strategy, evaluator, store, report_metric):
  from nas import loop, report
  name = config.strategy.name
  results = loop.run_repeats(new_strategy, evaluator, store, name=name, repeats=config.repeats,
                             budget=config.budget, seed=config.seed,
                             batch_size=config.batch_size, report_metric=report_metric,
                             progress=True)
  entry = {"repeats": config.repeats, "budget": config.budget, "metric": report_metric,
           "report": report.summarize([r["report"] for r in results]),
           "reward": report.summarize([r["reward"] for r in results]),
           "picks": [{k: r[k] for k in ("seed", "reward", "report", "hash")} for r in results]}
  table = getattr(evaluator, "table", None)
  if table is not None:  # a tabular benchmark knows the best cell: report the regret
    best = table.best(report_metric)
    entry["regret"] = report.summarize([None if r["report"] is None else best - r["report"]
                                        for r in results])
  report.update_summary(os.path.join(workdir, "summary.json"), name, entry)
  # One plot for every strategy repeated in this workdir: mean best-so-far +- std.
  curves: dict[str, list] = {}
  for run, result in store.run_results().items():
    if "/repeats/" in run:
      curves.setdefault(run.split("/")[0], []).append(
          [math.nan if v is None else v for v in result["best_so_far"]])
  report.plot_curves(os.path.join(workdir, "best_so_far.png"), curves)
  mean, std = entry["report"]["mean"], entry["report"]["std"]
  print(f"{name}: {config.repeats} repeats x {config.budget} trials, final pick {report_metric} "
        + ("-" if mean is None else f"{mean:.4f} +- {std:.4f}"))
  return entry


def search(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  if "search" not in config:
    raise UserError("config.search: missing (discrete or darts)")
  if config.search == "discrete":
    return run_discrete_search(config, workdir)
  if config.search == "darts":
    from experiments import darts_search
    return darts_search.run_darts_search(config, workdir)
  raise UserError(f"config.search: unknown search kind {config.search!r} (known: discrete, darts)")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None or not _WORKDIR.value:
    raise UserError("--config and --workdir are required")
  search(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  config_util.run(main)
