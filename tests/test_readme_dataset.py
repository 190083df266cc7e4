"""The README's "Writing a dataset" example, executed: the plain torch Dataset it shows trains and validates
through main.py (with examples/drop_in's TinyDeblur, which costs a fraction of DBN's time)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from datasets import DATASETS
from tests.helpers import REPO, run_main
from utils.records import read_csv_rows


def readme_dataset_code() -> str:
    """The python block of the README's section "Writing a dataset"."""
    section = (REPO / "README.md").read_text().split("## Writing a dataset\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture()
def readme_dataset():
    """The README's dataset class, registered (by its own decorator) for this test only."""
    namespace = {"__name__": "readme_dataset"}
    exec(compile(readme_dataset_code(), "README.md", "exec"), namespace)  # noqa: S102 -- the README's own example
    yield DATASETS.get("BlurrySharpFolders")
    DATASETS.unregister("BlurrySharpFolders")



@pytest.fixture()
def one_video(nah_root, tmp_path) -> Path:
    """A generated GOPRO_Large sequence (6 frames, 64x48) as <root>/blurry/*.png and <root>/sharp/*.png."""
    sequence = next((Path(nah_root) / "train").iterdir())
    shutil.copytree(sequence / "blur", tmp_path / "video" / "blurry")
    shutil.copytree(sequence / "sharp", tmp_path / "video" / "sharp")
    return tmp_path / "video"


def test_the_readme_example_returns_what_the_section_says(readme_dataset, one_video):
    dataset = readme_dataset(root=str(one_video), sequence_length=3)
    example = dataset[0]
    assert len(dataset) == 6 and sorted(example) == ["basename", "index", "input1", "input2", "input3", "target1"]
    assert example["input1"].dtype == torch.uint8 and example["input1"].shape == (3, 48, 64)
    assert torch.equal(example["input1"], example["input2"])  # the first frame is replicated
    assert not torch.equal(example["input2"], example["target1"])
    assert (example["index"], example["basename"]) == (0, "000001")


@pytest.mark.slow  # about 3 s, 8 s as the first main.py run of a process
def test_the_readme_example_trains_and_validates_through_main(readme_dataset, tiny_deblur, one_video, tmp_path):
    save = tmp_path / "run"
    flags = [f"--training_dataset_root={one_video}", "--training_dataset_sequence_length=3",
             f"--validation_dataset_root={one_video}", "--validation_dataset_sequence_length=3"]
    result = run_main("--model=TinyDeblur", "--model_channels=4", "--loss=DBNLoss", "--optimizer=Adam",
                      "--optimizer_lr=0.001", "--batch_size=3", "--total_epochs=2", "--cuda=false", "--proctitle=test",
                      f"--save={save}", "--training_dataset=BlurrySharpFolders",
                      "--validation_dataset=BlurrySharpFolders", "--validation_keys=[psnr]",
                      "--validation_modes=[max]", *flags)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((save / "args.json").read_text())["training_dataset_sequence_length"] == 3
    training = read_csv_rows(str(save / "csv" / "BlurrySharpFolders_training_losses.csv"))
    validation = read_csv_rows(str(save / "csv" / "BlurrySharpFolders_evaluation_losses.csv"))
    assert [row["epoch"] for row in training] == ["1", "2"] and len(validation) == 2
    # TinyDeblur starts as the identity (zero residual): the first validation scores the blurry frames,
    # whose PSNR against the sharp ones is far from 0 and far from perfect.
    assert 20.0 < float(validation[0]["psnr"]) < 60.0
