"""The README's "Adding your own model, loss or dataset", executed: its commands, run in a copy of the
repository, copy the example files of examples/drop_in into the packages (no other file is edited); the
new classes are listed by --help, trained, resumed, evaluated and used by deblur.py. The python commands
run one after the other in one fresh interpreter, each as its script's `__main__` with its own argv (what
starting one interpreter per command would add is four more imports of torch)."""
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from PIL import Image

import deblur
from models import MODELS
from tests.helpers import REPO, subprocess_env

EXAMPLES = REPO / "examples" / "drop_in"
# Where the README says each example file goes.
DROP_INS = {"tiny_deblur.py": "models", "charbonnier_loss.py": "losses", "gopro_nah_noisy.py": "datasets"}
SEQUENCE = "GOPR9500_00_00"  # the nah_root fixture's test sequence


def _copy_repository(destination: Path) -> Path:
    """The files git tracks or would track (what a clean clone holds), copied into `destination`."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in this working tree is not part of it
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def _deblurred_by_hand(checkpoint: Path, blurred: list, length: int, channels: int) -> list:
    """The example model loaded from the checkpoint and run on clamped windows, in this process."""
    spec = importlib.util.spec_from_file_location("drop_in_tiny_deblur", EXAMPLES / "tiny_deblur.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers TinyDeblur in MODELS: the caller restores the registry
    model = module.TinyDeblur(channels=channels, sequence_length=length).eval()
    state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({key[len("model."):]: value for key, value in state_dict.items()})
    # In the precision deblur.py chooses on this machine (bf16 where the CPU has native bf16).
    precision, fold, _ = deblur.choose_precision("auto", None, None, torch.device("cpu"))
    deblur.prepare_model(model, precision, fold)
    frames = [precision.input(torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float() / 255.0)
              for frame in blurred]
    outputs = []
    for i in range(len(frames)):
        window = [frames[min(max(j, 0), len(frames) - 1)] for j in range(i - length // 2, i + length // 2 + 1)]
        with torch.no_grad(), precision.autocast(torch.device("cpu")):
            output = model({f"input{k + 1}": frame for k, frame in enumerate(window)})["output1"][0]
        outputs.append(output.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return outputs


def readme_commands() -> List[str]:
    """The shell commands of the README's worked example, one per line (continuations joined, comments cut)."""
    section = (REPO / "README.md").read_text().split("## Adding your own model, loss or dataset\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split(" # ")[0].strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _shell(repo: Path, command: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "-c", command], cwd=repo, capture_output=True, text=True, env=subprocess_env(),
                            timeout=300)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


# Runs each argv ([script, arguments...]) as `python script arguments...` would, one after the other, and
# prints one JSON line per command: its exit code and what it wrote to stdout and stderr.
_SCRIPTS_IN_ONE_INTERPRETER = """
import contextlib, io, json, logging, runpy, sys
sys.path.insert(0, '')
for argv in json.loads(sys.argv[1]):
    for handler in list(logging.root.handlers):  # as in a new interpreter: no logging configured yet
        logging.root.removeHandler(handler)
        handler.close()
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = argv
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
    if code != 0:
        break
"""


def _python_commands(repo: Path, commands: List[str]) -> List[subprocess.CompletedProcess]:
    """`python <script> <arguments>` commands run in one new interpreter in `repo`, each must end with 0."""
    argvs = [shlex.split(command)[1:] for command in commands]
    process = subprocess.run([sys.executable, "-c", _SCRIPTS_IN_ONE_INTERPRETER, json.dumps(argvs)], cwd=repo,
                             capture_output=True, text=True, env=subprocess_env(), timeout=600)
    results = [json.loads(line) for line in process.stdout.splitlines() if line.startswith('{"code"')]
    for command, result in zip(commands, results):
        assert result["code"] == 0, f"{command}\n{result['stdout'][-3000:]}\n{result['stderr'][-3000:]}"
    assert process.returncode == 0 and len(results) == len(commands), process.stderr[-3000:]
    return [subprocess.CompletedProcess(command, r["code"], r["stdout"], r["stderr"])
            for command, r in zip(commands, results)]


@pytest.mark.slow
def test_the_readme_example_trains_resumes_evaluates_and_deblurs(tmp_path, nah_root):
    repo = _copy_repository(tmp_path / "repo")
    shell, python = [], []
    for command in readme_commands():
        if "make_demo_data.sh" in command:
            continue  # the fixture's tiny data instead of the demo data
        command = command.replace("demo_data/GOPRO_Large", shlex.quote(nah_root))
        if command.startswith("python deblur.py "):
            command += " --device=cpu"  # compared below with the model run on the CPU
        (python if command.startswith("python ") else shell).append(command)
    assert all(command.startswith("cp ") for command in shell)  # the copies come first in the README
    outputs = {command: _shell(repo, command) for command in shell}
    outputs.update(zip(python, _python_commands(repo, python)))
    assert [command.split()[0] for command in readme_commands()] == ["cp"] * 3 + ["python", "bash"] + ["python"] * 4
    for filename, package in DROP_INS.items():
        assert (repo / package / filename).read_bytes() == (EXAMPLES / filename).read_bytes()
    run, evaluation = repo / "experiments" / "tiny", repo / "experiments" / "tiny-eval"

    # --help listed the new classes, their flags and the flags the dataset inherits through **kwargs.
    shown = next(result.stdout for command, result in outputs.items() if "--help" in command)
    for text in ("model: TinyDeblur:", "--model_channels", "loss: CharbonnierLoss:", "--loss_eps",
                 "training_dataset: GoProNahNoisy:", "--training_dataset_noise_sigma",
                 "--training_dataset_random_crop", "--training_dataset_sequence_length", "--training_dataset_root"):
        assert text in shown, text

    stored = json.loads((run / "args.json").read_text())
    assert (stored["model"], stored["model_channels"], stored["loss"], stored["training_dataset"]) == (
        "TinyDeblur", 8, "CharbonnierLoss", "GoProNahNoisy")
    # The parent's flags reached the parent: [32, 32] crops, and the subclass's own default of 2 samples.
    assert stored["training_dataset_random_crop"] == [32, 32] and stored["training_dataset_noise_sigma"] == 0.02
    assert stored["training_dataset_num_samples_per_example"] == 2

    latest = json.loads((run / "checkpoint_latest_.json").read_text())
    assert latest["epoch"] == 2  # resumed for a second epoch
    training_csv = (run / "csv" / "GoProNahNoisy_training_losses.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in training_csv[1:]] == ["1", "2"]

    header, row = (evaluation / "csv" / "GoProNahTest_evaluation_losses.csv").read_text().splitlines()
    psnr = float(row.split(",")[header.split(",").index("psnr")])
    assert psnr == pytest.approx(latest["psnr"], abs=1e-4)  # the run's own validation of epoch 2, same weights

    blur = Path(nah_root) / "test" / SEQUENCE / "blur"
    deblurred = repo / "experiments" / "tiny-deblurred"
    assert "TinyDeblur, N=3" in next(result.stderr for command, result in outputs.items() if " deblur.py " in command)
    names = sorted(path.name for path in blur.glob("*.png"))
    assert sorted(path.name for path in deblurred.iterdir()) == names
    blurred = [np.asarray(Image.open(blur / name).convert("RGB")) for name in names]
    before = set(MODELS.names())
    try:
        # deblur.py on a run folder loads its best checkpoint (the run validates --validation_keys=[psnr]).
        expected = _deblurred_by_hand(run / "checkpoint_best_psnr.ckpt", blurred, length=3, channels=8)
    finally:
        for name in set(MODELS.names()) - before:  # the example registered itself in this process
            MODELS.unregister(name)
    for name, reference in zip(names, expected):
        assert np.array_equal(np.asarray(Image.open(deblurred / name)), reference), name
    assert any(not np.array_equal(frame, reference) for frame, reference in zip(blurred, expected))  # it learnt


@pytest.mark.slow
def test_a_dropped_in_module_that_fails_to_import_is_named(tmp_path):
    repo = _copy_repository(tmp_path / "repo")
    broken = "from losses.registry import LOSSES\n\nLOSSES.register(Undefined)\n"
    (repo / "losses" / "broken_loss.py").write_text(broken)
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=repo, capture_output=True, text=True,
                            env=subprocess_env(), timeout=300)
    assert result.returncode != 0 and "usage" not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: cannot import losses/broken_loss.py: NameError: name 'Undefined' is not defined")
