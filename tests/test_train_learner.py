"""The Learner: the loop, events, phases, data forms, stopping, Ctrl-C, async callbacks."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
import torch

from weft.train import (
    READ,
    WRITE,
    AccessError,
    AsyncCallbackError,
    Callback,
    Event,
    History,
    Learner,
    Metrics,
    Phase,
    StopReason,
    TrainingPhase,
    accuracy,
    for_phases,
)

ALL_EVENTS = (
    "fit_begin",
    "epoch_begin",
    "step_begin",
    "loss_begin",
    "backward_begin",
    "backward_end",
    "step_end",
    "epoch_end",
    "fit_end",
)


def batches(n_batches=4, batch=8, seed=0, numpy=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * batch, 4, generator=g)
    y = (x[:, 0] > 0).long()
    out = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]
    return [(a.numpy(), b.numpy()) for a, b in out] if numpy else out


def learner(callbacks=(), train=None, valid=None, **kw):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    train = batches() if train is None else train
    kw.setdefault("defaults", False)
    return Learner(
        model,
        torch.nn.functional.cross_entropy,
        opt,
        data=(train, valid),
        callbacks=callbacks,
        **kw,
    )


class Recorder(Callback):
    """Records (event, phase name) for every standard event."""

    def __init__(self):
        self.log = []

    def __getattr__(self, name):
        if name.startswith("on_") and name[3:] in ALL_EVENTS:
            return lambda learner: self.log.append(
                (name[3:], learner.phase.name if learner.phase else None)
            )
        raise AttributeError(name)


def test_fit_trains_and_returns_a_completed_result():
    lrn = learner([Metrics(accuracy)], valid=batches(2, seed=1), defaults=True)
    result = lrn.fit(5)
    assert result.completed and result.stop.reason is StopReason.COMPLETED
    assert result.epochs == 5 and result.steps == 20
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3, 4]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert {"valid_loss", "valid_accuracy", "lr", "time", "step"} <= set(result.history[0])
    again = lrn.fit(1)
    assert [r["epoch"] for r in again.history] == [5] and lrn.progress.step == 24


def test_events_fire_in_loop_order():
    rec = Recorder()
    learner([rec], train=batches(2), valid=batches(1)).fit(1)
    train_step = [(e, "train") for e in ALL_EVENTS[2:7]]
    valid_step = [("step_begin", "valid"), ("loss_begin", "valid"), ("step_end", "valid")]
    assert rec.log == [
        ("fit_begin", None),
        ("epoch_begin", "train"),
        *train_step,
        *train_step,
        ("epoch_end", "train"),
        ("epoch_begin", "valid"),
        *valid_step,
        ("epoch_end", "valid"),
        ("fit_end", None),
    ]


def test_handlers_limited_to_phases():
    class TrainOnly(Callback):
        def __init__(self):
            self.phases = []

        @for_phases(TrainingPhase)
        def on_step_end(self, learner):
            self.phases.append(learner.phase.name)

    cb = TrainOnly()
    learner([cb], valid=batches(2)).fit(1)
    assert cb.phases == ["train"] * 4


def test_step_state_holds_the_batch_and_results():
    seen = {}

    class Look(Callback):
        access = {"step": READ}  # noqa: RUF012

        @for_phases(TrainingPhase)
        def on_step_end(self, learner):
            s = learner.step
            seen.update(inputs=s.inputs, targets=s.targets, preds=s.predictions, loss=s.loss)

    learner([Look()], train=batches(1, numpy=True)).fit(1)
    assert isinstance(seen["inputs"], torch.Tensor) and seen["inputs"].shape == (8, 4)
    assert seen["preds"].shape == (8, 2) and seen["loss"].dim() == 0


def test_dict_batches_use_batch_keys():
    data = [{"x": a, "y": b} for a, b in batches()]
    assert learner(train=data, batch_keys=("x", "y")).fit(1).completed
    with pytest.raises(
        ValueError, match=r"a dict batch needs keys 'inputs' and 'targets' .* has \['x', 'y'\]"
    ):
        learner(train=data).fit(1)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([(1, 2, 3)], r"a batch must be \(inputs, targets\) or a dict; got a tuple of 3 items"),
        ([torch.zeros(2)], r"a batch must be \(inputs, targets\) or a dict, got Tensor"),
    ],
)
def test_bad_batches_are_reported(bad, message):
    with pytest.raises(ValueError, match=message):
        learner(train=bad).fit(1)


def test_bad_data_and_callbacks_arguments():
    with pytest.raises(ValueError, match=r"data must be \(train, valid\)"):
        learner(train=batches()).__class__(torch.nn.Linear(1, 1), None, None, data=[1, 2, 3])
    with pytest.raises(
        TypeError, match=r"callbacks must be weft.train.Callback objects, got function"
    ):
        learner([lambda learner: None])
    with pytest.raises(ValueError, match=r"fit\(\) needs training data"):
        Learner(torch.nn.Linear(1, 1), None, None, defaults=False).fit(1)


class StopAt(Callback):
    def __init__(self, step, reason=StopReason.REQUESTED):
        self.step, self.reason = step, reason

    @for_phases(TrainingPhase)
    def on_step_end(self, learner):
        if learner.progress.step == self.step:
            learner.request_stop(self.reason, "enough")


def test_request_stop_finishes_the_step_and_runs_end_events():
    rec = Recorder()
    result = learner([StopAt(6), rec], valid=batches(1)).fit(10)
    assert result.stop.reason is StopReason.REQUESTED
    assert result.stop.source == "StopAt" and result.stop.message == "enough"
    assert str(result.stop) == "requested (by StopAt): enough"
    assert result.steps == 6 and result.epochs == 1
    assert rec.log[-3:] == [("step_end", "train"), ("epoch_end", "train"), ("fit_end", None)]
    assert ("epoch_begin", "valid") in rec.log  # epoch 0 ran its validation; epoch 1 stopped


def test_request_stop_needs_a_reason():
    class Bad(Callback):
        def on_step_end(self, learner):
            learner.request_stop("tired")

    with pytest.raises(TypeError, match="request_stop needs a StopReason, got 'tired'"):
        learner([Bad()]).fit(1)


def test_ctrl_c_stops_after_the_step_and_restores_the_handler():
    class Interrupt(Callback):
        @for_phases(TrainingPhase)
        def on_step_end(self, learner):
            if learner.progress.step == 3:
                signal.raise_signal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    rec = Recorder()
    result = learner([Interrupt(), rec]).fit(5)
    assert result.stop.reason is StopReason.USER_INTERRUPT
    assert result.steps == 3 and rec.log[-1] == ("fit_end", None)
    assert signal.getsignal(signal.SIGINT) is before


def test_evaluate_and_predict():
    lrn = learner([Metrics(accuracy)])
    lrn.fit(3)
    valid = batches(2, seed=3)
    scores = lrn.evaluate(valid)
    assert set(scores) == {"loss", "accuracy"}
    preds = lrn.predict(valid)
    x = torch.cat([b[0] for b in valid])
    y = torch.cat([b[1] for b in valid])
    expected_acc = (preds.argmax(1) == y).float().mean().item()
    assert scores["accuracy"] == pytest.approx(expected_acc)
    assert torch.allclose(preds, lrn.model(x).detach())
    assert lrn.predict([b[0].numpy() for b in valid]).shape == (16, 2)
    lrn.add_callback(History())
    lrn.evaluate(valid)
    assert "eval_loss" not in lrn.fit(1).history[0]


def test_custom_phase_and_custom_event():
    class Probe(Event):
        name = "probe"

    class ProbePhase(Phase):
        name = "probe"

        def step(self, learner, step):
            step.predictions = learner.model(step.inputs)
            learner.fire(Probe)

    class OnProbe(Callback):
        access = {"step.predictions": READ}  # noqa: RUF012

        def __init__(self):
            self.shapes = []

        def on_probe(self, learner):
            self.shapes.append(tuple(learner.step.predictions.shape))

    cb = OnProbe()
    lrn = learner([cb])
    assert lrn.epoch(ProbePhase(), batches(3)) is True
    assert cb.shapes == [(8, 2)] * 3
    with pytest.raises(TypeError, match="event class Nameless must set a `name`"):
        type("Nameless", (Event,), {})


class SlowLogger(Callback):
    asynchronous = True
    access = {"step.loss": READ}  # noqa: RUF012

    def __init__(self, delay=0.0, fail_at=None):
        self.delay, self.fail_at = delay, fail_at
        self.losses, self.steps, self.threads = [], [], set()

    @for_phases(TrainingPhase)
    def on_step_end(self, learner):
        time.sleep(self.delay)
        if learner.progress.step == self.fail_at:
            raise OSError("disk full")
        self.threads.add(threading.current_thread().name)
        self.losses.append(learner.step.loss.item())
        self.steps.append(learner.progress.step)


class SyncLosses(Callback):
    access = {"step.loss": READ}  # noqa: RUF012

    def __init__(self):
        self.losses = []

    @for_phases(TrainingPhase)
    def on_step_end(self, learner):
        self.losses.append(learner.step.loss.item())


def test_async_callbacks_run_in_the_background_on_snapshots_and_are_drained():
    slow, sync = SlowLogger(delay=0.01), SyncLosses()
    learner([slow, sync]).fit(3)
    # fit returned only after the worker drained every pending event
    assert slow.steps == list(range(1, 13))
    assert slow.losses == sync.losses
    assert slow.threads == {"weft-async-callbacks"}


def test_async_error_surfaces_at_the_next_event_with_the_callback_name():
    rec = Recorder()
    with pytest.raises(
        AsyncCallbackError,
        match=r"asynchronous callback SlowLogger failed in on_step_end \(on the background worker\): OSError: disk full",
    ):
        learner([SlowLogger(fail_at=2), rec]).fit(50)
    assert len(rec.log) < 50 * 4 * 5  # training stopped early instead of running to the end


def test_async_callbacks_cannot_write_or_stop():
    class Sneaky(Callback):
        asynchronous = True
        access = {"step.loss": READ}  # noqa: RUF012

        def on_step_end(self, learner):
            learner.request_stop(StopReason.REQUESTED)

    with pytest.raises(
        AsyncCallbackError, match=r"Sneaky is asynchronous and called request_stop\(\)"
    ):
        learner([Sneaky()]).fit(1)

    class Peek(Callback):
        asynchronous = True

        def on_step_end(self, learner):
            learner.step.predictions  # noqa: B018

    with pytest.raises(AsyncCallbackError, match="Peek read 'step' but did not declare it"):
        learner([Peek()]).fit(1)


def test_async_order_follows_the_graph():
    order = []

    class Producer(Callback):
        access = {"cbstate.value": WRITE}  # noqa: RUF012

        def attach(self, learner):
            learner.cbstate.value = 0

        def on_step_end(self, learner):
            learner.cbstate.value += 1

    class Second(Callback):
        asynchronous = True
        run_after = ("First",)

        def on_step_end(self, learner):
            order.append("second")

    class First(Callback):
        asynchronous = True
        access = {"cbstate.value": READ}  # noqa: RUF012

        def on_step_end(self, learner):
            order.append(("first", learner.cbstate.value))

    learner([Second(), First(), Producer()], train=batches(2)).fit(1)
    assert order == [("first", 1), "second", ("first", 2), "second"]


def test_numpy_batches_are_converted():
    result = learner(
        [Metrics(), History()], train=batches(numpy=True), valid=batches(2, numpy=True)
    ).fit(2)
    assert np.isfinite(result.history[-1]["valid_loss"])


def test_snapshot_reads_must_be_declared():
    class Narrow(Callback):
        asynchronous = True
        access = {"step.loss": READ}  # noqa: RUF012

        def snapshot_reads(self, event):
            return ("step.predictions",)

        def on_step_end(self, learner):
            pass

    with pytest.raises(
        AccessError,
        match=r"Narrow.snapshot_reads\('step_end'\) asks for 'step.predictions', which it does not declare READ",
    ):
        learner([Narrow()]).fit(1)


def test_epoch_outside_fit_runs_async_callbacks_too():
    slow = SlowLogger()
    lrn = learner([slow])
    assert lrn.epoch(TrainingPhase(), batches(3)) is True
    assert slow.steps == [1, 2, 3]  # drained before epoch() returned


def test_a_second_ctrl_c_interrupts_at_once():
    class DoubleInterrupt(Callback):
        @for_phases(TrainingPhase)
        def on_step_end(self, learner):
            if learner.progress.step == 2:
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)

    # Python's own handler, whatever this run inherited (a background job has SIGINT ignored)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            learner([DoubleInterrupt()]).fit(3)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit restored it
    finally:
        signal.signal(signal.SIGINT, inherited)
