"""Checkpoints: bitwise resume in a fresh process, atomic writes under SIGKILL, safe loading,
keep-last/keep-best, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from weft.train import (
    WRITE,
    Callback,
    Checkpointer,
    CheckpointError,
    Learner,
    Metrics,
    StopReason,
    TrainingPhase,
    for_phases,
)
from weft.train import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from weft.data import Loader, batchview, shuffleobs
    from weft.train import (Checkpointer, EarlyStopping, GradClip, Learner, Metrics, ProgressBar,
                            Scheduler, accuracy, one_cycle)

    folder, out = sys.argv[1], sys.argv[2]
    resume = sys.argv[3] if len(sys.argv) > 3 else None
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    train = Loader(batchview(shuffleobs((x, y)), 8), seed=1)
    valid = [(x[:32], y[:32])]
    torch.manual_seed(0)
    np.random.seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    callbacks = [Metrics(accuracy), Scheduler(lr=one_cycle(1e-2)), EarlyStopping(patience=100),
                 GradClip(1.0), Checkpointer(folder, every_steps=5, keep_last=None),
                 ProgressBar(quiet=True)]
    learner = Learner(model, torch.nn.functional.cross_entropy, opt, data=(train, valid),
                      callbacks=callbacks)
    learner.fit(3, resume=resume)
    history = [{k: v for k, v in row.items() if k != "time"} for row in learner.cbstate.history]
    torch.save({"model": learner.model.state_dict(), "optimizer": learner.optimizer.state_dict(),
                "history": history, "torch_rng": torch.get_rng_state(),
                "numpy_rng": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
                "progress": learner.progress.state_dict(),
                "early_stopping": callbacks[2].state_dict()}, out)
    """
)


def run_script(tmp_path: Path, *args: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_identical(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_resume_in_a_fresh_process_is_bitwise_identical(tmp_path):
    full_dir = tmp_path / "full"
    run_script(tmp_path, str(full_dir), str(tmp_path / "full.pt"))
    files = sorted(p.name for p in full_dir.glob("*.pt"))
    # every 5 steps, plus the end of each epoch (12 batches per epoch)
    assert "epoch1-step15.pt" in files and "epoch0-step12.pt" in files
    full = torch.load(tmp_path / "full.pt", weights_only=True)
    assert full["progress"]["step"] == 36 and len(full["history"]) == 3
    # mid-epoch (batch 3 of epoch 1) and at an epoch boundary
    for name in ("epoch1-step15.pt", "epoch0-step12.pt"):
        resumed_dir = tmp_path / f"resumed-{name}"
        out = tmp_path / f"resumed-{name}.out"
        run_script(tmp_path, str(resumed_dir), str(out), str(full_dir / name))
        assert_identical(full, torch.load(out, weights_only=True), name)


def small_learner(callbacks, n_batches=4, valid=True):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(n_batches * 4, 3)
    y = (x[:, 0] > 0).long()
    data = [(x[i : i + 4], y[i : i + 4]) for i in range(0, len(x), 4)]
    return Learner(
        model,
        torch.nn.functional.cross_entropy,
        opt,
        data=(data, data[:1] if valid else None),
        callbacks=callbacks,
        defaults=False,
    )


def test_keep_last_and_keep_best(tmp_path):
    class ScoreByEpoch(Callback):
        """Publishes a made-up validation score per epoch so 'best' is known."""

        access = {"cbstate.metrics": WRITE}  # noqa: RUF012
        scores = (5.0, 1.0, 4.0, 3.0, 6.0)

        def attach(self, learner):
            learner.cbstate.metrics = {}

        def on_epoch_end(self, learner):
            learner.cbstate.metrics["valid_score"] = self.scores[learner.progress.epoch]

    saver = Checkpointer(tmp_path, keep_last=2, keep_best=1, monitor="valid_score")
    lrn = small_learner([ScoreByEpoch(), saver])
    lrn.fit(5)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [
        "epoch1-step8.pt",
        "epoch3-step16.pt",
        "epoch4-step20.pt",
    ]
    assert saver.best == tmp_path / "epoch1-step8.pt"
    assert saver.last == tmp_path / "epoch4-step20.pt"


def test_checkpointer_runs_after_every_other_callback(tmp_path):
    lrn = small_learner([Checkpointer(tmp_path), Metrics()])
    assert [c.name for c in lrn.order] == ["Metrics", "Checkpointer"]


def test_ctrl_c_keeps_a_checkpoint_of_where_training_stopped(tmp_path):
    class Interrupt(Callback):
        @for_phases(TrainingPhase)
        def on_step_end(self, learner):
            if learner.progress.step == 6:
                signal.raise_signal(signal.SIGINT)

    lrn = small_learner([Interrupt(), Checkpointer(tmp_path, every_epochs=None)])
    result = lrn.fit(3)
    assert result.stop.reason is StopReason.USER_INTERRUPT
    state = ckpt.load(tmp_path / "epoch1-step6.pt")
    assert state["position"] == {"phase": 0, "batch": 2}
    # lists cannot say where they were: the interrupted epoch restarts, repeating 2 steps
    resumed = small_learner([Interrupt(), Checkpointer(tmp_path / "again", every_epochs=None)])
    with pytest.warns(UserWarning, match="saved mid-way through a train epoch whose data cannot"):
        result = resumed.fit(3, resume=tmp_path)
    assert result.completed and result.steps == 14  # counted from the start of the fit


class Positioned:
    """A list of batches that remembers how many were consumed (like weft's Loader)."""

    def __init__(self, batches):
        self.batches, self.start, self.done = batches, 0, 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        start, self.start = self.start, 0
        for i in range(start, len(self.batches)):
            self.done = i + 1
            yield self.batches[i]
        self.done = 0

    def state_dict(self):
        return {"done": self.done}

    def load_state_dict(self, state):
        self.start = self.done = state["done"]


class ReadAhead(Callback):
    """Wraps the batches like a prefetcher: keeps two batches pulled ahead of the step."""

    def wrap_data(self, batches, phase):
        it = iter(batches)
        buffer = [b for _, b in zip(range(2), it, strict=False)]
        for b in it:
            buffer.append(b)
            yield buffer.pop(0)
        yield from buffer


class StopAt6(Callback):
    @for_phases(TrainingPhase)
    def on_step_end(self, learner):
        if learner.progress.step == 6:
            learner.request_stop(StopReason.USER_INTERRUPT)


def test_resume_mid_epoch_with_a_positioned_loader_behind_a_read_ahead_wrapper(tmp_path):
    def run(callbacks, resume=None):
        lrn = small_learner([ReadAhead(), Metrics(), *callbacks])
        lrn.data["train"] = Positioned(lrn.data["train"])
        return lrn, lrn.fit(3, resume=resume)

    full, _ = run([])
    _, stopped = run([StopAt6(), Checkpointer(tmp_path, every_epochs=None)])
    assert stopped.steps == 6
    # the loader had yielded 4 batches of epoch 1, the step had consumed 2
    assert ckpt.load(tmp_path / "epoch1-step6.pt")["data"] == {"done": 2}
    resumed, result = run(
        [StopAt6(), Checkpointer(tmp_path / "b", every_epochs=None)],
        resume=tmp_path / "epoch1-step6.pt",
    )
    assert result.steps == 12
    assert_identical(full.model.state_dict(), resumed.model.state_dict())
    assert_identical(full.cbstate.metrics, resumed.cbstate.metrics)


def test_loading_never_runs_code_and_errors_are_clear(tmp_path):
    lrn = small_learner([Metrics()])
    path = lrn.save_checkpoint(tmp_path / "ok.pt")
    assert ckpt.load(path)["format"] == ckpt.FORMAT

    torch.save({"format": ckpt.FORMAT, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*evil.pt: UnpicklingError"):
        ckpt.load(tmp_path / "evil.pt")
    assert not Evil.ran

    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other.pt is not a weft checkpoint"):
        ckpt.load(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*missing.pt"):
        ckpt.load(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no checkpoint \(\*.pt\) in folder"):
        small_learner([Metrics()]).fit(1, resume=tmp_path / "empty")

    different = small_learner([Metrics(), Checkpointer(tmp_path / "x")])
    with pytest.raises(
        CheckpointError,
        match=r"was saved with callbacks \['Metrics'\] but the learner has \['Checkpointer', 'Metrics'\]",
    ):
        different.fit(1, resume=path)


class Evil:
    ran = False

    def __reduce__(self):
        return (Evil._run, ())

    @staticmethod
    def _run():
        Evil.ran = True
        return "pwned"


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from weft.train import Learner
    path = sys.argv[1]
    model = torch.nn.Linear(4096, 4096)  # 64 MiB of weights: a write takes a while
    learner = Learner(model, torch.nn.functional.mse_loss,
                      torch.optim.SGD(model.parameters(), lr=0.1), defaults=False)
    with torch.no_grad():
        model.bias.fill_(1.0)
    learner.save_checkpoint(path)
    print("first", flush=True)
    with torch.no_grad():
        model.bias.fill_(2.0)
    while True:
        learner.save_checkpoint(path)
    """
)


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    path = tmp_path / "ckpt.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "first"
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".ckpt.pt.tmp-*")):
            assert time.monotonic() < deadline, "the second write never started"
            time.sleep(0.001)
        time.sleep(0.01)  # into the write
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = list(tmp_path.glob(".ckpt.pt.tmp-*"))
    assert partial, "the kill should have left the unfinished temporary file behind"
    state = ckpt.load(path)
    assert state["model"]["bias"][0].item() in (1.0, 2.0)  # complete: the first or a later one
    assert state["model"]["weight"].shape == (4096, 4096)
