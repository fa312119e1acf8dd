"""Batches to tensors and onto a device; weft.data itself stays free of torch."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch

from weft.data import DataLoader, mapobs
from weft.data.device import prefetch, to_tensor

Pair = namedtuple("Pair", "image label")


def test_to_tensor_keeps_structure_and_leaves_strings_alone():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    batch = {
        "pair": Pair(image, np.array([1.5, 2.5])),
        "names": ["a", "b"],
        "raw": np.array(["x", "y"]),
        "list": [np.zeros(2, np.int64)],
    }
    out = to_tensor(batch)
    assert isinstance(out["pair"], Pair)
    assert out["pair"].image.dtype == torch.uint8 and out["pair"].label.dtype == torch.float64
    assert out["names"] == ["a", "b"] and out["raw"] is batch["raw"]
    assert isinstance(out["list"][0], torch.Tensor)
    out["pair"].image[0, 0] = 99  # on the CPU the tensor shares the array's memory
    assert image[0, 0] == 99


def test_to_tensor_copies_read_only_arrays_and_moves_to_a_device():
    frozen = np.frombuffer(b"\x01\x02\x03", dtype=np.uint8)
    tensor = to_tensor(frozen, device="cpu")
    assert tensor.tolist() == [1, 2, 3] and tensor.device.type == "cpu"
    tensor[0] = 7
    assert frozen[0] == 1


def test_prefetch_on_the_cpu_converts_every_batch_in_order():
    data = mapobs(lambda i: (np.full(2, i, np.float32), i), np.arange(10))
    expected = list(DataLoader(data, 4))
    got = list(prefetch(DataLoader(data, 4, workers=2), "cpu"))
    assert len(got) == 3
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        assert isinstance(x, torch.Tensor) and torch.equal(x, torch.from_numpy(ex))
        assert torch.equal(y, torch.from_numpy(ey))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_prefetch_on_cuda_overlaps_copies_and_gives_the_same_batches():
    batches = [(np.full((64, 3), k, np.float32), np.arange(64) + k) for k in range(5)]
    got = list(prefetch(iter(batches), "cuda"))
    assert len(got) == 5
    for (x, y), (ex, ey) in zip(got, batches, strict=True):
        assert x.is_cuda and y.is_cuda
        assert torch.equal(x.cpu(), torch.from_numpy(ex)) and torch.equal(
            y.cpu(), torch.from_numpy(ey)
        )
    assert list(prefetch([], "cuda")) == []
