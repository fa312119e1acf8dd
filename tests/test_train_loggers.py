"""Loggers: TensorBoard event files read back with tensorboard's reader, CSV, the protocol."""

from __future__ import annotations

import csv

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from weft.train import Learner, Metrics, accuracy
from weft.train.loggers import Backend, CSVBackend, Logger, TensorBoardBackend


def images_learner(callbacks):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, 4, 4, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long()
    train = [(x[i : i + 6], y[i : i + 6]) for i in range(0, 24, 6)]
    return Learner(model, torch.nn.functional.cross_entropy, opt, data=(train, train[:2]),
                   callbacks=[Metrics(accuracy), *callbacks])  # fmt: skip


def test_tensorboard_event_files_hold_what_was_logged(tmp_path):
    backend = TensorBoardBackend(tmp_path)
    logger = Logger(backend, every=2, histograms=True, images=2, hparams={"model": "linear"})
    result = images_learner([logger]).fit(2)
    logger.close()
    events = EventAccumulator(
        str(tmp_path), size_guidance={"histograms": 0, "images": 0, "scalars": 0}
    )
    events.Reload()
    tags = events.Tags()
    steps = [e.step for e in events.Scalars("train/loss_step")]
    assert steps == [2, 4, 6, 8]
    valid_loss = [e.value for e in events.Scalars("valid/loss")]
    assert valid_loss == pytest.approx([row["valid_loss"] for row in result.history])
    assert [e.step for e in events.Scalars("valid/accuracy")] == [4, 8]
    assert events.Scalars("hparams/lr")[0].value == pytest.approx(0.1)
    assert {"weights/1.weight", "weights/1.bias"} <= set(tags["histograms"])
    assert len(events.Histograms("weights/1.weight")) == 2
    assert set(tags["images"]) == {"inputs/0", "inputs/1"}
    hparams = EventAccumulator(str(tmp_path))
    hparams.Reload()
    assert hparams.PluginTagToContent("hparams")  # the hparams plugin's session summary
    assert [e.value for e in hparams.Scalars("hparam/valid_loss")] == pytest.approx(
        [result.history[-1]["valid_loss"]]
    )


def test_tensorboard_backend_that_never_logs_leaves_no_file(tmp_path):
    # what ranks other than 0 do in a distributed run: build the backend, never write, close
    backend = TensorBoardBackend(tmp_path / "tb")
    backend.flush()
    backend.close()
    assert not (tmp_path / "tb").exists()
    backend.log_scalars({"loss": 1.0}, 0)
    backend.close()
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1


def test_csv_backend_writes_long_rows(tmp_path):
    path = tmp_path / "log" / "metrics.csv"
    logger = Logger(CSVBackend(path), hparams={"batch": 6})
    images_learner([logger]).fit(1)
    logger.close()
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "tag", "value"]
    tags = {(int(s), t) for s, t, _ in rows[1:]}
    assert {
        (1, "train/loss_step"),
        (4, "train/loss_step"),
        (4, "train/loss"),
        (4, "valid/accuracy"),
    } <= tags
    assert (-1, "hparam/batch") in tags and (-1, "hparam/lr") in tags


class Memory(Backend):
    """A backend keeping everything in lists (what an MLflow/W&B backend would send)."""

    def __init__(self):
        self.scalars, self.hparams = [], None

    def log_scalars(self, values, step):
        self.scalars.append((step, dict(values)))

    def log_hparams(self, hparams, metrics):
        self.hparams = (dict(hparams), dict(metrics))


def test_a_custom_backend_receives_values_from_the_worker(tmp_path):
    memory = Memory()
    lrn = images_learner([Logger(memory, every=4)])
    lrn.fit(2)
    per_step = [s for s, v in memory.scalars if "train/loss_step" in v]
    assert per_step == [4, 8]
    hparams, final = memory.hparams
    assert hparams["lr"] == 0.1 and hparams["momentum"] == 0.9
    assert final["valid_accuracy"] == lrn.cbstate.metrics["valid_accuracy"]


def test_logger_errors():
    with pytest.raises(ValueError, match="Logger needs at least one backend"):
        Logger()
    with pytest.raises(
        TypeError, match=r"Logger backends must be weft.train.loggers.Backend objects, got str"
    ):
        Logger("tb")

    class Incomplete(Backend):
        pass

    with pytest.raises(Exception, match="Incomplete must implement log_scalars"):
        images_learner([Logger(Incomplete())]).fit(1)
