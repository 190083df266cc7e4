"""Per-epoch records under the run folder: every loss and metric as CSV rows and MAT arrays, and, when asked
for, validation images as PNG files and every validation batch in one exhaustive MAT file."""
import argparse
import csv
import logging
import math
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import scipy.io
import torch

from utils import files

EXHAUSTIVE_EPOCH_KEY = "epoch"  # the exhaustive MAT file's column naming each row's epoch


class EpochRecorder:
    """One epoch's records under `<root>`: CSV and MAT rows of averaged losses (`add_scalars`), PNG images
    (`add_images`) and the exhaustive MAT file of every batch (`add_batch`, written by `close`).

    A record kind whose flag is off is ignored, so hooks may offer every record (see hooks.HookBase.record_step).

    Args:
        csv: write the CSV records.
        mat: write the MATLAB records.
        png: write image records as PNG files, <save>/png/<dataset>/epoch-<EEE>/<basename>.png.
        mat_exhaustive: write every validation batch (example and model dict) to
            <save>/mat_exhaustive/<dataset>_exhaustive.mat.
    """

    def __init__(self, args: Optional[argparse.Namespace], root: str, epoch: int, dataset: str, csv: bool = True,
                 mat: bool = True, png: bool = False, mat_exhaustive: bool = False) -> None:
        self._root = root
        self.epoch = epoch
        self.dataset = dataset
        self._csv = csv
        self._mat = mat
        self.png = png
        self.mat_exhaustive = mat_exhaustive
        self._png_names: Dict[str, int] = {}  # basenames written this epoch, with how often they came
        self._batches: Dict[str, List[np.ndarray]] = {}  # exhaustive MAT columns, written by `close`
        self._skipped: List[str] = []

    def add_scalars(self, name: str, scalars: Dict[str, float]) -> None:
        """Record `scalars` (e.g. the epoch's average losses) under `name` for this epoch."""
        if self._csv:
            self._append_csv(name, scalars)
        if self._mat:
            self._append_mat(name, scalars)

    def add_images(self, basenames: Sequence[str], images: torch.Tensor, cmap: Optional[str] = None) -> None:
        """One PNG per example of a (B, C, H, W) batch, C = 3 (RGB, clipped to [0, 1]) or 1 (colour-mapped from
        its own minimum to maximum with `cmap`, matplotlib's default viridis); a basename that comes again in
        this epoch gets `_<n>` (its n-th sample). The epoch's folder is replaced by its first image, so a
        resumed epoch rewrites its own files and no other epoch's."""
        if not self.png:
            return
        if images.dim() != 4 or images.size(1) not in (1, 3) or len(basenames) != images.size(0):
            raise ValueError(f"--holistic_records_png: expected {len(basenames)} basenames and images of shape "
                             f"(B, 1 or 3, H, W), got images of shape {tuple(images.shape)}")
        from matplotlib import image  # here: importing matplotlib takes seconds, and most runs write no PNG

        directory = os.path.join(self._root, "png", self.dataset, f"epoch-{self.epoch:03d}")
        if not self._png_names and os.path.isdir(directory):
            shutil.rmtree(directory)  # what an interrupted run of this epoch left
        arrays = images.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
        for name, array in zip(basenames, arrays):
            count = self._png_names[name] = self._png_names.get(name, 0) + 1
            filename = os.path.join(directory, f"{name}_{count}.png" if count > 1 else f"{name}.png")
            files.make_folder(os.path.dirname(filename))
            if array.shape[-1] == 3:
                array = np.clip(array, 0.0, 1.0)  # matplotlib refuses RGB floats outside [0, 1]
            else:
                array = array[..., 0]

            def write(path: str, array: np.ndarray = array) -> None:
                image.imsave(path, array, cmap=cmap, format="png")

            files.write_atomically(filename, write)

    def add_batch(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any]) -> None:
        """Keep a batch's example and model dict entries for the exhaustive MAT file (see `close`)."""
        if not self.mat_exhaustive:
            return
        batch_size = next(v for k, v in example_dict.items() if k.startswith("input")).size(0)
        for key, value in {**example_dict, **model_dict}.items():
            column = _exhaustive_column(value, batch_size)
            if column is None:
                if key not in self._skipped:
                    self._skipped.append(key)
                continue
            self._batches.setdefault(key, []).append(column)
        self._batches.setdefault(EXHAUSTIVE_EPOCH_KEY, []).append(np.full((batch_size, 1), float(self.epoch)))

    def close(self) -> None:
        """Write the batches `add_batch` kept: appended to the exhaustive MAT file's earlier epochs, replacing
        this epoch's and later rows (a resumed run repeats them)."""
        if not self._batches:
            return
        if self._skipped:
            logging.info("--holistic_records_mat_exhaustive: not per example, not recorded: %s",
                         ", ".join(self._skipped))
        directory = os.path.join(self._root, "mat_exhaustive")
        filename = os.path.join(directory, f"{self.dataset}_exhaustive.mat")
        columns = {key: np.concatenate(chunks) for key, chunks in self._batches.items()}
        self._batches = {}
        if os.path.isfile(filename):
            columns = _merge_exhaustive(filename, read_exhaustive_mat(filename), columns, self.epoch)
        files.make_folder(directory)
        files.write_atomically(filename, lambda path: _save_mat(path, columns))

    def _filename(self, kind: str, name: str) -> str:
        directory = os.path.join(self._root, kind)
        files.make_folder(directory)
        return os.path.join(directory, f"{self.dataset}_{name}.{kind}")

    def _append_csv(self, name: str, scalars: Dict[str, float]) -> None:
        filename = self._filename("csv", name)
        header = ["epoch", "step"] + sorted(scalars)
        rows = read_csv_rows(filename)
        rows = [row for row in rows if int(row["epoch"]) < self.epoch]  # a resumed run rewrites later epochs
        rows.append({"epoch": str(self.epoch), "step": "", **{k: repr(float(v)) for k, v in scalars.items()}})
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
        keep = epochs < self.epoch
        updated = {"epoch": np.append(epochs[keep], float(self.epoch))}
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


def _exhaustive_column(value: Any, batch_size: int) -> Optional[np.ndarray]:
    """A batch entry as rows of the exhaustive MAT file: tensors with images channels last (B, H, W, C), vectors
    as (B, 1) columns, names as a (B, 1) cell column; None for what is not one value per example."""
    if torch.is_tensor(value) and value.dim() >= 1 and value.size(0) == batch_size:
        value = value.detach().cpu()
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()  # MATLAB files have no half precision
        array = value.numpy().astype(np.uint8) if value.dtype == torch.bool else value.numpy()
        if array.ndim == 4:
            array = array.transpose(0, 2, 3, 1)
        return array.reshape(batch_size, 1) if array.ndim == 1 else array
    if isinstance(value, (list, tuple)) and len(value) == batch_size:
        if all(isinstance(item, str) for item in value):
            return np.array(list(value), dtype=object).reshape(batch_size, 1)
        if all(isinstance(item, (int, float)) for item in value):
            return np.array(value, dtype=np.float64).reshape(batch_size, 1)
    return None


def read_exhaustive_mat(filename: str) -> Dict[str, np.ndarray]:
    """The columns of an exhaustive MAT file as `EpochRecorder.close` wrote them (names as str cells)."""
    loaded = scipy.io.loadmat(filename)
    columns = {}
    for key, value in loaded.items():
        if key.startswith("__"):
            continue
        if value.dtype == object:  # a cell column of names
            value = np.array([str(item[0]) if item.size else "" for item in value.ravel()],
                             dtype=object).reshape(-1, 1)
        columns[key] = value
    return columns


def _merge_exhaustive(filename: str, previous: Dict[str, np.ndarray], columns: Dict[str, np.ndarray],
                      epoch: int) -> Dict[str, np.ndarray]:
    """The file's rows of earlier epochs followed by this epoch's."""
    if set(previous) != set(columns):
        raise ValueError(f"--holistic_records_mat_exhaustive: {filename} holds {', '.join(sorted(previous))}, "
                         f"epoch {epoch} records {', '.join(sorted(columns))}; move it away to record this run")
    keep = previous[EXHAUSTIVE_EPOCH_KEY].ravel() < epoch
    merged = {}
    for key, column in columns.items():
        if previous[key].shape[1:] != column.shape[1:]:
            raise ValueError(f"--holistic_records_mat_exhaustive: {filename}: '{key}' has rows of shape "
                             f"{previous[key].shape[1:]}, epoch {epoch} gives {column.shape[1:]}")
        merged[key] = np.concatenate([previous[key][keep], column])
    return merged


def read_csv_rows(filename: str) -> List[Dict[str, str]]:
    """Rows of a record CSV as dicts (empty if the file does not exist)."""
    if not os.path.isfile(filename):
        return []
    with open(filename, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
