"""No copy-on-read growth: process workers over Python objects keep their memory flat, because
plain lists are packed into one buffer before the workers fork."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from weft.data import DataLoader, Packed, getobs, mapobs, numobs, packed
from weft.data.packed import pack_lists

RECORDS = [{"path": f"/data/images/{i:07d}.jpg", "label": i % 10} for i in range(200_000)]


def path_length_plus_label(record):
    return len(record["path"]) + record["label"]


class Records:
    """A user container holding a list: not a plain list, so the loader cannot pack it."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def worker_growth_mb(container) -> float:
    """How much the workers' private memory (USS) grows over two epochs, after the first batch."""
    earlier = {p.pid for p in psutil.Process().children()}
    with DataLoader(mapobs(path_length_plus_label, container), 1000, workers=2) as loader:
        batches = iter(loader)
        first = next(batches)
        workers = [
            p
            for p in psutil.Process().children()
            if p.pid not in earlier and "resource_tracker" not in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        before = sum(p.memory_full_info().uss for p in workers)
        total = int(first.sum()) + sum(int(b.sum()) for b in batches)
        total += sum(int(b.sum()) for b in loader)
        after = sum(p.memory_full_info().uss for p in workers)
    assert total == 2 * sum(len(r["path"]) + r["label"] for r in RECORDS)
    return (after - before) / 2**20


def test_workers_memory_stays_flat_over_a_list_of_python_objects():
    assert worker_growth_mb(RECORDS) < 8
    # The same records behind a container the loader cannot pack do grow (copy-on-read), which
    # shows that the measurement sees the effect; `packed` is the fix users apply there.
    assert worker_growth_mb(Records(RECORDS)) > 25
    assert worker_growth_mb(Records(packed(RECORDS))) < 8


def test_packed_is_a_container_of_the_same_objects():
    items = [{"a": i, "s": "x" * i} for i in range(50)] + [np.arange(3), None]
    box = packed(items)
    assert numobs(box) == len(box) == 52
    assert getobs(box, 7) == items[7] and box[-2].tolist() == [0, 1, 2] and box[51] is None
    assert getobs(box, np.array([3, 1])) == [items[3], items[1]]
    with pytest.raises(
        IndexError, match="index 52 is out of range for Packed with 52 observations"
    ):
        box[52]


def test_pack_lists_packs_view_data_and_leaves_the_original_alone():
    names = [f"n{i}" for i in range(5000)]
    view = mapobs(len, (names, np.arange(5000)))
    packed_view = pack_lists(view)
    assert isinstance(packed_view.data[0], Packed) and view.data[0] is names
    assert packed_view.stream == view.stream
    assert getobs(packed_view, np.arange(3)) == getobs(view, np.arange(3))
    assert pack_lists(names[:10]) == names[:10]  # short lists are left as they are
    unpicklable = [lambda: None] * 5000
    assert pack_lists(unpicklable) is unpicklable
