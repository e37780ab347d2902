"""Images opened with their size checked before any pixel is decoded.

A PNG of 20000 x 20000 pixels is a few KB on disk and 1.2 GB once decoded; Pillow's own guard
(`PIL.Image.MAX_IMAGE_PIXELS`) only warns up to twice its limit.  `open_image` refuses more
than `MAX_IMAGE_PIXELS` in one line, for `magimac chat --image`, the app and `magimac serve`.
"""

from __future__ import annotations

from magimac.core.errors import MagimacError

MAX_IMAGE_PIXELS = 64_000_000
"""The most pixels (width x height) an image may have: a 48-megapixel photo fits."""


class ImageTooLarge(MagimacError, ValueError):
    """An image over `MAX_IMAGE_PIXELS`; the message (one line) does not name the file."""


def open_image(path):
    """``PIL.Image.open(path)``, not yet decoded, once its size is known to be within the limit.

    Raises:
        ImageTooLarge: more than `MAX_IMAGE_PIXELS` pixels.
        FileNotFoundError, PIL.UnidentifiedImageError, OSError: as `PIL.Image.open`.
    """
    from PIL import Image

    limit = f"more than {MAX_IMAGE_PIXELS // 10**6} million pixels, the most magimac reads: make it smaller"
    try:
        im = Image.open(path)
    except Image.DecompressionBombError:  # over twice Pillow's own limit: its size is not returned
        raise ImageTooLarge(limit) from None
    if im.width * im.height > MAX_IMAGE_PIXELS:
        im.close()
        raise ImageTooLarge(f"{im.width} x {im.height} pixels is {limit}")
    return im
