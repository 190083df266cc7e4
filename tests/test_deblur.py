"""deblur.py: folders of frames and videos deblurred from a checkpoint, equal to running the model on the
clamped windows of the whole sequence (padded and cropped back), with the model read from the checkpoint."""
import argparse
import errno
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time

import imageio
import numpy as np
import pytest
import torch
from PIL import Image

import constants
import deblur
import runtime
from models import MODELS
from models.dbn import DBN
from models.flowdbn import FlowDBN
from tests.helpers import random_pwcnet, save_model_checkpoint, tame
from utils import checkpoints


@pytest.fixture(autouse=True)
def _cpu_without_native_bf16(monkeypatch):
    """These tests compare float32 results exactly: deblur.py's automatic choice is float32, as on a CPU without
    AMX or AVX512-BF16, whatever CPU runs them (tests of the bf16 path below ask for it or fake the unit)."""
    monkeypatch.setattr(deblur, "native_bf16", lambda device: None)


def _dbn_checkpoint(directory, length=3):
    model = tame(DBN(sequence_length=length, init_type="fan_in"), residual=0.02)
    stored = {"model": "DBN", "training_dataset_sequence_length": length}
    checkpoints.save(str(directory), {"psnr": 30.0}, 1, runtime.ModelAndLoss(model, torch.nn.Module()),
                     extra={"args": stored})
    return str(directory / checkpoints.LATEST), model.eval()


def _frames(count, height, width, seed=0):
    """Smooth moving gradients plus noise, as uint8 frames."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        base = np.stack([np.sin((xs + 2 * t) / 5.0), np.cos((ys - t) / 4.0), np.sin((xs + ys + t) / 7.0)], axis=2)
        frames.append(np.clip((base * 0.4 + 0.5 + rng.normal(0, 0.03, base.shape)) * 255, 0, 255).astype(np.uint8))
    return frames


def _reference(model, frames, length, multiple):
    """Brute force: the whole sequence in memory, clamped windows, padded and cropped frames."""
    height, width = frames[0].shape[:2]
    tensors = [deblur.pad_to_multiple(torch.tensor(f).permute(2, 0, 1)[None].float() / 255, multiple)
               for f in frames]
    outputs = []
    for i in range(len(frames)):
        window = [tensors[min(max(j, 0), len(frames) - 1)] for j in range(i - length // 2, i + length // 2 + 1)]
        with torch.no_grad():
            output = model({f"input{k + 1}": x for k, x in enumerate(window)})["output1"][0, :, :height, :width]
        outputs.append(np.clip(np.floor(output.permute(1, 2, 0).numpy() * 255 + 0.5), 0, 255).astype(np.uint8))
    return outputs


def test_sliding_windows_clamp_at_both_ends():
    for count in (1, 2, 3, 6):
        frames = [(str(i), i) for i in range(count)]
        windows = list(deblur.sliding_windows(iter(frames), 5))
        assert [name for name, _ in windows] == [str(i) for i in range(count)]
        for i, (_, window) in enumerate(windows):
            assert window == [min(max(j, 0), count - 1) for j in range(i - 2, i + 3)]


def test_pad_to_multiple_replicates_the_border():
    image = torch.arange(6.0).view(1, 1, 2, 3)
    padded = deblur.pad_to_multiple(image, 4)
    assert padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[0, 0], torch.tensor([[0.0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]]))


def test_folder_of_frames_with_dbn_checkpoint(tmp_path):
    checkpoint, model = _dbn_checkpoint(tmp_path / "run")
    frames = _frames(11, 20, 28)  # not a multiple of 8: padded to 24x32 and cropped back
    names = [f"f{i}" for i in range(1, 12)]  # natural order: f2 before f10
    (tmp_path / "in").mkdir()
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(tmp_path / "in" / f"{name}.png")
    result = deblur.run(deblur.build_parser().parse_args(
        ["--checkpoint", checkpoint, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]))
    assert (result["model"], result["sequence_length"], result["frames"]) == ("DBN", 3, 11)
    expected = _reference(model, frames, 3, 8)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"{n}.png" for n in names)
    for name, reference in zip(names, expected):
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.array_equal(written, reference), name
    # A real change: the output is not the blurry centre frame, nor saturated.
    assert 0.5 < np.abs(expected[5].astype(float) - frames[5]).mean() < 40


def _deblur_folder(tmp_path, checkpoint, frames, name, *flags):
    folder = tmp_path / "in"
    if not folder.exists():
        folder.mkdir()
        for index, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{index:03d}.png")
    deblur.run(deblur.build_parser().parse_args(
        ["--checkpoint", checkpoint, "--input", str(folder), "--output", str(tmp_path / name), *flags]))
    return [np.asarray(Image.open(tmp_path / name / f"{index:03d}.png")) for index in range(len(frames))]


def test_bf16_fast_path_stays_within_one_level_of_float32_and_none_is_exact(tmp_path, monkeypatch, caplog):
    # bench/README.md's quality table: the demo's trained DBN in bf16 + channels-last + folded BatchNorm changed
    # at most 1 of 255 levels, on about 1% of the pixels (|ΔPSNR| <= 0.002 dB). A tame DBN on smooth frames (a
    # well-conditioned case: no pixel near saturation) must do as well.
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(deblur, "native_bf16", lambda device: "AVX512-BF16")  # as on this project's CPUs
    checkpoint, model = _dbn_checkpoint(tmp_path / "run")
    frames = _frames(4, 40, 56)
    expected = _reference(model, frames, 3, 8)
    fast = _deblur_folder(tmp_path, checkpoint, frames, "auto")
    assert ("precision: bf16 autocast, channels-last, BatchNorm folded (CPU with AVX512-BF16: "
            in caplog.text)
    exact = _deblur_folder(tmp_path, checkpoint, frames, "none", "--amp=none")
    assert "precision: float32 (--amp=none)" in caplog.text
    for reference, written in zip(expected, exact):
        assert np.array_equal(written, reference)  # --amp=none: the exact float32 result, as before
    difference = np.abs(np.stack(fast).astype(int) - np.stack(expected).astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.05, (difference.max(), difference.mean())
    assert difference.any()  # it did run in bf16
    forced = _deblur_folder(tmp_path, checkpoint, frames, "forced", "--amp=bf16")
    assert all(np.array_equal(a, b) for a, b in zip(forced, fast))  # auto took exactly the bf16 path


def test_precision_choice_follows_the_hardware_and_explicit_flags():
    cpu = torch.device("cpu")
    choose = deblur.choose_precision
    precision, fold, line = choose("auto", None, None, cpu)
    assert (precision.amp_dtype, precision.channels_last, fold) == (None, False, False)  # the fixture: no bf16
    assert line.startswith("precision: float32 (CPU without native bf16")
    precision, fold, line = choose("bf16", False, None, cpu)
    assert (precision.amp_dtype, precision.channels_last, fold) == (torch.bfloat16, False, True)
    assert line == "precision: bf16 autocast, BatchNorm folded (--amp=bf16)"
    precision, fold, line = choose("none", True, True, cpu)
    assert (precision.amp_dtype, precision.channels_last, fold) == (None, True, True)
    assert line == "precision: float32, channels-last, BatchNorm folded (--amp=none)"
    assert deblur.build_parser().parse_args(["--checkpoint", "c", "--input", "i", "--output", "o",
                                             "--no-channels_last", "--no-fold_batchnorm"]).channels_last is False


def test_video_from_the_command_line(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    checkpoint, model = _dbn_checkpoint(tmp_path / "run")
    frames = _frames(8, 32, 48, seed=1)
    video = tmp_path / "clip.mp4"
    with imageio.v2.get_writer(str(video), format="FFMPEG", fps=12, codec="libx264", quality=10,
                               macro_block_size=1, pixelformat="yuv444p") as writer:
        for frame in frames:
            writer.append_data(frame)
    assert deblur.main(["--checkpoint", checkpoint, "--input", str(video), "--output", str(tmp_path / "out")]) == 0
    assert "8 frames deblurred" in caplog.text
    decoded = [np.asarray(f) for f in imageio.v2.get_reader(str(video), format="FFMPEG")]
    expected = _reference(model, decoded, 3, 8)
    for index, reference in enumerate(expected):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{index:06d}.png")), reference)
    reader = imageio.v2.get_reader(str(tmp_path / "out" / "clip_deblurred.mp4"), format="FFMPEG")
    assert reader.get_meta_data()["fps"] == pytest.approx(12)
    written = [np.asarray(f) for f in reader]
    reader.close()
    assert len(written) == 8 and written[0].shape == (32, 48, 3)
    # H.264 with 4:2:0 chroma: brightness is kept closely, colour detail at half resolution.
    luma = np.array([0.299, 0.587, 0.114])
    assert np.mean([np.abs((w.astype(float) - e) @ luma).mean() for w, e in zip(written, expected)]) < 2


def test_flowdbn_checkpoint_of_the_original_layout_pads_to_8_like_evaluation(tmp_path):
    flow_file = save_model_checkpoint(tmp_path / "pwcnet.ckpt", random_pwcnet(seed=0).state_dict())
    model = tame(FlowDBN(sequence_length=3, pretrained_pwcnet=flow_file),
                 residual=0.02)
    checkpoint = save_model_checkpoint(tmp_path / "original.ckpt", model.state_dict(), total_loss=1.0, psnr=30.0,
                                       epoch=3)  # no "args"
    os.remove(flow_file)  # the flow weights inside the checkpoint are enough
    frames = _frames(4, 20, 28, seed=2)
    (tmp_path / "in").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "in" / f"{i:04d}.jpg", quality=100)
    stored = [np.asarray(Image.open(tmp_path / "in" / f"{i:04d}.jpg")) for i in range(4)]
    result = deblur.run(deblur.build_parser().parse_args(
        ["--checkpoint", str(checkpoint), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]))
    assert (result["model"], result["sequence_length"], result["frames"]) == ("FlowDBN", 3, 4)
    expected = _reference(model.eval(), stored, 3, 8)  # 20x28 frames run at 24x32
    for i, reference in enumerate(expected):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i:04d}.png")), reference)
    assert 0.5 < np.abs(expected[1].astype(float) - stored[1]).mean() < 40


def test_clear_errors(tmp_path, capsys):
    assert deblur.main(["--checkpoint", str(tmp_path / "none.ckpt"), "--input", str(tmp_path),
                        "--output", str(tmp_path / "o")]) == 2
    assert "--checkpoint: no such file" in capsys.readouterr().err
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    (tmp_path / "frames").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "frames" / "a.png")
    for device, message in [("banana", "--device=banana: expected cpu, cuda or cuda:<index>"),
                            ("cuda:7", "--device=cuda:7: ")]:
        assert deblur.main(["--checkpoint", str(tmp_path / "run"), "--input", str(tmp_path / "frames"),
                            "--output", str(tmp_path / "o"), "--device", device]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    assert deblur.main(["--checkpoint", checkpoint, "--input", str(tmp_path / "broken.mp4"),
                        "--output", str(tmp_path / "o"), "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--input: cannot open video {tmp_path / 'broken.mp4'}: " in lines[0], lines
    torch.save({"state_dict": {"model.flownets.conv1.0.weight": torch.zeros(1)}}, tmp_path / "flow.ckpt")
    (tmp_path / "empty").mkdir()
    assert deblur.main(["--checkpoint", str(tmp_path / "flow.ckpt"), "--input", str(tmp_path / "empty"),
                        "--output", str(tmp_path / "o")]) == 2
    assert "no frames" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "empty" / "a.png")
    assert deblur.main(["--checkpoint", str(tmp_path / "flow.ckpt"), "--input", str(tmp_path / "empty"),
                        "--output", str(tmp_path / "o")]) == 2
    assert "not a DBN or FlowDBN checkpoint" in capsys.readouterr().err


def _deblur_run_folder(tmp_path, frames: list) -> dict:
    """deblur.py with the run folder `tmp_path/run` on `frames` written to `tmp_path/in` (output: `tmp_path/out`)."""
    (tmp_path / "in").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "in" / f"{i:04d}.png")
    return deblur.run(deblur.build_parser().parse_args(
        ["--checkpoint", str(tmp_path / "run"), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
         "--device", "cpu"]))


def test_a_run_folder_is_read_as_its_latest_checkpoint(tmp_path):
    checkpoint, model = _dbn_checkpoint(tmp_path / "run")
    frames = _frames(3, 16, 16)
    result = _deblur_run_folder(tmp_path, frames)
    assert result["frames"] == 3
    expected = _reference(model, frames, 3, 8)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "0001.png")), expected[1])


def test_ctrl_c_ends_with_one_line_and_exit_code_130(tmp_path, capsys, monkeypatch):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    (tmp_path / "in").mkdir()
    Image.fromarray(_frames(1, 16, 16)[0]).save(tmp_path / "in" / "0000.png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(deblur, "deblur_stream", interrupted)
    assert deblur.main(["--checkpoint", checkpoint, "--input", str(tmp_path / "in"), "--output",
                        str(tmp_path / "out"), "--device", "cpu"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        f"deblur.py: interrupted; the frames written so far are in {tmp_path / 'out'}"]


class _TinyResidual(torch.nn.Module):
    """A registered-elsewhere deblurring model written in the original's style (N read from the namespace of
    flags it is given): reference frame + scale * conv(all N frames)."""

    pad_multiple = 4

    def __init__(self, args=None, scale: float = 1.0) -> None:
        super().__init__()
        self.sequence_length = (getattr(args, "validation_dataset_sequence_length", None)
                                or args.training_dataset_sequence_length)
        self.scale = scale  # a plain attribute: only the stored --model_scale can set it
        self.conv = torch.nn.Conv2d(3 * self.sequence_length, 3, 3, padding=1)

    def forward(self, example_dict):
        frames = [example_dict[f"input{i + 1}"] for i in range(self.sequence_length)]
        return {"output1": frames[len(frames) // 2] + self.scale * self.conv(torch.cat(frames, dim=1))}


class _TinyFlow(torch.nn.Module):
    """A registered model that is not a deblurring one: two frames in, a flow out."""

    def __init__(self, args=None) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 2, 3, padding=1)

    def forward(self, example_dict):
        return {"flow1": self.conv(torch.cat([example_dict["input1"], example_dict["input2"]], dim=1))}


def _tiny_checkpoint(directory, stored):
    torch.manual_seed(1)
    model = _TinyResidual(argparse.Namespace(**stored), scale=stored.get("model_scale", 1.0))
    checkpoints.save(str(directory), {"psnr": 30.0}, 1, runtime.ModelAndLoss(model, torch.nn.Module()),
                     extra={"args": stored})
    return str(directory / checkpoints.LATEST), model.eval()


def test_any_registered_model_is_built_from_its_stored_arguments(tmp_path, register):
    register(MODELS, "TinyResidual", _TinyResidual)
    stored = {"model": "TinyResidual", "model_scale": 0.25, "validation_dataset_sequence_length": 3,
              "training_dataset_sequence_length": 5, "loss": "DBNLoss"}
    checkpoint, model = _tiny_checkpoint(tmp_path / "run", stored)
    frames = _frames(5, 18, 22)  # padded to 20x24 by the class's pad_multiple=4
    result = _deblur_run_folder(tmp_path, frames)
    assert (result["model"], result["sequence_length"], result["frames"]) == ("TinyResidual", 3, 5)
    expected = _reference(model, frames, 3, 4)
    for i in range(5):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i:04d}.png")), expected[i])
    # The stored --model_scale=0.25 was used: the default scale 1.0 gives other frames.
    model.scale = 1.0
    assert not np.array_equal(_reference(model, frames, 3, 4)[2], expected[2])


def test_a_model_that_is_not_registered_or_not_deblurring_is_one_line(tmp_path, capsys, register):
    (tmp_path / "in").mkdir()
    Image.fromarray(_frames(1, 16, 16)[0]).save(tmp_path / "in" / "0000.png")
    register(MODELS, "TinyResidual", _TinyResidual)
    checkpoint, _ = _tiny_checkpoint(tmp_path / "run", {"model": "TinyResidual", "training_dataset_sequence_length": 1})
    MODELS.unregister("TinyResidual")
    argv = ["--checkpoint", checkpoint, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    assert deblur.main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "deblur.py: error: --model: the checkpoint holds model 'TinyResidual', which is not registered (is its file "
        f"in models/?); registered: {', '.join(MODELS.names())}"]
    register(MODELS, "TinyFlow", _TinyFlow)
    checkpoints.save(str(tmp_path / "flow"), {"epe": 1.0}, 1, runtime.ModelAndLoss(_TinyFlow(), torch.nn.Module()),
                     extra={"args": {"model": "TinyFlow"}})
    argv[1] = str(tmp_path / "flow")
    assert deblur.main(argv) == 2
    assert "--sequence_length: the checkpoint does not record how many frames TinyFlow sees" in capsys.readouterr().err
    assert deblur.main(argv + ["--sequence_length", "3"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "deblur.py: error: --checkpoint: _TinyFlow is not a deblurring model: its outputs (flow1) have no 'output1'")


# ---------------------------------------------------------------- reading and writing in their own threads
def _main_within(argv, seconds=120):
    """deblur.main(argv) in a thread that must finish within `seconds` (a hang fails the test instead of
    blocking the suite); afterwards none of deblur.py's worker threads may be left running."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", deblur.main(argv)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"deblur.py {' '.join(argv)} did not finish within {seconds} s"
    assert [t.name for t in threading.enumerate() if t.name.startswith("deblur-")] == []
    return result["code"]


def _frame_folder(folder, frames):
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return str(folder)


def _files(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _file_bytes(folder):
    """_files without the sub-folders."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if (folder / name).is_file()}


def test_overlapped_files_are_identical_to_the_serial_ones(tmp_path):
    checkpoint, model = _dbn_checkpoint(tmp_path / "run")
    frames = _frames(7, 20, 28, seed=3)
    folder = _frame_folder(tmp_path / "in", frames)
    for mode in ("serial", "overlapped"):
        argv = ["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / mode), "--fps", "10",
                "--device", "cpu"] + (["--no_overlap"] if mode == "serial" else [])
        assert _main_within(argv) == 0
    serial, overlapped = _files(tmp_path / "serial"), _files(tmp_path / "overlapped")
    assert sorted(serial) == [f"{i:04d}.png" for i in range(7)] + ["deblurred.mp4"]
    assert overlapped == serial  # same names, same bytes (PNGs and the video)
    expected = _reference(model, frames, 3, 8)
    assert all(np.array_equal(np.asarray(Image.open(tmp_path / "overlapped" / f"{i:04d}.png")), expected[i])
               for i in range(7))


def test_overlapped_stream_is_in_order_and_reads_a_bounded_distance_ahead():
    """A slow writer: the reader waits for the queues instead of buffering the whole clip."""
    pulled = []
    lead = []

    def frames():
        for i in range(30):
            pulled.append(i)
            yield f"{i:02d}", np.full((8, 8, 3), i, np.uint8)

    class SlowWriter:
        names = []

        def write(self, name, frame):
            lead.append(len(pulled) - len(self.names))
            time.sleep(0.005)  # slower than the model: the writer's queue fills up
            self.names.append(name)

    model = _TinyResidual(argparse.Namespace(training_dataset_sequence_length=3)).eval()
    writer = SlowWriter()
    assert deblur.deblur_overlapped(model, frames(), 3, 4, torch.device("cpu"), writer, depth=2) == 30
    assert writer.names == [f"{i:02d}" for i in range(30)]
    # In flight at most: writer queue 2 + 1 being written + 1 being deblurred + window 3 + reader queue 2
    # + 1 being read; an unbounded reader would be ~30 frames ahead after the first write.
    assert max(lead) <= 10, lead


def _error_lines(capsys):
    """stderr without tqdm's progress lines (how many there are depends on timing)."""
    return [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("Deblur:")]


@pytest.mark.parametrize("broken", ["size", "unreadable"])
def test_a_reader_error_stops_the_run_with_the_serial_one_line_error(tmp_path, capsys, broken):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    frames = _frames(8, 16, 24, seed=4)
    if broken == "size":
        frames[5] = _frames(1, 16, 32)[0]
    folder = _frame_folder(tmp_path / "in", frames)
    if broken == "unreadable":
        (tmp_path / "in" / "0005.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    outputs = {}
    for mode in ("serial", "overlapped"):
        argv = ["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / mode), "--device", "cpu"]
        assert _main_within(argv + (["--no_overlap"] if mode == "serial" else [])) == 2
        lines = _error_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("deblur.py: error: ") and "0005.png" in lines[0], lines
        outputs[mode] = (lines, _files(tmp_path / mode))
    assert outputs["overlapped"] == outputs["serial"]  # same message, same frames written before it
    assert sorted(outputs["serial"][1]) == ["0000.png", "0001.png", "0002.png", "0003.png"]


def test_a_writer_error_stops_the_run_with_one_line(tmp_path, capsys, monkeypatch):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(8, 16, 24, seed=5))
    for mode in ("serial", "overlapped"):
        (tmp_path / mode / "0002.png").mkdir(parents=True)  # the third frame cannot be written
        argv = ["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / mode), "--device", "cpu"]
        assert _main_within(argv + (["--no_overlap"] if mode == "serial" else [])) == 2
        assert _error_lines(capsys) == [
            f"deblur.py: error: [Errno 21] Is a directory: '{tmp_path / mode / '0002.png'}'"]
    save = deblur.FrameWriter.write

    def disk_full(self, name, frame):
        if name == "0003":
            raise OSError(errno.ENOSPC, "No space left on device")
        save(self, name, frame)

    monkeypatch.setattr(deblur.FrameWriter, "write", disk_full)
    assert _main_within(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "full"),
                         "--device", "cpu"]) == 2
    assert _error_lines(capsys) == ["deblur.py: error: [Errno 28] No space left on device"]
    assert sorted(os.listdir(tmp_path / "full")) == ["0000.png", "0001.png", "0002.png"]


def test_ctrl_c_during_an_overlapped_run_joins_the_threads(tmp_path, capsys, monkeypatch):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(8, 16, 24, seed=6))
    converted = []
    to_uint8 = deblur.to_uint8

    def interrupted_at_the_fourth_frame(image):
        if len(converted) == 3:
            raise KeyboardInterrupt
        converted.append(1)
        return to_uint8(image)

    monkeypatch.setattr(deblur, "to_uint8", interrupted_at_the_fourth_frame)
    assert _main_within(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out"),
                         "--device", "cpu"]) == 130
    assert _error_lines(capsys) == [f"deblur.py: interrupted; the frames written so far are in {tmp_path / 'out'}"]
    assert sorted(os.listdir(tmp_path / "out")) == ["0000.png", "0001.png", "0002.png"]  # the queued ones too


def test_png_compression_changes_the_size_not_the_pixels(tmp_path, capsys):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(3, 32, 48, seed=7))
    for level in ("default", "0", "1", "9"):
        argv = ["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / level), "--device", "cpu"]
        assert _main_within(argv + ([] if level == "default" else ["--png_compression", level])) == 0
    sizes = {level: (tmp_path / level / "0001.png").stat().st_size for level in ("0", "1", "9")}
    assert sizes["0"] > sizes["1"] > sizes["9"], sizes
    assert sizes["0"] > 32 * 48 * 3  # level 0 stores the samples uncompressed
    for level in ("0", "1", "9"):
        for i in range(3):
            assert np.array_equal(np.asarray(Image.open(tmp_path / level / f"{i:04d}.png")),
                                  np.asarray(Image.open(tmp_path / "default" / f"{i:04d}.png")))
    # The default is what PIL writes without a level: today's files, byte for byte.
    pixels = np.asarray(Image.open(tmp_path / "default" / "0001.png"))
    Image.fromarray(pixels).save(tmp_path / "pil.png")
    assert (tmp_path / "pil.png").read_bytes() == (tmp_path / "default" / "0001.png").read_bytes()


# ---------------------------------------------------------------- the output folder (issue 20, defects 1 and 2)
def _one_error_line(capsys):
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("deblur.py: error: "), lines
    return lines[0][len("deblur.py: error: "):]


def test_an_output_that_is_inside_or_around_the_input_is_refused_even_with_overwrite(tmp_path, capsys):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(3, 16, 16))
    before = _files(tmp_path / "in")
    (tmp_path / "in" / "sub").mkdir()
    cases = [(folder, f"--output={folder} is the --input folder"),
             (str(tmp_path / "in" / "sub"), f"is inside the --input folder {folder}"),
             (str(tmp_path / "in" / "new" / "deeper"), f"is inside the --input folder {folder}"),
             (str(tmp_path), f"--output={tmp_path} holds the --input {folder}")]
    for output, message in cases:
        for extra in ([], ["--overwrite"]):
            argv = ["--checkpoint", checkpoint, "--input", folder, "--output", output, "--device", "cpu"] + extra
            assert deblur.main(argv) == 2
            assert message in _one_error_line(capsys)
    assert _file_bytes(tmp_path / "in") == before
    assert os.listdir(tmp_path / "in" / "sub") == [] and not (tmp_path / "in" / "new").exists()
    # A video: the folder that holds the file is around it; the file itself is no output folder.
    video = tmp_path / "clips" / "clip.mp4"
    video.parent.mkdir()
    video.write_bytes(b"a video")
    for output, message in [(str(video.parent), f"holds the --input {video}"), (str(video), "is a file")]:
        assert deblur.main(["--checkpoint", checkpoint, "--input", str(video), "--output", output,
                            "--overwrite"]) == 2
        assert message in _one_error_line(capsys)
    assert video.read_bytes() == b"a video"


def test_an_output_holding_frames_is_refused_and_overwrite_replaces_only_deblurred_files(tmp_path, capsys):
    checkpoint, model = _dbn_checkpoint(tmp_path / "run")
    long_clip = _frame_folder(tmp_path / "long", _frames(4, 16, 16, seed=8))
    short_frames = _frames(2, 16, 16, seed=9)
    short_clip = _frame_folder(tmp_path / "short", short_frames)
    out = tmp_path / "out"
    argv = ["--checkpoint", checkpoint, "--output", str(out), "--device", "cpu"]
    assert deblur.main(argv + ["--input", long_clip, "--fps", "5"]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "folder.png").mkdir()  # not a frame file: kept
    first = _file_bytes(out)
    assert sorted(os.listdir(out)) == ["0000.png", "0001.png", "0002.png", "0003.png", "deblurred.mp4", "folder.png",
                                       "notes.txt"]
    # The short clip would overwrite 2 of the 4 frames and leave 2 of the long clip beside them.
    assert deblur.main(argv + ["--input", short_clip]) == 2
    assert _one_error_line(capsys) == (
        f"--output={out} already holds 5 frame or video file(s) (0000.png, 0001.png, 0002.png, ...): choose "
        f"another --output, or give --overwrite to remove deblur.py's frames and video there first")
    assert deblur.main(argv + ["--input", short_clip, "--overwrite", "--pad_multiple", "3"]) == 2
    _one_error_line(capsys)
    assert _file_bytes(out) == first  # a refused run removes nothing, whatever stopped it
    assert deblur.main(argv + ["--input", short_clip, "--overwrite"]) == 0
    assert sorted(os.listdir(out)) == ["0000.png", "0001.png", "folder.png", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    expected = _reference(model, short_frames, 3, 8)
    assert all(np.array_equal(np.asarray(Image.open(out / f"{i:04d}.png")), expected[i]) for i in range(2))
    # Frames deblur.py never writes are not its to remove: refused even with --overwrite.
    Image.fromarray(short_frames[0]).save(out / "photo.jpg")
    assert deblur.main(argv + ["--input", short_clip, "--overwrite"]) == 2
    assert "holds frames deblur.py does not write (photo.jpg)" in _one_error_line(capsys)
    assert sorted(os.listdir(out)) == ["0000.png", "0001.png", "folder.png", "notes.txt", "photo.jpg"]


# ---------------------------------------------------------------- --checkpoint_mode, log lines, --pad_multiple
def _run_with_two_epochs(directory, validation_keys=("psnr",), args_json=True):
    """A run folder whose best checkpoints are of epoch 1 and whose latest is of epoch 2 (other weights)."""
    stored = {"model": "DBN", "training_dataset_sequence_length": 3, "validation_keys": list(validation_keys)}
    models = [tame(DBN(sequence_length=3, init_type="fan_in"), seed=seed, residual=0.02) for seed in (1, 2)]
    checkpoints.save(str(directory), {key: 30.0 for key in validation_keys}, 1,
                     runtime.ModelAndLoss(models[0], torch.nn.Module()), best_keys=validation_keys,
                     extra={"args": stored})
    checkpoints.save(str(directory), {key: 29.0 for key in validation_keys}, 2,
                     runtime.ModelAndLoss(models[1], torch.nn.Module()), extra={"args": stored})
    if args_json:
        (directory / "args.json").write_text(json.dumps(stored))
    return [model.eval() for model in models]


def test_a_run_folder_gives_its_best_checkpoint_unless_checkpoint_mode_says_latest(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    best, latest = _run_with_two_epochs(tmp_path / "run")
    frames = _frames(2, 16, 16, seed=10)
    folder = _frame_folder(tmp_path / "in", frames)
    expected = {"best": _reference(best, frames, 3, 8), "latest": _reference(latest, frames, 3, 8)}
    assert not np.array_equal(expected["best"][0], expected["latest"][0])
    for mode, model, loaded in [(None, "best", "checkpoint_best_psnr.ckpt (epoch 1)"),
                                ("best", "best", "checkpoint_best_psnr.ckpt (epoch 1)"),
                                ("latest", "latest", "checkpoint_latest_.ckpt (epoch 2)")]:
        out = tmp_path / f"out_{mode}"
        caplog.clear()
        argv = ["--checkpoint", str(tmp_path / "run"), "--input", folder, "--output", str(out), "--device", "cpu"]
        assert deblur.main(argv + ([f"--checkpoint_mode={mode}"] if mode else [])) == 0
        assert f"Loaded {tmp_path / 'run' / loaded}" in caplog.text
        assert all(np.array_equal(np.asarray(Image.open(out / f"{i:04d}.png")), expected[model][i]) for i in range(2))


def test_of_several_best_checkpoints_the_first_validation_key_wins_else_one_line(tmp_path, capsys):
    _run_with_two_epochs(tmp_path / "stored", validation_keys=("ssim", "psnr"), args_json=False)
    assert deblur.resolve_checkpoint(str(tmp_path / "stored"), None) == str(
        tmp_path / "stored" / "checkpoint_best_ssim.ckpt")  # from the checkpoint's stored arguments
    _run_with_two_epochs(tmp_path / "json", validation_keys=("psnr", "ssim"))
    assert deblur.resolve_checkpoint(str(tmp_path / "json"), "best") == str(
        tmp_path / "json" / "checkpoint_best_psnr.ckpt")  # from args.json
    (tmp_path / "json" / "args.json").write_text(json.dumps({"validation_keys": ["epe"]}))
    folder = _frame_folder(tmp_path / "in", _frames(1, 16, 16))
    assert deblur.main(["--checkpoint", str(tmp_path / "json"), "--input", folder, "--output",
                        str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys) == (
        f"--checkpoint_mode=best: {tmp_path / 'json'} holds several best checkpoints (checkpoint_best_psnr.ckpt, "
        f"checkpoint_best_ssim.ckpt) and no validation key of the run picks one; give one of them as --checkpoint")
    _dbn_checkpoint(tmp_path / "latest_only")
    assert deblur.main(["--checkpoint", str(tmp_path / "latest_only"), "--checkpoint_mode=best", "--input", folder,
                        "--output", str(tmp_path / "out")]) == 2
    assert "holds no checkpoint_best_<key>.ckpt; give --checkpoint_mode=latest" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_no_initialisation_line_for_weights_the_checkpoint_replaces(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    DBN(sequence_length=3)
    assert "Initializing FAN_MAX" in caplog.text  # what deblur.py used to print before loading the weights
    caplog.clear()
    folder = _frame_folder(tmp_path / "in", _frames(2, 16, 16))
    assert deblur.main(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out"),
                        "--device", "cpu"]) == 0
    assert "Initializing" not in caplog.text and f"Loaded {checkpoint} (epoch 1)" in caplog.text
    assert logging.getLogger("contrib.weight_init").level == logging.NOTSET  # silenced for deblur.py only
    caplog.clear()
    DBN(sequence_length=3)
    assert "Initializing FAN_MAX" in caplog.text


def test_a_pad_multiple_the_model_cannot_use_is_one_deblur_py_line(tmp_path, capsys):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(2, 20, 28))
    for value, message in [("3", "--pad_multiple=3: DBN needs frames padded to a multiple of 8; give a multiple "
                                 "of 8 or leave the flag out"),
                           ("0", "--pad_multiple=0: expected a positive number of pixels")]:
        assert deblur.main(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out"),
                            "--device", "cpu", "--pad_multiple", value]) == 2
        assert _one_error_line(capsys) == message
    assert not (tmp_path / "out").exists()
    assert deblur.main(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out"),
                        "--device", "cpu", "--pad_multiple", "16"]) == 0


def test_progress_without_a_terminal_is_plain_lines(tmp_path, monkeypatch, caplog):
    """No '\\r' redraws into a file: ProgressBar's interim lines (here every update) and a final one."""
    caplog.set_level(logging.INFO)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(constants, "PROGRESS_PLAIN_INTERVAL_SECS", 0)
    model = _TinyResidual(argparse.Namespace(training_dataset_sequence_length=3)).eval()

    class Keep:
        def write(self, name, frame):
            pass

    frames = ((f"{i}", frame) for i, frame in enumerate(_frames(4, 8, 8)))
    assert deblur.deblur_stream(model, frames, 3, 4, torch.device("cpu"), Keep(), total=4) == 4
    assert stderr.getvalue() == ""  # nothing drawn
    lines = [(record.progress, record.getMessage()) for record in caplog.records if hasattr(record, "progress")]
    assert [progress for progress, _ in lines] == ["interim"] * 3 + ["final"]
    assert [line.split("|")[0] for _, line in lines] == ["Deblur:  25%", "Deblur:  50%", "Deblur:  75%",
                                                         "Deblur: 100%"]
    assert all("\r" not in line and "4/4" in lines[-1][1] for _, line in lines)
    # deblur.py's own console shows them only where no bar draws.
    record = logging.makeLogRecord({"msg": lines[-1][1], "progress": "final"})
    assert deblur._ProgressFilter().filter(record)
    monkeypatch.setattr(deblur.logger, "is_terminal", lambda stream: True)
    assert not deblur._ProgressFilter().filter(record)
    assert deblur._ProgressFilter().filter(logging.makeLogRecord({"msg": "DBN, N=3"}))


@pytest.mark.slow
def test_a_redirected_log_has_plain_lines_the_loaded_file_and_no_initialisation(tmp_path):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(3, 16, 16))
    with open(tmp_path / "log", "w") as log:
        code = subprocess.call([sys.executable, os.path.join(os.path.dirname(deblur.__file__), "deblur.py"),
                                "--checkpoint", str(tmp_path / "run"), "--input", folder, "--output",
                                str(tmp_path / "out"), "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT)
    text = (tmp_path / "log").read_text()
    assert code == 0, text
    assert "\r" not in text and "Initializing" not in text
    lines = text.splitlines()
    assert f"Loaded {checkpoint} (epoch 1)" in lines and "DBN, N=3, frames padded to multiples of 8, on cpu" in lines
    assert [line for line in lines if line.startswith("Deblur:")][-1].startswith("Deblur: 100%|##########| 3/3 [")


# ---------------------------------------------------------------- --tile and the memory a frame needs
def test_tile_sizes_parse_width_first_and_the_grid_covers_the_frame_once():
    assert deblur.parse_tile("64") == (64, 64) and deblur.parse_tile("64x40") == (40, 64)
    for bad in ("0", "64x", "ax4", "1x2x3"):
        with pytest.raises(argparse.ArgumentTypeError):
            deblur.parse_tile(bad)
    grid = deblur.tile_grid(48, 80, (16, 32), 8)
    assert len(grid) == 3 * 3
    covered = np.zeros((48, 80), int)
    for rows, columns, kept_rows, kept_columns in grid:
        covered[kept_rows, kept_columns] += 1
        assert rows.start == max(kept_rows.start - 8, 0) and rows.stop == min(kept_rows.stop + 8, 48)
        assert columns.start == max(kept_columns.start - 8, 0) and columns.stop == min(kept_columns.stop + 8, 80)
    assert (covered == 1).all()
    assert grid[-1][2:] == (slice(32, 48), slice(64, 80))  # the last ones are smaller: 80 = 32 + 32 + 16


def test_tiled_dbn_equals_untiled_up_to_float_rounding_with_the_default_overlap():
    """DBN's outputs depend on inputs up to 81 pixels away: with 88 pixels of overlap every kept pixel sees
    what it sees in the whole frame (a 264-pixel-wide frame, so the middle tiles do not reach both borders)."""
    model = tame(DBN(sequence_length=3, init_type="fan_in"), residual=0.02).eval()
    images = [deblur.pad_to_multiple(torch.tensor(f).permute(2, 0, 1)[None].float() / 255, 8)
              for f in _frames(3, 60, 262)]  # padded to 64x264
    grid = deblur.tile_grid(64, 264, (32, 48), deblur.TILE_OVERLAP)
    assert len(grid) == 2 * 6 and max(c.stop - c.start for _, c, _, _ in grid) == 224 < 264
    with torch.inference_mode():
        whole = deblur._output1(model, images, [None] * 3)
        tiled = deblur._tiled_output1(model, images, [None] * 3, grid)
        assert (tiled - whole).abs().max().item() < 1e-5
        # Too little overlap is not exact: the tiles' borders reach the kept pixels.
        short = deblur._tiled_output1(model, images, [None] * 3, deblur.tile_grid(64, 264, (32, 48), 8))
        assert (short - whole).abs().max().item() > 1e-3  # 0.0098 here (0.038 without overlap, 9e-4 with 40)


def test_tiled_flowdbn_reuses_each_tiles_pyramids_and_stays_close_to_untiled(tmp_path):
    flow_file = save_model_checkpoint(tmp_path / "pwcnet.ckpt", random_pwcnet(seed=0).state_dict())
    model = tame(FlowDBN(sequence_length=3, pretrained_pwcnet=flow_file), residual=0.02).eval()
    frames = [(str(i), frame) for i, frame in enumerate(_frames(4, 60, 90, seed=3))]

    class Keep:
        def __init__(self):
            self.frames = []

        def write(self, name, frame):
            self.frames.append(frame)

    results = {}
    for key, tiling, reuse in [("untiled", None, True), ("tiled", ((32, 48), 16), True),
                               ("tiled, no reuse", ((32, 48), 16), False)]:
        keep = Keep()
        assert deblur.deblur_stream(model, iter(frames), 3, 8, torch.device("cpu"), keep, reuse_pyramids=reuse,
                                    tiling=tiling) == 4
        results[key] = np.stack(keep.frames).astype(int)
    assert np.abs(results["tiled"] - results["tiled, no reuse"]).max() <= 1  # per-tile pyramids, shared
    difference = np.abs(results["tiled"] - results["untiled"])
    assert 0 < difference.max() <= 40  # the flow network sees only the tile: close, not equal
    assert difference.mean() < 3


def test_tile_from_the_command_line_logs_the_tiles_and_the_memory_a_frame_needs(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    checkpoint, model = _dbn_checkpoint(tmp_path / "run")
    frames = _frames(3, 20, 28)
    folder = _frame_folder(tmp_path / "in", frames)
    assert deblur.main(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out"),
                        "--tile", "13x9", "--tile_overlap", "3"]) == 0
    # Rounded up to multiples of 8: 16x16 tiles, 8 pixels of overlap, 2x2 tiles of the 32x24 padded frame.
    assert "--tile: 4 tiles of 16x16 pixels per frame with 8 pixels of overlap; a tile needs about" in caplog.text
    assert re.search(r"An untiled 32x24 frame needs about [\d.]+ [MG]iB on cpu: [\d.]+ [MG]iB held now", caplog.text)
    expected = _reference(model, frames, 3, 8)
    for i, reference in enumerate(expected):
        written = np.asarray(Image.open(tmp_path / "out" / f"{i:04d}.png")).astype(int)
        assert np.abs(written - reference).max() <= 40 and written.shape == reference.shape


def test_the_memory_estimate_matches_a_measurement_and_a_large_frame_gets_a_tile_hint(tmp_path, caplog,
                                                                                      monkeypatch):
    model = tame(DBN(sequence_length=3, init_type="fan_in"), residual=0.02).eval()
    memory = deblur.MemoryModel(model, 3, 8, torch.device("cpu"))
    # DBN keeps 64 channels at full size for its last skip: hundreds of bytes a pixel, whatever the probe sizes.
    assert 400 < memory.per_pixel < 3000
    with torch.inference_mode(), deblur.LiveTensorBytes() as counter:
        deblur._output1(model, [torch.zeros(1, 3, 200, 184) for _ in range(3)], [None] * 3)
    assert memory.extra(200 * 184) == pytest.approx(deblur.MEMORY_OVERHEAD * counter.peak, rel=0.05)
    assert memory.extra(3840 * 2160) > 2 ** 30  # a 4K frame: gigabytes (estimated, never run)
    # The suggested tile: its window (overlap included) adds half the free memory.
    free = 2 * (memory.fixed + memory.per_pixel * (200 + 2 * 88) ** 2)
    assert memory.largest_tile(free, 88, 8) == 200 and memory.largest_tile(free - 1000, 88, 8) == 192
    assert memory.largest_tile(memory.fixed, 88, 8) == 8  # nothing fits: the smallest tile

    caplog.set_level(logging.INFO)
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(2, 16, 24))
    monkeypatch.setattr(deblur, "LARGE_FRAME_PIXELS", 16 * 24)  # "large" for the test
    monkeypatch.setattr(deblur, "available_memory", lambda device: 2 ** 16)
    assert deblur.main(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out")]) == 0
    assert re.search(r"An untiled 24x16 frame needs about [\d.]+ [MG]iB on cpu: .* x1.5 for scratch memory\); "
                     r"0 MiB free", caplog.text)
    hint = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(hint) == 1, hint
    assert hint[0].startswith("An untiled frame needs more memory than cpu has free: give --tile=")


def test_out_of_memory_is_one_line_suggesting_tile(tmp_path, capsys, monkeypatch):
    checkpoint, _ = _dbn_checkpoint(tmp_path / "run")
    folder = _frame_folder(tmp_path / "in", _frames(2, 16, 24))

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 212336640000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(deblur, "deblur_stream", no_memory)
    assert deblur.main(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deblur.py: error: out of memory deblurring 24x16 frames on cpu "
                                                   "(an untiled frame needs about "), lines
    assert "give --tile=" in lines[0]
    assert deblur.main(["--checkpoint", checkpoint, "--input", folder, "--output", str(tmp_path / "out2"),
                        "--tile_overlap", "8"]) == 2
    assert capsys.readouterr().err.strip() == "deblur.py: error: --tile_overlap=8 needs --tile (the size of the tiles)"
