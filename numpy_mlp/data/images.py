"""Image files as dataset rows: the one place that opens a user's picture.

Each image is converted to RGB (or grey, for a one-channel geometry such as MNIST's),
resized to the geometry's height x width (the whole image, aspect ratio not kept, as
CIFAR-10's own thumbnails were made) and laid out like a CIFAR-10 row: the red plane, then
green, then blue, each row-major (D = channels x height x width values, uint8; CIFAR-10's
3 x 32 x 32 is 3072).

What a file may make Pillow do is bounded before any pixel is decoded:

- only the formats in :data:`FORMATS`, recognised by content, are tried: Pillow hands any
  other file it recognises to its plugin, and its PostScript plugin runs the external
  Ghostscript program (even for a file named ``.png``);
- at most :data:`MAX_PIXELS` pixels, checked on the size the header declares (a few
  bytes of PNG can declare a 10^10-pixel image);
- 16-bit grey PNGs (Pillow's modes ``I;16`` and ``I``) are read as their upper 8 bits,
  as Pillow's decoder reads 16-bit RGB and RGBA (and libpng's ``png_set_strip_16``), so a
  picture gives the same row stored in grey or in colour; converted directly, every grey
  value above 255 would become white.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files.regular import open_regular
from .dataset import Geometry

FORMATS = ("PNG", "JPEG")  # Pillow format names, the only ones opened
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3  # a quarter GiB of RGB, Pillow's own default bound
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes of 16-bit grey
_WIDE_MAX = 65535  # the largest 16-bit value


def image_to_row(path, max_pixels: int = MAX_PIXELS, *, geometry: Geometry) -> np.ndarray:
    """Read an image file into one uint8 row (D,) of ``geometry``, channel-first (the model's
    or the dataset's geometry: CIFAR-10's is 3 x 32 x 32).

    Raises:
        UserError: the file is missing, not one of :data:`FORMATS` (by content), declares
            more than ``max_pixels`` pixels, or is damaged. The message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist" if not path.exists()
                        else f"image {path} is not a file")
    try:
        with warnings.catch_warnings():
            # the size is checked below, with this tool's bound and message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_regular(path, fix="give a PNG or JPEG file", what="image") as f, \
                    Image.open(f, formats=list(FORMATS)) as im:
                if im.width * im.height > max_pixels:
                    raise UserError(_too_large(path, im.width, im.height, max_pixels))
                hwc = _small(im, geometry)  # (height, width, channels)
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image this tool can read: the formats accepted are "
                        f"{', '.join(FORMATS)}, recognised by their content, not by the file "
                        "name; convert it to PNG") from None
    except Image.DecompressionBombError as e:  # Pillow's own bound, twice its default
        raise UserError(f"{path} declares more pixels than this tool decodes ({e}); "
                        "scale it down first") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise UserError(f"{path} is not an image this tool can read: damaged or unsupported "
                        f"({e}); re-save it as an 8-bit PNG") from None
    return hwc.transpose(2, 0, 1).reshape(-1)  # (D,)


def _too_large(path: Path, width: int, height: int, max_pixels: int) -> str:
    return (f"{path} declares {width} x {height} = {width * height:,} pixels, more than the "
            f"{max_pixels:,} this tool decodes (a decompression bomb?); scale it down first")


def _small(im, geometry: Geometry) -> np.ndarray:
    """An open Pillow image as (height, width, channels) uint8 of ``geometry``, RGB or grey,
    resized with bicubic filtering."""
    from PIL import Image

    if im.mode in _WIDE_GREY:
        wide = np.asarray(im)  # (height, width) uint16, or int32 for mode I
        if wide.dtype != np.uint16:
            wide = np.clip(wide, 0, _WIDE_MAX).astype(np.uint16)
        im = Image.fromarray((wide >> 8).astype(np.uint8))  # mode L: the upper 8 bits
    mode = "RGB" if geometry.channels == 3 else "L"
    small = im.convert(mode).resize((geometry.width, geometry.height), Image.Resampling.BICUBIC)
    return np.asarray(small, dtype=np.uint8).reshape(geometry.height, geometry.width, -1)
