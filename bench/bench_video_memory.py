"""Peak memory of deblur.py as the video gets longer: it should stay flat (streaming, N frames in memory).

For each length, a synthetic video is written and deblurred by `deblur.py` in a fresh process with a
DBN checkpoint; the peak resident memory of that process (and its ffmpeg helpers) is read with
os.wait4, and deblur.py's own peak is parsed from its log line.

    .venv/bin/python bench/bench_video_memory.py            # 20, 80, 320 frames at 256x144
    .venv/bin/python bench/bench_video_memory.py --quick    # 10, 40, 160 frames at 64x48
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def write_checkpoint(directory: str, length: int) -> str:
    """A DBN checkpoint of this project (random weights: memory does not depend on their values)."""

    import torch

    import runtime
    from models.dbn import DBN
    from utils import checkpoints

    torch.manual_seed(0)
    model = DBN(sequence_length=length, init_type="fan_in")
    checkpoints.save(directory, {"psnr": 0.0}, 1, runtime.ModelAndLoss(model, torch.nn.Module()),
                     extra={"args": {"model": "DBN", "training_dataset_sequence_length": length}})
    return os.path.join(directory, checkpoints.LATEST)


def write_video(filename: str, frames: int, height: int, width: int) -> None:
    """A moving gradient with noise, streamed into an H.264 file."""
    import imageio

    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    with imageio.v2.get_writer(filename, format="FFMPEG", fps=30, codec="libx264", quality=8,
                               macro_block_size=1) as writer:
        for t in range(frames):
            base = np.stack([np.sin((xs + 3 * t) / 9.0), np.cos((ys - t) / 7.0), np.sin((xs + ys) / 11.0)], axis=2)
            image = (base * 0.4 + 0.5 + rng.normal(0, 0.02, base.shape)) * 255
            writer.append_data(np.clip(image, 0, 255).astype(np.uint8))


def measure(checkpoint: str, video: str, output: str, device: str) -> Dict[str, float]:
    """Run deblur.py once; peak RSS (MiB) of the process tree and as deblur.py reports it, and wall time."""
    command = [sys.executable, os.path.join(REPO, "deblur.py"), "--checkpoint", checkpoint, "--input", video,
               "--output", output, "--device", device]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"deblur.py failed ({process.returncode}):\n{log[-2000:]}")
    reported = re.search(r"frames deblurred .*peak memory (\d+) MiB", log)
    frames = int(re.search(r"(\d+) frames deblurred", log).group(1))
    return {"frames": frames, "peak_rss_mib": usage.ru_maxrss / 1024.0,
            "deblur_reported_mib": float(reported.group(1)) if reported else float("nan"), "seconds": seconds}


def main(argv: List[str] = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short videos at 64x48")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="video lengths in frames")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--sequence_length", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    options = parser.parse_args(argv)
    lengths = options.lengths or ([10, 40, 160] if options.quick else [20, 80, 320])
    height, width = options.size or ((48, 64) if options.quick else (144, 256))
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = write_checkpoint(os.path.join(scratch, "run"), options.sequence_length)
        for length in lengths:
            video = os.path.join(scratch, f"clip{length}.mp4")
            write_video(video, length, height, width)
            result = measure(checkpoint, video, os.path.join(scratch, f"out{length}"), options.device)
            result.update(length=length, height=height, width=width)
            results.append(result)
            print(f"{length:6d} frames {width}x{height}: peak RSS {result['peak_rss_mib']:8.1f} MiB "
                  f"(deblur.py: {result['deblur_reported_mib']:.0f} MiB), {result['seconds']:6.1f} s", flush=True)
    growth = results[-1]["peak_rss_mib"] - results[0]["peak_rss_mib"]
    factor = results[-1]["length"] / results[0]["length"]
    print(f"peak RSS change from {results[0]['length']} to {results[-1]['length']} frames ({factor:.0f}x longer): "
          f"{growth:+.1f} MiB ({100.0 * growth / results[0]['peak_rss_mib']:+.1f} %)")
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "growth_mib": growth}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
