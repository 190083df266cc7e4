"""Checks that a dataset folder has the layout its dataset classes read (spec §5.1), before any training.

`verify(name, root, deep)` returns a `Report`: one row per split (sequences, frames), the problems found
(each one line that names the folder and the fix), notes on what differs from the published dataset
without stopping its dataset classes (generated and partial trees differ), and, for the real datasets,
the totals their authors publish. `deep=True` also decodes every frame. The dataset classes run the
cheap part at the start of training (`gopro_common.nesting_hint`: the layout found one level down or
up names the folder to pass).
"""
import dataclasses
import glob
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from datasets.flyingchairs import SPLIT_FILENAME
from datasets.gopro_common import nesting_hint
from datasets.gopro_su import VALIDATION_FRAMES, VALIDATION_SEQUENCES

# Published sizes: (sequences, frames) per split. GOPRO_Large: Nah et al. (CVPR 2017) release;
# FlyingChairs: 22,872 pairs (Dosovitskiy et al. 2015); MPI-Sintel: 23 training scenes with 1,041 flow fields.
KNOWN_TOTALS: Dict[str, Dict[str, Tuple[int, int]]] = {
    "gopro_nah": {"train": (22, 2103), "test": (11, 1111)},
    "flyingchairs": {"pairs": (1, 22872)},
    "sintel": {"training/flow": (23, 1041)},
}


@dataclasses.dataclass
class Report:
    """What `verify` found: rows (split, sequences, frames), problems (one line each), published totals."""

    name: str
    root: Path
    rows: List[Tuple[str, int, int]] = dataclasses.field(default_factory=list)
    problems: List[str] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)  # differs from the published dataset, still usable
    decoded: int = 0  # frames decoded (deep)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def comparison(self) -> str:
        """'matches', 'differs' (a count or a note) or 'unknown' (no published totals), against the release."""
        known = KNOWN_TOTALS.get(self.name, {})
        if self.notes or any(split in known and known[split] != (sequences, frames)
                             for split, sequences, frames in self.rows):
            return "differs"
        return "matches" if known else "unknown"

    def table(self) -> str:
        """The rows as an aligned text table, with the published totals where known."""
        known = KNOWN_TOTALS.get(self.name, {})
        lines = [f"{'split':<16} {'sequences':>9} {'frames':>8}  published"]
        for split, sequences, frames in self.rows:
            expected = known.get(split)
            note = "-" if expected is None else (
                "matches" if expected == (sequences, frames) else f"{expected[0]} / {expected[1]} (differs)")
            lines.append(f"{split:<16} {sequences:>9} {frames:>8}  {note}")
        return "\n".join(lines)


def _frames(folder: Path, extensions: Sequence[str]) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions) if folder.is_dir() else []


def _decode(report: Report, files: Sequence[Path]) -> None:
    """Decode every file; each unreadable one is a problem."""
    from utils.images import read_image  # decoding needs PIL/pyspng only for --deep

    for path in files:
        try:
            read_image(str(path))
        except (ValueError, OSError) as error:
            report.problems.append(f"unreadable frame '{path}': {error}")
        report.decoded += 1


def _paired(report: Report, split: str, parent: Path, input_name: str, target_name: Optional[str],
            extensions: Sequence[str], deep: bool) -> List[Path]:
    """Sequences under `parent` with equally named frames in `input_name` and `target_name`; one row."""
    sequences = sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
    if not sequences:
        report.problems.append(f"no sequence folders in '{parent}'")
        return []
    frames = 0
    for sequence in sequences:
        inputs = _frames(sequence / input_name, extensions)
        if not inputs:
            report.problems.append(f"'{sequence / input_name}' is missing or holds no {'/'.join(extensions)} frames")
            continue
        frames += len(inputs)
        if target_name is not None:
            targets = _frames(sequence / target_name, extensions)
            if [p.stem for p in inputs] != [p.stem for p in targets]:
                report.problems.append(f"'{sequence}': {len(inputs)} frames in {input_name}/ but {len(targets)} in "
                                       f"{target_name}/, or their names differ")
            if deep:
                _decode(report, targets)
        if deep:
            _decode(report, inputs)
    report.rows.append((split, len(sequences), frames))
    return sequences


def _gopro_nah(report: Report, deep: bool) -> None:
    for split in ("train", "test"):
        sequences = _paired(report, split, report.root / split, "blur", "sharp", (".png",), deep)
        for sequence in sequences:
            gamma = _frames(sequence / "blur_gamma", (".png",))
            if gamma and [p.stem for p in gamma] != [p.stem for p in _frames(sequence / "sharp", (".png",))]:
                report.problems.append(f"'{sequence / 'blur_gamma'}': its frames do not match sharp/")


def _gopro_su(report: Report, deep: bool) -> None:
    extensions = (".jpg", ".jpeg")
    sequences = _paired(report, "quantitative", report.root / "quantitative_datasets", "input", "GT", extensions,
                        deep)
    names = {p.name: p for p in sequences}
    missing = [name for name in VALIDATION_SEQUENCES if name not in names]
    where = report.root / "quantitative_datasets"
    if sequences and len(missing) == len(VALIDATION_SEQUENCES):  # GoProSuValid would have nothing to read
        report.problems.append(f"no validation sequence in '{where}' (GoProSuValid reads {', '.join(missing)})")
    elif sequences and missing:  # generated data has fewer: GoProSuValid reads the ones there are
        report.notes.append(f"{len(missing)} of Su's {len(VALIDATION_SEQUENCES)} validation sequences are not in "
                            f"'{where}' ({', '.join(missing)}); GoProSuValid reads the "
                            f"{len(VALIDATION_SEQUENCES) - len(missing)} there")
    for name in VALIDATION_SEQUENCES:
        if name in names and len(_frames(names[name] / "input", extensions)) <= max(VALIDATION_FRAMES):
            report.problems.append(f"validation sequence '{names[name]}' has fewer than "
                                   f"{max(VALIDATION_FRAMES) + 1} frames")
    if (report.root / "qualitative_datasets").is_dir():
        _paired(report, "qualitative", report.root / "qualitative_datasets", "input", None, extensions, deep)


def _flyingchairs(report: Report, deep: bool) -> None:
    first = sorted(glob.glob(os.path.join(glob.escape(str(report.root)), "*_img1.ppm")))
    stems = [Path(p).name[:-len("_img1.ppm")] for p in first]
    incomplete = [s for s in stems if not (report.root / f"{s}_img2.ppm").is_file()
                  or not (report.root / f"{s}_flow.flo").is_file()]
    if not stems:
        report.problems.append(f"no NNNNN_img1.ppm files in '{report.root}' (FlyingChairs_release/data)")
    report.problems += [f"pair {s} in '{report.root}' lacks its _img2.ppm or _flow.flo" for s in incomplete[:5]]
    report.rows.append(("pairs", 1, len(stems)))
    if not any((folder / SPLIT_FILENAME).is_file() for folder in (report.root, report.root.parent)):
        report.problems.append(f"no {SPLIT_FILENAME} in '{report.root}' or its parent: FlyingChairsTrain/Valid "
                               f"need it (FlyingChairsFull does not)")
    if deep:
        _decode(report, [Path(p) for p in first] + [report.root / f"{s}_img2.ppm" for s in stems])


def _sintel(report: Report, deep: bool) -> None:
    for dstype in ("clean", "final"):
        _paired(report, f"training/{dstype}", report.root / "training" / dstype, ".", None, (".png",), deep)
    flow = report.root / "training" / "flow"
    scenes = sorted(p for p in flow.iterdir() if p.is_dir()) if flow.is_dir() else []
    report.rows.append(("training/flow", len(scenes), sum(len(list(s.glob("*.flo"))) for s in scenes)))
    if not scenes:
        report.problems.append(f"no flow scenes in '{flow}'")


CHECKS: Dict[str, Tuple[Callable[[Report, bool], None], Tuple[str, ...]]] = {
    "gopro_nah": (_gopro_nah, ("train", "test")),
    "gopro_su": (_gopro_su, ("quantitative_datasets",)),
    "flyingchairs": (_flyingchairs, ()),
    "sintel": (_sintel, ("training",)),
}


def verify_paired_frames(root: Path, splits: Sequence[str], blur_template: str, sharp_template: str,
                         frame_extension: str, deep: bool = False) -> Report:
    """Check `root` against the layout PairedFramesTrain/PairedFramesTest read with these templates."""
    from datasets.paired_frames import paired_sequences  # the dataset's own discovery, so both agree

    report = Report("paired_frames", Path(root))
    if not report.root.is_dir():
        report.problems.append(f"'{report.root}' is not a folder")
        return report
    for split in splits:
        try:
            sequences = paired_sequences(str(report.root), split, blur_template, sharp_template, frame_extension)
        except (ValueError, OSError) as error:
            report.problems.append(f"split {split!r}: {error}")
            continue
        report.rows.append((split, len(sequences), sum(len(sequence) for sequence in sequences)))
        if deep:
            for sequence in sequences:
                _decode(report, [Path(f) for f in sequence.inputs + (sequence.targets or ())])
    return report


def verify(name: str, root: Path, deep: bool = False) -> Report:
    """Check `root` against the layout of dataset `name` (a key of CHECKS)."""
    check, expected = CHECKS[name]
    report = Report(name, Path(root))
    if not report.root.is_dir():
        report.problems.append(f"'{report.root}' is not a folder")
        return report
    hint = nesting_hint(report.root, expected) if expected else None
    if hint is not None:
        report.problems.append(f"'{report.root}' lacks {'/, '.join(expected)}/: {hint}")
        return report
    check(report, deep)
    return report
