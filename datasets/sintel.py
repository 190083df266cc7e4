"""MPI-Sintel (Butler et al. 2012): consecutive frame pairs per scene, with flow for the training set.

Layout under the root (MPI-Sintel-complete):
  training/{clean,final}/<scene>/frame_NNNN.png, training/flow/<scene>/frame_NNNN.flo (frame N → N+1)
  test/{clean,final}/<scene>/frame_NNNN.png (no flow)

Every flow file (training) or every pair of consecutive frames (test) is one example: `input1`,
`input2` (3, H, W) float RGB in [0, 1], `target1` (2, H, W) flow in pixels (training only), `index`
and `basename` ("<scene>/frame_NNNN", the first frame).

Train/validation split: the original hard-codes validation indices that the specification does
not list. This project splits by scene instead, so no validation frame has a near-duplicate
neighbour in training: in the sorted scene list, every 4th scene (positions 4, 8, 12, … counting
from 1) is a validation scene — on the 23 Sintel training scenes these are ambush_4, bamboo_1,
cave_2, market_6 and sleeping_1. The *Full sets use every scene.
"""
import glob
import os
from argparse import Namespace
from typing import List, Optional

from datasets.flyingchairs import FlowPairDataset, Pair, dataset_flag_prefix
from datasets.gopro_common import DatasetLayout
from datasets.registry import DATASETS

# MPI-Sintel-complete's layout, the one description its reader, get_data.py (--verify) and DRY_RUN use; 23
# training scenes with 1,041 flow fields (Butler et al. 2012).
LAYOUT = DatasetLayout("sintel", "MPI-Sintel-complete",
                       "<root>/{training,test}/{clean,final}/<scene>/frame_NNNN.png and "
                       "<root>/training/flow/<scene>/frame_NNNN.flo (the MPI-Sintel-complete folder)",
                       top_level=("training",), published={"training/flow": (23, 1041)})
PASSES, FLOW = ("clean", "final"), "flow"  # the folders of a split
VALIDATION_SCENE_PERIOD = 4


def is_validation_scene(position: int) -> bool:
    """Whether the scene at 0-based `position` of the sorted scene list belongs to the validation split."""
    return position % VALIDATION_SCENE_PERIOD == VALIDATION_SCENE_PERIOD - 1


def _scenes(folder: str, flag: str) -> List[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{flag}: folder '{folder}' does not exist (expected the {LAYOUT.folder} layout)")
    scenes = sorted(name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name)))
    if not scenes:
        raise FileNotFoundError(f"{flag}: no scene folders in '{folder}'")
    return scenes


def sintel_pairs(root: str, split: str, dstype: str, subset: str, flag_prefix: str) -> List[Pair]:
    """Pairs of `split` ('training'/'test'), pass `dstype` ('clean'/'final'), `subset` ('train'/'valid'/'full')."""
    if root is None:
        raise ValueError(f"{flag_prefix}_root is required (the {LAYOUT.folder} folder)")
    root = os.path.expanduser(root)
    flag = f"{flag_prefix}_root"
    image_root = os.path.join(root, split, dstype)
    scenes = _scenes(image_root, flag)
    if subset != "full":
        if len(scenes) < VALIDATION_SCENE_PERIOD:
            raise ValueError(f"{flag}: the {subset} split needs at least {VALIDATION_SCENE_PERIOD} scenes "
                             f"in '{image_root}' (every {VALIDATION_SCENE_PERIOD}th scene validates), "
                             f"found {len(scenes)}")
        scenes = [scene for position, scene in enumerate(scenes)
                  if is_validation_scene(position) == (subset == "valid")]
    pairs: List[Pair] = []
    for scene in scenes:
        frames = sorted(glob.glob(os.path.join(image_root, scene, "frame_*.png")))
        if split == "test":
            pairs += [(first, second, None, f"{scene}/{os.path.basename(first)[:-4]}")
                      for first, second in zip(frames[:-1], frames[1:])]
            continue
        flows = sorted(glob.glob(os.path.join(root, split, FLOW, scene, "frame_*.flo")))
        if not flows:
            raise FileNotFoundError(f"{flag}: no flow files in '{os.path.join(root, split, FLOW, scene)}'")
        for flow in flows:
            name = os.path.basename(flow)[:-4]
            number = int(name[len("frame_"):])
            first = os.path.join(image_root, scene, f"{name}.png")
            second = os.path.join(image_root, scene, f"frame_{number + 1:04d}.png")
            for path in (first, second):
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"{flag}: '{path}' is missing (it belongs to '{flow}')")
            pairs.append((first, second, flow, f"{scene}/{name}"))
    return pairs


class _Sintel(FlowPairDataset):
    """A Sintel split; a registered subclass names it by its class attributes split, dstype and subset."""

    split = "training"
    dstype = "clean"
    subset = "full"

    def __init__(self, args: Optional[Namespace], root: str, num_workers: int = 4,
                 num_examples: int = -1, *, flag_prefix: Optional[str] = None) -> None:
        """`flag_prefix` (keyword-only: no flag) is the category main.py built it for, named in errors."""
        flag_prefix = dataset_flag_prefix(flag_prefix, self)
        super().__init__(args, sintel_pairs(root, self.split, self.dstype, self.subset, flag_prefix),
                         num_examples, flag_prefix=flag_prefix)


@DATASETS.register("SintelTrainingCleanTrain")
class SintelTrainingCleanTrain(_Sintel):
    """Sintel training set, clean pass, training scenes."""

    split, dstype, subset = "training", "clean", "train"


@DATASETS.register("SintelTrainingCleanValid")
class SintelTrainingCleanValid(_Sintel):
    """Sintel training set, clean pass, validation scenes."""

    split, dstype, subset = "training", "clean", "valid"


@DATASETS.register("SintelTrainingCleanFull")
class SintelTrainingCleanFull(_Sintel):
    """Sintel training set, clean pass, all scenes."""

    split, dstype, subset = "training", "clean", "full"


@DATASETS.register("SintelTrainingFinalTrain")
class SintelTrainingFinalTrain(_Sintel):
    """Sintel training set, final pass, training scenes."""

    split, dstype, subset = "training", "final", "train"


@DATASETS.register("SintelTrainingFinalValid")
class SintelTrainingFinalValid(_Sintel):
    """Sintel training set, final pass, validation scenes."""

    split, dstype, subset = "training", "final", "valid"


@DATASETS.register("SintelTrainingFinalFull")
class SintelTrainingFinalFull(_Sintel):
    """Sintel training set, final pass, all scenes."""

    split, dstype, subset = "training", "final", "full"


@DATASETS.register("SintelTestClean")
class SintelTestClean(_Sintel):
    """Sintel test set, clean pass (no flow)."""

    split, dstype, subset = "test", "clean", "full"


@DATASETS.register("SintelTestFinal")
class SintelTestFinal(_Sintel):
    """Sintel test set, final pass (no flow)."""

    split, dstype, subset = "test", "final", "full"
