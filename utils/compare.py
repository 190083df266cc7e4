"""Comparing runs from their per-frame records: which record a run is scored by, groups of runs that differ
only in their seed, paired bootstrap intervals over sequences, tables, and the original's `stats` and
`cleanup` summaries of an experiments folder. scripts/compare_runs.py is the command line around it.

Per-frame records (written by every evaluation):
    <run>/frames/<DatasetClass>/epoch-<NNN>.csv   sequence,frame,basename,<m1>,...,<mk>,input_<m1>,...
    <run>/frames/<DatasetClass>/epoch-<NNN>.json  {"dataset", "epoch", "checkpoint", "checkpoint_epoch", ...}
A run's value of a metric is the mean over its frames; a group's is the mean over its runs of those values.
"""
import csv
import fcntl
import glob
import io
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

FRAMES_FOLDER = "frames"
RECORD_PATTERN = re.compile(r"^epoch-(\d+)\.csv$")
INPUT_PREFIX = "input_"
RECORD_COLUMNS = ("sequence", "frame", "basename")
BOOTSTRAP_RESAMPLES = 10000
BOOTSTRAP_SEED = 0

# Stored arguments that do not change a run's result (where it ran and wrote, how fast, what it logged, and
# what started it): runs whose other arguments agree, --seed included or not, form one group.
IGNORED_KEYS = frozenset({
    "seed", "save", "prefix", "proctitle", "proctitle_name", "resume", "start_epoch", "config", "help", "cuda",
    "device", "actual_device", "non_default_args", "distributed_timeout_minutes", "compile", "channels_last"})
IGNORED_PREFIXES = ("checkpoint", "holistic_records", "logging_", "visualizer")
IGNORED_SUFFIXES = ("_num_workers", "_cache_dir", "_root")  # the data's location, not the data
# Files a prewarping network is read from: the same file may lie elsewhere on another machine.
BASENAME_KEYS = ("model_pretrained_pwcnet", "model_pretrained_flownet")


class CompareError(ValueError):
    """A folder that cannot be compared: one line naming it and what is missing."""


@dataclass
class Records:
    """One evaluation's per-frame records: metric names, per-frame values and what was evaluated."""

    folder: str  # <run>/frames/<DatasetClass>
    dataset: str
    epoch: int
    info: Dict[str, Any]
    metrics: List[str]
    frames: List[Dict[str, Any]]  # sequence, frame, basename, <metric>: float, input_<metric>: float

    @property
    def evaluated_epoch(self) -> int:
        """The epoch of the checkpoint that was evaluated (the record's own epoch for a training run)."""
        value = self.info.get("checkpoint_epoch")
        return int(value) if value is not None else self.epoch

    def means(self) -> Dict[str, float]:
        """Mean over frames of every metric and of its input value."""
        keys = self.metrics + [INPUT_PREFIX + m for m in self.metrics]
        return {key: float(np.mean([row[key] for row in self.frames])) for key in keys}

    def sequences(self) -> Dict[str, Tuple[int, Dict[str, float]]]:
        """Per sequence (in order of appearance): its number of frames and the mean of every metric and input."""
        grouped: Dict[str, List[Dict[str, Any]]] = {}
        for row in self.frames:
            grouped.setdefault(row["sequence"], []).append(row)
        keys = self.metrics + [INPUT_PREFIX + m for m in self.metrics]
        return {name: (len(rows), {key: float(np.mean([row[key] for row in rows])) for key in keys})
                for name, rows in grouped.items()}


def record_files(run: str) -> Dict[str, Dict[int, str]]:
    """The per-frame record CSVs of a run folder: dataset -> epoch -> file."""
    found: Dict[str, Dict[int, str]] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(run), FRAMES_FOLDER, "*", "epoch-*.csv"))):
        match = RECORD_PATTERN.match(os.path.basename(path))
        if match:
            found.setdefault(os.path.basename(os.path.dirname(path)), {})[int(match.group(1))] = path
    return found


def read_records(filename: str) -> Records:
    """One per-frame record CSV and its JSON; CompareError naming the file when it is not one."""
    folder, name = os.path.split(filename)
    epoch = int(RECORD_PATTERN.match(name).group(1))
    with open(filename, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if tuple(header[:3]) != RECORD_COLUMNS:
        raise CompareError(f"{filename}: not a per-frame record (its header starts with {header[:3]})")
    metrics = [key for key in header[3:] if not key.startswith(INPUT_PREFIX)]
    missing = [INPUT_PREFIX + m for m in metrics if INPUT_PREFIX + m not in header]
    if not metrics or missing or not rows:
        what = "no metric columns" if not metrics else f"no {', '.join(missing)} column" if missing else "no frames"
        raise CompareError(f"{filename}: {what}")
    frames = []
    for number, row in enumerate(rows, start=2):
        try:
            values = {key: float(row[key]) for key in header[3:]}
        except (TypeError, ValueError):
            raise CompareError(f"{filename}, line {number}: a value that is not a number") from None
        frames.append({"sequence": row["sequence"], "frame": row["frame"], "basename": row["basename"], **values})
    info: Dict[str, Any] = {}
    json_file = filename[:-len(".csv")] + ".json"
    if os.path.isfile(json_file):
        try:
            with open(json_file, encoding="utf-8") as handle:
                info = json.load(handle)
        except ValueError:
            raise CompareError(f"{json_file}: not valid JSON") from None
    return Records(folder, os.path.basename(folder), epoch, info, metrics, frames)


def read_arguments(run: str) -> Dict[str, Any]:
    """A run folder's args.json; CompareError naming the folder when it is not a run folder."""
    if not os.path.isdir(run):
        raise CompareError(f"{run}: no such folder")
    filename = os.path.join(run, "args.json")
    try:
        with open(filename, encoding="utf-8") as handle:
            arguments = json.load(handle)
    except OSError:
        raise CompareError(f"{run}: not a run folder (no args.json)") from None
    except ValueError:
        raise CompareError(f"{filename}: not valid JSON") from None
    if not isinstance(arguments, dict):
        raise CompareError(f"{filename}: not a mapping of arguments")
    return arguments


def best_epoch(run: str, keys: Sequence[str]) -> Optional[int]:
    """The epoch of a run's best checkpoint (its first --validation_keys key with a summary), None if none."""
    names = [f"checkpoint_best_{key}.json" for key in keys]
    names += sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(run), "checkpoint_best_*.json")))
    for name in names:
        try:
            with open(os.path.join(run, name), encoding="utf-8") as handle:
                return int(json.load(handle)["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def select_records(run: str, mode: str = "latest", dataset: Optional[str] = None,
                   keys: Sequence[str] = ()) -> Records:
    """The record a run is scored by: its latest epoch's, or with mode 'best' the best checkpoint's epoch's."""
    found = record_files(run)
    if not found:
        raise CompareError(f"{run}: no per-frame records ({FRAMES_FOLDER}/<Dataset>/epoch-<NNN>.csv); "
                           f"evaluate it with --evaluate")
    if dataset is not None:
        if dataset not in found:
            raise CompareError(f"{run}: no per-frame records of {dataset} (it has {', '.join(sorted(found))})")
        epochs = found[dataset]
    elif len(found) > 1:
        raise CompareError(f"{run}: records of several datasets ({', '.join(sorted(found))}); choose one with "
                           f"--dataset")
    else:
        epochs = next(iter(found.values()))
    epoch = max(epochs)
    if mode == "best" and len(epochs) > 1:
        best = best_epoch(run, keys)
        if best is None:
            raise CompareError(f"{run}: no checkpoint_best_<key>.json says which epoch is best; use --checkpoint "
                               f"latest")
        if best not in epochs:
            raise CompareError(f"{run}: no per-frame record of epoch {best} (the best checkpoint's); "
                               f"evaluate it with --evaluate")
        epoch = best
    return read_records(epochs[epoch])


# --------------------------------------------------------------------------------------------- groups
def result_arguments(arguments: Dict[str, Any]) -> Dict[str, Any]:
    """The stored arguments that can change a run's result (IGNORED_* removed, prewarping files by name)."""
    kept = {}
    for key, value in arguments.items():
        if key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES) or key.endswith(IGNORED_SUFFIXES):
            continue
        if key in BASENAME_KEYS and isinstance(value, str):
            value = os.path.basename(value)
        kept[key] = value
    return kept


def group_indices(arguments: Sequence[Dict[str, Any]]) -> List[List[int]]:
    """Indices of runs grouped by their result arguments, groups in order of their first run."""
    groups: Dict[str, List[int]] = {}
    for index, stored in enumerate(arguments):
        key = json.dumps(result_arguments(stored), sort_keys=True, default=str)
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def differing_keys(arguments: Sequence[Dict[str, Any]]) -> List[str]:
    """Result arguments whose values differ between the given runs (what tells groups apart)."""
    reduced = [result_arguments(stored) for stored in arguments]
    keys = sorted(set().union(*reduced)) if reduced else []
    return [key for key in keys if len({json.dumps(r.get(key), sort_keys=True, default=str) for r in reduced}) > 1]


@dataclass
class MeanStd:
    """Mean and sample standard deviation (ddof=1; nan for one value) of n values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "MeanStd":
        """The mean ± std of `values`."""
        array = np.asarray(values, dtype=np.float64)
        std = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
        return cls(float(np.mean(array)), std, int(array.size))


# ------------------------------------------------------------------------------------------ bootstrap
def bootstrap_interval(differences: Sequence[float], weights: Optional[Sequence[float]] = None,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       level: float = 0.95) -> Tuple[float, float, float]:
    """Weighted mean of per-sequence differences and its percentile bootstrap interval over sequences.

    Each resample draws as many sequences as there are, with replacement (numpy.random.default_rng(seed));
    its statistic is the weighted mean of the drawn differences (weights: frames per sequence, so that the
    point estimate is the difference of the frame means). Returns (estimate, low, high).
    """
    d = np.asarray(differences, dtype=np.float64)
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=np.float64)
    estimate = float(np.sum(w * d) / np.sum(w))
    draws = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    statistics = np.sum(w[draws] * d[draws], axis=1) / np.sum(w[draws], axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(statistics, [tail, 100.0 - tail])
    return estimate, float(low), float(high)


def paired_sequences(first: Sequence[Records], second: Sequence[Records], metric: str, names: Tuple[str, str]
                     ) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """Sequences, per-sequence differences (second group minus first, each the mean over its runs) and frames."""
    tables = []
    for group, name in zip((first, second), names):
        per_run = [records.sequences() for records in group]
        layout = {sequence: frames for sequence, (frames, _) in per_run[0].items()}
        for records, sequences in zip(group, per_run):
            if {s: f for s, (f, _) in sequences.items()} != layout:
                raise CompareError(f"{records.folder}: other sequences or frame counts than {group[0].folder} "
                                   f"(mismatched datasets in group {name})")
        tables.append((layout, {s: float(np.mean([seqs[s][1][metric] for seqs in per_run])) for s in layout}))
    (layout_a, values_a), (layout_b, values_b) = tables
    if layout_a != layout_b:
        raise CompareError(f"{second[0].folder}: other sequences or frame counts than {first[0].folder} "
                           f"(mismatched datasets: groups {names[0]} and {names[1]})")
    order = list(layout_a)
    return (order, np.array([values_b[s] - values_a[s] for s in order]),
            np.array([layout_a[s] for s in order], dtype=np.float64))


# ---------------------------------------------------------------------------------------------- tables
def decimals(key: str) -> int:
    """Decimals shown for a metric: 4 for SSIM, 2 for the rest (dB)."""
    return 4 if "ssim" in key.lower() else 2


@dataclass
class Cell:
    """A number with the decimals to show it with (None: an integer); csv output keeps full precision."""

    value: Any
    digits: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def _text(cell: Any, latex: bool = False) -> str:
    if isinstance(cell, Cell):
        value = cell.value
        if isinstance(value, MeanStd):
            mean = f"{value.mean:.{cell.digits}f}"
            std = f"{value.std:.{cell.digits}f}" if not math.isnan(value.std) else "-"
            return f"${mean} \\pm {std}$" if latex else f"{mean} ± {std}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:.{cell.digits}f}" if cell.digits is not None else f"{value:,}".replace(",", " ")
    text = str(cell)
    if latex:
        text = "".join("\\" + c if c in "_%&#$" else c for c in text)
    return text


def _csv_cells(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Tuple[List[str], List[List[str]]]:
    """Full-precision values; a mean ± std column becomes two (`<name>` and `<name> std`)."""
    split = [any(isinstance(r[i], Cell) and isinstance(r[i].value, MeanStd) for r in rows) for i in range(len(header))]
    names = [n for i, n in enumerate(header) for n in ((n, f"{n} std") if split[i] else (n,))]
    out = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            value = cell.value if isinstance(cell, Cell) else cell
            if isinstance(value, MeanStd):
                cells += [repr(value.mean), "" if math.isnan(value.std) else repr(value.std)]
                continue
            cells.append("" if value is None else repr(value) if isinstance(value, float) else str(value))
            if split[i]:
                cells.append("")
        out.append(cells)
    return names, out


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], style: str = "text") -> str:
    """A table as aligned text, Markdown, CSV or a LaTeX tabular."""
    if style == "csv":
        names, cells = _csv_cells(header, rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(cells)
        return buffer.getvalue()
    latex = style == "latex"
    cells = [[_text(c, latex) for c in header]]
    cells += [[_text(c, latex) for c in row] for row in rows]
    if latex:
        lines = ["\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\hline",
                 " & ".join(cells[0]) + " \\\\", "\\hline"]
        lines += [" & ".join(row) + " \\\\" for row in cells[1:]]
        return "\n".join(lines + ["\\hline", "\\end{tabular}"]) + "\n"
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    if style == "markdown":
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines) + "\n"
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- stats and cleanup (§19)
STATS_KEYS = ("xe", "psnr", "cosine_sim", "total_loss")  # the original's: only these keys are shown
EXPERIMENT_FILES = ("src.zip", "logbook.txt", "args.txt", "args.json")


def _entries(root: str) -> List[str]:
    """Non-hidden folders directly under root, sorted by name."""
    return sorted(name for name in os.listdir(root)
                  if not name.startswith(".") and os.path.isdir(os.path.join(root, name)))


def _stats_field(key: str, value: Any) -> str:
    width, digits_width = (5, 3) if key == "epoch" else (7, 4)
    text = str(value)
    text = text.rjust(digits_width) if text.isdigit() else f"{float(value):.2f}".rjust(digits_width)
    return f"{key.rjust(width)}: {text}"


def stats_lines(root: str, keys: Sequence[str] = STATS_KEYS) -> List[str]:
    """The original's `stats`: one line per run folder under root with its best checkpoint's epoch and values.

    As the original: the first checkpoint_best*.json (here: by name, the original's was listing order), the
    epoch, then the summary's keys among `keys` in sorted order; folders without one are skipped. Unlike the
    original, fields are separated by a space and a summary that cannot be read names its file.
    """
    names = _entries(root)
    width = max((len(name) for name in names), default=0)
    lines = []
    for name in names:
        found = sorted(glob.glob(os.path.join(glob.escape(os.path.join(root, name)), "*checkpoint_best*.json")))
        if not found:
            continue
        try:
            with open(found[0], encoding="utf-8") as handle:
                summary = json.load(handle)
            fields = [_stats_field("epoch", summary["epoch"])]
            fields += [_stats_field(key, summary[key]) for key in sorted(summary) if key in keys]
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"Could not read {found[0]}")
            continue
        lines.append(f"{name.rjust(width)}  ==>  {fields[0]} {' '.join(fields[1:])}".rstrip())
    return lines


def recorded_epochs(folder: str) -> int:
    """Epochs an experiment recorded: the most rows of its csv/*losses*.csv (the original: the first file's)."""
    counts = [0]
    for path in glob.glob(os.path.join(glob.escape(folder), "csv", "*losses*.csv")):
        with open(path, encoding="utf-8") as handle:
            counts.append(max(sum(1 for line in handle if line.strip()) - 1, 0))
    return max(counts)


def in_use(folder: str) -> bool:
    """Whether a live process holds the folder's run lock (main.py's `.lock`): such a run is never removed."""
    filename = os.path.join(folder, ".lock")
    if not os.path.isfile(filename):
        return False
    try:
        with open(filename, "a", encoding="utf-8") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(handle, fcntl.LOCK_UN)
    except OSError:
        return True
    return False


def cleanup_lines(root: str, delete: bool = False, keep: int = 5) -> List[str]:
    """The original's `cleanup`: remove (with `delete`, else only list) experiments with fewer than `keep` epochs.

    An experiment folder holds src.zip, logbook.txt, args.txt and args.json; other folders are never removed.
    Unlike the original, the epochs are those of its fullest csv/*losses*.csv (a training run without
    validation has a training CSV here), and a run that a live process holds is kept.
    """
    lines = []
    for name in _entries(root):
        folder = os.path.join(root, name)
        experiment = all(os.path.isfile(os.path.join(folder, f)) for f in EXPERIMENT_FILES)
        epochs = recorded_epochs(folder) if experiment else 0
        busy = experiment and in_use(folder)
        if experiment and epochs < keep and not busy:
            if not delete:
                lines.append(f"Would remove {name}")
                continue
            try:
                shutil.rmtree(folder)
                lines.append(f"Removed {name}")
            except OSError as error:
                lines.append(f"Could not remove {name}: {error.strerror or error}")
            continue
        tail = f"{name} with {epochs} epochs" if experiment else f"{name} (no experiment)"
        tail += " (in use by a running process)" if busy else ""
        lines.append(f"{'   Kept' if delete else '  Would keep'} {tail}")
    return lines + ["", f"Settings were: delete={delete}, keep={keep}."]
