"""transformers' Trainer with each optimizer (torch.optim.AdamW the control): ``optimizers=(opt, sched)``,
``optimizer_cls_and_kwargs``, ``resume_from_checkpoint`` bitwise, and every ``lr_scheduler_type`` (the ones that
read ``optimizer.defaults`` among them) giving the same learning rates as over AdamW.

A tiny BERT built from a config (no download; HF_HUB_OFFLINE=1), 32 token sequences of length 8, batches of 8:
4 steps, a checkpoint at step 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.integration._common import LR, NAMES, assert_bitwise, build, kwargs, optimizer_cls, snapshot

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    get_scheduler,
)
from transformers.trainer_utils import SchedulerType  # noqa: E402

STEPS, WARMUP = 4, 1


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config)


def dataset() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 32, (32, 8), generator=g)
    labels = (ids.sum(1) % 2).long()
    return [{"input_ids": i, "labels": y} for i, y in zip(ids, labels)]


def arguments(out: Path, **overrides: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        per_device_train_batch_size=8,
        learning_rate=LR,
        weight_decay=0.01,
        warmup_steps=WARMUP,
        save_strategy="no",  # checkpoints where a test asks for them (SaveAtStep2)
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
        **overrides,
    )


class SaveAtStep2(TrainerCallback):
    """One checkpoint, at step 2 (the run's end needs none)."""

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kw: Any) -> Any:
        control.should_save = state.global_step == 2
        return control


def with_optimizers(name: str, out: Path) -> Trainer:
    model = tiny_bert()
    opt = build(name, model.parameters())
    sched = get_scheduler("linear", opt, num_warmup_steps=WARMUP, num_training_steps=STEPS)
    return Trainer(
        model=model, args=arguments(out), train_dataset=dataset(), optimizers=(opt, sched), callbacks=[SaveAtStep2()]
    )


@pytest.fixture(scope="module", params=NAMES)
def resumed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 4-step run with ``optimizers=(opt, sched)`` (checkpoints at steps 2 and 4), then a fresh model, optimizer
    and scheduler resumed from the step-2 checkpoint to step 4."""
    name = request.param
    out = tmp_path_factory.mktemp(f"hf-{name}")
    trainer = with_optimizers(name, out)
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = trainer.train()
    full = snapshot(trainer.model, trainer.optimizer)
    lrs = [log["learning_rate"] for log in trainer.state.log_history if "learning_rate" in log]
    again = with_optimizers(name, tmp_path_factory.mktemp(f"hf-{name}-resumed"))
    again.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    return {
        "name": name,
        "initial": initial,
        "loss": result.training_loss,
        "full": full,
        "lrs": lrs,
        "resumed": snapshot(again.model, again.optimizer),
        "group": trainer.optimizer.param_groups[0],
    }


def test_optimizers_opt_sched(resumed: dict[str, Any]) -> None:
    """``Trainer(optimizers=(opt, sched))`` trains with the optimizer given, on the schedule given."""
    assert resumed["loss"] == resumed["loss"] and resumed["loss"] < 1e3
    moved = [n for n, p in resumed["full"]["params"].items() if not torch.equal(p, resumed["initial"][n])]
    assert len(moved) == len(resumed["initial"]), "some parameters never moved"
    # the lr of each step: linear warmup from 0 over 1 step, then linear decay to 0 at step 4
    assert resumed["lrs"] == pytest.approx([LR * (STEPS - s) / (STEPS - WARMUP) if s else 0.0 for s in range(STEPS)])


def test_resume_from_checkpoint_bitwise(resumed: dict[str, Any]) -> None:
    """``train(resume_from_checkpoint=...)`` continues exactly: parameters and optimizer state at step 4 equal the
    uninterrupted run's, bit for bit."""
    assert_bitwise(resumed["resumed"], resumed["full"], "resumed")


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_cls_and_kwargs(name: str, tmp_path: Path) -> None:
    """``Trainer(optimizer_cls_and_kwargs=(cls, kwargs))`` builds the optimizer over the Trainer's own param groups
    (no weight decay on biases and LayerNorm) and trains with it, on the Trainer's default schedule."""
    model = tiny_bert()
    initial = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(
        model=model,
        args=arguments(tmp_path),
        train_dataset=dataset(),
        optimizer_cls_and_kwargs=(optimizer_cls(name), kwargs(name)),
    )
    loss = trainer.train().training_loss
    assert loss == loss
    groups = trainer.optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(initial)
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), initial))


#: scheduler-specific keywords for get_scheduler's types that need them (min_lr: these read optimizer.defaults)
SCHEDULE_KWARGS: dict[str, dict[str, Any]] = {
    "polynomial": {"lr_end": 1e-4, "power": 2.0},
    "cosine_with_min_lr": {"min_lr": 1e-3},
    "cosine_warmup_with_min_lr": {"min_lr": 1e-3},
    "warmup_stable_decay": {"num_decay_steps": 2},
    "reduce_lr_on_plateau": {},
}
SCHEDULES = [s.value for s in SchedulerType]
#: the ones whose step() takes the metric they follow
METRIC_SCHEDULES = ("reduce_lr_on_plateau", "greedy")


def lr_trajectory(name: str, schedule: str) -> list[float]:
    model = torch.nn.Linear(2, 1)
    opt = build(name, model.parameters())
    sched = get_scheduler(
        schedule,
        opt,
        num_warmup_steps=2,
        num_training_steps=8,
        scheduler_specific_kwargs=SCHEDULE_KWARGS.get(schedule),
    )
    lrs = []
    for _ in range(8):
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step(1.0) if schedule in METRIC_SCHEDULES else sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    return lrs


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", NAMES)
def test_get_scheduler(name: str, schedule: str) -> None:
    """``get_scheduler(type, opt, ...)`` (what the Trainer calls for ``lr_scheduler_type``) gives the same learning
    rates over 8 steps as over AdamW with the same lr; polynomial, cosine_with_min_lr and cosine_warmup_with_min_lr
    read ``optimizer.defaults["lr"]``."""
    assert lr_trajectory(name, schedule) == lr_trajectory("adamw", schedule)
