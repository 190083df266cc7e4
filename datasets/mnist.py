"""MNIST (LeCun et al. 1998): 28×28 grey digits, 60,000 training and 10,000 test images (spec §15).

Read from the files users already have, below `--*_dataset_root`, in this order:
  <root>/processed/{training,test}.pt       the original framework's (a tuple: uint8 (N, 28, 28), int64 (N,))
  <root>/MNIST/processed/{training,test}.pt  older torchvision's
  <root>/raw/, <root>/MNIST/raw/ or <root>/  the IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte,
                                             t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, plain or .gz
                                             (the original's download, torchvision's, get_data.py's)
`python scripts/get_data.py mnist` puts the four .gz files into $DATASETS_HOME/mnist/raw. Nothing is
downloaded at run time. Examples as the original's (no normalisation, no augmentation): `input1` float32
(1, 28, 28) = pixel / 255, `target1` 0-dim int64, `index` and `basename` ("img-00003") count positions in
the (sub)set. `num_examples` > 0 keeps the original's deterministic subset (seed 0 for the training set,
1 for the test set); 0 or negative keeps all.
"""
import gzip
import math
import os
import pickle
import struct
import zlib
from argparse import Namespace
from typing import Any, Dict, Optional, Tuple

import torch
from torch.utils.data import Dataset

from datasets.registry import DATASETS
from datasets.sampling import deterministic_indices

FOLDER = "mnist"  # get_data.py's folder under $DATASETS_HOME, the original scripts' $DATASETS_HOME/mnist
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: 0x0803 (uint8, 3 dimensions), 0x0801 (uint8, 1 dimension)
# split -> (IDX file prefix, processed file name, published size)
SPLITS = {"train": ("train", "training.pt", 60000), "test": ("t10k", "test.pt", 10000)}
IDX_FOLDERS = ("raw", os.path.join("MNIST", "raw"), "")
PROCESSED_FOLDERS = ("processed", os.path.join("MNIST", "processed"))


def read_idx(path: str, magic: int) -> torch.Tensor:
    """An IDX file (plain or .gz) as a uint8 tensor of its announced shape; ValueError naming the file."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"'{path}': cannot read it ({error})") from None
    kind = "images (magic 2051)" if magic == IMAGES_MAGIC else "labels (magic 2049)"
    if len(data) < 4 or struct.unpack(">I", data[:4])[0] != magic:
        raise ValueError(f"'{path}': not an MNIST IDX file of {kind}")
    dimensions = magic & 0xFF
    header = 4 + 4 * dimensions
    if len(data) < header:
        raise ValueError(f"'{path}': the IDX header is cut short ({len(data)} of {header} bytes)")
    shape = struct.unpack(f">{dimensions}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise ValueError(f"'{path}': {len(data) - header} bytes of data, its header announces {math.prod(shape)} "
                         f"(shape {list(shape)})")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape)


def _idx_file(folder: str, name: str) -> Optional[str]:
    for candidate in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _read_processed(path: str) -> Tuple[torch.Tensor, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as error:
        raise ValueError(f"'{path}': cannot load it ({str(error).splitlines()[0] if str(error) else error})") \
            from None
    if not (isinstance(loaded, (tuple, list)) and len(loaded) == 2 and all(torch.is_tensor(t) for t in loaded)):
        raise ValueError(f"'{path}': expected a tuple (images, labels) of two tensors")
    return loaded[0], loaded[1]


def _get_data_hint(root: str) -> str:
    """The get_data.py command that fills `root` (it writes <parent>/mnist)."""
    parent, name = os.path.split(os.path.normpath(root))
    if name == FOLDER:
        return f"get them with `python scripts/get_data.py mnist --root {parent or '.'}`"
    return f"`python scripts/get_data.py mnist --root <parent>` writes <parent>/{FOLDER}"


def load_split(root: str, split: str) -> Tuple[torch.Tensor, torch.Tensor, str]:
    """Images uint8 (N, H, W), labels int64 (N,) of 'train' or 'test', and the file(s) they came from."""
    prefix, processed, _ = SPLITS[split]
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"MNIST root '{root}' is not a folder ({_get_data_hint(root)})")
    found = next((path for folder in PROCESSED_FOLDERS
                  if os.path.isfile(path := os.path.join(root, folder, processed))), None)
    if found is not None:
        images, labels = _read_processed(found)
        source = found
    else:
        names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        pair = next(((i, lab) for folder in IDX_FOLDERS
                     if (i := _idx_file(os.path.join(root, folder), names[0]))
                     and (lab := _idx_file(os.path.join(root, folder), names[1]))), None)
        if pair is None:
            raise FileNotFoundError(
                f"no MNIST {split} files in '{root}': expected {names[0]}[.gz] and {names[1]}[.gz] in raw/, "
                f"MNIST/raw/ or the folder itself, or processed/{processed} ({_get_data_hint(root)})")
        images, labels = read_idx(pair[0], IMAGES_MAGIC), read_idx(pair[1], LABELS_MAGIC)
        source = f"{pair[0]}, {pair[1]}"
    if images.dtype != torch.uint8 or images.dim() != 3:
        raise ValueError(f"{source}: expected uint8 images (N, 28, 28), got {images.dtype} {list(images.shape)}")
    if labels.dim() != 1 or labels.dtype.is_floating_point or len(labels) != len(images):
        raise ValueError(f"{source}: expected {len(images)} integer labels (one per image), got {labels.dtype} "
                         f"{list(labels.shape)}")
    return images, labels.long(), source


def example_dict(image: torch.Tensor, label: Any, index: int) -> Dict[str, Any]:
    """The framework's example: input1 (C, H, W) float in [0, 1], target1, index, basename ("img-00003")."""
    return {"input1": image, "target1": label, "index": index, "basename": "img-%05i" % index}


class _Mnist(Dataset):
    """One MNIST split; the registered subclasses name it and the subset seed."""

    split, seed = "train", 0

    def __init__(self, args: Optional[Namespace] = None, root: Optional[str] = None, num_workers: int = 2,
                 num_examples: int = -1) -> None:
        if root is None:
            raise ValueError("root is required (the MNIST folder)")
        self.images, self.labels, self.source = load_split(root, self.split)
        if num_examples > 0:
            positions = deterministic_indices(num_examples, len(self.images), self.seed)
            self.images, self.labels = self.images[positions], self.labels[positions]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        # As torchvision's ToTensor on the 8-bit image: float32, divided by 255, a leading channel.
        image = self.images[index].to(torch.float32).div(255).unsqueeze(0)
        return example_dict(image, self.labels[index], index)


@DATASETS.register("MnistTrain")
class MnistTrain(_Mnist):
    """MNIST training set (60,000 images): `input1` (1, 28, 28) in [0, 1], `target1` the digit.

    Args:
        root: the MNIST folder: processed/training.pt, or train-*-ubyte[.gz] in raw/, MNIST/raw/ or itself
            (required)
        num_workers: DataLoader worker processes.
        num_examples: > 0: that many images, the original's fixed random subset (seed 0); -1: all.
    """

    split, seed = "train", 0

    def __init__(self, args: Optional[Namespace] = None, root: Optional[str] = None, num_workers: int = 2,
                 num_examples: int = -1) -> None:
        super().__init__(args, root, num_workers, num_examples)


@DATASETS.register("MnistValid")
class MnistValid(_Mnist):
    """MNIST test set (10,000 images), for validation: `input1` (1, 28, 28) in [0, 1], `target1` the digit.

    Args:
        root: the MNIST folder: processed/test.pt, or t10k-*-ubyte[.gz] in raw/, MNIST/raw/ or itself (required)
        num_workers: DataLoader worker processes.
        num_examples: > 0: that many images, the original's fixed random subset (seed 1); -1: all.
    """

    split, seed = "test", 1

    def __init__(self, args: Optional[Namespace] = None, root: Optional[str] = None, num_workers: int = 3,
                 num_examples: int = -1) -> None:
        super().__init__(args, root, num_workers, num_examples)
