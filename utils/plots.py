"""Training curves: every loss and metric recorded in `<save>/csv/*.csv`, drawn to `<save>/training_curves.png`
(matplotlib's Agg canvas directly, so no display and no pyplot state).

One row of panels per key and one column per split (training, validation, then any other record), so that
curves of different scales never share an axis: a summed training loss over random crops and one over whole
validation frames are not comparable. The input baseline (`<Dataset>_input_baseline.csv`, see
utils/baseline.py) is drawn as a dashed horizontal line in the validation panel of each key. A first epoch far
off the later ones (an untrained network's loss, often 100x the rest) would flatten every later epoch into one
line: the y-axis then spans the later epochs and the references only, and the first epoch is an arrow at the
panel's edge labelled with its value.
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
# The first epoch is left off the y-axis when it lies further beyond the range of the other values than this
# many times that range (a steadily falling 1/epoch loss stays whole); curves need MIN_EPOCHS_TO_CLIP epochs.
OUTLIER_FACTOR = 4.0
MIN_EPOCHS_TO_CLIP = 3
Y_PADDING = 0.08  # of the y-range, above and below the values shown

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


@dataclasses.dataclass(frozen=True)
class YLimits:
    """A panel's y-axis range without its first-epoch outliers, and those outliers (label, epoch, value)."""

    bottom: float
    top: float
    outliers: Tuple[Tuple[str, int, float], ...]


def robust_y_limits(panel: Panel) -> Optional[YLimits]:
    """The y-range of every value but the first-epoch outliers (None when there is none: matplotlib's own)."""
    if not panel.curves or any(len(epochs) < MIN_EPOCHS_TO_CLIP for epochs, _ in panel.curves.values()):
        return None
    rest = [value for _, values in panel.curves.values() for value in values[1:]] + list(panel.references.values())
    low, high = min(rest), max(rest)
    span = high - low
    outliers, kept = [], []
    for label, (epochs, values) in panel.curves.items():
        if max(low - values[0], values[0] - high) > OUTLIER_FACTOR * span:
            outliers.append((label, epochs[0], values[0]))
        else:
            kept.append(values[0])
    if not outliers:
        return None
    # A flat rest (span 0) still gets a visible range around its value.
    padding = Y_PADDING * span if span > 0 else max(abs(high) * 0.01, 1e-12)
    return YLimits(min([low] + kept) - padding, max([high] + kept) + padding, tuple(outliers))


def _draw_outliers(axes: "object", limits: YLimits, colors: Dict[str, str]) -> None:
    """Each outlier as an arrow head at the panel's top or bottom edge at its epoch, with its value."""
    for label, epoch, value in limits.outliers:
        above = value > limits.top
        edge = limits.top if above else limits.bottom
        axes.plot([epoch], [edge], marker="^" if above else "v", markersize=7, color=colors[label], clip_on=False,
                  linestyle="none")
        axes.annotate(f"{value:.4g}", (epoch, edge), xytext=(6, -10 if above else 4), textcoords="offset points",
                      fontsize="x-small", color=colors[label])


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
        colors = {}
        for label, (epochs, values) in panel.curves.items():
            # A dot per epoch keeps short runs readable; long runs are clearer as lines only.
            lines = axes.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, markersize=3, label=label)
            colors[label] = lines[0].get_color()
        for label, value in panel.references.items():
            axes.axhline(value, color=BASELINE_COLOR, linestyle="--", linewidth=1.2, label=f"{label} {value:.4g}")
        limits = robust_y_limits(panel)
        if limits is not None:
            axes.set_ylim(limits.bottom, limits.top)
            _draw_outliers(axes, limits, colors)
        axes.set_title(f"{key} ({split})", fontsize="medium", y=1.0)  # fixed: no tight-bbox search
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="x-small")
    filename = os.path.join(save_dir, PLOT_FILENAME)
    files.write_atomically(filename, lambda path: figure.savefig(path, dpi=DPI, format="png"))
    return filename
