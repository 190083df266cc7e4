"""Converters, docstring parameters, the args.json writer, records, checkpoints, source zip and logging."""
import json
import logging
import os
import platform
import random
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.io
import torch

from utils import checkpoints, docstrings, images, jsonfile, strings, system
from utils.logger import ProgressBar, block, configure_logging, format_eta
from utils.records import EpochRecorder, read_csv_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- converters
@pytest.mark.parametrize("text,expected", [("none", None), ("None", None), ("true", True), ("Y", True),
                                           ("1", True), ("false", False), ("n", False), ("0", False)])
def test_as_bool_or_none(text, expected):
    assert strings.as_bool_or_none(text) is expected


def test_as_bool_rejects_garbage():
    with pytest.raises(ValueError, match="expected a boolean"):
        strings.as_bool_or_none("maybe")


def test_list_converters():
    assert strings.as_intlist_or_none("[128, 128]") == [128, 128]
    assert strings.as_intlist_or_none("128,64") == [128, 64]
    assert strings.as_intlist_or_none("[]") == []
    assert strings.as_intlist_or_none("none") is None
    assert strings.as_floatlist_or_none("[0.9, 0.999]") == [0.9, 0.999]
    assert strings.as_stringlist_or_none("[total_loss, psnr]") == ["total_loss", "psnr"]
    assert strings.as_booleanlist_or_none("[true, 0]") == [True, False]


@pytest.mark.parametrize("text", ["[1, 2", "1, 2]", "[1, x]", "[1,,2]"])
def test_malformed_lists_raise(text):
    with pytest.raises(ValueError):
        strings.as_intlist_or_none(text)


def test_as_dict_or_none():
    assert strings.as_dict_or_none("{'params': '*bias*', 'lr': 0.01}") == {"params": "*bias*", "lr": 0.01}
    assert strings.as_dict_or_none("NONE") is None
    with pytest.raises(ValueError, match="Python literal"):
        strings.as_dict_or_none("{'a': }")


# ---------------------------------------------------------------- args.json layout
def test_jsonfile_layout_is_valid_json_with_original_conventions(tmp_path):
    values = {"b": "none", "a": True, "c": (1, 2), "d": {"y": 1, "x": "True"}, "e": 0.005, "f": None, "g": "x"}
    text = jsonfile.dumps(values)
    assert text.splitlines()[0] == "{" and text.splitlines()[1] == '  "a": true,'
    assert '  "b": null,' in text and '  "c": [1, 2],' in text and '"d": {"x": true, "y": 1}' in text
    assert json.loads(text) == {"a": True, "b": None, "c": [1, 2], "d": {"x": True, "y": 1}, "e": 0.005,
                                "f": None, "g": "x"}
    jsonfile.write(str(tmp_path / "a.json"), values)
    assert json.loads((tmp_path / "a.json").read_text())["e"] == 0.005


# ---------------------------------------------------------------- records
def test_epoch_recorder_csv_and_mat(tmp_path):
    for epoch, value in [(1, 3.0), (2, 2.0), (3, 1.0)]:
        EpochRecorder(None, str(tmp_path), epoch, "GoProNahTest").add_scalars(
            "evaluation_losses", {"total_loss": value, "psnr": 20.0 + epoch})
    rows = read_csv_rows(str(tmp_path / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0]) == ["epoch", "step", "psnr", "total_loss"]
    assert float(rows[2]["psnr"]) == 23.0
    mat = scipy.io.loadmat(str(tmp_path / "mat" / "GoProNahTest_evaluation_losses.mat"))
    np.testing.assert_array_equal(mat["epoch"].ravel(), [1, 2, 3])
    np.testing.assert_array_equal(mat["total_loss"].ravel(), [3.0, 2.0, 1.0])
    # A resumed run that repeats epoch 2 replaces epoch 2 and drops later rows.
    EpochRecorder(None, str(tmp_path), 2, "GoProNahTest").add_scalars("evaluation_losses",
                                                                      {"total_loss": 5.0, "psnr": 1.0})
    rows = read_csv_rows(str(tmp_path / "csv" / "GoProNahTest_evaluation_losses.csv"))
    assert [(r["epoch"], float(r["total_loss"])) for r in rows] == [("1", 3.0), ("2", 5.0)]
    mat = scipy.io.loadmat(str(tmp_path / "mat" / "GoProNahTest_evaluation_losses.mat"))
    np.testing.assert_array_equal(mat["total_loss"].ravel(), [3.0, 5.0])


def _png(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def test_png_records_go_to_their_epochs_folder_and_a_repeated_epoch_replaces_it(tmp_path):
    import matplotlib

    rgb = torch.linspace(-0.5, 1.5, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    gray = torch.arange(4 * 5, dtype=torch.float32).reshape(1, 1, 4, 5)
    EpochRecorder(None, str(tmp_path), 1, "X").add_images(["seq/a", "seq/b"], rgb)  # --holistic_records_png off
    assert not (tmp_path / "png").exists()
    recorder = EpochRecorder(None, str(tmp_path), 1, "X", png=True)
    recorder.add_images(["seq/a", "seq/b"], rgb)
    recorder.add_images(["seq/a"], gray)  # the same basename again in this epoch: its second sample
    folder = tmp_path / "png" / "X" / "epoch-001" / "seq"
    assert sorted(os.listdir(folder)) == ["a.png", "a_2.png", "b.png"]
    # RGBA; RGB clipped to [0, 1] as matplotlib writes floats (x 255, truncated); one channel colour-mapped
    # (viridis) from its minimum to its maximum.
    expected = (rgb[1].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(_png(folder / "b.png"), np.dstack([expected, np.full((4, 5), 255, np.uint8)]))
    viridis = matplotlib.colormaps["viridis"]((gray[0, 0].numpy() / 19.0), bytes=True)
    np.testing.assert_array_equal(_png(folder / "a_2.png"), viridis)
    EpochRecorder(None, str(tmp_path), 2, "X", png=True).add_images(["seq/a"], gray)
    # Epoch 1 again (a resumed run repeats it): its folder is replaced, epoch 2's left alone.
    EpochRecorder(None, str(tmp_path), 1, "X", png=True).add_images(["seq/b"], rgb[:1])
    assert os.listdir(folder) == ["b.png"] and os.listdir(tmp_path / "png" / "X" / "epoch-002" / "seq") == ["a.png"]
    np.testing.assert_array_equal(_png(folder / "b.png")[..., :3], (rgb[0].clamp(0, 1).permute(1, 2, 0).numpy()
                                                                  * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"--holistic_records_png: expected 1 basenames and images of shape "
                                         r"\(B, 1 or 3, H, W\), got images of shape \(1, 2, 4, 5\)"):
        recorder.add_images(["c"], torch.zeros(1, 2, 4, 5))


def test_the_exhaustive_mat_file_holds_every_batch_and_a_repeated_epoch_replaces_its_rows(tmp_path):
    from utils.records import read_exhaustive_mat

    def batch(epoch, first):
        indices = torch.arange(first, first + 2)
        example = {"input1": torch.ones(2, 3, 4, 5) * indices.view(2, 1, 1, 1), "index": indices,
                   "basename": [f"s/{i}" for i in indices.tolist()], "num_frames": 5}
        return example, {"output1": torch.full((2, 10), float(epoch))}

    for epoch in (1, 2):
        recorder = EpochRecorder(None, str(tmp_path), epoch, "X", mat_exhaustive=True)
        for first in (0, 2):
            recorder.add_batch(*batch(epoch, first))
        recorder.close()
    filename = str(tmp_path / "mat_exhaustive" / "X_exhaustive.mat")
    columns = read_exhaustive_mat(filename)
    assert sorted(columns) == ["basename", "epoch", "index", "input1", "output1"]  # num_frames: not per example
    assert columns["input1"].shape == (8, 4, 5, 3) and columns["input1"][:, 0, 0, 0].tolist() == [0, 1, 2, 3] * 2
    assert columns["index"].shape == (8, 1) and columns["output1"].shape == (8, 10)
    assert columns["basename"].ravel().tolist() == ["s/0", "s/1", "s/2", "s/3"] * 2
    assert columns["epoch"].ravel().tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    # Epoch 2 again with one batch: epoch 1's rows kept, epoch 2's replaced.
    recorder = EpochRecorder(None, str(tmp_path), 2, "X", mat_exhaustive=True)
    recorder.add_batch(*batch(7, 4))
    recorder.close()
    columns = read_exhaustive_mat(filename)
    assert columns["epoch"].ravel().tolist() == [1, 1, 1, 1, 2, 2]
    assert columns["output1"][:, 0].tolist() == [1, 1, 1, 1, 7, 7]
    assert scipy.io.loadmat(filename)["input1"].shape == (6, 4, 5, 3)  # a plain MAT file
    # Off by default: nothing kept, nothing written.
    recorder = EpochRecorder(None, str(tmp_path / "off"), 1, "X")
    recorder.add_batch(*batch(1, 0))
    recorder.close()
    assert not (tmp_path / "off").exists()


# ---------------------------------------------------------------- checkpoints
class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))


def test_checkpoint_format_and_best_copies(tmp_path):
    module = _Tiny()
    written = checkpoints.save(str(tmp_path), {"total_loss": 1.5, "psnr": 30.25}, 7, module, ["psnr"],
                               extra={"optimizer": {"state": {}, "param_groups": []}})
    assert [os.path.basename(f) for f in written] == ["checkpoint_latest_.ckpt", "checkpoint_best_psnr.ckpt"]
    loaded = torch.load(tmp_path / "checkpoint_latest_.ckpt", weights_only=True)
    assert list(loaded)[:4] == ["total_loss", "psnr", "epoch", "state_dict"]
    assert loaded["epoch"] == 7 and loaded["psnr"] == 30.25
    assert set(loaded["state_dict"]) == {"model.0.weight", "model.1.weight", "model.1.bias", "model.1.running_mean",
                                         "model.1.running_var", "model.1.num_batches_tracked"}
    stats = json.loads((tmp_path / "checkpoint_latest_.json").read_text())
    assert list(stats) == ["total_loss", "psnr", "epoch"]
    assert (tmp_path / "checkpoint_best_psnr.json").read_text() == (tmp_path / "checkpoint_latest_.json").read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_load_state_dict_strict_reports_missing_and_unexpected(tmp_path):
    module = _Tiny()
    state = dict(module.state_dict())
    state.pop("model.0.weight")
    state["model.9.weight"] = torch.zeros(1)
    with pytest.raises(checkpoints.CheckpointError, match=r"missing keys: model\.0\.weight.*unexpected keys: "
                                                          r"model\.9\.weight"):
        checkpoints.load_state_dict(module, state, "x.ckpt")


def test_load_state_dict_wrong_shape_names_key():
    module = _Tiny()
    state = dict(module.state_dict())
    state["model.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(checkpoints.CheckpointError, match=r"'model\.0\.weight' has shape \(2, 2\)"):
        checkpoints.load_state_dict(module, state, "x.ckpt")


def test_translations_fuzzy_and_filters():
    source, target = _Tiny(), _Tiny()
    with torch.no_grad():
        for p in source.parameters():
            p.uniform_()
    renamed = {k.replace("model.", "model._net."): v for k, v in source.state_dict().items()}
    restored, untouched = checkpoints.load_state_dict(target, renamed, "x", translations={"model._net.": "model."})
    assert untouched == [] and len(restored) == 6
    assert torch.equal(target.model[0].weight, source.model[0].weight)
    target2 = _Tiny()
    before = target2.model[1].weight.clone()
    restored, untouched = checkpoints.load_state_dict(target2, source.state_dict(), "x", include=["*0.weight"])
    assert restored == ["model.0.weight"] and torch.equal(target2.model[1].weight, before)
    mapping = checkpoints.translate_keys(["model._flownets.conv1.0.weight"], ["flownets.conv1.0.weight"], {},
                                         ["conv1.0.weight"])
    assert mapping == {"model._flownets.conv1.0.weight": "flownets.conv1.0.weight"}


def test_find_checkpoint(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="no such file or directory"):
        checkpoints.find_checkpoint(str(tmp_path / "nope"))
    with pytest.raises(checkpoints.CheckpointError, match="holds no checkpoint_latest_.ckpt"):
        checkpoints.find_checkpoint(str(tmp_path))
    checkpoints.save(str(tmp_path), {"psnr": 1.0}, 1, _Tiny(), ["psnr"])
    assert checkpoints.find_checkpoint(str(tmp_path)).endswith("checkpoint_latest_.ckpt")
    assert checkpoints.find_checkpoint(str(tmp_path), "best").endswith("checkpoint_best_psnr.ckpt")


def test_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="cannot read checkpoint .*bad.ckpt"):
        checkpoints.load_file(str(tmp_path / "bad.ckpt"))
    torch.save({"weights": 1}, tmp_path / "nostate.ckpt")
    with pytest.raises(checkpoints.CheckpointError, match="expected a dict with a 'state_dict'"):
        checkpoints.load_file(str(tmp_path / "nostate.ckpt"))


def test_rng_state_roundtrip_through_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save({"rng": checkpoints.rng_state()}, tmp_path / "r.ckpt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    checkpoints.set_rng_state(torch.load(tmp_path / "r.ckpt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def _fake_gpus(monkeypatch, visible):
    """Pretend `visible` GPUs exist; returns the (device, state) pairs torch.cuda.set_rng_state receives."""
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: visible > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((device, state)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                        lambda states: pytest.fail("set_rng_state_all raises IndexError for surplus states"))
    return restored


@pytest.mark.parametrize("visible,restored_devices,message", [
    (1, [0], "2 CUDA random states saved, 1 GPU visible: restored 1, dropped those of GPUs 1..1 (not visible now)"),
    (2, [0, 1], None),
    (4, [0, 1], "2 CUDA random states saved, 4 GPUs visible: GPUs 2..3 keep their seeded states (their random "
                "draws differ from an uninterrupted run's)"),
    (0, [], "2 CUDA random states saved, 0 GPUs visible: restored 0, dropped those of GPUs 0..1 (not visible now)")])
def test_resume_with_another_number_of_gpus(tmp_path, monkeypatch, caplog, visible, restored_devices, message):
    """A checkpoint written on a 2-GPU node resumes where fewer (or more) GPUs are visible: GPU i gets state i."""
    model = _Tiny()
    state = checkpoints.RunState(model).extra()
    cuda_states = [torch.full((816,), device, dtype=torch.uint8) for device in (7, 9)]
    state["rng"]["cuda"] = cuda_states
    torch.save({"epoch": 3, "state_dict": model.state_dict(), **state}, tmp_path / "two_gpus.ckpt")
    checkpoint = checkpoints.load_file(str(tmp_path / "two_gpus.ckpt"))
    restored = _fake_gpus(monkeypatch, visible)
    with caplog.at_level(logging.WARNING):
        assert checkpoints.RunState(_Tiny()).restore(checkpoint, "two_gpus.ckpt") == []
    assert [device for device, _ in restored] == restored_devices
    assert all(torch.equal(saved, cuda_states[device]) for device, saved in restored)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == ([] if message is None else [f"two_gpus.ckpt: {message}"])


@pytest.mark.parametrize("requested,processes,cpus,expected", [
    (12, 1, 16, (12, "")),
    (12, 1, 2, (2, " (12 requested, 2 CPUs)")),
    (12, 8, 16, (2, " (12 requested, 16 CPUs for 8 processes on this machine)")),
    (12, 8, 4, (1, " (12 requested, 4 CPUs for 8 processes on this machine)")),
    (0, 8, 4, (0, ""))])
def test_loader_workers_share_the_cpus_among_the_processes_of_a_machine(monkeypatch, requested, processes, cpus,
                                                                         expected):
    monkeypatch.setattr(system, "available_cpus", lambda: cpus)
    assert system.loader_workers(requested, processes) == expected


def test_local_world_size_is_torchruns(monkeypatch):
    from utils import distributed

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.local_world_size() == 1  # not launched by torchrun
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("RANK", "3")
    assert distributed.local_world_size() == 8


# ---------------------------------------------------------------- source zip
def test_zip_source_contains_code_only(tmp_path):
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    (root / "models" / "dbn.py").write_text("x = 1\n")
    (root / "README.md").write_text("# r\n")
    (root / "scripts").mkdir()
    (root / "scripts" / "a.sh").write_text("echo\n")
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("")
    (root / ".venv" / "lib" / "x.py").write_text("")
    (root / "myenv").mkdir()
    (root / "myenv" / "pyvenv.cfg").write_text("")
    (root / "myenv" / "y.py").write_text("")
    (root / "data").mkdir()
    (root / "data" / "frame.png").write_bytes(b"png")
    (root / "experiments" / "run1").mkdir(parents=True)
    (root / "experiments" / "run1" / "args.json").write_text("{}")
    (root / "experiments" / "run1" / "notes.txt").write_text("")
    (root / "dot_machines.json").write_text("{}")
    filename = tmp_path / "src.zip"
    assert system.zip_source(str(filename), str(root)) == 3
    names = sorted(zipfile.ZipFile(filename).namelist())
    assert names == ["src/README.md", "src/models/dbn.py", "src/scripts/a.sh"]


# ---------------------------------------------------------------- logging
def test_logbook_has_no_colour_codes_and_indents(tmp_path):
    logbook = tmp_path / "logbook.txt"
    configure_logging(str(logbook))
    with block("Outer"):
        logging.info("\x1b[36mcoloured\x1b[0m caf\u00e9")
        with ProgressBar(total=2, desc="Train") as bar:
            bar.update(2)
    logging.getLogger().handlers[-1].flush()
    text = logbook.read_text()
    assert "\x1b[" not in text
    assert "] ==> Outer" in text and "]   coloured caf " in text
    assert "==> Train: 100%   2/2" in text
    configure_logging(None)


def test_format_eta():
    assert format_eta(75) == "01m:15s"
    assert format_eta(3 * 3600 + 5 * 60) == "3h:05m"
    assert format_eta(2 * 86400 + 5 * 3600) == "2d:05h"


# ------------------------------------------------------------------------------------------ allocator
_FAULTS_OF_REALLOCATION = """
import os, resource, torch
from utils.allocator import ENVIRONMENT_VARIABLE, keep_freed_memory


def faults():
    x = torch.ones(16 * 2 ** 20)  # 64 MiB
    for _ in range(10):  # until the heap has settled
        y = x * 2
        del y
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):  # like activations: a fresh 64 MiB output, freed again
        y = x * 2
        del y
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


for keep in ("0", "1"):  # malloc as it is first, then changed (a change cannot be undone)
    os.environ[ENVIRONMENT_VARIABLE] = keep
    print(keep_freed_memory())
    print(faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_freed_memory_is_reused_without_page_faults():
    # A process of its own: the test process's malloc may already be changed by the runs of other tests.
    result = subprocess.run([sys.executable, "-c", _FAULTS_OF_REALLOCATION], capture_output=True, text=True,
                            cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), check=True)
    unchanged_note, unchanged, kept_note, kept = result.stdout.split("\n")[:4]
    unchanged, kept = int(unchanged), int(kept)
    assert unchanged_note == "malloc unchanged (DEBLUR_DEVIL_KEEP_FREED_MEMORY=0)"
    assert kept_note.startswith("malloc keeps freed memory")
    # Ten fresh 64 MiB tensors: glibc maps and faults in 10 x 16384 pages; kept memory is reused (the heap's
    # layout may still cost a few tensors' worth of faults, 0 to 4 x 16384 in our runs).
    assert unchanged > 10 * 16384 * 0.9 and kept < 0.5 * unchanged, (kept, unchanged)


# ---------------------------------------------------------------- docstring parameters
def test_google_args_section_gives_first_sentences_without_defaults_or_markup():
    doc = """Summary line.

    Args:
        lr (float, Tensor, optional): learning rate (default: 1e-3)
        betas (Tuple[float, float], optional): coefficients used for computing
            running averages (default: (0.9, 0.999)). More text here.
        gamma (float): Multiplicative factor of :math:`lr` for :class:`~torch.optim.Optimizer`.
            Default: 0.1.
        *args: ignored

    Returns:
        nothing: not a parameter
    """
    assert docstrings.parse_parameters(doc) == {
        "lr": "learning rate",
        "betas": "coefficients used for computing running averages",
        "gamma": "Multiplicative factor of lr for Optimizer",
        "args": "ignored",
    }


def test_sphinx_param_lines_and_continuations():
    doc = """Summary.

    :param int crop: crop size, e.g. 64 pixels;
        continued here
    :param name: the ``name`` (default: None)
    :returns: nothing
    """
    assert docstrings.parse_parameters(doc) == {"crop": "crop size, e.g. 64 pixels; continued here",
                                                "name": "the name"}


def test_parameter_descriptions_prefer_the_subclass_and_fall_back_to_bases():
    class Base:
        """Args:
            a: base's a
            b: base's b
        """

    class Child(Base):
        def __init__(self, a=1, b=2):
            """:param a: child's a"""

    assert docstrings.parameter_descriptions(Child) == {"a": "child's a", "b": "base's b"}
    assert docstrings.parse_parameters(None) == {} and docstrings.parse_parameters("No sections.") == {}

def test_input_baseline_record_is_read_back_only_under_the_same_protocol(tmp_path):
    from utils import baseline

    protocol = {"flags": {"validation_dataset": "GoProNahTest", "loss": "DBNLoss"}, "batch_size": 2, "examples": 4}
    assert baseline.read(str(tmp_path), "GoProNahTest", protocol) is None  # nothing recorded yet
    stats = {"total_loss": 12.5, "psnr": 33.26, "ssim": 0.91}
    baseline.write(str(tmp_path), "GoProNahTest", protocol, stats, {"mat": False})
    assert (tmp_path / "csv" / "GoProNahTest_input_baseline.csv").read_text().splitlines() == [
        "epoch,step,psnr,ssim,total_loss", "0,,33.26,0.91,12.5"]
    assert baseline.read(str(tmp_path), "GoProNahTest", protocol) == stats
    assert baseline.read(str(tmp_path), "GoProNahTest", {**protocol, "batch_size": 1}) is None
    assert baseline.read(str(tmp_path), "GoProSuTest", protocol) is None


def test_gain_texts_name_the_input_and_the_difference():
    from utils import baseline

    assert baseline.compare("psnr", 33.08, 33.26) == "psnr 33.08 (input 33.26, -0.18 dB)"
    assert baseline.compare("total_loss", 150.0, 200.0) == "total_loss 150 (input 200, -25.0%)"
    assert baseline.compare("ssim", 0.9, None) == "ssim 0.9"
    stats, inputs = {"total_loss": 150.0, "psnr": 34.06}, {"total_loss": 200.0, "psnr": 33.26}
    assert baseline.gain_over_input(stats, inputs, ["total_loss", "psnr"]) == "psnr +0.80 dB over input"
    assert baseline.gain_over_input(stats, {}, ["psnr"]) == ""


def test_images_round_to_uint8_and_read_back_what_was_written(tmp_path):
    image = torch.tensor([-0.1, 0.0, 0.5 / 255, 0.5, 254.49 / 255, 1.0, 1.2]).reshape(1, 1, 7).expand(3, 1, 7)
    frame = images.to_uint8(image)  # torchvision save_image: uint8(clamp(x * 255 + 0.5, 0, 255))
    assert frame.shape == (1, 7, 3) and frame[0, :, 0].tolist() == [0, 0, 1, 128, 254, 255, 255]
    images.save_image(image, str(tmp_path / "sub" / "a.png"))
    images.write_image(frame, str(tmp_path / "b.ppm"))
    for name in ("sub/a.png", "b.ppm"):
        np.testing.assert_array_equal(images.read_image(str(tmp_path / name)), frame)
    assert images.image_size(str(tmp_path / "b.ppm")) == (7, 1)
    with pytest.raises(FileNotFoundError, match="c.png"):
        images.read_image(str(tmp_path / "c.png"))
