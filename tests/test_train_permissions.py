"""Runtime permissions: callbacks see only what they declared."""

from __future__ import annotations

import pytest
import torch

from weft.train import READ, WRITE, AccessError, Callback, Learner, Metrics
from weft.train.permissions import ReadOnlyMapping, make_view


def make_learner(callbacks, check_access=True):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 3)
    data = [(x[:4], x[:4, :1]), (x[4:], x[4:, :1])]
    return Learner(
        model,
        torch.nn.functional.mse_loss,
        opt,
        data=(data, None),
        callbacks=callbacks,
        defaults=False,
        check_access=check_access,
    )


class Peeker(Callback):
    """Reads the predictions without declaring them."""

    access = {"step.loss": READ}  # noqa: RUF012

    def on_step_end(self, learner):
        self.seen = learner.step.predictions


class LossWriter(Callback):
    """Writes the loss it declared only as READ."""

    access = {"step.loss": READ}  # noqa: RUF012

    def on_backward_begin(self, learner):
        learner.step.loss = learner.step.loss * 2


def test_undeclared_read_names_callback_and_field():
    with pytest.raises(
        AccessError,
        match=r"Peeker read 'step.predictions' but did not declare it; add \{'step.predictions': READ\} to Peeker.access",
    ):
        make_learner([Peeker()]).fit(1)


def test_write_of_a_read_field_names_callback_and_field():
    with pytest.raises(
        AccessError,
        match=r"LossWriter wrote 'step.loss' but did not declare it; add \{'step.loss': WRITE\}",
    ):
        make_learner([LossWriter()]).fit(1)


def test_undeclared_top_level_field():
    class ModelToucher(Callback):
        def on_fit_begin(self, learner):
            learner.model.zero_grad()

    with pytest.raises(AccessError, match="ModelToucher read 'model' but did not declare it"):
        make_learner([ModelToucher()]).fit(1)


def test_check_access_off_hands_out_the_learner():
    peeker = Peeker()
    make_learner([peeker], check_access=False).fit(1)
    assert peeker.seen.shape == (4, 1)


def test_declared_write_reaches_the_learner():
    class Doubler(Callback):
        access = {"step.loss": WRITE}  # noqa: RUF012

        def on_backward_begin(self, learner):
            learner.step.loss = learner.step.loss * 0

    learner = make_learner([Doubler()])
    before = [p.detach().clone() for p in learner.model.parameters()]
    learner.fit(1)
    for b, p in zip(before, learner.model.parameters(), strict=True):
        assert torch.equal(b, p)  # a zero loss leaves the weights alone


def test_read_hands_out_read_only_mappings_and_lists():
    seen = {}

    class Reader(Callback):
        access = {"cbstate.metrics": READ, "cbstate.history": READ}  # noqa: RUF012

        def on_epoch_end(self, learner):
            seen["metrics"] = learner.cbstate.metrics
            seen["history"] = learner.cbstate.history

    class Writer(Callback):
        access = {"cbstate.metrics": WRITE, "cbstate.history": WRITE}  # noqa: RUF012
        run_after = ()

        def attach(self, learner):
            learner.cbstate.metrics = {"a": {"nested": 1}}
            learner.cbstate.history = [{"epoch": 0}]

    make_learner([Reader(), Writer()]).fit(1)
    metrics, history = seen["metrics"], seen["history"]
    assert isinstance(metrics, ReadOnlyMapping) and metrics["a"]["nested"] == 1
    with pytest.raises(TypeError):
        metrics["b"] = 2
    with pytest.raises(TypeError):
        metrics["a"]["nested"] = 2
    with pytest.raises(TypeError):
        history[0]["epoch"] = 3
    assert not hasattr(history, "append")


def test_view_attribute_writes_need_write_and_reads_of_whole_objects_work():
    learner = make_learner([])
    view = make_view(learner, "Cb", {"step": READ, "cbstate.x": WRITE})
    view.cbstate.x = 5
    assert learner.cbstate.x == 5
    assert view.step.update is True
    with pytest.raises(AccessError, match=r"Cb wrote 'step.update'"):
        view.step.update = False
    with pytest.raises(AccessError, match=r"Cb read 'cbstate.y'"):
        _ = view.cbstate.y
    with pytest.raises(AccessError, match="Cb wrote 'model'"):
        view.model = None
    assert view.progress.epoch == 0 and view.phase is None


def test_capture_state_needs_the_checkpoint_reads():
    view = make_view(make_learner([]), "Saver", {"model": READ})
    with pytest.raises(
        AccessError,
        match=r"Saver called capture_state\(\) but did not declare READ on \['optimizer'",
    ):
        view.capture_state()


def test_metrics_declares_what_it_reads():
    assert Metrics().declared_access() == {
        "step.loss": READ,
        "step.targets": READ,
        "cbstate.metrics": WRITE,
    }
