"""Per-frame records of every evaluation pass, under `<run folder>/frames/<DatasetClass>/`.

The format is a contract (scripts that compare runs read it):

- `epoch-<NNN>.csv`: `sequence,frame,basename,<m1>,...,<mk>,input_<m1>,...,input_<mk>`, one row per evaluated
  frame in dataset order; `input_<m>` is the metric of the blurry input's reference frame against the target.
- `epoch-<NNN>-sequences.csv`: `sequence,frames,<m1>,...,input_<m1>,...`, the per-sequence means.
- `epoch-<NNN>.json`: dataset, epoch, checkpoint (the file the weights came from in an evaluation-only run,
  else null), checkpoint_epoch, metrics, protocols, frames, crop_border.

Values are written with repr() of Python floats, so they read back bit-identically.
"""
import csv
import json
import math
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from utils import files

FOLDER = "frames"


class FrameRow(NamedTuple):
    """One evaluated frame: where it is and its values ({metric: value, input_<metric>: value})."""

    sequence: str
    frame: int
    basename: str
    values: Dict[str, float]


def folder(root: str, dataset: str) -> str:
    """`<root>/frames/<dataset>`."""
    return os.path.join(root, FOLDER, dataset)


def stem(root: str, dataset: str, epoch: int) -> str:
    """`<root>/frames/<dataset>/epoch-<NNN>` (the records' common name without suffix)."""
    return os.path.join(folder(root, dataset), f"epoch-{epoch:03d}")


def columns(metrics: Sequence[str]) -> List[str]:
    """The value columns: every metric, then every metric of the input."""
    return list(metrics) + [f"input_{name}" for name in metrics]


def sequence_means(rows: Sequence[FrameRow], metrics: Sequence[str]) -> List[Dict[str, Any]]:
    """Per sequence, in order of first appearance: {'sequence', 'frames', <column>: mean over its frames}."""
    grouped: Dict[str, List[FrameRow]] = {}
    for row in rows:
        grouped.setdefault(row.sequence, []).append(row)
    means = []
    for sequence, members in grouped.items():
        entry: Dict[str, Any] = {"sequence": sequence, "frames": len(members)}
        for column in columns(metrics):
            entry[column] = math.fsum(row.values.get(column, math.nan) for row in members) / len(members)
        means.append(entry)
    return means


def _write_csv(filename: str, header: List[str], rows: List[List[Any]]) -> None:
    def write(path: str) -> None:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    files.write_atomically(filename, write)


def write(root: str, dataset: str, epoch: int, rows: Sequence[FrameRow], metrics: Sequence[str],
          protocols: Dict[str, str], checkpoint: Optional[str], checkpoint_epoch: Optional[int],
          crop_border: int) -> str:
    """Write the three records of one evaluation pass; returns the path of the per-frame CSV."""
    files.make_folder(folder(root, dataset))
    base = stem(root, dataset, epoch)
    value_columns = columns(metrics)
    _write_csv(base + ".csv", ["sequence", "frame", "basename", *value_columns],
               [[row.sequence, row.frame, row.basename,
                 *(repr(float(row.values.get(c, math.nan))) for c in value_columns)] for row in rows])
    _write_csv(base + "-sequences.csv", ["sequence", "frames", *value_columns],
               [[entry["sequence"], entry["frames"], *(repr(float(entry[c])) for c in value_columns)]
                for entry in sequence_means(rows, metrics)])
    document = {"dataset": dataset, "epoch": epoch, "checkpoint": checkpoint, "checkpoint_epoch": checkpoint_epoch,
                "metrics": list(metrics), "protocols": {name: protocols[name] for name in metrics},
                "frames": len(rows), "crop_border": int(crop_border)}
    files.write_text(base + ".json", json.dumps(document, indent=2) + "\n")
    return base + ".csv"
