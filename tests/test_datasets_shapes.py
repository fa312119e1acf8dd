"""The generated shapes set: deterministic, consistent labels/masks/keypoints, batch form."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from weft.data import getobs, numobs
from weft.datasets import SHAPES, Shapes


def test_deterministic_from_seed_and_index():
    a, b = Shapes(50, seed=3), Shapes(50, seed=3)
    for i in (0, 17, 49):
        x, y = getobs(a, i), getobs(b, i)
        np.testing.assert_array_equal(x["image"], y["image"])
        assert x["label"] == y["label"]
    assert not np.array_equal(getobs(Shapes(50, seed=4), 0)["image"], getobs(a, 0)["image"])
    copy = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(getobs(copy, 7)["mask"], getobs(a, 7)["mask"])


def test_batch_form_and_consistency():
    data = Shapes(200, seed=0, size=40)
    batch = getobs(data, np.arange(200))
    assert numobs(data) == 200
    assert batch["image"].shape == (200, 40, 40, 3) and batch["image"].dtype == np.uint8
    assert batch["mask"].shape == (200, 40, 40) and batch["keypoints"].shape == (200, 5, 2)
    assert set(np.bincount(batch["label"], minlength=len(SHAPES)).nonzero()[0]) == set(range(5))
    for i in range(200):
        ids = np.unique(batch["mask"][i])
        assert ids.tolist() == [0, batch["label"][i] + 1]  # background + its own class id
        cx, cy = batch["keypoints"][i, 0]
        assert batch["mask"][i, int(cy), int(cx)] == batch["label"][i] + 1
    assert (batch["keypoints"] >= 0).all() and (batch["keypoints"] <= 40).all()


def test_classes_subset_and_bad_arguments():
    data = Shapes(30, classes=["circle", "star"])
    assert set(getobs(data, np.arange(30))["label"].tolist()) == {0, 1}
    with pytest.raises(ValueError, match=r"unknown classes \['hexagon'\]; choose from \['circle'"):
        Shapes(classes=["hexagon"])
    with pytest.raises(ValueError, match="needs n >= 0 and size >= 8, got n=10, size=4"):
        Shapes(10, size=4)
