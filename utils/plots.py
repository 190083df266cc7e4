"""Training curves: every loss and metric recorded in `<save>/csv/*.csv`, one panel per key, drawn to
`<save>/training_curves.png` (matplotlib's Agg canvas directly, so no display and no pyplot state)."""
import glob
import math
import os
from typing import Dict, List, Optional, Tuple

from utils import files
from utils.records import read_csv_rows

PLOT_FILENAME = "training_curves.png"
PANEL_INCHES = (4.0, 3.0)
DPI = 100
MAX_COLUMNS = 3

Curves = Dict[str, Dict[str, Tuple[List[int], List[float]]]]


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


def plot_records(save_dir: str) -> Optional[str]:
    """Draw every recorded key against the epoch into `<save_dir>/training_curves.png`; returns its path
    (None when there are no records yet)."""
    curves = collect_records(save_dir)
    if not curves:
        return None
    # Imported on first use: matplotlib costs ~0.5 s, which --help, dry runs and failed starts never need.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = sorted(curves)
    columns = min(MAX_COLUMNS, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), dpi=DPI)
    FigureCanvasAgg(figure)
    for index, key in enumerate(keys):
        axes = figure.add_subplot(rows, columns, index + 1)
        for name, (epochs, values) in sorted(curves[key].items()):
            # A dot per epoch keeps short runs readable; long runs are clearer as lines only.
            # matplotlib hides legend labels that start with '_' (e.g. a dataset class named _Frames).
            axes.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, markersize=3,
                      label=name.lstrip("_") or name)
        axes.set_title(key)
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="x-small")
    figure.tight_layout()
    filename = os.path.join(save_dir, PLOT_FILENAME)
    files.write_atomically(filename, lambda path: figure.savefig(path, dpi=DPI, format="png"))
    return filename
