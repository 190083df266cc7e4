"""Checks that a dataset folder has the layout its dataset classes read (spec §5.1), before any training.

`verify(name, root, deep)` returns a `Report`: one row per split (sequences, frames), the problems found
(each one line that names the folder and the fix), notes on what differs from the published dataset
without stopping its dataset classes (generated and partial trees differ), and, for the real datasets,
the totals their authors publish. `deep=True` also decodes every frame. The dataset classes run the
cheap part at the start of training (`gopro_common.nesting_hint`: the layout found one level down or
up names the folder to pass). Each dataset's layout itself is described once, by its reader module's
`LAYOUT` (a `gopro_common.DatasetLayout`), collected in LAYOUTS for scripts/get_data.py and DRY_RUN.
"""
import dataclasses
import glob
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from datasets import flyingchairs, gopro_nah, gopro_su, sintel
from datasets.gopro_common import DatasetLayout, nesting_hint
from datasets.gopro_su import VALIDATION_FRAMES, VALIDATION_SEQUENCES

# Every dataset's layout, as its reader module describes it (scripts/get_data.py's names are the keys).
LAYOUTS: Dict[str, DatasetLayout] = {layout.name: layout for layout in (gopro_nah.LAYOUT, gopro_su.LAYOUT,
                                                                         flyingchairs.LAYOUT, sintel.LAYOUT)}
# Published sizes: (sequences, frames) per split, where known.
KNOWN_TOTALS: Dict[str, Dict[str, Tuple[int, int]]] = {name: layout.published for name, layout in LAYOUTS.items()
                                                       if layout.published}


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
    extensions = (gopro_nah.EXTENSION,)
    for split in gopro_nah.LAYOUT.top_level:
        sequences = _paired(report, split, report.root / split, gopro_nah.INPUTS, gopro_nah.TARGETS, extensions, deep)
        for sequence in sequences:
            gamma = _frames(sequence / gopro_nah.GAMMA_INPUTS, extensions)
            if gamma and [p.stem for p in gamma] != [p.stem for p in _frames(sequence / gopro_nah.TARGETS,
                                                                             extensions)]:
                report.problems.append(f"'{sequence / gopro_nah.GAMMA_INPUTS}': its frames do not match "
                                       f"{gopro_nah.TARGETS}/")


def _gopro_su(report: Report, deep: bool) -> None:
    extensions = (gopro_su.EXTENSION, ".jpeg")
    where = report.root / gopro_su.QUANTITATIVE
    sequences = _paired(report, "quantitative", where, gopro_su.INPUTS, gopro_su.TARGETS, extensions, deep)
    names = {p.name: p for p in sequences}
    missing = [name for name in VALIDATION_SEQUENCES if name not in names]
    if sequences and len(missing) == len(VALIDATION_SEQUENCES):  # GoProSuValid would have nothing to read
        report.problems.append(f"no validation sequence in '{where}' (GoProSuValid reads {', '.join(missing)})")
    elif sequences and missing:  # generated data has fewer: GoProSuValid reads the ones there are
        report.notes.append(f"{len(missing)} of Su's {len(VALIDATION_SEQUENCES)} validation sequences are not in "
                            f"'{where}' ({', '.join(missing)}); GoProSuValid reads the "
                            f"{len(VALIDATION_SEQUENCES) - len(missing)} there")
    for name in VALIDATION_SEQUENCES:
        if name in names and len(_frames(names[name] / gopro_su.INPUTS, extensions)) <= max(VALIDATION_FRAMES):
            report.problems.append(f"validation sequence '{names[name]}' has fewer than "
                                   f"{max(VALIDATION_FRAMES) + 1} frames")
    if (report.root / gopro_su.QUALITATIVE).is_dir():
        _paired(report, "qualitative", report.root / gopro_su.QUALITATIVE, gopro_su.INPUTS, None, extensions, deep)


def _flyingchairs(report: Report, deep: bool) -> None:
    first_ending, second_ending, flow_ending = flyingchairs.FIRST, flyingchairs.SECOND, flyingchairs.FLOW
    first = sorted(glob.glob(os.path.join(glob.escape(str(report.root)), "*" + first_ending)))
    stems = [Path(p).name[:-len(first_ending)] for p in first]
    incomplete = [s for s in stems if not (report.root / f"{s}{second_ending}").is_file()
                  or not (report.root / f"{s}{flow_ending}").is_file()]
    if not stems:
        report.problems.append(f"no NNNNN{first_ending} files in '{report.root}' "
                               f"({flyingchairs.LAYOUT.folder}/{flyingchairs.LAYOUT.root_below_folder})")
    report.problems += [f"pair {s} in '{report.root}' lacks its {second_ending} or {flow_ending}"
                        for s in incomplete[:5]]
    report.rows.append(("pairs", 1, len(stems)))
    split_file = flyingchairs.SPLIT_FILENAME
    if not any((folder / split_file).is_file() for folder in (report.root, report.root.parent)):
        report.problems.append(f"no {split_file} in '{report.root}' or its parent: FlyingChairsTrain/Valid "
                               f"need it (FlyingChairsFull does not)")
    if deep:
        _decode(report, [Path(p) for p in first] + [report.root / f"{s}{second_ending}" for s in stems])


def _sintel(report: Report, deep: bool) -> None:
    for dstype in sintel.PASSES:
        _paired(report, f"training/{dstype}", report.root / "training" / dstype, ".", None, (".png",), deep)
    flow = report.root / "training" / sintel.FLOW
    scenes = sorted(p for p in flow.iterdir() if p.is_dir()) if flow.is_dir() else []
    report.rows.append((f"training/{sintel.FLOW}", len(scenes), sum(len(list(s.glob("*.flo"))) for s in scenes)))
    if not scenes:
        report.problems.append(f"no flow scenes in '{flow}'")


# How `verify` checks each dataset of LAYOUTS, beyond the top-level folders its description names.
CHECKS: Dict[str, Callable[[Report, bool], None]] = {
    "gopro_nah": _gopro_nah,
    "gopro_su": _gopro_su,
    "flyingchairs": _flyingchairs,
    "sintel": _sintel,
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
    """Check `root` against the layout of dataset `name` (a key of LAYOUTS): the reader's root, not the download's
    folder (`LAYOUTS[name].reader_root` gives it)."""
    check, expected = CHECKS[name], LAYOUTS[name].top_level
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
