"""Training curves: every loss and metric recorded in `<save>/csv/*.csv`, drawn to `<save>/training_curves.png`
(matplotlib's Agg canvas directly, so no display and no pyplot state).

One row of panels per key and one column per split (training, validation, then any other record), so that
curves of different scales never share an axis: a summed training loss over random crops and one over whole
validation frames are not comparable. The input baseline (`<Dataset>_input_baseline.csv`, see
utils/baseline.py) is drawn as a dashed horizontal line in the validation panel of each key.
"""
import dataclasses
import glob
import math
import os
from typing import Dict, List, Optional, Tuple

from utils import files
from utils.records import read_csv_rows

PLOT_FILENAME = "training_curves.png"
PANEL_INCHES = (4.0, 3.0)
DPI = 100
# Fixed margins and gaps (inches) instead of figure.tight_layout(), which measures every text and costs
# about 0.25 s per epoch.
MARGINS = {"left": 0.75, "right": 0.15, "top": 0.35, "bottom": 0.5}
GAPS = (0.85, 0.75)  # between columns, between rows
# Record name suffix -> column; records of other names get a column of their own.
SPLITS = {"training_losses": "training", "evaluation_losses": "validation"}
BASELINE_SUFFIX = "input_baseline"
BASELINE_SPLIT = "validation"
BASELINE_COLOR = "tab:red"  # the line to beat

Curves = Dict[str, Dict[str, Tuple[List[int], List[float]]]]


@dataclasses.dataclass
class Panel:
    """One (key, split) panel: curves by dataset name, and horizontal reference lines by label."""

    curves: Dict[str, Tuple[List[int], List[float]]] = dataclasses.field(default_factory=dict)
    references: Dict[str, float] = dataclasses.field(default_factory=dict)


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def collect_records(save_dir: str) -> Curves:
    """{key: {record name: (epochs, values)}} from every `<save_dir>/csv/*.csv` (record name = file stem)."""
    curves: Curves = {}
    for filename in sorted(glob.glob(os.path.join(glob.escape(save_dir), "csv", "*.csv"))):
        name = os.path.splitext(os.path.basename(filename))[0]
        for row in read_csv_rows(filename):
            epoch = _number(row.get("epoch", ""))
            if epoch is None:
                continue
            for key, text in row.items():
                value = _number(text)
                if key in ("epoch", "step") or key is None or value is None:
                    continue
                epochs, values = curves.setdefault(key, {}).setdefault(name, ([], []))
                epochs.append(int(epoch))
                values.append(value)
    return curves


def _split(record: str) -> Tuple[str, str]:
    """(split, dataset) of a record name '<Dataset>_<name>'; unknown names are a split of their own."""
    for suffix in list(SPLITS) + [BASELINE_SUFFIX]:
        if record.endswith("_" + suffix):
            return SPLITS.get(suffix, BASELINE_SPLIT), record[:-len(suffix) - 1]
    return record, record


def arrange_panels(curves: Curves) -> Dict[Tuple[str, str], Panel]:
    """{(key, split): Panel}; a baseline becomes a reference line of the validation panel of its key."""
    panels: Dict[Tuple[str, str], Panel] = {}
    for key in sorted(curves):
        for record, (epochs, values) in sorted(curves[key].items()):
            split, dataset = _split(record)
            # matplotlib hides legend labels that start with '_' (e.g. a dataset class named _Frames).
            label = dataset.lstrip("_") or dataset
            panel = panels.setdefault((key, split), Panel())
            if record.endswith("_" + BASELINE_SUFFIX):
                panel.references[f"input ({label})"] = values[-1]
            else:
                panel.curves[label] = (epochs, values)
    return {where: panel for where, panel in panels.items() if panel.curves}  # a baseline alone is no plot


def _columns(panels: Dict[Tuple[str, str], Panel]) -> List[str]:
    splits = {split for _, split in panels}
    known = [split for split in ("training", "validation") if split in splits]
    return known + sorted(splits - set(known))


def _adjust(figure: "object", rows: int, columns: int) -> None:
    width, height = PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows
    axes_width = (width - MARGINS["left"] - MARGINS["right"] - (columns - 1) * GAPS[0]) / columns
    axes_height = (height - MARGINS["top"] - MARGINS["bottom"] - (rows - 1) * GAPS[1]) / rows
    figure.subplots_adjust(left=MARGINS["left"] / width, right=1 - MARGINS["right"] / width,
                           bottom=MARGINS["bottom"] / height, top=1 - MARGINS["top"] / height,
                           wspace=GAPS[0] / axes_width, hspace=GAPS[1] / axes_height)


def plot_records(save_dir: str) -> Optional[str]:
    """Draw every recorded key against the epoch into `<save_dir>/training_curves.png`; returns its path
    (None when there are no records yet)."""
    panels = arrange_panels(collect_records(save_dir))
    if not panels:
        return None
    # Imported on first use: matplotlib costs ~0.5 s, which --help, dry runs and failed starts never need.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    keys = sorted({key for key, _ in panels})
    columns = _columns(panels)
    figure = Figure(figsize=(PANEL_INCHES[0] * len(columns), PANEL_INCHES[1] * len(keys)), dpi=DPI)
    FigureCanvasAgg(figure)
    _adjust(figure, len(keys), len(columns))
    for (key, split), panel in panels.items():
        axes = figure.add_subplot(len(keys), len(columns), keys.index(key) * len(columns) + columns.index(split) + 1)
        for label, (epochs, values) in panel.curves.items():
            # A dot per epoch keeps short runs readable; long runs are clearer as lines only.
            axes.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, markersize=3, label=label)
        for label, value in panel.references.items():
            axes.axhline(value, color=BASELINE_COLOR, linestyle="--", linewidth=1.2, label=f"{label} {value:.4g}")
        axes.set_title(f"{key} ({split})", fontsize="medium", y=1.0)  # fixed: no tight-bbox search
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="x-small")
    filename = os.path.join(save_dir, PLOT_FILENAME)
    files.write_atomically(filename, lambda path: figure.savefig(path, dpi=DPI, format="png"))
    return filename
