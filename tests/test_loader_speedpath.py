"""The fast training-clip path (decode into one buffer, uint8 geometry, contiguous normalisation) against a
plain per-frame PIL pipeline: same frames, same crop, pixels within resampling rounding."""

import numpy as np
import pytest
import torch
from PIL import Image

from src.data import readers, sampling, transforms
from src.data.dataset import VideoDataset
from src.data.lists import VideoRecord
from src.data.readers import FrameFolderReader, SampleReadError, decode_rgb

SCALE, CROP = (240, 320), 224


def textured_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, h, w, 3): a smooth texture drifting by 3 px a frame, so a wrong frame or crop shows."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.uniform(0, 255, (3, h // 8 + 1, (w + 3 * n) // 8 + 1)).astype(np.float32))
    tex = torch.nn.functional.interpolate(small[None], scale_factor=8, mode="bilinear")[0].permute(1, 2, 0)
    return np.stack([tex[:h, 3 * t: 3 * t + w].numpy() for t in range(n)]).clip(0, 255).astype(np.uint8)


def write_folder(folder, frames, ext="jpg"):
    folder.mkdir(parents=True)
    for i, f in enumerate(frames, 1):
        Image.fromarray(f).save(folder / f"{i:05d}.{ext}", quality=90)


def reference_clip(folder, n: int, t: int, epoch: int):
    """Per-frame PIL (open -> resize to SCALE -> crop -> resize to CROP -> flip) with the draws VideoDataset makes
    for item 0 of a one-video list in `epoch` (seed 0). Returns uint8 (T, CROP, CROP, 3), the frame indices and
    (top, left, crop_h, crop_w, flip)."""
    rng = np.random.default_rng((0, epoch, 0))
    indices = sampling.tsn_train_indices(n, t, rng)
    sizes = transforms.crop_sizes(*SCALE, CROP)
    ch, cw = sizes[int(rng.integers(len(sizes)))]
    offsets = transforms.fixed_offsets(*SCALE, ch, cw)
    top, left = offsets[int(rng.integers(len(offsets)))]
    flip = bool(rng.random() < 0.5)
    out = []
    for i in indices:
        im = Image.open(folder / f"{i:05d}.jpg").convert("RGB").resize(SCALE[::-1], Image.BILINEAR)
        im = im.crop((left, top, left + cw, top + ch)).resize((CROP, CROP), Image.BILINEAR)
        out.append(np.asarray(im.transpose(Image.FLIP_LEFT_RIGHT) if flip else im))
    return np.stack(out), indices, (top, left, ch, cw, flip)


def to_uint8_scale(clip: torch.Tensor) -> np.ndarray:
    """Normalised float (T, 3, h, w) -> float (T, h, w, 3) on the 0-255 scale."""
    return ((clip * transforms.STD + transforms.MEAN) * 255).permute(0, 2, 3, 1).numpy()


class SpyReader(FrameFolderReader):
    """Records the frame indices of the last read."""

    def read(self, rel, indices):
        self.last = list(indices)
        return super().read(rel, indices)


@pytest.fixture(params=["simplejpeg", "pil"])
def jpeg_lib(request, monkeypatch):
    """Run a test with simplejpeg decoding (when installed) and with the PIL fallback."""
    if request.param == "pil":
        monkeypatch.setattr(readers, "simplejpeg", None)
    elif readers.simplejpeg is None:
        pytest.skip("simplejpeg not installed")
    return request.param


@pytest.mark.parametrize("size", [SCALE, (180, 256)])  # frames at the scale size (no first resize), and not
def test_training_clip_matches_per_frame_pil(tmp_path, jpeg_lib, size):
    n, t = 24, 8
    write_folder(tmp_path / "v", textured_frames(n, *size))
    reader = SpyReader(tmp_path)
    ds = VideoDataset([VideoRecord("v", n, (0,))], reader, t, train=True, scale_size=SCALE, crop_size=CROP, flip=True)
    flips = set()
    for epoch in range(8):
        ours = to_uint8_scale(ds[epoch][0])  # key = epoch * len(ds) + 0
        want, indices, box = reference_clip(tmp_path / "v", n, t, epoch)
        assert reader.last == indices
        assert ours.shape == want.shape == (t, CROP, CROP, 3)
        diff = np.abs(ours - want.astype(np.float32)).mean()
        assert diff < 2, (epoch, box, diff)
        flips.add(box[-1])
    assert flips == {True, False}  # both the flipped and the unflipped path were compared


def test_simplejpeg_and_pil_decode_the_same_pixels(tmp_path, monkeypatch):
    if readers.simplejpeg is None:
        pytest.skip("simplejpeg not installed")
    write_folder(tmp_path / "v", textured_frames(5, 120, 160))
    fast = FrameFolderReader(tmp_path).read("v", [1, 3, 3, 5])
    monkeypatch.setattr(readers, "simplejpeg", None)
    torch.testing.assert_close(fast, FrameFolderReader(tmp_path).read("v", [1, 3, 3, 5]), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGB"])
def test_decode_rgb_any_jpeg_mode_and_png(tmp_path, jpeg_lib, mode):
    rgb = textured_frames(1, 32, 48)[0]
    im = Image.fromarray(rgb).convert(mode)
    im.save(tmp_path / "a.jpg", quality=95)
    want = np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB"))
    got = decode_rgb((tmp_path / "a.jpg").read_bytes())
    assert got.shape == (32, 48, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1
    im.convert("RGBA" if mode == "RGB" else "P").save(tmp_path / "a.png")
    out = np.zeros((32, 48, 3), np.uint8)
    assert decode_rgb((tmp_path / "a.png").read_bytes(), out) is out
    np.testing.assert_array_equal(out, np.asarray(Image.open(tmp_path / "a.png").convert("RGB")))


def test_repeated_indices_and_mixed_sizes(tmp_path, jpeg_lib):
    frames = textured_frames(3, 32, 48)
    write_folder(tmp_path / "v", frames)
    clip = FrameFolderReader(tmp_path).read("v", [2, 2, 1, 2])
    assert clip.shape == (4, 32, 48, 3)
    assert torch.equal(clip[0], clip[1]) and torch.equal(clip[0], clip[3]) and not torch.equal(clip[0], clip[2])
    Image.fromarray(textured_frames(1, 40, 48)[0]).save(tmp_path / "v" / "00003.jpg")
    with pytest.raises(SampleReadError, match="00003.jpg.*48x40.*48x32"):
        FrameFolderReader(tmp_path).read("v", [1, 3])
    (tmp_path / "v" / "00002.jpg").write_bytes((tmp_path / "v" / "00001.jpg").read_bytes()[:400])  # truncated
    with pytest.raises(SampleReadError, match="00002.jpg"):
        FrameFolderReader(tmp_path).read("v", [1, 2])


def test_normalise_channels_last_is_exact_and_contiguous():
    x = torch.randint(0, 256, (3, 20, 24, 3), dtype=torch.uint8).permute(0, 3, 1, 2)  # channels-last memory
    scale = (1.0 / (255.0 * transforms.STD)).view(3, 1, 1)
    shift = (transforms.MEAN / transforms.STD).view(3, 1, 1)
    out = transforms.normalise(x)
    assert out.is_contiguous() and out.dtype == torch.float32
    torch.testing.assert_close(out, x.float().mul_(scale).sub_(shift), rtol=0, atol=0)
    torch.testing.assert_close(transforms.normalise(x.float()), out, rtol=0, atol=1e-6)


def test_video_reader_one_reformatter_same_pixels_as_per_frame_conversion(tmp_path):
    import av

    from src.data.synthetic import write_mp4

    write_mp4(tmp_path / "v.mp4", textured_frames(10, 48, 64))
    with av.open(str(tmp_path / "v.mp4")) as c:
        per_frame = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    idx = [9, 2, 2, 5]
    got = readers.VideoFileReader(tmp_path).read("v.mp4", idx).numpy()
    np.testing.assert_array_equal(got, per_frame[[i - 1 for i in idx]])


def test_jpeg_simplejpeg_refuses_is_left_to_pil(tmp_path, monkeypatch):
    if readers.simplejpeg is None:
        pytest.skip("simplejpeg not installed")
    Image.fromarray(textured_frames(1, 32, 48)[0]).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()

    def refuse(*_, **__):
        raise ValueError("strict mode: a libjpeg warning")

    monkeypatch.setattr(readers.simplejpeg, "decode_jpeg", refuse)
    np.testing.assert_array_equal(decode_rgb(data), np.asarray(Image.open(tmp_path / "a.jpg")))
