"""deblur.py --tile against untiled frames: max |difference| and PSNR, for DBN and FlowDBN, on generated frames.

    python bench/bench_tiles.py                      # 256x192 frames, 128x96 tiles, the default overlap
    python bench/bench_tiles.py --overlap 0 40 88    # several overlaps

The models have random weights tamed like the tests' (tests/helpers.py: DBN with a small residual; FlowDBN
with a random PWC-Net, whose flows of many pixels change with every input and depend on the whole frame, and
with a constant-flow PWC-Net, whose only seams come from warping at tile edges), so the numbers bound the
seams rather than show a trained model's. The frames are a generated blurry sequence (tools/synthetic_gopro.py)
and the PSNRs are against its sharp frames; the memory figure is deblur.py's estimate for an untiled frame.
"""
import argparse
import logging
import os
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

import deblur  # noqa: E402
from models.dbn import DBN  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from tests.helpers import constant_flow_pwcnet, random_pwcnet, save_model_checkpoint, tame  # noqa: E402
from tools.synthetic_gopro import psnr, render_sequence  # noqa: E402


class ListWriter:
    """Keeps the deblurred frames in memory."""

    def __init__(self) -> None:
        self.frames: List[np.ndarray] = []

    def write(self, name: str, frame: np.ndarray) -> None:
        """Store one frame."""
        self.frames.append(frame)


def deblurred(model: torch.nn.Module, blurry: List[np.ndarray], length: int, tiling: Any) -> List[np.ndarray]:
    """deblur.py's stream of the frames, tiled or not."""
    writer = ListWriter()
    deblur.deblur_stream(model, iter([(str(i), f) for i, f in enumerate(blurry)]), length, 8,
                         torch.device("cpu"), writer, tiling=tiling)
    return writer.frames


def build_models(length: int, directory: str) -> Dict[str, torch.nn.Module]:
    """DBN and FlowDBN with tamed random weights; FlowDBN with a random PWC-Net and with a constant-flow one."""
    models = {"DBN": tame(DBN(sequence_length=length, init_type="fan_in"), residual=0.02).eval()}
    for name, network in [("FlowDBN (random PWC-Net)", random_pwcnet(seed=0)),
                          ("FlowDBN (constant-flow PWC-Net)", constant_flow_pwcnet())]:
        flow_file = save_model_checkpoint(os.path.join(directory, "pwcnet.ckpt"), network.state_dict())
        models[name] = tame(FlowDBN(sequence_length=length, pretrained_pwcnet=flow_file), residual=0.02).eval()
    return models


def float_difference(model: torch.nn.Module, blurry: List[np.ndarray], tiling: Any) -> float:
    """max |tiled - untiled| of the float output of the first N frames (before the uint8 rounding)."""
    length = getattr(model, "sequence_length", 5)
    images = [deblur.pad_to_multiple(torch.tensor(blurry[min(i, len(blurry) - 1)]).permute(2, 0, 1)[None].float()
                                     / 255, 8) for i in range(length)]
    grid = deblur.tile_grid(images[0].shape[-2], images[0].shape[-1], *tiling)
    with torch.inference_mode():
        whole = deblur._output1(model, images, [None] * len(images))
        tiled = deblur._tiled_output1(model, images, [None] * len(images), grid)
    return float((tiled - whole).abs().max())


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Print one line per model and overlap."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(256, 192), metavar=("W", "H"))
    parser.add_argument("--tile", type=int, nargs=2, default=(128, 96), metavar=("W", "H"))
    parser.add_argument("--overlap", type=int, nargs="+", default=[deblur.TILE_OVERLAP])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--sequence_length", type=int, default=5)
    options = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)  # no progress lines

    width, height = options.size
    sequence = render_sequence(0, options.frames, width, height, seed=(7,), motion=3.0)
    blurry, sharp = [frame[0] for frame in sequence], [frame[2] for frame in sequence]
    with tempfile.TemporaryDirectory() as directory:
        models = build_models(options.sequence_length, directory)
        for name, model in models.items():
            memory = deblur.MemoryModel(model, options.sequence_length, 8, torch.device("cpu"))
            untiled = deblurred(model, blurry, options.sequence_length, None)
            reference = np.mean([psnr(u, s) for u, s in zip(untiled, sharp)])
            print(f"{name} N={options.sequence_length} {width}x{height}: untiled PSNR {reference:.3f} dB "
                  f"(blurry {np.mean([psnr(b, s) for b, s in zip(blurry, sharp)]):.3f} dB); the model's tensors "
                  f"for an untiled frame: about {deblur.gib(memory.extra(width * height))} "
                  f"({memory.per_pixel:.0f} bytes a pixel, x{deblur.MEMORY_OVERHEAD} included)")
            for overlap in options.overlap:
                tiling = ((options.tile[1], options.tile[0]), overlap)
                tiled = deblurred(model, blurry, options.sequence_length, tiling)
                difference = max(int(np.abs(t.astype(int) - u).max()) for t, u in zip(tiled, untiled))
                changed = np.mean([(t != u).any(axis=2).mean() for t, u in zip(tiled, untiled)])
                score = np.mean([psnr(t, s) for t, s in zip(tiled, sharp)])
                grid = deblur.tile_grid(height, width, *tiling)
                work = sum((r.stop - r.start) * (c.stop - c.start) for r, c, _, _ in grid) / (width * height)
                print(f"  {len(grid)} tiles of {options.tile[0]}x{options.tile[1]}, overlap {overlap:3d} "
                      f"({work:.2f}x the pixels): max |tiled - untiled| {difference} of 255 "
                      f"(float {float_difference(model, blurry, tiling):.1e}), {100 * changed:.2f}% of pixels "
                      f"differ, PSNR {score:.3f} dB ({score - reference:+.3f} dB), PSNR tiled vs untiled "
                      f"{np.mean([psnr(t, u) for t, u in zip(tiled, untiled)]):.1f} dB")


if __name__ == "__main__":
    main()
