"""Per-epoch records of every loss and metric: CSV rows and MAT arrays under the run folder."""
import argparse
import csv
import math
import os
from typing import Dict, List, Optional

import numpy as np
import scipy.io

from utils import files


class EpochRecorder:
    """Appends one epoch's averaged losses to `<root>/csv/<dataset>_<name>.csv` and `<root>/mat/...mat`.

    Args:
        csv: write the CSV records.
        mat: write the MATLAB records.
        png: not supported (the original never wrote them either).
        mat_exhaustive: not supported (the original never wrote them either).
    """

    def __init__(self, args: Optional[argparse.Namespace], root: str, epoch: int, dataset: str, csv: bool = True,
                 mat: bool = True, png: bool = False, mat_exhaustive: bool = False) -> None:
        if png or mat_exhaustive:
            raise ValueError("--holistic_records_png and --holistic_records_mat_exhaustive are not supported "
                             "(the original framework never wrote these records either); leave them False")
        self._root = root
        self._epoch = epoch
        self._dataset = dataset
        self._csv = csv
        self._mat = mat

    def add_scalars(self, name: str, scalars: Dict[str, float]) -> None:
        """Record `scalars` (e.g. the epoch's average losses) under `name` for this epoch."""
        if self._csv:
            self._append_csv(name, scalars)
        if self._mat:
            self._append_mat(name, scalars)

    def _filename(self, kind: str, name: str) -> str:
        directory = os.path.join(self._root, kind)
        files.make_folder(directory)
        return os.path.join(directory, f"{self._dataset}_{name}.{kind}")

    def _append_csv(self, name: str, scalars: Dict[str, float]) -> None:
        filename = self._filename("csv", name)
        header = ["epoch", "step"] + sorted(scalars)
        rows = read_csv_rows(filename)
        rows = [row for row in rows if int(row["epoch"]) < self._epoch]  # a resumed run rewrites later epochs
        rows.append({"epoch": str(self._epoch), "step": "", **{k: repr(float(v)) for k, v in scalars.items()}})
        columns = header + [key for row in rows for key in row if key not in header]
        columns = list(dict.fromkeys(columns))

        def write(path: str) -> None:
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, restval="")
                writer.writeheader()
                writer.writerows(rows)

        files.write_atomically(filename, write)

    def _append_mat(self, name: str, scalars: Dict[str, float]) -> None:
        filename = self._filename("mat", name)
        record: Dict[str, np.ndarray] = {}
        if os.path.isfile(filename):
            loaded = scipy.io.loadmat(filename)
            record = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in loaded.items() if not k.startswith("__")}
        epochs = record.get("epoch", np.zeros(0))
        keep = epochs < self._epoch
        updated = {"epoch": np.append(epochs[keep], float(self._epoch))}
        for key in sorted(set(record) | set(scalars)):
            if key == "epoch":
                continue
            previous = record.get(key, np.full(len(epochs), math.nan))[keep]
            updated[key] = np.append(previous, float(scalars.get(key, math.nan)))
        arrays = {k: v.reshape(1, -1) for k, v in updated.items()}
        # savemat writes to an open file as it is (given a name, it would append '.mat' to it).
        files.write_atomically(filename, lambda path: _save_mat(path, arrays))


def _save_mat(path: str, arrays: Dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        scipy.io.savemat(handle, arrays)


def read_csv_rows(filename: str) -> List[Dict[str, str]]:
    """Rows of a record CSV as dicts (empty if the file does not exist)."""
    if not os.path.isfile(filename):
        return []
    with open(filename, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
