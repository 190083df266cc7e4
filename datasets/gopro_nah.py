"""GoPro dataset of Nah et al. (GOPRO_Large), spec §5.1: `<root>/{train,test}/<SEQ>/{blur,blur_gamma,sharp}/*.png`.

GoProNahTrain/Test/Full read the `blur` inputs by default; the GoProNahGamma* variants are the same
datasets reading `blur_gamma` (gamma_corrected_data=True by default). Unlike the original's
functools.partial entries, they are real classes, so their flags exist and they can be constructed.
"""
import argparse
from pathlib import Path
from typing import List, Optional, Sequence

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

LAYOUT = "<root>/{train,test}/<SEQ>/{blur,blur_gamma,sharp}/*.png (the GOPRO_Large folder)"
DSTYPES = {"train": ("train",), "test": ("test",), "full": ("train", "test")}


def nah_sequences(root: Optional[str], dstype: str, gamma_corrected_data: bool) -> List[FrameSequence]:
    """All sequences of a split ('train', 'test' or 'full' = train then test), inputs blur or blur_gamma."""
    if dstype not in DSTYPES:
        raise ValueError(f"GoPro (Nah) dstype must be one of {', '.join(DSTYPES)}, got {dstype!r}")
    path = checked_root(root, "GoPro (Nah)", LAYOUT)
    input_name = "blur_gamma" if gamma_corrected_data else "blur"
    sequences = []
    for split in DSTYPES[dstype]:
        split_dir = path / split
        if not split_dir.is_dir():
            hint = f" (did you mean '{path / 'GOPRO_Large'}'?)" if (path / "GOPRO_Large").is_dir() else ""
            raise FileNotFoundError(f"GoPro (Nah): split folder '{split_dir}' does not exist{hint}; "
                                    f"expected {LAYOUT}")
        for folder in sequence_folders(split_dir, "GoPro (Nah)"):
            sequences.append(paired_sequence(folder.name, folder / input_name, folder / "sharp", ".png"))
    return sequences


def _flags(arguments: dict) -> dict:
    """A public constructor's keyword flags, to pass on to GoProNah (drops self, args, root, __class__)."""
    return {k: v for k, v in arguments.items() if k not in ("self", "args", "root", "__class__")}


class GoProNah(GoProSequenceDataset):
    """Nah et al.'s GoPro frames of one split as N-frame windows (not registered; see the subclasses)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, dstype: str, *,
                 gamma_corrected_data: bool, random_brightness: bool, random_channel_permutation: bool,
                 random_contrast: bool, random_crop: Optional[Sequence[int]], random_flips: bool, random_hue: bool,
                 random_multiplicative_colors: bool, random_noise: bool, random_reverse: bool,
                 random_rotate: bool, random_saturation: bool, random_scales: Optional[str],
                 random_scales_min: float, sequence_length: int, num_samples_per_example: int,
                 num_workers: int, num_examples: int, cache_dir: Optional[str]) -> None:
        augmentation = Augmentation(
            random_crop=parse_random_crop(random_crop), random_scales=parse_random_scales(random_scales),
            random_scales_min=random_scales_min, random_flips=bool(random_flips), random_rotate=bool(random_rotate),
            random_multiplicative_colors=bool(random_multiplicative_colors),
            random_brightness=bool(random_brightness), random_contrast=bool(random_contrast),
            random_saturation=bool(random_saturation), random_hue=bool(random_hue),
            random_channel_permutation=bool(random_channel_permutation), random_noise=bool(random_noise))
        self.root = str(Path(root).expanduser()) if root is not None else None
        self.dstype = dstype
        self.gamma_corrected_data = bool(gamma_corrected_data)
        super().__init__(sequences=nah_sequences(root, dstype, bool(gamma_corrected_data)), centres=None,
                         sequence_length=sequence_length, num_samples_per_example=num_samples_per_example,
                         num_examples=num_examples, num_workers=num_workers, random_reverse=random_reverse,
                         augmentation=augmentation, description=f"{type(self).__name__} ({dstype})",
                         cache_dir=cache_dir, dataset_root=self.root)


@DATASETS.register("GoProNahTrain")
class GoProNahTrain(GoProNah):
    """GOPRO_Large training split; flips, rotations and reversal on by default, 8 samples per example."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, gamma_corrected_data: bool = False,
                 random_brightness: bool = False, random_channel_permutation: bool = False,
                 random_contrast: bool = False, random_crop: Sequence[int] = (-1, -1), random_flips: bool = True,
                 random_hue: bool = False, random_multiplicative_colors: bool = False, random_noise: bool = False,
                 random_reverse: bool = True, random_rotate: bool = True, random_saturation: bool = False,
                 random_scales: Optional[str] = "none", random_scales_min: float = 0.25, sequence_length: int = 5,
                 num_samples_per_example: int = 8, num_workers: int = 12, num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "train", **_flags(locals()))


@DATASETS.register("GoProNahTest")
class GoProNahTest(GoProNah):
    """GOPRO_Large test split, full frames, no augmentation, one sample per example."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, gamma_corrected_data: bool = False,
                 random_brightness: bool = False, random_channel_permutation: bool = False,
                 random_contrast: bool = False, random_crop: Sequence[int] = (-1, -1), random_flips: bool = False,
                 random_hue: bool = False, random_multiplicative_colors: bool = False, random_noise: bool = False,
                 random_reverse: bool = False, random_rotate: bool = False, random_saturation: bool = False,
                 random_scales: Optional[str] = None, random_scales_min: float = 1.0, sequence_length: int = 5,
                 num_samples_per_example: int = 1, num_workers: int = 12, num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "test", **_flags(locals()))


@DATASETS.register("GoProNahFull")
class GoProNahFull(GoProNah):
    """GOPRO_Large train + test splits with geometric and photometric augmentation on by default."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, gamma_corrected_data: bool = False,
                 random_brightness: bool = True, random_channel_permutation: bool = False,
                 random_contrast: bool = True, random_crop: Sequence[int] = (-1, -1), random_flips: bool = True,
                 random_hue: bool = True, random_multiplicative_colors: bool = False, random_noise: bool = False,
                 random_reverse: bool = True, random_rotate: bool = True, random_saturation: bool = False,
                 random_scales: Optional[str] = "none", random_scales_min: float = 0.25, sequence_length: int = 5,
                 num_samples_per_example: int = 8, num_workers: int = 12, num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "full", **_flags(locals()))


@DATASETS.register("GoProNahGammaTrain")
class GoProNahGammaTrain(GoProNah):
    """GoProNahTrain reading the `blur_gamma` inputs (blur averaged in linear light)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, gamma_corrected_data: bool = True,
                 random_brightness: bool = False, random_channel_permutation: bool = False,
                 random_contrast: bool = False, random_crop: Sequence[int] = (-1, -1), random_flips: bool = True,
                 random_hue: bool = False, random_multiplicative_colors: bool = False, random_noise: bool = False,
                 random_reverse: bool = True, random_rotate: bool = True, random_saturation: bool = False,
                 random_scales: Optional[str] = "none", random_scales_min: float = 0.25, sequence_length: int = 5,
                 num_samples_per_example: int = 8, num_workers: int = 12, num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "train", **_flags(locals()))


@DATASETS.register("GoProNahGammaTest")
class GoProNahGammaTest(GoProNah):
    """GoProNahTest reading the `blur_gamma` inputs (blur averaged in linear light)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, gamma_corrected_data: bool = True,
                 random_brightness: bool = False, random_channel_permutation: bool = False,
                 random_contrast: bool = False, random_crop: Sequence[int] = (-1, -1), random_flips: bool = False,
                 random_hue: bool = False, random_multiplicative_colors: bool = False, random_noise: bool = False,
                 random_reverse: bool = False, random_rotate: bool = False, random_saturation: bool = False,
                 random_scales: Optional[str] = None, random_scales_min: float = 1.0, sequence_length: int = 5,
                 num_samples_per_example: int = 1, num_workers: int = 12, num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "test", **_flags(locals()))


@DATASETS.register("GoProNahGammaFull")
class GoProNahGammaFull(GoProNah):
    """GoProNahFull reading the `blur_gamma` inputs (blur averaged in linear light)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, gamma_corrected_data: bool = True,
                 random_brightness: bool = True, random_channel_permutation: bool = False,
                 random_contrast: bool = True, random_crop: Sequence[int] = (-1, -1), random_flips: bool = True,
                 random_hue: bool = True, random_multiplicative_colors: bool = False, random_noise: bool = False,
                 random_reverse: bool = True, random_rotate: bool = True, random_saturation: bool = False,
                 random_scales: Optional[str] = "none", random_scales_min: float = 0.25, sequence_length: int = 5,
                 num_samples_per_example: int = 8, num_workers: int = 12, num_examples: int = -1,
                 cache_dir: Optional[str] = None) -> None:
        super().__init__(args, root, "full", **_flags(locals()))

