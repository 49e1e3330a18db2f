"""Lightning with each optimizer (torch.optim.AdamW the control): ``configure_optimizers`` returning a scheduler
dict, ModelCheckpoint and then ``fit(ckpt_path=...)`` resuming bitwise, and LearningRateMonitor with
``log_momentum=True`` (which reads ``optimizer.defaults``) and ``log_weight_decay=True``.

A tiny MLP, 8 samples in batches of 4 (2 steps an epoch, no shuffle), 2 epochs; the checkpoint of epoch 0 is
resumed (an end-of-epoch checkpoint: Lightning resumes mid-epoch checkpoints only approximately).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.integration._common import LR, NAMES, WEIGHT_DECAY, assert_bitwise, beta1, build, snapshot

pytest.importorskip("lightning")

import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger

EPOCHS, STEPS_PER_EPOCH = 2, 2
DECAY = 0.5  # the schedule: lr = LR * DECAY**step


class Tiny(pl.LightningModule):
    def __init__(self, name: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.name = name
        self.net = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        opt = build(self.name, self.parameters())
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=DECAY)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        g = torch.Generator().manual_seed(1)
        data = torch.utils.data.TensorDataset(torch.randn(8, 8, generator=g), torch.randint(0, 3, (8,), generator=g))
        return torch.utils.data.DataLoader(data, batch_size=4, shuffle=False)


class MemoryLogger(Logger):
    """Keeps every logged metric: {key: [(step, value), ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, list[tuple[int, float]]] = {}

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((step, float(v)))


def fit(name: str, root: Path, ckpt_path: str | None = None) -> tuple[pl.Trainer, Tiny, MemoryLogger, list[str]]:
    module, logger = Tiny(name), MemoryLogger()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=EPOCHS,
        logger=logger,
        log_every_n_steps=1,
        callbacks=[
            ModelCheckpoint(dirpath=root, save_top_k=-1, every_n_epochs=1, save_on_train_epoch_end=True),
            LearningRateMonitor(logging_interval="step", log_momentum=True, log_weight_decay=True),
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, ckpt_path=ckpt_path)
    return trainer, module, logger, [str(w.message) for w in caught]


@pytest.fixture(scope="module", params=NAMES)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two epochs, a checkpoint after each; then a fresh module and Trainer resumed from epoch 0's."""
    name = request.param
    root = tmp_path_factory.mktemp(f"pl-{name}")
    initial = {n: p.detach().clone() for n, p in Tiny(name).named_parameters()}
    trainer, module, logger, messages = fit(name, root)
    full = snapshot(module, trainer.optimizers[0])
    again, resumed_module, _, _ = fit(
        name, tmp_path_factory.mktemp(f"pl-{name}-resumed"), str(root / "epoch=0-step=2.ckpt")
    )
    return {
        "initial": initial,
        "trainer": trainer,
        "full": full,
        "logger": logger,
        "messages": messages,
        "resumed": snapshot(resumed_module, again.optimizers[0]),
        "global_step": again.global_step,
    }


def test_configure_optimizers_scheduler_dict(run: dict[str, Any]) -> None:
    """The optimizer and the per-step scheduler of ``configure_optimizers``' dict are the ones that train."""
    trainer = run["trainer"]
    assert trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    (config,) = trainer.lr_scheduler_configs
    assert config.interval == "step" and config.scheduler.optimizer is trainer.optimizers[0]
    assert [g["lr"] for g in trainer.optimizers[0].param_groups] == pytest.approx([LR * DECAY**4])
    params = run["full"]["params"]
    assert all(not torch.equal(params[n], p) for n, p in run["initial"].items()), "a parameter never moved"
    losses = [v for _, v in run["logger"].metrics["train_loss"]]
    assert len(losses) == EPOCHS * STEPS_PER_EPOCH and all(v == v and abs(v) < 1e3 for v in losses)


def test_checkpoint_then_ckpt_path_resume_bitwise(run: dict[str, Any]) -> None:
    """ModelCheckpoint's epoch-0 checkpoint, resumed with ``fit(ckpt_path=...)`` in a fresh process state, ends
    with the uninterrupted run's parameters and optimizer state, bit for bit."""
    assert run["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert_bitwise(run["resumed"], run["full"], "resumed")


def test_lr_monitor_momentum(run: dict[str, Any]) -> None:
    """LearningRateMonitor(log_momentum=True, log_weight_decay=True) logs, at every step, the lr of the schedule,
    the group's first-moment coefficient (betas[0], or LARS' momentum) and its weight decay; it does not warn that
    the optimizer has no momentum."""
    metrics = run["logger"].metrics
    group = run["trainer"].optimizers[0].param_groups[0]
    (lr_key,) = [k for k in metrics if k.startswith("lr-") and not k.endswith(("-momentum", "-weight_decay"))]
    assert [v for _, v in metrics[lr_key]] == pytest.approx([LR * DECAY**s for s in range(4)])
    assert [v for _, v in metrics.get(f"{lr_key}-momentum", [])] == [beta1(group)] * 4
    assert [v for _, v in metrics.get(f"{lr_key}-weight_decay", [])] == [WEIGHT_DECAY] * 4
    assert not [m for m in run["messages"] if "do not have momentum" in m]
