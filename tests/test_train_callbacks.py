"""EarlyStopping, GradClip, GradAccumulation, Lookahead, ToDevice, SanityCheck, Throttle,
TimeLimit."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from weft.train import (
    READ,
    Callback,
    Checkpointer,
    EarlyStopping,
    GradAccumulation,
    GradClip,
    History,
    Learner,
    Lookahead,
    Metrics,
    SanityCheck,
    SanityCheckError,
    StopReason,
    Throttle,
    TimeLimit,
    ToDevice,
    TrainingPhase,
    for_phases,
)


def regression_data(n_batches=6, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * batch, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]


def make(callbacks, data=None, valid=None, lr=0.1, loss=torch.nn.functional.mse_loss, model=None):
    torch.manual_seed(0)
    model = model or torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    data = regression_data() if data is None else data
    return Learner(model, loss, opt, data=(data, valid), callbacks=callbacks, defaults=False)


def weights(learner):
    return [p.detach().clone() for p in learner.model.parameters()]


# ---- EarlyStopping ---------------------------------------------------------------------------


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    valid = regression_data(2, seed=1)
    es = EarlyStopping("valid_loss", patience=2)
    result = make([Metrics(), es], valid=valid, lr=0.0).fit(20)
    assert result.stop.reason is StopReason.EARLY_STOPPING
    assert result.epochs == 3 and result.stop.source == "EarlyStopping"
    assert result.stop.message.startswith("valid_loss did not improve for 2 epochs (best ")
    assert result.stop.message.endswith(" at epoch 0)")
    assert es.state_dict()["wait"] == 2


def test_early_stopping_keeps_going_while_improving():
    valid = regression_data(2, seed=1)
    result = make([Metrics(), EarlyStopping(patience=1, min_delta=0.0)], valid=valid).fit(4)
    assert result.completed


def test_early_stopping_stops_at_the_first_epoch_that_reaches_stop_at():
    valid = regression_data(2, seed=1)
    fit = make([Metrics(), History()], valid=valid).fit(5)
    losses = [row["valid_loss"] for row in fit.history]
    assert losses == sorted(losses, reverse=True)  # improving every epoch: patience never ends it
    threshold = (losses[1] + losses[2]) / 2
    es = EarlyStopping("valid_loss", patience=None, stop_at=threshold)
    result = make([Metrics(), History(), es], valid=valid).fit(5)
    assert result.stop.reason is StopReason.EARLY_STOPPING and result.epochs == 3
    assert [row["valid_loss"] for row in result.history] == losses[:3]
    assert result.stop.message.startswith("valid_loss reached ")
    assert result.stop.message.endswith(f"(stop_at {threshold:.6g}) at epoch 2")


def test_early_stopping_errors():
    with pytest.raises(
        KeyError,
        match=r"EarlyStopping monitors 'valid_acc', but the metrics are \['train_loss', 'valid_loss'\]",
    ):
        make([Metrics(), EarlyStopping("valid_acc")], valid=regression_data(1)).fit(1)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience must be >= 1 or None"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="patience=None needs stop_at"):
        EarlyStopping(patience=None)


# ---- gradients -------------------------------------------------------------------------------


def test_grad_clip_by_norm_limits_each_update():
    lrn = make([GradClip(0.01)], lr=1.0)
    before = weights(lrn)
    lrn.fit(1)
    change = torch.cat([(a - b).flatten() for a, b in zip(weights(lrn), before, strict=True)])
    assert change.norm() <= 6 * 0.01 + 1e-6  # six updates of norm <= 0.01 each
    assert lrn.callbacks[0].last_norm > 0.01  # it did have to clip


def test_grad_clip_by_value():
    class MaxGrad(Callback):
        access = {"model": READ}  # noqa: RUF012
        run_after = ("GradClip",)

        def __init__(self):
            self.max = 0.0

        @for_phases(TrainingPhase)
        def on_backward_end(self, learner):
            g = max(p.grad.abs().max().item() for p in learner.model.parameters())
            self.max = max(self.max, g)

    probe = MaxGrad()
    make([GradClip(value=0.05), probe]).fit(1)
    assert probe.max == pytest.approx(0.05)  # float32 0.05, clipped to exactly the limit
    with pytest.raises(ValueError, match="exactly one of max_norm"):
        GradClip()


def test_grad_accumulation_equals_a_larger_batch():
    small = regression_data(6, batch=4)
    big = [
        (torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]]))
        for a, b in zip(small[::2], small[1::2], strict=True)
    ]
    accumulated = make([GradAccumulation(2)], data=small)
    accumulated.fit(2)
    plain = make([], data=big)
    plain.fit(2)
    for a, b in zip(weights(accumulated), weights(plain), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


# ---- Lookahead --------------------------------------------------------------------------------


def test_lookahead_matches_a_hand_written_loop():
    seen = []

    def decay(t):
        seen.append(t)
        return 0.5

    learner = make([Lookahead(every=2, decay=decay, start=0.25)], lr=0.05)
    learner.fit(2)

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    params, slow, updates = list(model.parameters()), None, 0
    for epoch in range(2):
        for i, (x, y) in enumerate(regression_data()):
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            opt.zero_grad()
            if (epoch * 6 + i + 1) / 12 < 0.25:
                continue  # before `start`: steps 1 and 2 of 12
            updates += 1
            if updates % 2 == 0:
                with torch.no_grad():
                    if slow is None:
                        slow = [p.detach().clone() for p in params]
                    else:
                        for s, p in zip(slow, params, strict=True):
                            s += 0.5 * (p - s)
                            p.copy_(s)
        with torch.no_grad():  # each epoch ends on the slow weights
            for s, p in zip(slow, params, strict=True):
                p.copy_(s)
    for got, expected in zip(weights(learner), params, strict=True):
        torch.testing.assert_close(got, expected.detach())
    assert seen == [6 / 12, 8 / 12, 10 / 12, 12 / 12]  # the fit's progress at each average


def test_lookahead_averages_batch_norm_statistics_and_resumes_from_a_checkpoint(tmp_path):
    def learner(callbacks):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        return make(
            [Lookahead(every=3, decay=0.7), *callbacks],
            model=model,
            lr=0.05,
            loss=lambda out, y: torch.nn.functional.mse_loss(out.mean(1, keepdim=True), y),
        )

    full = learner([Checkpointer(tmp_path, keep_last=None)])
    full.fit(3)
    lookahead = full.callbacks[0]
    # the slow copy holds the running mean and variance too (and not the batch counter)
    assert [tuple(x.shape) for x in lookahead.slow] == [(4, 3), (4,), (4,), (4,), (4,), (4,)]
    first = next(tmp_path.glob("*-step6.pt"))  # after epoch 1 of 3: mid-way through a period
    resumed = learner([Checkpointer(tmp_path / "again")])
    resumed.fit(3, resume=first)
    torch.testing.assert_close(resumed.model.state_dict(), full.model.state_dict())


def test_lookahead_orders_with_the_other_model_writers():
    callbacks = [GradClip(1.0), Lookahead(), GradAccumulation(2), ToDevice("cpu")]
    assert make(callbacks).order[0].name == "ToDevice"


def test_lookahead_errors():
    with pytest.raises(ValueError, match=r"Lookahead\(every=...\) must be >= 1, got 0"):
        Lookahead(every=0)
    with pytest.raises(ValueError, match=r"Lookahead\(decay=...\) must be in \[0, 1\], got 1.5"):
        Lookahead(decay=1.5)
    with pytest.raises(ValueError, match=r"Lookahead\(start=...\) is a fraction"):
        Lookahead(start=1.0)
    with pytest.raises(
        ValueError,
        match=r"Lookahead cannot tell how many steps the fit has: the training data has no len\(\)$",
    ):
        make([Lookahead()], data=iter(regression_data())).fit(1)


def test_grad_accumulation_runs_before_grad_clip():
    lrn = make([GradClip(1.0), GradAccumulation(2)])
    assert [c.name for c in lrn.order] == ["GradAccumulation", "GradClip"]
    with pytest.raises(ValueError, match="n >= 1"):
        GradAccumulation(0)


# ---- ToDevice ----------------------------------------------------------------------------------


def test_to_device_runs_first_and_feeds_tensors_on_the_device():
    seen = []

    class Where(Callback):
        access = {"step.inputs": READ, "model": READ}  # noqa: RUF012

        def on_step_begin(self, learner):
            seen.append((type(learner.step.inputs), learner.step.inputs.device))

    numpy_data = [(x.numpy(), y.numpy()) for x, y in regression_data()]
    lrn = make([Where(), ToDevice("cpu")], data=numpy_data)
    assert [c.name for c in lrn.order] == ["ToDevice", "Where"]
    assert lrn.fit(1).completed
    assert seen == [(torch.Tensor, torch.device("cpu"))] * 6
    assert lrn.predict([x for x, _ in numpy_data]).shape == (24, 1)


# ---- SanityCheck -------------------------------------------------------------------------------


def test_sanity_check_passes_and_leaves_no_trace():
    def dropout_net():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)
        )

    checked = make([SanityCheck()], model=dropout_net())
    plain = make([], model=dropout_net())
    for lrn in (checked, plain):
        torch.manual_seed(1)
        np.random.seed(1)
        lrn.fit(1)
    for a, b in zip(weights(checked), weights(plain), strict=True):
        assert torch.equal(a, b)


def classification(targets_float=False, n=4):
    x = torch.randn(n, 3)
    y = torch.randint(0, 2, (n,))
    return [(x, y.float() if targets_float else y)]


@pytest.mark.parametrize(
    ("data", "model", "loss", "message"),
    [
        (
            classification(),
            torch.nn.Linear(5, 2),
            torch.nn.functional.cross_entropy,
            r"the model failed on the first training batch \(inputs shape \(4, 3\) float32\): RuntimeError",
        ),
        (
            classification(targets_float=True),
            torch.nn.Linear(3, 2),
            torch.nn.functional.cross_entropy,
            r"loss_fn\(predictions shape \(4, 2\) float32, targets shape \(4,\) float32\) failed: .*class-index targets must be integers",
        ),
        (
            classification(),
            torch.nn.Linear(3, 2),
            lambda p, t: torch.nn.functional.cross_entropy(p, t, reduction="none"),
            r"the loss must be a scalar tensor, got shape \(4,\) float32; reduce it",
        ),
        (
            [(torch.randn(4, 3), torch.randint(0, 2, (3,)))],
            torch.nn.Linear(3, 2),
            torch.nn.functional.cross_entropy,
            r"predictions shape \(4, 2\) float32 and targets shape \(3,\) int64 disagree on the batch size",
        ),
        (
            classification(),
            torch.nn.Linear(3, 2),
            lambda p, t: torch.nn.functional.cross_entropy(p.detach(), t),
            "the loss does not depend on any trainable parameter",
        ),
        (
            [],
            torch.nn.Linear(3, 2),
            torch.nn.functional.cross_entropy,
            "the training data yielded no batch",
        ),
    ],
)
def test_sanity_check_errors(data, model, loss, message):
    with pytest.raises(SanityCheckError, match=message):
        make([SanityCheck()], data=data, model=model, loss=loss).fit(1)


# ---- Throttle, TimeLimit -------------------------------------------------------------------------


class Counter(Callback):
    def __init__(self):
        self.steps, self.epochs = [], 0

    @for_phases(TrainingPhase)
    def on_step_end(self, learner):
        self.steps.append(learner.progress.step)

    def on_epoch_end(self, learner):
        self.epochs += 1


def test_throttle_every_n_steps():
    inner = Counter()
    throttled = Throttle(inner, every=4)
    lrn = make([throttled], data=regression_data(10))
    assert throttled.name == "Throttle[Counter]"
    lrn.fit(1)
    assert inner.steps == [4, 8] and inner.epochs == 1


def test_throttle_by_time_and_errors():
    inner = Counter()
    make([Throttle(inner, seconds=1000)], data=regression_data(10)).fit(1)
    assert inner.steps == [1]
    with pytest.raises(ValueError, match="exactly one of every"):
        Throttle(Counter())


def test_time_limit_stops_with_its_reason():
    def slow_loss(p, t):
        time.sleep(0.02)
        return torch.nn.functional.mse_loss(p, t)

    result = make([TimeLimit(0.05)], data=regression_data(50), loss=slow_loss).fit(1)
    assert result.stop.reason is StopReason.TIME_LIMIT and result.steps < 50
    assert result.stop.message == "time limit of 0.05 s reached"
