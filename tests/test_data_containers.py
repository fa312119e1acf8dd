"""The getobs/numobs protocol on built-in types, registered types and bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from weft.data import copy_into, getobs, getobs_into, numobs, obs_source, register


def test_arrays_index_the_first_axis_and_gather_in_one_call():
    x = np.arange(24).reshape(6, 4)
    assert numobs(x) == 6
    np.testing.assert_array_equal(getobs(x, 2), x[2])
    np.testing.assert_array_equal(getobs(x, [4, 0, 4]), x[[4, 0, 4]])
    np.testing.assert_array_equal(getobs(x, -1), x[5])
    np.testing.assert_array_equal(getobs(x, slice(1, 3)), x[1:3])
    np.testing.assert_array_equal(getobs(x, np.array([True, False] * 3)), x[::2])
    assert getobs(x) is x


def test_lists_and_sequences_give_lists_of_observations():
    paths = ["a.jpg", "b.jpg", "c.jpg"]
    assert numobs(paths) == 3
    assert getobs(paths, 1) == "b.jpg"
    assert getobs(paths, [2, 0]) == ["c.jpg", "a.jpg"]
    assert getobs(range(10), [3, 4]) == [3, 4]


def test_tuples_and_dicts_recurse_and_keep_their_structure():
    data = {"x": np.zeros((5, 2)), "y": (np.arange(5), ["a", "b", "c", "d", "e"])}
    assert numobs(data) == 5
    obs = getobs(data, 3)
    assert obs["y"] == (3, "d")
    batch = getobs(data, [0, 4])
    assert batch["x"].shape == (2, 2)
    assert batch["y"][1] == ["a", "e"]


def test_mismatched_lengths_name_the_members():
    with pytest.raises(ValueError, match=r"same number of observations; got \[0\]: 5, \[1\]: 4"):
        numobs((np.zeros(5), np.zeros(4)))
    with pytest.raises(ValueError, match=r"\['image'\]: 3, \['label'\]: 2"):
        getobs({"image": np.zeros((3, 2)), "label": [1, 2]}, 0)


def test_bad_indices_name_the_index_and_the_container():
    x = np.zeros((4, 2))
    with pytest.raises(IndexError, match="index 7 is out of range for array with 4 observations"):
        getobs(x, 7)
    with pytest.raises(IndexError, match="index -5 is out of range for array with 4 observations"):
        getobs(x, [0, -5])
    with pytest.raises(IndexError, match="1-d integer array; got array of shape"):
        getobs(x, np.array([0.5, 1.0]))
    with pytest.raises(IndexError, match="boolean mask of shape"):
        getobs(x, np.array([True, False]))
    with pytest.raises(IndexError, match="out of range for list with 3 observations"):
        getobs([1, 2, 3], 3)


def test_things_that_are_not_containers_say_how_to_become_one():
    with pytest.raises(TypeError, match=r"int is not a data container.*weft.data.register"):
        numobs(5)
    with pytest.raises(TypeError, match="0-d array holds no observations"):
        numobs(np.array(1.0))


class Squares:
    def __init__(self, n):
        self.n = n


class Ranges:
    """A user container with the dunder protocol and a known source per observation."""

    def __numobs__(self):
        return 3

    def __getobs__(self, idx):
        return idx * 10 if isinstance(idx, int) else list(idx * 10)

    def __obs_source__(self, idx):
        return f"ranges.bin#{idx}"


def test_registration_plugs_in_foreign_types():
    register(Squares, numobs=lambda d: d.n, getobs=lambda d, i: np.asarray(i) ** 2)
    sq = Squares(5)
    assert numobs(sq) == 5
    np.testing.assert_array_equal(getobs(sq, [1, 3]), [1, 9])
    with pytest.raises(IndexError, match="index 5 is out of range for Squares with 5 observations"):
        getobs(sq, 5)


def test_dunder_protocol_and_sources():
    r = Ranges()
    assert numobs(r) == 3
    assert getobs(r, 2) == 20
    assert getobs(r, [0, 1]) == [0, 10]
    assert obs_source(r, 1) == "ranges.bin#1"
    assert obs_source(np.zeros(3), 1) is None


def test_getobs_into_fills_the_buffer_in_place():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    buffer = (np.empty((2, 3), np.float32), np.empty(2, np.int64))
    out = getobs_into(buffer, (x, y), [7, 1])
    assert out[0] is buffer[0] and out[1] is buffer[1]
    np.testing.assert_array_equal(buffer[0], x[[7, 1]])
    np.testing.assert_array_equal(buffer[1], [7, 1])
    # A buffer that does not fit (the last, partial batch) gives a fresh result.
    out = getobs_into(buffer, (x, y), [9])
    assert out[0] is not buffer[0] and out[0].shape == (1, 3)


def test_copy_into_keeps_what_does_not_fit():
    buffer = {"a": np.zeros(3), "b": np.zeros(2)}
    out = copy_into(buffer, {"a": np.ones(3), "b": np.ones(5)})
    assert out["a"] is buffer["a"] and buffer["a"].sum() == 3
    assert out["b"].shape == (5,) and buffer["b"].sum() == 0


def test_weft_data_imports_no_torch():
    code = "import sys, weft.data; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
