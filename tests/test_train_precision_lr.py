"""MixedPrecision (CPU bf16 path) and the LR range test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from weft.train import (
    READ,
    Callback,
    GradAccumulation,
    GradClip,
    GraphError,
    Learner,
    Metrics,
    MixedPrecision,
    Scheduler,
    TrainingPhase,
    constant,
    find_lr,
    for_phases,
)


def classification(n_batches=8, batch=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * batch, 8, generator=g)
    y = (x[:, :2].sum(1) > 0).long()
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]


def learner(callbacks, lr=0.1):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    data = classification()
    return Learner(model, torch.nn.functional.cross_entropy, opt, data=(data, data[:2]),
                   callbacks=callbacks, defaults=False)  # fmt: skip


class Dtypes(Callback):
    access = {"step.predictions": READ, "step.loss": READ}  # noqa: RUF012

    def __init__(self):
        self.predictions, self.losses, self.enabled = set(), set(), set()

    def on_loss_begin(self, learner):
        self.predictions.add(learner.step.predictions.dtype)
        self.enabled.add(torch.is_autocast_enabled("cpu"))

    @for_phases(TrainingPhase)
    def on_step_end(self, learner):
        self.losses.add(learner.step.loss.dtype)
        self.enabled.add(torch.is_autocast_enabled("cpu"))


def test_mixed_precision_on_cpu_autocasts_to_bfloat16_and_trains():
    probe = Dtypes()
    mp = MixedPrecision()
    lrn = learner([mp, probe, Metrics()])
    assert mp.device_type == "cpu" and mp.dtype == torch.bfloat16 and mp.scaler is None
    result = lrn.fit(4)
    assert probe.predictions == {torch.bfloat16}
    assert probe.enabled == {True, False}  # on while predicting, off after the step
    assert not torch.is_autocast_enabled("cpu")
    assert all(p.dtype == torch.float32 for p in lrn.model.parameters())
    plain = learner([Metrics()])
    plain.fit(4)
    assert lrn.cbstate.metrics["valid_loss"] == pytest.approx(
        plain.cbstate.metrics["valid_loss"], abs=0.05
    )
    assert np.isfinite(lrn.cbstate.metrics["train_loss"])
    assert result.completed


def test_mixed_precision_orders_against_gradient_callbacks():
    lrn = learner([GradClip(1.0), MixedPrecision(), GradAccumulation(2)])
    assert [c.name for c in lrn.order] == ["GradAccumulation", "MixedPrecision", "GradClip"]
    assert lrn.fit(1).completed


def test_find_lr_suggests_an_lr_and_restores_the_learner():
    lrn = learner([Metrics()])
    before = {k: v.clone() for k, v in lrn.model.state_dict().items()}
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    result = find_lr(lrn, start=1e-4, end=100.0, steps=60)
    assert torch.equal(torch.rand(1), expected_next)  # RNG put back
    for k, v in lrn.model.state_dict().items():
        assert torch.equal(v, before[k])
    assert lrn.optimizer.param_groups[0]["lr"] == 0.1
    assert 10 < len(result.lrs) <= 60
    assert result.lrs == sorted(result.lrs) and result.lrs[0] == pytest.approx(1e-4)
    assert 1e-4 < result.suggestion < 100.0
    assert min(result.losses) < result.losses[0]
    ax = result.plot()
    assert ax.get_xscale() == "log"


def test_lr_finder_refuses_a_scheduler():
    from weft.train import LRFinder

    with pytest.raises(
        GraphError, match="LRFinder sets the learning rate itself; remove the Scheduler"
    ):
        learner([LRFinder(), Scheduler(lr=constant(0.1))])
    with pytest.raises(ValueError, match="0 < start < end"):
        LRFinder(start=1.0, end=0.1)
