"""main.py on a cluster: resuming from a damaged or older checkpoint, another working directory or
another number of processes, and a run folder deleted during the run."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import run_main, subprocess_env
from tests.test_main import REPO, _dbn_flags
from utils.records import read_csv_rows


def _error_lines(result):
    return [line for line in result.stdout.splitlines() if "error:" in line]


def test_typed_roots_that_do_not_resolve_give_way_to_the_resolved_ones(tmp_path, monkeypatch):
    import main

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    stored = {"training_dataset_root": "../data", "validation_dataset_root": "../data", "batch_size": 2}
    roots = {"training_dataset_root": str(tmp_path / "data"), "validation_dataset_root": str(tmp_path / "data")}
    assert main._with_resolved_roots(stored, roots, []) == stored  # '../data' resolves from here
    monkeypatch.chdir(tmp_path)
    resolved = main._with_resolved_roots(stored, roots, ["--validation_dataset_root=elsewhere"])
    assert resolved == {**stored, "training_dataset_root": str(tmp_path / "data")}  # a given flag stays
    assert main._with_resolved_roots(stored, None, []) == stored  # a checkpoint without roots


def test_resume_hint_names_the_last_checkpointed_epoch(tmp_path):
    import main

    assert main.resume_hint(str(tmp_path)) == (f"no epoch finished, nothing to resume in {tmp_path}: run the same "
                                               f"command again to start anew")
    (tmp_path / "checkpoint_latest_.json").write_text('{"total_loss": 1.0, "epoch": 3}\n')
    assert main.resume_hint(str(tmp_path)) == (f"records and checkpoints up to epoch 3 are kept in {tmp_path}; "
                                               f"continue with: python main.py --resume={tmp_path}")


@pytest.mark.slow
def test_an_older_best_checkpoint_resumes_into_a_new_folder_only(nah_root, tmp_path):
    run = tmp_path / "run"
    assert run_main(*_dbn_flags(nah_root, run, epochs=1, validation=False)).returncode == 0
    for suffix in (".ckpt", ".json"):  # a best checkpoint of epoch 1, as a validated run would have written
        shutil.copyfile(run / f"checkpoint_latest_{suffix}", run / f"checkpoint_best_psnr{suffix}")
    assert run_main(f"--resume={run}", "--cuda=false", "--total_epochs=2").returncode == 0
    rows = read_csv_rows(str(run / "csv" / "GoProNahTrain_training_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]

    # Resumed in its own folder, epoch 1 would rewrite epoch 2's checkpoint and records: refused.
    best = run / "checkpoint_best_psnr.ckpt"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    result = run_main(f"--resume={best}", "--cuda=false")
    assert result.returncode == 1 and len(_error_lines(result)) == 1, result.stdout[-2000:]
    assert (f"--resume={best} holds epoch 1, and {run} has checkpoints up to epoch 2, which resuming there would "
            f"discard: resume into a new folder with --save=<new folder>") in _error_lines(result)[0]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before

    # A truncated latest checkpoint: the error names the intact best one and how to resume from it.
    latest = run / "checkpoint_latest_.ckpt"
    latest.write_bytes(latest.read_bytes()[:1000])
    result = run_main(f"--resume={run}", "--cuda=false", "--total_epochs=3")
    assert result.returncode == 1 and len(_error_lines(result)) == 1, result.stdout[-2000:]
    assert f"cannot read checkpoint '{latest}'" in _error_lines(result)[0]
    assert (f"; checkpoint_best_psnr.ckpt (epoch 1) is intact: resume from it with --resume={best} "
            f"--save=<new folder>") in _error_lines(result)[0]

    # ... which works, and leaves the original folder alone.
    new = tmp_path / "new"
    assert run_main(f"--resume={best}", "--cuda=false", "--total_epochs=2", f"--save={new}").returncode == 0
    assert torch.load(new / "checkpoint_latest_.ckpt", weights_only=True)["epoch"] == 2
    assert "resuming" in (new / "logbook.txt").read_text() and (run / "checkpoint_best_psnr.ckpt").exists()


@pytest.mark.slow
def test_a_relative_root_resumes_from_another_directory_and_another_world_size_is_said(
        nah_root, tmp_path, monkeypatch):
    first, elsewhere = tmp_path / "a", tmp_path / "b" / "c"
    first.mkdir()
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(first)
    relative = os.path.relpath(nah_root, first)  # '../..': from `elsewhere` it names another folder
    run = tmp_path / "run"
    flags = [f for f in _dbn_flags(relative, run, epochs=1, validation=False) if "num_examples" not in f]
    assert run_main(*flags, "--training_dataset_num_examples=2").returncode == 0
    checkpoint = torch.load(run / "checkpoint_latest_.ckpt", weights_only=True)
    assert checkpoint["args"]["training_dataset_root"] == relative  # the flags as typed ...
    assert checkpoint["roots"] == {"training_dataset_root": str(nah_root)}  # ... and the folders they named
    assert checkpoint["world_size"] == 1
    assert json.loads((run / "args.json").read_text())["training_dataset_root"] == relative
    checkpoint["world_size"] = 2  # as if trained by torchrun with 2 processes
    torch.save(checkpoint, run / "checkpoint_latest_.ckpt")

    monkeypatch.chdir(elsewhere)
    assert not os.path.exists(relative)
    result = run_main(f"--resume={run}", "--cuda=false", "--total_epochs=2")
    assert result.returncode == 0, result.stdout[-3000:]
    logbook = (run / "logbook.txt").read_text()
    assert (f"--training_dataset_root={relative} does not resolve from {elsewhere}: using the folder the run "
            f"resolved, {nah_root}") in logbook
    assert ("--resume: the run trained with 2 processes (a total batch of 4 per step), this resume runs 1 (a total "
            "batch of 2): steps per epoch and gradient noise change, the learning rate stays as it was") in logbook
    resumed = torch.load(run / "checkpoint_latest_.ckpt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["world_size"] == 1
    assert resumed["args"]["training_dataset_root"] == str(nah_root)


@pytest.mark.slow
def test_a_run_folder_deleted_during_the_run_stops_it_at_the_next_write(nah_root, tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "main.py"),
                                *_dbn_flags(nah_root, run, epochs=3, validation=False)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env())
    while not (run / "checkpoint_latest_.json").exists():
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.02)
    while run.exists():  # (retried: the run may add a file while the tree is removed)
        shutil.rmtree(run, ignore_errors=True)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output[-3000:]
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"--save={run} was deleted or replaced during the run (its .lock is gone): " \
                                "stopping, and writing nothing more there" in errors[0], output[-3000:]
    assert "Traceback" not in output and not run.exists()
