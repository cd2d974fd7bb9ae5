#!/usr/bin/env bash
# The main job, end to end on the embedded offline dataset (shapes32):
#   1. search  - DARTS (first order, to fit the CPU budget) finds a cell -> $W/search/genotype.json
#   2. train   - the found cell is trained from scratch         -> $W/train/metrics.json
#   3. export  - cell + trained weights as a model definition  -> $W/export/found_cell/
#   4. diagram - normal/reduction cell PNG+SVG, params, mult-adds (in the export)
# Every step resumes if interrupted: run the same command again.
# Usage: bash launch/main.sh [WORKDIR]   (default runs/main)
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup_env.sh
W="${1:-runs/main}"
PY=.venv/bin/python
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
start=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - start )) s)"; }

stage "1/4 search: DARTS on shapes32"
$PY -m experiments.search --config=experiments/configs/darts_cifar10.py --workdir="$W/search" \
    --config.arch.order=1

stage "2/4 train the found cell"
$PY -m experiments.train --config=experiments/configs/train_cifar.py \
    --config.genotype="$W/search/genotype.json" --config.num_epochs=2 --workdir="$W/train"

stage "3/4 export"
$PY -m experiments.export --train_workdir="$W/train" --name=found_cell --out="$W/export" >/dev/null

stage "4/4 diagram and summary"
$PY -m models.analysis.summary "$W/export/found_cell" --diagram "$W/export/found_cell/diagram.png"
$PY - "$W" <<'PY'
import json, sys
w = sys.argv[1]
m = json.load(open(f"{w}/train/metrics.json"))
e = json.load(open(f"{w}/export/found_cell/export.json"))
print(f"\nfound cell trained: test accuracy {m['test_accuracy']:.4f} after {m['steps']} steps "
      f"({m['examples_per_second']:.0f} examples/s)")
print(f"export: {w}/export/found_cell  (params {e['summary']['params']:,}, "
      f"mult-adds {e['summary']['mult_adds']:,})")
print("diagrams:", ", ".join(e["diagrams"]))
PY
stage "done"
