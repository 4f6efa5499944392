import hashlib

import av
import numpy as np
import pytest

from src.data.lists import parse_list
from src.data.readers import FrameFolderReader, VideoFileReader, count_frames
from src.data.synthetic import CLASSES, POSITION, RADIUS, disc_states, generate, render_video
from tests.helpers import TINY_SYNTHETIC


def digest(root):
    h = hashlib.sha256()
    for name in ("train_frames.txt", "val_frames.txt", "train_videos.txt", "val_videos.txt", "classes.txt"):
        h.update((root / name).read_bytes())
    for media in sorted((root / "videos").glob("*.mp4")) + sorted((root / "frames").rglob("*.jpg")):
        h.update(media.read_bytes())  # the encoders are deterministic too: same bytes, not only same pixels
    return h.hexdigest()


def decoded(root):
    recs = parse_list(root / "train_frames.txt", "frames")
    frames = FrameFolderReader(root / "frames", "img_{:05d}.jpg")
    video = VideoFileReader(root / "videos")
    out = []
    for r in recs[:6]:
        idx = list(range(1, r.num_frames + 1))
        out.append((frames.read(r.path, idx).numpy(), video.read(r.path + ".mp4", idx).numpy()))
    return out


def test_same_seed_same_bytes_and_pixels(tmp_path, tiny_data_root):
    again = generate(tmp_path / "again", **TINY_SYNTHETIC)
    first = tiny_data_root / "synthetic"
    assert digest(first) == digest(again)
    for (fa, va), (fb, vb) in zip(decoded(first), decoded(again), strict=True):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(va, vb)
    other = generate(tmp_path / "other", **{**TINY_SYNTHETIC, "seed": 4})
    assert digest(other) != digest(first)


def test_videos_decode_with_pyav_and_match_the_frames(tiny_data_root):
    root = tiny_data_root / "synthetic"
    for rec in parse_list(root / "val_frames.txt", "frames"):
        path = root / "videos" / f"{rec.path}.mp4"
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
        assert count_frames(path) == rec.num_frames
    for jpeg, mp4 in decoded(root):
        assert jpeg.shape == mp4.shape
        assert np.abs(jpeg.astype(int) - mp4.astype(int)).mean() < 12  # JPEG vs H.264 of the same frames


def test_no_single_frame_tells_the_class_but_the_order_does():
    """For every class, the disc's (x, y, radius) in a random frame has the same distribution (a joint 3x3x3
    histogram over 600 videos matches across classes); only the order of the states tells the class."""
    rng = np.random.default_rng(0)
    hists = []
    for label in range(len(CLASSES)):
        states = [disc_states(rng, label, 64, int(rng.integers(10, 28))) for _ in range(600)]
        s = np.concatenate(states)
        h, _ = np.histogramdd(s, bins=3, range=[np.array(POSITION) * 64] * 2 + [np.array(RADIUS) * 64])
        hists.append(h.ravel() / h.sum())
        diffs = np.concatenate([np.diff(st, axis=0) for st in states])
        axis, sign = label // 2, 1 if label % 2 == 0 else -1
        assert (np.sign(diffs[:, axis]) == sign).all() and (diffs[:, [a for a in range(3) if a != axis]] == 0).all()
    hists = np.array(hists)
    assert np.abs(hists - 1 / 27).max() < 0.012  # uniform, whatever the class (sampling noise ~0.003)


def test_rendered_frames_have_class_independent_statistics():
    rng = np.random.default_rng(1)
    stats = []
    for label in range(len(CLASSES)):
        v = np.stack([render_video(rng, label, 32, 18) for _ in range(30)]).astype(float)
        disc = (v.mean(-1) > 140).sum(axis=(2, 3)).astype(float)
        disc[disc > 150] = np.nan  # noise frames
        stats.append(np.stack([np.nanmean(disc, 1), v.mean(axis=(1, 2, 3, 4))], 1))  # per video
    stats = np.stack(stats)  # (class, video, statistic)
    se = stats.std(axis=(0, 1)) / np.sqrt(stats.shape[1])
    assert (np.abs(stats.mean(1) - stats.mean(axis=(0, 1))) < 4 * se).all()


def test_refuses_to_overwrite_a_different_dataset(tmp_path):
    generate(tmp_path / "d", **TINY_SYNTHETIC)
    with pytest.raises(FileExistsError, match="another data_root"):
        generate(tmp_path / "d", **{**TINY_SYNTHETIC, "seed": 9})
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "x", **TINY_SYNTHETIC)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
