"""The loader: identical batches whatever the workers, resumption, errors, dead workers, Ctrl-C,
cleanup of processes and shared memory. Real threads and processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from weft.data import (
    DataLoader,
    Loader,
    LoaderError,
    WorkerDiedError,
    batchview,
    epoch_context,
    getobs,
    mapobs,
    shuffleobs,
)

REPO = Path(__file__).resolve().parents[1]
X = np.arange(50 * 6, dtype=np.uint8).reshape(50, 2, 3)
Y = np.arange(50)


def flip_and_noise(obs, rng):
    """A per-sample random transform: the test of (seed, epoch, index) randomness."""
    image, label = obs
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return image.astype(np.float32) + rng.normal(size=image.shape).astype(np.float32), label


def with_pid(obs):
    return obs, os.getpid()


def slow_with_pid(obs):
    time.sleep(0.02)
    return obs, os.getpid()


def as_lists(batches):
    return [[np.asarray(leaf).tolist() for leaf in batch] for batch in batches]


def shm_segments(pid: int | None = None) -> list[str]:
    """The shared-memory slots that process `pid` (this one by default) has in /dev/shm."""
    prefix = f"weft-{os.getpid() if pid is None else pid}-"
    return [name for name in os.listdir("/dev/shm") if name.startswith(prefix)]


def alive(pids) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


CONFIGS = [
    dict(workers=0),
    dict(workers=1, parallel="thread"),
    dict(workers=3, parallel="thread"),
    dict(workers=1, parallel="process"),
    dict(workers=3, parallel="process"),
]


def test_batches_are_identical_whatever_the_workers():
    data = mapobs(flip_and_noise, (X, Y))
    runs = []
    for config in CONFIGS:
        with DataLoader(data, batch_size=8, shuffle=True, seed=3, **config) as loader:
            runs.append(as_lists(b for _ in range(2) for b in loader))
    assert len(runs[0]) == 2 * 7  # 50 = 6 full batches of 8 and a partial one, two epochs
    for run in runs[1:]:
        assert run == runs[0]
    assert runs[0][:7] != runs[0][7:]  # the second epoch reshuffles and redraws


def test_loader_batch_k_is_getobs_in_the_epoch_context():
    batches = batchview(shuffleobs(mapobs(flip_and_noise, (X, Y))), 16)
    loader = Loader(batches, workers=2, seed=11)
    loader.set_epoch(4)
    got = as_lists(loader)
    with epoch_context(11, 4):
        expected = as_lists(getobs(batches, k) for k in range(len(batches)))
    assert got == expected
    assert loader.epoch == 5
    loader.close()


def test_batches_kept_by_the_consumer_are_never_overwritten():
    # Batches live in shared-memory slots without a copy; a slot is reused only when its batch is
    # garbage. Keeping every batch exhausts the slots, and later batches travel pickled.
    data = mapobs(flip_and_noise, (X, Y))
    serial = DataLoader(data, 4, shuffle=True)
    expected = [as_lists(serial) for _ in range(2)]
    with DataLoader(data, 4, shuffle=True, workers=2, prefetch=1) as loader:
        kept = [list(loader) for _ in range(2)]
        assert [as_lists(epoch) for epoch in kept] == expected
        last = kept[1][-1]
    # A batch outlives its loader: the slot's name is gone at once, its memory when the batch is.
    assert shm_segments() == []
    assert as_lists([last]) == expected[1][-1:]


def test_dataloader_is_the_composed_form():
    data = mapobs(flip_and_noise, (X, Y))
    spelled = DataLoader(data, batch_size=7, shuffle=True, drop_last=True, workers=2, seed=5)
    composed = Loader(batchview(shuffleobs(data), 7, partial=False), workers=2, seed=5)
    with spelled, composed:
        assert len(spelled) == len(composed) == 7
        assert as_lists(spelled) == as_lists(composed)
        assert as_lists(spelled) == as_lists(composed)  # and the next epoch too


def test_prefetch_is_bounded_and_workers_persist_across_epochs():
    computed = []
    data = mapobs(lambda i: computed.append(i) or i, np.arange(40))
    with DataLoader(data, 2, workers=2, parallel="thread", prefetch=2) as loader:
        batches = iter(loader)
        next(batches)
        time.sleep(0.3)  # a slow consumer: the workers stop at workers * prefetch batches
        assert sorted(computed) == list(range(8))
        list(batches)
    with DataLoader(mapobs(with_pid, X), 5, workers=2) as loader:
        first, second = ({int(p) for _, ps in loader for p in ps} for _ in range(2))
        assert len(first) == 2 and first == second


def test_out_of_order_yields_every_batch_once():
    data = mapobs(flip_and_noise, (X, Y))
    with DataLoader(data, batch_size=4, workers=3, in_order=False) as loader:
        got = as_lists(loader)
    expected = as_lists(DataLoader(data, batch_size=4))
    assert sorted(map(str, got)) == sorted(map(str, expected))


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[2], CONFIGS[4]], ids=str)
def test_resume_mid_epoch_continues_at_exactly_the_next_batch(config):
    def make():
        return DataLoader(mapobs(flip_and_noise, (X, Y)), 6, shuffle=True, seed=9, **config)

    with make() as whole:
        uninterrupted = [as_lists(whole) for _ in range(3)]
    with make() as first:
        first.set_epoch(1)
        for k, _ in enumerate(first, 1):
            if k == 4:
                break
        state = first.state_dict()
    assert state == {"seed": 9, "epoch": 1, "batches": 4}
    with make() as resumed:
        resumed.load_state_dict(state)
        assert resumed.state_dict() == state
        assert as_lists(resumed) == uninterrupted[1][4:]
        assert as_lists(resumed) == uninterrupted[2]  # then carries on with the next epoch


def test_out_of_order_state_resumes_without_repeats():
    data = mapobs(flip_and_noise, (X, Y))
    with DataLoader(data, 2, workers=2, in_order=False) as loader:
        seen = []
        for batch in loader:
            seen.append(str(as_lists([batch])))
            if len(seen) == 9:
                break
        state = loader.state_dict()
    with DataLoader(data, 2, workers=2, in_order=False) as resumed:
        resumed.load_state_dict(state)
        rest = [str(as_lists([b])) for b in resumed]
    assert sorted(seen + rest) == sorted(str(as_lists([b])) for b in DataLoader(data, 2))


def test_bad_arguments_and_states_are_explained():
    with pytest.raises(ValueError, match="workers must be an integer >= 0; got -1"):
        Loader(batchview(X, 2), workers=-1)
    with pytest.raises(ValueError, match=r"backend must be one of \('process', 'thread'\)"):
        Loader(batchview(X, 2), backend="gpu")
    with pytest.raises(ValueError, match="prefetch must be an integer >= 1; got 0"):
        Loader(batchview(X, 2), prefetch=0)
    with pytest.raises(TypeError, match="int is not a data container"):
        Loader(3)
    with pytest.raises(ValueError, match="parallel must be 'process', 'thread' or None; got 'mpi'"):
        DataLoader(X, 4, parallel="mpi", workers=2)
    loader = Loader(batchview(X, 10))
    with pytest.raises(KeyError, match=r"the state lacks \['batches', 'epoch'\]"):
        loader.load_state_dict({"seed": 0})
    with pytest.raises(ValueError, match="consumed 9 batches, but this loader has 5 per epoch"):
        loader.load_state_dict({"seed": 0, "epoch": 0, "batches": 9})


def test_a_newer_iterator_supersedes_the_older():
    loader = Loader(batchview(X, 10))
    old = iter(loader)
    next(old)
    assert len(list(loader)) == 5
    with pytest.raises(RuntimeError, match="superseded by a newer iter"):
        next(old)
    with Loader(batchview(X, 10), workers=1) as loader:
        running = iter(loader)
        next(running)
        loader.close()
        with pytest.raises(RuntimeError, match=r"superseded by a newer iter\(\) or a close\(\)"):
            next(running)


def test_partial_last_batch_variable_sizes_and_strings_cross_processes():
    def ragged(i):
        return {"name": f"item-{i}", "values": np.arange(i % 3 + 1, dtype=np.float64)}

    data = mapobs(ragged, np.arange(11))
    expected = list(DataLoader(data, 4, collate=list))
    with DataLoader(data, 4, collate=list, workers=2) as loader:
        got = list(loader)
    assert [[o["name"] for o in b] for b in got] == [[o["name"] for o in b] for b in expected]
    assert all(
        np.array_equal(a["values"], b["values"])
        for bg, be in zip(got, expected, strict=True)
        for a, b in zip(bg, be, strict=True)
    )
    # Fixed shapes: batches travel in slots; the smaller last batch and strings too.
    named = mapobs(lambda i: {"x": np.full(3, i, np.int16), "name": str(i)}, np.arange(10))
    with DataLoader(named, 4, workers=2) as loader:
        batches = [b for _ in range(2) for b in loader]
    assert [b["x"].shape for b in batches[:3]] == [(4, 3), (4, 3), (2, 3)]
    assert batches[2]["name"] == ["8", "9"] and batches[2]["x"][:, 0].tolist() == [8, 9]
    assert as_lists([(b["x"],) for b in batches[3:]]) == as_lists([(b["x"],) for b in batches[:3]])


class Photos:
    """A container that reads files, so errors can name them."""

    def __init__(self, n, broken):
        self.n, self.broken = n, broken

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.broken:
            raise ValueError(f"corrupt JPEG data in {self.__obs_source__(i)}")
        return np.full((2, 2), i, np.uint8)

    def __obs_source__(self, i):
        return f"/photos/{i:04d}.jpg"


class Picky(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)


def raise_picky(obs):
    raise Picky(7, "cannot be rebuilt from a message")


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[2], CONFIGS[4]], ids=str)
def test_errors_name_the_batch_the_sample_and_the_file(config):
    with DataLoader(Photos(40, broken=13), 5, **config) as loader:
        with pytest.raises(ValueError) as caught:
            list(loader)
        message = str(caught.value)
        assert message.startswith("loading batch 2 of epoch 0, sample 13 (/photos/0013.jpg)")
        assert "ValueError: corrupt JPEG data in /photos/0013.jpg" in message
        assert "Original traceback:" in message and "in __getitem__" in message
        assert isinstance(caught.value.__cause__, ValueError)
        # The loader stays usable: the unfinished epoch runs again, and fails at the same place.
        got = []
        with pytest.raises(ValueError, match="batch 2 of epoch 0, sample 13"):
            got.extend(loader)
        assert len(got) == 2
    loader = DataLoader(mapobs(raise_picky, X), 5, **config)
    with (
        loader,
        pytest.raises(LoaderError, match=r"batch 0 of epoch 0, sample 0 failed in .*Picky"),
    ):
        list(loader)


def slow_first_failing_third(i):
    if i == 0:
        time.sleep(0.3)
    if i == 2:
        raise ValueError("third")
    return i


@pytest.mark.parametrize("parallel", ["thread", "process"])
def test_in_order_a_failure_waits_for_its_turn(parallel):
    got = []
    loader = DataLoader(
        mapobs(slow_first_failing_third, np.arange(6)), 1, workers=3, parallel=parallel
    )
    with loader, pytest.raises(ValueError, match="batch 2 of epoch 0, sample 2"):
        got.extend(int(b[0]) for b in loader)
    assert got == [0, 1]


def test_a_failing_collate_is_named_as_such():
    def bad_collate(observations):
        raise KeyError("label")

    with pytest.raises(KeyError, match="every sample of the batch loads on its own") as caught:
        list(DataLoader(X, 5, collate=bad_collate, workers=1))
    assert "loading batch 0 of epoch 0 failed in loader worker 0" in str(caught.value)


def test_a_killed_worker_raises_within_seconds_and_leaves_nothing_behind():
    # One worker, two batches in flight: while batch 0 is consumed, the worker computes batch 1.
    loader = DataLoader(mapobs(slow_with_pid, X), 5, workers=1, prefetch=2)
    iterator = iter(loader)
    (_, pids) = next(iterator)
    victim = int(pids[0])
    os.kill(victim, signal.SIGKILL)
    start = time.monotonic()
    died = rf"loader worker 0 \(pid {victim}\) was killed by signal SIGKILL"
    with pytest.raises(WorkerDiedError, match=died + " while loading batch 1 of epoch 0"):
        list(iterator)
    assert time.monotonic() - start < 10
    assert shm_segments() == []
    assert alive(set(pids)) == []
    # Iterating again starts fresh workers.
    fresh = {int(p) for _, ps in loader for p in ps}
    assert fresh and not fresh & {int(p) for p in pids}
    loader.close()
    assert shm_segments() == []
    assert alive(fresh) == []


def test_a_worker_killed_after_an_abandoned_epoch_is_reported_on_the_next():
    with DataLoader(mapobs(slow_with_pid, X), 5, workers=1, prefetch=2) as loader:
        (_, pids) = next(iter(loader))  # then abandoned, with batch 1 in flight
        os.kill(int(pids[0]), signal.SIGKILL)
        with pytest.raises(WorkerDiedError, match="while loading batch 1 of epoch 0"):
            list(loader)
        assert len(list(loader)) == 10


def test_close_and_the_finaliser_stop_workers_and_free_shared_memory():
    with DataLoader(mapobs(with_pid, X), 5, workers=2) as loader:
        pids = {int(p) for _, ps in loader for p in ps}
        assert len(pids) == 2 and shm_segments() != []
    assert alive(pids) == [] and shm_segments() == []

    loader = DataLoader(mapobs(with_pid, X), 5, workers=2)
    pids = {int(p) for _, ps in loader for p in ps}
    del loader  # the finaliser runs when the loader is collected
    deadline = time.monotonic() + 5
    while (alive(pids) or shm_segments()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(pids) == [] and shm_segments() == []


def test_functions_that_cannot_cross_to_spawned_workers_are_explained():
    loader = DataLoader(mapobs(lambda x: x, X), 5, workers=1)
    loader.start_method = "spawn"
    with pytest.raises(TypeError, match="cannot send the data to spawn worker processes"):
        list(loader)


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from weft.data import DataLoader, mapobs

    def slow(obs):
        time.sleep(0.05)
        return obs, os.getpid()

    loader = DataLoader(mapobs(slow, np.zeros((10_000, 4))), 8, workers=2)
    for _, pids in loader:
        print(*sorted(set(pids.tolist())), flush=True)
    """
)


def run_and_interrupt(sig: int, to_group: bool) -> tuple[str, set[int], int]:
    """Run CTRL_C_SCRIPT until it has loaded a few batches, send it `sig`; return its stderr,
    its workers' pids and its own pid."""
    process = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # and Ctrl-C's default action, which a shell's background job (`make test &`) would
        # pass down as "ignored"
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        pids = set()
        for _ in range(4):
            pids |= {int(p) for p in process.stdout.readline().split()}
        if to_group:
            os.killpg(process.pid, sig)
        else:
            os.kill(process.pid, sig)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    return err, pids, process.pid


def wait_until_gone(pids: set[int], main_pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (alive(pids) or shm_segments(main_pid)):
        time.sleep(0.05)
    assert pids and alive(pids) == []
    assert shm_segments(main_pid) == []


def test_ctrl_c_shuts_the_workers_down():
    err, pids, main_pid = run_and_interrupt(signal.SIGINT, to_group=True)  # Ctrl-C in a terminal
    assert "KeyboardInterrupt" in err and "Traceback" in err
    assert err.count("KeyboardInterrupt") == 1  # workers stay quiet; the main process decides
    wait_until_gone(pids, main_pid)


def test_a_killed_main_process_leaves_no_workers_or_shared_memory():
    # Workers notice their parent is gone; the resource tracker unlinks the slots it left.
    _, pids, main_pid = run_and_interrupt(signal.SIGKILL, to_group=False)
    wait_until_gone(pids, main_pid)


def start_a_process_loader() -> None:
    with DataLoader(X, 10, workers=1) as loader:
        next(iter(loader))


def test_slots_left_by_a_main_process_killed_with_its_resource_tracker_are_removed():
    # SIGKILL to the whole process group takes the resource tracker too: nothing unlinked the
    # slots, until the next loader starts.
    _, pids, main_pid = run_and_interrupt(signal.SIGKILL, to_group=True)
    deadline = time.monotonic() + 10
    while alive(pids | {main_pid}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shm_segments(main_pid) != []
    start_a_process_loader()
    assert shm_segments(main_pid) == []


def test_slots_of_live_processes_are_never_removed():
    import fcntl

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    names = {
        "live owner": f"weft-{sleeper.pid}-0badc0de-0",
        "dead owner": f"weft-{int(gone.stdout)}-0badc0de-0",
        # a dead pid, but locked: the owner lives in another pid namespace (a container)
        "locked": f"weft-{int(gone.stdout)}-0badc0de-1",
        "not weft's": f"weft-{int(gone.stdout)}-other",
    }
    paths = {key: Path("/dev/shm", name) for key, name in names.items()}
    try:
        for path in paths.values():
            path.write_bytes(b"slot")
        with open(paths["locked"], "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            start_a_process_loader()
            assert {key for key, path in paths.items() if path.exists()} == {
                "live owner",
                "locked",
                "not weft's",
            }
        start_a_process_loader()  # the lock is released: its owner is gone
        assert not paths["locked"].exists() and paths["live owner"].exists()
    finally:
        sleeper.kill()
        for path in paths.values():
            path.unlink(missing_ok=True)


FORK_AFTER_OPENCV = """
import cv2, numpy as np
from weft.data import DataLoader, mapobs
image = np.random.default_rng(0).integers(0, 255, (512, 512, 3), np.uint8)
for _ in range(20):  # leaves OpenCV's thread pool idle but alive, as augmentation does
    cv2.warpAffine(image, np.eye(2, 3), (512, 512))
    cv2.GaussianBlur(image, (5, 5), 0)
data = mapobs(lambda i: cv2.GaussianBlur(image[:64, :64], (3, 3), 0), np.arange(8))
print(len(list(DataLoader(data, 4, workers=2, parallel="process"))))
"""


def test_process_workers_start_after_opencv_used_its_thread_pool():
    # A forked worker inherits the pool's locks but not its threads; without shutting the pool
    # down around the fork, the worker hangs in OpenCV for ever.
    done = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_OPENCV], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
