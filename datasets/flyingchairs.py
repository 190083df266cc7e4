"""FlyingChairs (Dosovitskiy et al. 2015): `<root>/NNNNN_img1.ppm`, `NNNNN_img2.ppm`, `NNNNN_flow.flo`.

Examples are image pairs with the flow from image 1 to image 2: `input1`, `input2` (3, H, W) float
RGB in [0, 1], `target1` (2, H, W) flow in pixels, `index` and `basename` ("NNNNN").

Train/validation split: the original hard-codes 640 validation indices that the specification does
not list. This project reads the official split file `FlyingChairs_train_val.txt` instead (one
line per pair in file order, 1 = training, 2 = validation), looked up in the root and in its parent
folder (the release unpacks to FlyingChairs_release/data/, the split file is a separate download).
The official file also marks 640 validation pairs; that they are the original's 640 is assumed, not
verified. FlyingChairsFull needs no split file. `num_examples` > 0 keeps the first pairs of a split.

Optional per-pair augmentation: a random crop (same window for both images and the flow) and
photometric jitter applied identically to both images (brightness, contrast and saturation factors
in [0.5, 1.5], hue shift ±0.5/π, in random order, then gamma in [0.7, 1.5]); the specification gives
no hue range, ±0.5/π is this project's choice. A dict instead of True overrides these ranges, e.g.
--training_dataset_photometric_augmentations="{'hue': 0.0, 'max_gamma': 1.2}".
"""
import glob
import math
import os
from argparse import Namespace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from datasets.gopro_common import DatasetLayout, parse_random_crop
from datasets.registry import DATASETS
from datasets.sampling import KeyedDataset, check_num_examples
from utils.flow_io import read_flo
from utils.images import read_image

# FlyingChairs' layout, the one description its reader, get_data.py (--verify) and DRY_RUN use: the release
# unpacks to FlyingChairs_release/data/ (22,872 pairs, Dosovitskiy et al. 2015); the split file is separate.
LAYOUT = DatasetLayout("flyingchairs", "FlyingChairs_release",
                       "<root>/NNNNN_img1.ppm, NNNNN_img2.ppm and NNNNN_flow.flo "
                       "(the FlyingChairs_release/data folder)",
                       top_level=(), root_below_folder="data", published={"pairs": (1, 22872)})
FIRST, SECOND, FLOW = "_img1.ppm", "_img2.ppm", "_flow.flo"  # a pair's file-name endings
SPLIT_FILENAME = "FlyingChairs_train_val.txt"  # in the root or its parent
PHOTOMETRIC_DEFAULTS: Dict[str, float] = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5,
                                          "hue": 0.5 / math.pi, "min_gamma": 0.7, "max_gamma": 1.5}

# (image1, image2, flow file or None, basename)
Pair = Tuple[str, str, Optional[str], str]


def read_rgb(path: str) -> torch.Tensor:
    """An image file as a float32 (3, H, W) tensor in [0, 1] (decoded by the GoPro datasets' reader)."""
    return torch.from_numpy(np.array(read_image(path))).permute(2, 0, 1).float().div_(255.0)  # a writable copy


def read_flow(path: str) -> torch.Tensor:
    """A `.flo` file as a float32 (2, H, W) tensor (u, v)."""
    return torch.from_numpy(read_flo(path)).permute(2, 0, 1).contiguous()


def photometric_settings(value: Union[bool, Dict[str, float], None], flag: str) -> Optional[Dict[str, float]]:
    """None when disabled, else the jitter ranges (defaults updated by a dict value)."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(PHOTOMETRIC_DEFAULTS)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(PHOTOMETRIC_DEFAULTS))
        if unknown:
            raise ValueError(f"{flag}: unknown keys {unknown}; expected some of {sorted(PHOTOMETRIC_DEFAULTS)}")
        settings = {**PHOTOMETRIC_DEFAULTS, **{key: float(v) for key, v in value.items()}}
        if not 0 < settings["min_gamma"] <= settings["max_gamma"]:
            raise ValueError(f"{flag}: need 0 < min_gamma <= max_gamma, got {settings['min_gamma']}, "
                             f"{settings['max_gamma']}")
        return settings
    raise ValueError(f"{flag}: expected True, False or a dict of jitter ranges, got {value!r}")


class FlowPairDataset(KeyedDataset):
    """Image pairs with optional flow; optional random crop and photometric jitter (shared by both images)."""

    def __init__(self, args: Optional[Namespace], pairs: List[Pair], num_examples: int = -1,
                 photometric_augmentations: Union[bool, Dict[str, float], None] = False,
                 random_crop: Optional[Sequence[int]] = None, flag_prefix: str = "--<dataset>") -> None:
        check_num_examples(num_examples)
        if num_examples > 0:
            pairs = pairs[:num_examples]
        if not pairs:
            raise ValueError(f"{type(self).__name__}: no image pairs selected")
        self.pairs = pairs
        self.photometric = photometric_settings(photometric_augmentations,
                                                f"{flag_prefix}_photometric_augmentations")
        self.crop = parse_random_crop(random_crop, f"{flag_prefix}_random_crop")
        self.crop_flag = f"{flag_prefix}_random_crop"
        if self.photometric is not None:
            p = self.photometric
            import torchvision.transforms as T  # noqa: N812 -- imported where used: it loads torch._dynamo (~1.4 s)

            self.color_jitter = T.ColorJitter(p["brightness"], p["contrast"], p["saturation"], p["hue"])

    def __len__(self) -> int:
        return len(self.pairs)

    def _random_crop(self, tensors: List[torch.Tensor]) -> List[torch.Tensor]:
        height, width = tensors[0].shape[-2:]
        crop_h, crop_w = self.crop
        if crop_h > height or crop_w > width:
            raise ValueError(f"{self.crop_flag}=[{crop_h}, {crop_w}] is larger than the {height}x{width} images")
        y0 = int(torch.randint(0, height - crop_h + 1, ()))
        x0 = int(torch.randint(0, width - crop_w + 1, ()))
        return [t[:, y0:y0 + crop_h, x0:x0 + crop_w] for t in tensors]

    def _jitter(self, im1: torch.Tensor, im2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # One draw for both images: the pair must stay photometrically consistent for the flow.
        both = self.color_jitter(torch.stack((im1, im2)))
        gamma = float(torch.empty(()).uniform_(self.photometric["min_gamma"], self.photometric["max_gamma"]))
        both = both.clamp(0.0, 1.0).pow(gamma)
        return both[0], both[1]

    def example(self, index: int, uint8_images: bool = False) -> Dict[str, Any]:
        """input1, input2 (float, photometric jitter is float), target1 flow if known, index, basename."""
        index = index % len(self.pairs)
        image1, image2, flow_file, basename = self.pairs[index]
        im1, im2 = read_rgb(image1), read_rgb(image2)
        if im1.shape != im2.shape:
            raise ValueError(f"'{image1}' {tuple(im1.shape[1:])} and '{image2}' {tuple(im2.shape[1:])} differ in size")
        tensors = [im1, im2]
        if flow_file is not None:
            flow = read_flow(flow_file)
            if flow.shape[1:] != im1.shape[1:]:
                raise ValueError(f"'{flow_file}' is {tuple(flow.shape[1:])}, its images are {tuple(im1.shape[1:])}")
            tensors.append(flow)
        if self.crop is not None:
            tensors = self._random_crop(tensors)
        if self.photometric is not None:
            tensors[0], tensors[1] = self._jitter(tensors[0], tensors[1])
        example = {"input1": tensors[0].contiguous(), "input2": tensors[1].contiguous()}
        if flow_file is not None:
            example["target1"] = tensors[2].contiguous()
        example["index"] = index
        example["basename"] = basename
        return example


def dataset_flag_prefix(flag_prefix: Optional[str], dataset: object) -> str:
    """The flag prefix errors name: `flag_prefix` ('--training_dataset' or '--validation_dataset', given by
    main.py), else '--<ClassName>' for a dataset built in code."""
    return flag_prefix or f"--<{type(dataset).__name__}>"


def find_split_file(root: str) -> Optional[str]:
    """FlyingChairs_train_val.txt in the root or its parent folder, if present."""
    for folder in (root, os.path.dirname(os.path.normpath(root))):
        candidate = os.path.join(folder, SPLIT_FILENAME)
        if os.path.isfile(candidate):
            return candidate
    return None


def read_split(path: str, count: int) -> List[int]:
    """The 1/2 labels of the split file, checked against the number of pairs."""
    with open(path, encoding="ascii") as handle:
        labels = [line.strip() for line in handle if line.strip()]
    if any(label not in ("1", "2") for label in labels):
        raise ValueError(f"split file '{path}': every line must be 1 (training) or 2 (validation)")
    if len(labels) != count:
        raise ValueError(f"split file '{path}' has {len(labels)} lines but the root has {count} image pairs")
    return [int(label) for label in labels]


def flyingchairs_pairs(root: str, dstype: str, flag_prefix: str) -> List[Pair]:
    """The pairs of one split ('train', 'valid' or 'full') in file order."""
    if root is None:
        raise ValueError(f"{flag_prefix}_root is required (the {LAYOUT.folder}/{LAYOUT.root_below_folder} folder)")
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{flag_prefix}_root: folder '{root}' does not exist")
    first_images = sorted(glob.glob(os.path.join(root, "*" + FIRST)))
    if not first_images:
        raise FileNotFoundError(f"{flag_prefix}_root: no FlyingChairs pairs (NNNNN{FIRST}) in '{root}'")
    pairs = []
    for image1 in first_images:
        stem = image1[:-len(FIRST)]
        image2, flow = stem + SECOND, stem + FLOW
        for path in (image2, flow):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{flag_prefix}_root: '{path}' is missing (it belongs to '{image1}')")
        pairs.append((image1, image2, flow, os.path.basename(stem)))
    if dstype == "full":
        return pairs
    split_file = find_split_file(root)
    if split_file is None:
        raise FileNotFoundError(f"{flag_prefix}: the {dstype} split needs the official {SPLIT_FILENAME} "
                                f"(1 = train, 2 = valid) in '{root}' or its parent; use FlyingChairsFull "
                                f"for all pairs")
    wanted = 1 if dstype == "train" else 2
    return [pair for pair, label in zip(pairs, read_split(split_file, len(pairs))) if label == wanted]


class _FlyingChairs(FlowPairDataset):
    """A FlyingChairs split ('train', 'valid' or 'full': the class attribute dstype); jitter off by default."""

    dstype = "full"

    def __init__(self, args: Optional[Namespace], root: str,
                 photometric_augmentations: Union[bool, Dict[str, float], None] = False,
                 random_crop: Sequence[int] = (-1, -1), num_workers: int = 12, num_examples: int = -1, *,
                 flag_prefix: Optional[str] = None) -> None:
        """`flag_prefix` (keyword-only: no flag) is the category main.py built it for, named in errors."""
        flag_prefix = dataset_flag_prefix(flag_prefix, self)
        super().__init__(args, flyingchairs_pairs(root, self.dstype, flag_prefix), num_examples,
                         photometric_augmentations, random_crop, flag_prefix)


@DATASETS.register("FlyingChairsTrain")
class FlyingChairsTrain(_FlyingChairs):
    """FlyingChairs training split (label 1 of the split file), photometric jitter on by default."""

    dstype = "train"

    def __init__(self, args: Optional[Namespace], root: str,
                 photometric_augmentations: Union[bool, Dict[str, float], None] = True,
                 random_crop: Sequence[int] = (-1, -1), num_workers: int = 12, num_examples: int = -1, *,
                 flag_prefix: Optional[str] = None) -> None:
        super().__init__(args, root, photometric_augmentations, random_crop, num_workers, num_examples,
                         flag_prefix=flag_prefix)


@DATASETS.register("FlyingChairsValid")
class FlyingChairsValid(_FlyingChairs):
    """FlyingChairs validation split (label 2 of the split file)."""

    dstype = "valid"


@DATASETS.register("FlyingChairsFull")
class FlyingChairsFull(_FlyingChairs):
    """All FlyingChairs pairs (no split file needed)."""

    dstype = "full"
