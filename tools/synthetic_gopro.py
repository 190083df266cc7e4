"""Generate GoPro-like blurry/sharp video sequences from real photographs, in Nah's and Su's layouts.

A virtual hand-held camera looks at a photograph shipped with scikit-image and moves along a smooth
random trajectory (sum of low-frequency sinusoids: translation, a small rotation, a slight zoom).
Every output frame averages K sub-frames rendered along the trajectory during its exposure, as the
GoPro datasets average consecutive 240 fps frames: `sharp` is the middle sub-frame, `blur` the mean
in sRGB and `blur_gamma` the mean in linear light (gamma 2.2). The same seed gives identical files.

    python -m tools.synthetic_gopro --out demo_data --width 256 --height 144 --layout both
"""
import argparse
import logging
import math
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

from datasets import gopro_nah, gopro_su  # the layouts written are the readers'
from datasets.gopro_su import VALIDATION_FRAMES, VALIDATION_SEQUENCES

PHOTOS = ("astronaut", "coffee", "stereo_motorcycle", "chelsea", "rocket")  # real photos shipped with scikit-image
# Camera speed per photograph (times --motion): chelsea and rocket are mostly smooth (fur, sky), so at the
# others' speed their sequences stay almost sharp (blurred vs sharp 32-36 dB). Faster motion brings them to the
# 25-29 dB of GoPro's blurred test frames; the other three keep speed 1 (and the demo its data and figures).
PHOTO_MOTION = (1.0, 1.0, 1.0, 2.0, 3.0)
COVER = 1.6  # the photograph covers this multiple of the frame, leaving room for the camera motion
GAMMA = 2.2
NUM_SINUSOIDS = 3
FREQUENCY_RANGE = (0.02, 0.12)  # cycles per output frame
SPEED_RANGE = (0.02, 0.04)  # main camera speed, fraction of the frame width per output frame
TRANSLATION_BUDGET = 0.10  # summed sinusoid amplitudes, as a fraction of the frame width (x) / height (y)
MAX_ROTATION_DEGREES = 1.5
MAX_ZOOM = 0.03
RENDER_CHUNK_PIXELS = 1 << 23  # sub-frame pixels rendered in one grid_sample call (bounds memory)
SU_VALID_MIN_FRAMES = max(VALIDATION_FRAMES) + 1


def photograph(index: int, width: int, height: int) -> torch.Tensor:
    """Photograph number `index` (cycling through PHOTOS), resized and centre-cropped to COVER x the frame."""
    image = getattr(skimage.data, PHOTOS[index % len(PHOTOS)])()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity); take the left view
        image = image[0]
    source = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)[None].float() / 255.0
    out_h, out_w = math.ceil(COVER * height), math.ceil(COVER * width)
    scale = max(out_h / source.shape[2], out_w / source.shape[3])
    size = (max(out_h, round(source.shape[2] * scale)), max(out_w, round(source.shape[3] * scale)))
    source = F.interpolate(source, size=size, mode="bicubic", align_corners=False, antialias=True)
    top, left = (size[0] - out_h) // 2, (size[1] - out_w) // 2
    return source[:, :, top:top + out_h, left:left + out_w].clamp(0.0, 1.0)


class Trajectory:
    """A smooth random camera path: each of x, y, rotation, zoom is a sum of low-frequency sinusoids.

    The strongest x and y sinusoids share their frequency and are a quarter period apart (an ellipse),
    so the camera rarely stands still and almost every frame is blurred, as in hand-held footage.
    """

    def __init__(self, rng: np.random.Generator, width: int, height: int, motion: float) -> None:
        main = rng.uniform(0.5, 0.8, size=(4, 1))
        weights = np.concatenate([main, (1.0 - main) * rng.dirichlet(np.ones(NUM_SINUSOIDS - 1), size=4)], axis=1)
        budgets = np.array([TRANSLATION_BUDGET * width, TRANSLATION_BUDGET * height,
                            math.radians(MAX_ROTATION_DEGREES), MAX_ZOOM])
        self.amplitudes = weights * budgets[:, None] * rng.choice([-1.0, 1.0], size=(4, NUM_SINUSOIDS))
        self.frequencies = rng.uniform(*FREQUENCY_RANGE, size=(4, NUM_SINUSOIDS)) * motion
        self.phases = rng.uniform(0.0, 2.0 * math.pi, size=(4, NUM_SINUSOIDS))
        # The ellipse's frequency follows from a drawn speed (fraction of the frame width per frame).
        speed = rng.uniform(*SPEED_RANGE) * motion
        self.frequencies[:2, 0] = speed / (2.0 * math.pi * weights[0, 0] * TRANSLATION_BUDGET)
        self.amplitudes[1, 0] = self.amplitudes[0, 0] * height / width
        self.phases[1, 0] = self.phases[0, 0] + math.pi / 2.0

    def __call__(self, times: np.ndarray) -> np.ndarray:
        """(4, T) array of x shift, y shift (pixels), rotation (radians) and zoom (relative) at `times` (frames)."""
        angles = 2.0 * math.pi * self.frequencies[:, :, None] * times[None, None] + self.phases[:, :, None]
        # Subtract the value at t=0 so every sequence starts from the centred, unrotated view.
        start = np.sin(self.phases)[:, :, None]
        return (self.amplitudes[:, :, None] * (np.sin(angles) - start)).sum(axis=1)


def _render(source: torch.Tensor, params: np.ndarray, width: int, height: int) -> torch.Tensor:
    """Views (T,3,H,W) of `source` for camera params (4,T): bilinear sub-pixel sampling (align_corners=True)."""
    src_h, src_w = source.shape[2:]
    shift_x, shift_y, angle, zoom = (torch.from_numpy(p).float()[:, None, None] for p in params)
    zoom = 1.0 + zoom
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32) - (height - 1) / 2.0,
                            torch.arange(width, dtype=torch.float32) - (width - 1) / 2.0, indexing="ij")
    cos, sin = torch.cos(angle), torch.sin(angle)
    src_x = (src_w - 1) / 2.0 + zoom * (cos * xs - sin * ys) + shift_x
    src_y = (src_h - 1) / 2.0 + zoom * (sin * xs + cos * ys) + shift_y
    grid = torch.stack([2.0 * src_x / (src_w - 1) - 1.0, 2.0 * src_y / (src_h - 1) - 1.0], dim=-1)
    batch = source.expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(T,3,H,W) float in [0,1] -> (T,H,W,3) uint8, rounded."""
    return np.round(np.clip(images.permute(0, 2, 3, 1).numpy(), 0.0, 1.0) * 255.0).astype(np.uint8)


def render_sequence(photo_index: int, num_frames: int, width: int, height: int, seed: Sequence[int],
                    sub_frames: int = 7, motion: float = 1.0) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(blur, blur_gamma, sharp) uint8 HxWx3 frames of one sequence; sub-frames split each frame interval.

    `motion` multiplies the photograph's camera speed (PHOTO_MOTION).
    """
    if sub_frames < 1 or sub_frames % 2 == 0:
        raise ValueError(f"sub_frames must be a positive odd number (sharp = the middle one), got {sub_frames}")
    rng = np.random.default_rng(list(seed))
    source = photograph(photo_index, width, height)
    trajectory = Trajectory(rng, width, height, motion * PHOTO_MOTION[photo_index % len(PHOTOS)])
    offsets = (np.arange(sub_frames) + 0.5) / sub_frames - 0.5  # exposure = the whole frame interval
    chunk = max(1, RENDER_CHUNK_PIXELS // (sub_frames * width * height))
    frames = []
    for first in range(0, num_frames, chunk):
        times = (np.arange(first, min(first + chunk, num_frames))[:, None] + offsets[None]).reshape(-1)
        views = _render(source, trajectory(times), width, height).unflatten(0, (-1, sub_frames))
        blur = views.mean(dim=1)
        blur_gamma = views.clamp(0.0, 1.0).pow(GAMMA).mean(dim=1).pow(1.0 / GAMMA)
        sharp = views[:, sub_frames // 2]
        frames.extend(zip(_to_uint8(blur), _to_uint8(blur_gamma), _to_uint8(sharp)))
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Plain PSNR in dB of two uint8 images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _check_size(width: int, height: int, num_frames: int) -> None:
    if width <= 0 or height <= 0 or width % 8 or height % 8:
        raise ValueError(f"width and height must be positive multiples of 8 (DBN halves three times), "
                         f"got {width}x{height}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(image).save(path, compress_level=1)
    else:
        Image.fromarray(image).save(path, quality=95)


def make_gopro_nah(root: str, width: int = 1280, height: int = 720, num_frames: int = 24, train_sequences: int = 2,
                   test_sequences: int = 1, seed: int = 0, sub_frames: int = 7, motion: float = 1.0,
                   test_frames: Optional[int] = None) -> Path:
    """Write <root>/GOPRO_Large/{train,test}/<SEQ>/{blur,blur_gamma,sharp}/%06d.png; returns GOPRO_Large.

    Test sequences have `test_frames` frames (default: num_frames).
    """
    test_frames = num_frames if test_frames is None else test_frames
    _check_size(width, height, min(num_frames, test_frames))
    base = Path(root) / gopro_nah.LAYOUT.folder
    names = ([("train", f"GOPR9{i:03d}_00_00", num_frames) for i in range(train_sequences)]
             + [("test", f"GOPR9{500 + i:03d}_00_00", test_frames) for i in range(test_sequences)])
    for number, (split, name, frames_wanted) in enumerate(names):
        frames = render_sequence(number, frames_wanted, width, height, (seed, 0, number), sub_frames, motion)
        for t, (blur, blur_gamma, sharp) in enumerate(frames):
            for folder, image in ((gopro_nah.INPUTS, blur), (gopro_nah.GAMMA_INPUTS, blur_gamma),
                                  (gopro_nah.TARGETS, sharp)):
                _save(image, base / split / name / folder / f"{t + 1:06d}{gopro_nah.EXTENSION}")
        logging.info("%s/%s/%s: %d frames %dx%d, PSNR blur/sharp %.2f dB, blur_gamma/sharp %.2f dB",
                     base.name, split, name, frames_wanted, width, height, np.mean([psnr(b, s) for b, _, s in frames]),
                     np.mean([psnr(g, s) for _, g, s in frames]))
    return base


def make_gopro_su(root: str, width: int = 1280, height: int = 720, num_frames: int = 24, train_sequences: int = 2,
                  valid_sequences: int = 1, qualitative_sequences: int = 1, seed: int = 0, sub_frames: int = 7,
                  motion: float = 1.0) -> Path:
    """Write Su's layout under <root>/DeepVideoDeblurring_Dataset; returns that folder.

    Writes quantitative_datasets/<SEQ>/{input,GT}/%05d.jpg and qualitative_datasets/<SEQ>/input/%05d.jpg;
    the first `valid_sequences` quantitative sequences carry Su's validation names and >= 98 frames.
    """
    _check_size(width, height, num_frames)
    if not 0 <= valid_sequences <= len(VALIDATION_SEQUENCES):
        raise ValueError(f"valid_sequences must be in 0..{len(VALIDATION_SEQUENCES)}, got {valid_sequences}")
    base = Path(root) / gopro_su.LAYOUT.folder
    jobs = ([(gopro_su.QUANTITATIVE, name, max(num_frames, SU_VALID_MIN_FRAMES), True)
             for name in VALIDATION_SEQUENCES[:valid_sequences]]
            + [(gopro_su.QUANTITATIVE, f"IMG_9{i:03d}", num_frames, True) for i in range(train_sequences)]
            + [(gopro_su.QUALITATIVE, f"IMG_8{i:03d}", num_frames, False) for i in range(qualitative_sequences)])
    for number, (kind, name, frames_wanted, with_gt) in enumerate(jobs):
        frames = render_sequence(number + 1, frames_wanted, width, height, (seed, 1, number), sub_frames, motion)
        for t, (blur, _, sharp) in enumerate(frames):
            _save(blur, base / kind / name / gopro_su.INPUTS / f"{t:05d}{gopro_su.EXTENSION}")
            if with_gt:
                _save(sharp, base / kind / name / gopro_su.TARGETS / f"{t:05d}{gopro_su.EXTENSION}")
        logging.info("%s/%s/%s: %d frames %dx%d, PSNR blur/sharp %.2f dB", base.name, kind, name,
                     frames_wanted, width, height, np.mean([psnr(b, s) for b, _, s in frames]))
    return base


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line of the generator."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (GOPRO_Large / DeepVideoDeblurring_Dataset inside)")
    parser.add_argument("--width", type=int, default=1280, help="frame width (multiple of 8)")
    parser.add_argument("--height", type=int, default=720, help="frame height (multiple of 8)")
    parser.add_argument("--num_frames", type=int, default=24, help="frames per Nah sequence")
    parser.add_argument("--train_sequences", type=int, default=2, help="Nah training sequences")
    parser.add_argument("--test_sequences", type=int, default=1, help="Nah test sequences")
    parser.add_argument("--test_frames", type=int, default=None,
                        help="frames per Nah test sequence (default: --num_frames)")
    parser.add_argument("--su_sequences", type=int, default=2, help="Su quantitative training sequences")
    parser.add_argument("--su_valid_sequences", type=int, default=1,
                        help="Su quantitative sequences named as Su's validation ones (>= 98 frames each)")
    parser.add_argument("--su_qualitative_sequences", type=int, default=1, help="Su qualitative sequences (no GT)")
    parser.add_argument("--su_frames", type=int, default=24, help="frames per Su sequence (validation ones: >= 98)")
    parser.add_argument("--sub_frames", type=int, default=7, help="sub-frames averaged per blurry frame (odd)")
    parser.add_argument("--motion", type=float, default=1.0,
                        help="camera speed multiplier (more = more blur), times each photograph's own speed")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--layout", choices=("nah", "su", "both"), default="both", help="which dataset layouts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.time()
    try:
        if args.layout in ("nah", "both"):
            path = make_gopro_nah(args.out, args.width, args.height, args.num_frames, args.train_sequences,
                                  args.test_sequences, args.seed, args.sub_frames, args.motion, args.test_frames)
            logging.info("wrote %s", path)
        if args.layout in ("su", "both"):
            path = make_gopro_su(args.out, args.width, args.height, args.su_frames, args.su_sequences,
                                 args.su_valid_sequences, args.su_qualitative_sequences, args.seed, args.sub_frames,
                                 args.motion)
            logging.info("wrote %s", path)
    except ValueError as error:
        parser.error(str(error))
    logging.info("done in %.1f s", time.time() - start)


if __name__ == "__main__":
    main()
