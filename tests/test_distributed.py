"""torchrun with two CPU processes (gloo): gradients synchronised, records written once by rank 0."""
import os
import re
import subprocess
import sys

import pytest
import torch

from utils.records import read_csv_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_two_process_training_ends_with_identical_weights(nah_root, tmp_path):
    save = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(REPO, "main.py"), "--model=DBN", "--loss=DBNLoss", "--optimizer=Adam", "--batch_size=1",
               "--total_epochs=2", "--training_dataset=GoProNahTrain", f"--training_dataset_root={nah_root}",
               "--training_dataset_random_crop=[32, 32]", "--training_dataset_num_samples_per_example=2",
               "--training_dataset_num_workers=0", "--training_dataset_num_examples=4",
               "--validation_dataset=GoProNahTest", f"--validation_dataset_root={nah_root}",
               "--validation_dataset_num_workers=0", "--validation_dataset_num_examples=3",
               "--validation_keys=psnr", "--validation_modes=max", f"--save={save}", "--cuda=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    logbook = (save / "logbook.txt").read_text()
    sums = re.findall(r"parameters identical on all 2 ranks \(sum (\S+)\)", logbook)
    assert len(sums) == 1, output[-4000:]
    assert logbook.count("==> Epoch 2/2") == 1 and "rank 0 of 2" in logbook
    rows = read_csv_rows(str(save / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # written once, not once per rank
    rows = read_csv_rows(str(save / "csv" / "GoProNahTrain_training_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    checkpoint = torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)
    assert all(k.startswith("model.dbn_net.") for k in checkpoint["state_dict"])  # no DDP "module." prefix
    parameters = sum(float(v.double().sum()) for k, v in checkpoint["state_dict"].items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert abs(parameters - float(sums[0])) <= 1e-9 * max(1.0, abs(parameters))
