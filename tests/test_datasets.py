"""GoPro datasets (windows, splits, augmentation, errors, no writes) and the synthetic GoPro generator.

Most tests use "coded" frames: red = a per-frame code, green = 4*x, blue = 4*y. The red channel tells
which file a tensor came from; green/blue give every pixel's original position, so crops, flips and
rotations can be read back exactly from any augmented sample.
"""
import filecmp
import inspect
import os
import random
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

import runtime
from datasets import DATASETS
from datasets.gopro_su import VALIDATION_FRAMES, VALIDATION_SEQUENCES
from datasets.sampling import LoaderKey, images_to_float, seeded_randomness
from tools.synthetic_gopro import main as generator_main
from tools.synthetic_gopro import make_gopro_nah, make_gopro_su, psnr
from utils.images import is_rgb8_png, read_image

W, H = 48, 32
BLUR, GAMMA, SHARP = 20, 80, 160  # red codes: kind base + 10 * sequence number + frame index


def coded_frame(code: int, width: int = W, height: int = H) -> np.ndarray:
    """HxWx3 uint8: red = code, green = 4x, blue = 4y."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([np.full_like(xs, code), 4 * xs, 4 * ys], axis=-1).astype(np.uint8)


def write_nah(root: Path, splits: Dict[str, Dict[str, int]]) -> Path:
    """A GOPRO_Large tree of coded PNG frames named 000001.png, ...; returns the root."""
    number = 0
    for split, sequences in splits.items():
        for name, length in sequences.items():
            for i in range(length):
                for folder, base in (("blur", BLUR), ("blur_gamma", GAMMA), ("sharp", SHARP)):
                    path = root / split / name / folder / f"{i + 1:06d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(coded_frame(base + 10 * number + i)).save(path)
            number += 1
    return root


def write_su(root: Path, quantitative: Dict[str, int], qualitative: Dict[str, int]) -> Path:
    """A DeepVideoDeblurring_Dataset tree of 16x8 JPEG frames 00000.jpg, ...: frame i is uniform gray 2i.

    (JPEG reproduces uniform gray exactly, so the frame index can be read back from a decoded frame.)
    """
    for kind, sequences in (("quantitative_datasets", quantitative), ("qualitative_datasets", qualitative)):
        for name, length in sequences.items():
            folders = ("input", "GT") if kind == "quantitative_datasets" else ("input",)
            for folder in folders:
                (root / kind / name / folder).mkdir(parents=True)
                for i in range(length):
                    frame = Image.fromarray(np.full((8, 16, 3), 2 * i, np.uint8))
                    frame.save(root / kind / name / folder / f"{i:05d}.jpg")
    return root


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, h, w) float -> (..., h, w, 3) uint8 (values were exact multiples of 1/255)."""
    return np.round(np.moveaxis(images.numpy(), -3, -1) * 255.0).astype(np.uint8)


def frames_of(example: dict, sample: int = 0) -> List[np.ndarray]:
    """Inputs then target (if any) of one sample as uint8 HxWx3 arrays."""
    keys = sorted((k for k in example if k.startswith("input")), key=lambda k: int(k[5:]))
    keys += ["target1"] if "target1" in example else []
    return [to_uint8(example[k][sample]) for k in keys]


def red_codes(example: dict, sample: int = 0) -> List[int]:
    codes = []
    for frame in frames_of(example, sample):
        assert (frame[..., 0] == frame[0, 0, 0]).all(), "a frame mixes pixels of different files"
        codes.append(int(frame[0, 0, 0]))
    return codes


def su_codes(example: dict) -> List[int]:
    """Frame indices of a Su test example's inputs then target (frames are uniform gray 2i)."""
    return [code // 2 for code in red_codes(example)]


def position_transform(frame: np.ndarray) -> Tuple[Tuple[int, int, int, int], int, int]:
    """Read (signed 2x2 matrix, x0, y0) of a crop+flip+rotation from the green/blue position codes."""
    xs, ys = frame[..., 1].astype(int) // 4, frame[..., 2].astype(int) // 4
    h, w = xs.shape
    matrix = (xs[0, 1] - xs[0, 0], xs[1, 0] - xs[0, 0], ys[0, 1] - ys[0, 0], ys[1, 0] - ys[0, 0])
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    assert (xs == xs[0, 0] + matrix[0] * cols + matrix[1] * rows).all(), "x positions are not a rigid crop"
    assert (ys == ys[0, 0] + matrix[2] * cols + matrix[3] * rows).all(), "y positions are not a rigid crop"
    assert sorted(map(abs, matrix)) == [0, 0, 1, 1], f"not a flip/rotation: {matrix}"
    return matrix, int(xs.min()), int(ys.min())


def assert_aligned(example: dict, sample: int) -> Tuple[int, int, int, int]:
    """All frames of a sample show the same positions (same crop/flip/rotation); returns the transform."""
    frames = frames_of(example, sample)
    for frame in frames[1:]:
        np.testing.assert_array_equal(frame[..., 1:], frames[0][..., 1:])
    return position_transform(frames[0])[0]


def seed(value: int) -> None:
    """Seed the three generators the augmentation draws from (noise values come from torch's, as the original's)."""
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


@pytest.fixture()
def nah(tmp_path) -> Path:
    """Train: SEQA (4 frames, number 0), SEQB (3 frames, number 1); test: SEQT (3 frames, number 2)."""
    return write_nah(tmp_path / "GOPRO_Large", {"train": {"SEQA": 4, "SEQB": 3}, "test": {"SEQT": 3}})


def snapshot(root: Path) -> List[Tuple[str, int, int]]:
    """Every file and folder under root with size and modification time."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            stat = os.stat(os.path.join(dirpath, name))
            entries.append((os.path.join(dirpath, name), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


# ------------------------------------------------------------------------------------------ windows
def test_windows_are_clamped_at_the_ends_and_the_target_is_the_centre(nah):
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), sequence_length=5)
    assert len(dataset) == 3
    sharp = SHARP + 20
    blur = BLUR + 20
    assert red_codes(dataset[0]) == [blur, blur, blur, blur + 1, blur + 2, sharp]
    assert red_codes(dataset[1]) == [blur, blur, blur + 1, blur + 2, blur + 2, sharp + 1]
    assert red_codes(dataset[2]) == [blur, blur + 1, blur + 2, blur + 2, blur + 2, sharp + 2]
    example = dataset[1]
    assert example["basename"] == ["SEQT/000002"]
    assert example["input1"].shape == (1, 3, H, W) and example["input1"].dtype == torch.float32
    assert example["target1"].shape == (1, 3, H, W)
    assert example["index"].tolist() == [1.0] and example["reference_index"].tolist() == [2.0]
    assert float(example["input1"].min()) >= 0.0 and float(example["input1"].max()) <= 1.0


def test_sequence_length_seven_and_full_split_order(nah):
    dataset = DATASETS.get("GoProNahFull")(None, root=str(nah), sequence_length=7, num_samples_per_example=2,
                                          random_flips=False, random_rotate=False, random_reverse=False,
                                          random_brightness=False, random_contrast=False, random_hue=False)
    assert len(dataset) == 4 + 3 + 3
    assert [dataset[i]["basename"][0] for i in (0, 3, 4, 7, 9)] == [
        "SEQA/000001", "SEQA/000004", "SEQB/000001", "SEQT/000001", "SEQT/000003"]
    example = dataset[5]  # SEQB, centre frame 1
    assert red_codes(example, 1) == [BLUR + 10 + i for i in (0, 0, 0, 1, 2, 2, 2)] + [SHARP + 11]
    assert example["reference_index"].tolist() == [3.0, 3.0]
    assert example["basename"] == ["SEQB/000002", "SEQB/000002"]
    assert torch.equal(example["input4"][0], example["input4"][1])  # no augmentation: identical samples


def test_index_wraps_around(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_flips=False, random_rotate=False,
                                           random_reverse=False, num_samples_per_example=1)
    assert len(dataset) == 7
    assert dataset[9]["basename"] == dataset[2]["basename"] == ["SEQA/000003"]
    assert dataset[9]["index"].tolist() == [2.0]


@pytest.mark.parametrize("name", ["GoProNahGammaTest", "GoProNahTest"])
def test_gamma_variants_read_blur_gamma(nah, name):
    kwargs = {} if name == "GoProNahGammaTest" else {"gamma_corrected_data": True}
    dataset = DATASETS.get(name)(None, root=str(nah), **kwargs)
    assert red_codes(dataset[1]) == [GAMMA + 20 + i for i in (0, 0, 1, 2, 2)] + [SHARP + 21]


def test_gamma_classes_have_their_own_signatures_and_defaults(nah):
    for split, samples in (("Train", 8), ("Test", 1), ("Full", 8)):
        dataset = DATASETS.get(f"GoProNahGamma{split}")(None, root=str(nah))
        assert dataset.gamma_corrected_data is True and dataset.num_samples_per_example == samples
        assert inspect.signature(type(dataset).__init__).parameters["num_workers"].default == 12
    assert DATASETS.get("GoProNahTrain")(None, root=str(nah)).gamma_corrected_data is False


def test_num_examples_is_a_fixed_sorted_subset(nah):
    full = DATASETS.get("GoProNahFull")(None, root=str(nah), num_examples=4, random_flips=False,
                                       random_rotate=False, random_reverse=False, random_brightness=False,
                                       random_contrast=False, random_hue=False, num_samples_per_example=1)
    order = list(range(10))
    random.Random(0).shuffle(order)
    expected = sorted(order[:4])
    all_names = [f"SEQA/{i:06d}" for i in range(1, 5)] + [f"SEQB/{i:06d}" for i in range(1, 4)] + \
        [f"SEQT/{i:06d}" for i in range(1, 4)]
    assert len(full) == 4
    assert [full[i]["basename"][0] for i in range(4)] == [all_names[i] for i in expected]
    random.seed(123)  # the subset does not depend on the global random state
    again = DATASETS.get("GoProNahFull")(None, root=str(nah), num_examples=4, num_samples_per_example=1)
    assert [again[i]["basename"][0] for i in range(4)] == [all_names[i] for i in expected]
    assert len(DATASETS.get("GoProNahTest")(None, root=str(nah), num_examples=5)) == 3


# ------------------------------------------------------------------------------------ augmentation
def test_crops_are_aligned_across_inputs_and_target_and_cover_all_offsets(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[30, 44], random_flips=True,
                                           random_rotate=False, random_reverse=False, num_samples_per_example=16)
    seed(0)
    offsets, flips = set(), set()
    for index in range(len(dataset)):
        example = dataset[index]
        assert example["input3"].shape == (16, 3, 30, 44) and example["target1"].shape == (16, 3, 30, 44)
        for sample in range(16):
            flips.add(assert_aligned(example, sample))
            _, x0, y0 = position_transform(frames_of(example, sample)[0])
            offsets.add((x0, y0))
    # numpy's randint(0, W - 44) as the original: offsets 0..W-45 and 0..H-31, never the last one.
    assert offsets == {(x, y) for x in range(W - 44) for y in range(H - 30)}
    assert flips == {(1, 0, 0, 1), (-1, 0, 0, 1), (1, 0, 0, -1), (-1, 0, 0, -1)}


def test_crop_equal_to_the_frame_works(nah):
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), random_crop=[H, W])
    np.testing.assert_array_equal(frames_of(dataset[0])[0], coded_frame(BLUR + 20))


def test_square_crops_rotate_by_all_quarter_turns_like_pil(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[16, 16], random_flips=False,
                                           random_rotate=True, random_reverse=False, num_samples_per_example=12)
    seed(1)
    turns = set()
    for index in range(3):
        example = dataset[index]
        for sample in range(12):
            assert_aligned(example, sample)
            frame = frames_of(example, sample)[0]
            _, x0, y0 = position_transform(frame)
            crop = Image.fromarray(np.ascontiguousarray(coded_frame(0)[y0:y0 + 16, x0:x0 + 16, 1]))
            angles = [a for a in (0, 90, 180, 270) if np.array_equal(frame[..., 1], np.asarray(crop.rotate(a)))]
            assert len(angles) == 1, "not a PIL (counter-clockwise) rotation of the crop"
            turns.add(angles[0])
    assert turns == {0, 90, 180, 270}


def test_non_square_frames_turn_a_quarter_like_pil_with_black_corners(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[16, 24], random_flips=False,
                                           random_rotate=True, random_reverse=False, num_samples_per_example=12)
    seed(2)
    turns = set()
    for index in range(2):
        example = dataset[index]
        for sample in range(12):
            frames = frames_of(example, sample)
            assert frames[0].shape == (16, 24, 3)
            for frame in frames[1:]:
                np.testing.assert_array_equal(frame[..., 1:], frames[0][..., 1:])
            # PIL rotates a 16x24 frame a quarter turn about its centre and keeps its size: 4 columns of
            # black on either side (the original's corners), a 16x16 rotated square between them.
            if (frames[0][:, :4] == 0).all() and (frames[0][:, -4:] == 0).all():
                turns.add("quarter")
            else:
                turns.add(position_transform(frames[0])[0])
    assert turns == {"quarter", (1, 0, 0, 1), (-1, 0, 0, -1)}


def test_reversal_reverses_only_the_inputs_and_never_moves_the_ground_truth(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_flips=False, random_rotate=False,
                                           random_reverse=True, num_samples_per_example=2)
    seed(3)
    seen = set()
    for _ in range(12):
        example = dataset[1]  # SEQA, centre frame 1: window 0, 0, 1, 2, 3
        codes = red_codes(example)
        forward = [BLUR + i for i in (0, 0, 1, 2, 3)]
        assert codes[:5] in (forward, forward[::-1])
        assert codes[5] == SHARP + 1 and codes[2] == BLUR + 1  # GT and centre input stay in place
        assert red_codes(example, 1) == codes  # one draw per example, shared by its samples
        seen.add(codes[0])
    assert seen == {BLUR, BLUR + 3}


def test_seeded_examples_are_reproducible(nah):
    dataset = DATASETS.get("GoProNahFull")(None, root=str(nah), random_crop=[16, 16], random_scales="strong",
                                          random_noise=True, random_channel_permutation=True,
                                          random_multiplicative_colors=True, random_saturation=True,
                                          num_samples_per_example=2)
    seed(4)
    first = dataset[2]
    seed(4)
    second = dataset[2]
    for key in ("input1", "input5", "target1"):
        assert torch.equal(first[key], second[key])
    seed(5)
    assert not torch.equal(dataset[2]["input1"], first["input1"])


def _scale_tree(root: Path) -> Path:
    """One 96x64 frame whose green/blue are 2x/2y (a ramp that bicubic resizing keeps smooth)."""
    ys, xs = np.mgrid[0:64, 0:96]
    frame = np.stack([np.full_like(xs, 50), 2 * xs, 2 * ys], axis=-1).astype(np.uint8)
    for folder in ("blur", "blur_gamma", "sharp"):
        (root / "train" / "S" / folder).mkdir(parents=True)
        Image.fromarray(frame).save(root / "train" / "S" / folder / "000001.png")
    return root


def test_weak_scales_resize_all_frames_with_pil_bicubic_before_cropping(tmp_path):
    root = _scale_tree(tmp_path / "GOPRO_Large")
    original = Image.open(root / "train" / "S" / "blur" / "000001.png")
    # Crop 20x20: 1/4 of 64 rows would not cover it, so that scale is raised to 20/64.
    candidates = {s: np.asarray(original.resize((round(96 * max(s, 20 / 64)), round(64 * max(s, 20 / 64))),
                                                Image.BICUBIC)) for s in (1 / 4, 1 / 3, 1 / 2)}
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(root), random_crop=[20, 20], random_scales="weak",
                                           random_flips=False, random_rotate=False, random_reverse=False,
                                           num_samples_per_example=12)
    seed(6)
    example = dataset[0]
    scales = set()
    for sample in range(12):
        frames = frames_of(example, sample)
        for frame in frames[1:]:
            np.testing.assert_array_equal(frame[..., 1:], frames[0][..., 1:])
        found = [s for s, image in candidates.items() for y in range(image.shape[0] - 19)
                 for x in range(image.shape[1] - 19) if np.array_equal(image[y:y + 20, x:x + 20], frames[0])]
        assert len(found) >= 1, "sample is no crop of a weakly rescaled frame"
        scales.add(found[0])
    assert scales == {1 / 4, 1 / 3, 1 / 2}


def test_strong_scales_draw_scales_between_the_minimum_and_one(tmp_path):
    root = _scale_tree(tmp_path / "GOPRO_Large")
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(root), random_crop=[16, 16], random_scales="strong",
                                           random_scales_min=0.5, random_flips=False, random_rotate=False,
                                           random_reverse=False, num_samples_per_example=12)
    seed(7)
    example = dataset[0]
    steps = []
    for sample in range(12):
        green = frames_of(example, sample)[0][..., 1].astype(float)
        steps.append(float(np.median(np.diff(green, axis=1))))  # 2 / scale
    assert all(2.0 - 0.5 <= step <= 4.0 + 0.5 for step in steps), steps
    assert len({round(step, 1) for step in steps}) >= 3


def test_colour_augmentations_are_identical_for_all_frames(tmp_path):
    # All files show the same picture, so every frame of an augmented sample must stay identical.
    root = tmp_path / "GOPRO_Large"
    for folder in ("blur", "blur_gamma", "sharp"):
        for i in range(3):
            path = root / "test" / "S" / folder / f"{i:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(coded_frame(100)).save(path)
    original = coded_frame(100).astype(float) / 255.0
    flags = dict(random_multiplicative_colors=True, random_brightness=True, random_contrast=True,
                 random_saturation=True, random_hue=True, random_channel_permutation=True)
    dataset = DATASETS.get("GoProNahTest")(None, root=str(root), num_samples_per_example=6, **flags)
    seed(7)
    example = dataset[1]
    for sample in range(6):
        frames = [example[f"input{i}"][sample] for i in range(1, 6)] + [example["target1"][sample]]
        for frame in frames[1:]:
            assert torch.equal(frame, frames[0])
        assert float(np.abs(frames[0].permute(1, 2, 0).numpy() - original).mean()) > 0.01


def test_multiplicative_colours_scale_each_channel_by_one_factor(nah):
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), random_multiplicative_colors=True,
                                          num_samples_per_example=4)
    seed(8)
    example = dataset[0]
    original = coded_frame(BLUR + 20).astype(float)
    for sample in range(4):
        frame = frames_of(example, sample)[0].astype(float)
        mask = (original > 20) & (original < 100)  # nonzero and never clipped (factors <= 2)
        for channel in range(3):
            ratio = frame[..., channel][mask[..., channel]] / original[..., channel][mask[..., channel]]
            if ratio.size:
                assert 0.5 - 0.05 <= ratio.mean() <= 2.0 and ratio.max() - ratio.min() < 0.06


def test_channel_permutation_is_one_permutation_for_all_frames(nah):
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), random_channel_permutation=True,
                                          num_samples_per_example=8)
    seed(9)
    example = dataset[1]
    permutations = set()
    for sample in range(8):
        frames = frames_of(example, sample)
        originals = [coded_frame(c) for c in (BLUR + 20, BLUR + 20, BLUR + 21, BLUR + 22, BLUR + 22, SHARP + 21)]
        matches = [[np.array_equal(frames[0][..., c], originals[0][..., o]) for o in range(3)] for c in range(3)]
        permutation = tuple(int(np.argmax(row)) for row in matches)
        assert sorted(permutation) == [0, 1, 2]
        for frame, original in zip(frames, originals):
            np.testing.assert_array_equal(frame, original[..., list(permutation)])
        permutations.add(permutation)
    assert len(permutations) >= 3


def test_noise_touches_only_the_inputs(nah):
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), random_noise=True, num_samples_per_example=4)
    seed(10)
    example = dataset[0]
    clean = torch.from_numpy(coded_frame(BLUR + 20)).permute(2, 0, 1).float() / 255.0
    target = torch.from_numpy(coded_frame(SHARP + 20)).permute(2, 0, 1).float() / 255.0
    for sample in range(4):
        assert torch.equal(example["target1"][sample], target)
        residuals = [example[f"input{i}"][sample] - clean for i in (1, 2, 3)]
        std = float(residuals[0].std())
        assert 0.0 < std <= 0.045
        assert all(abs(float(r.std()) - std) < 0.3 * std + 1e-3 for r in residuals)  # one sigma for all inputs


def test_batches_collate_with_the_default_loader(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[16, 16], num_samples_per_example=3)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=False, num_workers=0)))
    assert batch["input1"].shape == (2, 3, 3, 16, 16) and batch["target1"].shape == (2, 3, 3, 16, 16)
    assert batch["index"].tolist() == [[0.0] * 3, [1.0] * 3]
    assert [list(t) for t in batch["basename"]] == [["SEQA/000001", "SEQA/000002"]] * 3


# ------------------------------------------------------------------------------------------- Su
@pytest.fixture(scope="module")
def su(tmp_path_factory) -> Path:
    """Two validation sequences (98 and 100 frames), two training ones, one qualitative one."""
    root = tmp_path_factory.mktemp("su") / "DeepVideoDeblurring_Dataset"
    return write_su(root, {"IMG_0030": 98, "720p_240fps_2": 100, "IMG_9000": 4, "IMG_9001": 3}, {"IMG_8000": 5})


def test_su_validation_split_is_the_listed_frames_of_the_listed_sequences(su):
    valid = DATASETS.get("GoProSuQuantitativeValid")(None, root=str(su))
    assert len(valid) == 2 * 30
    names = [valid[i]["basename"][0] for i in range(len(valid))]
    assert names == [f"720p_240fps_2/{i:05d}" for i in VALIDATION_FRAMES] + \
        [f"IMG_0030/{i:05d}" for i in VALIDATION_FRAMES]
    # 720p_240fps_2 sorts first; IMG_0030's frame 97 is its last, so the window is clamped.
    assert valid[29]["basename"] == ["720p_240fps_2/00097"] and su_codes(valid[29]) == [95, 96, 97, 98, 99, 97]
    assert valid[59]["basename"] == ["IMG_0030/00097"] and su_codes(valid[59]) == [95, 96, 97, 97, 97, 97]
    assert valid[30]["basename"] == ["IMG_0030/00002"] and su_codes(valid[30]) == [0, 1, 2, 3, 4, 2]
    assert {"IMG_0030", "720p_240fps_2"} <= set(VALIDATION_SEQUENCES)


def test_su_train_and_full_splits(su):
    train = DATASETS.get("GoProSuQuantitativeTrain")(None, root=str(su), random_flips=False, random_rotate=False,
                                                    num_samples_per_example=1)
    assert len(train) == 4 + 3
    assert [train[i]["basename"][0] for i in (0, 3, 4, 6)] == ["IMG_9000/00000", "IMG_9000/00003",
                                                               "IMG_9001/00000", "IMG_9001/00002"]
    assert train.random_reverse is False
    full = DATASETS.get("GoProSuQuantitativeFull")(None, root=str(su))
    assert len(full) == 100 + 98 + 4 + 3


def test_su_qualitative_has_no_target(su):
    dataset = DATASETS.get("GoProSuQualitative")(None, root=str(su), sequence_length=3)
    assert len(dataset) == 5
    example = dataset[4]
    assert "target1" not in example and sorted(k for k in example if k.startswith("input")) == \
        ["input1", "input2", "input3"]
    assert su_codes(example) == [3, 4, 4] and example["basename"] == ["IMG_8000/00004"]
    assert example["input2"].shape == (1, 3, 8, 16)


def test_su_root_is_expanded(su, monkeypatch):
    monkeypatch.setenv("HOME", str(su.parent))
    assert len(DATASETS.get("GoProSuQualitative")(None, root="~/DeepVideoDeblurring_Dataset")) == 5


def test_su_short_validation_sequence_is_an_error(tmp_path):
    root = write_su(tmp_path / "su", {"IMG_0049": 60, "IMG_9000": 3}, {})
    with pytest.raises(ValueError, match="validation sequence 'IMG_0049' has 60 frames.*index 97"):
        DATASETS.get("GoProSuQuantitativeValid")(None, root=str(root))


# --------------------------------------------------------------------------------------- errors
def _remove(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    path.rmdir()


NAH_ERRORS = [
    ("no root", lambda r: None, {}, ValueError, "no dataset root given"),
    ("missing root", lambda r: r / "nowhere", {}, FileNotFoundError, "is not a directory"),
    ("parent of GOPRO_Large", lambda r: r.parent, {}, FileNotFoundError,
     "found '.*GOPRO_Large/test': pass the inner folder '.*GOPRO_Large'"),
    ("missing split", lambda r: (_remove(r / "test"), r)[1], {}, FileNotFoundError, "split folder '.*test'"),
    ("no sequences", lambda r: (_remove(r / "test" / "SEQT"), r)[1], {}, ValueError, "no sequence folders in"),
    ("missing blur", lambda r: (_remove(r / "test" / "SEQT" / "blur"), r)[1], {}, FileNotFoundError,
     "missing frame folder '.*SEQT/blur'"),
    ("missing blur_gamma", lambda r: (_remove(r / "test" / "SEQT" / "blur_gamma"), r)[1],
     {"gamma_corrected_data": True}, FileNotFoundError, "missing frame folder '.*SEQT/blur_gamma'"),
    ("missing sharp", lambda r: (_remove(r / "test" / "SEQT" / "sharp"), r)[1], {}, FileNotFoundError,
     "missing frame folder '.*SEQT/sharp'"),
    ("empty sequence", lambda r: ([p.unlink() for p in (r / "test" / "SEQT" / "blur").iterdir()], r)[1], {},
     ValueError, "'.*SEQT/blur' holds no '\\*.png' files"),
    ("count mismatch", lambda r: ((r / "test" / "SEQT" / "sharp" / "000003.png").unlink(), r)[1], {}, ValueError,
     "sequence 'SEQT': 3 frames in '.*blur' but 2 in '.*sharp'"),
    ("name mismatch", lambda r: ((r / "test" / "SEQT" / "sharp" / "000003.png").rename(
        r / "test" / "SEQT" / "sharp" / "000009.png"), r)[1], {}, ValueError,
     "input frame '.*blur/000003.png' has no ground truth of the same name"),
    ("even length", lambda r: r, {"sequence_length": 4}, ValueError, "sequence_length must be a positive odd"),
    ("bad scales", lambda r: r, {"random_scales": "medium", "random_crop": [8, 8]}, ValueError,
     "random_scales must be one of none, weak, strong"),
    ("scales without crop", lambda r: r, {"random_scales": "weak"}, ValueError, "needs a random_crop"),
    ("half a crop", lambda r: r, {"random_crop": [16, -1]}, ValueError, "random_crop must be two positive"),
    ("one crop value", lambda r: r, {"random_crop": [16]}, ValueError, "random_crop must be two positive"),
    ("no samples", lambda r: r, {"num_samples_per_example": 0}, ValueError, "num_samples_per_example must be"),
]


@pytest.mark.parametrize("case,make_root,kwargs,error,message", NAH_ERRORS, ids=[e[0] for e in NAH_ERRORS])
def test_nah_construction_errors(nah, case, make_root, kwargs, error, message):
    root = make_root(nah)
    with pytest.raises(error, match=message):
        DATASETS.get("GoProNahTest")(None, root=None if root is None else str(root), **kwargs)


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a png")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def _resize(path: Path) -> None:
    Image.fromarray(coded_frame(0, W, H - 8)).save(path)


@pytest.mark.parametrize("extension", ["png", "tif"])
def test_16_bit_gray_frames_are_scaled_to_8_bits_not_clipped(tmp_path, extension):
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    path = tmp_path / f"frame.{extension}"
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # the full 16-bit range: 0 .. 65535
    with Image.open(path) as stored:
        assert stored.mode in ("I;16", "I")
    # PIL's convert("RGB") would clip every value above 255: an all-white frame.
    np.testing.assert_array_equal(read_image(str(path)), np.repeat(gray[:, :, None], 3, axis=2))


def test_gray_frames_of_floats_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "frame.tif"
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(path)
    with pytest.raises(ValueError, match=r"cannot decode image '.*frame.tif': F gray values .* are not 16-bit"):
        read_image(str(path))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_read_image_gives_pils_rgb_samples_for_every_png_kind(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    image = {"P": lambda: image.quantize(64)}.get(mode, lambda: image.convert(mode))()
    path = tmp_path / "frame.png"
    image.save(path)
    # 8-bit RGB takes libspng's path, everything else PIL's; both must give PIL's RGB samples.
    assert is_rgb8_png(path.read_bytes()) == (mode == "RGB")
    with Image.open(path) as reference:
        expected = np.asarray(reference.convert("RGB"))
    decoded = read_image(str(path))
    assert decoded.dtype == np.uint8 and decoded.shape == (20, 30, 3)
    np.testing.assert_array_equal(decoded, expected)
    if mode == "RGB":
        np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize("damage,file,message", [
    (_corrupt, "blur/000002.png", "cannot decode image '.*SEQT/blur/000002.png'"),
    (_truncate, "sharp/000001.png", "cannot decode image '.*SEQT/sharp/000001.png'"),
    (_resize, "sharp/000001.png", "differ in size: '.*blur/000001.png' is 48x32 but '.*sharp/000001.png' is 48x24"),
    (_resize, "blur/000002.png", "differ in size: '.*blur/000001.png' is 48x32 but '.*blur/000002.png' is 48x24"),
])
def test_bad_frames_fail_on_loading_naming_the_file(nah, damage, file, message):
    damage(nah / "test" / "SEQT" / file)
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah))
    with pytest.raises(ValueError, match=message):
        dataset[0]


def test_crop_larger_than_the_frame_is_an_error(nah):
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), random_crop=[H, W + 8])
    with pytest.raises(ValueError, match="random_crop 32x56 .* larger than the frame 32x48 of '.*000001.png'"):
        dataset[0]


@pytest.mark.parametrize("quantitative,qualitative,name,message", [
    ({"IMG_9000": 3}, {}, "GoProSuQuantitativeValid", "no validation sequences in"),
    ({"IMG_0030": 98}, {}, "GoProSuQuantitativeTrain", "no training \\(non-validation\\) sequences"),
    ({}, {"IMG_8000": 3}, "GoProSuQuantitativeFull", "'.*quantitative_datasets' does not exist"),
    ({"IMG_9000": 3}, {}, "GoProSuQualitative", "'.*qualitative_datasets' does not exist"),
])
def test_su_construction_errors(tmp_path, quantitative, qualitative, name, message):
    root = write_su(tmp_path / "su", quantitative, qualitative)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        DATASETS.get(name)(None, root=str(root))


def test_su_missing_ground_truth_folder(tmp_path):
    root = write_su(tmp_path / "su", {"IMG_9000": 3}, {})
    _remove(root / "quantitative_datasets" / "IMG_9000" / "GT")
    with pytest.raises(FileNotFoundError, match="missing frame folder '.*IMG_9000/GT'"):
        DATASETS.get("GoProSuQuantitativeTrain")(None, root=str(root))


# ------------------------------------------------------------------------------------ no writes
def test_nothing_is_written_into_the_dataset_trees(nah, su):
    before = snapshot(nah), snapshot(su)
    for name, root, kwargs in [
        ("GoProNahTrain", nah, {"random_crop": [16, 16], "num_samples_per_example": 2}),
        ("GoProNahFull", nah, {"num_samples_per_example": 1, "random_hue": False}),
        ("GoProNahGammaTest", nah, {}),
        ("GoProSuQuantitativeTrain", su, {"random_crop": [8, 8], "num_samples_per_example": 2}),
        ("GoProSuQualitative", su, {}),
    ]:
        dataset = DATASETS.get(name)(None, root=str(root), **kwargs)
        for index in range(len(dataset)):
            dataset[index]
    assert (snapshot(nah), snapshot(su)) == before


# ------------------------------------------------------------------------------------ frame cache
CACHE_KWARGS = {"random_crop": [16, 16], "num_samples_per_example": 3, "random_noise": True,
                "random_multiplicative_colors": True}


def _all_examples(dataset, value: int) -> List[dict]:
    seed(value)
    return [dataset[index] for index in range(len(dataset))]


def _assert_same_examples(first: List[dict], second: List[dict]) -> None:
    for a, b in zip(first, second, strict=True):
        assert sorted(a) == sorted(b)
        for key, value in a.items():
            if torch.is_tensor(value):
                assert torch.equal(value, b[key]), key
            else:
                assert value == b[key], key


@pytest.mark.parametrize("name, kwargs", [("GoProNahFull", CACHE_KWARGS), ("GoProNahTest", {}),
                                          ("GoProNahTrain", {"random_crop": [16, 32], "random_scales": "weak"})])
def test_cached_samples_are_bit_identical_to_decoded_ones(nah, tmp_path, name, kwargs):
    plain = DATASETS.get(name)(None, root=str(nah), **kwargs)
    cached = DATASETS.get(name)(None, root=str(nah), cache_dir=str(tmp_path / "cache"), **kwargs)
    expected = _all_examples(plain, 7)
    _assert_same_examples(_all_examples(cached, 7), expected)  # cold: every frame decoded and written
    _assert_same_examples(_all_examples(cached, 7), expected)  # warm: every frame memory-mapped


def test_cache_holds_one_uint8_file_per_frame_outside_the_tree_and_is_reused(nah, tmp_path, monkeypatch):
    import datasets.gopro_common as common

    decoded = []
    real_read = common.read_image
    monkeypatch.setattr(common, "read_image", lambda path: decoded.append(path) or real_read(path))
    before = snapshot(nah)
    cache_dir = tmp_path / "cache"
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), cache_dir=str(cache_dir), **CACHE_KWARGS)
    _all_examples(dataset, 1)
    # 7 training frames, blur + sharp: each decoded exactly once in the whole epoch.
    assert len(decoded) == len(set(decoded)) == 14
    files = sorted(cache_dir.rglob("*.npy"))
    assert len(files) == 14 and not list(cache_dir.rglob("*.tmp"))
    for path in decoded:
        array = np.load(dataset.cache.entry(path))
        assert array.dtype == np.uint8 and array.shape == (H, W, 3)
        np.testing.assert_array_equal(array, np.asarray(Image.open(path).convert("RGB")))
    assert dataset.cache.size_bytes() == sum(f.stat().st_size for f in files) < 14 * (H * W * 3 + 200)
    # What the start of a run announces as the full cache's size is what the epoch wrote.
    assert dataset._cached_frames_and_bytes() == (14, dataset.cache.size_bytes())
    stats = {f: f.stat().st_mtime_ns for f in files}
    decoded.clear()
    _all_examples(dataset, 2)  # second epoch: nothing decoded, nothing rewritten
    assert decoded == []
    assert {f: f.stat().st_mtime_ns for f in sorted(cache_dir.rglob("*.npy"))} == stats
    assert snapshot(nah) == before


def test_a_changed_frame_gets_a_new_cache_entry(nah, tmp_path):
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), cache_dir=str(tmp_path / "cache"))
    assert red_codes(dataset[0])[2] == BLUR + 20
    frame = nah / "test" / "SEQT" / "blur" / "000001.png"
    old_entry = dataset.cache.entry(str(frame))
    Image.fromarray(coded_frame(99)).save(frame)
    os.utime(frame, ns=(1, 1))  # a different mtime even on file systems with coarse timestamps
    assert dataset.cache.entry(str(frame)) != old_entry
    assert red_codes(dataset[0])[2] == 99


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_an_array", "wrong_shape"])
def test_a_corrupt_cache_entry_is_named_and_rebuilt(nah, tmp_path, caplog, damage):
    cache_dir = tmp_path / "cache"
    dataset = DATASETS.get("GoProNahTest")(None, root=str(nah), cache_dir=str(cache_dir))
    expected = _all_examples(dataset, 3)
    frame = str(nah / "test" / "SEQT" / "blur" / "000001.png")
    entry = dataset.cache.entry(frame)
    good = entry.read_bytes()
    if damage == "wrong_shape":  # a well-formed array of another dtype and shape
        np.save(entry, np.zeros((2, 5), dtype=np.float32))
    else:  # "truncated": the header intact, the pixels cut (a full disk, a killed copy)
        entry.write_bytes({"truncated": good[:200], "empty": b"", "not_an_array": b"PK\x03\x04 not numpy"}[damage])
    rebuilt = DATASETS.get("GoProNahTest")(None, root=str(nah), cache_dir=str(cache_dir))  # a later run
    _assert_same_examples(_all_examples(rebuilt, 3), expected)
    assert entry.read_bytes() == good and not list(cache_dir.rglob("*.tmp"))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"frame cache entry {entry} of {frame} is corrupt" in warnings[0], warnings
    caplog.clear()
    _all_examples(rebuilt, 3)  # replaced: read from the cache again without a word
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_cache_entries_stay_valid_for_a_copy_of_the_dataset_elsewhere(nah, tmp_path, monkeypatch):
    """A copy on a node's scratch disk, without its timestamps (cp -r), reuses the entries of the original."""
    import shutil

    import datasets.gopro_common as common

    cache_dir = str(tmp_path / "cache")
    expected = _all_examples(DATASETS.get("GoProNahTrain")(None, root=str(nah), cache_dir=cache_dir,
                                                           **CACHE_KWARGS), 1)
    entries = {f: f.stat().st_mtime_ns for f in sorted((tmp_path / "cache").rglob("*.npy"))}
    copy = tmp_path / "scratch" / "GOPRO_Large"
    shutil.copytree(nah, copy, copy_function=shutil.copyfile)  # new files, new modification times
    decoded = []
    real_read = common.read_image
    monkeypatch.setattr(common, "read_image", lambda path: decoded.append(path) or real_read(path))
    copied = _all_examples(DATASETS.get("GoProNahTrain")(None, root=str(copy), cache_dir=cache_dir,
                                                         **CACHE_KWARGS), 1)
    assert decoded == []
    assert {f: f.stat().st_mtime_ns for f in sorted((tmp_path / "cache").rglob("*.npy"))} == entries
    for example in copied + expected:  # the same samples, named after their own tree
        example.pop("basename", None)
    _assert_same_examples(copied, expected)


def test_crops_read_only_the_window_from_memory_maps(nah, tmp_path):
    from datasets.gopro_common import FrameStack, augment_sample

    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), cache_dir=str(tmp_path / "cache"),
                                            random_crop=[8, 16], num_samples_per_example=1)
    inputs, target, _ = dataset.example_files(0)
    dataset._read_frames(inputs + [target])  # fill the cache
    stack = dataset._read_frames(inputs + [target])
    assert all(isinstance(a, np.memmap) for a in stack.arrays)
    seed(3)
    sample = augment_sample(stack, len(inputs), dataset.augmentation, inputs + [target])
    assert stack._full is None and sample.shape in ((6, 3, 8, 16), (6, 3, 16, 8))
    full = FrameStack(stack.arrays).full()
    assert full.shape == (6, H, W, 3) and not isinstance(full, np.memmap)


def test_cache_dir_inside_the_dataset_tree_is_an_error(nah):
    for inside in (nah, nah / "train" / "cache", nah / "test" / "SEQT" / "blur"):
        with pytest.raises(ValueError, match="lies inside the dataset tree"):
            DATASETS.get("GoProNahTrain")(None, root=str(nah), cache_dir=str(inside))
    assert not (nah / "train" / "cache").exists()


def _worker_batches(dataset, torch_seed: int, epochs: int) -> List[List[dict]]:
    """The batches of a 2-worker loader that loads example 0 four times per epoch."""
    torch.manual_seed(torch_seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, sampler=[0, 0, 0, 0], num_workers=2)
    return [list(loader) for _ in range(epochs)]


def test_workers_draw_different_crops_per_worker_and_epoch_and_a_seed_reproduces_them(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[16, 16], num_samples_per_example=4)
    run = _worker_batches(dataset, 11, epochs=2)
    # Crop offsets come from numpy's RNG (flips from python's): every batch needs its own numpy stream.
    # Batches 0 and 1 come from different workers, epochs 1 and 2 from freshly seeded ones.
    examples = [{k: v[0] for k, v in batch.items() if torch.is_tensor(v)} for epoch in run for batch in epoch]
    offsets = [tuple(position_transform(frames_of(example, s)[0])[1:] for s in range(4)) for example in examples]
    assert len(set(offsets)) == len(offsets) == 8, offsets
    again = _worker_batches(dataset, 11, epochs=2)
    for epoch_a, epoch_b in zip(run, again):
        for a, b in zip(epoch_a, epoch_b):
            assert torch.equal(a["input1"], b["input1"]) and torch.equal(a["target1"], b["target1"])


def _loader_epochs(dataset, workers: int, epochs: int = 2) -> List[List[dict]]:
    torch.manual_seed(5)
    loader = runtime.make_data_loader(dataset, batch_size=2, shuffle=True, drop_last=False, num_workers=workers,
                                      device=torch.device("cpu"))
    assert loader.persistent_workers == (workers > 0)
    return [list(loader) for _ in range(epochs)]


def test_loader_keys_give_the_same_batches_with_any_number_of_persistent_workers(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[16, 16], num_samples_per_example=3)
    without = _loader_epochs(dataset, 0)
    with_workers = _loader_epochs(dataset, 2)
    for epoch_a, epoch_b in zip(without, with_workers):
        for a, b in zip(epoch_a, epoch_b):
            assert a["basename"] == b["basename"] and torch.equal(a["index"], b["index"])
            for key in ("input1", "input5", "target1"):
                assert a[key].dtype == torch.uint8 and torch.equal(a[key], b[key]), key
    # Every epoch draws new crops for the same example.
    first, second = ({int(batch["index"][i, 0]): batch["input1"][i]
                      for batch in epoch for i in range(len(batch["index"]))} for epoch in without)
    assert all(not torch.equal(first[index], second[index]) for index in first)


def test_a_loader_key_seeds_the_sample_and_asks_for_uint8_images(nah):
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[16, 16], num_samples_per_example=3)
    seed(3)
    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    keyed = dataset[LoaderKey(1, 7)]
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])  # the caller's RNGs are untouched
    with seeded_randomness(7, 1):
        plain = dataset[1]
    for key in ("input1", "input3", "target1"):
        assert keyed[key].dtype == torch.uint8 and plain[key].dtype == torch.float32
        assert torch.equal(images_to_float(keyed[key]), plain[key]), key
    assert torch.equal(images_to_float(dataset[LoaderKey(1, 7)]["input1"]), plain["input1"])
    assert not torch.equal(dataset[LoaderKey(1, 8)]["input1"], keyed["input1"])
    jittered = DATASETS.get("GoProNahTrain")(None, root=str(nah), random_crop=[16, 16], random_brightness=True)
    assert jittered[LoaderKey(1, 7)]["input1"].dtype == torch.float32  # photometric jitter needs floats


# ------------------------------------------------------------------------------------ generator
def test_generator_is_deterministic_and_writes_both_layouts(tmp_path):
    kwargs = dict(width=64, height=48, num_frames=3, seed=3, sub_frames=5)
    first = make_gopro_nah(str(tmp_path / "a"), train_sequences=1, test_sequences=1, **kwargs)
    second = make_gopro_nah(str(tmp_path / "b"), train_sequences=1, test_sequences=1, **kwargs)
    other = make_gopro_nah(str(tmp_path / "c"), train_sequences=1, test_sequences=1, **{**kwargs, "seed": 4})
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*.png"))
    assert files == [f"{split}/{seq}/{kind}/{i:06d}.png" for split, seq in
                     (("test", "GOPR9500_00_00"), ("train", "GOPR9000_00_00"))
                     for kind in ("blur", "blur_gamma", "sharp") for i in (1, 2, 3)]
    assert all(filecmp.cmp(first / f, second / f, shallow=False) for f in files)
    assert not all(filecmp.cmp(first / f, other / f, shallow=False) for f in files)
    su_a = make_gopro_su(str(tmp_path / "a"), train_sequences=1, valid_sequences=0, qualitative_sequences=1, **kwargs)
    su_b = make_gopro_su(str(tmp_path / "b"), train_sequences=1, valid_sequences=0, qualitative_sequences=1, **kwargs)
    su_files = sorted(str(p.relative_to(su_a)) for p in su_a.rglob("*.jpg"))
    assert su_files == [f"qualitative_datasets/IMG_8000/input/{i:05d}.jpg" for i in range(3)] + \
        [f"quantitative_datasets/IMG_9000/{kind}/{i:05d}.jpg" for kind in ("GT", "input") for i in range(3)]
    assert all(filecmp.cmp(su_a / f, su_b / f, shallow=False) for f in su_files)
    dataset = DATASETS.get("GoProSuQuantitativeTrain")(None, root=str(su_a))
    assert dataset[0]["input1"].shape == (8, 3, 48, 64)


def test_generated_su_validation_sequences_are_long_enough(tmp_path):
    root = make_gopro_su(str(tmp_path), width=16, height=8, num_frames=2, train_sequences=1, valid_sequences=2,
                         qualitative_sequences=0, sub_frames=1)
    valid = DATASETS.get("GoProSuQuantitativeValid")(None, root=str(root))
    assert len(valid) == 60 and valid[59]["basename"] == ["IMG_0049/00097"]
    assert len(list((root / "quantitative_datasets" / "IMG_0030" / "GT").iterdir())) == 98


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def test_generated_blur_is_significant_and_gamma_blur_is_brighter(tmp_path):
    root = make_gopro_nah(str(tmp_path), width=160, height=96, num_frames=4, train_sequences=2, test_sequences=0)
    values, blur_sum, gamma_sum = [], 0, 0
    for sequence in sorted((root / "train").iterdir()):
        for i in range(1, 5):
            blur, gamma, sharp = (_read(sequence / kind / f"{i:06d}.png") for kind in ("blur", "blur_gamma", "sharp"))
            values.append(psnr(blur.astype(np.uint8), sharp.astype(np.uint8)))
            # A power mean with exponent 2.2 is never below the arithmetic mean (up to rounding).
            assert (gamma - blur).min() >= -1
            blur_sum, gamma_sum = blur_sum + blur.sum(), gamma_sum + gamma.sum()
        assert not np.array_equal(_read(sequence / "sharp" / "000001.png"), _read(sequence / "sharp" / "000004.png"))
    assert 22.0 <= float(np.mean(values)) <= 34.0, values
    assert gamma_sum > blur_sum * 1.005


def test_default_test_sequences_are_blurred_like_gopro(tmp_path):
    # One test sequence per photograph at the demo's frame size and the default motion and sub-frames.
    # GOPRO_Large's blurred test frames score about 25-29 dB against sharp; these 3-frame sequences get
    # 1-2 dB of leeway. Before PHOTO_MOTION, chelsea and rocket scored 37.6 and 39.7 dB (almost sharp).
    root = make_gopro_nah(str(tmp_path), width=256, height=144, num_frames=3, train_sequences=0, test_sequences=5)
    values = []
    for sequence in sorted((root / "test").iterdir()):
        values.append(float(np.mean([psnr(_read(sequence / "blur" / f"{i:06d}.png").astype(np.uint8),
                                          _read(sequence / "sharp" / f"{i:06d}.png").astype(np.uint8))
                                     for i in (1, 2, 3)])))
    assert all(24.0 <= value <= 31.0 for value in values), values
    assert max(values) - min(values) < 6.0, values  # no photograph is far sharper than the others


def test_one_sub_frame_means_no_blur(tmp_path):
    root = make_gopro_nah(str(tmp_path), width=32, height=24, num_frames=2, train_sequences=1, test_sequences=0,
                          sub_frames=1)
    for i in (1, 2):
        files = [root / "train" / "GOPR9000_00_00" / kind / f"{i:06d}.png" for kind in ("blur", "blur_gamma", "sharp")]
        np.testing.assert_array_equal(_read(files[0]), _read(files[2]))
        assert (np.abs(_read(files[1]) - _read(files[2])) <= 1).all()


def test_generator_command_line(tmp_path, capsys):
    generator_main(["--out", str(tmp_path), "--width", "32", "--height", "16", "--num_frames", "2",
                    "--train_sequences", "1", "--test_sequences", "1", "--test_frames", "3", "--layout", "nah"])
    assert len(list((tmp_path / "GOPRO_Large" / "test" / "GOPR9500_00_00" / "sharp").iterdir())) == 3
    assert len(list((tmp_path / "GOPRO_Large" / "train" / "GOPR9000_00_00" / "blur").iterdir())) == 2
    assert not (tmp_path / "DeepVideoDeblurring_Dataset").exists()
    with pytest.raises(SystemExit):
        generator_main(["--out", str(tmp_path), "--width", "30", "--height", "16"])
    assert "width and height must be positive multiples of 8" in capsys.readouterr().err


def test_every_registered_dataset_is_a_class_statement_of_its_module():
    """`grep -n "class GoProNahTrain"` finds every registered dataset: none is made at run time by type()."""
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        source = Path(inspect.getsourcefile(cls)).read_text(encoding="utf-8")
        assert f"\nclass {name}(" in source, name
        assert cls.__name__ == name and cls.__module__.startswith("datasets.")


def test_a_split_class_has_its_splits_defaults_and_forwards_them():
    from datasets.gopro_nah import GoProNah, GoProNahGammaTest, GoProNahTrain

    train = inspect.signature(GoProNahTrain).parameters
    assert [train[n].default for n in ("gamma_corrected_data", "random_flips", "random_scales_min")] == [False, True,
                                                                                                          0.25]
    gamma = inspect.signature(GoProNahGammaTest).parameters
    assert [gamma[n].default for n in ("gamma_corrected_data", "random_flips", "num_samples_per_example")] == [
        True, False, 1]
    assert GoProNahTrain.__mro__[1] is GoProNah and GoProNahGammaTest.__mro__[1] is GoProNah
    assert GoProNahTrain.__doc__.startswith("GOPRO_Large training split;") and "\nArgs:\n    root: " in (
        GoProNahTrain.__doc__)
