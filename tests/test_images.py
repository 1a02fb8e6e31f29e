"""numpy_mlp.data.images.image_to_row: an image file's CIFAR-10 row, and the files it refuses."""

import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY
from numpy_mlp.data.images import FORMATS, MAX_PIXELS, image_to_row
from numpy_mlp.errors import UserError

G = CIFAR10_GEOMETRY  # the rows read here are CIFAR-10's, 3 x 32 x 32


def gradient(h=48, w=64, top=65535):
    """A smooth (h, w) uint16 image: 0 at the top left, ``top`` at the bottom right."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.rint((xx / (w - 1) * 0.6 + yy / (h - 1) * 0.4) * top).astype(np.uint16)


def to_8_bits(a):
    """The 8-bit version of 16-bit values: their upper 8 bits (as Pillow reads 16-bit RGB)."""
    return (a >> 8).astype(np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width, height, pixels: bytes, bit_depth=8, colour=2) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB); ``pixels`` filtered rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(pixels)) + png_chunk(b"IEND", b""))


def rgb16_png(rgb):
    """(h, w, 3) uint16 -> the bytes of a 16-bit RGB PNG."""
    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[i].astype(">u2").tobytes() for i in range(h))
    return raw_png(w, h, rows, bit_depth=16, colour=2)


def one_line(err):
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


# ------------------------------------------------------------------ the contract


def test_layout_is_channel_first_rows_of_32_by_32(tmp_path):
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32, 0] = 255  # left half red
    img[:, 32:, 2] = 200  # right half blue
    Image.fromarray(img).save(tmp_path / "a.png")
    row = image_to_row(tmp_path / "a.png", geometry=G)
    assert row.shape == (3072,) and row.dtype == np.uint8
    red, green, blue = row.reshape(3, 32, 32)
    assert red[:, :14].min() == 255 and red[:, 18:].max() == 0
    assert blue[:, 18:].min() == 200 and blue[:, :14].max() == 0 and green.max() == 0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_same_rows_as_plain_pillow_for_ordinary_images(tmp_path, fmt):
    rng = np.random.default_rng(0)
    path = tmp_path / f"a.{fmt.lower()}"
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(path, format=fmt)
    with Image.open(path) as im:  # the plain conversion, for files that need no hardening
        hwc = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(image_to_row(path, geometry=G),
                                  hwc.transpose(2, 0, 1).reshape(-1))


def test_the_format_is_read_from_the_content_not_the_name(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 77, np.uint8)).save(tmp_path / "photo.png", format="JPEG")
    assert abs(int(image_to_row(tmp_path / "photo.png", geometry=G).mean()) - 77) <= 1


# ------------------------------------------------------------------ 16-bit images


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    a = gradient()
    Image.fromarray(a).save(tmp_path / "g16.png")  # mode I;16: a 16-bit grey PNG
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"
    Image.fromarray(to_8_bits(a)).save(tmp_path / "g8.png")
    row16 = image_to_row(tmp_path / "g16.png", geometry=G).astype(int)
    row8 = image_to_row(tmp_path / "g8.png", geometry=G).astype(int)
    assert np.abs(row16 - row8).max() <= 1  # in fact equal: the same 8-bit image is read
    rounded = Image.fromarray(np.rint(a / 257).astype(np.uint8))  # the other common scaling
    rounded.save(tmp_path / "r8.png")
    assert np.abs(row16 - image_to_row(tmp_path / "r8.png", geometry=G)).max() <= 2
    assert row8.min() < 10 and row8.max() > 245 and len(np.unique(row8)) > 100  # a gradient
    with Image.open(tmp_path / "g16.png") as im:  # control: a plain conversion clips
        plain = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BICUBIC))
    assert np.abs(plain.transpose(2, 0, 1).reshape(-1).astype(int) - row8).max() > 100


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_16_bit_grey_modes_are_scaled(mode):
    """Older Pillows open 16-bit grey PNGs as mode I (32-bit), others as I;16B."""
    a = gradient()
    im = Image.fromarray(a.astype(np.int32)).convert(mode) if mode == "I" else \
        Image.frombytes(mode, (a.shape[1], a.shape[0]), a.astype(">u2").tobytes())
    assert im.mode == mode
    from numpy_mlp.data import images
    ref = images._small(Image.fromarray(to_8_bits(a)), G)
    np.testing.assert_array_equal(images._small(im, G), ref)


def test_a_16_bit_rgb_png_is_read_as_its_8_bit_version(tmp_path):
    """Pillow's decoder keeps the upper 8 bits of 16-bit colour: that is the 8-bit version."""
    g = gradient()
    rgb = np.stack([g, g[::-1], 65535 - g], axis=-1)  # (h, w, 3) uint16
    (tmp_path / "c16.png").write_bytes(rgb16_png(rgb))
    with Image.open(tmp_path / "c16.png") as im:
        assert im.mode == "RGB"
    Image.fromarray(to_8_bits(rgb)).save(tmp_path / "c8.png")
    row16 = image_to_row(tmp_path / "c16.png", geometry=G).astype(int)
    row8 = image_to_row(tmp_path / "c8.png", geometry=G).astype(int)
    assert np.abs(row16 - row8).max() <= 1 and row8.std() > 50


def test_a_16_bit_grey_png_reads_like_the_same_picture_in_16_bit_colour(tmp_path):
    g = gradient()
    Image.fromarray(g).save(tmp_path / "g16.png")
    (tmp_path / "c16.png").write_bytes(rgb16_png(np.stack([g, g, g], axis=-1)))
    diff = (image_to_row(tmp_path / "g16.png", geometry=G).astype(int)
            - image_to_row(tmp_path / "c16.png", geometry=G))
    assert np.abs(diff).max() <= 1


# ------------------------------------------------------------------ files refused


def test_a_float_tiff_is_refused_naming_the_formats(tmp_path):
    path = tmp_path / "depth.tif"
    Image.fromarray(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)).save(path)
    with Image.open(path) as im:
        assert im.mode == "F"  # a real float TIFF, which Pillow could open
    with pytest.raises(UserError) as err:
        image_to_row(path, geometry=G)
    msg = one_line(err)
    assert str(path) in msg and ", ".join(FORMATS) in msg and "PNG, JPEG" in msg


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "GIF", "WEBP", "PPM"])
def test_formats_not_named_are_refused_even_when_pillow_reads_them(tmp_path, fmt):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(path, format=fmt)
    with Image.open(path) as im:
        assert im.format == fmt  # control: Pillow alone would open it
    with pytest.raises(UserError, match="formats accepted are PNG, JPEG") as err:
        image_to_row(path, geometry=G)
    one_line(err)


EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 32 32
%%EndComments
0 0 moveto 32 32 lineto stroke
showpage
%%EOF
"""


def _with_fake_gs(tmp_path, code):
    """Run ``code`` in a child Python whose PATH starts with a ``gs`` that leaves a marker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    marker = tmp_path / "gs-ran"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\nexit 1\n")
    gs.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
                          capture_output=True, timeout=60)
    return done, marker


def test_postscript_named_png_never_starts_ghostscript(tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(EPS)
    # control: Pillow on its own runs the first gs on PATH for this file
    control, marker = _with_fake_gs(tmp_path, f"""
        from PIL import Image
        try:
            Image.open({str(path)!r}).load()
        except Exception as e:
            print(type(e).__name__)
    """)
    assert marker.exists(), control.stdout + control.stderr
    marker.unlink()

    done, marker = _with_fake_gs(tmp_path, f"""
        from numpy_mlp.errors import UserError
        from numpy_mlp.data.cifar10 import CIFAR10_GEOMETRY
        from numpy_mlp.data.images import image_to_row
        try:
            image_to_row({str(path)!r}, geometry=CIFAR10_GEOMETRY)
        except UserError as e:
            print(e)
    """)
    assert not marker.exists()
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "PNG, JPEG" in lines[0]


def _bomb_png(width, height):
    """A valid 1x1 PNG whose header declares ``width`` x ``height`` (some 70 bytes)."""
    return raw_png(width, height, b"\x00\x00\x00\x00")


def _bomb_jpeg(width, height):
    """A small real JPEG whose frame header (SOF0) declares ``width`` x ``height``."""
    import io
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("case", [
    ("png", 100_000, 100_000),  # 10^10 pixels: beyond Pillow's own error bound
    ("png", 10_000, 10_000),  # 10^8: where Pillow only warns
    ("jpeg", 65_535, 65_535),
])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, case):
    kind, width, height = case
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(_bomb_png(width, height) if kind == "png" else _bomb_jpeg(width, height))
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    with _no_warnings():
        with pytest.raises(UserError) as err:
            image_to_row(path, geometry=G)
    assert time.perf_counter() - start < 2
    msg = one_line(err)
    assert str(path) in msg and "pixels" in msg and "scale it down" in msg


class _no_warnings:
    """Fails if the block emits a warning (Pillow's DecompressionBombWarning included)."""

    def __enter__(self):
        import warnings
        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not self.caught, [str(w.message) for w in self.caught]


def test_the_pixel_bound_is_a_parameter_and_pillows_default(tmp_path):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "a.png")
    assert image_to_row(tmp_path / "a.png", max_pixels=2000, geometry=G).shape == (3072,)
    with pytest.raises(UserError, match="declares 50 x 40 = 2,000 pixels, more than the 1,999"):
        image_to_row(tmp_path / "a.png", max_pixels=1999, geometry=G)
    assert MAX_PIXELS == 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS out of the box


@pytest.mark.parametrize("damage", ["truncated", "bad crc", "empty", "text"])
def test_damaged_files_are_one_line(tmp_path, damage):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
        tmp_path / "ok.png")
    good = (tmp_path / "ok.png").read_bytes()
    data = {"truncated": good[: len(good) // 2],
            "bad crc": good[:40] + bytes([good[40] ^ 0xFF]) + good[41:],
            "empty": b"", "text": b"just some text, not a picture"}[damage]
    (tmp_path / "x.png").write_bytes(data)
    with pytest.raises(UserError, match="not an image this tool can read") as err:
        image_to_row(tmp_path / "x.png", geometry=G)
    assert str(tmp_path / "x.png") in one_line(err)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        image_to_row(tmp_path / "nope.png", geometry=G)
    with pytest.raises(UserError, match="is not a file"):
        image_to_row(tmp_path, geometry=G)
