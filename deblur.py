"""Deblur your own footage with a trained checkpoint of DBN, FlowDBN or any registered deblurring model.

    python deblur.py --checkpoint run/checkpoint_best_psnr.ckpt --input clip.mp4 --output clip_deblurred
    python deblur.py --checkpoint run --input frames/ --output frames_deblurred   # the run's best checkpoint

Input is a folder of frames (png/jpg/bmp/tif, in natural name order) or a video file. Every frame is
deblurred at full resolution from the window of N frames around it (the first and last frames are
repeated at the ends, as in the GoPro datasets); frames are padded (replicating the border) to a
multiple of 8, what DBN's three down-samplings need (the flow networks resize between their levels;
another model's class may set its own `pad_multiple`), and cropped back: 1280x720 frames are deblurred
exactly as main.py's evaluation does. Only the N frames of the current window are held in memory, so
memory does not grow with the length of the video.
Output: `<output>/<input frame name>.png` for a folder; for a video `<output>/<000000>.png ...` and
`<output>/<video name>_deblurred.mp4` at the input's frame rate. Nothing is lost or mixed: the output folder is
never the input folder, inside it or around the input, and one that already holds frames (or a deblurred
video) is refused unless --overwrite, which removes only those PNG frames and videos, once nothing else stops
the run. A run folder as --checkpoint gives its best checkpoint when it has one, else its latest
(--checkpoint_mode chooses); the log names the file and epoch loaded.

Reading, deblurring and writing overlap: a reader thread decodes the next frames and a writer thread
compresses and stores the finished ones while the model works on the current window, each through a
queue of QUEUE_FRAMES frames (memory stays flat). Frames are written in order and the files are the same
as with --no_overlap (everything in one thread, one step after another). An error in either thread stops
the run with the same one-line message. On CUDA, cudnn.benchmark is on (the frame size is fixed for a clip).

The model comes from the checkpoint: its stored arguments (checkpoints of this project: the --model
class, built from the registry with the run's --model_* values and sequence length, as main.py built
it; any model that maps input1..inputN to output1 works) or, for checkpoints of the original
framework, the state-dict keys (FlowDBN or DBN, the sequence length from
the first layer's input channels, PWC-Net or FlowNet1S as the flow network). The frozen flow network's
weights are part of every FlowDBN checkpoint, so the prewarping checkpoint file is not needed.

Large frames: from 1280x720 on, the log says how much memory an untiled frame needs (what the process
holds, and the model's tensors counted at 64x64 and 128x128, scaled by pixels and by 1.5 for scratch memory)
and, when that exceeds the free memory, which --tile fits; an out-of-memory error is one line with the same
hint. --tile=S (or WxH) runs the model on tiles of the padded window, each grown by --tile_overlap pixels
(default 88) on every side and cropped back: DBN's outputs depend on inputs up to 81 pixels away, so its
tiled frames equal the untiled ones up to float rounding; FlowDBN's flow network sees only the tile, so its
flows, and the frames, change a little.
"""
import argparse
import collections
import contextlib
import dataclasses
import glob
import json
import logging
import os
import queue
import re
import resource
import sys
import threading
import weakref
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import tqdm
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import commandline
import constants
from contrib import weight_init
from contrib.fusion import fold_batchnorm
from contrib.precision import AMP_DTYPES, FLOAT32, Precision, native_bf16
from models import MODELS
from utils import allocator, checkpoints, logger
from utils.images import image_size, read_image, to_uint8, write_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
DEFAULT_PAD_MULTIPLE = 8  # for a model class without a `pad_multiple` attribute
QUEUE_FRAMES = 2  # frames each of the reader's and writer's queues holds: hides jitter, keeps memory flat
PIL_PNG_COMPRESSION = 6  # zlib's default level, what PIL's PNG writer uses when given none
TILE_OVERLAP = 88  # DBN's outputs depend on inputs up to 81 pixels away; the next multiple of 8
# What the fast path cost the demo's trained DBN against float32 (bench/README.md, bf16 quality).
FAST_PATH_COST = "trained DBN frames within 1/255 of float32, PSNR within 0.001 dB"
MEMORY_PROBE_SIDES = (64, 128)  # square window sizes at which the memory a frame needs is measured
# Resident memory grew 1.5x the counted tensors for DBN at 1280x720 on the CPU (backends' scratch memory, reorder
# buffers, the allocator's slack; bench/README.md, "deblur.py --tile"); not measured on a GPU.
MEMORY_OVERHEAD = 1.5
LARGE_FRAME_PIXELS = 1280 * 720  # from this size on, the log says how much memory an untiled frame needs
VIDEO_SUFFIX = "deblurred.mp4"  # the video deblur.py writes: <video name>_deblurred.mp4, or deblurred.mp4


def natural_key(name: str) -> List[Any]:
    """Sort key that orders 'frame2' before 'frame10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(folder: str) -> List[str]:
    """Image files of a folder in natural name order."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(constants.IMAGE_EXTENSIONS)]
    if not names:
        raise FileNotFoundError(f"--input: no frames ({', '.join(constants.IMAGE_EXTENSIONS)}) in folder {folder}")
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def read_folder(files: List[str]) -> Iterator[Tuple[str, np.ndarray]]:
    """(name, HxWx3 uint8 frame) for every file; all frames must have the size of the first."""
    size = None
    for filename in files:
        frame = read_image(filename)
        if size is None:
            size = frame.shape
        elif frame.shape != size:
            raise ValueError(f"--input: {filename} is {frame.shape[1]}x{frame.shape[0]}, but the first frame is "
                             f"{size[1]}x{size[0]}; all frames must have the same size")
        yield os.path.splitext(os.path.basename(filename))[0], frame


def read_video(reader: Any, path: str) -> Iterator[Tuple[str, np.ndarray]]:
    """('000000', frame), ('000001', frame), ... streamed from an imageio ffmpeg reader."""
    try:
        for index, frame in enumerate(reader):
            yield f"{index:06d}", np.asarray(frame)[..., :3]
    except (OSError, RuntimeError, ValueError) as error:  # ffmpeg's report of a broken stream
        raise ValueError(f"--input: cannot decode video {path}: {_first_line(error)}") from None


def open_video(path: str) -> Any:
    """An imageio ffmpeg reader; a file ffmpeg cannot open is one line naming it, not ffmpeg's whole report."""
    import imageio

    try:
        return imageio.v2.get_reader(path, format="FFMPEG")
    except (OSError, RuntimeError, ValueError) as error:
        raise ValueError(f"--input: cannot open video {path}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def parse_device(text: str) -> torch.device:
    """--device as a torch.device that exists on this machine."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"--device={text}: expected cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device={text}: no CUDA GPU is available on this machine; use --device=cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device={text}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device={text}: expected cpu, cuda or cuda:<index>")
    return device


def sliding_windows(frames: Iterator[Tuple[str, Any]], length: int) -> Iterator[Tuple[str, List[Any]]]:
    """(centre name, [N items]) for every frame; indices outside the sequence are clamped to its ends.

    Only the last N items are kept: the first frame is repeated N//2 times before the sequence and
    the last one N//2 times after it, so frame i sees frames clamp(i-N//2) ... clamp(i+N//2).
    """
    half = length // 2
    window: Deque[Any] = collections.deque(maxlen=length)
    names: Deque[str] = collections.deque()
    last = None
    for name, item in frames:
        if last is None:
            window.extend([item] * half)
        window.append(item)
        names.append(name)
        last = item
        if len(window) == length:
            yield names.popleft(), list(window)
    if last is None:
        return
    for _ in range(half):
        window.append(last)
        if len(window) == length:
            yield names.popleft(), list(window)


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad a (1, C, H, W) image at the bottom and right, replicating the border, to multiples of `multiple`."""
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")


# ---------------------------------------------------------------- tiles
def parse_tile(text: str) -> Tuple[int, int]:
    """--tile as (height, width): 'S' for SxS tiles or 'WxH' (width first, like frame sizes)."""
    parts = text.lower().split("x")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected a tile size in pixels, S or WxH (e.g. 512 or 640x360), "
                                         f"got '{text}'")
    width, height = sizes[0], sizes[-1]
    return height, width


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= value."""
    return -(-value // multiple) * multiple


def tile_grid(height: int, width: int, tile: Tuple[int, int], overlap: int) -> List[Tuple[slice, slice, slice, slice]]:
    """(input rows, input columns, kept rows, kept columns), in frame coordinates, of every tile of a (padded)
    height x width frame.

    The frame is cut into kept regions of `tile` (height, width) pixels, the last ones in each direction
    smaller; a tile's input is its kept region grown by `overlap` pixels on every side, clipped to the frame.
    With sizes and overlap multiples of the model's pad multiple, every tile starts on the whole frame's
    down-sampling grid and, at the frame's border, sees the same border as the whole frame.
    """
    grid = []
    for top in range(0, height, tile[0]):
        for left in range(0, width, tile[1]):
            bottom, right = min(top + tile[0], height), min(left + tile[1], width)
            grid.append((slice(max(top - overlap, 0), min(bottom + overlap, height)),
                         slice(max(left - overlap, 0), min(right + overlap, width)),
                         slice(top, bottom), slice(left, right)))
    return grid


# ---------------------------------------------------------------- the model from a checkpoint
def _first_validation_key(folder: str, best_files: List[str]) -> Optional[str]:
    """The run's first --validation_keys entry: from its args.json, else from the arguments a checkpoint stores."""
    try:
        with open(os.path.join(folder, "args.json"), encoding="utf-8") as handle:
            keys = json.load(handle).get("validation_keys")
    except (OSError, ValueError, AttributeError):
        try:  # mmap: only the small "args" entry is read, not the weights
            keys = checkpoints.stored_arguments(torch.load(best_files[0], map_location="cpu", weights_only=True,
                                               mmap=True)).get("validation_keys")
        except Exception:  # noqa: BLE001 -- an unreadable file is reported when it is loaded
            keys = None
    return keys[0] if isinstance(keys, list) and keys and isinstance(keys[0], str) else None


def resolve_checkpoint(path: str, mode: Optional[str]) -> str:
    """The checkpoint file for --checkpoint: the file itself, or a run folder's best or latest checkpoint.

    Without --checkpoint_mode a run folder gives its best checkpoint when it has one (the model to deblur
    footage with), else its latest. Of several best checkpoints the one of the run's first validation key wins.
    """
    if os.path.isfile(path) or not os.path.isdir(path):
        return checkpoints.find_checkpoint(path)  # the file, or one line for a path that does not exist
    best_files = sorted(glob.glob(os.path.join(glob.escape(path), checkpoints.best_filename("*"))))
    if (mode or ("best" if best_files else "latest")) == "latest":
        return checkpoints.find_checkpoint(path, "latest")
    if len(best_files) == 1:
        return best_files[0]
    if not best_files:
        raise checkpoints.CheckpointError(f"--checkpoint_mode=best: {path} holds no checkpoint_best_<key>.ckpt; "
                                          f"give --checkpoint_mode=latest")
    key = _first_validation_key(path, best_files)
    if key is not None and os.path.join(path, checkpoints.best_filename(key)) in best_files:
        return os.path.join(path, checkpoints.best_filename(key))
    names = ", ".join(os.path.basename(name) for name in best_files)
    raise checkpoints.CheckpointError(f"--checkpoint_mode=best: {path} holds several best checkpoints ({names}) and "
                                      f"no validation key of the run picks one; give one of them as --checkpoint")


@contextlib.contextmanager
def initialisation_quiet() -> Iterator[None]:
    """Silence the 'Initializing FAN_MAX' line while a model is built: the checkpoint replaces those weights."""
    init_logger = logging.getLogger(weight_init.__name__)
    level = init_logger.level
    init_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        init_logger.setLevel(level)


def load_model(options: argparse.Namespace) -> Tuple[torch.nn.Module, str, int]:
    """Build the model the checkpoint (or the flags) describe and load its weights strictly."""
    filename = resolve_checkpoint(options.checkpoint, getattr(options, "checkpoint_mode", None))
    checkpoint = checkpoints.load_file(filename)
    epoch = checkpoint.get("epoch")
    logging.info("Loaded %s (epoch %s)", filename, epoch if isinstance(epoch, int) else "not recorded")
    # deblur.py's --pretrained_pwcnet/--pretrained_flownet replace a FlowDBN checkpoint's own flow network.
    return commandline.build_model_from_checkpoint(checkpoint, options.checkpoint, options.model,
                                                   options.sequence_length, vars(options))


# ---------------------------------------------------------------- the output folder
def _inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies below it (both resolved: links, '..')."""
    return os.path.commonpath([path, folder]) == folder


def earlier_output(folder: str) -> List[str]:
    """Names of the frames (image files) and deblur.py videos that `folder` already holds, in name order."""
    if not os.path.isdir(folder):
        return []
    return sorted((name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name))
                   and name.lower().endswith(constants.IMAGE_EXTENSIONS + (VIDEO_SUFFIX,))), key=natural_key)


def check_output(input_path: str, output: str, overwrite: bool) -> List[str]:
    """Refuse an --output that would overwrite the input or mix with earlier frames; returns the files that
    --overwrite removes before writing (deblur.py's own PNG frames and videos there)."""
    source, target = os.path.realpath(input_path), os.path.realpath(output)
    if os.path.exists(target) and not os.path.isdir(target):
        raise ValueError(f"--output={output} is a file; give a folder for the deblurred frames")
    # Never with --overwrite either: the blurred originals would be overwritten or removed.
    if os.path.isdir(source) and _inside(target, source):
        where = "is the --input folder" if target == source else f"is inside the --input folder {input_path}"
        raise ValueError(f"--output={output} {where}: the deblurred frames would mix with or overwrite the "
                         f"blurred ones; choose an --output outside it")
    if _inside(source, target):
        raise ValueError(f"--output={output} holds the --input {input_path}: choose an --output that does not "
                         f"contain the input")
    found = earlier_output(target)
    if not found:
        return []
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    if not overwrite:
        raise ValueError(f"--output={output} already holds {len(found)} frame or video file(s) ({shown}): choose "
                         f"another --output, or give --overwrite to remove deblur.py's frames and video there first")
    foreign = [name for name in found if not name.lower().endswith((".png", VIDEO_SUFFIX))]
    if foreign:
        raise ValueError(f"--output={output} holds frames deblur.py does not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}), which --overwrite leaves alone; choose another "
                         f"--output")
    return [os.path.join(target, name) for name in found]


def check_pad_multiple(value: Optional[int], name: str, model: torch.nn.Module) -> int:
    """--pad_multiple, or the model's own multiple; a given value must be a multiple of what the model needs."""
    needed = getattr(model, "pad_multiple", None)
    if value is None:
        return needed or DEFAULT_PAD_MULTIPLE
    if value < 1:
        raise ValueError(f"--pad_multiple={value}: expected a positive number of pixels")
    if needed and value % needed != 0:
        raise ValueError(f"--pad_multiple={value}: {name} needs frames padded to a multiple of {needed}; give a "
                         f"multiple of {needed} or leave the flag out")
    return value


# ---------------------------------------------------------------- deblurring
class FrameWriter:
    """Writes deblurred frames as PNG files and, optionally, into a video."""

    def __init__(self, output: str, write_frames: bool, video: Optional[str], fps: float,
                 png_compression: int = PIL_PNG_COMPRESSION) -> None:
        os.makedirs(output, exist_ok=True)
        self.output = output
        self.write_frames = write_frames
        self.video_path = video
        self.fps = fps
        self.png_compression = png_compression
        self._video: Any = None

    def write(self, name: str, frame: np.ndarray) -> None:
        """Store one HxWx3 uint8 frame."""
        if self.write_frames:
            write_image(frame, os.path.join(self.output, f"{name}.png"), compress_level=self.png_compression)
        if self.video_path is not None:
            if self._video is None:
                import imageio

                height, width = frame.shape[:2]
                # yuv420p (what every player plays) needs even sizes; odd ones keep full chroma instead.
                pixel_format = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
                self._video = imageio.v2.get_writer(self.video_path, format="FFMPEG", fps=self.fps,
                                                    codec="libx264", quality=9, macro_block_size=1,
                                                    pixelformat=pixel_format)
            self._video.append_data(frame)

    def close(self) -> None:
        """Finish the video file."""
        if self._video is not None:
            self._video.close()
            self._video = None


def progress_bar(total: Optional[int]) -> tqdm.tqdm:
    """tqdm's bar on stderr when it is a terminal; anywhere else (a log file, a pipe) no '\\r' redraws but the
    project's plain progress lines (utils/logger.py ProgressBar): one every constants.PROGRESS_PLAIN_INTERVAL_SECS
    and a final one."""
    return logger.ProgressBar(total=total, desc="Deblur", unit="frame", file=sys.stderr, bar_format=None, ncols=None,
                              dynamic_ncols=True, smoothing=0.3)  # tqdm's own look and smoothing, as before


class _ProgressFilter(logging.Filter):
    """Drops ProgressBar's plain lines where the bar itself draws (a terminal): they would repeat it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "progress", None) is None or not logger.is_terminal(sys.stderr)


def configure_console() -> None:
    """Messages on stderr, as logging.basicConfig writes them, with ProgressBar's lines where no bar draws;
    nothing changes when the caller has set up logging already (a script that calls main())."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_ProgressFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _output1(model: torch.nn.Module, images: List[torch.Tensor], pyramids: List[Any]) -> torch.Tensor:
    """The model's 'output1' for one window of (padded) images, with their feature pyramids when it has them."""
    example = {f"input{i + 1}": image for i, image in enumerate(images)}
    if pyramids[0] is None:
        model_dict = model(example)
    else:
        model_dict = model(example, pyramids=pyramids)
    if "output1" not in model_dict:
        raise ValueError(f"--checkpoint: {type(model).__name__} is not a deblurring model: its outputs "
                         f"({', '.join(sorted(model_dict))}) have no 'output1'")
    return model_dict["output1"]


def _tiled_output1(model: torch.nn.Module, images: List[torch.Tensor], pyramids: List[Any],
                   grid: List[Tuple[slice, slice, slice, slice]]) -> torch.Tensor:
    """'output1' of the whole padded frame, put together from the kept region of every tile's output."""
    output = None
    for index, (rows, columns, kept_rows, kept_columns) in enumerate(grid):
        tile = _output1(model, [image[..., rows, columns] for image in images],
                        [None if pyramid is None else pyramid[index] for pyramid in pyramids])
        if output is None:
            output = tile.new_empty(tile.shape[:2] + images[0].shape[-2:])
        top, left = kept_rows.start - rows.start, kept_columns.start - columns.start  # in the tile's output
        output[..., kept_rows, kept_columns] = tile[..., top:top + kept_rows.stop - kept_rows.start,
                                                    left:left + kept_columns.stop - kept_columns.start]
    assert output is not None  # a frame has at least one tile
    return output


def deblur_stream(model: torch.nn.Module, frames: Iterator[Tuple[str, np.ndarray]], length: int, multiple: int,
                  device: torch.device, writer: FrameWriter, total: Optional[int] = None,
                  reuse_pyramids: bool = True, tiling: Optional[Tuple[Tuple[int, int], int]] = None,
                  precision: Precision = FLOAT32) -> int:
    """Deblur every frame of the stream and hand it to the writer; returns the number of frames.

    Each frame is decoded and padded once. For FlowDBN with PWC-Net (and `reuse_pyramids`), each
    frame's feature pyramid is also computed once, when the frame enters the window, and shared by
    all N windows it belongs to; the outputs are the same as recomputing every window from scratch.
    With `tiling` ((tile height, tile width), overlap), multiples of `multiple`, the model runs on each
    tile of the padded window (see tile_grid) and the frame is put together from the tiles' kept regions;
    the pyramids are then those of the frame's tiles. `precision` says in which format the model computes
    (a model in channels-last gets channels-last inputs); the frames written are float32 rounded to 8 bit.
    """
    frame_pyramid = getattr(model, "frame_pyramid", None) if reuse_pyramids else None

    def grid_of(image: torch.Tensor) -> List[Tuple[slice, slice, slice, slice]]:
        assert tiling is not None
        return tile_grid(image.shape[-2], image.shape[-1], *tiling)

    def padded(items: Iterator[Tuple[str, np.ndarray]]) -> Iterator[Tuple[str, Tuple[Any, ...]]]:
        for name, frame in items:
            image = torch.tensor(frame, dtype=torch.uint8).to(device).permute(2, 0, 1).unsqueeze(0)
            image = precision.input(pad_to_multiple(image.float() / 255.0, multiple))
            if frame_pyramid is None:
                pyramid = None
            elif tiling is None:
                pyramid = frame_pyramid(image)
            else:
                pyramid = [frame_pyramid(image[..., rows, columns]) for rows, columns, _, _ in grid_of(image)]
            yield name, (image, frame.shape[:2], pyramid)

    count = 0
    with torch.inference_mode(), precision.autocast(device), progress_bar(total) as bar:
        for name, window in sliding_windows(padded(frames), length):
            height, width = window[0][1]
            images = [image for image, _, _ in window]
            pyramids = [pyramid for _, _, pyramid in window]
            if tiling is None:
                output = _output1(model, images, pyramids)
            else:
                output = _tiled_output1(model, images, pyramids, grid_of(images[0]))
            writer.write(name, to_uint8(output[0, :, :height, :width]))
            count += 1
            bar.update()
    return count


_END = object()  # end of a queue's stream


class _Failure:
    """An exception raised in a worker thread, carried through its queue to the main thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ThreadedReader:
    """Iterates `items` in a thread, at most `depth` items ahead of the consumer; its errors are re-raised
    in the consumer's thread after the items read before them."""

    def __init__(self, items: Iterator[Any], depth: int = QUEUE_FRAMES) -> None:
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="deblur-reader", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        # Blocks while the queue is full, but gives up once close() asks: the consumer may be gone.
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 -- handed to the main thread, which reports it
            self._put(_Failure(error))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread (at most the item it is reading)."""
        self._stop.set()
        self._thread.join()


class ThreadedWriter:
    """Hands frames to `writer.write` in a thread, in order, with at most `depth` frames waiting; the
    thread's error is raised by the next write() or by close()."""

    def __init__(self, writer: Any, depth: int = QUEUE_FRAMES) -> None:
        self._writer = writer
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="deblur-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            try:
                self._writer.write(*item)
            except BaseException as error:  # noqa: BLE001 -- raised again in the main thread
                self._error = error
                return

    def _put(self, item: Any) -> None:
        # Blocks while the queue is full, but not on a thread that has stopped after an error.
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, name: str, frame: np.ndarray) -> None:
        """Queue one frame for writing (raises the writer thread's error, if it had one)."""
        self._raise_error()
        self._put((name, frame))
        self._raise_error()

    def close(self, raise_error: bool = True) -> None:
        """Write the queued frames, stop the thread and raise its error, if any."""
        self._put(_END)
        self._thread.join()
        if raise_error:
            self._raise_error()


def deblur_overlapped(model: torch.nn.Module, frames: Iterator[Tuple[str, np.ndarray]], length: int,
                      multiple: int, device: torch.device, writer: FrameWriter, total: Optional[int] = None,
                      depth: int = QUEUE_FRAMES, tiling: Optional[Tuple[Tuple[int, int], int]] = None,
                      precision: Precision = FLOAT32) -> int:
    """deblur_stream with the frames read in one thread and written in another while the model runs; the
    same frames reach `writer`, in the same order. Both threads are finished before this returns or raises."""
    reader = ThreadedReader(frames, depth)
    background = ThreadedWriter(writer, depth)
    try:
        count = deblur_stream(model, iter(reader), length, multiple, device, background, total,
                              tiling=tiling, precision=precision)
    except BaseException:
        reader.close()
        background.close(raise_error=False)  # the frames deblurred so far are written; this error is the one
        raise
    reader.close()
    background.close()
    return count


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024.0


class LiveTensorBytes(TorchDispatchMode):
    """Bytes of the tensor storages made while it is active and still alive, and their peak: what a model's
    activations take, on any device (not counted: the backends' own scratch memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set = set()

    def _freed(self, key: int, size: int) -> None:
        self._seen.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        for value in tree_flatten(result)[0]:
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self._seen:  # a view or an in-place result shares a counted storage
                    self._seen.add(key)
                    self.live += storage.nbytes()
                    weakref.finalize(storage, self._freed, key, storage.nbytes())
        self.peak = max(self.peak, self.live)
        return result


def held_memory(device: torch.device) -> int:
    """Bytes this process holds now on `device`: the tensors allocated on a GPU, or the resident memory."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return int(peak_memory_mib() * 2 ** 20)  # not Linux: the peak so far


class MemoryModel:
    """The memory one window of a given padded size adds to what the process holds: the peak of the model's
    tensors, counted at two small sizes and scaled linearly with the pixels (activations grow with them), times
    MEMORY_OVERHEAD for what the counting misses."""

    def __init__(self, model: torch.nn.Module, length: int, multiple: int, device: torch.device,
                 precision: Precision = FLOAT32) -> None:
        peaks = []
        sides = [round_up(side, multiple) for side in MEMORY_PROBE_SIDES]
        for side in sides:
            with torch.inference_mode(), precision.autocast(device), LiveTensorBytes() as counter:
                images = [precision.input(torch.zeros(1, 3, side, side, device=device)) for _ in range(length)]
                _output1(model, images, [None] * length)
                del images
            peaks.append(counter.peak * MEMORY_OVERHEAD)
        self.per_pixel = max(peaks[1] - peaks[0], 0) / float(sides[1] ** 2 - sides[0] ** 2)
        self.fixed = max(peaks[0] - self.per_pixel * sides[0] ** 2, 0.0)
        self.held = held_memory(device)  # the weights, torch's libraries, the probes' caches

    def extra(self, pixels: int) -> float:
        """Bytes one window of (padded) frames of `pixels` pixels adds."""
        return self.fixed + self.per_pixel * pixels

    def largest_tile(self, available: float, overlap: int, multiple: int) -> int:
        """The largest square tile (a multiple of `multiple`, at least one) whose window, overlap included, adds
        at most half the available memory (the rest for the queued frames and the estimate's error)."""
        budget = max(available / 2 - self.fixed, 0.0)
        side = (budget / max(self.per_pixel, 1e-9)) ** 0.5 - 2 * overlap
        return max(int(side) // multiple * multiple, multiple)


def available_memory(device: torch.device) -> Optional[int]:
    """Bytes free for this process on `device`: the GPU's free memory, or Linux's MemAvailable (and the
    cgroup's limit, under a scheduler that sets one); None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            free += [int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit, \
                open("/sys/fs/cgroup/memory.current", encoding="ascii") as current:
            maximum = limit.read().strip()
            if maximum != "max":
                free.append(int(maximum) - int(current.read().strip()))
    except (OSError, ValueError):
        pass
    return min(free) if free else None


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an error is an allocation failure (CUDA's OutOfMemoryError, the CPU allocator's RuntimeError)."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def gib(size: float) -> str:
    """Bytes as '1.2 GiB', or '345 MiB' below a GiB."""
    return f"{size / 2 ** 30:.1f} GiB" if size >= 2 ** 30 else f"{size / 2 ** 20:.0f} MiB"


def check_tile_flags(tile: Optional[Tuple[int, int]], overlap: Optional[int]) -> None:
    """--tile_overlap needs --tile and is a number of pixels >= 0."""
    if overlap is not None and tile is None:
        raise ValueError(f"--tile_overlap={overlap} needs --tile (the size of the tiles)")
    if overlap is not None and overlap < 0:
        raise ValueError(f"--tile_overlap={overlap}: expected a number of pixels >= 0")


def report_memory(memory: MemoryModel, padded_size: Tuple[int, int], tiling: Optional[Tuple[Tuple[int, int], int]],
                  device: torch.device, multiple: int) -> None:
    """Log how much memory an untiled frame (and a tile) needs; warn, with a --tile that fits, when an untiled
    frame needs more than the device has free."""
    height, width = padded_size
    needed = memory.extra(height * width)
    available = available_memory(device)
    free = f"{gib(available)} free" if available is not None else "free memory unknown"
    logging.info("An untiled %dx%d frame needs about %s on %s: %s held now (weights, libraries) and %s for the "
                 "model's tensors (counted at %s pixels, scaled by pixels, x%.1f for scratch memory); %s",
                 width, height, gib(memory.held + needed), device, gib(memory.held), gib(needed),
                 " and ".join(f"{side}x{side}" for side in MEMORY_PROBE_SIDES), MEMORY_OVERHEAD, free)
    if tiling is not None:
        (tile_height, tile_width), overlap = tiling
        grid = tile_grid(height, width, *tiling)
        biggest = max((rows.stop - rows.start) * (columns.stop - columns.start) for rows, columns, _, _ in grid)
        logging.info("--tile: %d tiles of %dx%d pixels per frame with %d pixels of overlap; a tile needs about %s "
                     "for the model's tensors", len(grid), tile_width, tile_height, overlap,
                     gib(memory.extra(biggest)))
    elif available is not None and needed > available:
        side = memory.largest_tile(available, TILE_OVERLAP, multiple)
        logging.warning("An untiled frame needs more memory than %s has free: give --tile=%d (about %s a tile)",
                        device, side, gib(memory.extra((side + 2 * TILE_OVERLAP) ** 2)))


def out_of_memory_line(memory: Optional[MemoryModel], model: torch.nn.Module, length: int, multiple: int,
                       device: torch.device, padded_size: Tuple[int, int],
                       tiling: Optional[Tuple[Tuple[int, int], int]], precision: Precision = FLOAT32) -> str:
    """One line for an allocation failure: what a frame needs and a --tile that should fit."""
    height, width = padded_size
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the failed frame's cached blocks: free for the estimate and the reading below
    try:
        memory = memory or MemoryModel(model, length, multiple, device, precision)
    except Exception:  # noqa: BLE001 -- the estimate is a hint; the out-of-memory line comes all the same
        return f"out of memory deblurring {width}x{height} frames on {device}: give --tile (e.g. --tile=512)"
    available = available_memory(device)
    overlap = tiling[1] if tiling else TILE_OVERLAP
    # Without a reading of the free memory, aim for a quarter of what an untiled frame needs.
    side = memory.largest_tile(available if available is not None else memory.extra(height * width) / 2,
                               overlap, multiple)
    if tiling is not None and side >= min(tiling[0]):  # these tiles did not fit, whatever the estimate says
        side = max(round_up(min(tiling[0]) // 2, multiple), multiple)
    what = (f"in {tiling[0][1]}x{tiling[0][0]} tiles" if tiling else
            f"(an untiled frame needs about {gib(memory.held + memory.extra(height * width))})")
    return (f"out of memory deblurring {width}x{height} frames on {device} {what}: give --tile={side} or smaller"
            f"{f' ({gib(available)} free)' if available is not None else ''}")


def choose_precision(amp: str, channels_last: Optional[bool], fold: Optional[bool],
                     device: torch.device) -> Tuple[Precision, bool, str]:
    """The precision, memory format and BatchNorm folding to deblur with, and one line saying why.

    `amp` "auto" takes bf16 where `device` multiplies it natively; channels-last and folding (None: not given)
    follow the precision: on with bf16/fp16, off for float32, whose result is then exactly main.py's.
    """
    native = native_bf16(device)
    dtype = (torch.bfloat16 if native else None) if amp == "auto" else AMP_DTYPES[amp]
    fast = dtype is not None
    precision = Precision(dtype, fast if channels_last is None else channels_last)
    fold = fast if fold is None else fold
    parts = ([f"{amp if amp != 'auto' else 'bf16'} autocast" if fast else "float32"]
             + ["channels-last"] * precision.channels_last + ["BatchNorm folded"] * fold)
    if amp == "auto" and fast:
        why = f"{device.type.upper()} with {native}: {FAST_PATH_COST}; --amp=none for the exact float32 result"
    elif amp == "auto":
        why = (f"{device.type.upper()} without native bf16 (AMX, AVX512-BF16 or bf16 tensor cores), where bf16 "
               f"would be slower; --amp=bf16 forces it")
    else:
        why = f"--amp={amp}"
    return precision, fold, f"precision: {', '.join(parts)} ({why})"


def prepare_model(model: torch.nn.Module, precision: Precision, fold: bool) -> torch.nn.Module:
    """`model` (in eval mode) folded and in the memory format `precision` asks for, in place; returned."""
    if fold:
        fold_batchnorm(model)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def build_parser() -> argparse.ArgumentParser:
    """deblur.py's command line."""
    parser = argparse.ArgumentParser(prog="deblur.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint of a deblurring model (.ckpt), or a run folder (see --checkpoint_mode)")
    parser.add_argument("--checkpoint_mode", choices=("best", "latest"), default=None,
                        help="with a run folder: its checkpoint_best_<key>.ckpt (of several, the one of the run's "
                             "first --validation_keys) or its checkpoint_latest_.ckpt (default: best when the run "
                             "has one, else latest)")
    parser.add_argument("--input", required=True, help="folder of frames or a video file")
    parser.add_argument("--output", required=True,
                        help="folder for the deblurred frames (and video); refused if it already holds frames, "
                             "is or lies inside the input folder, or contains the input")
    parser.add_argument("--overwrite", action="store_true",
                        help="an --output that holds frames: remove its PNG frames and deblurred videos first")
    parser.add_argument("--model", choices=MODELS.names(), default=None, metavar="NAME",
                        help=f"model class (default: from the checkpoint): {', '.join(MODELS.names())}")
    parser.add_argument("--sequence_length", type=int, default=None,
                        help="frames per window N (default: from the checkpoint)")
    parser.add_argument("--pretrained_pwcnet", default=None,
                        help="FlowDBN: PWC-Net checkpoint (default: the weights inside --checkpoint)")
    parser.add_argument("--pretrained_flownet", default=None,
                        help="FlowDBN: FlowNet1S checkpoint (default: the weights inside --checkpoint)")
    parser.add_argument("--pad_multiple", type=int, default=None,
                        help="pad frames to multiples of this (default: the model class's `pad_multiple`, else 8)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of the output video (default: the input video's; with a folder "
                             "of frames, giving it also writes a video)")
    parser.add_argument("--no_frames", action="store_true", help="video input: write the video only")
    parser.add_argument("--png_compression", type=int, default=PIL_PNG_COMPRESSION, choices=range(10),
                        metavar="0..9",
                        help="zlib level of the PNG frames (the default is PIL's). Lower is faster to write and "
                             "larger, with the same pixels: at 1280x720, level 1 took 0.08 s per frame instead "
                             "of 0.28 s and made files 10-20%% larger; 0 is uncompressed (2.8 MB)")
    parser.add_argument("--no_overlap", action="store_true",
                        help="read, deblur and write one frame after another in one thread (slower; same files)")
    _add_speed_flags(parser)
    return parser


def _add_speed_flags(parser: argparse.ArgumentParser) -> None:
    """deblur.py's flags of precision, memory format and tiling: how fast and in how much memory it runs."""
    parser.add_argument("--amp", choices=("auto", *AMP_DTYPES), default="auto",
                        help="the model's precision: bf16 or fp16 autocast, or none (float32: the exact result, "
                             "as main.py computes it). auto is bf16 where the hardware multiplies it natively "
                             "(AMX or AVX512-BF16 on the CPU, bf16 tensor cores on the GPU), else none; "
                             f"{FAST_PATH_COST}")
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels-last memory format for the model and its inputs (default: on with "
                             "bf16/fp16, off with --amp=none; outputs change only by float rounding)")
    parser.add_argument("--fold_batchnorm", action=argparse.BooleanOptionalAction, default=None,
                        help="fold DBN's BatchNorm layers into the convolutions before them (default: on with "
                             "bf16/fp16, off with --amp=none; slightly faster, outputs change only by float "
                             "rounding, about 1e-6)")
    parser.add_argument("--tile", type=parse_tile, default=None, metavar="S|WxH",
                        help="deblur each frame in tiles of SxS (or WxH) pixels, for frames too large for the "
                             "memory (the log says how much an untiled frame needs): each tile runs with "
                             "--tile_overlap pixels of its neighbours on every side, cropped afterwards; sizes "
                             "are rounded up to the pad multiple. DBN's tiled frames equal the untiled ones up to "
                             "float rounding; FlowDBN's flow network sees only the tile, so its frames change a "
                             "little (256x192 frames in 128x96 tiles, random weights: at most 10/255, PSNR "
                             "-0.03 dB; bench/README.md)")
    parser.add_argument("--tile_overlap", type=int, default=None,
                        help=f"with --tile: pixels of context on every side of a tile (default {TILE_OVERLAP}: "
                             f"DBN's outputs depend on inputs up to 81 pixels away)")


def checked_input(path: str) -> Optional[List[str]]:
    """--input's frames (a sorted list of files), or None for a video; a bad input is one line naming it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"--input: no such file or folder: {path}")
    if os.path.isfile(path):
        if not path.lower().endswith(VIDEO_EXTENSIONS):
            raise ValueError(f"--input: {path} is neither a folder of frames nor a video "
                             f"({', '.join(VIDEO_EXTENSIONS)})")
        return None
    return list_frames(path)


def tiling_of(options: argparse.Namespace, multiple: int) -> Optional[Tuple[Tuple[int, int], int]]:
    """--tile and --tile_overlap rounded up to the model's pad multiple: ((height, width), overlap), or None."""
    if options.tile is None:
        return None
    overlap = TILE_OVERLAP if options.tile_overlap is None else options.tile_overlap
    return (round_up(options.tile[0], multiple), round_up(options.tile[1], multiple)), round_up(overlap, multiple)


@dataclasses.dataclass
class Source:
    """Where the frames come from and go to: the frames, their count if known, their size, the writer, the video
    file written (or None) and the video reader to close (or None)."""

    frames: Iterator[Tuple[str, np.ndarray]]
    total: Optional[int]
    width: int
    height: int
    writer: FrameWriter
    video: Optional[str]
    reader: Any = None


def open_source(options: argparse.Namespace, files: Optional[List[str]]) -> Source:
    """The frames of --input (a folder's `files`, or the video when None) and the writer into --output."""
    if files is not None:
        video = os.path.join(options.output, "deblurred.mp4") if options.fps else None
        writer = FrameWriter(options.output, True, video, options.fps or 0.0, options.png_compression)
        width, height = image_size(files[0])  # the header only: read_folder checks every frame's size
        return Source(read_folder(files), len(files), width, height, writer, video)
    reader = open_video(options.input)
    meta = reader.get_meta_data()
    fps = options.fps or float(meta.get("fps") or 25.0)
    duration = meta.get("duration")
    total = int(round(duration * fps)) if duration and np.isfinite(duration) else None
    stem = os.path.splitext(os.path.basename(options.input))[0]
    video = os.path.join(options.output, f"{stem}_deblurred.mp4")
    writer = FrameWriter(options.output, not options.no_frames, video, fps, options.png_compression)
    width, height = meta.get("size") or (0, 0)
    return Source(read_video(reader, options.input), total, width, height, writer, video, reader)


def run(options: argparse.Namespace) -> Dict[str, Any]:
    """Deblur `options.input` into `options.output`; returns a summary dict."""
    options.checkpoint = resolve_checkpoint(options.checkpoint, options.checkpoint_mode)
    files = checked_input(options.input)  # checked before the model is loaded
    earlier = check_output(options.input, options.output, options.overwrite)
    device = parse_device(options.device)
    check_tile_flags(options.tile, options.tile_overlap)
    with initialisation_quiet():
        model, name, length = load_model(options)
    model.eval().to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = constants.CUDNN_BENCHMARK  # one frame size per clip: tune once
    precision, fold, described = choose_precision(options.amp, options.channels_last, options.fold_batchnorm, device)
    prepare_model(model, precision, fold)
    multiple = check_pad_multiple(options.pad_multiple, name, model)
    logging.info("%s, N=%d, frames padded to multiples of %d, on %s", name, length, multiple, device)
    logging.info("%s", described)
    tiling = tiling_of(options, multiple)
    if earlier:  # --overwrite, now that nothing else stops the run
        for filename in earlier:
            os.remove(filename)
        logging.info("--overwrite: removed %d earlier frame or video file(s) from %s", len(earlier), options.output)
    source = open_source(options, files)
    padded_size = (round_up(source.height, multiple), round_up(source.width, multiple))
    memory = None
    if source.height and source.width and (tiling is not None or padded_size[0] * padded_size[1] >= LARGE_FRAME_PIXELS):
        memory = MemoryModel(model, length, multiple, device, precision)
        report_memory(memory, padded_size, tiling, device, multiple)
    try:
        stream = deblur_stream if options.no_overlap else deblur_overlapped
        count = stream(model, source.frames, length, multiple, device, source.writer, source.total, tiling=tiling,
                       precision=precision)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        raise MemoryError(out_of_memory_line(memory, model, length, multiple, device, padded_size, tiling,
                                             precision)) from None
    finally:
        source.writer.close()
        if source.reader is not None:
            source.reader.close()
    result = {"model": name, "sequence_length": length, "frames": count, "video": source.video,
              "peak_memory_mib": peak_memory_mib()}
    logging.info("%d frames deblurred into %s%s; peak memory %.0f MiB", count, options.output,
                 f" (video {source.video})" if source.video else "", result["peak_memory_mib"])
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the process exit code."""
    configure_console()
    options = build_parser().parse_args(argv)
    logging.info("%s", allocator.keep_freed_memory())
    try:
        run(options)
    except KeyboardInterrupt:
        print(f"deblur.py: interrupted; the frames written so far are in {options.output}", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 -- every failure ends in one line naming what is wrong
        message = error.args[0] if isinstance(error, KeyError) and error.args else _first_line(error)
        print(f"deblur.py: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
