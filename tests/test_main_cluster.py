"""main.py on a cluster: resuming from a damaged or older checkpoint, another working directory or
another number of processes, and a run folder deleted during the run."""
import shutil

import pytest
import torch

from tests.helpers import run_main
from tests.test_main import _dbn_flags
from utils.records import read_csv_rows


def _error_lines(result):
    return [line for line in result.stdout.splitlines() if "error:" in line]


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
