"""torchrun with two CPU processes (gloo): gradients synchronised, records written once by rank 0."""
import datetime
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import run_main
from utils.records import read_csv_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_three_process_training_ends_with_identical_weights(nah_root, tmp_path):
    """Three ranks, two validation examples: rank 2 validates nothing and must not hang (DDP's forward
    broadcast used to wait for it until the timeout), and ranks 0 and 1 evaluate with rank 0's BatchNorm
    statistics, so the validation equals a one-process evaluation of the checkpoint."""
    save = tmp_path / "ddp"
    validation = ["--validation_dataset=GoProNahTest", f"--validation_dataset_root={nah_root}",
                  "--validation_dataset_num_workers=0", "--validation_dataset_num_examples=2",
                  "--validation_keys=psnr", "--validation_modes=max", "--loss=DBNLoss", "--cuda=false",
                  "--validation_metrics=psnr,psnr_y"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3",
               os.path.join(REPO, "main.py"), "--model=DBN", "--optimizer=Adam", "--batch_size=1",
               "--total_epochs=2", "--training_dataset=GoProNahTrain", f"--training_dataset_root={nah_root}",
               "--training_dataset_random_crop=[32, 32]", "--training_dataset_num_samples_per_example=2",
               "--training_dataset_num_workers=0", "--training_dataset_num_examples=3",
               "--distributed_timeout_minutes=2", f"--save={save}", *validation]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    logbook = (save / "logbook.txt").read_text()
    sums = re.findall(r"parameters identical on all 3 ranks \(sum (\S+)\)", logbook)
    assert len(sums) == 1, output[-4000:]
    assert logbook.count("==> Epoch 2/2") == 1 and "rank 0 of 3 (local rank 0), backend gloo, timeout 2 min" in logbook
    # A pass's bar shows rank 0's running means, the epoch's summary values reduced over all ranks: labelled.
    assert re.search(r"==> Train: 100%.*  rank 0, total_loss_avg=", logbook), logbook[-3000:]
    assert re.search(r"==> Total: +50%.*  all ranks, best_psnr_avg=", logbook), logbook[-3000:]
    assert "Valid vs input (all ranks): " in logbook
    rows = read_csv_rows(str(save / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # written once, not once per rank
    rows = read_csv_rows(str(save / "csv" / "GoProNahTrain_training_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    checkpoint = torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)
    assert all(k.startswith("model.dbn_net.") for k in checkpoint["state_dict"])  # no DDP "module." prefix
    parameters = sum(float(v.double().sum()) for k, v in checkpoint["state_dict"].items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert abs(parameters - float(sums[0])) <= 1e-9 * max(1.0, abs(parameters))
    single = run_main(f"--save={tmp_path / 'single'}", f"--checkpoint={save}", "--model=DBN", *validation)
    assert single.returncode == 0, single.stderr
    evaluated = read_csv_rows(str(tmp_path / "single" / "csv" / "GoProNahTest_evaluation_losses.csv"))[0]
    for key in ("psnr", "psnr_rgb", "ssim", "total_loss", "psnr_y"):  # per example identical; summed in other orders
        assert abs(float(evaluated[key]) - checkpoint[key]) <= 1e-9 * abs(checkpoint[key]), key
    # Rank 0 gathered every rank's frames (rank 2 had none) into one record, in dataset order, as one process has.
    frames = read_csv_rows(str(save / "frames" / "GoProNahTest" / "epoch-002.csv"))
    single_frames = read_csv_rows(str(tmp_path / "single" / "frames" / "GoProNahTest" / "epoch-001.csv"))
    assert [r["basename"] for r in frames] == [r["basename"] for r in single_frames] and len(frames) == 2
    for row, single_row in zip(frames, single_frames):
        for key in ("psnr", "psnr_y", "input_psnr", "input_psnr_y"):
            assert abs(float(row[key]) - float(single_row[key])) <= 1e-9 * abs(float(row[key])), key


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_rank_with_one_resume_line(nah_root, tmp_path):
    """torchrun forwards SIGTERM to its workers: each leaves whatever step or collective it is in and exits
    143 (a rank that hung would be killed by torchrun after its grace period, which it says)."""
    save = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(REPO, "main.py"), "--model=DBN", "--loss=DBNLoss", "--optimizer=Adam", "--batch_size=1",
               "--total_epochs=20", "--training_dataset=GoProNahTrain", f"--training_dataset_root={nah_root}",
               "--training_dataset_random_crop=[32, 32]", "--training_dataset_num_samples_per_example=2",
               "--training_dataset_num_workers=0", "--training_dataset_num_examples=4",
               "--distributed_timeout_minutes=2", f"--save={save}", "--cuda=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                               env=env)
    while not (save / "checkpoint_latest_.json").exists():
        assert process.poll() is None, process.communicate()[0][-4000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "forcefully exiting via" not in output and "SIGKILL" not in output, output[-4000:]
    last_line = (save / "logbook.txt").read_text().strip().splitlines()[-1]
    assert "terminated (SIGTERM): the step in progress is abandoned" in last_line, output[-4000:]
    assert f"continue with: torchrun <the same options> main.py --resume={save}" in last_line
    assert output.count("terminated (SIGTERM)") == 1  # rank 0 says it; rank 1 exits silently

    # Resumed by one process: the total batch per step halves, which the resume says.
    epoch = torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)["epoch"]
    resumed = run_main(f"--resume={save}", "--cuda=false", f"--total_epochs={epoch + 1}")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert ("--resume: the run trained with 2 processes (a total batch of 2 per step), this resume runs 1 (a total "
            "batch of 1)") in resumed.stdout
    assert torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)["epoch"] == epoch + 1


def _stalled_peer(rank, port, folder):
    """Rank 0 sums over ranks while rank 1 joins no collective until rank 0 has given up."""
    from utils import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=2))
    done = os.path.join(folder, "done")
    if rank == 0:
        try:
            distributed.sum_over_ranks({"psnr": 1.0}, "the Valid pass's losses")
        except distributed.CollectiveError as error:
            with open(os.path.join(folder, "error"), "w") as handle:
                handle.write(str(error))
        open(done, "w").close()
    else:
        deadline = time.monotonic() + 60
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.05)
    torch.distributed.destroy_process_group()


def _spawn_two_ranks(function, *args):
    """Run function(rank, port, *args) in two processes that can form a gloo group on a free local port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(function, args=(port, *args), nprocs=2)


@pytest.mark.slow
def test_a_stalled_peer_ends_the_collective_with_one_line(tmp_path):
    _spawn_two_ranks(_stalled_peer, str(tmp_path))
    error = (tmp_path / "error").read_text()
    assert error.startswith("rank 0 of 2: summing the Valid pass's losses over ranks failed (a peer died, or stalled "
                            "longer than --distributed_timeout_minutes): "), error
    assert "\n" not in error and "Timed out" in error


def _inference_frames(count):
    """(index, basename, output, target) of `count` frames in two sequences, the same in every process."""
    generator = torch.Generator().manual_seed(5)
    frames = []
    for index in range(count):
        target = torch.rand(3, 24, 32, generator=generator)
        output = (target + 0.05 * torch.randn(3, 24, 32, generator=generator)).clamp(0, 1)
        frames.append((index, f"seq{index // 3}/{index:06d}", output, target))
    return frames


def _gopro_inference_rank(rank, port, folder):
    """Rank r evaluates frames r, r + 2, ... (the validation shards), rank 0 writes the table."""

    from visualizers.gopro_inference import GoProInference

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    visualizer = GoProInference(None, save=os.path.join(folder, "frames"), run_folder=folder)
    visualizer.on_epoch_init(0.1, False, 1, 1)
    for index, basename, output, target in _inference_frames(5)[rank::2]:
        example = {"index": torch.tensor([index]), "basename": [basename], "target1": target[None]}
        visualizer.on_step_finished(example, {"output1": output[None]}, {}, False, index // 2, 3)
    visualizer.on_epoch_finished({}, False, 1, 1)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_gopro_inference_under_torchrun_writes_one_table_of_every_frame(tmp_path):
    """Each rank deblurs its share; rank 0 writes inference_metrics.csv once, with every frame, equal to the table
    of one process that evaluated them all."""
    from visualizers.gopro_inference import METRICS, frame_metrics, metrics_table

    _spawn_two_ranks(_gopro_inference_rank, str(tmp_path))
    per_frame = {}
    for _, basename, output, target in _inference_frames(5):
        per_frame.setdefault(basename.split("/")[0], []).append(frame_metrics(output, target))
        assert (tmp_path / "frames" / f"{basename}.png").is_file()
    expected = metrics_table(per_frame)
    rows = read_csv_rows(str(tmp_path / "inference_metrics.csv"))
    assert [(row["sequence"], int(row["frames"])) for row in rows] == [("seq0", 3), ("seq1", 2), ("overall", 5)]
    for row, (_, _, values) in zip(rows, expected):  # the CSV holds repr(): exact
        assert [float(row[m]) for m in METRICS] == [values[m] for m in METRICS]
