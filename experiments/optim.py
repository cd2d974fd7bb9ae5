"""Learning-rate schedules and optimizers from `config.optimizer`."""
from __future__ import annotations

import ml_collections
import optax

from models.errors import UserError

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "exponential", "constant")


def learning_rate_schedule(opt: ml_collections.ConfigDict, *, total_steps: int,
                           steps_per_epoch: int) -> optax.Schedule:
  """Linear warmup for `warmup_epochs`, then cosine to `end_learning_rate`,
  exponential (`decay_rate` every `decay_epochs`) or constant."""
  warmup = int(round(opt.warmup_epochs * steps_per_epoch))
  rest = max(1, total_steps - warmup)
  if opt.schedule == "cosine":
    main = optax.cosine_decay_schedule(opt.learning_rate, rest,
                                       alpha=opt.end_learning_rate / opt.learning_rate)
  elif opt.schedule == "exponential":
    main = optax.exponential_decay(opt.learning_rate, int(opt.decay_epochs * steps_per_epoch),
                                   opt.decay_rate, staircase=True)
  elif opt.schedule == "constant":
    main = optax.constant_schedule(opt.learning_rate)
  else:
    raise UserError(f"config.optimizer.schedule: unknown {opt.schedule!r}; "
                    f"choose one of {', '.join(SCHEDULES)}")
  if warmup == 0:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, opt.learning_rate, warmup), main], [warmup])


def make_optimizer(opt: ml_collections.ConfigDict, *, total_steps: int,
                   steps_per_epoch: int) -> optax.GradientTransformation:
  """Clip the global norm, then the update rule. SGD and RMSProp add L2 weight decay
  to the gradient after clipping (as the DARTS and TF-slim recipes do); AdamW decouples it."""
  lr = learning_rate_schedule(opt, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
  clip = [optax.clip_by_global_norm(opt.grad_clip_norm)] if opt.grad_clip_norm > 0 else []
  if opt.name == "sgd":
    rule = [optax.add_decayed_weights(opt.weight_decay),
            optax.sgd(lr, momentum=opt.momentum or None, nesterov=opt.nesterov)]
  elif opt.name == "rmsprop":
    rule = [optax.add_decayed_weights(opt.weight_decay),
            optax.rmsprop(lr, decay=opt.rmsprop_decay, eps=opt.rmsprop_epsilon,
                          momentum=opt.momentum or None, nesterov=opt.nesterov)]
  elif opt.name == "adamw":
    rule = [optax.adamw(lr, weight_decay=opt.weight_decay)]
  else:
    raise UserError(f"config.optimizer.name: unknown {opt.name!r}; "
                    f"choose one of {', '.join(OPTIMIZERS)}")
  return optax.chain(*clip, *rule)
