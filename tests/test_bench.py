"""The bench/ scripts' --quick modes run and report consistent numbers (the full runs are in bench/README.md)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script: str, tmp_path, *arguments: str) -> dict:
    output = tmp_path / f"{script}.json"
    completed = subprocess.run([sys.executable, os.path.join(REPO, "bench", script), "--quick", "--json",
                                str(output), *arguments], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(output.read_text())
    assert json.loads(next(line for line in completed.stdout.splitlines() if line.startswith("{"))) == document
    for key in ("date", "cpu", "torch", "commit", "load_average_1min"):
        assert key in document["machine"]
    return document


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


@pytest.mark.slow
def test_flops_bench_quick(tmp_path):
    document = _run("bench_flops.py", tmp_path)
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
    assert document["training_step_tflop"] > 0
    assert document["peaks"]["matmul_fp32_gflops"] > 0
    # Sizes shrink from 1024 only where a product is slow (bfloat16 emulated on a CPU), never below 256.
    assert all(256 <= document["peaks"][f"matmul_{name}_size"] <= 1024 for name in ("fp32", "bf16")
               if f"matmul_{name}_size" in document["peaks"])


@pytest.mark.slow
def test_deblur_bench_quick(tmp_path):
    document = _run("bench_deblur.py", tmp_path)
    config = document["config"]
    assert (config["width"], config["height"], config["frames"]) == (64, 48, 3)
    assert document["serial_equals_overlapped"] is True
    rows = {row["variant"]: row for row in document["rows"]}
    assert sorted(rows) == sorted(["model", "serial", "overlapped", "overlapped_level1"])
    assert rows["model"]["vs_model"] == 1.0
    for row in rows.values():
        assert row["frames_per_s"]["n"] == 1 and row["frames_per_s"]["median"] > 0
        assert row["s_per_frame"] == pytest.approx(1.0 / row["frames_per_s"]["median"])
    sizes = {entry["level"]: entry["bytes"] for entry in document["png_levels"]}
    assert sorted(sizes) == [0, 1, 3, 6, 9]
    assert sizes[0] > 64 * 48 * 3 > sizes[1] and sizes[6] <= sizes[1]  # level 0 stores the samples as they are
