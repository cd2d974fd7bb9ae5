"""The persistent trial store: one SQLite file in the workdir, shared by workers.

A `run` names one search (a strategy and a repeat index, e.g. "rea/0"); trials of
different runs never mix. A trial goes pending -> running -> done | failed. Claiming
takes a write lock first (`BEGIN IMMEDIATE`), so two workers never claim the same
trial; WAL mode lets readers proceed while one worker writes, and a busy timeout
makes writers wait their turn instead of failing. The strategy state of a run is
saved in the same transaction as the trials it depends on (see `nas.loop`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import time
from typing import Any, Iterator, Sequence

from models.genotypes import genotype as gt
from models.errors import UserError

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
  id INTEGER PRIMARY KEY,
  run TEXT NOT NULL,
  batch INTEGER NOT NULL,
  seed INTEGER NOT NULL DEFAULT 0,
  genotype_json TEXT NOT NULL,
  hash TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
  reward REAL,
  metrics_json TEXT,
  error TEXT,
  cached_from INTEGER,
  created REAL NOT NULL,
  started REAL,
  finished REAL,
  worker TEXT
);
CREATE INDEX IF NOT EXISTS trials_by_hash ON trials (run, hash);
CREATE INDEX IF NOT EXISTS trials_by_status ON trials (run, status);
CREATE TABLE IF NOT EXISTS strategy_state (
  run TEXT PRIMARY KEY,
  batch INTEGER NOT NULL,
  told INTEGER NOT NULL,
  state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  run TEXT PRIMARY KEY,
  finished REAL NOT NULL,
  result_json TEXT NOT NULL
);
"""


@dataclasses.dataclass(frozen=True)
class Trial:
  id: int
  run: str
  batch: int
  seed: int
  genotype_json: str
  hash: str
  status: str
  reward: float | None
  metrics: dict[str, Any]
  error: str | None
  cached_from: int | None
  created: float
  started: float | None
  finished: float | None
  worker: str | None

  @property
  def genotype(self) -> gt.Genotype:
    return gt.from_json(self.genotype_json)


@dataclasses.dataclass(frozen=True)
class StrategyState:
  batch: int
  told: bool      # False: the batch was asked and its trials are still open
  state: bytes


_COLUMNS = ("id, run, batch, seed, genotype_json, hash, status, reward, metrics_json, error, "
            "cached_from, created, started, finished, worker")


def _trial(row: Sequence[Any]) -> Trial:
  values = list(row)
  values[8] = json.loads(values[8]) if values[8] else {}
  return Trial(*values)


class TrialStore:
  """Trials of every run of a workdir. `path=":memory:"` keeps them in memory."""

  def __init__(self, path: str, busy_timeout_s: float = 60.0):
    self.path = path
    if path != ":memory:":
      directory = os.path.dirname(os.path.abspath(path))
      try:
        os.makedirs(directory, exist_ok=True)
      except OSError as e:
        raise UserError(f"{directory}: cannot create the workdir ({e.strerror})") from None
    try:
      # isolation_level=None: transactions are opened explicitly, never implicitly.
      self.db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
      self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
      self.db.execute("PRAGMA journal_mode = WAL")
      # NORMAL in WAL mode: a committed transaction survives a killed process.
      self.db.execute("PRAGMA synchronous = NORMAL")
      self.db.executescript(_SCHEMA)
    except sqlite3.DatabaseError as e:
      raise UserError(f"{path}: not a usable trial store ({e})") from None
    self._depth = 0

  def close(self) -> None:
    self.db.close()

  @contextlib.contextmanager
  def transaction(self) -> Iterator[sqlite3.Connection]:
    """One atomic write (nested uses join the outer one)."""
    if self._depth:
      self._depth += 1
      try:
        yield self.db
      finally:
        self._depth -= 1
      return
    self.db.execute("BEGIN IMMEDIATE")
    self._depth = 1
    try:
      yield self.db
    except BaseException:
      self.db.execute("ROLLBACK")
      raise
    else:
      self.db.execute("COMMIT")
    finally:
      self._depth = 0

  # --------------------------------------------------------------------------- trials

  def add_trials(self, run: str, batch: int, genotypes: Sequence[gt.Genotype],
                 seed: int = 0) -> list[int]:
    now = time.time()
    ids = []
    with self.transaction() as db:
      for g in genotypes:
        cur = db.execute(
            "INSERT INTO trials (run, batch, seed, genotype_json, hash, status, created) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
            (run, batch, seed, gt.to_json(g, indent=None), gt.genotype_hash(g), now))
        ids.append(cur.lastrowid)
    return ids

  def claim(self, worker: str, run: str | None = None, batch: int | None = None) -> Trial | None:
    """Atomically marks the oldest pending trial (of `run`, `batch`) running for `worker`."""
    where, args = ["status = 'pending'"], []
    if run is not None:
      where.append("run = ?")
      args.append(run)
    if batch is not None:
      where.append("batch = ?")
      args.append(batch)
    with self.transaction() as db:
      row = db.execute(f"SELECT id FROM trials WHERE {' AND '.join(where)} ORDER BY id LIMIT 1",
                       args).fetchone()
      if row is None:
        return None
      db.execute("UPDATE trials SET status = 'running', worker = ?, started = ? WHERE id = ?",
                 (worker, time.time(), row[0]))
    return self.get(row[0])

  def finish(self, trial_id: int, reward: float | None, metrics: dict[str, Any],
             error: str | None = None, cached_from: int | None = None) -> None:
    """Records a result: `done` with a finite reward, else `failed`."""
    failed = reward is None or not math.isfinite(reward)
    with self.transaction() as db:
      db.execute(
          "UPDATE trials SET status = ?, reward = ?, metrics_json = ?, error = ?, cached_from = ?, "
          "finished = ? WHERE id = ?",
          ("failed" if failed else "done", None if failed else float(reward),
           json.dumps(_finite_or_none(metrics)), error, cached_from, time.time(), trial_id))

  def requeue_running(self, run: str | None = None) -> int:
    """Running trials (their worker died) go back to pending; returns how many."""
    sql, args = "UPDATE trials SET status = 'pending', worker = NULL, started = NULL " \
                "WHERE status = 'running'", ()
    if run is not None:
      sql, args = sql + " AND run = ?", (run,)
    with self.transaction() as db:
      return db.execute(sql, args).rowcount

  def get(self, trial_id: int) -> Trial:
    return _trial(self.db.execute(f"SELECT {_COLUMNS} FROM trials WHERE id = ?",
                                  (trial_id,)).fetchone())

  def result_for(self, run: str, hash_: str, before_id: int) -> Trial | None:
    """An earlier finished trial of the same cell in `run`, to answer a duplicate."""
    row = self.db.execute(
        f"SELECT {_COLUMNS} FROM trials WHERE run = ? AND hash = ? AND id < ? AND "
        "status IN ('done', 'failed') ORDER BY id LIMIT 1", (run, hash_, before_id)).fetchone()
    return None if row is None else _trial(row)

  def trials(self, run: str, batch: int | None = None, status: str | None = None) -> list[Trial]:
    sql, args = f"SELECT {_COLUMNS} FROM trials WHERE run = ?", [run]
    if batch is not None:
      sql, args = sql + " AND batch = ?", args + [batch]
    if status is not None:
      sql, args = sql + " AND status = ?", args + [status]
    return [_trial(r) for r in self.db.execute(sql + " ORDER BY id", args)]

  def first_created(self, run: str) -> float | None:
    return self.db.execute("SELECT MIN(created) FROM trials WHERE run = ?", (run,)).fetchone()[0]

  def count(self, run: str) -> int:
    return self.db.execute("SELECT COUNT(*) FROM trials WHERE run = ?", (run,)).fetchone()[0]

  def copy_run(self, other: "TrialStore", run: str) -> None:
    """Appends `run`'s trials from `other` (ids renumbered), in the current transaction."""
    rows = other.db.execute(f"SELECT {_COLUMNS} FROM trials WHERE run = ? ORDER BY id",
                            (run,)).fetchall()
    with self.transaction() as db:
      offset = db.execute("SELECT COALESCE(MAX(id), 0) FROM trials").fetchone()[0]
      db.executemany(f"INSERT INTO trials ({_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                     [(r[0] + offset, *r[1:10], None if r[10] is None else r[10] + offset,
                       *r[11:]) for r in rows])

  # --------------------------------------------------------------------------- run state

  def save_strategy_state(self, run: str, batch: int, told: bool, state: bytes) -> None:
    with self.transaction() as db:
      db.execute("INSERT OR REPLACE INTO strategy_state (run, batch, told, state) "
                 "VALUES (?, ?, ?, ?)", (run, batch, int(told), state))

  def load_strategy_state(self, run: str) -> StrategyState | None:
    row = self.db.execute("SELECT batch, told, state FROM strategy_state WHERE run = ?",
                          (run,)).fetchone()
    return None if row is None else StrategyState(row[0], bool(row[1]), row[2])

  def finish_run(self, run: str, result: dict[str, Any]) -> None:
    with self.transaction() as db:
      db.execute("INSERT OR REPLACE INTO runs (run, finished, result_json) VALUES (?, ?, ?)",
                 (run, time.time(), json.dumps(result)))

  def run_results(self, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Results of the finished runs whose name starts with `prefix`, by name."""
    rows = self.db.execute("SELECT run, result_json FROM runs WHERE substr(run, 1, ?) = ? "
                           "ORDER BY run", (len(prefix), prefix))
    return {run: json.loads(result) for run, result in rows}

  def run_result(self, run: str) -> dict[str, Any] | None:
    row = self.db.execute("SELECT result_json FROM runs WHERE run = ?", (run,)).fetchone()
    return None if row is None else json.loads(row[0])


def _finite_or_none(metrics: dict[str, Any]) -> dict[str, Any]:
  """JSON has no NaN: non-finite floats are stored as null."""
  return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
          for k, v in metrics.items()}
