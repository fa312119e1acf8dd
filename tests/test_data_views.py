"""Every lazy view: contents, laziness, composition, randomness from (seed, epoch, index), errors."""

from __future__ import annotations

import numpy as np
import pytest

from weft.data import (
    ObsView,
    batchview,
    epoch_context,
    filterobs,
    getobs,
    joinobs,
    kfolds,
    mapobs,
    numobs,
    obs_source,
    obsview,
    oversample,
    randobs,
    sample_rng,
    shardobs,
    shuffleobs,
    splitobs,
    undersample,
)

X = np.arange(40, dtype=np.float32).reshape(20, 2)
Y = np.arange(20) % 4


class Files:
    """A container that knows the file behind each observation."""

    def __init__(self, n):
        self.n = n

    def __numobs__(self):
        return self.n

    def __getobs__(self, idx):
        return idx

    def __obs_source__(self, idx):
        return f"img_{idx}.png"


def test_obsview_is_lazy_and_nested_views_collapse():
    calls = []
    data = mapobs(lambda x: calls.append(x) or x, list(range(10)))
    view = obsview(obsview(data, [9, 7, 5, 3]), [3, 0])
    assert calls == []
    assert isinstance(view, ObsView) and view.data is data
    assert list(view) == [3, 9]
    assert calls == [3, 9]


def test_obsview_behaves_as_a_sequence():
    view = obsview((X, Y), np.arange(5, 10))
    assert len(view) == numobs(view) == 5
    x, y = view[0]
    np.testing.assert_array_equal(x, X[5])
    assert y == Y[5]
    xb, _ = view[1:3]
    np.testing.assert_array_equal(xb, X[6:8])
    with pytest.raises(IndexError, match="index 5 is out of range for ObsView with 5 observations"):
        view[5]


def test_mapobs_maps_single_observations_and_batches():
    doubled = mapobs(lambda o: (o[0] * 2, o[1]), (X, Y))
    x, _ = doubled[3]
    np.testing.assert_array_equal(x, X[3] * 2)
    batch = doubled[[1, 2]]
    assert isinstance(batch, list) and len(batch) == 2
    vectorised = mapobs(lambda b: (b[0] * 2, b[1]), (X, Y), batched=True)
    xb, _ = vectorised[[1, 2]]
    np.testing.assert_array_equal(xb, X[[1, 2]] * 2)
    x1, _ = vectorised[4]
    np.testing.assert_array_equal(x1, X[4] * 2)
    with pytest.raises(TypeError, match="mapobs needs a function"):
        mapobs(X, Y)


def noisy(x, rng):
    return x + rng.random()


def test_mapobs_rng_depends_on_seed_epoch_and_index_only():
    data = mapobs(noisy, np.zeros(6))
    first = [data[i] for i in range(6)]
    assert len(set(first)) == 6  # each index draws its own value
    assert [data[i] for i in reversed(range(6))] == first[::-1]  # order of access is irrelevant
    with epoch_context(seed=0, epoch=1):
        assert [data[i] for i in range(6)] != first
    with epoch_context(seed=7, epoch=0):
        assert [data[i] for i in range(6)] != first
    # Two random views over the same index draw independent values.
    twice = mapobs(noisy, data)
    assert twice[0] - data[0] != pytest.approx(data[0])


def test_sample_rng_streams_are_reproducible():
    a = sample_rng(5).random(3)
    sample_rng(6).random(100)
    np.testing.assert_array_equal(sample_rng(5).random(3), a)
    assert not np.array_equal(sample_rng(5, stream=2).random(3), a)


def test_shuffleobs_follows_the_epoch_unless_fixed():
    view = shuffleobs(np.arange(50))
    order0 = view[:]
    assert sorted(order0) == list(range(50)) and not np.array_equal(order0, np.arange(50))
    np.testing.assert_array_equal(view[:], order0)
    with epoch_context(seed=0, epoch=1):
        assert not np.array_equal(view[:], order0)
    fixed = shuffleobs(np.arange(50), seed=3, epoch=0)
    with epoch_context(seed=0, epoch=5):
        inside = fixed[:]
    np.testing.assert_array_equal(inside, fixed[:])
    assert obs_source(shuffleobs(Files(4), seed=1, epoch=0), 0) == f"img_{fixed_perm(4)[0]}.png"


def fixed_perm(n):
    return shuffleobs(np.arange(n), seed=1, epoch=0)[:]


def test_splitobs_fractions_shuffle_and_stratification():
    train, valid = splitobs((X, Y), 0.8)
    assert (len(train), len(valid)) == (16, 4)
    np.testing.assert_array_equal(valid[:][1], Y[16:])
    a, b, c = splitobs(np.arange(100), (0.7, 0.2))
    assert (len(a), len(b), len(c)) == (70, 20, 10)
    s1, s2 = splitobs(np.arange(100), 0.5, shuffle=True, seed=1)
    assert sorted(np.concatenate([s1[:], s2[:]])) == list(range(100))
    np.testing.assert_array_equal(splitobs(np.arange(100), 0.5, shuffle=True, seed=1)[0][:], s1[:])
    labels = np.array([0] * 80 + [1] * 20)
    _, va = splitobs(np.arange(100), 0.75, stratified=labels)
    assert np.bincount(labels[va[:]]).tolist() == [20, 5]
    with pytest.raises(
        ValueError, match=r"fractions in \(0, 1\) that sum to at most 1; got \(0.7, 0.5\)"
    ):
        splitobs(X, (0.7, 0.5))
    with pytest.raises(
        ValueError, match=r"labels must be one per observation \(20\); got shape \(3,\)"
    ):
        splitobs(X, 0.5, stratified=[1, 2, 3])


def test_batchview_collates_and_handles_the_partial_batch():
    batches = batchview((X, Y), 8)
    assert len(batches) == 3
    xb, yb = batches[0]
    assert xb.shape == (8, 2) and yb.shape == (8,)
    assert batches[2][0].shape == (4, 2)
    assert len(batchview(X, 8, partial=False)) == 2
    dicts = batchview([{"name": f"n{i}", "v": np.full(2, i)} for i in range(5)], 2)
    assert dicts[2]["name"] == ["n4"] and dicts[0]["v"].shape == (2, 2)
    custom = batchview((X, Y), 4, collate=lambda obs: len(obs))
    assert custom[4] == 4
    with pytest.raises(ValueError, match="batch_size must be a positive integer; got 0"):
        batchview(X, 0)
    with pytest.raises(IndexError, match="index 3 is out of range for BatchView"):
        batches[3]


def test_batchview_into_buffers_gathers_in_place():
    from weft.data import getobs_into

    batches = batchview(obsview((X, Y), np.arange(19, -1, -1)), 8)
    buffer = (np.empty((8, 2), np.float32), np.empty(8, np.int64))
    out = getobs_into(buffer, batches, 1)
    assert out[0] is buffer[0]
    np.testing.assert_array_equal(out[0], X[11:3:-1])


def test_joinobs_concatenates_and_keeps_request_order():
    joined = joinobs(np.arange(5), np.arange(100, 103))
    assert len(joined) == 8
    assert joined[6] == 101
    np.testing.assert_array_equal(joined[[7, 0, 5, 4]], [102, 0, 100, 4])
    lists = joinobs(["a", "b"], ["c"])
    assert lists[[2, 0]] == ["c", "a"]
    assert obs_source(joinobs(Files(2), Files(3)), 3) == "img_1.png"
    with pytest.raises(ValueError, match="at least one container"):
        joinobs()


def test_filterobs_keeps_matching_observations():
    kept = filterobs(lambda o: o[1] == 2, (X, Y))
    assert len(kept) == 5
    assert all(y == 2 for _, y in kept)


def test_kfolds_cover_every_observation_once_as_validation():
    folds = kfolds(np.arange(10), 3)
    assert [len(v) for _, v in folds] == [4, 3, 3]
    seen = np.concatenate([v[:] for _, v in folds])
    assert sorted(seen) == list(range(10))
    for train, valid in folds:
        assert set(train[:]).isdisjoint(valid[:])
    with pytest.raises(ValueError, match="k must be between 2 and the number of observations"):
        kfolds(np.arange(3), 4)


def test_over_and_undersampling_balance_labels():
    labels = np.array([0] * 12 + [1] * 3)
    data = np.arange(15)
    over = oversample(data, labels)
    assert np.bincount(labels[over[:]]).tolist() == [12, 12]
    under = undersample(data, labels)
    assert np.bincount(labels[under[:]]).tolist() == [3, 3]
    by_function = undersample(data, lambda x: int(x >= 12))
    assert len(by_function) == 6


def test_randobs_draws_with_a_seed():
    assert randobs(np.arange(10), seed=1) == randobs(np.arange(10), seed=1)
    assert randobs(np.arange(10), 4, seed=2).shape == (4,)


def test_shardobs_gives_disjoint_equal_shares():
    shares = [shardobs(np.arange(10), r, 3)[:] for r in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3]
    assert len(set(np.concatenate(shares))) == 9
    padded = [shardobs(np.arange(10), r, 3, remainder="pad")[:] for r in range(3)]
    assert set(np.concatenate(padded)) == set(range(10))
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\); got rank=2, world=2"):
        shardobs(np.arange(4), 2, 2)


def test_shuffled_shards_agree_across_ranks_and_change_per_epoch():
    shuffled = shuffleobs(np.arange(12))
    with epoch_context(seed=4, epoch=2):
        shares = [shardobs(shuffled, r, 2)[:] for r in range(2)]
    assert sorted(np.concatenate(shares)) == list(range(12))


def test_views_compose_into_a_pipeline():
    pipeline = batchview(mapobs(noisy, shuffleobs(np.zeros(10), seed=0, epoch=0)), 4)
    assert [b.shape for b in pipeline] == [(4,), (4,), (2,)]
    assert getobs(pipeline, 0).dtype == np.float64


def test_sample_rng_keeps_the_low_64_bits_of_index_and_stream_on_both_paths():
    from weft.data.rng import _Resettable

    fast = _Resettable((1, 2))
    assert fast.in_place is not None  # numpy's Philox layout is readable here
    slow = _Resettable((1, 2))
    slow.in_place = None  # the state-setter path, taken where that layout is unknown
    for index, stream in [(-1, 3), (2**64 + 5, 2**64 + 1), (7, 0)]:
        draws = fast.at(index, stream).random(3)
        np.testing.assert_array_equal(draws, slow.at(index, stream).random(3))
    np.testing.assert_array_equal(fast.at(-1, 3).random(2), fast.at(2**64 - 1, 3).random(2))
