"""Blurry/sharp video frame pairs in any folder layout, given by two folder templates.

A template is a path below the root with the placeholders `{split}` (the `split` flag) and `{seq}` (one
folder per sequence, a whole folder name): the defaults read `<root>/<split>_blur/<seq>/*.png` and
`<root>/<split>_sharp/<seq>/*.png`. Another layout is two flags, e.g. one with the sequence in the middle,
`<root>/<split>/<seq>/Blur/RGB` (`--*_blur_template={split}/{seq}/Blur/RGB`,
`--*_sharp_template={split}/{seq}/Sharp/RGB`). Every sequence of the blurry side needs its sharp folder,
with the same number of equally named frames. Frames, windows, augmentation flags and the frame cache are
the GoPro classes' (datasets.gopro_common); PairedFramesTrain has GoProNahTrain's defaults,
PairedFramesTest GoProNahTest's.
"""
import argparse
import string
from pathlib import Path, PurePosixPath
from typing import Any, List, Optional, Tuple

from datasets.gopro_common import FrameSequence, GoProSequenceDataset, checked_root, paired_sequence, sequence_folders
from datasets.gopro_variants import EVALUATION, TRAINING, augmentation_from_flags, split_variant
from datasets.registry import DATASETS

SEQUENCE = "{seq}"
PLACEHOLDERS = frozenset({"split", "seq"})


def split_template(template: str, split: str, flag: str) -> Tuple[Path, Path]:
    """(folder holding the sequence folders, path from a sequence folder to its frames) of a template."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:  # an unpaired brace
        fields = {"?"}
    parts = PurePosixPath(template).parts
    if PurePosixPath(template).is_absolute() or parts.count(SEQUENCE) != 1 or not fields <= PLACEHOLDERS:
        raise ValueError(f"{flag}={template!r} must be a relative path with {SEQUENCE} as one whole folder "
                         f"name and no placeholder but {{split}} and {{seq}}, e.g. '{{split}}_blur/{{seq}}'")
    index = parts.index(SEQUENCE)
    formatted = [part.format(split=split, seq=SEQUENCE) for part in parts]
    return Path(*formatted[:index]), Path(*formatted[index + 1:])  # Path() is '.', which joins to nothing


def paired_sequences(root: Optional[str], split: str, blur_template: str, sharp_template: str,
                     frame_extension: str) -> List[FrameSequence]:
    """Every sequence under the blurry template's folder, paired with its frames under the sharp template."""
    layout = f"<root>/{blur_template} and <root>/{sharp_template} holding *{frame_extension} frames"
    path = checked_root(root, "PairedFrames", layout)
    if blur_template == sharp_template:
        raise ValueError(f"blur_template and sharp_template are both {blur_template!r}: the targets would be the "
                         f"blurry frames themselves")
    blur_parent, blur_rest = split_template(blur_template, split, "blur_template")
    sharp_parent, sharp_rest = split_template(sharp_template, split, "sharp_template")
    if not (path / blur_parent).is_dir():
        raise FileNotFoundError(f"PairedFrames: folder '{path / blur_parent}' does not exist (split={split!r}); "
                                f"expected {layout}")
    return [paired_sequence(folder.name, folder / blur_rest, path / sharp_parent / folder.name / sharp_rest,
                            frame_extension)
            for folder in sequence_folders(path / blur_parent, "PairedFrames")]


class PairedFrames(GoProSequenceDataset):
    """Paired blurry/sharp frames of one split as N-frame windows (not registered: its split classes below are)."""

    def __init__(self, args: Optional[argparse.Namespace], root: str, dstype: str, **flags: Any) -> None:
        self.root = str(Path(root).expanduser()) if root is not None else None
        self.dstype = flags["split"]
        sequences = paired_sequences(root, flags["split"], flags["blur_template"], flags["sharp_template"],
                                     flags["frame_extension"])
        super().__init__(sequences=sequences, centres=None, sequence_length=flags["sequence_length"],
                         num_samples_per_example=flags["num_samples_per_example"],
                         num_examples=flags["num_examples"], random_reverse=flags["random_reverse"],
                         augmentation=augmentation_from_flags(flags, flags["random_scales_min"]),
                         description=f"{type(self).__name__} ({flags['split']})", cache_dir=flags["cache_dir"],
                         dataset_root=self.root)


_ROOT_DOC = "the folder below which blur_template and sharp_template lie"
TEMPLATE_DEFAULTS = {"blur_template": "{split}_blur/{seq}", "sharp_template": "{split}_sharp/{seq}",
                     "frame_extension": ".png"}

@DATASETS.register()
@split_variant("train", {"split": "train", **TEMPLATE_DEFAULTS, **EVALUATION, **TRAINING, "random_scales_min": 0.25},
               _ROOT_DOC)
class PairedFramesTrain(PairedFrames):
    """Blurry/sharp frame pairs in a folder layout given by templates (default <root>/train_blur/<seq>, <root>/train_sharp/<seq>); GoProNahTrain's augmentation defaults."""  # noqa: E501 -- one line: --help's summary


@DATASETS.register()
@split_variant("test", {"split": "test", **TEMPLATE_DEFAULTS, **EVALUATION, "random_scales_min": 1.0}, _ROOT_DOC)
class PairedFramesTest(PairedFrames):
    """Blurry/sharp frame pairs in a folder layout given by templates (default <root>/test_blur/<seq>, <root>/test_sharp/<seq>); full frames, no augmentation."""  # noqa: E501 -- one line: --help's summary
