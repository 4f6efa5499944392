import json

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.readers import FrameFolderReader, SampleReadError, VideoFileReader, cached_frame_counts, count_frames
from src.data.synthetic import write_mp4


def clip(n=10, size=32, seed=0):
    """Smooth frames (JPEG and H.264 keep them within a few grey levels), each with a distinct brightness."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 120, size)[None, :, None] + rng.uniform(0, 40, 3)
    return np.stack([np.broadcast_to(base + 12 * t, (size, size, 3)) for t in range(n)]).clip(0, 255).astype(np.uint8)


def write_frames(folder, frames, template="img_{:05d}.jpg", start=1):
    folder.mkdir(parents=True)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / template.format(start + t), quality=95)


def test_frame_folder_reader_1_based_with_template_and_start_index(tmp_path):
    frames = clip()
    write_frames(tmp_path / "my vidéo", frames, "image_{:05d}.jpg", start=0)
    reader = FrameFolderReader(tmp_path, "image_{:05d}.jpg", start_index=0)
    out = reader.read("my vidéo", [1, 3, 3, 10])
    assert out.shape == (4, 32, 32, 3) and out.dtype == torch.uint8
    want = frames[[0, 2, 2, 9]].astype(int)
    assert np.abs(out.numpy().astype(int) - want).max() <= 6


def test_frame_folder_missing_frame_names_the_path(tmp_path):
    write_frames(tmp_path / "v", clip(5))
    with pytest.raises(SampleReadError, match="v/img_00006.jpg"):
        FrameFolderReader(tmp_path, "img_{:05d}.jpg").read("v", [1, 6])
    (tmp_path / "v" / "img_00002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SampleReadError, match="img_00002.jpg"):
        FrameFolderReader(tmp_path, "img_{:05d}.jpg").read("v", [2])


def test_video_reader_decodes_wanted_frames_in_order(tmp_path):
    frames = clip(12)
    write_mp4(tmp_path / "a b.mp4", frames)
    assert count_frames(tmp_path / "a b.mp4") == 12
    idx = [12, 1, 5, 5, 2]
    out = VideoFileReader(tmp_path).read("a b.mp4", idx).numpy().astype(int)
    assert out.shape == (5, 32, 32, 3)
    assert np.abs(out - frames[[i - 1 for i in idx]].astype(int)).mean() < 4  # H.264 crf 18 + yuv420p
    means = out.mean(axis=(1, 2, 3))
    assert means[0] > means[2] > means[4] > means[1]  # the brightness ramp: frames come in the order asked


def test_video_reader_errors_name_the_path(tmp_path):
    write_mp4(tmp_path / "v.mp4", clip(6))
    with pytest.raises(SampleReadError, match="v.mp4.*ends before frame 7"):
        VideoFileReader(tmp_path).read("v.mp4", [1, 7])
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "v.mp4").read_bytes()[:300])
    for name in ("empty.mp4", "cut.mp4", "absent.mp4"):
        with pytest.raises(SampleReadError, match=name):
            VideoFileReader(tmp_path).read(name, [1])
        with pytest.raises(SampleReadError, match=name):
            count_frames(tmp_path / name)


def test_frame_counts_are_cached_beside_the_list(tmp_path, monkeypatch):
    write_mp4(tmp_path / "a.mp4", clip(7))
    write_mp4(tmp_path / "b.mp4", clip(9))
    (tmp_path / "bad.mp4").write_bytes(b"xx")
    lst = tmp_path / "train.txt"
    counts = cached_frame_counts(lst, tmp_path, ["a.mp4", "b.mp4", "bad.mp4"])
    assert counts == {"a.mp4": 7, "b.mp4": 9, "bad.mp4": 0}
    assert len(json.loads((tmp_path / "train.txt.counts.json").read_text())) == 3

    def fail(_):
        raise AssertionError("counted again")

    monkeypatch.setattr("src.data.readers.count_frames", fail)
    assert cached_frame_counts(lst, tmp_path, ["b.mp4", "a.mp4"]) == {"b.mp4": 9, "a.mp4": 7}
    assert not list(tmp_path.glob(".train.txt.counts.json.*"))  # the atomic write left no temporary file
