"""The default collate: stacking observations row by row gives what stacking them at once gives,
into reused buffers, with no observation kept alive past its copy."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from weft.data import batchview, collate, getobs_into, mapobs, shuffleobs
from weft.data.collate import collate_into, collate_rows
from weft.data.rng import epoch_context


def test_collate_stacks_lists_and_reports_shape_mismatch():
    batch = collate([(np.zeros(3), 1), (np.ones(3), 2)])
    assert batch[0].shape == (2, 3) and batch[1].tolist() == [1, 2]
    assert collate(["a", "b"]) == ["a", "b"]
    assert collate([True, False]).dtype == bool
    assert collate([]) == []
    with pytest.raises(ValueError, match=r"different shapes \(2,\), \(3,\)"):
        collate([np.zeros(3), np.zeros(2)])


def test_nested_structures_keep_their_shape_and_strings_stay_lists():
    observations = [
        {"x": (np.full((2, 2), i, np.float32), i), "name": f"n{i}", "w": 0.5 * i} for i in range(3)
    ]
    batch = collate(observations)
    assert list(batch) == ["x", "name", "w"]
    images, labels = batch["x"]
    assert images.shape == (3, 2, 2) and images.dtype == np.float32
    assert images[2, 1, 1] == 2 and labels.dtype == np.int64 and labels.tolist() == [0, 1, 2]
    assert batch["name"] == ["n0", "n1", "n2"]
    assert batch["w"].dtype == np.float64 and batch["w"].tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([1, 2.5], np.float64, [1.0, 2.5]),  # an int first, a float later: stacking promotes
        ([np.int64(1), np.int64(2), 2.5], np.float64, [1.0, 2.0, 2.5]),
        ([True, 2], bool, [True, True]),  # a bool first makes the batch bool, as before
        ([1, True], np.int64, [1, 1]),
        ([np.float32(1), 2.5], np.float64, [1.0, 2.5]),
        ([np.int32(1), 5], np.int64, [1, 5]),
        ([1, 2**63], np.float64, [1.0, 2.0**63]),  # beyond int64
        ([np.str_("a"), np.str_("abc")], "<U3", ["a", "abc"]),  # never truncated to the first
    ],
)
def test_a_value_that_does_not_fit_the_first_ones_rows_gives_what_stacking_gives(
    values, dtype, expected
):
    stacked = collate_rows(iter(values), len(values))
    assert stacked.dtype == np.dtype(dtype)
    assert stacked.tolist() == expected


def test_rows_are_written_into_a_buffer_that_fits():
    buffer = {"image": np.empty((3, 4), np.float32), "label": np.empty(3, np.int64)}
    rows = ({"label": i, "image": np.full(4, i, np.float32)} for i in range(3))  # other key order
    out = collate_rows(rows, 3, buffer)
    assert out["image"] is buffer["image"] and out["label"] is buffer["label"]
    assert buffer["image"][:, 0].tolist() == [0, 1, 2] and buffer["label"].tolist() == [0, 1, 2]
    # a mixed batch that still stacks to the buffer's dtype ends up in the buffer
    flags = np.empty(3, bool)
    assert collate_into(flags, [True, 0, 1]) is flags and flags.tolist() == [True, False, True]
    # one that does not comes back fresh
    small = (np.empty((2, 4), np.float32), np.empty(2, np.int64))
    out = collate_into(small, [(np.zeros(4, np.float32), 1), (np.ones(4, np.float32), 2.5)])
    assert out[0] is small[0] and out[1] is not small[1] and out[1].tolist() == [1.0, 2.5]


def test_observations_are_dropped_once_copied():
    alive = []

    def observations():
        for i in range(5):
            gc.collect()
            alive.append(sum(ref() is not None for ref in refs))
            x = np.full(8, i, np.float32)
            refs.append(weakref.ref(x))
            yield x, i
            del x

    refs: list = []
    batch = collate_rows(observations(), 5)
    assert batch[0][:, 0].tolist() == [0, 1, 2, 3, 4]
    # while one is computed, only the one before is still referenced (by the loop's variable)
    assert alive == [0, 0, 1, 1, 1]


def test_structure_errors_name_the_observation():
    with pytest.raises(
        ValueError, match="observation 2 of the batch has 1 fields, the first has 2"
    ):
        collate([(1, 2), (3, 4), (5,)])
    with pytest.raises(KeyError, match="'b'"):
        collate([{"a": 1, "b": 2}, {"a": 3}])
    with pytest.raises(ValueError, match="collate_rows: expected 3 observations, got 2"):
        collate_rows(iter([1, 2]), 3)


def test_batches_of_a_mapped_view_equal_stacking_each_observation():
    images = np.arange(10 * 6, dtype=np.uint8).reshape(10, 2, 3)

    def scale(obs, rng):
        image, label = obs
        return image.astype(np.float32) * rng.random(), label

    data = mapobs(lambda obs: (obs[0] + 1, obs[1]), mapobs(scale, (images, np.arange(10))))
    batches = batchview(shuffleobs(data), 4)
    buffer = (np.empty((4, 2, 3), np.float32), np.empty(4, np.int64))
    with epoch_context(3, 1):
        order = shuffleobs(data).permutation()
        expected = [data[int(i)] for i in order[4:8]]
        fresh = batches[1]
        filled = getobs_into(buffer, batches, 1)
    assert filled[0] is buffer[0]
    for batch in (fresh, filled):
        np.testing.assert_array_equal(batch[0], np.stack([x for x, _ in expected]))
        assert batch[1].tolist() == [y for _, y in expected]


@pytest.mark.parametrize("width", [1, 2, 3])
def test_tuples_of_any_width_collate_as_stacking_each_field_does(width):
    """Pairs take their own unrolled loop, other tuples the general one: both give `np.stack`
    (or `np.asarray`) of each field, also when a later array or number does not fit the first."""
    fields = [
        [np.full((2, 2), i, np.float32) for i in range(4)],
        [np.int64(i) for i in range(3)] + [2.5],  # the last label promotes the column to float
        [np.zeros(2, np.uint8), np.zeros(2, np.uint8), np.ones(2, np.int16), np.zeros(2)],
    ][:width]
    observations = list(zip(*fields, strict=True))
    batch = collate_rows(iter(observations), 4)
    assert isinstance(batch, tuple) and len(batch) == width
    for got, values in zip(batch, fields, strict=True):
        expected = np.stack(values) if isinstance(values[0], np.ndarray) else np.asarray(values)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="observation 3 of the batch has 4 fields, the first has"):
        collate_rows(iter([*observations[:3], (0, 0, 0, 0)]), 4)
