"""scripts/simple/: the original's two MNIST launchers (addendum §20) as configurations, their DRY_RUN, and the
validation-scheduler configuration run end to end on tiny generated MNIST files."""
import os
import subprocess
from pathlib import Path

import pytest
import torch

import commandline
from tests.helpers import run_main
from tools.synthetic_mnist import make_mnist
from utils.records import read_csv_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["scripts/simple/train_mnist_lenet.sh", "scripts/simple/train_mnist_validation_scheduler.sh"]
BIAS_GROUP = "--optimizer_group={'params': '*bias*', 'lr': 0.01, 'weight_decay': 0}"
# The original scripts' flags (addendum §20.1), MNIST_HOME = $DATASETS_HOME/mnist.
COMMON = ["--batch_size=64", "--checkpoint=None", "--loss=ClassificationLoss", "--model=LeNet", "--optimizer=Adam",
          BIAS_GROUP, "--prefix=simple", "--loshchilov_weight_decay=0.01", "--total_epochs=20",
          "--training_dataset=MnistTrain", "--training_dataset_root=<DATA>/mnist", "--training_key=xe",
          "--validation_dataset=MnistValid", "--validation_dataset_root=<DATA>/mnist", "--validation_keys=top1,xe",
          "--validation_modes=max,min"]
RELEASED = {
    SCRIPTS[0]: COMMON + ["--clip_grad=0", "--logging_loss_graph=True", "--logging_model_graph=True",
                          "--lr_scheduler=MultiStepLR", "--lr_scheduler_gamma=0.5",
                          "--lr_scheduler_milestones=[5, 10, 15]", "--optimizer_lr=1e-4"],
    SCRIPTS[1]: COMMON + ["--lr_scheduler=ReduceLROnPlateau", "--lr_scheduler_mode=max", "--lr_scheduler_patience=2",
                          "--param_scheduler_group={'params': '*peter*', 'scheduler': 'ExponentialLR', "
                          "'init': 100.0, 'gamma': 0.7}",
                          "--optimizer_lr=1e-2", "--optimizer_group={'params': '*peter*', 'lr': 0.0}"],
}


def _config(script):
    return os.path.join(REPO, "configs", script[len("scripts/"):-len(".sh")] + ".json")


@pytest.mark.parametrize("script", SCRIPTS)
def test_configs_give_the_original_scripts_command_line(monkeypatch, script):
    monkeypatch.setenv("DATASETS_HOME", "/data")
    assert f"launch {script[len('scripts/'):-len('.sh')]} \"$TIME-simple-LeNet\"" in (
        Path(REPO, script).read_text())
    released = [flag.replace("<DATA>", "/data") for flag in RELEASED[script]] + ["--save=/x/T-simple-LeNet"]
    ours = commandline.parse_arguments(commandline.expand_config([f"--config={_config(script)}",
                                                                  "--save=/x/T-simple-LeNet"]))
    assert ours == commandline.parse_arguments(released)


@pytest.mark.slow  # a bash launcher starting Python: several seconds on a busy 2-core machine
@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_parses_and_names_the_download(tmp_path, script):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "DRY_RUN": "1", "TIME": "T",
           "DATASETS_HOME": str(tmp_path / "Datasets"), "EXPERIMENTS_HOME": str(tmp_path / "Experiments")}
    if "DEBLUR_DEVIL_VENV" in os.environ:
        env["DEBLUR_DEVIL_VENV"] = os.environ["DEBLUR_DEVIL_VENV"]
    completed = subprocess.run(["bash", os.path.join(REPO, script), "--total_epochs=3"], env=env, cwd=str(tmp_path),
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert f"--save={tmp_path}/Experiments/T-simple-LeNet" in completed.stdout
    assert completed.stderr.count(f"get it with `python scripts/get_data.py mnist --root {tmp_path}/Datasets`") == 2


@pytest.mark.slow
def test_the_validation_scheduler_configuration_runs_end_to_end(tmp_path, monkeypatch):
    """ReduceLROnPlateau (max), the parameter schedule on LeNet's `peter`, the optimizer groups and Loshchilov
    decay together, through main.py's command line, on 48 + 16 generated digits for 2 epochs."""
    make_mnist(str(tmp_path / "Datasets"), train=48, test=16)
    monkeypatch.setenv("DATASETS_HOME", str(tmp_path / "Datasets"))
    save = tmp_path / "run"
    result = run_main(f"--config={_config(SCRIPTS[1])}", f"--save={save}", "--total_epochs=2", "--batch_size=16",
                      "--training_dataset_num_workers=0", "--validation_dataset_num_workers=0", "--cuda=False")
    assert result.returncode == 0, result.stderr
    checkpoint = torch.load(save / "checkpoint_latest_.ckpt", map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    assert checkpoint["epoch"] == 2 and list(checkpoint)[:4] == ["xe", "top1", "top2", "top3"]
    assert state["model.peter"].item() == pytest.approx(70.0)  # 100 in epoch 1, 100 * 0.7 in epoch 2
    # Unlike the original's (empty) groups: biases train at 0.01, `peter` is held by a group with lr 0.
    groups = checkpoint["optimizer"]["param_groups"]
    assert [(len(group["params"]), group["lr"]) for group in groups] == [(4, 0.01), (1, 0.0), (4, 0.01)]
    assert state["model.conv1.bias"].abs().sum() > 0  # initialised to 0
    assert checkpoint["lr_scheduler"]["mode"] == "max"
    rows = read_csv_rows(str(save / "csv" / "MnistValid_evaluation_losses.csv"))
    assert len(rows) == 2 and {"top1", "xe"} <= set(rows[0])
    assert (save / "checkpoint_best_top1.ckpt").is_file() and (save / "checkpoint_best_xe.ckpt").is_file()
