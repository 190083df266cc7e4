"""What the GoPro deblurring datasets share (spec §5.2-§5.4): frame lists, windows, reading, augmentation.

A dataset is a list of `FrameSequence`s plus the (sequence, centre frame) pairs that are examples.
Each distinct frame of an example is decoded once per access. Nothing is ever written into the
dataset tree (the original wrote 66 MB float32 `-seqN.npy` caches per example there); instead an
optional `cache_dir` chosen by the user holds one uint8 .npy per frame (`FrameCache`), memory-mapped
on later reads so that a crop copies only the pixels it needs. Randomness is the original's, draw for
draw (spec §22): reversal, crop offsets, multiplicative colours, channel permutations and the noise's
sigma come from numpy's global RNG; scales, flips, rotations and photometric jitter from python's
`random`; the noise values from torch's. The framework's loader seeds those RNGs per example and epoch
(`datasets.sampling`), so a run seeded by the framework is reproducible with any number of workers.
"""
import dataclasses
import hashlib
import logging
import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from datasets.sampling import KeyedDataset, check_num_examples, images_to_float
from utils.images import image_size, read_image

RANDOM_SCALES_MODES = ("none", "weak", "strong")
WEAK_SCALES = (1.0 / 4.0, 1.0 / 3.0, 1.0 / 2.0)
MULTIPLICATIVE_COLOR_RANGE = (0.5, 2.0)
PHOTOMETRIC_FACTOR_RANGE = (0.5, 1.5)
HUE_RANGE = (-0.5, 0.5)
MAX_NOISE_SIGMA = 0.04
NPY_HEADER_BYTES = 128  # what np.save writes before a uint8 HxWx3 array (format 1.0)


@dataclasses.dataclass(frozen=True)
class FrameSequence:
    """One video: its name, its (blurry) input frame files and, if known, the sharp ground-truth files."""

    name: str
    inputs: Tuple[str, ...]
    targets: Optional[Tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.inputs)


def checked_root(root: Optional[str], what: str, layout: str) -> Path:
    """`root` with '~' expanded; a missing or unset root raises an error that shows the expected layout."""
    if root is None or str(root).strip() == "":
        raise ValueError(f"{what}: no dataset root given (set --training_dataset_root / "
                         f"--validation_dataset_root); expected {layout}")
    path = Path(os.path.expanduser(str(root)))
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: dataset root '{path}' is not a directory; expected {layout}")
    return path


def nesting_hint(root: Path, expected: Sequence[str]) -> Optional[str]:
    """Where the folders `expected` really are when `root` lacks them: in a subfolder (an archive's own top
    folder, e.g. GOPRO_Large/GOPRO_Large/train) or in the parent; None when they are nowhere near."""
    root = Path(root)
    if all((root / name).is_dir() for name in expected):
        return None
    for child in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if all((child / name).is_dir() for name in expected):
            return f"found '{child / expected[0]}': pass the inner folder '{child}'"
    if root.name in expected and all((root.parent / name).is_dir() for name in expected):
        return f"'{root}' is one of the dataset's own folders: pass its parent '{root.parent}'"
    return None


@dataclasses.dataclass(frozen=True)
class DatasetLayout:
    """Where one dataset's files lie, described once (next to its reader) for the reader's errors and nesting
    hints, `scripts/get_data.py` (the folder a download unpacks to, --verify) and DRY_RUN's remedies."""

    name: str  # scripts/get_data.py's name for it, e.g. 'gopro_nah'
    folder: str  # the folder its download unpacks to, e.g. 'GOPRO_Large'
    description: str  # the files below the reader's root, for error messages
    top_level: Tuple[str, ...]  # folders the reader's root must hold (what nesting hints look for)
    root_below_folder: str = ""  # the reader's root below `folder` ('data' for FlyingChairs_release)
    published: Dict[str, Tuple[int, int]] = dataclasses.field(default_factory=dict)  # (sequences, frames) per split

    def reader_root(self, folder: Path) -> Path:
        """The root the dataset classes read, given the unpacked download folder."""
        return Path(folder) / self.root_below_folder if self.root_below_folder else Path(folder)

    def unpacked(self, folder: Path) -> bool:
        """Whether `folder` looks like the unpacked download: its reader root holds the top-level folders."""
        root = self.reader_root(folder)
        return root.is_dir() and all((root / name).is_dir() for name in self.top_level)


def sequence_folders(parent: Path, what: str) -> List[Path]:
    """The immediate subfolders of `parent` (one per sequence), sorted by name."""
    if not parent.is_dir():
        raise FileNotFoundError(f"{what}: folder '{parent}' does not exist")
    folders = sorted(p for p in parent.iterdir() if p.is_dir())
    if not folders:
        raise ValueError(f"{what}: no sequence folders in '{parent}'")
    return folders


def frame_files(folder: Path, extension: str) -> List[Path]:
    """The `*<extension>` files of a frame folder, sorted; a missing or empty folder is an error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"missing frame folder '{folder}'")
    files = sorted(folder.glob(f"*{extension}"))
    if not files:
        raise ValueError(f"frame folder '{folder}' holds no '*{extension}' files")
    return files


def paired_sequence(name: str, input_folder: Path, target_folder: Optional[Path], extension: str) -> FrameSequence:
    """A sequence whose input and ground-truth folders hold the same number of equally named frames."""
    inputs = frame_files(input_folder, extension)
    if target_folder is None:
        return FrameSequence(name, tuple(str(p) for p in inputs), None)
    targets = frame_files(target_folder, extension)
    if len(inputs) != len(targets):
        raise ValueError(f"sequence '{name}': {len(inputs)} frames in '{input_folder}' but {len(targets)} "
                         f"in '{target_folder}'")
    for input_file, target_file in zip(inputs, targets):
        if input_file.stem != target_file.stem:
            raise ValueError(f"sequence '{name}': input frame '{input_file}' has no ground truth of the same "
                             f"name (next ground-truth frame is '{target_file}')")
    return FrameSequence(name, tuple(str(p) for p in inputs), tuple(str(p) for p in targets))


def window_indices(centre: int, num_frames: int, sequence_length: int) -> List[int]:
    """Frame indices centre-N//2 .. centre+N//2, clamped to [0, num_frames-1] (ends are replicated)."""
    half = sequence_length // 2
    return [min(max(i, 0), num_frames - 1) for i in range(centre - half, centre + half + 1)]


def subset_indices(num_total: int, num_examples: int) -> List[int]:
    """All indices for num_examples < 0, else a fixed random subset of num_examples (sorted)."""
    check_num_examples(num_examples)
    indices = list(range(num_total))
    if num_examples <= 0 or num_examples >= num_total:
        return indices
    random.Random(0).shuffle(indices)
    return sorted(indices[:num_examples])


def _is_within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies below it (both already resolved)."""
    return path == folder or folder in path.parents


def _size_text(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _checked_entry(array: np.ndarray) -> np.ndarray:
    """`array` if it is what FrameCache writes (uint8, H x W x 3), else ValueError."""
    if not isinstance(array, np.ndarray):  # np.load opened an .npz archive
        raise ValueError(f"it holds a {type(array).__name__}, not an array")
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"it holds a {array.dtype} array of shape {tuple(array.shape)}, not uint8 H x W x 3")
    return array


class FrameCache:
    """One uint8 HxWx3 .npy per frame under a user-chosen folder, memory-mapped when read.

    A frame's cache file is named by the SHA-1 of the image file's bytes: an edited or replaced image
    gets a new entry instead of a stale one, and the entries stay valid when the dataset is copied
    (even without its timestamps) or mounted elsewhere, e.g. to a node's local scratch. Each process
    hashes a file once and then recognises it by path, inode, size and modification time (a stat,
    as cheap as the old path-based key); hashing a 720p PNG took 0.6 ms against 16 ms to decode it. Files are
    written to a temporary name and renamed, so a reader (another DataLoader worker, another run)
    never sees a partial file. The folder must lie outside the dataset tree.
    """

    def __init__(self, directory: str, dataset_roots: Sequence[str]) -> None:
        self.directory = Path(os.path.expanduser(str(directory))).resolve()
        for root in dataset_roots:
            resolved = Path(root).resolve()
            if _is_within(self.directory, resolved):
                raise ValueError(f"cache_dir '{self.directory}' lies inside the dataset tree '{resolved}'; "
                                 f"choose a folder outside it (the dataset tree is never written to)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._digests: Dict[Tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime) -> content hash

    def entry(self, path: str) -> Path:
        """The cache file of image `path` in its current version (named by the hash of its bytes)."""
        absolute = os.path.abspath(path)
        stat = os.stat(absolute)
        version = (absolute, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        key = self._digests.get(version)
        if key is None:
            digest = hashlib.sha1()
            with open(absolute, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            key = self._digests[version] = digest.hexdigest()
        return self.directory / key[:2] / f"{key}.npy"

    def load(self, path: str) -> np.ndarray:
        """The frame as a read-only memory map of its cache file, decoding and caching it on a miss."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file '{path}' does not exist")
        entry = self.entry(path)
        if entry.is_file():
            try:
                return _checked_entry(np.load(entry, mmap_mode="r"))
            except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:  # truncated, overwritten, not .npy
                logging.warning("frame cache entry %s of %s is corrupt (%s): decoding the frame again to replace "
                                "it", entry, path, str(error).strip().splitlines()[0] if str(error).strip() else
                                type(error).__name__)
        frame = read_image(path)
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.stem}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, frame)
            os.replace(temporary, entry)
        except BaseException:
            os.unlink(temporary)
            raise
        return frame

    def size_bytes(self) -> int:
        """Disk space of all cache files (bytes)."""
        return sum(f.stat().st_size for f in self.directory.rglob("*.npy"))


class FrameStack:
    """The M frames of one example (decoded or memory-mapped arrays); crops copy only their pixels."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.arrays = list(arrays)
        self._full: Optional[np.ndarray] = None

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        """(M, H, W, 3)."""
        return (len(self.arrays),) + tuple(self.arrays[0].shape)

    def full(self) -> np.ndarray:
        """All frames stacked (M, H, W, 3), copied at most once."""
        if self._full is None:
            self._full = np.stack(self.arrays)
        return self._full

    def crop(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """(M, height, width, 3) window at (y0, x0), reading only those rows and columns."""
        if self._full is not None:
            return self._full[:, y0:y0 + height, x0:x0 + width]
        return np.stack([a[y0:y0 + height, x0:x0 + width] for a in self.arrays])


Frames = Union[np.ndarray, FrameStack]


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Per-example augmentation settings (spec §5.4); `__post_init__` validates the flag values."""

    random_crop: Optional[Tuple[int, int]]
    random_scales: str = "none"
    random_scales_min: float = 0.25
    random_flips: bool = False
    random_rotate: bool = False
    random_multiplicative_colors: bool = False
    random_brightness: bool = False
    random_contrast: bool = False
    random_saturation: bool = False
    random_hue: bool = False
    random_channel_permutation: bool = False
    random_noise: bool = False

    def __post_init__(self) -> None:
        if self.random_scales not in RANDOM_SCALES_MODES:
            raise ValueError(f"random_scales must be one of none, weak, strong (or None), got {self.random_scales!r}")
        if not 0.0 < self.random_scales_min <= 1.0:
            raise ValueError(f"random_scales_min must be in (0, 1], got {self.random_scales_min}")
        if self.random_scales != "none" and self.random_crop is None:
            raise ValueError(f"random_scales={self.random_scales!r} rescales before cropping and needs a "
                             f"random_crop (height, width); without one the frame size would vary")

    @property
    def photometric(self) -> bool:
        """Whether any of brightness/contrast/saturation/hue jitter is on."""
        return self.random_brightness or self.random_contrast or self.random_saturation or self.random_hue


def parse_random_crop(random_crop: Optional[Sequence[int]], flag: str = "random_crop") -> Optional[Tuple[int, int]]:
    """(height, width) of the random crop, or None for no crop (negative values: the (-1, -1) default)."""
    if random_crop is None:
        return None
    values = [int(v) for v in random_crop]
    if values and all(v < 0 for v in values):
        return None
    if len(values) != 2 or min(values) <= 0:
        raise ValueError(f"{flag} must be two positive integers [height, width] or [-1, -1] for no "
                         f"crop, got {list(random_crop)}")
    return values[0], values[1]


def parse_random_scales(random_scales: Optional[str]) -> str:
    """The scale mode, with None meaning 'none'."""
    return "none" if random_scales is None else str(random_scales).strip().lower()


def _crop_offset(extent: int, crop: int) -> int:
    """The original's `np.random.randint(0, extent - crop)`: the last offset `extent - crop` never comes.

    A crop that fills the extent made the original crash (randint(0, 0)); here its offset is 0, without a
    draw, as for `extent - crop == 1`, where numpy's randint(0, 1) draws nothing either.
    """
    return int(np.random.randint(0, extent - crop)) if extent > crop else 0


def _resize_and_crop(frames: FrameStack, options: Augmentation, files: Sequence[str]) -> np.ndarray:
    """One random (rescale and) crop, identical for all frames, drawn as the original (spec §22.3).

    Without a rescale only the crop window is read, which for memory-mapped frames means only
    those pixels leave the page cache.
    """
    crop_h, crop_w = options.random_crop
    height, width = frames.shape[1:3]
    if crop_h > height or crop_w > width:
        raise ValueError(f"random_crop {crop_h}x{crop_w} (height x width) is larger than the frame "
                         f"{height}x{width} of '{files[0]}'")
    if options.random_scales == "none":
        y0 = _crop_offset(height, crop_h)
        x0 = _crop_offset(width, crop_w)
        return frames.crop(y0, x0, crop_h, crop_w)
    if options.random_scales == "weak":
        scale = random.choice(WEAK_SCALES)
    else:
        scale = random.uniform(options.random_scales_min, 1.0)
    # A scale that would make the frame smaller than the crop is raised to the smallest covering one
    # (the original crashed there, e.g. 1/4 of 720p is narrower than a 192 crop).
    scale = max(scale, crop_h / height, crop_w / width)
    new_h, new_w = max(round(height * scale), crop_h), max(round(width * scale), crop_w)
    if (new_h, new_w) == (height, width):  # PIL's resize to the same size is a copy
        resized = frames.full()
    else:
        resized = np.stack([np.asarray(Image.fromarray(f).resize((new_w, new_h), Image.BICUBIC))
                            for f in frames.full()])
    y0 = _crop_offset(new_h, crop_h)
    x0 = _crop_offset(new_w, crop_w)
    return resized[:, y0:y0 + crop_h, x0:x0 + crop_w]


def _multiplicative_colors(frames: np.ndarray) -> np.ndarray:
    """Each channel times one factor in [0.5, 2], in float32 like the original, clipped and truncated to uint8."""
    factors = np.random.uniform(*MULTIPLICATIVE_COLOR_RANGE, size=(1, 1, 3)).astype(np.float32)
    scaled = np.clip(frames.astype(np.float32) / np.float32(255.0) * factors, 0.0, 1.0)
    return (scaled * np.float32(255.0)).astype(np.uint8)


def _rotate(frames: np.ndarray, quarter_turns: int) -> np.ndarray:
    """PIL's rotate(90 k, NEAREST, expand=False) of every frame: counter-clockwise about the centre.

    Square frames and half turns are exact transposes; a quarter turn of a non-square frame keeps its size,
    so PIL cuts the corners off and fills black, which only PIL itself reproduces bit for bit.
    """
    if quarter_turns % 2 == 0 or frames.shape[1] == frames.shape[2]:
        return np.rot90(frames, quarter_turns, axes=(1, 2))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).rotate(90 * quarter_turns, Image.NEAREST))
                     for f in frames])


def _geometric(frames: np.ndarray, options: Augmentation) -> np.ndarray:
    """Flips (horizontal, then vertical) and rotations by multiples of 90 degrees, identical for all frames."""
    if options.random_flips:
        if random.random() < 0.5:
            frames = frames[:, :, ::-1]
        if random.random() < 0.5:
            frames = frames[:, ::-1]
    if options.random_rotate:
        quarter_turns = random.choice((0, 1, 2, 3))
        # The original's rotation k is itself a random rotation over [90 k, 90 k]: one more draw, no effect.
        random.random()
        frames = _rotate(frames, quarter_turns)
    return frames


def _through_pil(images: torch.Tensor, adjust: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    """`adjust` applied to the frames as the original did: x 255 truncated to uint8 (ToPILImage), PIL, / 255."""
    num, channels, height, width = images.shape
    tall = images.permute(1, 0, 2, 3).reshape(channels, num * height, width)  # the frames one below the other
    array = tall.mul(255).byte().permute(1, 2, 0).numpy()
    adjusted = np.array(adjust(Image.fromarray(np.ascontiguousarray(array))))
    tall = images_to_float(torch.from_numpy(adjusted).permute(2, 0, 1))
    return tall.reshape(channels, num, height, width).permute(1, 0, 2, 3).contiguous()


def _photometric(images: torch.Tensor, options: Augmentation) -> torch.Tensor:
    """Brightness/contrast/saturation/hue with one draw for all frames, the enabled ops in random order."""
    # torchvision is imported where it is used: importing it loads torch._dynamo (~1.4 s), which `--help`, dry runs
    # and runs without these augmentations never need.
    import torchvision.transforms.functional as TF  # noqa: N812

    ops = []
    if options.random_brightness:
        factor = random.uniform(*PHOTOMETRIC_FACTOR_RANGE)
        ops.append(lambda x, f=factor: (x * f).clamp_(0.0, 1.0))
    if options.random_contrast:
        factor = random.uniform(*PHOTOMETRIC_FACTOR_RANGE)
        ops.append(lambda x, f=factor: (f * (x - 0.5) + 0.5).clamp_(0.0, 1.0))  # fixed pivot 0.5 as the original
    # Saturation and hue go through 8-bit PIL images like the original's (torchvision's tensor versions differ).
    if options.random_saturation:
        factor = random.uniform(*PHOTOMETRIC_FACTOR_RANGE)
        ops.append(lambda x, f=factor: _through_pil(x, lambda image: TF.adjust_saturation(image, f)))
    if options.random_hue:
        factor = random.uniform(*HUE_RANGE)
        ops.append(lambda x, f=factor: _through_pil(x, lambda image: TF.adjust_hue(image, f)))
    random.shuffle(ops)
    for op in ops:
        images = op(images)
    return images


def _noisy(images: torch.Tensor, num_inputs: int) -> torch.Tensor:
    """Gaussian noise of one random sigma on the inputs (not the ground truth), clamped to [0, 1].

    The noise is torch's normal_ over the inputs one below the other, (3, N h, w), as in the original: the
    values depend on that shape, not only on the number of pixels.
    """
    sigma = float(np.random.uniform(0.0, MAX_NOISE_SIGMA))
    inputs = images[:num_inputs]
    num, channels, height, width = inputs.shape
    tall = inputs.permute(1, 0, 2, 3).reshape(channels, num * height, width)
    noise = torch.empty((channels, num * height, width), dtype=torch.float32).normal_(0.0, sigma)
    tall = (tall + noise).clamp_(0.0, 1.0)
    noisy = tall.reshape(channels, num, height, width).permute(1, 0, 2, 3)
    return torch.cat([noisy, images[num_inputs:]])


def augment_sample(frames: Frames, num_inputs: int, options: Augmentation,
                   files: Sequence[str], uint8_images: bool = False) -> torch.Tensor:
    """One augmented sample of an example's frames (M,H,W,3 uint8; inputs first) as float (M,3,h,w) in [0,1].

    The draws are the original's, in its order (spec §22.2): crop (python scale, numpy rows then columns),
    numpy colour factors, python flips and rotation, python photometric factors and order, numpy channel
    permutation, numpy noise sigma and torch noise. With `uint8_images` and no augmentation that needs floats
    (photometric jitter, noise), the sample stays uint8 in [0, 255]; `datasets.sampling.images_to_float` later
    gives the same floats.
    """
    if not isinstance(frames, FrameStack):
        frames = FrameStack(list(frames))
    if options.random_crop is not None:
        frames = _resize_and_crop(frames, options, files)
    else:
        frames = frames.full()
    if options.random_multiplicative_colors:
        frames = _multiplicative_colors(frames)
    frames = _geometric(frames, options)
    # Reorder to CHW while still uint8 (a quarter of the bytes), then convert once.
    images = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    if not (uint8_images and not (options.photometric or options.random_noise)):
        images = images_to_float(images)
    if options.photometric:
        images = _photometric(images, options)
    if options.random_channel_permutation:
        # Output channel c is input channel permutation[c], one permutation for all frames.
        images = images[:, torch.from_numpy(np.random.permutation(3))]
    if options.random_noise:
        images = _noisy(images, num_inputs)
    return images.contiguous()


class GoProSequenceDataset(KeyedDataset):
    """Examples = centre frames of sequences; an example holds S augmented samples of an N-frame window."""

    def __init__(self, *, sequences: Sequence[FrameSequence], centres: Optional[Dict[str, Sequence[int]]],
                 sequence_length: int, num_samples_per_example: int, num_examples: int, random_reverse: bool,
                 augmentation: Augmentation, description: str,
                 cache_dir: Optional[str] = None, dataset_root: Optional[str] = None) -> None:
        if sequence_length < 1 or sequence_length % 2 == 0:
            raise ValueError(f"{description}: sequence_length must be a positive odd number, got {sequence_length}")
        if num_samples_per_example < 1:
            raise ValueError(f"{description}: num_samples_per_example must be >= 1, got {num_samples_per_example}")
        self.sequences = list(sequences)
        self.sequence_length = sequence_length
        self.num_samples_per_example = num_samples_per_example
        self.random_reverse = bool(random_reverse)
        self.augmentation = augmentation
        self.with_gt = all(s.targets is not None for s in self.sequences)
        # The cache must stay out of the dataset root and out of every folder holding frames.
        frame_folders = {os.path.dirname(f) for s in self.sequences for f in s.inputs + (s.targets or ())}
        roots = sorted(frame_folders | ({str(dataset_root)} if dataset_root is not None else set()))
        self.cache = FrameCache(cache_dir, roots) if cache_dir else None
        examples = []
        for seq_index, sequence in enumerate(self.sequences):
            frames = range(len(sequence)) if centres is None else centres[sequence.name]
            examples.extend((seq_index, frame) for frame in frames)
        if not examples:
            raise ValueError(f"{description}: no examples")
        self._examples = [examples[i] for i in subset_indices(len(examples), num_examples)]
        logging.getLogger(__name__).info("%s: %d sequences, %d examples", description, len(self.sequences),
                                         len(self._examples))
        if self.cache is not None:
            frames, size = self._cached_frames_and_bytes()
            logging.getLogger(__name__).info(
                "%s: frame cache %s: %d frames, %s when full (the folder holds %s now); the first epoch fills it",
                description, self.cache.directory, frames, _size_text(size), _size_text(self.cache.size_bytes()))

    def _cached_frames_and_bytes(self) -> Tuple[int, int]:
        """The distinct frames the examples read and the bytes of their cache entries (uint8 HxWx3 + header),
        with every frame of a sequence the size of its first."""
        used = set()
        for index in range(len(self._examples)):
            inputs, target, _ = self.example_files(index)
            used.update(inputs + ([target] if target is not None else []))
        frames = size = 0
        for sequence in self.sequences:
            count = sum(1 for path in sequence.inputs + (sequence.targets or ()) if path in used)
            if count:
                width, height = image_size(sequence.inputs[0])
                frames += count
                size += count * (width * height * 3 + NPY_HEADER_BYTES)
        return frames, size

    def __len__(self) -> int:
        return len(self._examples)

    def frame_identity(self, index: int) -> Tuple[str, int]:
        """(sequence name, index of the reference frame within the sequence) of example `index`."""
        seq_index, centre = self._examples[index % len(self._examples)]
        return self.sequences[seq_index].name, centre

    def example_files(self, index: int) -> Tuple[List[str], Optional[str], str]:
        """Input files of example `index`'s window (clamped, before reversal), its ground truth and basename."""
        seq_index, centre = self._examples[index % len(self._examples)]
        sequence = self.sequences[seq_index]
        inputs = [sequence.inputs[i] for i in window_indices(centre, len(sequence), self.sequence_length)]
        target = sequence.targets[centre] if sequence.targets is not None else None
        basename = f"{sequence.name}/{Path(sequence.inputs[centre]).stem}"
        return inputs, target, basename

    def _read_frames(self, files: Sequence[str]) -> FrameStack:
        """Each distinct file decoded (or memory-mapped from the cache) once; different sizes are an error."""
        loaded: Dict[str, np.ndarray] = {}
        for path in files:
            if path not in loaded:
                loaded[path] = self.cache.load(path) if self.cache is not None else read_image(path)
        first = files[0]
        for path in files[1:]:
            if loaded[path].shape != loaded[first].shape:
                h0, w0 = loaded[first].shape[:2]
                h1, w1 = loaded[path].shape[:2]
                raise ValueError(f"frames of one example differ in size: '{first}' is {w0}x{h0} but "
                                 f"'{path}' is {w1}x{h1} (width x height)")
        return FrameStack([loaded[path] for path in files])

    def example(self, index: int, uint8_images: bool = False) -> Dict[str, object]:
        """S augmented samples of example `index`: input1..N, target1 (if known), index, basename."""
        index = index % len(self._examples)
        inputs, target, basename = self.example_files(index)
        # Only the inputs are reversed; the ground truth stays the (unchanged) centre frame's.
        if self.random_reverse and np.random.rand() < 0.5:
            inputs = inputs[::-1]
        files = inputs + ([target] if target is not None else [])
        frames = self._read_frames(files)
        samples = [augment_sample(frames, len(inputs), self.augmentation, files, uint8_images)
                   for _ in range(self.num_samples_per_example)]
        num = self.num_samples_per_example
        example: Dict[str, object] = {f"input{i + 1}": torch.stack([s[i] for s in samples])
                                      for i in range(len(inputs))}
        if target is not None:
            example["target1"] = torch.stack([s[len(inputs)] for s in samples])
        example["index"] = torch.full((num,), float(index))
        example["reference_index"] = torch.full((num,), float(self.sequence_length // 2))
        example["basename"] = [basename] * num
        return example

