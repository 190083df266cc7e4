"""The real command line end to end: training with validation, records, evaluation, resume, bad input."""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import scipy.io
import torch

from tests.helpers import run_main, subprocess_env
from utils.records import read_csv_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dbn_flags(root, save, epochs=2, validation=True, workers=0):
    flags = ["--model=DBN", "--loss=DBNLoss", "--optimizer=Adam", "--optimizer_lr=0.001", "--batch_size=2",
             f"--total_epochs={epochs}", "--lr_scheduler=MultiStepLR", "--lr_scheduler_milestones=[1, 2]",
             "--lr_scheduler_gamma=0.5", "--training_dataset=GoProNahTrain", f"--training_dataset_root={root}",
             "--training_dataset_random_crop=[32, 32]", "--training_dataset_num_samples_per_example=2",
             f"--training_dataset_num_workers={workers}", "--training_dataset_num_examples=4", f"--save={save}",
             "--cuda=false", "--proctitle=test"]
    if validation:
        flags += ["--validation_dataset=GoProNahTest", f"--validation_dataset_root={root}",
                  "--validation_dataset_num_workers=0", "--validation_dataset_num_examples=2",
                  "--validation_keys=[psnr, total_loss]", "--validation_modes=[max, min]"]
    return flags


def _main(*argv, check=True):
    """main.py with these arguments, in this process."""
    result = run_main(*argv)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_train_with_validation_writes_every_record(nah_root, tmp_path):
    save = tmp_path / "run"
    _main(*_dbn_flags(nah_root, save))
    args = json.loads((save / "args.json").read_text())
    assert args["model"] == "DBN" and args["training_dataset_random_crop"] == [32, 32]
    assert "model: DBN" in (save / "args.txt").read_text()
    logbook = (save / "logbook.txt").read_text()
    assert "\x1b[" not in logbook and "==> Epoch 2/2" in logbook and "Finished." in logbook
    assert "==> Train: 100%   2/2" in logbook  # 4 examples in batches of 2
    assert "psnr_avg=" in logbook and "  , psnr" not in logbook
    names = zipfile.ZipFile(save / "src.zip").namelist()
    assert "src/main.py" in names and "src/models/dbn.py" in names
    assert not any(n.endswith((".png", ".ckpt")) for n in names)
    rows = read_csv_rows(str(save / "csv" / "GoProNahTrain_training_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"] and {"psnr", "psnr_rgb", "ssim", "total_loss"} <= set(rows[0])
    rows = read_csv_rows(str(save / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    mat = scipy.io.loadmat(str(save / "mat" / "GoProNahTest_evaluation_losses.mat"))
    assert mat["epoch"].ravel().tolist() == [1.0, 2.0]
    assert mat["psnr"].ravel()[1] == pytest.approx(float(rows[1]["psnr"]))
    assert not (save / "png").exists() and not (save / "mat_exhaustive").exists()  # off by default
    assert list((save / "tb").glob("events.out.tfevents.*"))
    checkpoint = torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)
    assert list(checkpoint)[:5] == ["total_loss", "psnr", "psnr_rgb", "ssim", "epoch"]
    assert checkpoint["epoch"] == 2 and len(checkpoint["state_dict"]) == 132
    assert all(k.startswith("model.dbn_net.") for k in checkpoint["state_dict"])
    assert (save / "checkpoint_best_psnr.ckpt").exists() and (save / "checkpoint_best_total_loss.json").exists()
    best = json.loads((save / "checkpoint_best_psnr.json").read_text())
    assert best["psnr"] == max(float(r["psnr"]) for r in rows)
    assert (save / "training_curves.png").stat().st_size > 1000

    # Evaluation only (like the original's test scripts): loads the checkpoint strictly, writes no checkpoint.
    evaluation = tmp_path / "eval"
    _main("--model=DBN", "--loss=DBNLoss", f"--checkpoint={save}", "--validation_dataset=GoProNahTest",
          f"--validation_dataset_root={nah_root}", "--validation_dataset_num_workers=0",
          "--validation_dataset_num_examples=2", "--validation_keys=psnr", "--validation_modes=max",
          f"--save={evaluation}", "--cuda=false", "--batch_size=2")  # PSNR is per batch: same batching
    rows_eval = read_csv_rows(str(evaluation / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert float(rows_eval[0]["psnr"]) == pytest.approx(float(rows[-1]["psnr"]), abs=1e-4)
    assert not list(evaluation.glob("*.ckpt"))
    # Its logbook speaks of an evaluation, names the weights it loaded, and dumps the epochs it runs;
    # args.json keeps the parsed arguments.
    logbook = (evaluation / "logbook.txt").read_text()
    assert "==> Evaluation" in logbook and f"restored 132 tensors from {save / 'checkpoint_latest_.ckpt'}, the " \
        f"weights after epoch 2 (0 left as initialised)" in logbook
    assert not re.search(r"Epoch 1/1|lr: None|best_psnr|start_epoch: 1, total_epochs", logbook)
    assert re.search(r"\] +total_epochs: 1\n", logbook)
    assert json.loads((evaluation / "args.json").read_text())["total_epochs"] == 10

    # The same evaluation with DBN's 22 BatchNorms folded into its convolutions.
    folded = tmp_path / "folded"
    _main("--model=DBN", "--loss=DBNLoss", f"--checkpoint={save}", "--validation_dataset=GoProNahTest",
          f"--validation_dataset_root={nah_root}", "--validation_dataset_num_workers=0",
          "--validation_dataset_num_examples=2", "--validation_keys=psnr", "--validation_modes=max",
          f"--save={folded}", "--cuda=false", "--batch_size=2", "--fold_batchnorm=true")
    assert "folded 22 BatchNorm layers into convolutions" in (folded / "logbook.txt").read_text()
    rows_folded = read_csv_rows(str(folded / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert float(rows_folded[0]["psnr"]) == pytest.approx(float(rows_eval[0]["psnr"]), abs=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_output_redirected_to_a_file_is_plain_text_and_workers_fit_the_cpus(nah_root, tmp_path):
    # A separate process because the point is stdout being a file; pinned to one CPU, the default 12
    # training loader workers become 1 (PyTorch warned twice per loader when there were more than CPUs).
    save = tmp_path / "run"
    flags = [f for f in _dbn_flags(nah_root, save, epochs=1) if not f.startswith("--training_dataset_num_workers")]
    cpu = min(os.sched_getaffinity(0))
    with open(tmp_path / "log.txt", "w") as log:
        completed = subprocess.run([sys.executable, os.path.join(REPO, "main.py"), *flags], cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, env=subprocess_env(),
                                   preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), timeout=300)
    text = (tmp_path / "log.txt").read_text()
    assert completed.returncode == 0, text[-3000:]
    assert "\x1b" not in text and "\r" not in text and "UserWarning" not in text
    assert "training_dataset: GoProNahTrain, 4 examples, 2 steps per epoch, 1 workers (12 requested, 1 CPUs)" in text
    assert "validation_dataset: GoProNahTest, 2 examples, 1 steps per epoch, 0 workers\n" in text
    # One line per pass, the training key first, whole numbers (a 120-column bar cut them mid-number).
    assert re.search(r"\n\S+ \S+   ==> Train: 100%   2/2 .*  total_loss_avg=\d+\.\d{4}, psnr_avg=\S+, "
                     r"psnr_rgb_avg=\S+, ssim_avg=\d\.\d{4}\n", text)
    assert re.search(r"\n\S+ \S+   ==> Valid: 100%   1/1 .*  psnr_avg=\S+, total_loss_avg=\d+\.\d{4}, ", text)
    assert len(re.findall("==> Train:", text)) == 1 and len(re.findall("==> Total:", text)) == 1
    logbook = (save / "logbook.txt").read_text()
    assert "\x1b" not in logbook and "\r" not in logbook and "total_loss_avg=" in logbook
    # Local time by default (constants.LOGGING_TIMEZONE = None), as the clock shows.
    finished = re.search(r"\[(.{19})\] Finished\.", logbook).group(1)
    age = datetime.datetime.now() - datetime.datetime.strptime(finished, "%Y-%m-%d %H:%M:%S")
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=5)


def test_training_without_validation_halves_lr_and_checkpoints(nah_root, tmp_path):
    save = tmp_path / "run"
    _main(*_dbn_flags(nah_root, save, epochs=3, validation=False))
    logbook = (save / "logbook.txt").read_text()
    assert "lr: 0.001\n" in logbook and "lr: 0.0005\n" in logbook and "lr: 0.00025\n" in logbook
    checkpoint = torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)
    # both milestones passed
    assert checkpoint["epoch"] == 3 and checkpoint["optimizer"]["param_groups"][0]["lr"] == 0.00025


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_final_checkpoint(nah_root, tmp_path):
    # Two persistent loader workers: the resumed run starts new ones, which must not change a sample.
    flags = _dbn_flags(nah_root, None, epochs=2, workers=2)
    flags = [f for f in flags if not f.startswith("--save")]
    straight = tmp_path / "straight"  # in this process: only the killed run needs one of its own
    _main(*flags, f"--save={straight}")

    # Killed as soon as the first epoch's checkpoint exists: in epoch 2, which takes seconds, or in writing
    # its checkpoint.
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "main.py"), *flags, f"--save={killed}"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env())
    while not (killed / "checkpoint_latest_.json").exists():
        assert process.poll() is None, "the run ended before its first checkpoint appeared"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    stopped_after = json.loads((killed / "checkpoint_latest_.json").read_text())["epoch"]

    # Resumed from its stored arguments (--cuda is the machine's, not the run's: the CPU, as the straight run):
    # epoch 2 as the straight run trained it, bit for bit.
    if stopped_after == 1:  # (on a host too busy to kill within epoch 2, the run finished: nothing to resume)
        _main(f"--resume={killed}", "--cuda=false")
        assert "after epoch 1" in (killed / "logbook.txt").read_text()
    a = torch.load(straight / "checkpoint_latest_.ckpt", weights_only=True)
    b = torch.load(killed / "checkpoint_latest_.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["psnr"] == b["psnr"] and a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    rows = read_csv_rows(str(killed / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]


RUNTIME_VALUES = {"actual_device", "proctitle_name", "non_default_args", "holistic_records_kwargs", "device"}


def _as_checkpoint_before_parsed_flags(run, root) -> None:
    """Give a run's latest checkpoint the `args` and `roots` a checkpoint of this project held before checkpoints
    stored the parsed flags only (tests/data/checkpoint_before_parsed_flags.json: runtime values included)."""
    with open(os.path.join(REPO, "tests", "data", "checkpoint_before_parsed_flags.json"), encoding="utf-8") as file:
        stored = json.load(file)

    def placed(value):
        if isinstance(value, str):
            return value.replace("{root}", str(root)).replace("{save}", str(run))
        if isinstance(value, dict):
            return {key: placed(item) for key, item in value.items()}
        return [placed(item) for item in value] if isinstance(value, list) else value

    filename = run / "checkpoint_latest_.ckpt"
    checkpoint = torch.load(filename, weights_only=True)
    checkpoint["args"], checkpoint["roots"] = placed(stored["args"]), placed(stored["roots"])
    assert RUNTIME_VALUES - {"device"} <= set(checkpoint["args"])
    torch.save(checkpoint, filename)


@pytest.mark.slow
def test_checkpoints_store_the_parsed_flags_and_older_ones_still_evaluate_deblur_and_resume(nah_root, tmp_path):
    import deblur

    old = tmp_path / "old"
    _main(*_dbn_flags(nah_root, old, epochs=1))
    checkpoint = torch.load(old / "checkpoint_latest_.ckpt", weights_only=True)
    parsed = json.loads((old / "args.json").read_text())
    assert not RUNTIME_VALUES & set(checkpoint["args"]) and set(checkpoint["args"]) == set(parsed)  # args.json's
    _as_checkpoint_before_parsed_flags(old, nah_root)

    # Evaluated (its --model and --model_* read from the old arguments) and deblurred from the old checkpoint.
    evaluation = tmp_path / "eval"
    _main(f"--checkpoint={old}", "--loss=DBNLoss", "--validation_dataset=GoProNahTest",
          f"--validation_dataset_root={nah_root}",
          "--validation_dataset_num_workers=0", "--validation_dataset_num_examples=2", "--validation_keys=psnr",
          "--validation_modes=max", f"--save={evaluation}", "--cuda=false", "--batch_size=2")
    rows = read_csv_rows(str(evaluation / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert float(rows[0]["psnr"]) == pytest.approx(checkpoint["psnr"], abs=1e-4)
    sequence = next(p for p in sorted(os.scandir(os.path.join(nah_root, "test")), key=lambda e: e.name))
    assert deblur.main(["--checkpoint", str(old), "--input", os.path.join(sequence.path, "blur"),
                        "--output", str(tmp_path / "deblurred"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "deblurred").glob("*.png"))) == 6

    # Resumed to a second epoch: the run a straight 2-epoch run is, bit for bit.
    straight = tmp_path / "straight"
    _main(*_dbn_flags(nah_root, straight, epochs=2))
    _main(f"--resume={old}", "--total_epochs=2", "--cuda=false")
    a = torch.load(straight / "checkpoint_latest_.ckpt", weights_only=True)
    b = torch.load(old / "checkpoint_latest_.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["psnr"] == b["psnr"]
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert not RUNTIME_VALUES & set(b["args"]) and b["args"]["total_epochs"] == 2
    # A checkpoint of that time (no validation_metrics in its arguments) had a batched best psnr: kept, and said.
    assert "were computed the old way" in (old / "logbook.txt").read_text()


class _Tripwire(argparse.Namespace):
    """The `args` main.py hands to constructors, made to fail on any read: the project's classes keep the
    parameter for original-style plug-ins only and take their settings (and other categories' facts) as
    parameters."""

    def __getattribute__(self, name):
        if name.startswith("__"):
            return object.__getattribute__(self, name)
        raise AssertionError(f"a component read args.{name}")


@pytest.mark.slow
def test_the_projects_components_read_nothing_from_args(nah_root, constant_flow_pwcnet_checkpoint, tmp_path,
                                                        monkeypatch):
    import commandline
    from tools.synthetic_flow import make_flyingchairs, make_sintel

    built = []
    original = commandline.instance_from_args

    def with_tripwire(namespace, category_name, **extra):
        built.append(getattr(namespace, category_name))
        return original(namespace, category_name, **{**extra, "args": _Tripwire()})

    monkeypatch.setattr(commandline, "instance_from_args", with_tripwire)
    pwcnet = tmp_path / "pwcnet.ckpt"  # gone when the run is evaluated: the checkpoint holds the flow network
    shutil.copy(constant_flow_pwcnet_checkpoint, pwcnet)
    _main(*_dbn_flags(nah_root, tmp_path / "flowdbn", epochs=1), "--model=FlowDBN",
          f"--model_pretrained_pwcnet={pwcnet}", "--visualizer=GoProVisualizer", "--visualizer_track_epochs=true",
          "--visualizer_keep_num_training_steps=1")
    pwcnet.unlink()
    _main("--loss=DBNLoss", f"--checkpoint={tmp_path / 'flowdbn'}", "--validation_dataset=GoProNahTest",
          f"--validation_dataset_root={nah_root}", "--validation_dataset_num_workers=0",
          "--validation_dataset_num_examples=2", "--cuda=false", f"--save={tmp_path / 'inference'}",
          "--visualizer=GoProInference", f"--visualizer_save={tmp_path / 'inference' / 'frames'}")
    assert "FlowDBN rebuilt from" in (tmp_path / "inference" / "logbook.txt").read_text()
    assert (tmp_path / "inference" / "inference_metrics.csv").exists()  # in the run folder main.py passed
    chairs, sintel = tmp_path / "chairs", tmp_path / "sintel"
    make_flyingchairs(str(chairs), num_examples=10, height=64, width=64, seed=3)
    make_sintel(str(sintel), num_scenes=2, frames_per_scene=2, num_test_scenes=0, height=64, width=64)
    _main("--model=PWCNet", "--loss=MultiScaleEPE", "--optimizer=Adam", "--batch_size=2", "--total_epochs=1",
          "--training_dataset=FlyingChairsTrain", f"--training_dataset_root={chairs}",
          "--training_dataset_num_examples=2", "--training_dataset_num_workers=0",
          "--training_augmentation=RandomAffineFlow", "--validation_dataset=SintelTrainingCleanFull",
          f"--validation_dataset_root={sintel}", "--validation_dataset_num_workers=0", "--validation_keys=epe",
          "--validation_modes=min", "--visualizer=FlowVisualizer", f"--save={tmp_path / 'flow'}", "--cuda=false")
    assert {"FlowDBN", "DBNLoss", "GoProNahTrain", "GoProNahTest", "GoProVisualizer", "GoProInference", "PWCNet",
            "MultiScaleEPE", "FlyingChairsTrain", "SintelTrainingCleanFull", "RandomAffineFlow",
            "FlowVisualizer"} <= set(built)


@pytest.mark.slow
def test_sigterm_stops_at_once_with_a_resume_line_and_resumes_bit_identically(nah_root, tmp_path):
    # What a scheduler does at its time limit: SIGTERM to every process of the job (the loader workers too).
    flags = [f for f in _dbn_flags(nah_root, None, epochs=2, workers=2) if not f.startswith("--save")]
    straight = tmp_path / "straight"
    _main(*flags, f"--save={straight}")

    stopped = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "main.py"), *flags, f"--save={stopped}"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=subprocess_env(),
                               start_new_session=True, text=True)
    while not (stopped / "checkpoint_latest_.json").exists():
        assert process.poll() is None, "the run ended before its first checkpoint appeared"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 143, output[-3000:]
    assert "Traceback" not in output
    epoch = json.loads((stopped / "checkpoint_latest_.json").read_text())["epoch"]
    last_line = (stopped / "logbook.txt").read_text().strip().splitlines()[-1]
    assert "terminated (SIGTERM): the step in progress is abandoned" in last_line
    assert f"up to epoch {epoch} are kept in" in last_line and f"python main.py --resume={stopped}" in last_line
    assert last_line.split("] ", 1)[1] in output.strip().splitlines()[-1]  # the console's last line says the same
    assert not list(stopped.glob("*.tmp")) and not (stopped / ".lock").read_text()

    if epoch == 1:  # (on a host too busy to stop the run within epoch 2, it finished: nothing to resume)
        _main(f"--resume={stopped}", "--cuda=false")
    a = torch.load(straight / "checkpoint_latest_.ckpt", weights_only=True)
    b = torch.load(stopped / "checkpoint_latest_.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["psnr"] == b["psnr"]
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    rows = read_csv_rows(str(stopped / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]


@pytest.mark.parametrize("case", ["missing_root", "empty_sequence", "corrupt_png", "corrupt_png_in_a_worker",
                                  "wrong_checkpoint", "fold_while_training"])
def test_bad_input_ends_with_one_clear_line_and_keeps_records(nah_root, tmp_path, case):
    """A run that cannot start leaves its folder as it was; one that fails later keeps its traceback."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(nah_root, root)
    save = tmp_path / "run"
    save.mkdir()
    (save / "keep.txt").write_text("earlier results")
    flags = _dbn_flags(str(root), save, epochs=1)
    expected = None
    if case == "missing_root":
        flags = _dbn_flags(str(tmp_path / "nowhere"), save, epochs=1)
        expected = "nowhere"
    elif case == "empty_sequence":
        sequence = next((root / "train").iterdir())
        for frame in (sequence / "blur").iterdir():
            frame.unlink()
        expected = str(sequence / "blur")
    elif case.startswith("corrupt_png"):  # frames of the 2nd training sequence: the start-time key check reads
        # the first example (1st sequence) and passes, a training step reads the broken ones, after the start
        for frame in sorted((root / "train").iterdir())[1].glob("blur/*.png"):
            frame.write_bytes(b"\x89PNG broken")
        expected = "/blur/"
        if case == "corrupt_png_in_a_worker":  # the worker's traceback becomes the worker's one error line
            flags = [f.replace("training_dataset_num_workers=0", "training_dataset_num_workers=2") for f in flags]
            expected = "ValueError: cannot decode image"
    elif case == "wrong_checkpoint":
        torch.save({"state_dict": {"model.something.weight": torch.zeros(1)}}, tmp_path / "bad.ckpt")
        flags.append(f"--checkpoint={tmp_path / 'bad.ckpt'}")
        expected = "unexpected keys: model.something.weight"
    elif case == "fold_while_training":
        flags.append("--fold_batchnorm=true")
        expected = "--fold_batchnorm is for evaluation-only runs"
    result = _main(*flags, check=False)
    assert result.returncode != 0
    error_lines = [line for line in result.stdout.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and expected in error_lines[0], result.stdout[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert (save / "keep.txt").read_text() == "earlier results"
    if case.startswith("corrupt_png"):  # found in the first training step, after the run started
        assert "Traceback" in (save / "logbook.txt").read_text()  # the details are kept for debugging
    else:
        assert sorted(p.name for p in save.iterdir()) == ["keep.txt"]


def _error_lines(output: str):
    return [line for line in output.splitlines() if "error:" in line]


@pytest.mark.parametrize("change,expected", [
    (["--total_epochs=-3"], "--total_epochs=-3 with --start_epoch=1: nothing to train"),
    (["--training_dataset_num_examples=0"], "--training_dataset=GoProNahTrain: num_examples=0"),
    (["--training_dataset_random_crop=[0, 0]"], "--training_dataset=GoProNahTrain: random_crop must be"),
    (["--validation_keys=[psnr, l1]"], "--validation_keys: 'l1' is not a key of the loss's loss_dict"),
    (["--training_key=l1"], "--training_key: 'l1' is not a key of the loss's loss_dict; available: psnr, "
                            "psnr_rgb, ssim, total_loss"),
    (["--model=FlowDBN", "--model_pretrained_pwcnet={truncated}"],
     "--model_pretrained_pwcnet: cannot read checkpoint '{truncated}'"),
    (["--save={file}"], "--save={file} is a file, not a folder"),
])
def test_a_run_that_cannot_start_says_why_in_one_line_and_writes_nothing(nah_root, tmp_path, change, expected):
    truncated = tmp_path / "pwcnet.ckpt"
    truncated.write_bytes(b"PK\x03\x04 truncated")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    save = tmp_path / "run"
    argv = _dbn_flags(nah_root, save, epochs=1) + [c.format(truncated=truncated, file=a_file) for c in change]
    result = _main(*argv, check=False)
    assert result.returncode == 1
    lines = _error_lines(result.stdout)
    assert len(lines) == 1 and expected.format(truncated=truncated, file=a_file) in lines[0], lines
    assert not save.exists() and a_file.read_text() == "mine"


@pytest.mark.parametrize("inside, flag", [("training/train/myrun", "training"), ("training/train", "training"),
                                          ("training", "training"), ("validation/test/SEQ/run", "validation")])
def test_a_save_folder_inside_a_dataset_tree_is_refused_before_anything_is_written(nah_root, tmp_path, inside,
                                                                                    flag):
    import shutil

    roots = {name: tmp_path / name for name in ("training", "validation")}
    for root in roots.values():
        shutil.copytree(nah_root, root)
    (roots["validation"] / "test" / "SEQ").mkdir()  # a folder a user might pick, not a sequence of the split

    def snapshot():
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    before = snapshot()
    flags = [f.replace(f"training_dataset_root={nah_root}", f"training_dataset_root={roots['training']}")
             .replace(f"validation_dataset_root={nah_root}", f"validation_dataset_root={roots['validation']}")
             for f in _dbn_flags(nah_root, tmp_path / inside, epochs=1)]
    result = _main(*flags, check=False)
    lines = _error_lines(result.stdout)
    assert result.returncode == 1 and len(lines) == 1, result.stdout[-2000:]
    assert (f"--save={tmp_path / inside} lies inside the dataset tree of --{flag}_dataset_root={roots[flag]}: a run "
            f"folder there becomes part of the dataset; choose a --save outside it") in lines[0]
    assert snapshot() == before


@pytest.mark.slow
def test_resume_keeps_what_must_not_change_and_applies_overrides(nah_root, tmp_path):
    save = tmp_path / "run"
    _main(*_dbn_flags(nah_root, save, epochs=1, validation=False))
    before = {name: (save / name).read_bytes() for name in ("args.json", "args.txt", "src.zip", "logbook.txt")}

    refused = _main(f"--resume={save}", "--total_epochs=2", "--optimizer=SGD", check=False)
    lines = _error_lines(refused.stdout)
    assert refused.returncode == 1 and len(lines) == 1
    assert "--optimizer=SGD differs from the run's Adam" in lines[0] and f"--checkpoint={save}" in lines[0]
    assert {name: (save / name).read_bytes() for name in before} == before  # the folder still describes its run
    assert not list(save.glob("*.tmp"))

    # Refusals of a resume come before the argument dump (a few lines, the reason last).
    other = tmp_path / "other.ckpt"
    other.write_bytes((save / "checkpoint_latest_.ckpt").read_bytes())
    for extra, expected in [
            ([], f"--resume={save}: the run finished its 1 epochs; pass --total_epochs=<more than 1> to extend it"),
            (["--total_epochs=2", f"--checkpoint={other}"],
             f"--resume={save} with --checkpoint={other}: a resumed run continues with its own weights; start a "
             f"new run with --checkpoint={other} (and another --save), or resume without --checkpoint")]:
        refused = _main(f"--resume={save}", *extra, check=False)
        lines = refused.stdout.splitlines()
        assert refused.returncode == 1 and expected in lines[-1] and len(_error_lines(refused.stdout)) == 1
        assert len(lines) < 20 and not [line for line in lines if "model: DBN" in line], refused.stdout
    assert {name: (save / name).read_bytes() for name in before} == before

    # lr 0.001 halved at milestone 1 is 0.0005 after epoch 1; x10 -> 0.005, halved at milestone 2 -> 0.0025.
    _main(f"--resume={save}", "--total_epochs=2", "--optimizer_lr=0.01")
    logbook = (save / "logbook.txt").read_text()
    assert "override: --optimizer_lr=0.01 instead of the run's 0.001: every group's learning rate x10" in logbook
    assert "lr: 0.005\n" in logbook
    checkpoint = torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0025)
    assert json.loads((save / "args.json").read_text())["optimizer_lr"] == 0.01

    # A checkpoint of the original framework (no arguments, no optimizer or RNG state): the command line
    # describes the run, and the log says what starts fresh.
    original = tmp_path / "original"
    original.mkdir()
    torch.save({k: checkpoint[k] for k in ("total_loss", "epoch", "state_dict")}, original / "checkpoint_latest_.ckpt")
    flags = [f for f in _dbn_flags(nah_root, original, epochs=3, validation=False) if not f.startswith("--save")]
    _main(*flags, f"--resume={original}")
    logbook = (original / "logbook.txt").read_text()
    assert "holds no run arguments" in logbook and "holds no optimizer, lr scheduler, random number generators" \
        in logbook
    assert torch.load(original / "checkpoint_latest_.ckpt", weights_only=True)["epoch"] == 3


# The output BatchNorm's gain follows ExponentialLR from 0.5 (gamma 0.7); lr 0 keeps Adam from changing it, so
# epoch E trains with exactly 0.5 * 0.7^(E-1).
_GAIN = "model.dbn_net.f15.1.weight"
_GAIN_SCHEDULE = ["--param_scheduler_group={'params': '*f15.1.weight', 'scheduler': 'ExponentialLR', 'init': 0.5, "
                  "'gamma': 0.7}", "--optimizer_group={'params': '*f15.1.weight', 'lr': 0.0}"]


@pytest.mark.slow
def test_a_parameter_schedule_resumes_where_it_stopped(nah_root, tmp_path):
    def flags(save, epochs):
        return [f for f in _dbn_flags(nah_root, save, epochs=epochs, validation=False)
                if not f.startswith("--training_dataset_num_examples")] + [
            "--training_dataset_num_examples=2", *_GAIN_SCHEDULE]

    def gain(save):
        return torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)["state_dict"][_GAIN]

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _main(*flags(straight, 2))
    _main(*flags(resumed, 1))
    old = tmp_path / "old"  # the same checkpoint as this project wrote it before schedules were saved
    old.mkdir()
    checkpoint = torch.load(resumed / "checkpoint_latest_.ckpt", weights_only=True)
    assert checkpoint["hooks"]["ParameterSchedulerStep"]["schedules"][0]["scheduler"]["last_epoch"] == 1
    torch.save({k: v for k, v in checkpoint.items() if k != "hooks"}, old / "checkpoint_latest_.ckpt")
    result = _main(f"--resume={resumed}", "--total_epochs=2", "--cuda=false")
    assert "no state of" not in result.stdout
    assert torch.equal(gain(straight), torch.full((3,), 0.5 * 0.7))  # epoch 2's value, the last one trained with
    a = torch.load(straight / "checkpoint_latest_.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoint_latest_.ckpt", weights_only=True)
    assert a["total_loss"] == b["total_loss"] and a["hooks"] == b["hooks"]
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key

    # The old checkpoint still resumes, with one warning: its schedule restarts at 'init' (the original's way).
    result = _main(*flags(old, 2), f"--resume={old}")
    warnings = [line for line in result.stdout.splitlines() if "no state of" in line]
    assert len(warnings) == 1 and warnings[0].endswith(
        "--resume: the checkpoint holds no state of ParameterSchedulerStep: its --param_scheduler_group schedules "
        "restart from their 'init' values"), warnings
    assert torch.equal(gain(old), torch.full((3,), 0.5))


@pytest.mark.slow
def test_png_and_exhaustive_records_of_every_validation_epoch_also_after_resume(nah_root, tmp_path):
    import numpy as np
    from PIL import Image

    from utils.records import read_exhaustive_mat

    save = tmp_path / "run"
    flags = [f for f in _dbn_flags(nah_root, save, epochs=1) if not f.startswith("--training_dataset_num_examples")]
    _main(*flags, "--training_dataset_num_examples=2", "--holistic_records_png=true",
          "--holistic_records_mat_exhaustive=true")
    _main(f"--resume={save}", "--total_epochs=2", "--cuda=false")  # the flags come back from the checkpoint
    columns = read_exhaustive_mat(str(save / "mat_exhaustive" / "GoProNahTest_exhaustive.mat"))
    assert columns["epoch"].ravel().tolist() == [1, 1, 2, 2]
    names = columns["basename"].ravel().tolist()
    assert names[:2] == names[2:] and len(set(names)) == 2 and columns["output1"].shape == (4, 48, 64, 3)
    assert columns["input3"].shape == (4, 48, 64, 3) and columns["index"].ravel().tolist() == [0, 1, 0, 1]
    for row, name in enumerate(names):  # each epoch's deblurred frames, as matplotlib writes RGB floats
        with Image.open(save / "png" / "GoProNahTest" / f"epoch-{row // 2 + 1:03d}" / f"{name}.png") as png:
            assert png.mode == "RGBA" and png.size == (64, 48)
            np.testing.assert_array_equal(np.asarray(png)[..., :3],
                                          (columns["output1"][row].clip(0, 1) * 255).astype(np.uint8))
    assert len(list((save / "png").rglob("*.png"))) == 4


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused_and_the_first_completes(nah_root, tmp_path):
    save = tmp_path / "run"
    first = subprocess.Popen([sys.executable, os.path.join(REPO, "main.py"), *_dbn_flags(nah_root, save, epochs=1)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env())
    while not (save / "args.json").exists():  # the folder is locked before anything is written into it
        assert first.poll() is None, "the first run ended before it wrote its arguments"
        time.sleep(0.02)
    # Its epoch takes seconds, this start a fraction of one: the second run meets the first at work.
    second = _main(*_dbn_flags(nah_root, save, epochs=1), "--seed=7", check=False)
    assert first.wait() == 0
    lines = _error_lines(second.stdout)
    # Refused while the first runs (the lock), or, had the first finished already, for the run it left.
    assert second.returncode == 1 and len(lines) == 1 and (
        f"--save={save} is in use by pid {first.pid}" in lines[0] or "already holds a run" in lines[0]), lines
    rows = read_csv_rows(str(save / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1"]
    for name in ("checkpoint_latest_.ckpt", "checkpoint_best_psnr.ckpt", "checkpoint_best_total_loss.ckpt"):
        assert torch.load(save / name, weights_only=True)["epoch"] == 1
    assert json.loads((save / "args.json").read_text())["seed"] == 0
    assert not list(save.glob("*.tmp"))


def test_two_runs_in_one_process_give_the_same_records(nah_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(save):
        events = EventAccumulator(str(save / "tb"))
        events.Reload()
        return [(e.step, e.value) for e in events.Scalars("train/total_loss")]

    for name in ("first", "second"):  # main.main twice in this process: no state carries over
        _main(*_dbn_flags(nah_root, tmp_path / name, epochs=1), "--visualizer=GoProVisualizer")
    first, second = tmp_path / "first", tmp_path / "second"
    rows = [read_csv_rows(str(save / "csv" / "GoProNahTest_evaluation_losses.csv")) for save in (first, second)]
    assert rows[0] == rows[1] and [r["epoch"] for r in rows[0]] == ["1"]
    states = [torch.load(save / "checkpoint_latest_.ckpt", weights_only=True)["state_dict"] for save in (first, second)]
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])
    # Each run wrote into its own TensorBoard folder only, from step 1: 2 steps in both.
    assert scalars(first) == scalars(second) and [step for step, _ in scalars(first)] == [1, 2]


def _reference_frame_metrics(root):
    """The DBNLoss metrics of input3 as the output on --validation_dataset_num_examples=2, one batch of 2,
    computed here from the dataset and contrib.psnr, not through the trainer (psnr: the mean of each frame's)."""
    from contrib.psnr import fitting_ssim_window, koehler_psnr, psnr_rgb, ssim
    from datasets.gopro_nah import GoProNahTest
    from datasets.sampling import images_to_float

    dataset = GoProNahTest(None, root=root, sequence_length=5, num_examples=2, num_workers=0)
    examples = [dataset[index] for index in range(len(dataset))]
    frame = images_to_float(torch.stack([example["input3"] for example in examples]).flatten(0, 1))
    target = images_to_float(torch.stack([example["target1"] for example in examples]).flatten(0, 1))
    window = fitting_ssim_window(*target.shape[-2:])
    return {"total_loss": 0.5 * float(((frame - target) ** 2).sum()),
            "psnr": sum(float(koehler_psnr(frame[i:i + 1], target[i:i + 1], scale_opt=True, trans_opt=True,
                                           trans_range=5)) for i in range(len(frame))) / len(frame),
            "psnr_rgb": float(psnr_rgb(frame, target).mean()), "ssim": float(ssim(frame, target, window).mean())}


def test_input_baseline_is_recorded_once_and_equals_a_direct_computation(nah_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    save = tmp_path / "run"
    _main(*_dbn_flags(nah_root, save, epochs=1), "--visualizer=GoProVisualizer", "--visualizer_track_epochs=true",
          "--visualizer_keep_num_training_steps=2", "--optimizer_group={'params': '*f15.1.*', 'lr': 0.01}")
    baseline_csv = save / "csv" / "GoProNahTest_input_baseline.csv"
    evaluation_csv = save / "csv" / "GoProNahTest_evaluation_losses.csv"
    header = baseline_csv.read_text().splitlines()[0]
    assert header == evaluation_csv.read_text().splitlines()[0] == "epoch,step,psnr,psnr_rgb,ssim,total_loss"
    [row] = read_csv_rows(str(baseline_csv))
    assert row["epoch"] == "0"
    expected = _reference_frame_metrics(nah_root)
    for key, value in expected.items():
        assert float(row[key]) == pytest.approx(value, rel=1e-5), key
    assert 20 < expected["psnr"] < 60  # a real blurred frame, not a degenerate one
    # The logbook shows the model's value beside the input's.
    [evaluation] = read_csv_rows(str(evaluation_csv))
    psnr, baseline_psnr = float(evaluation["psnr"]), float(row["psnr"])
    logbook = (save / "logbook.txt").read_text()
    assert (f"Valid vs input: total_loss {float(evaluation['total_loss']):.4g} (input "
            f"{float(row['total_loss']):.4g}, ") in logbook
    assert f"psnr {psnr:.2f} (input {baseline_psnr:.2f}, {psnr - baseline_psnr:+.2f} dB)" in logbook

    # TensorBoard: the baseline beside the model's value, the LR of both groups, a few sections.
    events = EventAccumulator(str(save / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    baseline_line = [(e.step, e.value) for e in events.Scalars("valid/psnr_input_baseline")]
    assert baseline_line == [(1, pytest.approx(baseline_psnr))]
    assert [(e.step, e.value) for e in events.Scalars("lr/group0")] == [(1, pytest.approx(0.01))]  # --optimizer_group
    assert [(e.step, e.value) for e in events.Scalars("lr/group1")] == [(1, pytest.approx(0.001))]  # the rest
    assert sorted({tag.split("/")[0] for tag in scalars}) == ["lr", "train", "train_epoch", "valid"]
    assert [e.step for e in events.Scalars("train/total_loss")] == [1, 2]  # per step; every other section per epoch
    assert all([e.step for e in events.Scalars(tag)] == [1] for tag in scalars if not tag.startswith("train/"))
    images = events.Tags()["images"]
    assert sorted({tag.rsplit("/", 1)[0] for tag in images}) == ["train_images/00", "train_images/01",
                                                                  "valid_images/00"]
    assert len(images) == 3 * 9  # input1..5, gt, output, error, summary per slot
    assert "custom_scalars__config__" in events.Tags()["tensors"]
