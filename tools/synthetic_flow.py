"""Generate tiny optical-flow data sets with exact ground truth, in FlyingChairs or MPI-Sintel layout.

Every frame is rendered from a real photograph (scikit-image's bundled samples) by backward
mapping: frame pixel p shows the photograph at P·p, where P is a known affine camera matrix
(3×3, homogeneous, frame pixels → photograph pixels; bilinear sampling, border padding). A second
frame uses P' = P·M with a small random affine motion M. The flow from the first to the second
frame is then known in closed form, flow(p) = M⁻¹·p − p, and warping the second frame by it
reproduces the first one wherever p + flow(p) lies inside the second frame (i.e. except where
content leaves the frame near the borders).

Layouts written (what datasets/flyingchairs.py and datasets/sintel.py read):

* flyingchairs: <output>/NNNNN_img1.ppm, NNNNN_img2.ppm, NNNNN_flow.flo (1-based, 5 digits) and
  <output>/FlyingChairs_train_val.txt (one line per example: 1 = training, 2 = validation).
* sintel: <output>/training/{clean,final}/<scene>/frame_NNNN.png, <output>/training/flow/<scene>/
  frame_NNNN.flo (flow from frame N to N+1) and <output>/test/{clean,final}/<scene>/frame_NNNN.png.
  The final pass is the clean pass with a Gaussian blur, a stand-in for Sintel's rendering effects.

Deterministic for a given seed. Usage: python -m tools.synthetic_flow --help
"""
import argparse
import functools
import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from datasets import flyingchairs, sintel  # the layouts written are the readers'
from datasets.flyingchairs import SPLIT_FILENAME
from utils.flow_io import write_flo
from utils.images import to_uint8, write_image

# Textured photographs shipped inside scikit-image (no download needed); camera is grey.
_PHOTO_LOADERS: Dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
    "camera": lambda: np.repeat(skimage.data.camera()[..., None], 3, axis=2),
}
PHOTOS: Tuple[str, ...] = tuple(_PHOTO_LOADERS)


@functools.lru_cache(maxsize=None)
def load_photo(name: str, short_side: int) -> torch.Tensor:
    """A scikit-image sample photograph as float64 (3, H, W) in [0, 1], short side resized to `short_side`.

    Cached: callers must not modify the returned tensor.
    """
    if name not in _PHOTO_LOADERS:
        raise ValueError(f"unknown photograph '{name}'; expected one of {PHOTOS}")
    image = torch.from_numpy(_PHOTO_LOADERS[name]()[..., :3].copy()).permute(2, 0, 1)
    image = image.to(torch.float64).div(255.0).unsqueeze(0)
    height, width = image.shape[-2:]
    scale = short_side / min(height, width)
    size = (max(short_side, round(height * scale)), max(short_side, round(width * scale)))
    # Anti-aliased downscaling keeps the photograph smooth enough for bilinear re-sampling.
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


def similarity(scale: float, rotation: float, translation: Sequence[float], center: Sequence[float]) -> np.ndarray:
    """3×3 matrix p ↦ translation + R(rotation)·diag(scale)·(p − center) on (x, y, 1) columns."""
    cos, sin = math.cos(rotation), math.sin(rotation)
    matrix = np.array([[scale * cos, -scale * sin, 0.0], [scale * sin, scale * cos, 0.0], [0.0, 0.0, 1.0]])
    matrix[:2, 2] = np.asarray(translation, dtype=np.float64) - matrix[:2, :2] @ np.asarray(center, dtype=np.float64)
    return matrix


def pixel_grid(height: int, width: int) -> np.ndarray:
    """(3, H·W) homogeneous pixel coordinates (x = column, y = row), row by row."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([xs.ravel(), ys.ravel(), np.ones(height * width)])


def render(photo: torch.Tensor, camera: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Frame (3, H, W) whose pixel p shows the photograph at camera·p (bilinear, border padding)."""
    points = camera @ pixel_grid(height, width)
    photo_height, photo_width = photo.shape[-2:]
    grid = np.stack([2.0 * points[0] / (photo_width - 1) - 1.0, 2.0 * points[1] / (photo_height - 1) - 1.0], axis=1)
    grid = torch.from_numpy(grid).to(photo.dtype).view(1, height, width, 2)
    frame = F.grid_sample(photo.unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return frame[0].clamp(0, 1)


def flow_between(motion: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 2) flow from frame a to frame b when camera_b = camera_a·motion: flow(p) = motion⁻¹·p − p."""
    grid = pixel_grid(height, width)
    displaced = np.linalg.inv(motion) @ grid
    return (displaced[:2] - grid[:2]).T.reshape(height, width, 2).astype(np.float32)


def random_camera(rng: np.random.Generator, photo: torch.Tensor, height: int, width: int,
                  reserve: float) -> np.ndarray:
    """A camera looking at a random, mostly interior part of the photograph."""
    photo_height, photo_width = photo.shape[-2:]
    zoom = rng.uniform(0.8, 1.2)
    rotation = rng.uniform(-0.3, 0.3)
    reach = zoom * 0.5 * math.hypot(height, width) + reserve
    free_x = max(0.0, (photo_width - 1) / 2 - reach)
    free_y = max(0.0, (photo_height - 1) / 2 - reach)
    center = ((photo_width - 1) / 2 + rng.uniform(-free_x, free_x),
              (photo_height - 1) / 2 + rng.uniform(-free_y, free_y))
    return similarity(zoom, rotation, center, ((width - 1) / 2, (height - 1) / 2))


def random_motion(rng: np.random.Generator, height: int, width: int, max_shift: float) -> np.ndarray:
    """Small affine frame-to-frame motion: shift ±max_shift px, rotation ±0.05 rad, zoom 0.95–1.05, shear."""
    center = ((width - 1) / 2, (height - 1) / 2)
    zoom, angle = rng.uniform(0.95, 1.05), rng.uniform(-0.05, 0.05)  # drawn in this order: the data stay the same
    shifted = (center[0] + rng.uniform(-max_shift, max_shift), center[1] + rng.uniform(-max_shift, max_shift))
    motion = similarity(zoom, angle, shifted, center)
    shear = np.eye(3)
    shear[0, 1], shear[1, 0] = rng.uniform(-0.03, 0.03, size=2)
    return motion @ shear


def _check_size(height: int, width: int, max_shift: float) -> None:
    if height < 8 or width < 8:
        raise ValueError(f"frames must be at least 8x8 pixels, got {height}x{width}")
    if max_shift < 0:
        raise ValueError(f"--max_shift must be >= 0, got {max_shift}")


def render_sequence(rng: np.random.Generator, photo: torch.Tensor, num_frames: int, height: int, width: int,
                    max_shift: float) -> Tuple[List[torch.Tensor], List[np.ndarray]]:
    """`num_frames` frames of one photograph under random motion, and the num_frames − 1 flows between them."""
    reserve = (num_frames - 1) * (max_shift + 0.1 * math.hypot(height, width))
    camera = random_camera(rng, photo, height, width, reserve)
    frames, flows = [render(photo, camera, height, width)], []
    for _ in range(num_frames - 1):
        motion = random_motion(rng, height, width, max_shift)
        camera = camera @ motion
        frames.append(render(photo, camera, height, width))
        flows.append(flow_between(motion, height, width))
    return frames, flows


def _photos(height: int, width: int) -> List[torch.Tensor]:
    # The photograph is 2.5× the frame's longer side, so frames show a varying part of it.
    return [load_photo(name, math.ceil(2.5 * max(height, width))) for name in PHOTOS]


def make_flyingchairs(output: str, num_examples: int = 64, height: int = 64, width: int = 64, seed: int = 0,
                      max_shift: float = 4.0, validation_every: int = 5) -> int:
    """Write `num_examples` FlyingChairs-layout pairs (+ split file) into `output`; returns the count.

    Every `validation_every`-th example (the 5th, 10th, ...) is marked 2 (validation) in the split
    file, the others 1 (training); validation_every <= 0 marks all as training.
    """
    _check_size(height, width, max_shift)
    if num_examples < 1:
        raise ValueError(f"--num_examples must be >= 1, got {num_examples}")
    os.makedirs(output, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = _photos(height, width)
    labels = []
    for k in range(num_examples):
        frames, flows = render_sequence(rng, photos[k % len(photos)], 2, height, width, max_shift)
        stem = os.path.join(output, f"{k + 1:05d}")
        write_image(to_uint8(frames[0]), stem + flyingchairs.FIRST)
        write_image(to_uint8(frames[1]), stem + flyingchairs.SECOND)
        write_flo(stem + flyingchairs.FLOW, flows[0])
        labels.append(2 if validation_every > 0 and (k + 1) % validation_every == 0 else 1)
    with open(os.path.join(output, SPLIT_FILENAME), "w", encoding="ascii") as handle:
        handle.writelines(f"{label}\n" for label in labels)
    return num_examples


def make_sintel(output: str, num_scenes: int = 4, frames_per_scene: int = 5, num_test_scenes: int = 1,
                height: int = 48, width: int = 64, seed: int = 0, max_shift: float = 4.0) -> int:
    """Write MPI-Sintel-layout scenes (training with flow, test without) into `output`; returns the pair count."""
    import torchvision.transforms.functional as TF  # noqa: N812 -- imported where used: it loads torch._dynamo

    _check_size(height, width, max_shift)
    if num_scenes < 1 or frames_per_scene < 2 or num_test_scenes < 0:
        raise ValueError(f"need --num_scenes >= 1, --frames_per_scene >= 2 and --num_test_scenes >= 0, "
                         f"got {num_scenes}, {frames_per_scene}, {num_test_scenes}")
    rng = np.random.default_rng(seed)
    photos = _photos(height, width)
    pairs = 0
    for split, count in (("training", num_scenes), ("test", num_test_scenes)):
        for s in range(count):
            photo_index = (s + (num_scenes if split == "test" else 0)) % len(PHOTOS)
            scene = f"{PHOTOS[photo_index]}_{s + 1}"
            frames, flows = render_sequence(rng, photos[photo_index], frames_per_scene, height, width, max_shift)
            for dstype in sintel.PASSES:
                folder = os.path.join(output, split, dstype, scene)
                os.makedirs(folder, exist_ok=True)
                for i, frame in enumerate(frames):
                    if dstype == "final":
                        frame = TF.gaussian_blur(frame.unsqueeze(0), kernel_size=5, sigma=1.0)[0]
                    write_image(to_uint8(frame), os.path.join(folder, f"frame_{i + 1:04d}.png"))
            if split == "training":
                folder = os.path.join(output, split, sintel.FLOW, scene)
                os.makedirs(folder, exist_ok=True)
                for i, flow in enumerate(flows):
                    write_flo(os.path.join(folder, f"frame_{i + 1:04d}.flo"), flow)
                pairs += len(flows)
    return pairs


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.synthetic_flow", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--layout", choices=("flyingchairs", "sintel"), default="flyingchairs",
                        help="on-disk layout to write")
    parser.add_argument("--output", required=True, help="folder to write into (FlyingChairs: the data folder)")
    parser.add_argument("--height", type=int, default=None, help="frame height (default 64 chairs, 48 sintel)")
    parser.add_argument("--width", type=int, default=64, help="frame width")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--max_shift", type=float, default=4.0, help="largest translation between frames (px)")
    parser.add_argument("--num_examples", type=int, default=64, help="flyingchairs: image pairs")
    parser.add_argument("--validation_every", type=int, default=5,
                        help="flyingchairs: every k-th pair is a validation pair (0: none)")
    parser.add_argument("--num_scenes", type=int, default=4, help="sintel: training scenes")
    parser.add_argument("--frames_per_scene", type=int, default=5, help="sintel: frames per scene")
    parser.add_argument("--num_test_scenes", type=int, default=1, help="sintel: test scenes (no flow)")
    args = parser.parse_args(argv)
    if args.layout == "flyingchairs":
        count = make_flyingchairs(args.output, args.num_examples, args.height or 64, args.width, args.seed,
                                  args.max_shift, args.validation_every)
        print(f"wrote {count} FlyingChairs-layout pairs to {args.output}")
    else:
        count = make_sintel(args.output, args.num_scenes, args.frames_per_scene, args.num_test_scenes,
                            args.height or 48, args.width, args.seed, args.max_shift)
        print(f"wrote {args.num_scenes} Sintel-layout training scenes ({count} flow pairs) and "
              f"{args.num_test_scenes} test scenes to {args.output}")


if __name__ == "__main__":
    main()
