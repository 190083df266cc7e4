"""GoPro dataset of Nah et al. (GOPRO_Large), spec §5.1: `<root>/{train,test}/<SEQ>/{blur,blur_gamma,sharp}/*.png`.

GoProNahTrain/Test/Full read the `blur` inputs by default; the GoProNahGamma* variants are the same
datasets reading `blur_gamma` (gamma_corrected_data=True by default). Unlike the original's
functools.partial entries, they are real classes, so their flags exist and they can be constructed.
"""
import argparse
from pathlib import Path
from typing import Any, List, Optional

from datasets.gopro_common import (
    DatasetLayout,
    FrameSequence,
    GoProSequenceDataset,
    checked_root,
    nesting_hint,
    paired_sequence,
    sequence_folders,
)
from datasets.gopro_variants import EVALUATION, PHOTOMETRIC, TRAINING, augmentation_from_flags, split_variant
from datasets.registry import DATASETS

# GOPRO_Large's layout, the one description its reader, get_data.py (--verify) and DRY_RUN use; published sizes
# from Nah et al.'s (CVPR 2017) release.
LAYOUT = DatasetLayout("gopro_nah", "GOPRO_Large",
                       "<root>/{train,test}/<SEQ>/{blur,blur_gamma,sharp}/*.png (the GOPRO_Large folder)",
                       top_level=("train", "test"), published={"train": (22, 2103), "test": (11, 1111)})
INPUTS, GAMMA_INPUTS, TARGETS, EXTENSION = "blur", "blur_gamma", "sharp", ".png"  # a sequence folder's contents
DSTYPES = {"train": ("train",), "test": ("test",), "full": ("train", "test")}


def nah_sequences(root: Optional[str], dstype: str, gamma_corrected_data: bool) -> List[FrameSequence]:
    """All sequences of a split ('train', 'test' or 'full' = train then test), inputs blur or blur_gamma."""
    if dstype not in DSTYPES:
        raise ValueError(f"GoPro (Nah) dstype must be one of {', '.join(DSTYPES)}, got {dstype!r}")
    path = checked_root(root, "GoPro (Nah)", LAYOUT.description)
    input_name = GAMMA_INPUTS if gamma_corrected_data else INPUTS
    sequences = []
    for split in DSTYPES[dstype]:
        split_dir = path / split
        if not split_dir.is_dir():
            hint = nesting_hint(path, DSTYPES[dstype])
            raise FileNotFoundError(f"GoPro (Nah): split folder '{split_dir}' does not exist"
                                    + (f"; {hint}" if hint else f"; expected {LAYOUT.description}"))
        for folder in sequence_folders(split_dir, "GoPro (Nah)"):
            sequences.append(paired_sequence(folder.name, folder / input_name, folder / TARGETS, EXTENSION))
    return sequences


class GoProNah(GoProSequenceDataset):
    """Nah et al.'s GoPro frames of one split as N-frame windows (not registered: its split classes below are)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, dstype: str, **flags: Any) -> None:
        self.root = str(Path(root).expanduser()) if root is not None else None
        self.dstype = dstype
        self.gamma_corrected_data = bool(flags["gamma_corrected_data"])
        super().__init__(sequences=nah_sequences(root, dstype, self.gamma_corrected_data), centres=None,
                         sequence_length=flags["sequence_length"],
                         num_samples_per_example=flags["num_samples_per_example"],
                         num_examples=flags["num_examples"], random_reverse=flags["random_reverse"],
                         augmentation=augmentation_from_flags(flags, flags["random_scales_min"]),
                         description=f"{type(self).__name__} ({dstype})", cache_dir=flags["cache_dir"],
                         dataset_root=self.root)


_BLUR = {"gamma_corrected_data": False}
_GAMMA = {"gamma_corrected_data": True}
_STRONG_SCALES = {"random_scales_min": 0.25}
_NO_SCALES = {"random_scales_min": 1.0}
_TRAIN = {**EVALUATION, **TRAINING, **_STRONG_SCALES}
_TEST = {**EVALUATION, **_NO_SCALES}
_FULL = {**EVALUATION, **TRAINING, **PHOTOMETRIC, **_STRONG_SCALES}



@DATASETS.register()
@split_variant("train", {**_BLUR, **_TRAIN})
class GoProNahTrain(GoProNah):
    """GOPRO_Large training split; flips, rotations and reversal on by default, 8 samples per example."""


@DATASETS.register()
@split_variant("test", {**_BLUR, **_TEST})
class GoProNahTest(GoProNah):
    """GOPRO_Large test split, full frames, no augmentation, one sample per example."""


@DATASETS.register()
@split_variant("full", {**_BLUR, **_FULL})
class GoProNahFull(GoProNah):
    """GOPRO_Large train + test splits with geometric and photometric augmentation on by default."""


@DATASETS.register()
@split_variant("train", {**_GAMMA, **_TRAIN})
class GoProNahGammaTrain(GoProNah):
    """GoProNahTrain reading the `blur_gamma` inputs (blur averaged in linear light)."""


@DATASETS.register()
@split_variant("test", {**_GAMMA, **_TEST})
class GoProNahGammaTest(GoProNah):
    """GoProNahTest reading the `blur_gamma` inputs (blur averaged in linear light)."""


@DATASETS.register()
@split_variant("full", {**_GAMMA, **_FULL})
class GoProNahGammaFull(GoProNah):
    """GoProNahFull reading the `blur_gamma` inputs (blur averaged in linear light)."""
