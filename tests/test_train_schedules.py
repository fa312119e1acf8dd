"""Schedules and the Scheduler callback."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from weft.train import (
    READ,
    Callback,
    Learner,
    Scheduler,
    TrainingPhase,
    chain,
    constant,
    cosine,
    for_phases,
    linear,
    one_cycle,
    step,
    warmup,
)


def test_basic_shapes():
    assert [linear(0, 10)(t) for t in (0, 0.5, 1)] == [0, 5, 10]
    c = cosine(1.0, 0.0)
    assert c(0) == 1.0 and c(1) == pytest.approx(0.0) and c(0.5) == pytest.approx(0.5)
    assert constant(3)(0.7) == 3.0
    s = step([1.0, 0.1, 0.01], [0.5, 0.75])
    assert [s(t) for t in (0, 0.49, 0.5, 0.8, 1.0)] == [1.0, 1.0, 0.1, 0.01, 0.01]


def test_chain_gives_each_part_its_own_time():
    s = chain((0.25, linear(0, 1)), (0.75, linear(1, 0)))
    assert s(0) == 0 and s(0.125) == pytest.approx(0.5) and s(0.25) == pytest.approx(1)
    assert s(0.625) == pytest.approx(0.5) and s(1.0) == pytest.approx(0.0)


def test_warmup_and_one_cycle():
    w = warmup(0.1, cosine(1.0, 0.0))
    assert w(0) == 0 and w(0.05) == pytest.approx(0.5) and w(0.1) == pytest.approx(1.0)
    assert w(1.0) == pytest.approx(0.0)
    oc = one_cycle(1.0, pct_start=0.3, div=10, final_div=100)
    assert oc(0) == pytest.approx(0.1) and oc(0.3) == pytest.approx(1.0)
    assert oc(1.0) == pytest.approx(0.01)
    values = [oc(i / 100) for i in range(101)]
    peak = values.index(max(values))
    assert all(a <= b for a, b in itertools.pairwise(values[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(values[peak:]))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: step([1, 2], [0.5, 0.6]), "step.. needs one more value than boundaries"),
        (lambda: step([1, 2, 3], [0.6, 0.5]), r"boundaries must increase within \(0, 1\)"),
        (
            lambda: chain((0.5, constant(1))),
            r"fractions must be positive and sum to 1; got \[0.5\]",
        ),
        (lambda: chain(), "at least one"),
        (lambda: warmup(1.5, constant(1)), r"warmup\(\) fraction must be in \(0, 1\)"),
    ],
)
def test_schedule_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


class LrLog(Callback):
    access = {"optimizer": READ}  # noqa: RUF012

    def __init__(self):
        self.lrs, self.moms = [], []

    @for_phases(TrainingPhase)
    def on_backward_end(self, learner):
        group = learner.optimizer.param_groups[0]
        self.lrs.append(group["lr"])
        self.moms.append(group["betas"][0] if "betas" in group else group.get("momentum"))


def make_learner(callbacks, opt_cls=torch.optim.SGD, n_batches=10, **opt_kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = opt_cls(model.parameters(), lr=1.0, **opt_kw)
    x = torch.randn(n_batches * 4, 2)
    data = [(x[i : i + 4], x[i : i + 4, :1]) for i in range(0, len(x), 4)]
    return Learner(
        model,
        torch.nn.functional.mse_loss,
        opt,
        data=(data, None),
        callbacks=callbacks,
        defaults=False,
    )


def test_scheduler_sets_hyperparameters_each_step_before_the_update():
    log = LrLog()
    lrn = make_learner([Scheduler(lr=linear(1.0, 0.0), momentum=constant(0.5)), log], momentum=0.9)
    assert [type(c).__name__ for c in lrn.order] == ["Scheduler", "LrLog"]
    lrn.fit(2)
    assert log.lrs == pytest.approx([1 - i / 20 for i in range(20)])
    assert set(log.moms) == {0.5}


def test_scheduler_per_group_and_adam_momentum():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    opt = torch.optim.Adam([{"params": a.parameters()}, {"params": b.parameters()}], lr=0.1)
    sched = Scheduler(lr=[constant(0.1), constant(0.2)], momentum=cosine(0.95, 0.85), total_steps=4)
    x = torch.randn(4, 2)
    lrn = Learner(
        a,
        torch.nn.functional.mse_loss,
        opt,
        data=([(x, x[:, :1])] * 4, None),
        callbacks=[sched],
        defaults=False,
    )
    lrn.fit(1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]
    assert opt.param_groups[0]["betas"][0] == pytest.approx(cosine(0.95, 0.85)(3 / 4))
    assert opt.param_groups[0]["betas"][1] == 0.999


def test_scheduler_errors():
    with pytest.raises(ValueError, match="Scheduler needs at least one schedule"):
        Scheduler()
    with pytest.raises(TypeError, match=r"Scheduler\(lr=...\) must be a schedule"):
        Scheduler(lr=0.1)
    with pytest.raises(
        ValueError, match=r"optimizer SGD has no hyperparameter 'betas2'; it has \["
    ):
        make_learner([Scheduler(betas2=constant(0.1))]).fit(1)
    with pytest.raises(ValueError, match=r"has 2 schedules but the optimizer has 1 param groups"):
        make_learner([Scheduler(lr=[constant(1), constant(2)])]).fit(1)
    lrn = make_learner([Scheduler(lr=constant(1))])
    lrn.data["train"] = iter(lrn.data["train"])
    with pytest.raises(ValueError, match=r"has no len\(\); pass Scheduler\(total_steps=...\)"):
        lrn.fit(1)


def test_fit_one_cycle_follows_the_one_cycle_and_removes_its_scheduler():
    log = LrLog()
    lrn = make_learner([log], opt_cls=torch.optim.SGD, momentum=0.9)
    lrn.fit_one_cycle(2, lr_max=0.5)
    expected = one_cycle(0.5)
    assert log.lrs == pytest.approx([expected(i / 20) for i in range(20)])
    assert max(log.moms) == pytest.approx(0.95, abs=1e-3) and min(log.moms) < 0.86
    assert all(type(c).__name__ != "Scheduler" for c in lrn.callbacks)
    assert math.isclose(log.lrs[5], 0.5)
