"""Print the demo's result: PSNR of the blurred input and of the deblurred output on the test frames, and
write `before_after.png` (blurred input | deblurred | sharp) for one test frame into the run folder, with a
second row that zooms 4x (nearest neighbour) into the region where deblurring changed the frame most: a gain
of a few tenths of a dB is invisible at full size."""
import argparse
import json
import os
import sys
from typing import Dict, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import deblur  # noqa: E402
from contrib.psnr import koehler_psnr  # noqa: E402
from datasets.gopro_nah import nah_sequences  # noqa: E402
from utils import baseline  # noqa: E402
from utils.images import read_image  # noqa: E402
from utils.records import read_csv_rows  # noqa: E402

LABEL_HEIGHT = 16  # a strip above the panels, so that the panels keep every pixel of the frames
ZOOM = 4  # the detail row shows a 1/ZOOM x 1/ZOOM region of the frame, each pixel a ZOOM x ZOOM block


def blurred_input_psnr(save: str) -> float:
    """The blurred input's PSNR on GoProNahTest as the run recorded it (its input baseline): the same batches
    and protocol as the model's validation PSNR printed beside it."""
    rows = read_csv_rows(baseline.csv_filename(save, "GoProNahTest"))
    return float(rows[0]["psnr"])


def paper_psnr(image: np.ndarray, sharp: np.ndarray) -> float:
    """The paper's PSNR (grayscale, scale- and +-5 px shift-optimised) of two HxWx3 uint8 frames."""
    def tensor(frame: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    return float(koehler_psnr(tensor(image), tensor(sharp), scale_opt=True, trans_opt=True, trans_range=5))


def deblur_test_sequence(save: str, data: str, checkpoint: str,
                         amp: str = "auto") -> Tuple[str, Dict[str, np.ndarray]]:
    """Deblur the first test sequence with deblur.py (`--amp=amp`) into <save>/deblurred/<sequence>/; its centre
    frame's name and the blurred, deblurred and sharp frames."""
    with open(os.path.join(save, "args.json"), encoding="utf-8") as handle:
        gamma = json.load(handle).get("validation_dataset_gamma_corrected_data", True)
    sequence = nah_sequences(data, "test", gamma)[0]  # the frames the run was validated on
    output = os.path.join(save, "deblurred", sequence.name)
    code = deblur.main(["--checkpoint", checkpoint, "--input", os.path.dirname(sequence.inputs[0]),
                        "--output", output, "--device", "cpu", "--amp", amp,
                        "--overwrite"])  # a rerun replaces its own frames
    if code != 0:
        raise SystemExit(f"demo_summary.py: deblur.py failed on {sequence.name} (exit code {code})")
    index = len(sequence) // 2
    name = os.path.splitext(os.path.basename(sequence.inputs[index]))[0]
    frames = {"blurred": read_image(sequence.inputs[index]),
              "deblurred": read_image(os.path.join(output, f"{name}.png")),
              "sharp": read_image(sequence.targets[index])}
    return f"{sequence.name}/{name}", frames


def most_changed_region(before: np.ndarray, after: np.ndarray) -> Tuple[int, int, int, int]:
    """(y0, x0, height, width) of the (H/ZOOM x W/ZOOM) window with the largest summed |after - before| over
    all channels (the first such window in row-major order on ties)."""
    height, width = before.shape[:2]
    window_h, window_w = max(1, height // ZOOM), max(1, width // ZOOM)
    change = np.abs(after.astype(np.int64) - before.astype(np.int64)).sum(axis=2)
    # Window sums from the integral image: one pass instead of a sum per window position.
    integral = np.pad(change.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (integral[window_h:, window_w:] - integral[:-window_h, window_w:] - integral[window_h:, :-window_w]
            + integral[:-window_h, :-window_w])
    y0, x0 = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y0), int(x0), window_h, window_w


def rgb_psnr(image: np.ndarray, sharp: np.ndarray) -> float:
    """Plain PSNR (RGB, peak 255) of two uint8 arrays; inf when they are equal."""
    mse = float(np.mean((image.astype(np.float64) - sharp.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0 ** 2 / mse))


def crop(frame: np.ndarray, region: Tuple[int, int, int, int]) -> np.ndarray:
    """The (y0, x0, height, width) region of a frame."""
    y0, x0, height, width = region
    return frame[y0:y0 + height, x0:x0 + width]


def zoomed(frame: np.ndarray, region: Tuple[int, int, int, int]) -> np.ndarray:
    """The region of a frame, each pixel repeated into a ZOOM x ZOOM block (nearest neighbour)."""
    return crop(frame, region).repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)


def write_before_after(filename: str, frames: Dict[str, np.ndarray], labels: Dict[str, str],
                       region: Tuple[int, int, int, int], detail_labels: Dict[str, str]) -> None:
    """The frames side by side at full size (blurred | deblurred | sharp) under a strip with their labels,
    and below them the same columns' `region`, zoomed ZOOM x, under a strip with `detail_labels`."""
    height, width = frames["blurred"].shape[:2]
    canvas = Image.new("RGB", (3 * width, 2 * (LABEL_HEIGHT + height)), "white")
    draw = ImageDraw.Draw(canvas)
    for column, key in enumerate(("blurred", "deblurred", "sharp")):
        canvas.paste(Image.fromarray(frames[key]), (column * width, LABEL_HEIGHT))
        draw.text((column * width + 3, 2), labels[key], fill="black")
        canvas.paste(Image.fromarray(zoomed(frames[key], region)), (column * width, 2 * LABEL_HEIGHT + height))
        draw.text((column * width + 3, LABEL_HEIGHT + height + 2), detail_labels[key], fill="black")
    canvas.save(filename)


def main() -> None:
    """Read the run folder's best checkpoint statistics and compare with the blurred input."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="GOPRO_Large-layout root of the demo data")
    parser.add_argument("--save", required=True, help="run folder of the demo")
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "none"),
                        help="deblur.py's precision (the demo passes the one it trained in)")
    args = parser.parse_args()
    with open(os.path.join(args.save, "checkpoint_best_psnr.json"), encoding="utf-8") as handle:
        best = json.load(handle)
    with open(os.path.join(args.save, "checkpoint_latest_.json"), encoding="utf-8") as handle:
        latest = json.load(handle)
    blurred = blurred_input_psnr(args.save)
    frame, frames = deblur_test_sequence(args.save, args.data, os.path.join(args.save, "checkpoint_best_psnr.ckpt"),
                                         args.amp)
    before, after = paper_psnr(frames["blurred"], frames["sharp"]), paper_psnr(frames["deblurred"], frames["sharp"])
    picture = os.path.join(args.save, "before_after.png")
    region = most_changed_region(frames["blurred"], frames["deblurred"])
    y0, x0, height, width = region
    detail = {key: rgb_psnr(crop(frames[key], region), crop(frames["sharp"], region))
              for key in ("blurred", "deblurred")}
    where = f"x {x0}-{x0 + width - 1}, y {y0}-{y0 + height - 1}"
    write_before_after(picture, frames, {"blurred": f"blurred input: {before:.2f} dB",
                                         "deblurred": f"DBN, epoch {best['epoch']}: {after:.2f} dB",
                                         "sharp": "sharp (ground truth)"}, region,
                       {"blurred": f"{ZOOM}x zoom ({where}): {detail['blurred']:.2f} dB RGB",
                        "deblurred": f"where DBN changed most: {detail['deblurred']:.2f} dB RGB",
                        "sharp": f"{ZOOM}x zoom, sharp"})
    print()
    print("==> Demo result on the generated GoProNahTest frames (paper protocol: grayscale, scale- and")
    print("    +-5 px shift-optimised PSNR)")
    print(f"    blurred input             : {blurred:6.2f} dB")
    print(f"    DBN, best epoch {best['epoch']:<2d}        : {best['psnr']:6.2f} dB")
    print(f"    DBN, last epoch {latest['epoch']:<2d}        : {latest['psnr']:6.2f} dB")
    print(f"    before_after.png          : {picture}")
    print(f"      frame {frame}: blurred input {before:.2f} dB, deblurred {after:.2f} dB ({after - before:+.2f} dB)")
    print(f"      second row: {ZOOM}x zoom of {where}, where deblurring changed the frame most (RGB PSNR there: "
          f"blurred {detail['blurred']:.2f} dB, deblurred {detail['deblurred']:.2f} dB)")
    print(f"    run folder                : {args.save}")
    print(f"    records                   : {os.path.join(args.save, 'csv')}, logbook.txt")
    print(f"    TensorBoard               : tensorboard --logdir {os.path.join(args.save, 'tb')}")


if __name__ == "__main__":
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    main()
