"""weft's Learner vs a raw PyTorch loop vs Lightning 2.6.6, interleaved, in one process.

(a0) the loop's bookkeeping alone: an identity model, a loss whose backward does nothing and
an optimizer without parameters, so a step costs only what the loop itself adds; prints the
extra microseconds per step of weft (checked, unchecked, without callbacks) over a raw loop;
(a) a tiny MLP (32 -> 64 -> 10, batches of 64): per-step overhead dominates;
(b) a small CNN (two 3x3 convs on 3x32x32, batches of 32).
Same model initialisation, same prebuilt batches (tensors), same number of steps, SGD, one
thread. Variants:
- raw: forward, loss, backward, step, zero_grad, plus the epoch loss average and a NaN check
  (what weft's default callbacks do);
- weft: `Learner(...)` with its default callbacks (Metrics, History, ProgressBar, StopOnNaN),
  permission checks on; weft-unchecked: the same with `check_access=False`;
- lightning: a LightningModule whose training_step returns the loss, Trainer with logging,
  progress bar, checkpointing and model summary off; its batches come from a DataLoader that
  hands out the same prebuilt batches (batch_size=None). Timed from its 10th batch to its last
  (its per-fit start-up is printed apart), the others over the whole fit.
Prints the median time per step of each and the median of the per-round ratios to raw.

(c) the async logger: a callback that sleeps 20 ms per step (slow I/O), synchronous vs
`asynchronous = True`, on the CNN of (b) with batches of 64 (a step takes longer than 20 ms
here);
prints the fit's wall time per step (sleeping costs no CPU time) and the ratio to the same loop without a logger. While the
logger keeps up, it overlaps the steps; a logger slower than the step falls behind (at most
`max_pending` events) and `fit` waits for it at the end.

    .venv/bin/python benchmarks/loop.py [--rounds 21] [--skip-lightning] [--skip-async] [--only a]
"""

from __future__ import annotations

import argparse
import gc
import io
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from weft.train import READ, Callback, Learner, ProgressBar, TrainingPhase, for_phases

torch.set_num_threads(1)
LOSS = nn.functional.cross_entropy
# CPU time of the training thread: the box is shared, and wall time would count the time other
# jobs hold the cores. Every contender computes on this one thread (torch uses one thread, the
# data are prebuilt, nothing runs in workers), so CPU time is what each loop costs.
clock = time.thread_time


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))


def cnn(width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 8 * 8, 10),
    )  # fmt: skip


def batches(
    shape: tuple[int, ...], batch: int, steps: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch, *shape, generator=g), torch.randint(0, 10, (batch,), generator=g))
        for _ in range(steps)
    ]


def fresh(make: Callable[[], nn.Module]) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = make()
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


# ---- the contenders: each returns seconds per step ------------------------------------------


def raw(make, data) -> float:
    model, opt = fresh(make)
    model.train()
    start = clock()
    total, count = 0.0, 0
    for x, y in data:
        loss = LOSS(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        if not math.isfinite(value):
            break
        total += value * len(y)
        count += len(y)
    _ = total / count
    return (clock() - start) / len(data)


def weft(make, data, check_access: bool = True, extra: tuple = (), timer=clock) -> float:
    model, opt = fresh(make)
    quiet_bar = ProgressBar(stream=io.StringIO())  # the default bar, printing into a buffer
    learner = Learner(
        model,
        LOSS,
        opt,
        data=(data, None),
        callbacks=[quiet_bar, *extra],
        check_access=check_access,
    )
    start = timer()
    learner.fit(1)
    return (timer() - start) / len(data)


class _LoopTimer:
    """Lightning callback: time from the 10th training batch to the end of the last."""

    def __init__(self) -> None:
        import lightning.pytorch as pl

        outer = self

        class Timer(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, idx):
                if idx == 10:
                    outer.t0 = clock()

            def on_train_batch_end(self, trainer, module, outputs, batch, idx):
                outer.t1, outer.n = clock(), idx - 10 + 1

        self.callback = Timer()


def lightning(make, data) -> tuple[float, float]:
    import lightning.pytorch as pl

    model, opt = fresh(make)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch, idx):
            x, y = batch
            return LOSS(self.model(x), y)

        def configure_optimizers(self):
            return opt

    class Prebuilt(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, i: int):
            return data[i]

    timer = _LoopTimer()
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[timer.callback],
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(Prebuilt(), batch_size=None, shuffle=False)
    start = clock()
    trainer.fit(Module(), train_dataloaders=loader)
    total = clock() - start
    per_step = (timer.t1 - timer.t0) / timer.n
    return per_step, total - per_step * len(data)


# ---- (a0): weft's own cost per step --------------------------------------------------------


class _FreeLoss(torch.Tensor):
    """A scalar loss whose backward does nothing: the step is only the loop's bookkeeping."""

    __torch_function__ = torch._C._disabled_torch_function_impl  # plain-tensor speed

    def backward(self, *args, **kwargs) -> None:
        pass


def bookkeeping(rounds: int) -> None:
    loss = torch.tensor(0.5).as_subclass(_FreeLoss)
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    data = [(x, y)] * 20000

    def loss_fn(p, t):
        return loss

    def make():
        return nn.Identity()

    def fresh_free():
        return make(), torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)

    def raw_free() -> float:
        model, opt = fresh_free()
        start = clock()
        total, count = 0.0, 0
        for xb, yb in data:
            out = loss_fn(model(xb), yb)
            out.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            value = out.item()
            if not math.isfinite(value):
                break
            total += value * len(yb)
            count += len(yb)
        return (clock() - start) / len(data)

    def weft_free(check_access: bool = True, callbacks: tuple | None = None) -> float:
        model, opt = fresh_free()
        cbs = [ProgressBar(stream=io.StringIO())] if callbacks is None else list(callbacks)
        learner = Learner(model, loss_fn, opt, data=(data, None), callbacks=cbs,
                          check_access=check_access, defaults=callbacks is None)  # fmt: skip
        start = clock()
        learner.fit(1)
        return (clock() - start) / len(data)

    variants = {
        "raw": raw_free,
        "weft": weft_free,
        "weft-unchecked": lambda: weft_free(check_access=False),
        "weft, no callbacks": lambda: weft_free(callbacks=()),
    }
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            times[n].append(variants[n]())
    print(f"\n(a0) bookkeeping only (identity model, free backward, empty SGD), {len(data)} steps x "
          f"{rounds} rounds")  # fmt: skip
    print(f"  {'variant':<20}{'median us/step':>16}{'extra us/step vs raw':>22}")
    for n in names:
        extra = [t - b for t, b in zip(times[n], times["raw"], strict=True)]
        print(f"  {n:<20}{statistics.median(times[n]) * 1e6:>16.2f}"
              f"{statistics.median(extra) * 1e6:>22.2f}")  # fmt: skip


# ---- (a), (b): loop overhead -----------------------------------------------------------------


def compare(name: str, make, data, rounds: int, with_lightning: bool) -> None:
    contenders: dict[str, Callable[[], float]] = {
        "raw": lambda: raw(make, data),
        "weft": lambda: weft(make, data),
        "weft-unchecked": lambda: weft(make, data, check_access=False),
    }
    startup: list[float] = []
    if with_lightning:

        def run_lightning() -> float:
            per_step, rest = lightning(make, data)
            startup.append(rest)
            return per_step

        contenders["lightning"] = run_lightning
    names = list(contenders)
    for n in names:  # warm-up: allocator, autograd, imports
        contenders[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            gc.collect()
            times[n].append(contenders[n]())
    print(f"\n({name}) {len(data)} steps x {rounds} interleaved rounds")
    print(f"  {'variant':<16}{'median us/step':>16}{'ratio to raw':>14}{'quartiles':>16}")
    for n in names:
        ratios = [t / b for t, b in zip(times[n], times["raw"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"  {n:<16}{statistics.median(times[n]) * 1e6:>16.1f}"
              f"{statistics.median(ratios):>14.3f}{f'{q1:.3f}-{q3:.3f}':>16}")  # fmt: skip
    if startup:
        print(f"  lightning start-up and tear-down per fit (not in its per-step time): "
              f"{statistics.median(startup) * 1e3:.0f} ms")  # fmt: skip


# ---- (c): a slow logger, synchronous vs asynchronous ------------------------------------------


class SlowLogger(Callback):
    """Pretends to write the loss somewhere slow: 20 ms per training step."""

    access = {"step.loss": READ}  # noqa: RUF012

    def __init__(self, asynchronous: bool) -> None:
        self.asynchronous = asynchronous
        self.logged = 0

    @for_phases(TrainingPhase)
    def on_step_end(self, learner) -> None:
        _ = learner.step.loss.item()
        time.sleep(0.020)
        self.logged += 1


def async_demo(rounds: int) -> None:
    make = cnn
    data = batches((3, 32, 32), 64, 30)
    variants = {
        "no logger": lambda: weft(make, data, timer=time.perf_counter),
        "sync logger": lambda: weft(
            make, data, extra=(SlowLogger(False),), timer=time.perf_counter
        ),
        "async logger": lambda: weft(
            make, data, extra=(SlowLogger(True),), timer=time.perf_counter
        ),
    }
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        variants[n]()
    for r in range(rounds):
        for n in names[r % 3 :] + names[: r % 3]:
            times[n].append(variants[n]())
    print(f"\n(c) a logger sleeping 20 ms per step; the CNN of (b), batch 64, {len(data)} steps x "
          f"{rounds} rounds; fit() wall time, including draining the async worker")  # fmt: skip
    print(f"  {'variant':<16}{'median ms/step':>16}{'ratio to none':>14}")
    for n in names:
        ratios = [t / b for t, b in zip(times[n], times["no logger"], strict=True)]
        print(
            f"  {n:<16}{statistics.median(times[n]) * 1e3:>16.2f}{statistics.median(ratios):>14.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--skip-lightning", action="store_true")
    parser.add_argument("--skip-async", action="store_true")
    parser.add_argument("--only", choices=("a0", "a", "b", "c"), help="run one part")
    args = parser.parse_args()
    with_lightning = not args.skip_lightning
    if with_lightning:
        import logging

        import lightning

        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        print(f"lightning {lightning.__version__}", end="; ")
    print(f"torch {torch.__version__}, 1 thread, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    parts = {args.only} if args.only else {"a0", "a", "b", "c"}
    if "a0" in parts:
        bookkeeping(max(args.rounds // 2, 3))
    if "a" in parts:
        compare("a: tiny MLP", mlp, batches((32,), 64, 1000), args.rounds, with_lightning)
    if "b" in parts:
        cnn_data = batches((3, 32, 32), 32, 60)
        compare("b: small CNN", cnn, cnn_data, max(args.rounds // 2, 3), with_lightning)
    if "c" in parts and not args.skip_async:
        async_demo(max(args.rounds // 5, 3))


if __name__ == "__main__":
    main()
