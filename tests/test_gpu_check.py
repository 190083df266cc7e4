"""bench/gpu_check.sh in its quick CPU mode: every stage runs and passes (DDP with 2 gloo processes), each
stage's JSON carries its key numbers, a subset reruns, and a failing stage does not stop the ones after it."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["env", "data", "correctness", "correlation", "amp", "resume", "ddp", "speed_training", "speed_eval",
          "deblur", "loader", "profile", "compile"]


def _check(out, **environment) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    env.update(PYTHON=sys.executable, OUT=str(out), GPU_CHECK_DEVICE="cpu", GPU_CHECK_QUICK="1", **environment)
    result = subprocess.run(["bash", os.path.join(REPO, "bench", "gpu_check.sh")], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_quick_cpu_check_passes_every_stage_and_reruns_a_subset(tmp_path):
    out = tmp_path / "check"
    summary = _check(out)
    assert [entry["stage"] for entry in summary["stages"]] == STAGES
    failed = {entry["stage"]: entry["reason"] for entry in summary["stages"] if entry["status"] != "passed"}
    assert failed == {}
    assert summary["counts"] == {"passed": len(STAGES), "failed": 0, "skipped": 0}
    assert all(entry["budget_s"] == 180 and entry["exit_status"] == 0 for entry in summary["stages"])
    numbers = {entry["stage"]: entry["numbers"] for entry in summary["stages"]}
    for stage in STAGES:
        assert json.loads((out / f"{stage}.json").read_text())["numbers"] == numbers[stage]
        assert (out / f"{stage}.log").is_file()
    # On the CPU the "device" is the CPU: the comparisons are exact.
    for model in ("DBN", "FlowDBN"):
        entry = numbers["correctness"][f"{model}_tf32_off"]
        assert entry["loss_rel_diff"] == 0 and entry["abs_delta_psnr_db"] == 0 and entry["psnr_cpu"] > 10
    assert numbers["correlation"]["forward_max_rel_diff"] == 0
    assert numbers["amp"]["fp16"]["steps"] == 2 and 0 <= numbers["amp"]["fp16"]["skipped_steps"] < 2
    assert numbers["resume"]["training_epochs"] == ["1", "2"]
    assert numbers["ddp"]["backend"] == "gloo"
    assert numbers["ddp"]["GoProNahTest_evaluation_losses_epochs"] == ["1", "2"]
    rows = numbers["speed_training"]["rows"]
    assert [row["variant"] for row in rows] == ["fp32", "tf32", "channels_last", "bf16", "fp16"]
    assert all(row["crops_per_s"] == pytest.approx(row["steps_per_s"] * row["crops"]) for row in rows)
    assert len({row["tflop_per_step"] for row in rows}) == 1  # the same batch, whatever the precision
    assert [row["N"] for row in numbers["speed_eval"]["rows"]] == [5, 7]
    assert numbers["deblur"]["frames"] == 3
    assert numbers["loader"]["supply_crops_per_s"] > 0 and numbers["loader"]["demand_crops_per_s_fastest_variant"] > 0
    assert sum(numbers["profile"]["fraction"].values()) == pytest.approx(1.0)
    assert numbers["compile"]["backend"] == "eager"

    # A subset reruns; the other stages' results stay listed.
    before = (out / "env.json").read_text()
    summary = _check(out, GPU_CHECK_STAGES="correlation,env")
    assert [line.split("\t")[0] for line in (out / "stages.tsv").read_text().splitlines()] == ["env", "correlation"]
    assert (out / "env.json").read_text() != before  # rewritten (its seconds differ at least)
    assert [entry["stage"] for entry in summary["stages"]] == STAGES


@pytest.mark.slow
def test_a_failing_stage_is_reported_and_the_next_ones_still_run(tmp_path):
    out = tmp_path / "check"
    summary = _check(out, GPU_CHECK_STAGES="env,correlation", GPU_CHECK_FAIL="env")
    status = {entry["stage"]: (entry["status"], entry["reason"]) for entry in summary["stages"]}
    assert status == {"env": ("failed", "RuntimeError: failure injected by GPU_CHECK_FAIL=env"),
                      "correlation": ("passed", None)}
    assert "failure injected" in (out / "env.log").read_text()
    assert summary["counts"] == {"passed": 1, "failed": 1, "skipped": 0}
