"""Wall-clock helpers shared by the benchmark suites."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def time_steps(step: Callable[[], Any], *, steps: int, warmup: int = 1,
               block: Callable[[Any], Any] = lambda out: out) -> dict[str, Any]:
  """Runs `step()` `warmup + steps` times; `block(out)` waits for its result.

  Returns the median and all timed seconds (the warm-up runs are not timed).
  """
  for _ in range(warmup):
    block(step())
  times = []
  for _ in range(steps):
    started = time.perf_counter()
    block(step())
    times.append(time.perf_counter() - started)
  return {"median_s": statistics.median(times), "times_s": [round(t, 4) for t in times]}


class Stopwatch:
  """`with Stopwatch() as w: ...; w.seconds`."""

  def __enter__(self) -> "Stopwatch":
    self.started = time.perf_counter()
    return self

  def __exit__(self, *exc) -> None:
    self.seconds = time.perf_counter() - self.started
