"""PairedFramesTrain/Test (datasets/paired_frames.py): folder templates, pairing, flags, errors, a main.py run."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets import DATASETS
from tests.helpers import run_main
from utils.records import read_csv_rows

W, H = 24, 16


def write_frames(folder: Path, codes, extension: str = ".png") -> None:
    """One uniform frame per code (all channels = code), named 00000000<extension>, 00000001<extension>, ..."""
    folder.mkdir(parents=True)
    for i, code in enumerate(codes):
        Image.fromarray(np.full((H, W, 3), code, np.uint8)).save(folder / f"{i:08d}{extension}")


def write_reds(root: Path, split: str, lengths) -> Path:
    """`<root>/<split>_blur/<seq>` and `<root>/<split>_sharp/<seq>`: blurry frame i of sequence s has code
    10*s + i, its sharp frame 100 + 10*s + i."""
    for s, length in enumerate(lengths):
        write_frames(root / f"{split}_blur" / f"{s:03d}", [10 * s + i for i in range(length)])
        write_frames(root / f"{split}_sharp" / f"{s:03d}", [100 + 10 * s + i for i in range(length)])
    return root


def codes(example, keys):
    return [int(example[key][0, 0, 0, 0] * 255 + 0.5) for key in keys]


def test_default_templates_pair_blurry_and_sharp_frames(tmp_path):
    root = write_reds(tmp_path / "reds", "train", [4, 3])
    dataset = DATASETS.get("PairedFramesTrain")(None, root=str(root), sequence_length=3, random_flips=False,
                                                random_rotate=False, random_reverse=False,
                                                num_samples_per_example=2, random_crop=[8, 8])
    assert len(dataset) == 7 and dataset.dstype == "train"
    example = dataset[5]  # sequence 001, frame 1: inputs 0, 1, 2
    assert codes(example, ["input1", "input2", "input3", "target1"]) == [10, 11, 12, 111]
    assert example["input1"].shape == (2, 3, 8, 8) and example["basename"] == ["001/00000001"] * 2
    assert codes(dataset[0], ["input1", "input2", "input3", "target1"]) == [0, 0, 1, 100]  # ends replicated


def test_split_flag_and_test_defaults(tmp_path):
    root = write_reds(tmp_path / "reds", "val", [3])
    with pytest.raises(FileNotFoundError, match="folder '.*test_blur' does not exist \\(split='test'\\)"):
        DATASETS.get("PairedFramesTest")(None, root=str(root))
    dataset = DATASETS.get("PairedFramesTest")(None, root=str(root), split="val")
    assert len(dataset) == 3 and dataset.sequence_length == 5 and dataset.num_samples_per_example == 1
    example = dataset[1]
    assert example["input1"].shape == (1, 3, H, W)  # full frames, no augmentation
    assert codes(example, [f"input{i}" for i in range(1, 6)] + ["target1"]) == [0, 0, 1, 2, 2, 101]


def test_templates_with_the_sequence_in_the_middle(tmp_path):
    """A BSD-like layout: <root>/<split>/<seq>/{Blur,Sharp}/RGB/*.jpg."""
    root = tmp_path / "bsd"
    write_frames(root / "valid" / "seqA" / "Blur" / "RGB", [40, 80, 120], ".jpg")
    write_frames(root / "valid" / "seqA" / "Sharp" / "RGB", [200, 160, 240], ".jpg")
    dataset = DATASETS.get("PairedFramesTest")(None, root=str(root), split="valid", sequence_length=1,
                                               blur_template="{split}/{seq}/Blur/RGB",
                                               sharp_template="{split}/{seq}/Sharp/RGB", frame_extension=".jpg")
    assert [codes(dataset[i], ["input1", "target1"]) for i in range(3)] == [[40, 200], [80, 160], [120, 240]]


@pytest.mark.parametrize("flags,error,message", [
    ({"blur_template": "{split}_blur"}, ValueError,
     re.escape("blur_template='{split}_blur' must be a relative path with {seq} as one whole folder name")),
    ({"sharp_template": "{split}_sharp/x{seq}"}, ValueError, re.escape("sharp_template='{split}_sharp/x{seq}' must")),
    ({"blur_template": "/abs/{seq}"}, ValueError, re.escape("blur_template='/abs/{seq}' must be a relative path")),
    ({"blur_template": "{mode}/{seq}"}, ValueError, re.escape("no placeholder but {split} and {seq}")),
    ({"blur_template": "{split/{seq}"}, ValueError, re.escape("blur_template='{split/{seq}' must be")),
    ({"sharp_template": "{split}_gt/{seq}"}, FileNotFoundError, "missing frame folder '.*train_gt/000'"),
    ({"sharp_template": "{split}_blur/{seq}"}, ValueError, re.escape("both '{split}_blur/{seq}': the targets would")),
    ({"frame_extension": ".jpg"}, ValueError, "frame folder '.*train_blur/000' holds no '\\*.jpg' files"),
])
def test_bad_templates_are_one_line_errors(tmp_path, flags, error, message):
    root = write_reds(tmp_path / "reds", "train", [2])
    with pytest.raises(error, match=message):
        DATASETS.get("PairedFramesTrain")(None, root=str(root), **flags)


def test_frame_cache_and_augmentation_flags_are_the_gopro_classes(tmp_path):
    root = write_reds(tmp_path / "reds", "train", [3])
    dataset = DATASETS.get("PairedFramesTrain")(None, root=str(root), cache_dir=str(tmp_path / "cache"),
                                                random_crop=[8, 8])
    example = dataset[1]
    assert example["input1"].shape == (8, 3, 8, 8)  # GoProNahTrain's 8 samples per example
    # The window 0, 0, 1, 2, 2 and the sharp frame 1: 4 files, each decoded and cached once.
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 4
    with pytest.raises(ValueError, match="cache_dir '.*' lies inside the dataset tree"):
        DATASETS.get("PairedFramesTrain")(None, root=str(root), cache_dir=str(root / "cache"))


def test_sharp_frames_must_match_the_blurry_ones(tmp_path):
    root = write_reds(tmp_path / "reds", "train", [3])
    (root / "train_sharp" / "000" / "00000002.png").rename(root / "train_sharp" / "000" / "00000009.png")
    with pytest.raises(ValueError, match="input frame '.*00000002.png' has no ground truth of the same name"):
        DATASETS.get("PairedFramesTrain")(None, root=str(root))


@pytest.fixture()
def paired_root(nah_root, tmp_path) -> Path:
    """The session's generated GOPRO_Large frames rearranged to <root>/<split>_{blur,sharp}/<seq>."""
    root = tmp_path / "paired"
    for split in ("train", "test"):
        for sequence in sorted((Path(nah_root) / split).iterdir()):
            for kind in ("blur", "sharp"):
                shutil.copytree(sequence / kind, root / f"{split}_{kind}" / sequence.name)
    return root



@pytest.mark.slow  # about 3 s, 8 s as the first main.py run of a process
def test_main_trains_and_validates_on_a_paired_layout(paired_root, tiny_deblur, tmp_path):
    save = tmp_path / "run"
    result = run_main(
        "--model=TinyDeblur", "--model_channels=4", "--loss=DBNLoss", "--optimizer=Adam", "--optimizer_lr=0.001",
        "--batch_size=2", "--total_epochs=1", "--cuda=false", "--proctitle=test", f"--save={save}",
        "--training_dataset=PairedFramesTrain", f"--training_dataset_root={paired_root}",
        "--training_dataset_random_crop=[32, 32]", "--training_dataset_num_samples_per_example=2",
        "--training_dataset_num_examples=2", "--training_dataset_num_workers=0",
        "--validation_dataset=PairedFramesTest", f"--validation_dataset_root={paired_root}",
        "--validation_dataset_num_examples=2", "--validation_dataset_num_workers=0",
        "--validation_keys=[psnr]", "--validation_modes=[max]")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((save / "args.json").read_text())["training_dataset_blur_template"] == "{split}_blur/{seq}"
    assert [r["epoch"] for r in read_csv_rows(str(save / "csv" / "PairedFramesTrain_training_losses.csv"))] == ["1"]
    rows = read_csv_rows(str(save / "csv" / "PairedFramesTest_evaluation_losses.csv"))
    # TinyDeblur starts as the identity (zero residual): one step changes the blurry frames' PSNR a little only.
    assert len(rows) == 1 and 20.0 < float(rows[0]["psnr"]) < 60.0
    assert "PairedFramesTrain (train): 2 sequences, 2 examples" in (save / "logbook.txt").read_text()


def _get_data(*argv):
    import contextlib
    import io

    from scripts import get_data

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = get_data.main(list(argv))
    return code, stdout.getvalue(), stderr.getvalue()


def test_get_data_verifies_a_paired_layout_as_the_dataset_reads_it(tmp_path):
    root = write_reds(tmp_path / "reds", "train", [4, 3])
    write_reds(root, "test", [2])
    code, out, err = _get_data("paired_frames", "--root", str(root), "--verify", "--deep")
    assert code == 0, err
    assert re.search(r"\ntrain +2 +7 +-\ntest +1 +2 +-\n", "\n" + out), out
    assert "--deep: decoded 18 frames, all readable" in out  # (7 + 2) blurry and as many sharp frames
    assert out.strip().endswith(f"{root}: has the layout PairedFramesTrain/PairedFramesTest read with these templates")
    # A BSD-like layout through the template flags, one split.
    bsd = tmp_path / "bsd"
    write_frames(bsd / "valid" / "seq1" / "Blur" / "RGB", [1, 2])
    write_frames(bsd / "valid" / "seq1" / "Sharp" / "RGB", [3, 4])
    code, out, err = _get_data("paired_frames", "--root", str(bsd), "--verify", "--split", "valid", "--blur_template",
                               "{split}/{seq}/Blur/RGB", "--sharp_template", "{split}/{seq}/Sharp/RGB")
    assert code == 0 and re.search(r"\nvalid +1 +2 +-", out), err
    # A missing sharp frame: one line naming the split and the frame; no download without --verify.
    (root / "test_sharp" / "000" / "00000001.png").unlink()
    code, out, err = _get_data("paired_frames", "--root", str(root), "--verify")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("get_data.py: error: split 'test': sequence '000': 2 frames in ") and "but 1 in" in err
    code, _, err = _get_data("paired_frames", "--root", str(root))
    assert code == 2 and "nothing to download: add --verify" in err
