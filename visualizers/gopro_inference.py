"""Inference on a GoPro test set (spec §7.2): every deblurred frame as an 8-bit image, plus a table of
per-sequence and overall metrics.

Frames go to `<save>/<basename><ext>` (basename = '<sequence>/<frame>'), quantised like
torchvision's save_image: uint8(clamp(x·255 + 0.5, 0, 255)). The metrics, per frame: `psnr` (the
paper's protocol: grayscale, scale- and ±5 px translation-optimised, spec §4.2), `psnr_rgb` and
`ssim`. They are averaged per sequence and over all frames, logged, and written to
`<run folder>/inference_metrics.csv` (the folder of --save; --visualizer_save if there is none).
Under torchrun every rank writes the frames of its share of the examples, and rank 0 gathers every
rank's metrics and writes one table over all frames, in the dataset's order.
"""
import argparse
import csv
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

import constants
from contrib.psnr import fitting_ssim_window, koehler_psnr, psnr_rgb, ssim
from utils import distributed
from utils.images import save_image
from utils.logger import block
from visualizers.registry import VISUALIZERS
from visualizers.visualizer import Visualizer

NOT_GIVEN = "directory"
METRICS = ("psnr", "psnr_rgb", "ssim")
METRICS_FILENAME = "inference_metrics.csv"


def frame_metrics(output: torch.Tensor, target: torch.Tensor) -> Dict[str, float]:
    """psnr (paper protocol), psnr_rgb and ssim of one (3, H, W) frame."""
    prediction = output.detach().float().clamp(0, 1).unsqueeze(0)
    target = target.detach().float().unsqueeze(0).to(prediction.device)
    window = fitting_ssim_window(*target.shape[-2:])
    return {"psnr": float(koehler_psnr(prediction, target, scale_opt=True, trans_opt=True, trans_range=5)),
            "psnr_rgb": float(psnr_rgb(prediction, target)[0]),
            "ssim": float(ssim(prediction, target, window_size=window)[0])}


def sequence_of(basename: str) -> str:
    """'<sequence>/<frame>' → '<sequence>'."""
    return basename.rsplit("/", 1)[0] if "/" in basename else "(no sequence)"


def metrics_table(per_frame: Dict[str, List[Dict[str, float]]]) -> List[Tuple[str, int, Dict[str, float]]]:
    """Rows (sequence, frames, mean metrics) sorted by sequence, then ('overall', all frames, frame mean)."""
    rows = []
    for sequence in sorted(per_frame):
        frames = per_frame[sequence]
        rows.append((sequence, len(frames), {m: float(np.mean([f[m] for f in frames])) for m in METRICS}))
    everything = [f for frames in per_frame.values() for f in frames]
    if everything:
        rows.append(("overall", len(everything), {m: float(np.mean([f[m] for f in everything])) for m in METRICS}))
    return rows


@VISUALIZERS.register("GoProInference")
class GoProInference(Visualizer):
    """Writes the deblurred validation frames and their metrics table.

    Args:
        save: folder for the deblurred frames, e.g. <save>/inference (required).
        ext: image file format of the frames, e.g. .png or .jpg.
    """

    def __init__(self, args: Optional[argparse.Namespace] = None, model_and_loss: Optional[torch.nn.Module] = None,
                 optimizer: Optional[torch.optim.Optimizer] = None, param_scheduler: Optional[Any] = None,
                 lr_scheduler: Optional[Any] = None, train_loader: Optional[Any] = None,
                 validation_loader: Optional[Any] = None, save: str = NOT_GIVEN, ext: str = ".png", *,
                 run_folder: Optional[str] = None) -> None:
        """`run_folder` (keyword-only: no flag) is the run's --save, passed by main.py; the table goes there."""
        super().__init__()
        if save is None or save == NOT_GIVEN:
            raise ValueError("--visualizer_save: give the folder for the deblurred frames "
                             "(e.g. --visualizer_save=<save>/inference)")
        if ext.lower() not in constants.IMAGE_EXTENSIONS:
            raise ValueError(f"--visualizer_ext: expected one of {', '.join(constants.IMAGE_EXTENSIONS)}, "
                             f"got {ext!r}")
        self.save = os.path.expanduser(save)
        self.ext = ext
        self.run_folder = run_folder or self.save
        # (example index, sequence, metrics) of every frame this rank evaluated in the current epoch
        self.frames: List[Tuple[int, str, Dict[str, float]]] = []
        self.epoch = 0
        self._warned_training = False

    def on_epoch_init(self, lr: Any, train: bool, epoch: int, total_epochs: int) -> None:
        if not train:
            self.frames = []
            self.epoch = epoch

    def filename(self, basename: str) -> str:
        """Where the deblurred frame of an example goes."""
        return os.path.join(self.save, basename + self.ext)

    def on_step_finished(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                         loss_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        if train:
            if not self._warned_training:
                logging.warning("GoProInference writes frames during validation only; nothing written in training")
                self._warned_training = True
            return
        if "output1" not in model_dict:
            raise KeyError(f"GoProInference needs 'output1' in model_dict, got {sorted(model_dict)}")
        if "basename" not in example_dict:
            raise KeyError("GoProInference needs 'basename' in example_dict to name the frames "
                           f"(keys: {sorted(example_dict)})")
        outputs = model_dict["output1"]
        names = list(example_dict["basename"])
        if len(names) != outputs.size(0):
            raise ValueError(f"GoProInference: {len(names)} basenames for {outputs.size(0)} output frames")
        targets = example_dict.get("target1")
        indices = example_dict.get("index")
        if not (torch.is_tensor(indices) and indices.numel() == len(names)):
            indices = None  # no per-frame index: the order in which this rank evaluated them
        for position, basename in enumerate(names):
            save_image(outputs[position], self.filename(str(basename)))
            if targets is not None:
                metrics = frame_metrics(outputs[position], targets[position])
                order = int(indices[position]) if indices is not None else len(self.frames)
                self.frames.append((order, sequence_of(str(basename)), metrics))

    def on_epoch_finished(self, avg_loss_dict: Dict[str, float], train: bool, epoch: int,
                          total_epochs: int) -> None:
        if train:
            return
        frames = self.frames
        if distributed.is_distributed():  # every rank takes part, also one that evaluated no frame
            gathered = distributed.gather_to_main(frames, "gathering GoProInference's frame metrics")
            if not distributed.is_main_process():
                return
            frames = sorted((frame for part in gathered for frame in part), key=lambda frame: frame[0])
        per_frame: Dict[str, List[Dict[str, float]]] = {}
        for _, sequence, metrics in frames:
            per_frame.setdefault(sequence, []).append(metrics)
        if not per_frame:
            return
        rows = metrics_table(per_frame)
        filename = os.path.join(self.run_folder, METRICS_FILENAME)
        os.makedirs(self.run_folder, exist_ok=True)
        with open(filename, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", "sequence", "frames", *METRICS])
            for sequence, frames, values in rows:
                writer.writerow([epoch, sequence, frames, *(repr(values[m]) for m in METRICS)])
        width = max(len(sequence) for sequence, _, _ in rows)
        with block("Inference Metrics"):
            logging.info("%s  %6s  %8s  %8s  %6s", "sequence".ljust(width), "frames", "psnr", "psnr_rgb", "ssim")
            for sequence, frames, values in rows:
                logging.info("%s  %6d  %8.4f  %8.4f  %6.4f", sequence.ljust(width), frames, values["psnr"],
                             values["psnr_rgb"], values["ssim"])
            logging.info("frames written to %s, table to %s", self.save, filename)
