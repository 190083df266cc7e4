"""The released launchers: each one's configuration (configs/, run by scripts/launch.sh) parses to the
original's arguments (script-args.json; spec 9.3 for the flow scripts), DRY_RUN checks without data,
common.sh's defaults and GPU wait, and a training and a test script really run on tiny generated data."""
import json
import os
import subprocess
from pathlib import Path

import pytest

import commandline
from tests.helpers import constant_flow_pwcnet, save_model_checkpoint, script_args, tame
from utils.records import read_csv_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = [f"scripts/deblurring/gopro_{data}/{kind}_flowdbn_{size}_on_{data}.sh"
           for data in ("nah", "su") for kind in ("train", "test") for size in ("128_5", "192_7")]
FLOW_SCRIPTS = ["scripts/flow/train_flownet1s_with_sintel.sh", "scripts/flow/train_pwcnet_with_sintel.sh"]


def _bash(command, env, cwd=REPO, timeout=120):
    return subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _environment(tmp_path, **extra):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    if "DEBLUR_DEVIL_VENV" in os.environ:  # the suite's own virtual environment, where it is not .venv
        env["DEBLUR_DEVIL_VENV"] = os.environ["DEBLUR_DEVIL_VENV"]
    env.update(extra)
    return env


def _printed(output, label):
    line = next(line for line in output.splitlines() if line.startswith(label + ": "))
    return json.loads(line[len(label) + 2:])


def _without_cuda(dictionary):
    return {key: value for key, value in dictionary.items() if key != "cuda"}  # machine-dependent


@pytest.mark.parametrize("script", SCRIPTS)
def test_command_line_and_arguments_are_the_originals(tmp_path, monkeypatch, script):
    datasets_home, experiments_home = str(tmp_path / "datasets"), str(tmp_path / "experiments")
    reference = script_args(datasets_home, experiments_home)[os.path.basename(script)]
    # A stand-in python records how main.py is called; a stand-in nvidia-smi reports an idle GPU.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "recorder").write_text(
        f"#!/bin/sh\npwd > {tmp_path}/cwd\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\n"
        f"printf '%s\\n' \"$FRAME_CACHE_DIR\" \"$SAVE_PATH\" > {tmp_path}/environment\n")
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n")
    for name in ("recorder", "nvidia-smi"):
        (bin_dir / name).chmod(0o755)
    env = _environment(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHON=str(bin_dir / "recorder"),
                       DATASETS_HOME=datasets_home, EXPERIMENTS_HOME=experiments_home, TIME="TIME")
    # Started from an unrelated folder: the launcher finds the repository from its own location.
    completed = _bash(f"bash {os.path.join(REPO, script)}", env, cwd=str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "cwd").read_text().strip() == REPO
    argv = (tmp_path / "argv").read_text().splitlines()
    # main.py gets the script's configuration, the run folder and (test scripts) the checkpoint; the
    # configuration's flags are the original's command line, training scripts' with the frame cache
    # (FRAME_CACHE_DIR).
    config = os.path.join(REPO, "configs", script[len("scripts/"):-len(".sh")] + ".json")
    assert argv[:3] == ["main.py", f"--config={config}", f"--save={reference['args']['save']}"]
    frame_cache, save_path = (tmp_path / "environment").read_text().splitlines()
    assert save_path == reference["args"]["save"]
    for name, value in (("DATASETS_HOME", datasets_home), ("EXPERIMENTS_HOME", experiments_home),
                        ("FRAME_CACHE_DIR", frame_cache), ("SAVE_PATH", save_path)):
        monkeypatch.setenv(name, value)
    argv = ["main.py"] + commandline.expand_config(argv[1:])
    cache = {"training_dataset_cache_dir": f"{experiments_home}/frame_cache"} if "/train_" in script else {}
    assert [a for a in argv[1:] if "cache_dir" in a] == [f"--{key}={value}" for key, value in cache.items()]
    args, defaults = commandline.parse_arguments(argv[1:])
    parsed = json.loads(json.dumps(vars(args), default=str))
    assert {key: parsed.get(key, "<missing>") for key in _without_cuda(reference["args"])} == \
        _without_cuda(reference["args"])
    # Arguments this project adds stay at their defaults but for the frame cache: otherwise the scripts set
    # exactly what the original's did.
    non_default = json.loads(json.dumps(commandline.non_default_arguments(args, defaults)))
    assert _without_cuda(non_default) == {**_without_cuda(reference["non_default"]), **cache}


# The released FlyingChairs -> Sintel scripts' command line (spec section 9.3), <MODEL> FlowNet1S or PWCNet.
FLOW_ARGV = ["--batch_size=8", "--checkpoint=None", "--loss=MultiScaleEPE", "--lr_scheduler=MultiStepLR",
             "--lr_scheduler_gamma=0.5", "--lr_scheduler_milestones=[108, 144, 180]", "--model=<MODEL>",
             "--optimizer=Adam", "--optimizer_lr=1e-4", "--optimizer_weight_decay=4e-4", "--total_epochs=216",
             "--training_dataset=FlyingChairsTrain", "--training_augmentation=RandomAffineFlow",
             "--training_dataset_num_examples=-1", "--training_dataset_photometric_augmentations=True",
             "--training_dataset_root=<DATA>/FlyingChairs_release/data/",
             "--validation_dataset=SintelTrainingCleanFull", "--validation_dataset_root=<DATA>/MPI-Sintel-complete/",
             "--validation_dataset_num_workers=4",
             "--validation_keys=epe", "--visualizer=FlowVisualizer"]


@pytest.mark.parametrize("script,model", list(zip(FLOW_SCRIPTS, ["FlowNet1S", "PWCNet"])))
def test_flow_configs_give_the_released_command_line(tmp_path, monkeypatch, script, model):
    monkeypatch.setenv("DATASETS_HOME", "/data")
    config = os.path.join(REPO, "configs", script[len("scripts/"):-len(".sh")] + ".json")
    assert f"launch {script[len('scripts/'):-len('.sh')]} " in (Path(REPO) / script).read_text()
    save = f"--save={tmp_path}/release/TIME-train-flyingchairs-with-sintel-{model}"
    released = [flag.replace("<MODEL>", model).replace("<DATA>", "/data") for flag in FLOW_ARGV]
    assert commandline.parse_arguments([f"--config={config}", save]) == commandline.parse_arguments(released + [save])


def test_configs_hold_only_what_differs_from_their_base():
    """Each launch configuration names a key once along its _base_ chain, with a value of its own."""
    for config in sorted(Path(REPO, "configs").rglob("*.json")):
        chain, path = [], config
        while path is not None:
            content = json.loads(path.read_text())
            chain.append({key: value for key, value in content.items() if key != commandline.BASE_KEY})
            path = path.parent / content[commandline.BASE_KEY] if commandline.BASE_KEY in content else None
        keys = [key for level in chain for key in level]
        assert len(keys) == len(set(keys)), f"{config} repeats {sorted(k for k in set(keys) if keys.count(k) > 1)}"


def test_frame_cache_none_turns_the_cache_off(tmp_path):
    env = _environment(tmp_path, DRY_RUN="1", TIME="T", FRAME_CACHE_DIR="none")
    completed = _bash(f"bash {SCRIPTS[0]}", env)
    assert completed.returncode == 0, completed.stderr
    assert "FRAME_CACHE_DIR: none" in completed.stdout
    assert _printed(completed.stdout, "parsed arguments")["training_dataset_cache_dir"] is None


def test_dry_run_prints_and_parses_without_data(tmp_path):
    env = _environment(tmp_path, DRY_RUN="1", TIME="T")
    completed = _bash(f"bash {SCRIPTS[6]} --total_epochs=3", env)  # su test script, extra argument appended
    assert completed.returncode == 0, completed.stderr
    assert "main.py \\" in completed.stdout and "--validation_dataset=GoProSuQuantitativeValid" in completed.stdout
    parsed = _printed(completed.stdout, "parsed arguments")
    assert parsed["total_epochs"] == 3 and parsed["visualizer"] == "GoProInference"
    assert parsed["validation_dataset_root"] == f"{tmp_path}/Datasets/DeepVideoDeblurring_Dataset/"
    assert parsed["save"] == f"{tmp_path}/Experiments/T-flowdbn-128-5-su-FlowDBN-inference"
    assert parsed["checkpoint"] == f"{tmp_path}/Experiments/path/to/checkpoint.ckpt"
    assert not (tmp_path / "Experiments").exists()  # nothing was run
    # Nothing of what the command names exists here: one warning line each, naming the path and the remedy.
    warnings = [line for line in completed.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: --checkpoint={tmp_path}/Experiments/path/to/checkpoint.ckpt: no such file or run folder; "
        "set CHECKPOINT to a trained checkpoint",
        f"warning: --model_pretrained_pwcnet={tmp_path}/Experiments/prewarping_networks/pwcnet.ckpt: no such "
        f"prewarping file; download the released networks with `python scripts/get_data.py prewarping_networks "
        f"--root {tmp_path}/Experiments`, or make one with `bash scripts/make_prewarping_network.sh <that path>`",
        f"warning: --validation_dataset_root={tmp_path}/Datasets/DeepVideoDeblurring_Dataset/: no such folder; "
        f"get it with `python scripts/get_data.py gopro_su --root {tmp_path}/Datasets`, or set DATASETS_HOME"]


def test_dry_run_warns_only_about_what_is_missing(tmp_path):
    from scripts.dry_run import missing_paths

    (tmp_path / "GOPRO_Large").mkdir()
    (tmp_path / "pwcnet.ckpt").write_bytes(b"")
    argv = ["--model=FlowDBN", f"--model_pretrained_pwcnet={tmp_path}/pwcnet.ckpt", "--loss=DBNLoss",
            "--training_dataset=GoProNahTrain", f"--training_dataset_root={tmp_path}/GOPRO_Large",
            "--validation_dataset=GoProNahTest", f"--validation_dataset_root={tmp_path}/GOPRO",
            "--validation_keys=[psnr]", "--checkpoint=None"]
    args, defaults = commandline.parse_arguments(argv)
    assert missing_paths(args, defaults) == [
        f"warning: --validation_dataset_root={tmp_path}/GOPRO: no such folder; put the dataset there or set "
        "DATASETS_HOME to the folder that holds it"]
    args, defaults = commandline.parse_arguments(argv[:-4])
    assert missing_paths(args, defaults) == []


def _fake_nvidia_smi(tmp_path, script):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "nvidia-smi").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/queries\n{script}\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    return f"{fake_bin}:{os.environ['PATH']}"


def test_common_defaults_and_gpu_wait(tmp_path):
    # A GPU that is busy for the first query and free afterwards.
    path = _fake_nvidia_smi(tmp_path, f"if [ ! -e {tmp_path}/busy ]; then touch {tmp_path}/busy; echo 1234; fi")
    script = ("source scripts/common.sh >/dev/null; sleep() { echo \"slept $1\"; }; "
              "echo \"$PYTHON $OMP_NUM_THREADS $MKL_NUM_THREADS $DATASETS_HOME\"; wait-for-gpu; echo done")
    env = _environment(tmp_path, PATH=path, CUDA_VISIBLE_DEVICES="3,1", OMP_NUM_THREADS="4")
    completed = _bash(script, env)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    venv = os.environ.get("DEBLUR_DEVIL_VENV", f"{REPO}/.venv")
    assert lines[0] == f"{venv}/bin/python 4 1 {tmp_path}/Datasets"  # an explicit setting is kept
    assert lines[1].endswith("GPU 3 is busy (compute processes: 1234): waiting up to 3600s for it to be free "
                             "(GPU_WAIT_SECS; 0 skips the wait)")
    assert lines[2] == "slept 60" and lines[3].endswith("GPU 3 is free after 60s") and lines[4] == "done"
    assert (tmp_path / "queries").read_text().count("-i 3 --query-compute-apps=pid") == 2
    # Without nvidia-smi the wait is a no-op.
    completed = _bash("source scripts/common.sh >/dev/null; wait-for-gpu; echo done",
                      _environment(tmp_path, PATH="/usr/bin:/bin"))
    assert completed.returncode == 0 and completed.stdout.strip() == "done"


def test_gpu_wait_is_bounded(tmp_path):
    """A process that never leaves the GPU (an MPS server, a monitoring agent) delays a launcher by at most
    GPU_WAIT_SECS; 0 skips the query; a malformed value is one line."""
    path = _fake_nvidia_smi(tmp_path, "echo 1234; echo 5678")
    script = "source scripts/common.sh >/dev/null; sleep() { echo \"slept $1\"; }; wait-for-gpu; echo \"done $?\""
    completed = _bash(script, _environment(tmp_path, PATH=path, GPU_WAIT_SECS="150"))
    lines = completed.stdout.splitlines()
    assert completed.returncode == 0, completed.stderr
    assert "GPU 0 is busy (compute processes: 1234,5678): waiting up to 150s" in lines[0]
    assert lines[1:4] == ["slept 60", "slept 60", "slept 30"]
    assert lines[4].endswith("GPU 0 still has compute processes (1234,5678) after 150s: starting anyway")
    assert lines[5] == "done 0"
    (tmp_path / "queries").unlink()
    completed = _bash(script, _environment(tmp_path, PATH=path, GPU_WAIT_SECS="0"))
    assert completed.stdout.splitlines() == ["done 0"] and not (tmp_path / "queries").exists()
    completed = _bash(script, _environment(tmp_path, PATH=path, GPU_WAIT_SECS="1h"))
    assert completed.returncode == 2 and completed.stdout == ""  # launchers run under `set -e`
    assert completed.stderr.strip() == "GPU_WAIT_SECS=1h: expected a whole number of seconds (0 skips the wait)"


# ---------------------------------------------------------------- real runs on tiny generated data
@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """DATASETS_HOME with a 32x32 GOPRO_Large (3 training, 3 test frames) and EXPERIMENTS_HOME with a
    constant-flow PWC-Net prewarping checkpoint (exact flows, so outputs do not hinge on float rounding)."""
    from tools.synthetic_gopro import make_gopro_nah

    base = tmp_path_factory.mktemp("homes")
    make_gopro_nah(str(base / "datasets"), width=32, height=32, num_frames=3, train_sequences=1, test_sequences=1)
    (base / "experiments" / "prewarping_networks").mkdir(parents=True)
    save_model_checkpoint(base / "experiments" / "prewarping_networks" / "pwcnet.ckpt",
                          constant_flow_pwcnet().state_dict())
    return base


TINY_TRAINING = ["--total_epochs=1", "--batch_size=1", "--training_dataset_num_samples_per_example=1",
                 "--training_dataset_num_workers=0", "--training_dataset_num_examples=1",
                 "--training_dataset_random_crop=[32, 32]", "--cuda=False", "--visualizer=GoProVisualizer",
                 "--visualizer_track_epochs=True", "--visualizer_keep_num_training_steps=1"]


def _run_script(homes, script, time_stamp, arguments, **extra_env):
    env = _environment(homes, DATASETS_HOME=str(homes / "datasets"), EXPERIMENTS_HOME=str(homes / "experiments"),
                       TIME=time_stamp, **extra_env)
    completed = _bash(" ".join([f"bash {script}"] + [f"'{a}'" for a in arguments]), env, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


def _image_tags(save):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(save / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


@pytest.mark.slow
def test_training_script_runs_with_the_visualizer(homes):
    # N=7 with the real FlowDBN is covered in-process by test_visualizers (one interpreter start less).
    n_frames = 5
    _run_script(homes, SCRIPTS[0], "train5", TINY_TRAINING)
    save = homes / "experiments" / "train5-flowdbn128-5-nah-FlowDBN"
    assert (save / "checkpoint_latest_.ckpt").is_file() and (save / "args.json").is_file()
    # The frame cache by default, announced with its place and size when full (the 3 blurred frames of the one
    # example's clamped window and its sharp frame, 32x32 as .npy), and filled by the first epoch.
    cache = homes / "experiments" / "frame_cache"
    assert f"frame cache {cache}: 4 frames, 0.0 MB when full (the folder holds 0.0 MB now)" in \
        (save / "logbook.txt").read_text()
    assert len(list(cache.rglob("*.npy"))) == 4
    events = _image_tags(save)
    assert [e.step for e in events.Scalars("lr/group0")] == [1]
    assert events.Scalars("lr/group0")[0].value == pytest.approx(0.005)
    assert [e.step for e in events.Scalars("train/total_loss")] == [1]
    tags = events.Tags()["images"]
    reference = n_frames // 2 + 1
    expected = [f"input{i}" for i in range(1, n_frames + 1)] + ["gt", "output", "error", "summary"] + \
        [f"warped{i}" for i in range(1, n_frames + 1) if i != reference]
    assert sorted(tags) == sorted(f"train_images/00/{name}" for name in expected)
    warped = events.Images(next(t for t in tags if t.endswith("/warped1")))[0]
    assert (warped.height, warped.width) == (32, 32)


@pytest.mark.slow
def test_test_script_writes_every_frame_of_the_checkpoints_model(homes):

    import numpy as np
    import torch
    from PIL import Image

    from datasets.gopro_nah import GoProNahTest
    from models.flowdbn import FlowDBN

    # A checkpoint whose outputs are not saturated (the original's fan_max init gives 0/255 images):
    # kaiming-initialised convolutions and a small residual, behind the constant-flow prewarping network.
    model = tame(FlowDBN(sequence_length=5,
                         pretrained_pwcnet=str(homes / "experiments" / "prewarping_networks" / "pwcnet.ckpt")),
                 seed=1, residual=0.02)
    checkpoint = save_model_checkpoint(homes / "experiments" / "flowdbn5.ckpt", model.state_dict(), psnr=0.0, epoch=1)
    # The script computes with as many threads as this process, so that its sums round as they do here.
    _run_script(homes, SCRIPTS[2], "test5", ["--validation_dataset_num_workers=0", "--cuda=False"],
                CHECKPOINT=checkpoint, OMP_NUM_THREADS=str(torch.get_num_threads()))
    save = homes / "experiments" / "test5-flowdbn-128-5-nah-FlowDBN-inference"
    model.eval()
    dataset = GoProNahTest(None, root=str(homes / "datasets" / "GOPRO_Large"), sequence_length=5)
    assert len(dataset) == 3
    for index in range(len(dataset)):
        example = dataset[index]
        with torch.no_grad():
            output = model(example)["output1"][0]
        expected = np.clip(np.floor(output.permute(1, 2, 0).numpy() * 255 + 0.5), 0, 255)
        assert expected.std() > 20 and np.mean((expected == 0) | (expected == 255)) < 0.05
        written = np.asarray(Image.open(save / "inference" / f"{example['basename'][0]}.png")).astype(float)
        assert written.shape == (32, 32, 3)
        # The script sets MKL_NUM_THREADS=1 (common.sh): float sums may round a rare pixel the other way.
        assert np.abs(written - expected).max() <= 1 and np.mean(written != expected) < 0.01
    rows = read_csv_rows(str(save / "inference_metrics.csv"))
    assert [(r["sequence"], r["frames"]) for r in rows] == [("GOPR9500_00_00", "3"), ("overall", "3")]
    evaluation = read_csv_rows(str(save / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert float(rows[-1]["psnr"]) == pytest.approx(float(evaluation[0]["psnr"]), abs=1e-3)


@pytest.mark.slow
def test_demo_refuses_an_unknown_precision(tmp_path):
    completed = _bash("bash scripts/demo.sh", _environment(tmp_path, DEMO_AMP="fp8", DEMO_DATA=str(tmp_path / "d")))
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == "demo.sh: error: DEMO_AMP=fp8: expected auto, bf16 or none"
    assert not (tmp_path / "d").exists()


def test_demo_writes_before_after_png_with_the_models_output(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    import deblur
    from contrib.psnr import koehler_psnr
    from datasets.gopro_nah import GoProNahTest
    from models.dbn import DBN
    from scripts.demo_summary import LABEL_HEIGHT, rgb_psnr
    from utils.images import to_uint8

    data, save = tmp_path / "data", tmp_path / "run"
    # A system python3 without the project's packages comes first on PATH: demo.sh and make_demo_data.sh
    # must use the virtual environment's.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\necho system python3 called >&2\nexit 7\n")
    (bin_dir / "python3").chmod(0o755)
    env = _environment(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}", DEMO_EPOCHS="1", DEMO_EXAMPLES="4",
                       DEMO_WIDTH="32", DEMO_HEIGHT="32", DEMO_DATA=str(data), DEMO_SAVE=str(save),
                       OMP_NUM_THREADS=str(torch.get_num_threads()))
    completed = _bash("bash scripts/demo.sh", env, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "system python3" not in completed.stderr and "Warning" not in completed.stderr
    from contrib.precision import native_bf16
    native = native_bf16(torch.device("cpu"))
    assert (f"==> Training in bf16 autocast with channels-last (this CPU has {native}): 1 epochs" if native else
            "==> Training in float32 (no native bf16): 1 epochs") in completed.stdout
    assert len(os.listdir(data / "GOPRO_Large" / "test" / "GOPR9500_00_00" / "blur_gamma")) == 8
    picture = save / "before_after.png"
    assert f"    before_after.png          : {picture}" in completed.stdout.splitlines()
    panels = np.asarray(Image.open(picture).convert("RGB"))
    assert panels.shape == (2 * (LABEL_HEIGHT + 32), 3 * 32, 3)
    top = panels[LABEL_HEIGHT:LABEL_HEIGHT + 32]  # the first row: the frames at full size
    blurred, deblurred, sharp = (top[:, column * 32:(column + 1) * 32] for column in range(3))
    # The centre frame (5 of 8) of the test sequence, deblurred by the best checkpoint's model.
    example = GoProNahTest(None, root=str(data / "GOPRO_Large"), sequence_length=5)[4]
    assert example["basename"][0] == "GOPR9500_00_00/000005"
    assert np.array_equal(blurred, to_uint8(example["input3"][0]))
    assert np.array_equal(sharp, to_uint8(example["target1"][0]))
    checkpoint = torch.load(save / "checkpoint_best_psnr.ckpt", map_location="cpu", weights_only=False)
    model = DBN(sequence_length=5)
    model.load_state_dict({key[len("model."):]: value for key, value in checkpoint["state_dict"].items()})
    # deblur.py chose its precision as it does on this machine (bf16 where the CPU has native bf16).
    precision, fold, _ = deblur.choose_precision("auto", None, None, torch.device("cpu"))
    deblur.prepare_model(model.eval(), precision, fold)
    with torch.no_grad(), precision.autocast(torch.device("cpu")):
        inputs = {key: precision.input(value) for key, value in example.items() if key.startswith("input")}
        expected = to_uint8(model(inputs)["output1"][0]).astype(int)
    assert expected.std() > 5
    assert np.abs(deblurred.astype(int) - expected).max() <= 1 and np.mean(deblurred != expected) < 0.01
    # The printed PSNRs are the paper protocol's on these panels.
    def psnr(image):
        def tensor(frame):
            return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255
        return float(koehler_psnr(tensor(image), tensor(sharp), scale_opt=True, trans_opt=True, trans_range=5))
    line = f"frame GOPR9500_00_00/000005: blurred input {psnr(blurred):.2f} dB, deblurred {psnr(deblurred):.2f} dB"
    assert any(line in printed for printed in completed.stdout.splitlines()), completed.stdout[-2000:]
    # The second row: the 8x8 region where deblurring changed the frame most, each pixel a 4x4 block.
    details = [panels[2 * LABEL_HEIGHT + 32:, column * 32:(column + 1) * 32].astype(int) for column in range(3)]
    change = np.abs(deblurred.astype(int) - blurred.astype(int)).sum(axis=2)
    sums = {(y, x): change[y:y + 8, x:x + 8].sum() for y in range(25) for x in range(25)}
    y0, x0 = max(sums, key=lambda corner: (sums[corner], -corner[0], -corner[1]))  # the first of the largest
    for detail, frame in zip(details, (blurred, deblurred, sharp)):
        assert np.array_equal(detail, frame[y0:y0 + 8, x0:x0 + 8].repeat(4, axis=0).repeat(4, axis=1))
    region_psnr = [rgb_psnr(frame[y0:y0 + 8, x0:x0 + 8], sharp[y0:y0 + 8, x0:x0 + 8]) for frame in (blurred, deblurred)]
    line = (f"second row: 4x zoom of x {x0}-{x0 + 7}, y {y0}-{y0 + 7}, where deblurring changed the frame most "
            f"(RGB PSNR there: blurred {region_psnr[0]:.2f} dB, deblurred {region_psnr[1]:.2f} dB)")
    assert line in completed.stdout, completed.stdout[-2000:]


def test_before_after_zooms_into_the_region_that_deblurring_changed_most(tmp_path):
    import numpy as np
    from PIL import Image

    from scripts.demo_summary import LABEL_HEIGHT, most_changed_region, rgb_psnr, write_before_after

    rng = np.random.default_rng(0)
    blurred = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    deblurred = blurred.copy()
    deblurred[22:27, 30:35] ^= 0x40  # the largest change: 5x5 pixels, in a window of 10x12 (1/4 of the frame)
    deblurred[2, 3] ^= 0xFF  # a larger change of one pixel only, far from it
    sharp = 255 - blurred
    assert most_changed_region(blurred, deblurred) == (17, 23, 10, 12)  # the first window holding all 25 pixels
    assert most_changed_region(blurred, blurred) == (0, 0, 10, 12)
    assert rgb_psnr(blurred, blurred) == float("inf")
    assert rgb_psnr(np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)) == 0.0

    frames = {"blurred": blurred, "deblurred": deblurred, "sharp": sharp}
    labels = {key: key for key in frames}
    write_before_after(str(tmp_path / "before_after.png"), frames, labels, (17, 23, 10, 12), labels)
    picture = np.asarray(Image.open(tmp_path / "before_after.png").convert("RGB"))
    assert picture.shape == (2 * (LABEL_HEIGHT + 40), 3 * 48, 3)
    for column, frame in enumerate((blurred, deblurred, sharp)):
        assert np.array_equal(picture[LABEL_HEIGHT:LABEL_HEIGHT + 40, column * 48:(column + 1) * 48], frame)
        detail = picture[2 * LABEL_HEIGHT + 40:, column * 48:(column + 1) * 48]
        assert np.array_equal(detail, frame[17:27, 23:35].repeat(4, axis=0).repeat(4, axis=1))
