"""The bench/ scripts' --quick modes run and report consistent numbers (the full runs are in bench/README.md)."""
import json
import math
import os
import subprocess
import sys
from typing import Dict, Optional

import pytest
import torch

from contrib.precision import native_bf16

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script: str, tmp_path, *arguments: str, environment: Optional[Dict[str, str]] = None) -> dict:
    output = tmp_path / f"{script}.json"
    completed = subprocess.run([sys.executable, os.path.join(REPO, "bench", script), "--quick", "--json",
                                str(output), *arguments], capture_output=True, text=True, cwd=REPO, timeout=300,
                               env={**os.environ, **(environment or {})})
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(output.read_text())
    assert json.loads(next(line for line in completed.stdout.splitlines() if line.startswith("{"))) == document
    for key in ("date", "cpu", "torch", "commit", "load_average_1min"):
        assert key in document["machine"]
    assert document["machine"]["isa"] == (native_bf16(torch.device("cpu")) or "none")
    return document


def _check_rates(row: dict, seconds: float, matmul: dict) -> None:
    """A row's GFLOP/s are its FLOPs over its median time; its fraction is of the matmul rate of its precision."""
    assert row["gflops"] == pytest.approx(row["tflop"] * 1e3 / seconds)
    assert row["fraction_of_matmul"] == pytest.approx(row["gflops"] / matmul[row["matmul_precision"]]["median"])


@pytest.mark.slow
def test_data_bench_quick(tmp_path):
    document = _run("bench_data.py", tmp_path, "--workers", "0", "2", "--data_dir", str(tmp_path / "data"))
    config = document["config"]
    frames = config["frames_per_sequence"] * config["sequences"]
    for entry in document["summary"]:
        # One uint8 .npy (128-byte header) per blur and per sharp frame; the original: float32 N+1 frames/example.
        frame_bytes = config["width"] * config["height"] * 3
        assert entry["cache_bytes"] == 2 * frames * (frame_bytes + 128)
        assert entry["original_cache_bytes"] == frames * 6 * frame_bytes * 4
        assert entry["cache_size_ratio"] == pytest.approx(2 / 24, rel=0.01)
        for name in ("original", "decode", "cache_cold", "cache_warm"):
            assert entry[f"{name}_crops_per_s"] == pytest.approx(entry[f"{name}_examples_per_s"] * 2)
            assert entry[f"{name}_examples_per_s"] > 0
    rows = document["rows"]
    assert [(r["pipeline"], r["workers"]) for r in rows] == [(p, w) for w in (0, 2) for p in
                                                           ("original", "decode", "cache")]
    assert all(r["examples"] == frames for r in rows)
    # One worker: 6 examples of a 6-frame sequence; the windows of the centres 0, 1, 4, 5 clamp at the ends
    # (0: frames 0,0,0,1,2 -> 3 distinct), so 3 + 4 + 5 + 5 + 4 + 3 inputs + 6 targets = 30 frames per epoch.
    worker = document["one_worker"]
    assert worker["examples"] == frames == 6
    assert worker["frames_read_per_epoch"] == 30
    for name in ("decode", "cache_cold", "cache_warm"):
        # Rates per CPU second (a worker on a core of its own); the wall-clock rate alongside.
        seconds = worker[f"{name}_epoch_cpu_s"]["median"]
        assert worker[f"{name}_crops_per_s"] == pytest.approx(6 * 2 / seconds)
        assert worker[f"{name}_wall_crops_per_s"] == pytest.approx(6 * 2 / worker[f"{name}_epoch_s"]["median"])
        assert worker[f"{name}_frames_per_s"] == pytest.approx(30 / seconds)
        assert worker[f"{name}_workers_per_gpu"] == [math.ceil(c / worker[f"{name}_crops_per_s"])
                                                     for c in (1200, 2600)]


@pytest.mark.slow
def test_flops_bench_quick(tmp_path):
    # A training bench result as an H200 would give it, for a batch other than the flags' (B=2, S=3).
    training = {"machine": {"device": "cuda:0", "gpu": "NVIDIA H200"},
                "config": {"batch_size": 2, "samples_per_example": 3, "crop": 32, "sequence_length": 5},
                "rows": [{"variant": "fp32", "step_s": {"median": 0.002}},
                         {"variant": "bf16", "step_s": {"median": 0.001}}]}
    (tmp_path / "training.json").write_text(json.dumps(training))
    document = _run("bench_flops.py", tmp_path, "--training_json", str(tmp_path / "training.json"))
    tflop = document["tflop_per_frame"]
    pyramid = tflop["one pyramid"]
    assert pyramid > 0
    # 8 pyramids for 4 pairs (original), 5 for 5 frames (per frame), 1 new one per output (streaming).
    assert tflop["PWC-Net, original (2 pyramids per pair)"] - tflop["PWC-Net, per frame (1 pyramid per frame)"] \
        == pytest.approx(3 * pyramid, rel=1e-6)
    assert tflop["FlowDBN, per frame"] - tflop["FlowDBN, streaming"] == pytest.approx(4 * pyramid, rel=1e-6)
    assert tflop["FlowDBN, original"] == pytest.approx(
        tflop["FlowDBN DBN part (2N-1 frames)"] + tflop["PWC-Net, original (2 pyramids per pair)"])
    # DBN's first layer: 5x5 conv from 3*N (15) or 3*(2N-1) (27) channels to 64, the only layer that differs
    # besides f14/f15 (64 -> ni -> 3): the FlowDBN part costs more by exactly those channels.
    width, height = document["config"]["width"], document["config"]["height"]
    extra = 2 * width * height * 12 * (64 * 25 + 64 * 9 + 3 * 9) / 1e12
    assert tflop["FlowDBN DBN part (2N-1 frames)"] - tflop["DBN (N frames)"] == pytest.approx(extra, rel=1e-6)
    # The training step counts the batch that runs (quick: 1 example x 4 crops of 32^2): FLOPs grow linearly in
    # the crops, and the training bench's step (2 x 3 crops) is counted for its own batch.
    assert document["training_step"] == {"model": "FlowDBN", "batch_size": 1, "samples_per_example": 4,
                                         "crops": 4, "size": 32, "sequence_length": 5}
    per_crop = document["training_step_tflop_per_crop"]
    assert per_crop > 0
    assert document["training_step_tflop"] == pytest.approx(4 * per_crop, rel=1e-9)
    fp32, bf16 = document["measured"]
    assert fp32["tflop"] == bf16["tflop"] == pytest.approx(6 * per_crop, rel=1e-9)
    # Brute force for DBN: from N=5 to N=7 only the layers that see the 3N input channels grow: the first 5x5
    # conv (3N -> 64; forward and weight gradient, the input needs none) and f14 / f15 (64 -> 3N -> 3, 3x3;
    # forward, input and weight gradient), 2 FLOPs per multiply-add on 2 crops of 32^2.
    code = ("import sys; sys.path.insert(0, 'bench'); import bench_flops; "
            "print(*(bench_flops.training_step_flops('DBN', 2, 32, n) for n in (5, 7)))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    dbn5, dbn7 = (float(value) for value in completed.stdout.split())
    assert dbn7 - dbn5 == 2 * 2 * 32 * 32 * 6 * (2 * 64 * 25 + 3 * 64 * 9 + 3 * 3 * 9)
    # On an H200 float32 convolutions run as TF32 (cuDNN's default), bf16 at the dense half-precision rate.
    assert document["cuda_float32"] == {"cudnn_allow_tf32": True, "matmul_allow_tf32": False}
    assert fp32["peak_gflops"] == 495000 and bf16["peak_gflops"] == 990000
    assert fp32["fraction_of_peak"] == pytest.approx(6 * per_crop / 0.002 / 495)
    assert bf16["fraction_of_peak"] == pytest.approx(6 * per_crop / 0.001 / 990)
    assert document["peaks"]["matmul_fp32_gflops"] > 0
    # Sizes shrink from 1024 only where a product is slow (bfloat16 emulated on a CPU), never below 256.
    assert all(256 <= document["peaks"][f"matmul_{name}_size"] <= 1024 for name in ("fp32", "bf16")
               if f"matmul_{name}_size" in document["peaks"])


@pytest.mark.slow
def test_flow_precision_bench_quick(tmp_path):
    document = _run("bench_flow_precision.py", tmp_path)
    rows = {(row["magnitude"], row["variant"]): row for row in document["rows"]}
    assert [magnitude for magnitude, _ in rows][::4] == [4.0, 100.0]
    for magnitude in (4.0, 100.0):
        bf16, fp32_scaling, fp32_last, model = (rows[magnitude, variant] for variant in (
            "(b) bf16 flow path", "(c) fp32 upsample+scale", "(d) (c) + fp32 last conv", "model (autocast)"))
        # The model code upsamples and scales in float32: exactly variant (c).
        assert model["flow_dtype"] == "float32"
        for key in ("flow_max_px", "flow_mean_px", "warp_mean_abs_255", "warp_psnr_db", "output_psnr_db"):
            assert model[key] == pytest.approx(fp32_scaling[key], rel=1e-6)
        # The estimator output's bf16 rounding (at most 2^-8 of it) is all (c) keeps; (d) keeps none.
        assert 0 < fp32_scaling["flow_max_px"] <= 2 ** -8 * magnitude * 1.001 < bf16["flow_max_px"]
        assert fp32_last["flow_max_px"] == 0.0 and fp32_last["warp_psnr_db"] == float("inf")
        assert fp32_scaling["warp_psnr_db"] > bf16["warp_psnr_db"]


@pytest.mark.slow
def test_deblur_bench_quick(tmp_path):
    document = _run("bench_deblur.py", tmp_path)
    config = document["config"]
    assert (config["width"], config["height"], config["frames"]) == (64, 48, 3)
    assert document["serial_equals_overlapped"] is True
    rows = {row["variant"]: row for row in document["rows"]}
    assert sorted(rows) == sorted(["model", "serial", "overlapped", "overlapped_level1", "model_fast",
                                   "overlapped_fast"])
    assert rows["model"]["vs_model"] == 1.0
    # The fast variants run deblur.py's --amp=auto choice and are divided by their float32 counterparts.
    fast = "bf16 autocast" if native_bf16(torch.device("cpu")) else "float32"
    assert document["config"]["fast_precision"].startswith(f"precision: {fast}")
    for name, float32 in (("model_fast", "model"), ("overlapped_fast", "overlapped")):
        assert rows[name]["vs_float32"] == pytest.approx(rows[name]["frames_per_s"]["median"]
                                                         / rows[float32]["frames_per_s"]["median"])
        assert rows[float32]["vs_float32"] is None
    for row in rows.values():
        assert row["frames_per_s"]["n"] == 1 and row["frames_per_s"]["median"] > 0
        assert row["s_per_frame"] == pytest.approx(1.0 / row["frames_per_s"]["median"])
    sizes = {entry["level"]: entry["bytes"] for entry in document["png_levels"]}
    assert sorted(sizes) == [0, 1, 3, 6, 9]
    assert sizes[0] > 64 * 48 * 3 > sizes[1] and sizes[6] <= sizes[1]  # level 0 stores the samples as they are


@pytest.mark.slow
def test_amp_quality_bench_quick(tmp_path):
    import glob

    import numpy as np
    import torch
    from PIL import Image

    import runtime
    from contrib.psnr import koehler_psnr
    from models.dbn import DBN
    from tests.helpers import tame
    from utils import checkpoints

    subprocess.run([sys.executable, "-m", "tools.synthetic_gopro", "--out", str(tmp_path / "data"), "--width",
                    "32", "--height", "32", "--layout", "nah", "--train_sequences", "0", "--test_sequences", "1",
                    "--num_frames", "4", "--test_frames", "4"], cwd=REPO, check=True, capture_output=True)
    model = tame(DBN(sequence_length=3, init_type="fan_in"), residual=0.02)
    checkpoints.save(str(tmp_path / "run"), {"psnr": 30.0}, 1, runtime.ModelAndLoss(model, torch.nn.Module()),
                     extra={"args": {"model": "DBN", "training_dataset_sequence_length": 3}})
    document = _run("bench_amp_quality.py", tmp_path, "--checkpoint", str(tmp_path / "run"), "--demo_data",
                    str(tmp_path / "data" / "GOPRO_Large"))
    rows = document["rows"]
    assert [(row["sequence"], row["size"], row["frames"]) for row in rows] == [("demo test", "32x32", 4),
                                                                              ("generated", "64x48", 4)]
    sequence = glob.glob(str(tmp_path / "data" / "GOPRO_Large" / "test" / "*"))[0]

    def frames(kind):
        return [torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
                for path in sorted(glob.glob(os.path.join(sequence, kind, "*.png")))]
    by_hand = np.mean([float(koehler_psnr(b, s, scale_opt=True, trans_opt=True, trans_range=5))
                       for b, s in zip(frames("blur"), frames("sharp"))])
    assert rows[0]["input_psnr"] == pytest.approx(by_hand, abs=1e-9)
    for row in rows:
        assert row["delta_psnr"] == pytest.approx(row["bf16_psnr"] - row["fp32_psnr"], abs=1e-12)
        assert row["delta_psnr_rgb"] == pytest.approx(row["bf16_psnr_rgb"] - row["fp32_psnr_rgb"], abs=1e-12)
        assert 0 <= row["max_abs_levels"] <= 1 and abs(row["delta_psnr"]) < 0.05
        assert row["changed_pixels"] <= 1 and row["mean_abs_levels"] <= row["changed_pixels"] * row["max_abs_levels"]
    assert document["largest_abs_delta_psnr"] == max(max(abs(r["delta_psnr"]), abs(r["delta_psnr_rgb"])) for r in rows)


@pytest.mark.slow
def test_amp_training_bench_quick(tmp_path):
    # The demo recipe for 2 epochs of 4 examples, once in float32 and once in bf16 + channels-last, on 32x32
    # demo frames (scripts/make_demo_data.sh honours DEMO_WIDTH / DEMO_HEIGHT).
    document = _run("bench_amp_training.py", tmp_path, "--data", str(tmp_path / "data"), "--work",
                    str(tmp_path / "work"), environment={"DEMO_WIDTH": "32", "DEMO_HEIGHT": "32"})
    config = document["config"]
    assert (config["epochs"], config["examples"], config["seeds"]) == (2, 4, [0])
    assert "--total_epochs=2" in config["command"] and "--lr_scheduler_milestones=[1]" in config["command"]
    runs = document["runs"]
    assert [(r["variant"], r["seed"]) for r in runs] == [("fp32", 0), ("bf16", 0)]
    for run in runs:
        assert os.path.isfile(os.path.join(run["folder"], "checkpoint_best_psnr.ckpt"))
        assert run["epochs"] == [1, 2] and len(run["psnr_per_epoch"]) == 2
        assert run["final_psnr"] == run["psnr_per_epoch"][-1] and run["best_psnr"] == max(run["psnr_per_epoch"])
        assert all(math.isfinite(v) for v in run["psnr_per_epoch"] + [run["input_psnr"]])
        assert all(s > 0 for s in run["train_s"] + run["valid_s"])
        # Epoch 1 carries one-off costs: the per-epoch figures are those of epoch 2.
        assert (run["train_epoch_s"], run["valid_epoch_s"]) == (run["train_s"][1], run["valid_s"][1])
        assert run["run_s"] > sum(run["train_s"]) + sum(run["valid_s"])
    assert runs[0]["input_psnr"] == runs[1]["input_psnr"]  # the same validation frames
    fp32, bf16 = document["summary"]
    assert bf16["final_psnr"]["mean"] == runs[1]["final_psnr"] and math.isnan(bf16["final_psnr"]["std"])
    assert document["ratios_vs_fp32"]["bf16"]["train_epoch"] == pytest.approx(
        bf16["train_epoch_s"] / fp32["train_epoch_s"])
    check = document["check"]
    assert check["difference_db"] == pytest.approx(runs[1]["final_psnr"] - runs[0]["final_psnr"])
    assert math.isnan(check["two_std_db"]) and check["within"] is False  # one seed: no standard deviation


@pytest.mark.slow
def test_inference_bench_quick(tmp_path):
    document = _run("bench_inference.py", tmp_path, "--no_memory", "--lengths", "--size", "128", "64", "--variants",
                    "streaming", "bf16_channels_last_folded")
    config = document["config"]
    assert (config["width"], config["height"], config["matmul_size"]) == (128, 64, 256)
    rows = {row["variant"]: row for row in document["rows"]}
    assert list(rows) == ["streaming", "bf16_channels_last_folded"]
    matmul = document["matmul_gflops"]
    assert matmul["fp32"]["median"] > 0 and matmul["bf16"]["median"] > 0
    for name, row in rows.items():
        _check_rates(row, row["frame_s"]["median"], matmul)
        assert row["matmul_precision"] == ("bf16" if name.startswith("bf16") else "fp32")
    assert rows["streaming"]["tflop"] == rows["bf16_channels_last_folded"]["tflop"]
    assert rows["streaming"]["speedup_vs_streaming"] == 1.0 and rows["streaming"]["speedup_vs_naive"] is None
    dbn = {row["variant"]: row for row in document["dbn_alone"]["rows"]}
    assert list(dbn) == ["float32", "bf16_channels_last_folded"]
    assert dbn["float32"]["speedup_vs_float32"] == 1.0
    for row in dbn.values():
        _check_rates(row, row["window_s"]["median"], document["dbn_alone"]["matmul_gflops"])
    assert dbn["float32"]["tflop"] == dbn["bf16_channels_last_folded"]["tflop"] < rows["streaming"]["tflop"]


@pytest.mark.slow
def test_training_bench_quick(tmp_path):
    document = _run("bench_training.py", tmp_path, "--batch_size", "1", "--samples_per_example", "1")
    rows = {row["variant"]: row for row in document["rows"]}
    assert list(rows) == ["fp32", "bf16_channels_last"]
    assert document["config"]["rounds"] == 1 and all(row["step_s"]["n"] == 1 for row in rows.values())
    assert rows["fp32"]["speedup_vs_fp32"] == 1.0
    for name, row in rows.items():
        assert math.isfinite(row["final_loss"])
        assert row["matmul_precision"] == ("bf16" if name.startswith("bf16") else "fp32")
        _check_rates(row, row["step_s"]["median"], document["matmul_gflops"])
    assert rows["fp32"]["tflop"] == rows["bf16_channels_last"]["tflop"] > 0
