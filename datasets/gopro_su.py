"""GoPro data of Su et al. (DeepVideoDeblurring_Dataset), spec §5.1.

`<root>/quantitative_datasets/<SEQ>/{input,GT}/*.jpg` (blurry and sharp) and
`<root>/qualitative_datasets/<SEQ>/input/*.jpg` (real blurry videos without ground truth).
The validation split is Su et al.'s: ten sequences, 30 fixed frames each. GoProSuQualitative (broken
in the original) works here for inference: its examples have no `target1`.
"""
import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from datasets.gopro_common import (
    Augmentation,
    FrameSequence,
    GoProSequenceDataset,
    checked_root,
    paired_sequence,
    parse_random_crop,
    parse_random_scales,
    sequence_folders,
)
from datasets.registry import DATASETS

LAYOUT = ("<root>/quantitative_datasets/<SEQ>/{input,GT}/*.jpg and <root>/qualitative_datasets/<SEQ>/input/*.jpg "
          "(the DeepVideoDeblurring_Dataset folder)")

# Su et al.'s validation sequences (their GitHub issue #2), seq01 .. seq10.
VALIDATION_SEQUENCES = ("IMG_0030", "IMG_0049", "IMG_0021", "720p_240fps_2", "IMG_0032", "IMG_0033", "IMG_0031",
                        "IMG_0003", "IMG_0039", "IMG_0037")
# 0-based positions in the sorted frame list of every validation sequence.
VALIDATION_FRAMES = (2, 5, 8, 11, 15, 18, 21, 24, 28, 31, 34, 38, 41, 44, 47, 51, 54, 57, 60, 64, 67, 70, 74, 77,
                     80, 83, 87, 90, 93, 97)
DSTYPES = ("train", "valid", "full", "qualitative")
STRONG_SCALES_MIN = 0.25


def su_sequences(root: Optional[str], dstype: str) -> List[FrameSequence]:
    """The sequences of a split: train (not validation), valid, full (all) or qualitative (no GT)."""
    if dstype not in DSTYPES:
        raise ValueError(f"GoPro (Su) dstype must be one of {', '.join(DSTYPES)}, got {dstype!r}")
    path = checked_root(root, "GoPro (Su)", LAYOUT)
    subfolder = "qualitative_datasets" if dstype == "qualitative" else "quantitative_datasets"
    if not (path / subfolder).is_dir():
        hint = (f" (did you mean '{path / 'DeepVideoDeblurring_Dataset'}'?)"
                if (path / "DeepVideoDeblurring_Dataset").is_dir() else "")
        raise FileNotFoundError(f"GoPro (Su): folder '{path / subfolder}' does not exist{hint}; expected {LAYOUT}")
    folders = sequence_folders(path / subfolder, "GoPro (Su)")
    if dstype == "qualitative":
        return [paired_sequence(f.name, f / "input", None, ".jpg") for f in folders]
    if dstype == "train":
        folders = [f for f in folders if f.name not in VALIDATION_SEQUENCES]
    elif dstype == "valid":
        folders = [f for f in folders if f.name in VALIDATION_SEQUENCES]
    if not folders:
        which = "validation" if dstype == "valid" else "training (non-validation)"
        raise ValueError(f"GoPro (Su): no {which} sequences in '{path / subfolder}' "
                         f"(validation sequences: {', '.join(VALIDATION_SEQUENCES)})")
    return [paired_sequence(f.name, f / "input", f / "GT", ".jpg") for f in folders]


def validation_centres(sequences: Sequence[FrameSequence]) -> Dict[str, List[int]]:
    """The fixed validation frames of every sequence; a sequence too short for them is an error."""
    centres = {}
    for sequence in sequences:
        if len(sequence) <= max(VALIDATION_FRAMES):
            raise ValueError(f"GoPro (Su): validation sequence '{sequence.name}' has {len(sequence)} frames, but "
                             f"the validation frames go up to index {max(VALIDATION_FRAMES)} "
                             f"(needs >= {max(VALIDATION_FRAMES) + 1} frames)")
        centres[sequence.name] = list(VALIDATION_FRAMES)
    return centres


def _flags(arguments: dict) -> dict:
    """A public constructor's keyword flags, to pass on to GoProSu (drops self, args, root, __class__)."""
    return {k: v for k, v in arguments.items() if k not in ("self", "args", "root", "__class__")}


class GoProSu(GoProSequenceDataset):
    """Su et al.'s GoPro frames of one split as N-frame windows (not registered; see the subclasses)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, dstype: str, *, random_brightness: bool,
                 random_channel_permutation: bool, random_contrast: bool, random_crop: Optional[Sequence[int]],
                 random_flips: bool, random_hue: bool, random_multiplicative_colors: bool, random_noise: bool,
                 random_reverse: bool, random_rotate: bool, random_saturation: bool, random_scales: Optional[str],
                 sequence_length: int, num_samples_per_example: int, num_workers: int, num_examples: int,
                 cache_dir: Optional[str]) -> None:
        augmentation = Augmentation(
            random_crop=parse_random_crop(random_crop), random_scales=parse_random_scales(random_scales),
            random_scales_min=STRONG_SCALES_MIN, random_flips=bool(random_flips), random_rotate=bool(random_rotate),
            random_multiplicative_colors=bool(random_multiplicative_colors),
            random_brightness=bool(random_brightness), random_contrast=bool(random_contrast),
            random_saturation=bool(random_saturation), random_hue=bool(random_hue),
            random_channel_permutation=bool(random_channel_permutation), random_noise=bool(random_noise))
        self.root = str(Path(root).expanduser()) if root is not None else None
        self.dstype = dstype
        sequences = su_sequences(root, dstype)
        super().__init__(sequences=sequences, centres=validation_centres(sequences) if dstype == "valid" else None,
                         sequence_length=sequence_length, num_samples_per_example=num_samples_per_example,
                         num_examples=num_examples, num_workers=num_workers, random_reverse=random_reverse,
                         augmentation=augmentation, description=f"{type(self).__name__} ({dstype})",
                         cache_dir=cache_dir, dataset_root=self.root)


@DATASETS.register("GoProSuQuantitativeTrain")
class GoProQuantitativeTrain(GoProSu):
    """Su et al.'s training sequences (all but the ten validation ones), all frames; no reversal by default."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, random_brightness: bool = False,
                 random_channel_permutation: bool = False, random_contrast: bool = False,
                 random_crop: Sequence[int] = (-1, -1), random_flips: bool = True, random_hue: bool = False,
                 random_multiplicative_colors: bool = False, random_noise: bool = False, random_reverse: bool = False,
                 random_rotate: bool = True, random_saturation: bool = False, random_scales: Optional[str] = "none",
                 sequence_length: int = 5, num_samples_per_example: int = 8, num_workers: int = 12,
                 num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "train", **_flags(locals()))


@DATASETS.register("GoProSuQuantitativeValid")
class GoProQuantitativeValid(GoProSu):
    """Su et al.'s validation split: 30 fixed frames of each validation sequence, full frames, no augmentation."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, random_brightness: bool = False,
                 random_channel_permutation: bool = False, random_contrast: bool = False,
                 random_crop: Sequence[int] = (-1, -1), random_flips: bool = False, random_hue: bool = False,
                 random_multiplicative_colors: bool = False, random_noise: bool = False, random_reverse: bool = False,
                 random_rotate: bool = False, random_saturation: bool = False, random_scales: Optional[str] = None,
                 sequence_length: int = 5, num_samples_per_example: int = 1, num_workers: int = 12,
                 num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "valid", **_flags(locals()))


@DATASETS.register("GoProSuQuantitativeFull")
class GoProQuantitativeFull(GoProSu):
    """All of Su et al.'s quantitative sequences and frames, with augmentation on by default."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, random_brightness: bool = True,
                 random_channel_permutation: bool = False, random_contrast: bool = True,
                 random_crop: Sequence[int] = (-1, -1), random_flips: bool = True, random_hue: bool = True,
                 random_multiplicative_colors: bool = False, random_noise: bool = False, random_reverse: bool = True,
                 random_rotate: bool = True, random_saturation: bool = False, random_scales: Optional[str] = "none",
                 sequence_length: int = 5, num_samples_per_example: int = 8, num_workers: int = 12,
                 num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "full", **_flags(locals()))


@DATASETS.register("GoProSuQualitative")
class GoProQualitative(GoProSu):
    """Su et al.'s real blurry videos (no ground truth): examples carry inputs only, for inference."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, random_brightness: bool = False,
                 random_channel_permutation: bool = False, random_contrast: bool = False,
                 random_crop: Sequence[int] = (-1, -1), random_flips: bool = False, random_hue: bool = False,
                 random_multiplicative_colors: bool = False, random_noise: bool = False, random_reverse: bool = False,
                 random_rotate: bool = False, random_saturation: bool = False, random_scales: Optional[str] = None,
                 sequence_length: int = 5, num_samples_per_example: int = 1, num_workers: int = 12,
                 num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "qualitative", **_flags(locals()))
