"""scripts/compare_runs.py and utils/compare.py: tables from per-frame records against values computed here,
grouping by arguments, the paired bootstrap, and the original's stats and cleanup."""
import csv
import io
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from scripts import compare_runs
from utils import compare

DATASET = "GoProNahTest"
SEQUENCES = {"GOPR0384_11_00": 3, "GOPR0385_11_01": 2, "GOPR0410_11_00": 4}  # frames per sequence
METRICS = ("psnr", "ssim")


def _arguments(model: str, seed: int, save: str, **extra) -> dict:
    return {"model": model, "loss": "DBNLoss", "seed": seed, "save": save, "prefix": f"run-{seed}",
            "proctitle": f"title{seed}", "training_dataset": "GoProNahTrain", "training_dataset_root": f"/data{seed}",
            "training_dataset_num_workers": seed, "validation_dataset": DATASET, "validation_dataset_root": "/data",
            "optimizer_lr": 1e-4, "validation_keys": ["psnr"], "checkpoint": None, **extra}


def _frame_values(rng: np.random.Generator, offset: float) -> dict:
    """Per-sequence lists of per-frame {metric: value, input_<metric>: value}."""
    values = {}
    for sequence, frames in SEQUENCES.items():
        rows = []
        for _ in range(frames):
            input_psnr, input_ssim = 25 + rng.uniform(0, 3), 0.7 + rng.uniform(0, 0.1)
            rows.append({"psnr": input_psnr + offset + rng.uniform(0, 1), "ssim": input_ssim + offset / 100,
                         "input_psnr": input_psnr, "input_ssim": input_ssim})
        values[sequence] = rows
    return values


def write_run(folder, arguments: dict, epochs: dict, best=None, dataset: str = DATASET) -> None:
    """A run folder with args.json and per-frame records in the contract's format: epochs maps epoch -> values."""
    records = folder / "frames" / dataset
    records.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps({**arguments, "save": str(folder)}))
    for epoch, values in epochs.items():
        with open(records / f"epoch-{epoch:03d}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sequence", "frame", "basename", *METRICS, *(f"input_{m}" for m in METRICS)])
            for sequence, rows in values.items():
                for number, row in enumerate(rows, start=1):
                    writer.writerow([sequence, number, f"{number:06d}.png"]
                                    + [repr(row[k]) for k in (*METRICS, *(f"input_{m}" for m in METRICS))])
        (records / f"epoch-{epoch:03d}.json").write_text(json.dumps(
            {"dataset": dataset, "epoch": epoch, "checkpoint": str(folder / "checkpoint_latest_.ckpt"),
             "checkpoint_epoch": epoch, "metrics": list(METRICS), "protocols": {}, "frames": 9, "crop_border": 0}))
    if best is not None:
        (folder / "checkpoint_best_psnr.json").write_text(json.dumps({"psnr": 1.0, "epoch": best}))


def _sections(text: str) -> list:
    """The CSV tables of --csv output: [(title, rows as dicts)]."""
    sections = []
    text = text[text.index("Runs: "):]  # after what loggers that an earlier in-process main.py set up printed
    for block in text.strip().split("\n\n"):
        title, body = block.split("\n", 1)
        sections.append((title, list(csv.DictReader(io.StringIO(body)))))
    return sections


def _run(*argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        code = compare_runs.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def four_runs(tmp_path):
    """DBN and FlowDBN, seeds 1 and 2: records of epochs 1 and 2 (best: 1); returns folders and epoch-1 values."""
    rng = np.random.default_rng(7)
    runs, values = [], []
    for model, offset in (("DBN", 1.0), ("FlowDBN", 1.5)):
        for seed in (1, 2):
            folder = tmp_path / f"{model}-{seed}"
            best = _frame_values(rng, offset)
            write_run(folder, _arguments(model, seed, str(folder)), {1: best, 2: _frame_values(rng, 0.0)}, best=1)
            runs.append(folder)
            values.append(best)
    return runs, values


def _frame_mean(values: dict, key: str) -> float:
    return float(np.mean([row[key] for rows in values.values() for row in rows]))


def test_compare_two_models_two_seeds_against_hand_computed_values(four_runs):
    runs, values = four_runs
    code, out, err = _run(*runs, "--csv", "--checkpoint", "best")
    assert code == 0, err
    (_, run_rows), (groups_title, group_rows), (_, paired_rows) = _sections(out)
    assert [row["run"] for row in run_rows] == ["DBN-1", "DBN-2", "FlowDBN-1", "FlowDBN-2"]
    assert [row["group"] for row in run_rows] == ["G1", "G1", "G2", "G2"]
    for row, run_values in zip(run_rows, values):
        assert row["epoch"] == "1" and row["frames"] == "9"
        for m in METRICS:
            mean, baseline = _frame_mean(run_values, m), _frame_mean(run_values, f"input_{m}")
            assert float(row[m]) == pytest.approx(mean, abs=1e-12)
            assert float(row[f"input {m}"]) == pytest.approx(baseline, abs=1e-12)
            assert float(row[f"gain {m}"]) == pytest.approx(mean - baseline, abs=1e-12)
    assert "differ in: model" in groups_title
    for row, members in zip(group_rows, (values[:2], values[2:])):
        assert row["n"] == "2" and row["runs"] in ("DBN-1 DBN-2", "FlowDBN-1 FlowDBN-2")
        for m in METRICS:
            means = [_frame_mean(v, m) for v in members]
            gains = [_frame_mean(v, m) - _frame_mean(v, f"input_{m}") for v in members]
            assert float(row[m]) == pytest.approx(np.mean(means), abs=1e-12)
            assert float(row[f"{m} std"]) == pytest.approx(abs(means[0] - means[1]) / math.sqrt(2), abs=1e-12)
            assert float(row[f"gain {m}"]) == pytest.approx(np.mean(gains), abs=1e-12)
    # Paired: per sequence, the group's mean over runs of the sequence's frame mean; FlowDBN minus DBN.
    assert [(row["compared"], row["metric"]) for row in paired_rows] == [("G2 - G1", "psnr"), ("G2 - G1", "ssim")]
    for row, m in zip(paired_rows, METRICS):
        per_sequence = {s: [np.mean([r[m] for r in v[s]]) for v in values] for s in SEQUENCES}
        d = np.array([np.mean(v[2:]) - np.mean(v[:2]) for v in per_sequence.values()])
        w = np.array(list(SEQUENCES.values()), dtype=float)
        # The frame-weighted mean of the differences is the difference of the groups' frame means.
        assert float(row["difference"]) == pytest.approx(
            np.mean([_frame_mean(v, m) for v in values[2:]]) - np.mean([_frame_mean(v, m) for v in values[:2]]),
            abs=1e-12)
        assert float(row["difference"]) == pytest.approx(np.sum(w * d) / np.sum(w), abs=1e-12)
        low, high = float(row["95% low"]), float(row["95% high"])
        assert low <= float(row["difference"]) <= high and row["sequences"] == "3"
        assert row["excludes 0"] == ("yes" if low > 0 or high < 0 else "no")


def test_latest_checkpoint_and_text_styles(four_runs):
    runs, _ = four_runs
    code, out, _ = _run(runs[0], "--checkpoint", "latest", "--metrics", "psnr")
    assert code == 0 and "Runs: GoProNahTest, checkpoint latest" in out
    header, rule, row = out.splitlines()[1:4]
    assert header.split() == ["run", "group", "model", "parameters", "GFLOP", "epoch", "frames", "psnr", "input",
                              "psnr", "gain", "psnr"]
    assert set(rule) == {"-", " "} and row.split()[:7] == ["DBN-1", "DBN-1", "DBN", "-", "-", "2", "9"]
    _, markdown, _ = _run(*runs, "--markdown", "--metrics", "ssim")
    assert "| G1    | DBN     | 2 |" in markdown and " ± " in markdown
    _, latex, _ = _run(*runs, "--latex", "--metrics", "ssim")
    assert "\\begin{tabular}" in latex and "\\pm" in latex and "DBN-1 DBN-2" in latex


def test_grouping_ignores_seed_and_run_specific_keys_only():
    base = _arguments("DBN", 1, "runs/a/run1")
    same = {**_arguments("DBN", 2, "runs/b/run2"), "validation_dataset_num_workers": 8,
            "training_dataset_cache_dir": "cache", "checkpoint_mode": "best", "resume": "runs/b/run2",
            "holistic_records_png": True, "cuda": False}
    other_lr = {**base, "optimizer_lr": 1e-3}
    pwcnet = {**base, "model_pretrained_pwcnet": "x/prewarping_networks/pwcnet.ckpt"}
    pwcnet_elsewhere = {**base, "model_pretrained_pwcnet": "y/pwcnet.ckpt", "seed": 5}
    other_network = {**base, "model_pretrained_pwcnet": "x/other.ckpt"}
    groups = compare.group_indices([base, same, other_lr, pwcnet, pwcnet_elsewhere, other_network])
    assert groups == [[0, 1], [2], [3, 4], [5]]
    assert compare.differing_keys([base, other_lr, other_network]) == ["model_pretrained_pwcnet", "optimizer_lr"]


def test_mean_std_uses_ddof_1():
    value = compare.MeanStd.of([1.0, 2.0, 4.0])
    assert value.mean == pytest.approx(7 / 3) and value.n == 3
    assert value.std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert math.isnan(compare.MeanStd.of([3.0]).std)


def test_bootstrap_matches_a_brute_force_loop_and_the_exact_distribution():
    d, w = np.array([0.3, -0.1, 0.5]), np.array([3.0, 2.0, 4.0])
    estimate, low, high = compare.bootstrap_interval(d, w, resamples=10000, seed=0)
    assert estimate == pytest.approx(np.sum(w * d) / np.sum(w))
    rng = np.random.default_rng(0)  # the same draws, one resample at a time
    draws = rng.integers(0, 3, size=(10000, 3))
    loop = [sum(w[i] * d[i] for i in row) / sum(w[i] for i in row) for row in draws]
    assert (low, high) == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])), abs=1e-12)
    # Against the exact bootstrap distribution (all 27 equally likely resamples): within sampling error.
    exact = sorted(sum(w[i] * d[i] for i in row) / sum(w[i] for i in row)
                   for row in itertools.product(range(3), repeat=3))
    assert min(exact) <= low <= exact[1] + 1e-12 and exact[-2] - 1e-12 <= high <= max(exact)
    assert compare.bootstrap_interval(d, w, seed=0) == (estimate, low, high)  # fixed seed: reproducible
    # Differences all positive: the interval excludes zero.
    assert compare.bootstrap_interval([0.1, 0.2, 0.15, 0.3])[1] > 0


def test_model_figures_count_parameters_and_flops_of_a_checkpoint(tmp_path):
    from bench_flops import count

    from models.dbn import DBN

    model = DBN(sequence_length=3)
    filename = tmp_path / "checkpoint.ckpt"
    torch.save({"epoch": 1, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "args": {"model": "DBN", "validation_dataset_sequence_length": 3}}, filename)
    name, parameters, flops = compare_runs.model_figures(str(filename), (64, 48))
    assert name == "DBN" and parameters == sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        meta = DBN(sequence_length=3).eval()
    example = {f"input{i}": torch.empty(1, 3, 48, 64, device="meta") for i in (1, 2, 3)}
    with torch.no_grad():
        assert flops == count(lambda: meta(example)) and flops > 0


def test_bad_input_names_the_folder(tmp_path, four_runs):
    runs, _ = four_runs
    (tmp_path / "empty").mkdir()
    code, out, err = _run(tmp_path / "empty")
    assert code == 2 and out == ""
    assert err == f"compare_runs.py: {tmp_path / 'empty'}: not a run folder (no args.json)\n"
    (tmp_path / "norecords").mkdir()
    (tmp_path / "norecords" / "args.json").write_text("{}")
    code, _, err = _run(runs[0], tmp_path / "norecords")
    assert code == 2 and err.count("\n") == 1 and "norecords: no per-frame records" in err
    other = tmp_path / "other"
    write_run(other, _arguments("DBN", 3, str(other)), {1: _frame_values(np.random.default_rng(1), 1.0)},
              dataset="GoProSuQuantitativeValid")
    code, _, err = _run(runs[0], other)
    assert code == 2 and f"{other}: records of GoProSuQuantitativeValid" in err and "mismatched" in err
    code, _, err = _run(runs[0], "--metrics", "psnr_y")
    assert code == 2 and "--metrics: psnr_y not recorded" in err


def _experiment(folder, epochs: int, best: dict = None) -> None:
    folder.mkdir()
    for name in compare.EXPERIMENT_FILES:
        (folder / name).write_text("{}")
    (folder / "csv").mkdir()
    (folder / "csv" / "GoProNahTrain_training_losses.csv").write_text(
        "epoch,total_loss\n" + "".join(f"{e},1.0\n" for e in range(1, epochs + 1)))
    if best is not None:
        (folder / "checkpoint_best_psnr.json").write_text(json.dumps(best))


def test_stats_prints_the_best_checkpoint_of_every_run(tmp_path):
    _experiment(tmp_path / "20190101-000000-simple-LeNet", 6, {"xe": 0.0312, "top1": 0.99, "epoch": 12})
    _experiment(tmp_path / "20190102-000000-flowdbn-128-5-su-FlowDBN", 7,
                {"total_loss": 1234.5678, "psnr": 30.987, "ssim": 0.9, "epoch": 7})
    (tmp_path / "no-best").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "checkpoint_best_psnr.json").write_text('{"psnr": 1}')
    code, out, _ = _run("stats", tmp_path)
    assert code == 0
    assert out.splitlines() == [
        "            20190101-000000-simple-LeNet  ==>  epoch:  12      xe: 0.03",
        "20190102-000000-flowdbn-128-5-su-FlowDBN  ==>  epoch:   7    psnr: 30.99 total_loss: 1234.57",
        f"Could not read {tmp_path / 'broken' / 'checkpoint_best_psnr.json'}"]
    _, out, _ = _run("stats", tmp_path, "--keys", "ssim")
    assert out.splitlines()[1].endswith("epoch:   7    ssim: 0.90")


def test_cleanup_dry_run_deletes_nothing_and_delete_removes_short_runs(tmp_path):
    _experiment(tmp_path / "20190101-000000-simple-LeNet", 6)
    _experiment(tmp_path / "20190102-000000-flowdbn-128-5-su-FlowDBN", 2)
    (tmp_path / "notanexp").mkdir()
    _experiment(tmp_path / "shortrun", 0)
    (tmp_path / "a-file.txt").write_text("plain files are ignored")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, _ = _run("cleanup", tmp_path)
    assert code == 0 and out == (
        "  Would keep 20190101-000000-simple-LeNet with 6 epochs\n"
        "Would remove 20190102-000000-flowdbn-128-5-su-FlowDBN\n"
        "  Would keep notanexp (no experiment)\n"
        "Would remove shortrun\n"
        "\n"
        "Settings were: delete=False, keep=5.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    code, out, _ = _run("cleanup", tmp_path, "--delete", "--keep", "2")
    assert out.splitlines()[:4] == ["   Kept 20190101-000000-simple-LeNet with 6 epochs",
                                    "   Kept 20190102-000000-flowdbn-128-5-su-FlowDBN with 2 epochs",
                                    "   Kept notanexp (no experiment)", "Removed shortrun"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(before) - {"shortrun"})


def test_cleanup_keeps_a_run_that_a_live_process_holds(tmp_path):
    _experiment(tmp_path / "running", 0)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from utils.run_folder import RunLock; RunLock(sys.argv[1]).acquire(); "
         "print('locked', flush=True); sys.stdin.read()", str(tmp_path / "running")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=compare_runs.REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        _, out, _ = _run("cleanup", tmp_path, "--delete")
        assert out.splitlines()[0] == "   Kept running with 0 epochs (in use by a running process)"
    finally:
        holder.communicate("")
    assert (tmp_path / "running").is_dir()
    _, out, _ = _run("cleanup", tmp_path, "--delete")
    assert out.splitlines()[0] == "Removed running" and not (tmp_path / "running").exists()


@pytest.mark.slow
def test_evaluate_and_compare_real_runs(tmp_path, random_pwcnet_checkpoint):
    """DBN (two seeds) and FlowDBN trained for one tiny epoch; --evaluate writes per-frame records with main.py
    (the flow network from FlowDBN's checkpoint: its prewarping file is gone by then); the tables agree with
    them. (Two models x two seeds: above, on written records; a fourth real run would only add time.)"""
    import shutil

    from tests.helpers import run_main
    from tools.synthetic_gopro import make_gopro_nah

    root = str(make_gopro_nah(str(tmp_path / "data"), width=64, height=48, num_frames=4, train_sequences=1,
                              test_sequences=2, seed=0, sub_frames=3))
    pwcnet = tmp_path / "pwcnet.ckpt"
    shutil.copyfile(random_pwcnet_checkpoint, pwcnet)
    runs = []
    for model, seeds in (("DBN", (1, 2)), ("FlowDBN", (1,))):
        for seed in seeds:
            save = tmp_path / "runs" / f"{model}-{seed}"
            flags = [f"--model={model}", "--loss=DBNLoss", "--optimizer=Adam", "--batch_size=1", "--total_epochs=1",
                     "--training_dataset=GoProNahTrain", f"--training_dataset_root={root}",
                     "--training_dataset_random_crop=[32, 32]", "--training_dataset_num_workers=0",
                     "--training_dataset_num_examples=1", "--training_dataset_sequence_length=3", f"--seed={seed}",
                     f"--save={save}", "--cuda=false", f"--proctitle=seed{seed}"]
            flags += [f"--model_pretrained_pwcnet={pwcnet}"] if model == "FlowDBN" else []
            result = run_main(*flags)
            assert result.returncode == 0, result.stderr[-2000:]
            runs.append(save)
    pwcnet.unlink()
    code, _, err = _run(runs[0], "--evaluate")  # --checkpoint best, the default, of a run without validation
    assert code == 2 and err == (f"compare_runs.py: {runs[0]}: no checkpoint_best_<key>.ckpt (a run without "
                                 f"validation keeps only its latest); use --checkpoint latest\n")
    code, out, err = _run(*runs, "--evaluate", "--checkpoint", "latest", "--cuda", "false", "--csv")
    assert code == 0, err
    assert err.count("evaluating ") == 3
    (_, run_rows), (_, group_rows), (_, paired_rows) = _sections(out)
    for row, run in zip(run_rows, runs):
        records, = (run / "evaluations").glob("GoProNahTest-latest-epoch001/frames/GoProNahTest/epoch-[0-9]*[0-9].csv")
        frames = list(csv.DictReader(io.StringIO(records.read_text())))
        metrics = [m for m in frames[0] if m not in ("sequence", "frame", "basename") and not m.startswith("input_")]
        assert {"psnr", "psnr_rgb"} <= set(metrics) and len({f["sequence"] for f in frames}) == 2
        assert row["epoch"] == "1" and row["frames"] == str(len(frames)) and float(row["GFLOP"]) > 0
        for m in metrics:
            mean = np.mean([float(f[m]) for f in frames])
            assert float(row[m]) == pytest.approx(mean, abs=1e-9)
            assert float(row[f"gain {m}"]) == pytest.approx(mean - np.mean([float(f[f"input_{m}"]) for f in frames]),
                                                           abs=1e-9)
    assert [row["group"] for row in run_rows] == ["G1", "G1", "G2"]
    assert [row["n"] for row in group_rows] == ["2", "1"] and {r["compared"] for r in paired_rows} == {"G2 - G1"}
    psnr = [np.mean([float(f["psnr"]) for f in csv.DictReader(io.StringIO(path.read_text()))]) for path in
            sorted(tmp_path.glob("runs/DBN-*/evaluations/*/frames/GoProNahTest/epoch-[0-9]*[0-9].csv"))]
    assert float(group_rows[0]["psnr"]) == pytest.approx(np.mean(psnr), abs=1e-9)
    assert float(group_rows[0]["psnr std"]) == pytest.approx(np.std(psnr, ddof=1), abs=1e-9)
    assert int(run_rows[2]["parameters"].replace(" ", "")) > int(run_rows[0]["parameters"].replace(" ", ""))
    # Evaluated before: the records are reused.
    code, again, err = _run(*runs, "--evaluate", "--checkpoint", "latest", "--csv")
    assert code == 0 and "evaluating" not in err and _sections(again) == _sections(out)


def test_paired_differences_need_the_same_sequences(tmp_path):
    rng = np.random.default_rng(3)
    values = _frame_values(rng, 1.0)
    first, second = tmp_path / "a", tmp_path / "b"
    write_run(first, _arguments("DBN", 1, str(first)), {1: values})
    shorter = {**values, "GOPR0385_11_01": values["GOPR0385_11_01"][:1]}  # one frame fewer in one sequence
    write_run(second, _arguments("FlowDBN", 1, str(second)), {1: shorter})
    code, _, err = _run(first, second)
    assert code == 2 and err == (f"compare_runs.py: {second / 'frames' / DATASET}: other sequences or frame counts "
                                 f"than {first / 'frames' / DATASET} (mismatched datasets: groups a and b)\n")
