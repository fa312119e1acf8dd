"""Samples/s of one process vs two (DistributedDataParallel over gloo) on this machine, for a
compute-bound CNN trained by weft's Learner.

Settings, each a fresh set of processes, interleaved round by round:
- 1p x 1t: one process, one torch thread (the per-core baseline);
- 1p x 2t: one process, two torch threads (intra-op parallelism over both cores);
- 2p x 1t: two processes of one thread each, launched with torchrun's environment on
  127.0.0.1, each on half of every global batch.
The global batch is the same for all (one process: 64; two: 32 each), so every setting does
the same optimizer steps on the same samples. Each process times its training steps after a
warm-up epoch; samples/s = global samples / rank 0's time. Prints the median over rounds and
the median of the per-round ratios of 2p x 1t to each one-process setting.

    .venv/bin/python benchmarks/distributed.py [--rounds 5] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

GLOBAL_BATCH = 64
SETTINGS = {"1p x 1t": (1, 1), "1p x 2t": (1, 2), "2p x 1t": (2, 1)}


def _worker(steps: int, threads: int) -> None:
    import numpy as np
    import torch

    from weft.data import DataLoader
    from weft.train import Callback, Learner, TrainingPhase, for_phases

    torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    batch = GLOBAL_BATCH // world
    rng = np.random.default_rng(0)
    # two epochs: the first warms up (allocator, DDP buckets), the second is timed
    n = steps * GLOBAL_BATCH
    x = rng.normal(size=(n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    torch.manual_seed(0)
    conv = [torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU()]
    conv += [torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    conv += [torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    model = torch.nn.Sequential(*conv, torch.nn.Flatten(), torch.nn.Linear(64 * 8 * 8, 10))

    class Clock(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        @for_phases(TrainingPhase)
        def on_epoch_begin(self, learner) -> None:
            self.times.append(time.perf_counter())

        @for_phases(TrainingPhase)
        def on_epoch_end(self, learner) -> None:
            self.times.append(time.perf_counter())

    clock = Clock()
    learner = Learner(
        model,
        torch.nn.functional.cross_entropy,
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        data=(DataLoader((x, y), batch_size=batch, shuffle=True), None),
        callbacks=[clock],
    )
    learner.fit(2)
    seconds = clock.times[3] - clock.times[2]
    if learner.dist is None or learner.dist.is_zero:
        print(json.dumps({"samples_per_s": n / seconds, "steps": len(learner.data["train"])}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(setting: str, steps: int) -> float:
    procs, threads = SETTINGS[setting]
    port = str(_free_port())
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env["OMP_NUM_THREADS"] = str(threads)
    args = [sys.executable, __file__, "--worker", "--steps", str(steps), "--threads", str(threads)]
    launched = []
    for rank in range(procs):
        ranked = dict(env)
        if procs > 1:
            ranked.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(procs))
            ranked.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        launched.append(
            subprocess.Popen(args, env=ranked, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    results = [p.communicate(timeout=600) for p in launched]
    for p, (_out, err) in zip(launched, results, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"{setting}: a process failed:\n{err.decode()}")
    record = json.loads(results[0][0].decode().strip().splitlines()[-1])
    assert record["steps"] == steps, record
    return record["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.steps, args.threads)
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; CNN 3-32-64-64 on 3x32x32, global batch {GLOBAL_BATCH}, "
          f"{args.steps} timed steps, {args.rounds} rounds")  # fmt: skip
    rates: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))
        for setting in order:
            rates[setting].append(_run(setting, args.steps))
        print(f"round {r}: " + "  ".join(f"{s} {rates[s][-1]:.0f}/s" for s in SETTINGS))
    print("\nsetting    samples/s (median, min-max)")
    for s, values in rates.items():
        print(f"{s:9}  {statistics.median(values):8.0f} ({min(values):.0f}-{max(values):.0f})")
    two = rates["2p x 1t"]
    for base in ("1p x 1t", "1p x 2t"):
        ratios = [a / b for a, b in zip(two, rates[base], strict=True)]
        print(
            f"2p x 1t / {base}: {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
