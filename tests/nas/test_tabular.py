"""The tabular evaluator and the synthetic NB201-format table."""
from __future__ import annotations

import filecmp

import numpy as np
import pytest

from models.genotypes import notation
from models.errors import UserError
from nas.evaluators import synthetic
from nas.evaluators.tabular import Table, TabularEvaluator
from nas.spaces import get_search_space
from tests.nas import synthetic_table

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
OTHER = ARCH.replace("avg_pool_3x3~1", "none~1")
UNKNOWN_OP = ARCH.replace("avg_pool_3x3", "conv_9x9")


def _write(tmp_path, text):
  path = tmp_path / "t.csv"
  path.write_text(text)
  return str(path)


def test_lookup_by_any_spelling(tmp_path):
  path = _write(tmp_path, f"arch,val,test\n{ARCH},70.5,71.25\n{OTHER},10,nan\n")
  table = Table(path)
  evaluator = TabularEvaluator(table, "val", "test")
  swapped = ARCH.replace("|skip_connect~0|nor_conv_3x3~1|", "|nor_conv_3x3~1|skip_connect~0|")
  result = evaluator.evaluate(notation.from_nb201(swapped), 1)
  assert result.reward == 70.5 and dict(result.metrics) == {"val": 70.5, "test": 71.25}
  assert np.isnan(evaluator.evaluate(notation.from_nb201(OTHER), 2).metrics["test"])
  assert table.best("test") == 71.25
  with pytest.raises(UserError, match="no row for cell"):
    evaluator.evaluate(notation.from_nb201(ARCH.replace("skip_connect~2", "none~2")), 3)


def test_evaluation_log(tmp_path):
  path = _write(tmp_path, f"arch,val\n{ARCH},1\n")
  log = tmp_path / "evals.log"
  evaluator = TabularEvaluator(Table(path), "val", log_path=str(log))
  evaluator.evaluate(notation.from_nb201(ARCH), 7)
  evaluator.evaluate(notation.from_nb201(ARCH), 9)
  assert log.read_text().split("\n") == [f"7 {ARCH}", f"9 {ARCH}", ""]


@pytest.mark.parametrize("text,message", [
    ("arch,val\n", "the table has no rows"),
    ("val,test\n1,2\n", "missing column 'arch'"),
    (f"arch,val\n{ARCH},abc\n", r"row 2, column 'val': non-numeric value 'abc'"),
    (f"arch,val\n{ARCH},1\n{OTHER},2\n{UNKNOWN_OP},3\n",
     r"row 4, column 'arch': .*unknown op 'conv_9x9'"),
    (f"arch,val\n{ARCH},1\n{ARCH},2\n", "row 3, column 'arch': cell listed twice"),
    (f"arch,val\n{ARCH},1,2\n", "row 2: 3 values"),
])
def test_bad_tables(tmp_path, text, message):
  with pytest.raises(UserError, match=message):
    Table(_write(tmp_path, text))


def test_bad_paths_and_columns(tmp_path):
  with pytest.raises(UserError, match="benchmark.table: cannot read .*missing.csv"):
    Table(str(tmp_path / "missing.csv"))
  table = Table(_write(tmp_path, f"arch,val\n{ARCH},1\n"))
  with pytest.raises(UserError, match="benchmark.reward: no column 'acc'"):
    TabularEvaluator(table, "acc")
  with pytest.raises(UserError, match="benchmark.report: no column 'test'"):
    TabularEvaluator(table, "val", "test")
  with pytest.raises(UserError, match="missing column 'test'"):
    Table(table.path, required=("val", "test"))


def test_synthetic_table_has_the_stated_structure(tmp_path):
  path = synthetic_table.table_path()
  again = str(tmp_path / "again.csv")
  synthetic.write_table(again)
  assert filecmp.cmp(path, again, shallow=False)   # deterministic
  table = synthetic_table.table()
  space = get_search_space("nb201")
  scores = synthetic.true_scores()
  cells = list(space.enumerate())
  for k in (0, 4321, 15624):
    row = table.lookup(cells[k])
    assert row["true_score"] == pytest.approx(scores[k], abs=1e-6)
  report = np.array([table.lookup(g)[synthetic_table.REPORT] for g in cells])
  reward = np.array([table.lookup(g)[synthetic_table.REWARD] for g in cells])
  assert len(table.rows) == 15625
  assert np.corrcoef(report, scores)[0, 1] > 0.99       # small noise on the report column
  assert 0.8 < np.corrcoef(reward, scores)[0, 1] < 0.99  # a noisy proxy
  # Not additive: the pairwise interactions matter.
  ops = np.array([space.encode(g) for g in cells])
  design = np.zeros((len(cells), 30))
  design[np.arange(len(cells))[:, None], np.arange(6) * 5 + ops] = 1
  fit = np.linalg.lstsq(design, scores, rcond=None)[0]
  assert np.var(scores - design @ fit) / np.var(scores) > 0.2
