"""Distributed training on CPU with gloo: real processes on 127.0.0.1, launched the way torchrun
launches them (its environment variables), or by torchrun itself.

Run as a script (`python tests/test_train_distributed.py SCENARIO OUT [RESUME]`), this file is
the training program each rank runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from weft.data import DataLoader
from weft.train import (
    Callback,
    Checkpointer,
    Learner,
    Metrics,
    ProgressBar,
    StopReason,
    accuracy,
)
from weft.train.distributed import Context, DistributedError
from weft.train.loggers import Logger

HERE = Path(__file__).resolve()


# ---- the program each rank runs ---------------------------------------------------------------


def _data() -> tuple:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(104, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    # 64 training samples: 4 batches of 8 per rank on 2 ranks; 40 validation samples split
    # 20/20, so no sample is padded and the global metric is exactly the single-process one
    return (x[:64], y[:64]), (x[64:], y[64:])


def _learner(*callbacks: Callback, distributed: bool | None = None) -> Learner:
    torch.manual_seed(0)
    train, valid = _data()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return Learner(
        model,
        torch.nn.functional.cross_entropy,
        torch.optim.SGD(model.parameters(), lr=0.2),
        data=(DataLoader(train, batch_size=8, shuffle=True, seed=1), DataLoader(valid, 8)),
        callbacks=[Metrics(accuracy), *callbacks],
        distributed=distributed,
        dist_timeout=15,
    )


def _checkpointer(folder: Path) -> Checkpointer:
    return Checkpointer(folder, every_steps=2, keep_last=None)


class _StopOnRank(Callback):
    """Asks to stop at training step 3 on one rank only (as a local TimeLimit would)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def on_step_end(self, learner) -> None:
        if learner.dist.rank == self.rank and learner.progress.step == 3:
            learner.request_stop(StopReason.REQUESTED, "rank-local condition")


class _Note(Callback):
    """Leaves a file named after its rank at fit end: which ranks ran its handlers."""

    rank_zero_only = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_fit_end(self, learner) -> None:
        (self.folder / f"note{learner.dist.rank if learner.dist else 0}").touch()


class _DieOnRank(Callback):
    """Kills rank 1 as the OS would, as training step 3 begins: rank 0 then waits for its
    gradients inside DDP's backward."""

    def on_step_begin(self, learner) -> None:
        if learner.dist.rank == 1 and learner.progress.step == 2:
            os.kill(os.getpid(), signal.SIGKILL)


def _main(scenario: str, out: Path, resume: str | None = None) -> None:
    torch.set_num_threads(1)
    extra = {
        "fit": [_checkpointer(out / "ckpt"), _Note(out)],
        "resume": [Checkpointer(out / "resumed")],
        "stop": [_StopOnRank(1)],
        "kill": [_DieOnRank()],
    }[scenario]
    learner = _learner(*extra)
    result = learner.fit(3 if scenario == "resume" else 2, resume=resume)
    record = {
        "params": learner.model.state_dict(),
        "metrics": dict(learner.cbstate.metrics),
        "stop": result.stop,
        "steps": learner.progress.step,
        "epoch": learner.progress.epoch,
        "batches": len(learner.data["train"]),
    }
    torch.save(record, out / f"rank{learner.dist.rank}.pt")


# ---- launching --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1]), **extra}


def _spawn(scenario: str, out: Path, world: int = 2, resume: Path | None = None) -> list:
    """`world` ranks with torchrun's environment; returns the Popen objects."""
    port = str(_free_port())
    args = [sys.executable, str(HERE), scenario, str(out)] + ([str(resume)] if resume else [])
    return [
        subprocess.Popen(
            args,
            env=_env(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world)
    ]


def _finish(procs: list, timeout: float = 60) -> list[str]:
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, output in zip(procs, outputs, strict=True):
        assert p.returncode == 0, output
    return outputs


def _records(out: Path, world: int = 2) -> list[dict]:
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fit")
    _finish(_spawn("fit", out))
    return out


# ---- tests -------------------------------------------------------------------------------------


def test_ranks_end_with_identical_parameters(fitted):
    a, b = _records(fitted)
    assert a["batches"] == b["batches"] == 4  # 64 samples / 2 ranks / batch 8
    assert a["steps"] == b["steps"] == 8
    for name, value in a["params"].items():
        torch.testing.assert_close(value, b["params"][name], rtol=0, atol=0)
    # it trained: the parameters moved away from their seeded start
    start = _learner(distributed=False).model.state_dict()
    assert not torch.equal(start["0.weight"], a["params"]["0.weight"])


def test_global_metric_equals_single_process_over_the_same_data(fitted):
    a, b = _records(fitted)
    assert a["metrics"] == b["metrics"]
    learner = _learner(distributed=False)
    learner.model.load_state_dict(a["params"])
    single = learner.evaluate(DataLoader(_data()[1], 8))
    assert a["metrics"]["valid_loss"] == pytest.approx(single["loss"], rel=1e-6)
    assert a["metrics"]["valid_accuracy"] == pytest.approx(single["accuracy"], rel=1e-6)


def test_rank_zero_only_callbacks_run_on_rank_zero_only(fitted):
    assert sorted(f.name for f in fitted.glob("note*")) == ["note0"]
    assert Checkpointer.rank_zero_only and ProgressBar.rank_zero_only and Logger.rank_zero_only
    names = sorted(f.name for f in (fitted / "ckpt").glob("*.pt"))
    assert names == ["epoch0-step2.pt", "epoch0-step4.pt", "epoch1-step6.pt", "epoch1-step8.pt"]


def test_resume_two_ranks_on_one_process(fitted, tmp_path):
    learner = _learner(_checkpointer(tmp_path), _Note(tmp_path), distributed=False)
    with pytest.warns(UserWarning, match="training runs to epoch 3"):
        result = learner.fit(3, resume=fitted / "ckpt")
    assert result.completed and learner.progress.epoch == 3
    # 8 steps on 2 ranks (4 per epoch), then one epoch of 64 samples in batches of 8 alone
    assert learner.progress.step == 16
    assert [r["epoch"] for r in result.history] == [0, 1, 2]


def test_resume_mid_epoch_on_one_process_continues_with_the_unseen_samples(fitted, tmp_path):
    # 2 batches of 8 on each of 2 ranks are the epoch's first 32 shuffled samples, so one
    # process continues at its batch 4, on the other 32
    learner = _learner(_checkpointer(tmp_path), _Note(tmp_path), distributed=False)
    seen: list[torch.Tensor] = []
    learner.model.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].clone()) if module.training else None
    )
    learner.fit(2, resume=fitted / "ckpt" / "epoch0-step2.pt")
    assert learner.progress.step == 2 + 4 + 8
    order = np.concatenate([x for x, _ in DataLoader(_data()[0], 8, shuffle=True, seed=1)])
    rest = torch.cat(seen[:4]).numpy()
    assert sorted(map(tuple, rest)) == sorted(map(tuple, order[32:]))


def test_resume_one_process_on_two_ranks(tmp_path):
    learner = _learner(Checkpointer(tmp_path / "ckpt"), distributed=False)
    learner.fit(1)
    _finish(_spawn("resume", tmp_path, resume=tmp_path / "ckpt"))
    a, b = _records(tmp_path)
    assert a["epoch"] == b["epoch"] == 3
    assert a["steps"] == b["steps"] == 8 + 2 * 4  # 8 steps alone, then 4 per epoch on 2 ranks
    for name, value in a["params"].items():
        torch.testing.assert_close(value, b["params"][name], rtol=0, atol=0)


def test_stop_on_one_rank_stops_both(tmp_path):
    outputs = _finish(_spawn("stop", tmp_path))
    a, b = _records(tmp_path)
    assert a["steps"] == b["steps"] == 3, outputs
    assert a["stop"].reason is b["stop"].reason is StopReason.REQUESTED
    assert a["stop"].source == "_StopOnRank on rank 1"
    assert b["stop"].source == "_StopOnRank"


def test_a_killed_rank_makes_the_other_fail_with_a_clear_error(tmp_path):
    procs = _spawn("kill", tmp_path)
    t0 = time.monotonic()
    output = procs[0].communicate(timeout=60)[0]
    procs[1].wait(timeout=10)
    assert procs[1].returncode == -signal.SIGKILL
    assert procs[0].returncode != 0
    assert "DistributedError: rank 0/2: train batch 2 failed: another rank died" in output, output
    assert time.monotonic() - t0 < 60


def test_two_nodes_as_two_torchrun_launchers(tmp_path):
    port = str(_free_port())
    launchers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node-rank",
                str(node),
                "--nproc-per-node",
                "1",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
                str(HERE),
                "resume",
                str(tmp_path),
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in range(2)
    ]
    _finish(launchers, timeout=90)
    a, b = _records(tmp_path)
    assert a["steps"] == b["steps"] == 12  # 3 epochs of 4 batches per rank
    for name, value in a["params"].items():
        torch.testing.assert_close(value, b["params"][name], rtol=0, atol=0)


TINY_CONFIG = """
epochs = 2
out = "run"
[model]
name = "simple_cnn"
args = { widths = [4, 8] }
[data]
limit_train = 128
limit_valid = 64
batch_size = 32
"""


def test_weft_train_nproc_2(tmp_path, monkeypatch, capfd):
    from weft.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(HERE.parents[1]))
    (tmp_path / "config.toml").write_text(TINY_CONFIG)
    assert main(["train", "config.toml", "--nproc", "2"]) == 0
    out, err = capfd.readouterr()
    # one summary (rank 0's): 128 samples in batches of 32 on 2 ranks are 2 steps per epoch
    assert out.count("finished: valid_loss") == 1
    assert "run/checkpoints/epoch1-step4.pt" in out
    assert err.count("epoch 1 valid:") == 1  # the progress lines of rank 0 alone


def test_weft_train_nproc_must_be_positive(tmp_path, monkeypatch, capsys):
    from weft.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(TINY_CONFIG)
    assert main(["train", "config.toml", "--nproc", "0"]) == 2
    assert "--nproc must be at least 1; got 0" in capsys.readouterr().err


def test_shards_cover_every_sample_once_per_epoch_in_a_new_order():
    loader = DataLoader(np.arange(64), batch_size=8, shuffle=True, seed=5)
    shards = [loader.shard(rank, 2) for rank in range(2)]
    orders = []
    for _epoch in range(2):
        parts = [np.concatenate(list(shard)) for shard in shards]
        assert len(shards[0]) == len(shards[1]) == 4
        assert not set(parts[0]) & set(parts[1])
        assert sorted(np.concatenate(parts)) == list(range(64))
        orders.append(parts[0])
    assert not np.array_equal(orders[0], orders[1])  # reshuffled each epoch, alike on all ranks


def test_a_remainder_is_padded_or_dropped_as_asked():
    loader = DataLoader(np.arange(9), batch_size=2)
    padded = [np.concatenate(list(loader.shard(r, 2, remainder="pad"))) for r in range(2)]
    assert [list(p) for p in padded] == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 0]]
    dropped = [np.concatenate(list(loader.shard(r, 2, remainder="drop"))) for r in range(2)]
    assert [list(d) for d in dropped] == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_data_that_cannot_be_sharded_is_refused():
    context = Context(0, 2, 0, torch.device("cpu"), 10.0)
    assert context.shard([1, 2, 3, 4], "train") == [1, 3]  # a list of batches: by batch
    unsampled = torch.utils.data.DataLoader(list(range(8)), batch_size=2)
    with pytest.raises(ValueError, match=r"cannot shard the valid data \(DataLoader\) by rank"):
        context.shard(unsampled, "valid")


def test_distributed_true_outside_a_launch_says_how_to_launch(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DistributedError, match=r"not launched by torchrun \(missing RANK"):
        _learner(distributed=True)


def test_a_bad_remainder_is_refused():
    with pytest.raises(ValueError, match="remainder must be one of"):
        Learner(torch.nn.Linear(1, 1), None, None, distributed=True, dist_remainder="keep")


if __name__ == "__main__":
    _main(sys.argv[1], Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
