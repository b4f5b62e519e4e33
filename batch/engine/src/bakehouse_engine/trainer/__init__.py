"""Trainer jobs: the long-running engine behind one training run, reached by relay (DESIGN.md §1).

The job loads its base model once (a base model, or a baked checkpoint with its adapter chain
merged in), wraps it with the run's LoRA adapter (lora_trainer.py), restores the run's autosave
from `state_uri` if there is one (checkpoints.py), tells the API it is ready, and then executes the
run's operations in order (server.py) — init, forward (with or without backward; losses.py,
forward.py), optim_step, save and load — posting each result through the relay (relay.py).
Neither the Loops nor the Tinker wire format reaches it: the fronts translate to these operations.

It ends in one of two ways:
- idle: no operation and no client activity for `idle_timeout_s` — it autosaves everything under
  `state_uri` and completes; the API starts a new trainer on the next operation, which restores it;
- replaced: the relay answers 410 (the run was deactivated, or another trainer took over) — it
  completes at once, without saving.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bakehouse_engine.models import context_length, load_model, pick_device
from bakehouse_engine.sampler.relay import RelayGone
from bakehouse_engine.trainer import checkpoints
from bakehouse_engine.trainer.lora_trainer import LoraTrainer
from bakehouse_engine.trainer.relay import TrainerRelay
from bakehouse_engine.trainer.server import TrainerServer

if TYPE_CHECKING:
    from bakehouse_engine.context import JobContext

log = logging.getLogger(__name__)


def run(ctx: JobContext) -> dict[str, Any]:
    settings = ctx.spec["trainer"]
    model, tokenizer = load_model(settings["model"], None, pick_device())
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = LoraTrainer(
        model,
        settings["model"]["base_model"],
        settings["lora_rank"],
        settings["seed"],
        settings["max_seq_len"] or context_length(model),
        pad_id or 0,
    )
    if checkpoints.restore(trainer, settings["state_uri"], ctx.workdir):
        log.info("restored the run's autosave at step %d", trainer.step)
    relay = TrainerRelay(settings["relay_url"], ctx.spec["job_id"], settings["relay_token"])
    try:
        relay.ready(trainer.step, trainer.lora_config)
        TrainerServer(trainer, relay, settings["idle_timeout_s"], ctx.workdir).serve()
    except RelayGone:
        log.info("the relay answered 410: this trainer no longer serves run %s", settings["run_id"])
        return {}
    checkpoints.autosave(trainer, settings["state_uri"], ctx.workdir)
    return {}
