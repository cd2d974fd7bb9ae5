"""What a finished search leaves in its workdir: the pick, a top-k report, plots.

`report.json` (top-k distinct cells by reward), `genotype.json` (the best cell),
`best_so_far.png` (best reward vs trials), and for repeated searches
`summary.json` (mean and std of each strategy's final picks).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from typing import Any, Sequence

import numpy as np

from models.genotypes import genotype as gt

from models.genotypes import files as genotype_files
from nas.store import Trial


def best_trial(trials: Sequence[Trial]) -> Trial | None:
  """The final pick: the highest reward, the earliest trial on ties."""
  done = [t for t in trials if t.status == "done"]
  return max(done, key=lambda t: (t.reward, -t.id)) if done else None


def best_so_far(trials: Sequence[Trial]) -> list[float]:
  """Best reward after each trial (NaN until the first success)."""
  out, best = [], -math.inf
  for t in trials:
    if t.status == "done":
      best = max(best, t.reward)
    out.append(best if best > -math.inf else math.nan)
  return out


def top_k(trials: Sequence[Trial], k: int) -> list[Trial]:
  """The k best distinct cells (first trial of each)."""
  seen, out = set(), []
  for t in sorted((t for t in trials if t.status == "done"), key=lambda t: (-t.reward, t.id)):
    if t.hash not in seen:
      seen.add(t.hash)
      out.append(t)
  return out[:k]


def write_json(path: str, value: Any) -> None:
  """Atomic: a crash leaves the old file or the new one."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump(value, f, indent=2, allow_nan=False)
    f.write("\n")
  os.replace(tmp, path)


def format_table(rows: Sequence[Trial], columns: Sequence[str]) -> str:
  head = ["rank", "trial", "reward"] + list(columns) + ["hash"]
  lines = [head]
  for rank, t in enumerate(rows, start=1):
    lines.append([str(rank), str(t.id), f"{t.reward:.4f}"]
                 + [_fmt(t.metrics.get(c)) for c in columns] + [t.hash])
  widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
  return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines)


def _fmt(v: Any) -> str:
  return f"{v:.4f}" if isinstance(v, float) else "-" if v is None else str(v)


def plot_curves(path: str, curves: dict[str, np.ndarray], ylabel: str = "best reward so far"
                ) -> None:
  """One line per label; several curves are drawn as their mean with a +-1 std band
  (curves of different lengths are padded with NaN)."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, values in curves.items():
    rows = [values] if np.ndim(values[0]) == 0 else list(values)
    values = np.full((len(rows), max(len(r) for r in rows)), np.nan)
    for i, r in enumerate(rows):
      values[i, :len(r)] = r
    with warnings.catch_warnings():  # columns with no finished trial yet are all NaN
      warnings.simplefilter("ignore", RuntimeWarning)
      mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    x = np.arange(1, values.shape[1] + 1)
    ax.plot(x, mean, label=label)
    if values.shape[0] > 1:
      ax.fill_between(x, mean - std, mean + std, alpha=0.2)
  ax.set_xlabel("trials")
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_search_report(workdir: str, trials: Sequence[Trial], *, k: int = 10,
                        columns: Sequence[str] = (), label: str = "search") -> str:
  """Writes report.json, genotype.json and best_so_far.png; returns the printed table."""
  top = top_k(trials, k)
  failed = sum(t.status == "failed" for t in trials)
  write_json(os.path.join(workdir, "report.json"), {
      "trials": len(trials), "failed": failed, "distinct_cells": len({t.hash for t in trials}),
      "top": [{"trial": t.id, "reward": t.reward, "hash": t.hash,
               "metrics": _json_safe(t.metrics), "genotype": json.loads(t.genotype_json)}
              for t in top]})
  if top:
    genotype_files.save(top[0].genotype, os.path.join(workdir, "genotype.json"))
  plot_curves(os.path.join(workdir, "best_so_far.png"), {label: best_so_far(trials)})
  return format_table(top, columns)


def summarize(values: Sequence[float]) -> dict[str, float]:
  v = np.asarray([x for x in values if x is not None], dtype=float)
  return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)} if v.size else {
      "mean": None, "std": None, "n": 0}


def update_summary(path: str, strategy: str, entry: dict[str, Any]) -> dict[str, Any]:
  """Merges one strategy's entry into summary.json (other strategies are kept)."""
  summary = {}
  if os.path.exists(path):
    with open(path) as f:
      summary = json.load(f)
  summary[strategy] = entry
  write_json(path, summary)
  return summary


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in metrics.items() if not (isinstance(v, float) and not math.isfinite(v))}


class TensorBoardLogger:
  """An `on_result` callback writing `search/reward` and `search/best_so_far` per trial.

  Writes the event file with TensorBoard's own record writer and protos: its
  `summary.Writer` would import all of TensorFlow (seconds per start) to open a file.
  """

  def __init__(self, logdir: str):
    import socket
    import time
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    self._event_pb2 = event_pb2
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
    self.writer = RecordWriter(open(os.path.join(logdir, name), "ab"))
    self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def _write(self, event) -> None:
    self.writer.write(event.SerializeToString())
    self.writer.flush()

  def add_scalar(self, tag: str, value: float, step: int) -> None:
    import time
    from tensorboard.compat.proto import summary_pb2
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag,
                                                                   simple_value=float(value))])
    self._write(self._event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

  def __call__(self, index: int, trial: Trial, best: float) -> None:
    if trial.status == "done":
      self.add_scalar("search/reward", trial.reward, index)
    if best > -math.inf:
      self.add_scalar("search/best_so_far", best, index)

  def close(self) -> None:
    self.writer.close()
