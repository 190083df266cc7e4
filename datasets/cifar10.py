"""CIFAR-10 (Krizhevsky 2009): 32×32 colour images of ten classes, 50,000 training and 10,000 test (spec §16).

Reads the "python version" below `--*_dataset_root`: cifar-10-batches-py/data_batch_1 .. data_batch_5
(training, concatenated in order) and test_batch (`python scripts/get_data.py cifar10` unpacks it there).
Each batch is a pickled dict; it is read by an unpickler that builds only dicts, lists, strings, bytes,
numbers and numpy arrays, so a batch file cannot run code. Examples: `input1` float32 (3, 32, 32) (or the
crop size) in [0, 1] before normalisation, `target1` the class (0 plane, 1 car, 2 bird, 3 cat, 4 deer,
5 dog, 6 frog, 7 horse, 8 ship, 9 truck), `index`, `basename` ("img-00003").

The original's pipeline never runs (spec §16.7); this is the pipeline it intends, per example on the
uint8 image: crop (random for training, centred for validation) → colour jitter → random affine (bicubic,
fill 0) → horizontal flip → to float in [0, 1] → gamma → Gaussian noise (σ ~ U(0, 0.02), clipped to
[0, 1]) → per-channel normalisation → per-image standardisation; a disabled stage is skipped. Random numbers
come from torch's global RNG (torchvision's transforms), i.e. the loading worker's.
"""
import io
import os
import pickle
from argparse import Namespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.mnist import example_dict
from datasets.registry import DATASETS
from datasets.sampling import deterministic_indices

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the original's normalisation
NOISE_MAX_SIGMA = 0.02
PHOTOMETRIC_DEFAULTS = {"brightness_max_delta": 0.5, "contrast_max_delta": 0.5, "saturation_max_delta": 0.5,
                        "hue_max_delta": 0.0, "gamma_min_max": [0.9, 1.1]}
AFFINE_DEFAULTS = {"degrees": [-5, 5], "translate": [0.1, 0.1], "scale": [0.9, 1.1], "shear": [0, 0]}


class _ArraysOnly(pickle.Unpickler):
    """Builds dicts, lists, strings, bytes, numbers and numpy arrays; any other class is refused."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: ANN401
        allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only arrays, lists and labels)")
        if name == "encode":  # how protocol-2 pickles written by Python 3 store bytes
            import _codecs
            return _codecs.encode
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstructor, whatever its module
        return getattr(np, name)


def read_batch(path: str) -> Tuple[np.ndarray, List[int]]:
    """One batch file: uint8 images (N, 32, 32, 3) and N labels; ValueError naming the file."""
    try:
        with open(path, "rb") as handle:
            batch = _ArraysOnly(io.BytesIO(handle.read()), encoding="latin1").load()  # Python 2's pickles
    except FileNotFoundError:
        raise FileNotFoundError(f"'{path}' is missing (expected CIFAR-10's python version: {FOLDER}/"
                                f"data_batch_1..5 and test_batch; get it with `python scripts/get_data.py cifar10 "
                                f"--root <parent>`)") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, pickle.UnpicklingError) as error:
        raise ValueError(f"'{path}': not a CIFAR-10 python batch ({error})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"'{path}': not a CIFAR-10 python batch (expected a dict with 'data' and 'labels')")
    data = batch.get("data")
    labels = batch.get("labels", batch.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"'{path}': 'data' must be a uint8 array (N, 3072), got "
                         f"{getattr(data, 'dtype', type(data).__name__)} {list(getattr(data, 'shape', []))}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        raise ValueError(f"'{path}': expected 'labels', a list of {len(data)} classes")
    if not all(isinstance(label, (int, np.integer)) and 0 <= label < len(CLASSES) for label in labels):
        raise ValueError(f"'{path}': every label must be an integer 0..{len(CLASSES) - 1}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), [int(label) for label in labels]


def _pair(values: Sequence[float], key: str, flag: str) -> Tuple[float, float]:
    if not isinstance(values, (list, tuple)) or len(values) != 2:
        raise ValueError(f"{flag}: '{key}' must be a pair [low, high], got {values!r}")
    return float(values[0]), float(values[1])


def _settings(value: Optional[Dict[str, Any]], defaults: Dict[str, Any], flag: str) -> Optional[Dict[str, Any]]:
    """None (stage off), or the defaults updated by the dict's keys; unknown keys are refused."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{flag}: expected a dict such as {defaults} or None, got {value!r}")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ValueError(f"{flag}: unknown keys {unknown}; expected some of {sorted(defaults)}")
    return {**defaults, **value}


def per_image_standardization(image: torch.Tensor) -> torch.Tensor:
    """Per channel: subtract the mean, divide by the unbiased std, at least 1/sqrt(H·W) (spec §16.5)."""
    flat = image.reshape(image.size(0), -1)
    std = flat.std(dim=1).clamp(min=1.0 / flat.size(1) ** 0.5)
    return ((flat - flat.mean(dim=1, keepdim=True)) / std[:, None]).reshape(image.shape)


class _Cifar10(Dataset):
    """One CIFAR-10 split with the intended augmentation; the registered subclasses set split and defaults."""

    train, seed = True, 0

    def __init__(self, args: Optional[Namespace] = None, root: Optional[str] = None,
                 photometric_augmentations: Optional[Dict[str, Any]] = None,
                 affine_augmentations: Optional[Dict[str, Any]] = None, random_flip: bool = False,
                 add_noise: bool = False, normalize_colors: bool = False, per_image_std: bool = False,
                 crop: Optional[List[int]] = None, num_workers: int = 4, num_examples: int = -1) -> None:
        import torchvision.transforms as transforms  # here: --help stays free of torchvision (seconds to import)

        if root is None:
            raise ValueError("root is required (the folder that holds cifar-10-batches-py)")
        folder = os.path.join(os.path.expanduser(root), FOLDER)
        if not os.path.isdir(folder) and os.path.basename(os.path.normpath(root)) == FOLDER:
            folder = os.path.expanduser(root)  # the batches folder itself
        images, labels = [], []
        for name in TRAIN_BATCHES if self.train else TEST_BATCHES:
            data, batch_labels = read_batch(os.path.join(folder, name))
            images.append(data)
            labels += batch_labels
        self.images, self.labels = np.concatenate(images), labels
        if num_examples > 0:
            positions = deterministic_indices(num_examples, len(self.images), self.seed)
            self.images, self.labels = self.images[positions], [self.labels[i] for i in positions]
        photometric = _settings(photometric_augmentations, PHOTOMETRIC_DEFAULTS, "photometric_augmentations")
        affine = _settings(affine_augmentations, AFFINE_DEFAULTS, "affine_augmentations")
        stages: List[Any] = []
        if crop:
            size = tuple(crop) if len(crop) == 2 else (crop[0], crop[0])
            stages.append(transforms.RandomCrop(size) if self.train else transforms.CenterCrop(size))
        if photometric is not None:
            stages.append(transforms.ColorJitter(photometric["brightness_max_delta"], photometric["contrast_max_delta"],
                                                 photometric["saturation_max_delta"], photometric["hue_max_delta"]))
        if affine is not None:
            stages.append(transforms.RandomAffine(
                _pair(affine["degrees"], "degrees", "affine_augmentations"),
                translate=_pair(affine["translate"], "translate", "affine_augmentations"),
                scale=_pair(affine["scale"], "scale", "affine_augmentations"),
                shear=_pair(affine["shear"], "shear", "affine_augmentations"),
                interpolation=transforms.InterpolationMode.BICUBIC, fill=0))
        if random_flip:
            stages.append(transforms.RandomHorizontalFlip())
        stages.append(transforms.ToTensor())
        self.pil_pipeline = transforms.Compose(stages)
        self.gamma = None if photometric is None else _pair(photometric["gamma_min_max"], "gamma_min_max",
                                                             "photometric_augmentations")
        self.add_noise, self.normalize_colors, self.per_image_std = add_noise, normalize_colors, per_image_std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        from PIL import Image

        image = self.pil_pipeline(Image.fromarray(self.images[index], mode="RGB"))
        if self.gamma is not None:
            gamma = torch.empty(()).uniform_(*self.gamma).item()
            image = image.pow(gamma).clamp(0.0, 1.0)
        if self.add_noise:
            sigma = torch.empty(()).uniform_(0.0, NOISE_MAX_SIGMA).item()
            image = (image + sigma * torch.randn_like(image)).clamp(0.0, 1.0)
        if self.normalize_colors:
            image = (image - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        if self.per_image_std:
            image = per_image_standardization(image)
        return example_dict(image, self.labels[index], index)


@DATASETS.register("Cifar10Train")
class Cifar10Train(_Cifar10):
    """CIFAR-10 training set (data_batch_1..5, 50,000 images), augmented by default.

    Args:
        root: the folder that holds cifar-10-batches-py (or that folder itself) (required)
        photometric_augmentations: colour jitter factors in [1 - d, 1 + d] and a gamma range; None: off
        affine_augmentations: random affine ranges (degrees, translate, scale, shear); None: off
        random_flip: horizontal flip with probability 0.5.
        add_noise: Gaussian noise, σ uniform in [0, 0.02].
        normalize_colors: subtract the CIFAR-10 channel means and divide by their standard deviations.
        per_image_std: standardise each channel of each image (mean 0, std 1).
        crop: [height, width] (or [size]) of a random crop; none: the whole 32×32 image
        num_workers: DataLoader worker processes.
        num_examples: > 0: that many images, a fixed random subset (seed 0); -1: all.
    """

    train, seed = True, 0

    def __init__(self, args: Optional[Namespace] = None, root: Optional[str] = None,
                 photometric_augmentations: Optional[Dict[str, Any]] = PHOTOMETRIC_DEFAULTS,
                 affine_augmentations: Optional[Dict[str, Any]] = AFFINE_DEFAULTS, random_flip: bool = True,
                 add_noise: bool = False, normalize_colors: bool = False, per_image_std: bool = False,
                 crop: Optional[List[int]] = None, num_workers: int = 4, num_examples: int = -1) -> None:
        super().__init__(args, root, photometric_augmentations, affine_augmentations, random_flip, add_noise,
                         normalize_colors, per_image_std, crop, num_workers, num_examples)


@DATASETS.register("Cifar10Valid")
class Cifar10Valid(_Cifar10):
    """CIFAR-10 test set (test_batch, 10,000 images), for validation; no augmentation by default.

    Args:
        root: the folder that holds cifar-10-batches-py (or that folder itself) (required)
        photometric_augmentations: colour jitter factors in [1 - d, 1 + d] and a gamma range; None: off
        affine_augmentations: random affine ranges (degrees, translate, scale, shear); None: off
        random_flip: horizontal flip with probability 0.5.
        add_noise: Gaussian noise, σ uniform in [0, 0.02].
        crop: [height, width] (or [size]) of the centre crop; none: the whole 32×32 image
        normalize_colors: subtract the CIFAR-10 channel means and divide by their standard deviations.
        per_image_std: standardise each channel of each image (mean 0, std 1).
        num_workers: DataLoader worker processes.
        num_examples: > 0: that many images, a fixed random subset (seed 1); -1: all.
    """

    train, seed = False, 1

    def __init__(self, args: Optional[Namespace] = None, root: Optional[str] = None,
                 photometric_augmentations: Optional[Dict[str, Any]] = None,
                 affine_augmentations: Optional[Dict[str, Any]] = None, random_flip: bool = False,
                 add_noise: bool = False, crop: Optional[List[int]] = None, normalize_colors: bool = False,
                 per_image_std: bool = False, num_workers: int = 4, num_examples: int = -1) -> None:
        super().__init__(args, root, photometric_augmentations, affine_augmentations, random_flip, add_noise,
                         normalize_colors, per_image_std, crop, num_workers, num_examples)
