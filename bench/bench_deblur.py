"""Frames/s of deblur.py end to end (read PNG, deblur, write PNG) against the model alone, DBN at 1280x720.

Variants, each over the same generated folder of `--frames` PNG frames (DBN, N=5, random weights):
  model              DBN's forward on one padded window, `--frames` times: what the model alone sustains
  serial             deblur.py --no_overlap: read, deblur and write one after another (before issue 19)
  overlapped         a reader and a writer thread around the model (PNG level 6), float32 (--amp=none)
  overlapped_level1  the same with --png_compression=1
  model_fast         the model alone in deblur.py's default precision here (--amp=auto: bf16 autocast,
                     channels-last, BatchNorm folded where the device multiplies bf16 natively, else float32)
  overlapped_fast    deblur.py's defaults: overlapped in that precision (issue 21: >= 3x overlapped on AMX)
The stream variants run deblur.py's own functions (read_folder, deblur_stream / deblur_overlapped,
FrameWriter) in this process, timed from the first read to the last file written; process start and
checkpoint loading (one-off) are left out. The variants take turns, the order rotating every round, and
each round's frames/s are divided by the same round's model frames/s (robust to load drifting on a
shared machine); `--warmup` untimed forwards come first. The fast variants are also divided by their
float32 counterparts of the same round ("vs float32"). The serial and overlapped folders are compared
byte for byte. Also: size and write time of one 1280x720 frame per PNG compression level (interleaved).

    .venv/bin/python bench/bench_deblur.py [--quick] [--frames 4] [--repeats 3] [--variants model overlapped ...]
        [--json FILE]
"""
import copy
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

import numpy as np
import torch
from common import base_parser, emit, finish_parsing, machine, median, print_table, stats  # noqa: I100
from PIL import Image

import deblur  # noqa: E402
from contrib.precision import FLOAT32  # noqa: E402
from models.dbn import DBN  # noqa: E402

VARIANTS = ("model", "serial", "overlapped", "overlapped_level1", "model_fast", "overlapped_fast")
FLOAT32_OF = {"model_fast": "model", "overlapped_fast": "overlapped"}
LEVELS = (0, 1, 3, 6, 9)


def frames(count: int, width: int, height: int) -> List[np.ndarray]:
    """Smooth moving colour waves plus sensor-like noise (sigma 2 levels), as uint8 frames.

    Noise matters for the PNG figures: it is what zlib cannot compress, as in real footage.
    """
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    result = []
    for t in range(count):
        base = np.stack([np.sin((xs + 3 * t) / 37.0 + ys / 53.0), np.cos(ys / 29.0 - (xs - t) / 71.0),
                         np.sin((xs + ys + t) / 47.0)], axis=2)
        image = (base * 0.4 + 0.5) * 255 + rng.normal(0, 2.0, base.shape)
        result.append(np.clip(image, 0, 255).astype(np.uint8))
    return result


def folder_bytes(folder: str) -> Dict[str, bytes]:
    """{file name: contents} of a folder."""
    result = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as handle:
            result[name] = handle.read()
    return result


def png_levels(frame: np.ndarray, folder: str, repeats: int) -> List[Dict[str, Any]]:
    """Size and write time (seconds, median of `repeats`, levels interleaved) of one frame per level."""
    times: Dict[int, List[float]] = {level: [] for level in LEVELS}
    image = Image.fromarray(frame)
    for _ in range(repeats):
        for level in LEVELS:
            start = time.perf_counter()
            image.save(os.path.join(folder, f"level{level}.png"), compress_level=level)
            times[level].append(time.perf_counter() - start)
    return [{"level": level, "bytes": os.path.getsize(os.path.join(folder, f"level{level}.png")),
             "write_s": stats(times[level])} for level in LEVELS]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=3)
    parser.add_argument("--frames", type=int, default=None, help="frames per stream (default 4, quick 3)")
    parser.add_argument("--sequence_length", type=int, default=5)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="which variants to run (model is always run: the others are divided by it)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("WIDTH", "HEIGHT"),
                        help="frame size (default 1280 720, quick 64 48)")
    options = finish_parsing(parser)
    width, height = options.size or ((64, 48) if options.quick else (1280, 720))
    count = options.frames or (3 if options.quick else 4)
    device, length = options.device, options.sequence_length
    torch.manual_seed(0)
    model = DBN(sequence_length=length, init_type="fan_in").eval().to(device)
    variants = [name for name in VARIANTS if name in options.variants or name == "model"]
    precision, fold, described = deblur.choose_precision("auto", None, None, device)
    fast_model = deblur.prepare_model(copy.deepcopy(model), precision, fold)
    clip = frames(count, width, height)
    window = [deblur.pad_to_multiple(torch.from_numpy(f).to(device).permute(2, 0, 1)[None].float() / 255.0, 8)
              for f in clip[:1] * length]
    example = {f"input{i + 1}": image for i, image in enumerate(window)}
    fast_example = {key: precision.input(image) for key, image in example.items()}
    with tempfile.TemporaryDirectory() as scratch:
        source = os.path.join(scratch, "in")
        os.makedirs(source)
        for i, frame in enumerate(clip):
            Image.fromarray(frame).save(os.path.join(source, f"{i:04d}.png"))
        files = deblur.list_frames(source)

        def model_alone(fast: bool) -> Callable[[], None]:
            def run() -> None:
                with torch.inference_mode(), (precision if fast else FLOAT32).autocast(device):
                    for _ in range(count):
                        (fast_model if fast else model)(fast_example if fast else example)
            return run

        def stream(overlapped: bool, level: int, output: str, fast: bool = False) -> Callable[[], None]:
            def run() -> None:
                writer = deblur.FrameWriter(output, True, None, 0.0, level)
                function = deblur.deblur_overlapped if overlapped else deblur.deblur_stream
                function(fast_model if fast else model, deblur.read_folder(files), length, 8, device, writer, count,
                         precision=precision if fast else FLOAT32)
            return run

        runs = {"model": model_alone(False), "serial": stream(False, 6, os.path.join(scratch, "serial")),
                "overlapped": stream(True, 6, os.path.join(scratch, "overlapped")),
                "overlapped_level1": stream(True, 1, os.path.join(scratch, "level1")),
                "model_fast": model_alone(True),
                "overlapped_fast": stream(True, 6, os.path.join(scratch, "fast"), fast=True)}
        with torch.inference_mode():
            for _ in range(options.warmup):
                model(example)
                if "model_fast" in variants or "overlapped_fast" in variants:
                    with precision.autocast(device):
                        fast_model(fast_example)
        seconds: Dict[str, List[float]] = {name: [] for name in variants}
        for round_index in range(options.repeats):
            order = variants[round_index % len(variants):] + variants[:round_index % len(variants)]
            for name in order:
                start = time.perf_counter()
                runs[name]()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds[name].append(time.perf_counter() - start)
                print(f"round {round_index + 1}: {name:18s} {count / seconds[name][-1]:.4f} frames/s", flush=True)
        identical = (folder_bytes(os.path.join(scratch, "serial")) == folder_bytes(os.path.join(scratch, "overlapped"))
                     if "serial" in variants and "overlapped" in variants else None)
        levels = png_levels(clip[0], scratch, 5 if options.quick else 7)
    rows = []
    for name in variants:
        frames_per_s = [count / s for s in seconds[name]]
        ratios = [count / s / (count / m) for s, m in zip(seconds[name], seconds["model"])]
        float32 = seconds.get(FLOAT32_OF.get(name, ""))
        rows.append({"variant": name, "frames_per_s": stats(frames_per_s), "s_per_frame": median(seconds[name]) / count,
                     "vs_model": median(ratios),
                     "vs_float32": median([f / s for s, f in zip(seconds[name], float32)]) if float32 else None})
    document = {"bench": "deblur", "machine": machine(device),
                "config": {"model": "DBN (random weights)", "sequence_length": length, "width": width,
                           "height": height, "frames": count, "repeats": options.repeats, "warmup": options.warmup,
                           "queue_frames": deblur.QUEUE_FRAMES, "fast_precision": described},
                "rows": rows, "serial_equals_overlapped": identical, "png_levels": levels}
    emit(document, options.json)
    print(described.replace("precision:", "fast variants' precision:", 1))
    print_table(["variant", "frames/s median (min-max)", "s/frame", "vs model alone (paired)", "vs float32 (paired)"],
                [[row["variant"], f"{row['frames_per_s']['median']:.4f} ({row['frames_per_s']['min']:.4f}-"
                  f"{row['frames_per_s']['max']:.4f})", f"{row['s_per_frame']:.3f}", f"{row['vs_model']:.3f}",
                  f"{row['vs_float32']:.2f}x" if row["vs_float32"] else "-"]
                 for row in rows])
    print(f"serial and overlapped files identical: {identical}")
    print_table(["PNG level", "bytes", "write s median"],
                [[entry["level"], entry["bytes"], f"{entry['write_s']['median']:.4f}"] for entry in levels])


if __name__ == "__main__":
    sys.exit(main())
