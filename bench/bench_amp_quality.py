"""What deblur.py's fast path (bf16 autocast + channels-last + BatchNorm folded) costs in quality against float32.

Each checkpoint deblurs each sequence twice through deblur.py itself, with `--amp=none` (the exact float32
result) and with `--amp=bf16` (the fast path, as `--amp=auto` takes it where the hardware has native bf16);
both 8-bit outputs are scored against the sharp frames, frame by frame, with the paper's protocol (grayscale
PSNR, scale- and ±5 px shift-optimised, spec §4.2) and RGB PSNR, and compared with each other (max and mean
|Δ| per pixel, in 8-bit levels). Sequences: the demo's test sequence and one generated at 1280x720 (or
`--size`) from the same photographs (tools/synthetic_gopro.py).

    .venv/bin/python bench/bench_amp_quality.py --checkpoint RUN_OR_CKPT [RUN_OR_CKPT ...] [--frames 8]
        [--size 1280x720] [--demo_data demo_data/GOPRO_Large] [--quick] [--json FILE]
"""
import glob
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

import numpy as np
import torch
from common import REPO, base_parser, emit, finish_parsing, machine, print_table  # noqa: I100
from PIL import Image

import deblur  # noqa: E402
from contrib.precision import native_bf16  # noqa: E402
from contrib.psnr import koehler_psnr, psnr_rgb  # noqa: E402


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float() / 255.0  # a writable copy


def _frames(folder: str) -> List[np.ndarray]:
    return [np.asarray(Image.open(path).convert("RGB")) for path in sorted(glob.glob(os.path.join(folder, "*.png")))]


def scores(outputs: List[np.ndarray], sharp: List[np.ndarray]) -> Dict[str, float]:
    """Frame-averaged paper-protocol PSNR and RGB PSNR of 8-bit outputs against the sharp frames."""
    paper = [float(koehler_psnr(_tensor(o), _tensor(s), scale_opt=True, trans_opt=True, trans_range=5))
             for o, s in zip(outputs, sharp)]
    rgb = [float(psnr_rgb(_tensor(o), _tensor(s))[0]) for o, s in zip(outputs, sharp)]
    return {"psnr": float(np.mean(paper)), "psnr_rgb": float(np.mean(rgb))}


def deblurred(checkpoint: str, blur: str, output: str, amp: str) -> List[np.ndarray]:
    """The frames deblur.py writes for `blur` with `--amp=amp`."""
    code = deblur.main(["--checkpoint", checkpoint, "--input", blur, "--output", output, "--amp", amp,
                        "--png_compression", "1"])
    if code != 0:
        raise SystemExit(f"bench_amp_quality.py: deblur.py failed on {blur} with --amp={amp}")
    return _frames(output)


def compare(checkpoint: str, sequence: str, label: str, base: str) -> Dict[str, Any]:
    """One row: float32 and bf16 scores of `checkpoint` on the sequence folder (blur/ and sharp/); the frames are
    written to `base`-fp32 and `base`-bf16."""
    blur, sharp = os.path.join(sequence, "blur"), _frames(os.path.join(sequence, "sharp"))
    exact = deblurred(checkpoint, blur, base + "-fp32", "none")
    fast = deblurred(checkpoint, blur, base + "-bf16", "bf16")
    difference = np.concatenate([np.abs(a.astype(int) - b.astype(int)).ravel() for a, b in zip(exact, fast)])
    fp32, bf16, blurred = scores(exact, sharp), scores(fast, sharp), scores(_frames(blur), sharp)
    height, width = sharp[0].shape[:2]
    return {"checkpoint": checkpoint, "sequence": label, "size": f"{width}x{height}", "frames": len(sharp),
            "input_psnr": blurred["psnr"], "fp32_psnr": fp32["psnr"], "bf16_psnr": bf16["psnr"],
            "delta_psnr": bf16["psnr"] - fp32["psnr"], "fp32_psnr_rgb": fp32["psnr_rgb"],
            "bf16_psnr_rgb": bf16["psnr_rgb"], "delta_psnr_rgb": bf16["psnr_rgb"] - fp32["psnr_rgb"],
            "max_abs_levels": int(difference.max()), "mean_abs_levels": float(difference.mean()),
            "changed_pixels": float(np.mean(difference > 0))}


def generated_sequence(folder: str, width: int, height: int, frames: int) -> str:
    """A test sequence of `frames` generated frames at width x height (the demo data's generator, seed 0)."""
    subprocess.run([sys.executable, "-m", "tools.synthetic_gopro", "--out", folder, "--width", str(width),
                    "--height", str(height), "--layout", "nah", "--seed", "0", "--train_sequences", "0",
                    "--test_sequences", "1", "--num_frames", str(frames), "--test_frames", str(frames)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return sorted(glob.glob(os.path.join(folder, "GOPRO_Large", "test", "*")))[0]


def main() -> None:
    """Measure and print the quality table."""
    parser = base_parser(__doc__, default_repeats=1)
    parser.add_argument("--checkpoint", nargs="+", required=True, help="run folders or checkpoint files")
    parser.add_argument("--demo_data", default=os.path.join(REPO, "demo_data", "GOPRO_Large"),
                        help="GOPRO_Large folder of the demo data (its first test sequence is scored)")
    parser.add_argument("--size", default="1280x720", help="WxH of the generated sequence ('none': skip it)")
    parser.add_argument("--frames", type=int, default=8, help="frames of the generated sequence")
    args = finish_parsing(parser)
    if args.quick:
        args.size, args.frames = "64x48", 4
    rows = []
    with tempfile.TemporaryDirectory() as work:
        sequences = [(sorted(glob.glob(os.path.join(args.demo_data, "test", "*")))[0], "demo test")]
        if args.size != "none":
            width, height = (int(v) for v in args.size.split("x"))
            sequences.append((generated_sequence(os.path.join(work, "generated"), width, height, args.frames),
                              "generated"))
        outputs = os.path.join(work, "outputs")
        os.makedirs(outputs)
        for checkpoint in args.checkpoint:
            for sequence, label in sequences:
                rows.append(compare(checkpoint, sequence, label, os.path.join(outputs, str(len(rows)))))
    info = machine(torch.device("cpu"))
    info["native_bf16"] = native_bf16(torch.device("cpu")) or "none"
    columns = ["checkpoint", "sequence", "size", "input_psnr", "fp32_psnr", "bf16_psnr", "delta_psnr",
               "fp32_psnr_rgb", "bf16_psnr_rgb", "delta_psnr_rgb", "max_abs_levels", "mean_abs_levels",
               "changed_pixels"]
    print_table(columns, [[f"{row[c]:.4f}" if isinstance(row[c], float) else row[c] for c in columns]
                          for row in rows])
    worst = max(max(abs(row["delta_psnr"]), abs(row["delta_psnr_rgb"])) for row in rows)
    print(f"largest |ΔPSNR| (paper protocol or RGB): {worst:.4f} dB; bound for a fast default: 0.01 dB")
    emit({"machine": info, "rows": rows, "largest_abs_delta_psnr": worst}, args.json)


if __name__ == "__main__":
    main()
