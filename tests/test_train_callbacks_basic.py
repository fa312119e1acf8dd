"""Metrics, History, ProgressBar, StopOnNaN."""

from __future__ import annotations

import io

import pytest
import torch

from weft.train import (
    History,
    Learner,
    Metrics,
    ProgressBar,
    StopOnNaN,
    StopReason,
    accuracy,
    top_k,
)


def uneven_batches():
    """Batches of 5, 5 and 2 samples, so plain means of batch means would be wrong."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g)
    y = torch.randint(0, 3, (12,), generator=g)
    return [(x[:5], y[:5]), (x[5:10], y[5:10]), (x[10:], y[10:])], x, y


def frozen_learner(callbacks, data):
    """lr=0, so every epoch sees the same model and metrics can be recomputed exactly."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    return Learner(
        model,
        torch.nn.functional.cross_entropy,
        opt,
        data=data,
        callbacks=callbacks,
        defaults=False,
    )


class MeanPrediction:
    """A torchmetrics-like object: the mean of all predictions seen since reset."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.total, self.count, self.resets = 0.0, 0, getattr(self, "resets", 0) + 1

    def update(self, predictions, targets):
        self.total += predictions.sum().item()
        self.count += predictions.numel()

    def compute(self):
        return self.total / self.count


def test_epoch_averages_are_weighted_by_batch_size():
    data, x, y = uneven_batches()
    mean_pred = MeanPrediction()
    lrn = frozen_learner([Metrics(accuracy, top_k(2), mean=mean_pred)], (data, data))
    lrn.fit(1)
    logits = lrn.model(x).detach()
    m = lrn.cbstate.metrics
    for phase in ("train", "valid"):
        assert m[f"{phase}_loss"] == pytest.approx(
            torch.nn.functional.cross_entropy(logits, y).item()
        )
        assert m[f"{phase}_accuracy"] == pytest.approx(
            (logits.argmax(1) == y).float().mean().item()
        )
        in_top2 = (logits.topk(2, 1).indices == y[:, None]).any(1).float().mean().item()
        assert m[f"{phase}_top2"] == pytest.approx(in_top2)
        assert m[f"{phase}_mean"] == pytest.approx(logits.mean().item(), rel=1e-5)
    assert mean_pred.resets == 3  # created, then reset at each phase's epoch begin


def test_accuracy_accepts_one_hot_targets():
    preds = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(preds, torch.tensor([1, 0, 0])).item() == pytest.approx(2 / 3)
    assert accuracy(preds, torch.tensor([[0, 1], [1, 0], [1, 0]])).item() == pytest.approx(2 / 3)


def test_metrics_errors():
    with pytest.raises(ValueError, match="Metrics got two metrics named 'accuracy'"):
        Metrics(accuracy, accuracy)
    with pytest.raises(ValueError, match="two metrics named 'loss'"):
        Metrics(loss=accuracy)
    with pytest.raises(TypeError, match=r"metric 'x' must be a function .* got int"):
        Metrics(x=3)
    with pytest.raises(ValueError, match="top_k needs k >= 1, got 0"):
        top_k(0)


def test_history_records_counters_time_metrics_and_hyperparameters():
    data, _, _ = uneven_batches()
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    head = torch.nn.Linear(3, 3)
    opt = torch.optim.Adam(
        [{"params": model.parameters()}, {"params": head.parameters(), "lr": 0.5}],
        lr=0.01,
        weight_decay=0.1,
    )
    lrn = Learner(
        model,
        torch.nn.functional.cross_entropy,
        opt,
        data=(data, data),
        callbacks=[Metrics(), History()],
        defaults=False,
    )
    rows = lrn.fit(2).history
    assert [r["epoch"] for r in rows] == [0, 1]
    assert [r["step"] for r in rows] == [3, 6]
    assert 0 < rows[0]["time"] < rows[1]["time"]
    assert rows[0]["lr"] == 0.01 and rows[0]["lr_1"] == 0.5
    assert rows[0]["beta1"] == 0.9 and rows[0]["weight_decay"] == 0.1
    assert rows[1]["train_loss"] == lrn.cbstate.metrics["train_loss"]
    assert rows[1]["valid_loss"] == lrn.cbstate.metrics["valid_loss"]
    assert lrn.cbstate.history == rows


def test_progress_bar_prints_summaries_without_a_terminal():
    data, _, _ = uneven_batches()
    out = io.StringIO()
    frozen_learner([Metrics(accuracy), ProgressBar(stream=out)], (data, data)).fit(2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue()
    assert lines[0].startswith("epoch 0 train: loss ") and "accuracy " in lines[0]
    assert lines[3].startswith("epoch 1 valid: loss ")


def test_progress_bar_draws_a_bar_on_a_terminal_and_can_be_quiet():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    data, _, _ = uneven_batches()
    tty = Terminal()
    frozen_learner([Metrics(), ProgressBar(stream=tty, refresh=0.0)], (data, None)).fit(1)
    assert "epoch 0 train" in tty.getvalue() and "loss=" in tty.getvalue()
    quiet = Terminal()
    frozen_learner([Metrics(), ProgressBar(stream=quiet, quiet=True)], (data, None)).fit(1)
    assert quiet.getvalue() == ""


def test_stop_on_nan_stops_with_a_typed_reason():
    data, _, _ = uneven_batches()
    calls = {"n": 0}

    def flaky_loss(pred, target):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(pred, target)
        return loss * float("nan") if calls["n"] == 5 else loss

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lrn = Learner(
        model, flaky_loss, opt, data=(data, None), callbacks=[StopOnNaN()], defaults=False
    )
    result = lrn.fit(10)
    assert result.stop.reason is StopReason.NAN_LOSS and result.steps == 5
    assert result.stop.message == "training loss is nan at step 5 (epoch 1, batch 2)"
    with pytest.raises(ValueError, match="StopOnNaN"):
        StopOnNaN(every=0)
