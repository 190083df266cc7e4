"""GoPro data of Su et al. (DeepVideoDeblurring_Dataset), spec §5.1.

`<root>/quantitative_datasets/<SEQ>/{input,GT}/*.jpg` (blurry and sharp) and
`<root>/qualitative_datasets/<SEQ>/input/*.jpg` (real blurry videos without ground truth).
The validation split is Su et al.'s: ten sequences, 30 fixed frames each. GoProSuQualitative (broken
in the original) works here for inference: its examples have no `target1`.
"""
import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

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

# DeepVideoDeblurring_Dataset's layout, the one description its reader, get_data.py (--verify) and DRY_RUN use.
LAYOUT = DatasetLayout("gopro_su", "DeepVideoDeblurring_Dataset",
                       "<root>/quantitative_datasets/<SEQ>/{input,GT}/*.jpg and <root>/qualitative_datasets/<SEQ>/"
                       "input/*.jpg (the DeepVideoDeblurring_Dataset folder)", top_level=("quantitative_datasets",))
QUANTITATIVE, QUALITATIVE = "quantitative_datasets", "qualitative_datasets"
INPUTS, TARGETS, EXTENSION = "input", "GT", ".jpg"  # a sequence folder's contents

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
    path = checked_root(root, "GoPro (Su)", LAYOUT.description)
    subfolder = QUALITATIVE if dstype == "qualitative" else QUANTITATIVE
    if not (path / subfolder).is_dir():
        hint = nesting_hint(path, (subfolder,))
        raise FileNotFoundError(f"GoPro (Su): folder '{path / subfolder}' does not exist"
                                + (f"; {hint}" if hint else f"; expected {LAYOUT.description}"))
    folders = sequence_folders(path / subfolder, "GoPro (Su)")
    if dstype == "qualitative":
        return [paired_sequence(f.name, f / INPUTS, None, EXTENSION) for f in folders]
    if dstype == "train":
        folders = [f for f in folders if f.name not in VALIDATION_SEQUENCES]
    elif dstype == "valid":
        folders = [f for f in folders if f.name in VALIDATION_SEQUENCES]
    if not folders:
        which = "validation" if dstype == "valid" else "training (non-validation)"
        raise ValueError(f"GoPro (Su): no {which} sequences in '{path / subfolder}' "
                         f"(validation sequences: {', '.join(VALIDATION_SEQUENCES)})")
    return [paired_sequence(f.name, f / INPUTS, f / TARGETS, EXTENSION) for f in folders]


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


class GoProSu(GoProSequenceDataset):
    """Su et al.'s GoPro frames of one split as N-frame windows (not registered: its split classes below are)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, dstype: str, **flags: Any) -> None:
        self.root = str(Path(root).expanduser()) if root is not None else None
        self.dstype = dstype
        sequences = su_sequences(root, dstype)
        super().__init__(sequences=sequences, centres=validation_centres(sequences) if dstype == "valid" else None,
                         sequence_length=flags["sequence_length"],
                         num_samples_per_example=flags["num_samples_per_example"],
                         num_examples=flags["num_examples"], random_reverse=flags["random_reverse"],
                         augmentation=augmentation_from_flags(flags, STRONG_SCALES_MIN),
                         description=f"{type(self).__name__} ({dstype})", cache_dir=flags["cache_dir"],
                         dataset_root=self.root)


@DATASETS.register()
@split_variant("train", {**EVALUATION, **TRAINING, "random_reverse": False})
class GoProSuQuantitativeTrain(GoProSu):
    """Su et al.'s training sequences (all but the ten validation ones), all frames; no reversal by default."""


@DATASETS.register()
@split_variant("valid", EVALUATION)
class GoProSuQuantitativeValid(GoProSu):
    """Su et al.'s validation split: 30 fixed frames of each validation sequence, full frames, no augmentation."""


@DATASETS.register()
@split_variant("full", {**EVALUATION, **TRAINING, **PHOTOMETRIC})
class GoProSuQuantitativeFull(GoProSu):
    """All of Su et al.'s quantitative sequences and frames, with augmentation on by default."""


@DATASETS.register()
@split_variant("qualitative", EVALUATION)
class GoProSuQualitative(GoProSu):
    """Su et al.'s real blurry videos (no ground truth): examples carry inputs only, for inference."""
