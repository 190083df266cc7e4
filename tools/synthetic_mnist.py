"""Generate MNIST-like digits in MNIST's own file formats, offline, for tests and a quick LeNet run.

Each image is one digit 0-9 drawn with Pillow's bundled font at a random size, position, rotation and
stroke width on a black 28×28 canvas, slightly blurred, as MNIST's centred grey digits. Written as the
four IDX files MNIST ships (`<out>/mnist/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`), which
datasets/mnist.py reads. Printed digits are easier than handwriting: accuracies on this data say that the
pipeline learns, not what LeNet reaches on MNIST. Deterministic for a given seed.

    python -m tools.synthetic_mnist --out $DATASETS_HOME/synthetic --train 6000 --test 1000
"""
import argparse
import gzip
import os
import struct
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SIZE = 28


def write_idx(path: str, array: np.ndarray) -> str:
    """Write a uint8 array as an IDX file (images if 3-dimensional, else labels); gzip if the name ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    data = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with (gzip.open if path.endswith(".gz") else open)(path, "wb") as handle:
        handle.write(data)
    return path


def digit_images(count: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """`count` digit images uint8 (count, 28, 28) and their labels uint8 (count,), balanced over 0-9."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 10)[rng.permutation(count)].astype(np.uint8)
    images = np.zeros((count, SIZE, SIZE), np.uint8)
    for i, label in enumerate(labels):
        size = int(rng.integers(20, 27))
        font = ImageFont.load_default(size=size)
        canvas = Image.new("L", (2 * SIZE, 2 * SIZE), 0)
        ImageDraw.Draw(canvas).text((SIZE, SIZE), str(label), fill=255, font=font, anchor="mm",
                                    stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR,
                               translate=(float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))))
        crop = canvas.crop((SIZE // 2, SIZE // 2, SIZE // 2 + SIZE, SIZE // 2 + SIZE))
        images[i] = np.asarray(crop.filter(ImageFilter.GaussianBlur(0.5)))
    return images, labels


def make_mnist(out: str, train: int, test: int, seed: int = 0, gz: bool = True) -> str:
    """Write `<out>/mnist/raw/` with `train` training and `test` test digits; returns `<out>/mnist`."""
    root = os.path.join(out, "mnist")
    suffix = ".gz" if gz else ""
    for prefix, count, split_seed in (("train", train, seed), ("t10k", test, seed + 1)):
        images, labels = digit_images(count, split_seed)
        write_idx(os.path.join(root, "raw", f"{prefix}-images-idx3-ubyte{suffix}"), images)
        write_idx(os.path.join(root, "raw", f"{prefix}-labels-idx1-ubyte{suffix}"), labels)
    return root


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="parent folder: the files go to <out>/mnist/raw")
    parser.add_argument("--train", type=int, default=6000, help="training images (default 6000)")
    parser.add_argument("--test", type=int, default=1000, help="test images (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.train < 1 or options.test < 1:
        parser.error("--train and --test must be positive")
    print(make_mnist(options.out, options.train, options.test, options.seed))


if __name__ == "__main__":
    main()
