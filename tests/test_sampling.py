import math

import numpy as np
import pytest

from src.data.sampling import centre_indices, dense_indices, multi_clip_indices, tsn_train_indices, twice_sample_indices


@pytest.mark.parametrize("n,t", [(3, 8), (8, 8), (9, 8), (37, 8), (300, 8), (50, 12)])
def test_centre_indices_formula(n, t):
    expected = [min(n, math.floor(n / (2 * t) + i * n / t) + 1) for i in range(t)]
    assert centre_indices(n, t) == expected
    assert all(1 <= i <= n for i in expected)


def test_centre_indices_examples():
    assert centre_indices(8, 8) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert centre_indices(80, 8) == [6, 16, 26, 36, 46, 56, 66, 76]
    assert centre_indices(4, 8) == [1, 1, 2, 2, 3, 3, 4, 4]  # short video: frames repeat


@pytest.mark.parametrize("n,t", [(8, 8), (9, 8), (37, 8), (300, 8)])
def test_tsn_train_one_random_frame_per_segment(n, t):
    d = n // t
    for seed in range(20):
        idx = tsn_train_indices(n, t, np.random.default_rng(seed))
        assert len(idx) == t
        for i, j in enumerate(idx):
            assert i * d + 1 <= j <= i * d + d  # inside segment i of length d
    # every frame of a segment can be drawn
    draws = {tsn_train_indices(37, 8, np.random.default_rng(s))[0] for s in range(200)}
    assert draws == set(range(1, 37 // 8 + 1))


def test_tsn_train_short_video_repeats_frame_one():
    assert tsn_train_indices(5, 8, np.random.default_rng(0)) == [1] * 8


def test_multi_clip_and_twice_sampling():
    assert multi_clip_indices(80, 8, 1) == [centre_indices(80, 8)]
    clips = multi_clip_indices(80, 8, 2)
    assert clips[0] == [math.floor(10 * (i + 0.25)) + 1 for i in range(8)]
    assert clips[1] == [math.floor(10 * (i + 0.75)) + 1 for i in range(8)]
    assert twice_sample_indices(80, 8) == [centre_indices(80, 8), [10 * i + 1 for i in range(8)]]


def test_dense_indices():
    assert dense_indices(100, 8, 2) == [(42 + 2 * i) + 1 for i in range(8)]
    assert dense_indices(10, 8, 2) == [1, 3, 5, 7, 9, 1, 3, 5]
    idx = dense_indices(100, 8, 4, np.random.default_rng(0))
    assert np.all(np.diff(idx) == 4)


def test_official_sampler_reads_frame_one_for_short_videos():
    from src.data.sampling import eval_clips_indices

    assert eval_clips_indices("official", 8, 8) == [[1] * 8]       # n <= T: frame 1, T times
    assert eval_clips_indices("official", 5, 8) == [[1] * 8]
    assert eval_clips_indices("official", 80, 8) == [centre_indices(80, 8)]
    assert eval_clips_indices("uniform", 5, 8) == [centre_indices(5, 8)]  # the default spreads short videos


def test_dense_test_sampling_is_tsm_s():
    from src.data.sampling import dense_clips_indices, eval_clips_indices

    clips = dense_clips_indices(200, 8, 10)  # stride 64 / 8 = 8, starts linspace(0, 136, 10) truncated
    starts = [int(x) for x in np.linspace(0, 136, 10)]
    assert clips == [[s + 8 * i + 1 for i in range(8)] for s in starts]
    assert dense_clips_indices(20, 8, 2) == [[(8 * i) % 20 + 1 for i in range(8)]] * 2  # short: wraps, one start
    assert eval_clips_indices("dense", 200, 8, 10) == clips
    assert eval_clips_indices("twice", 80, 8, 1) == twice_sample_indices(80, 8)


def test_unknown_sampler_is_named():
    from src.data.sampling import eval_clips_indices

    with pytest.raises(ValueError, match="'nope'.*uniform"):
        eval_clips_indices("nope", 10, 8)
