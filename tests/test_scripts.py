"""The released launchers: each command line is the original's (script-args.json) and parses to the same
arguments, DRY_RUN checks without data, common.sh's defaults and GPU wait, and a training and a test
script really run on tiny generated data."""
import json
import os
import subprocess

import pytest

import commandline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = "/work/shared/reference/script-args.json"
SCRIPTS = [f"scripts/deblurring/gopro_{data}/{kind}_flowdbn_{size}_on_{data}.sh"
           for data in ("nah", "su") for kind in ("train", "test") for size in ("128_5", "192_7")]


def _bash(command, env, cwd=REPO, timeout=120):
    return subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _environment(tmp_path, **extra):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def _printed(output, label):
    line = next(line for line in output.splitlines() if line.startswith(label + ": "))
    return json.loads(line[len(label) + 2:])


def _without_cuda(dictionary):
    return {key: value for key, value in dictionary.items() if key != "cuda"}  # machine-dependent


@pytest.mark.parametrize("script", SCRIPTS)
def test_command_line_and_arguments_are_the_originals(tmp_path, script):
    reference = json.load(open(REFERENCE))[os.path.basename(script)]
    # A stand-in python records how main.py is called; a stand-in nvidia-smi reports an idle GPU.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "recorder").write_text(f"#!/bin/sh\npwd > {tmp_path}/cwd\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\n")
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n")
    for name in ("recorder", "nvidia-smi"):
        (bin_dir / name).chmod(0o755)
    env = _environment(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHON=str(bin_dir / "recorder"),
                       DATASETS_HOME="/DATASETS", EXPERIMENTS_HOME="/EXPERIMENTS", TIME="TIME")
    # Started from an unrelated folder: the launcher finds the repository from its own location.
    completed = _bash(f"bash {os.path.join(REPO, script)}", env, cwd=str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "cwd").read_text().strip() == REPO
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[0] == "main.py" and argv[1:] == reference["argv"]
    args, defaults = commandline.parse_arguments(argv[1:])
    parsed = json.loads(json.dumps(vars(args), default=str))
    assert {key: parsed.get(key, "<missing>") for key in _without_cuda(reference["args"])} == \
        _without_cuda(reference["args"])
    # Arguments this project adds stay at their defaults: the scripts set exactly what the original's did.
    non_default = json.loads(json.dumps(commandline.non_default_arguments(args, defaults)))
    assert _without_cuda(non_default) == _without_cuda(reference["non_default"])


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


def test_common_defaults_and_gpu_wait(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # A GPU that is busy for the first query and free afterwards.
    (fake_bin / "nvidia-smi").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/queries\n"
                                         f"if [ ! -e {tmp_path}/busy ]; then touch {tmp_path}/busy; echo 1234; fi\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    script = ("source scripts/common.sh >/dev/null; sleep() { echo \"slept $1\"; }; "
              "echo \"$PYTHON $OMP_NUM_THREADS $MKL_NUM_THREADS $DATASETS_HOME\"; wait-for-gpu; echo done")
    env = _environment(tmp_path, PATH=f"{fake_bin}:{os.environ['PATH']}", CUDA_VISIBLE_DEVICES="3,1",
                       OMP_NUM_THREADS="4")
    completed = _bash(script, env)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0] == f"{REPO}/.venv/bin/python 4 1 {tmp_path}/Datasets"  # an explicit setting is kept
    assert "GPU 3 is busy" in lines[1] and lines[2] == "slept 60" and lines[3] == "done"
    assert (tmp_path / "queries").read_text().count("-i 3 --query-compute-apps=pid") == 2
    # Without nvidia-smi the wait is a no-op.
    completed = _bash("source scripts/common.sh >/dev/null; wait-for-gpu; echo done",
                      _environment(tmp_path, PATH="/usr/bin:/bin"))
    assert completed.returncode == 0 and completed.stdout.strip() == "done"
