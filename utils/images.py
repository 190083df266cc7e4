"""Image files and 8-bit frames: the one place that decodes, encodes and converts them.

Datasets, visualizers, deblur.py and the scripts read frames with `read_image` (HxWx3 uint8 RGB), turn
float tensors into 8-bit frames with `to_uint8` (torchvision save_image's rounding) and write them with
`write_image` / `save_image`.
"""
import io
import os
from typing import Any, Tuple

import numpy as np
import pyspng
import torch
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PIL's modes for gray images of more than 8 bits; convert("RGB") would clip their values at 255.
_WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def is_rgb8_png(data: bytes) -> bool:
    """Whether `data` starts a PNG of 8-bit RGB samples (IHDR bit depth 8, colour type 2)."""
    return data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data[24] == 8 and data[25] == 2


def read_image(path: str) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array; unreadable files raise an error naming them.

    8-bit RGB PNGs (all GoPro frames) are decoded by libspng (pyspng), about twice as fast as PIL with
    the same samples, since nothing is converted; every other file goes through PIL.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file '{path}' does not exist")
    with open(path, "rb") as stream:
        data = stream.read()
    if is_rgb8_png(data):
        try:
            return pyspng.load(data)
        except RuntimeError as error:  # pyspng's way of saying "not a (complete) PNG"
            raise ValueError(f"cannot decode image '{path}': {error}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode in _WIDE_GRAY_MODES:
                return _wide_gray_to_rgb8(image, path)
            # An RGB image is used as decoded; convert() would copy all of it once more.
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not a (complete) image"
        message = str(error)
        if message.startswith("cannot identify image file"):  # PIL names its in-memory stream, not the file
            message = "not an image in a format PIL knows, or a corrupt file"
        raise ValueError(message if message.startswith("cannot decode") else
                         f"cannot decode image '{path}': {message}") from None


def _wide_gray_to_rgb8(image: Image.Image, path: str) -> np.ndarray:
    """A 16-bit gray image scaled to 8 bits (v * 255 / 65535, rounded) and repeated into three channels."""
    values = np.asarray(image)
    if image.mode == "F" or values.min() < 0 or values.max() > 65535:
        raise ValueError(f"cannot decode image '{path}': {image.mode} gray values in [{values.min()}, "
                         f"{values.max()}] are not 16-bit samples; save the frames as 8- or 16-bit images")
    gray = np.floor(values.astype(np.float64) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) of an image file, from its header only."""
    with Image.open(path) as image:
        return image.size


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float image → (H, W, 3) uint8 with torchvision save_image's rounding."""
    return image.detach().float().mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def write_image(frame: np.ndarray, filename: str, **options: Any) -> None:
    """Write an (H, W, 3) uint8 frame; the format comes from the extension, `options` go to PIL's save."""
    Image.fromarray(frame).save(filename, **options)


def save_image(image: torch.Tensor, filename: str) -> None:
    """Write a (3, H, W) float image in [0, 1] as an 8-bit RGB file (format from the extension)."""
    os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
    write_image(to_uint8(image), filename)
