import numpy as np
import pytest
import torch

from src.data import transforms as tf


def ramp_clip(t=2, h=48, w=64):
    """uint8 (T, H, W, 3) whose red channel is the column index and green the row index."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)
    return torch.from_numpy(np.stack([img] * t))


def test_crop_sizes_and_13_offsets():
    sizes = tf.crop_sizes(240, 320, 224)
    cands = (240, 210, 180, 158)  # 240 x (1, .875, .75, .66); only sizes within 3 px of 224 would snap to it
    assert set(sizes) == {(a, b) for a in cands for b in cands if abs(cands.index(a) - cands.index(b)) <= 1}
    assert (224, 224) in tf.crop_sizes(256, 256, 224)  # 256 x .875 = 224
    offs = tf.fixed_offsets(240, 320, 180, 210)
    assert len(offs) == 13 and len(set(offs)) == 13
    hs, ws = (240 - 180) // 4, (320 - 210) // 4
    assert (0, 0) in offs and (4 * hs, 4 * ws) in offs and (2 * hs, 2 * ws) in offs and (hs, 3 * ws) in offs


def test_train_transform_shape_same_crop_for_all_frames():
    clip = ramp_clip(t=3)
    out = tf.train_transform(clip, (48, 64), 32, flip=False, rng=np.random.default_rng(0))
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], out[1])
    torch.testing.assert_close(out[1], out[2])


def test_flip_only_when_allowed():
    clip = ramp_clip()
    flips = [tf.train_transform(clip, (48, 64), 48, True, np.random.default_rng(s))[0, 0, 0, 0] >
             tf.train_transform(clip, (48, 64), 48, True, np.random.default_rng(s))[0, 0, 0, -1] for s in range(20)]
    assert any(flips) and not all(flips)  # red increases left to right unless flipped
    for s in range(20):
        x = tf.train_transform(clip, (48, 64), 48, False, np.random.default_rng(s))
        assert x[0, 0, 0, 0] < x[0, 0, 0, -1]


def test_eval_centre_crop_and_normalisation():
    clip = ramp_clip(h=48, w=64)
    out = tf.eval_transform(clip, (48, 64), 32)
    red = out[0, 0] * 0.229 + 0.485  # undo the normalisation: value / 255
    assert red[0, 0] * 255 == pytest.approx(16, abs=1e-3)  # left edge of the centre crop is column 16
    three = tf.eval_transform(clip, (48, 64), 32, num_crops=3)
    assert three.shape == (3, 2, 3, 32, 32)
    assert (three[0, 0, 0, 0, 0] * 0.229 + 0.485) * 255 == pytest.approx(0, abs=1e-3)
    assert (three[2, 0, 0, 0, 0] * 0.229 + 0.485) * 255 == pytest.approx(32, abs=1e-3)


def test_built_transforms_match_the_functions():
    clip = ramp_clip(t=4)
    train = tf.build_train_transform((48, 64), 32, flip=True)
    torch.testing.assert_close(train(clip, np.random.default_rng(5)),
                               tf.train_transform(clip, (48, 64), 32, True, np.random.default_rng(5)))
    assert tf.build_eval_transform((48, 64), 32, num_crops=3)(clip).shape == (3, 4, 3, 32, 32)
    with pytest.raises(ValueError, match="test_num_crops=2"):
        tf.build_eval_transform((48, 64), 32, num_crops=2)
