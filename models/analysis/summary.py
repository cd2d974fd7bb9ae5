"""Parameters, multiply-adds and cells of a named model or of a genotype file.

  python -m models.analysis.summary darts_v2_cifar
  python -m models.analysis.summary genotype.json --model imagenet --json
  python -m models.analysis.summary cell.txt --diagram cells.png     # an NB201 string: nb201 skeleton

Models are built abstractly (`nnx.eval_shape`), so even NASNet-A Large allocates nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Sequence

from flax import nnx

from models.networks import cell as cell_lib
from models.analysis import diagram, flops
from models.zoo import exported, catalog as zoo
from models.networks.cell_stack import CellRun
from models.errors import UserError, exit_on_user_error
from models.genotypes.files import load
from models.genotypes.genotype import Genotype, genotype_hash
from models.networks.nb201 import NB201Cell, ResidualReduction


@dataclasses.dataclass(frozen=True)
class Summary:
  name: str
  genotype_file: str | None
  image_size: int
  num_classes: int
  genotype_hash: str | None
  space: str | None
  params: int                 # trainable, auxiliary head excluded
  mult_adds: int              # one image, inference
  normal_cells: int
  reduction_cells: int        # NB201: the residual reduction blocks

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def default_skeleton(g: Genotype) -> str:
  """nb201 for one-input single-cell genotypes, else the DARTS CIFAR skeleton."""
  return "nb201" if g.reduce is None and g.normal.num_inputs == 1 else "cifar"


def resolve(target: str, skeleton: str | None) -> tuple[str, Genotype | None, str | None]:
  """(model name, genotype or None for the name's own, genotype file or None)."""
  if target in zoo.model_names() and not os.path.isfile(target):
    if skeleton is not None:
      raise UserError(f"--model: only used with a genotype file, {target!r} is a model name")
    return target, None, None
  looks_like_path = os.sep in target or os.path.splitext(target)[1] != ""
  if not (looks_like_path or os.path.exists(target)):
    raise UserError(f"{target}: neither a model name (known: {', '.join(zoo.model_names())}) "
                    f"nor a genotype file")
  g = load(target)
  return skeleton or default_skeleton(g), g, target


def summarize(target: str, *, skeleton: str | None = None, image_size: int | None = None,
              num_classes: int | None = None) -> tuple[Summary, Genotype | None]:
  overrides: dict[str, Any] = {}
  if exported.is_export(target):
    definition = exported.load(target)
    name, g, path, overrides = definition.skeleton, definition.genotype, target, dict(
        definition.overrides)
    image_size = image_size or definition.image_size
    num_classes = num_classes or definition.num_classes
  else:
    name, g, path = resolve(target, skeleton)
  image_size = image_size or zoo.default_image_size(name)
  num_classes = num_classes or zoo.default_num_classes(name)
  model = nnx.eval_shape(lambda: zoo.build_model(
      name, genotype=g, num_classes=num_classes, image_size=image_size, rngs=nnx.Rngs(0),
      **overrides))
  g = g or zoo.MODELS[name].genotype
  modules = [m for _, m in nnx.iter_graph(model)]
  normal = sum(isinstance(m, NB201Cell) or (isinstance(m, cell_lib.Cell) and not m.reduction)
               for m in modules)
  # A scanned run of identical cells holds one stacked Cell for `length` cells.
  normal += sum(m.length - 1 for m in modules if isinstance(m, CellRun))
  reduction = sum(isinstance(m, ResidualReduction) or (isinstance(m, cell_lib.Cell) and m.reduction)
                  for m in modules)
  summary = Summary(
      name=name, genotype_file=path, image_size=image_size, num_classes=num_classes,
      genotype_hash=genotype_hash(g) if g else None, space=g.space if g else None,
      params=flops.count_params(model), mult_adds=flops.count_mult_adds(model, image_size),
      normal_cells=normal, reduction_cells=reduction)
  return summary, g


def format_table(s: Summary) -> str:
  rows = [
      ("model", s.name + (f" ({s.genotype_file})" if s.genotype_file else "")),
      ("genotype", f"{s.genotype_hash} ({f'space {s.space}' if s.space else 'no space'})"
       if s.genotype_hash else "-"),
      ("image size", f"{s.image_size}x{s.image_size}"),
      ("classes", str(s.num_classes)),
      ("cells", f"{s.normal_cells} normal, {s.reduction_cells} reduction"),
      ("params", f"{s.params:,} ({s.params / 1e6:.2f}M, trainable, no aux head)"),
      ("mult-adds", f"{s.mult_adds:,} ({s.mult_adds / 1e6:.1f}M per image)"),
  ]
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def draw(g: Genotype | None, out: str) -> list[str]:
  """Draws the cells next to `out` (OUT.png -> OUT_normal.png, OUT_reduce.png)."""
  if g is None:
    raise UserError("--diagram: this model has no genotype to draw")
  stem, ext = os.path.splitext(out)
  formats = (ext[1:].lower(),) if ext else ("png", "svg")
  if not set(formats) <= {"png", "svg", "pdf"}:
    raise UserError(f"--diagram: unsupported format {ext!r} (png, svg or pdf)")
  return diagram.draw_genotype(g, stem, formats=formats)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m models.analysis.summary", description=__doc__.splitlines()[0])
  p.add_argument("target", metavar="NAME_OR_GENOTYPE_FILE",
                 help=f"a model name ({', '.join(zoo.model_names())}), a genotype file "
                      "(JSON, DARTS Genotype(...) or NB201 string) or an exported model directory")
  p.add_argument("--image-size", type=int, help="input resolution (default: the model's)")
  p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's)")
  p.add_argument("--json", action="store_true", help="print one JSON object")
  p.add_argument("--diagram", metavar="OUT.png", help="draw the cells to OUT_normal.png, ...")
  p.add_argument("--model", metavar="SKELETON",
                 help="skeleton for a genotype file (default: cifar; nb201 for NB201 cells)")
  args = p.parse_args(argv)
  for flag in ("image_size", "num_classes"):
    value = getattr(args, flag)
    if value is not None and value < 1:
      p.error(f"--{flag.replace('_', '-')}: must be positive, got {value}")
  return args


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
  args = parse_args(argv)
  summary, g = summarize(args.target, skeleton=args.model, image_size=args.image_size,
                         num_classes=args.num_classes)
  drawn = draw(g, args.diagram) if args.diagram else []
  if args.json:
    print(json.dumps({**summary.to_dict(), "diagrams": drawn}))
  else:
    print(format_table(summary))
    for path in drawn:
      print(f"wrote {path}")


if __name__ == "__main__":
  main(sys.argv[1:])
