"""GoPro training samples are the original's, draw for draw (spec §22 of the classification addendum).

`replay` below is an independent re-implementation of the original's `__getitem__` from the spec's draw list:
PIL images, PIL crops/flips/rotations, numpy and torch calls in the listed order, nothing of `datasets`. Each
case seeds python's `random`, numpy's and torch's global RNGs, draws one example from the dataset, seeds them
again and replays it: the tensors must be bit-identical and the three generators must end in the same state
(the same number of draws of each kind).
"""
import inspect
import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF  # noqa: N812
from PIL import Image

from datasets import DATASETS
from datasets.sampling import LoaderKey, seeded_randomness

H, W = 48, 64  # the frames of the spec's verification runs
WEAK_SCALES = (1.0 / 4.0, 1.0 / 3.0, 1.0 / 2.0)
NAH_SEQUENCES = {"GOPR0001": 4, "GOPR0002": 3}
SU_SEQUENCES = {"IMG_9000": 4, "IMG_9001": 3}


def random_frames(count: int, seed: int) -> List[np.ndarray]:
    """`count` HxWx3 uint8 frames of random pixels (every flip, crop and rotation shows)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def draws_nah(tmp_path_factory) -> Path:
    """A GOPRO_Large training split of random PNG frames: GOPR0001 (4 frames), GOPR0002 (3)."""
    root = tmp_path_factory.mktemp("draws") / "GOPRO_Large"
    for number, (name, length) in enumerate(NAH_SEQUENCES.items()):
        for folder, seed in (("blur", number), ("sharp", 10 + number)):
            frames = random_frames(length, seed)
            (root / "train" / name / folder).mkdir(parents=True)
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(root / "train" / name / folder / f"{i + 1:06d}.png")
    return root


@pytest.fixture(scope="module")
def draws_su(tmp_path_factory) -> Path:
    """Su's training sequences of random JPEG frames: IMG_9000 (4 frames), IMG_9001 (3)."""
    root = tmp_path_factory.mktemp("draws_su") / "DeepVideoDeblurring_Dataset"
    for number, (name, length) in enumerate(SU_SEQUENCES.items()):
        for folder, seed in (("input", 20 + number), ("GT", 30 + number)):
            frames = random_frames(length, seed)
            (root / "quantitative_datasets" / name / folder).mkdir(parents=True)
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(root / "quantitative_datasets" / name / folder / f"{i:05d}.jpg")
    return root


def window_files(root: Path, layout: str, index: int, length: int) -> Tuple[List[Path], Path]:
    """Input files (clamped window, spec §5.2) and ground truth of training example `index`."""
    if layout == "nah":
        folders = [(root / "train" / name / "blur", root / "train" / name / "sharp") for name in sorted(NAH_SEQUENCES)]
        pattern = "*.png"
    else:
        folders = [(root / "quantitative_datasets" / name / "input", root / "quantitative_datasets" / name / "GT")
                   for name in sorted(SU_SEQUENCES)]
        pattern = "*.jpg"
    examples = [(blur, sharp, centre) for blur, sharp in folders for centre in range(len(list(blur.glob(pattern))))]
    blur, sharp, centre = examples[index]
    inputs, targets = sorted(blur.glob(pattern)), sorted(sharp.glob(pattern))
    window = [min(max(i, 0), len(inputs) - 1) for i in range(centre - length // 2, centre + length // 2 + 1)]
    return [inputs[i] for i in window], targets[centre]


def replay(inputs: Sequence[np.ndarray], target: np.ndarray, flags: Dict, num_samples: int,
           scales_min: float) -> Dict[str, torch.Tensor]:
    """The original's example from spec §22.2's draw list, applied as §22.3/§22.4 say."""
    inputs = list(inputs)
    if flags.get("random_reverse") and np.random.rand() < 0.5:
        inputs = inputs[::-1]
    raw = [Image.fromarray(a) for a in inputs + [target]]
    num_inputs = len(inputs)
    samples = []
    for _ in range(num_samples):
        images = list(raw)
        crop = flags.get("random_crop", (-1, -1))
        if max(crop) > 0:
            crop_h, crop_w = crop
            width, height = images[0].size
            if flags.get("random_scales") in ("weak", "strong"):
                scale = random.choice(WEAK_SCALES) if flags["random_scales"] == "weak" else \
                    random.uniform(scales_min, 1.0)
                width, height = int(round(width * scale)), int(round(height * scale))
                images = [image.resize((width, height), Image.BICUBIC) for image in images]
            y0 = np.random.randint(0, height - crop_h)
            x0 = np.random.randint(0, width - crop_w)
            images = [image.crop((x0, y0, x0 + crop_w, y0 + crop_h)) for image in images]
        if flags.get("random_multiplicative_colors"):
            factors = np.random.uniform(0.5, 2.0, size=(1, 1, 3)).astype(np.float32)
            stacked = np.concatenate([np.asarray(image) for image in images], axis=0).astype(np.float32) / 255.0
            stacked = (np.clip(stacked * factors, 0.0, 1.0) * 255.0).astype(np.uint8)
            images = [Image.fromarray(part) for part in np.split(stacked, len(images), axis=0)]
        if flags.get("random_flips"):
            if random.random() < 0.5:
                images = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in images]
            if random.random() < 0.5:
                images = [image.transpose(Image.Transpose.FLIP_TOP_BOTTOM) for image in images]
        if flags.get("random_rotate"):
            k = random.choice([0, 1, 2, 3])
            angle = random.uniform(90 * k, 90 * k)  # the hidden draw
            images = [image.rotate(angle, Image.NEAREST, expand=False) for image in images]
        height = images[0].size[1]
        tall = torch.cat([TF.to_tensor(image) for image in images], dim=1)
        ops = []
        if flags.get("random_brightness"):
            b = random.uniform(0.5, 1.5)
            ops.append(lambda x, b=b: torch.clamp(x * b, 0.0, 1.0))
        if flags.get("random_contrast"):
            c = random.uniform(0.5, 1.5)
            ops.append(lambda x, c=c: torch.clamp(c * (x - 0.5) + 0.5, 0.0, 1.0))
        if flags.get("random_saturation"):
            s = random.uniform(0.5, 1.5)
            ops.append(lambda x, s=s: TF.to_tensor(TF.adjust_saturation(TF.to_pil_image(x), s)))
        if flags.get("random_hue"):
            u = random.uniform(-0.5, 0.5)
            ops.append(lambda x, u=u: TF.to_tensor(TF.adjust_hue(TF.to_pil_image(x), u)))
        random.shuffle(ops)
        for op in ops:
            tall = op(tall)
        if flags.get("random_channel_permutation"):
            tall = tall[list(np.random.permutation(range(3)))]
        parts = list(torch.split(tall, height, dim=1))
        if flags.get("random_noise"):
            sigma = np.random.uniform(0.0, 0.04)
            noisy = torch.cat(parts[:num_inputs], dim=1)
            noisy = torch.clamp(noisy + torch.zeros(noisy.shape).normal_(0.0, sigma), 0.0, 1.0)
            parts[:num_inputs] = torch.split(noisy, height, dim=1)
        samples.append(parts)
    example = {f"input{i + 1}": torch.stack([parts[i] for parts in samples]) for i in range(num_inputs)}
    example["target1"] = torch.stack([parts[num_inputs] for parts in samples])
    return example


def seed_all(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def rng_states() -> Tuple:
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return random.getstate(), keys.tolist(), position, has_gauss, gauss, torch.get_rng_state().tolist()


OFF = {"random_flips": False, "random_rotate": False, "random_reverse": False}
EVERYTHING = {"random_flips": True, "random_rotate": True, "random_reverse": True, "random_multiplicative_colors": True,
              "random_brightness": True, "random_contrast": True, "random_saturation": True, "random_hue": True,
              "random_channel_permutation": True, "random_noise": True}
# (id, dataset, layout, flags); sequence_length 3 and 2 samples unless the flags say otherwise.
CASES = [
    ("nah_defaults", "GoProNahTrain", "nah", {"random_crop": [32, 32]}),
    ("crop", "GoProNahTrain", "nah", {**OFF, "random_crop": [20, 28]}),
    ("crop_weak", "GoProNahTrain", "nah", {**OFF, "random_crop": [8, 12], "random_scales": "weak"}),
    ("crop_strong", "GoProNahTrain", "nah", {**OFF, "random_crop": [16, 16], "random_scales": "strong",
                                             "random_scales_min": 0.5}),
    ("flips", "GoProNahTrain", "nah", {**OFF, "random_flips": True}),
    ("rotate_square", "GoProNahTrain", "nah", {**OFF, "random_crop": [16, 16], "random_rotate": True}),
    ("rotate_non_square", "GoProNahTrain", "nah", {**OFF, "random_crop": [16, 24], "random_rotate": True}),
    ("rotate_full_frames", "GoProNahTrain", "nah", {**OFF, "random_rotate": True}),
    ("reverse", "GoProNahTrain", "nah", {**OFF, "random_reverse": True, "sequence_length": 5}),
    ("multiplicative_colors", "GoProNahTrain", "nah", {**OFF, "random_multiplicative_colors": True}),
    ("brightness", "GoProNahTrain", "nah", {**OFF, "random_brightness": True}),
    ("contrast", "GoProNahTrain", "nah", {**OFF, "random_contrast": True}),
    ("saturation", "GoProNahTrain", "nah", {**OFF, "random_saturation": True}),
    ("hue", "GoProNahTrain", "nah", {**OFF, "random_hue": True}),
    ("photometric_shuffled", "GoProNahTrain", "nah", {**OFF, "random_brightness": True, "random_contrast": True,
                                                      "random_saturation": True, "random_hue": True}),
    ("channel_permutation", "GoProNahTrain", "nah", {**OFF, "random_channel_permutation": True}),
    ("noise", "GoProNahTrain", "nah", {**OFF, "random_noise": True}),
    ("everything_weak", "GoProNahTrain", "nah", {**EVERYTHING, "random_crop": [8, 12], "random_scales": "weak",
                                                 "num_samples_per_example": 3}),
    ("everything_strong", "GoProNahTrain", "nah", {**EVERYTHING, "random_crop": [16, 16], "random_scales": "strong",
                                                  "random_scales_min": 0.5}),
    # The launch scripts' combination (configs/deblurring/*): square crop, N = 7, 8 samples, default flags.
    ("nah_launch", "GoProNahTrain", "nah", {"random_crop": [16, 16], "sequence_length": 7,
                                            "num_samples_per_example": 8}),
    ("su_launch", "GoProSuQuantitativeTrain", "su", {"random_crop": [16, 16], "sequence_length": 5,
                                                     "num_samples_per_example": 8}),
    ("su_everything_strong", "GoProSuQuantitativeTrain", "su", {**EVERYTHING, "random_crop": [8, 8],
                                                                "random_scales": "strong"}),
]


def make_dataset(name: str, root: Path, flags: Dict):
    kwargs = {"sequence_length": 3, "num_samples_per_example": 2, **flags}
    return DATASETS.get(name)(None, root=str(root), **kwargs)


def effective_flags(name: str, flags: Dict) -> Dict:
    """The class's flag defaults (its signature: what the command line shows) updated by `flags`."""
    parameters = inspect.signature(DATASETS.get(name)).parameters
    return {**{key: p.default for key, p in parameters.items() if key.startswith("random_")}, **flags}


def expected_example(root: Path, layout: str, dataset, index: int, flags: Dict) -> Dict[str, torch.Tensor]:
    """The replayed example `index`; `flags`: every random_* flag of the dataset."""
    files, target = window_files(root, layout, index, dataset.sequence_length)
    frames = [np.asarray(Image.open(path).convert("RGB")) for path in files + [target]]
    # Su's 'strong' scales start at 0.25 whatever the flags (Su has no random_scales_min).
    scales_min = flags.get("random_scales_min", 0.25) if layout == "nah" else 0.25
    return replay(frames[:-1], frames[-1], flags, dataset.num_samples_per_example, scales_min)


@pytest.mark.parametrize("case,name,layout,flags", CASES, ids=[c[0] for c in CASES])
def test_samples_replay_the_originals_draws_bit_for_bit(draws_nah, draws_su, case, name, layout, flags):
    root = draws_nah if layout == "nah" else draws_su
    dataset = make_dataset(name, root, flags)
    for seed, index in ((1234, 0), (7, 5), (31, 3)):
        seed_all(seed)
        example = dataset[index]
        after_dataset = rng_states()
        seed_all(seed)
        expected = expected_example(root, layout, dataset, index, effective_flags(name, flags))
        assert rng_states() == after_dataset, f"seed {seed}: the generators drew differently"
        assert sorted(k for k in example if k.startswith(("input", "target"))) == sorted(expected)
        for key, value in expected.items():
            assert example[key].dtype == torch.float32 and torch.equal(example[key], value), (seed, key)


def test_the_specs_verified_draws(draws_nah):
    """§22.7: seed 1234, example 0, crop 32x32, 2 samples: reversal; (6, 21) v-flip; (12, 20) unflipped; 0 deg."""
    dataset = make_dataset("GoProNahTrain", draws_nah, {"random_crop": [32, 32], "sequence_length": 5})
    seed_all(1234)
    example = dataset[0]
    files, _ = window_files(draws_nah, "nah", 0, 5)  # frames 0, 0, 0, 1, 2 of GOPR0001
    last = np.asarray(Image.open(files[-1]))  # input1 after the reversal
    np.testing.assert_array_equal(np.moveaxis(example["input1"][0].numpy() * 255, 0, -1).round(),
                                  last[6:38, 21:53][::-1])
    np.testing.assert_array_equal(np.moveaxis(example["input1"][1].numpy() * 255, 0, -1).round(),
                                  last[12:44, 20:52])


@pytest.mark.parametrize("case", ["nah_defaults", "everything_strong"])
def test_a_loader_key_draws_the_same_sample_in_its_seeded_context(draws_nah, case):
    _, name, layout, flags = next(c for c in CASES if c[0] == case)
    dataset = make_dataset(name, draws_nah, flags)
    for seed, index in ((3, 1), (2 ** 61, 6)):
        keyed = dataset[LoaderKey(index, seed)]
        with seeded_randomness(seed, index):
            expected = expected_example(draws_nah, layout, dataset, index, effective_flags(name, flags))
        for key, value in expected.items():
            assert torch.equal(keyed[key].float().div(255) if keyed[key].dtype == torch.uint8 else keyed[key],
                               value), (seed, key)


def test_crop_offsets_are_exactly_zero_to_size_minus_crop_minus_one(tmp_path):
    """numpy's randint(0, H - h) never gives the last offset H - h; every other one comes."""
    height, width, crop_h, crop_w = 12, 16, 8, 10
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.stack([np.full_like(xs, 50), xs, ys], axis=-1).astype(np.uint8)  # green = x, blue = y
    for folder in ("blur", "sharp"):
        (tmp_path / "train" / "S" / folder).mkdir(parents=True)
        Image.fromarray(frame).save(tmp_path / "train" / "S" / folder / "000001.png")
    dataset = DATASETS.get("GoProNahTrain")(None, root=str(tmp_path), random_crop=[crop_h, crop_w],
                                            num_samples_per_example=8, **OFF)
    offsets = set()
    for seed in range(40):
        seed_all(seed)
        target = dataset[0]["target1"]
        offsets |= {(round(float(t[2, 0, 0]) * 255), round(float(t[1, 0, 0]) * 255)) for t in target}
    assert offsets == {(y, x) for y in range(height - crop_h) for x in range(width - crop_w)}


@pytest.mark.parametrize("crop", [[H, W], [H - 1, W - 1], [H, W - 1]])
def test_a_crop_that_fills_the_frame_or_leaves_one_offset_draws_nothing(draws_nah, crop):
    """H - h = 1 is randint(0, 1): always 0, no draw. H = h crashed the original; here it is offset 0, no draw."""
    dataset = make_dataset("GoProNahTrain", draws_nah, {**OFF, "random_crop": crop})
    seed_all(5)
    before = rng_states()
    example = dataset[0]
    assert rng_states() == before
    frame = np.asarray(Image.open(window_files(draws_nah, "nah", 0, 3)[0][0]))
    np.testing.assert_array_equal(np.moveaxis(example["input1"][0].numpy() * 255, 0, -1).round(),
                                  frame[:crop[0], :crop[1]])
