"""utils/frame_records.py through the real command line: per-frame records of every evaluation pass, and
per-frame metrics that do not depend on the batch size."""
import csv
import json
import math

import pytest
import torch

from tests.helpers import run_main, save_model_checkpoint
from utils.records import read_csv_rows

METRICS = ["psnr", "psnr_rgb", "psnr_y", "ssim_y", "ssim_rgb"]
DATASET = "GoProNahTest"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """GOPRO_Large layout whose test split holds 2 sequences of 5 frames at 48x32."""
    from tools.synthetic_gopro import make_gopro_nah

    folder = tmp_path_factory.mktemp("frame_records")
    return str(make_gopro_nah(str(folder / "data"), width=48, height=32, num_frames=5, train_sequences=1,
                              test_sequences=2, seed=1, sub_frames=3))


@pytest.fixture()
def checkpoint(tiny_deblur, tmp_path):
    """A TinyDeblur checkpoint 'after epoch 3' whose residual is random, not zero: outputs differ from the input."""
    torch.manual_seed(3)
    model = tiny_deblur(channels=8, sequence_length=5)
    torch.nn.init.normal_(model.body[-1].weight, std=0.02)
    return save_model_checkpoint(tmp_path / "tiny.ckpt", model.state_dict(), epoch=3)


def _validation(root):
    return [f"--validation_dataset={DATASET}", f"--validation_dataset_root={root}",
            "--validation_dataset_num_workers=0"]


def _evaluate(root, checkpoint, save, *flags):
    result = run_main("--model=TinyDeblur", "--model_channels=8", "--loss=DBNLoss", f"--checkpoint={checkpoint}",
                      *_validation(root), f"--save={save}", "--cuda=false", *flags)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _rows(filename):
    with open(filename, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.mark.slow
def test_per_frame_metrics_do_not_depend_on_the_batch_size(data_root, checkpoint, tmp_path):
    means, frames = {}, {}
    for batch_size in (1, 3, 7):
        save = tmp_path / f"bs{batch_size}"
        _evaluate(data_root, checkpoint, save, f"--batch_size={batch_size}",
                  f"--validation_metrics={','.join(METRICS)}")
        [means[batch_size]] = read_csv_rows(str(save / "csv" / f"{DATASET}_evaluation_losses.csv"))
        frames[batch_size] = read_csv_rows(str(save / "frames" / DATASET / "epoch-001.csv"))
    # The model's convolutions round differently per batch size (float32, ~1e-7 relative); the metrics of a frame
    # only see that rounding, the paper's PSNR within 1e-3 dB and SSIM within 1e-5.
    tolerance = {"psnr": 1e-3, "psnr_rgb": 1e-3, "psnr_y": 1e-3, "ssim_y": 1e-5, "ssim_rgb": 1e-5}
    for key, limit in tolerance.items():
        for batch_size in (3, 7):
            assert abs(float(means[batch_size][key]) - float(means[1][key])) <= limit, (key, batch_size)
            for one, other in zip(frames[1], frames[batch_size]):
                assert abs(float(other[key]) - float(one[key])) <= limit, (key, batch_size, one["basename"])
                # The input is no model output: only the metric's own batched arithmetic could round differently.
                assert float(other[f"input_{key}"]) == pytest.approx(float(one[f"input_{key}"]), abs=1e-9)
    assert 5 < float(means[1]["psnr"]) < 60 and 20 < float(frames[1][0]["input_psnr"]) < 60


def test_records_of_an_evaluation(data_root, checkpoint, tmp_path):
    save = tmp_path / "evaluation"
    _evaluate(data_root, checkpoint, save, "--batch_size=3", "--validation_metrics=psnr,psnr_y,psnr_batched",
              "--validation_metrics_crop_border=2")
    folder = save / "frames" / DATASET
    rows = _rows(folder / "epoch-001.csv")
    names = ["psnr", "psnr_y", "psnr_batched"]
    assert rows[0] == ["sequence", "frame", "basename", *names, *[f"input_{n}" for n in names]]
    rows = rows[1:]
    sequences = sorted({row[0] for row in rows})
    assert len(sequences) == 2
    # Dataset order: the sequences' frames in order, the basename '<sequence>/<frame file stem>'.
    assert [(row[0], int(row[1]), row[2]) for row in rows] == [
        (sequence, frame, f"{sequence}/{frame + 1:06d}") for sequence in sequences for frame in range(5)]
    values = [[float(text) for text in row[3:]] for row in rows]
    assert all(repr(value) == text for row, parsed in zip(rows, values) for value, text in zip(parsed, row[3:]))
    # The per-sequence means, and the run's evaluation means, are the means of the frames.
    summary = _rows(folder / "epoch-001-sequences.csv")
    assert summary[0] == ["sequence", "frames", *names, *[f"input_{n}" for n in names]]
    for index, (sequence, count, *means) in enumerate(summary[1:]):
        assert (sequence, count) == (sequences[index], "5")
        members = [value for row, value in zip(rows, values) if row[0] == sequence]
        for column, mean in enumerate(means):
            assert float(mean) == pytest.approx(math.fsum(v[column] for v in members) / 5, abs=1e-12)
    [evaluation] = read_csv_rows(str(save / "csv" / f"{DATASET}_evaluation_losses.csv"))
    [baseline] = read_csv_rows(str(save / "csv" / f"{DATASET}_input_baseline.csv"))
    for column, name in enumerate(names):
        assert float(evaluation[name]) == pytest.approx(sum(v[column] for v in values) / 10, abs=1e-9), name
        assert float(baseline[name]) == pytest.approx(sum(v[column + 3] for v in values) / 10, abs=1e-9), name
    # psnr_batched gives every frame of a batch of 3 (3, 3, 3, 1 frames) its batch's value.
    batched = [v[2] for v in values]
    assert batched[0] == batched[1] == batched[2] and batched[3] == batched[4] == batched[5]
    document = json.loads((folder / "epoch-001.json").read_text())
    assert document == {"dataset": DATASET, "epoch": 1, "checkpoint": checkpoint, "checkpoint_epoch": 3,
                        "metrics": names, "protocols": document["protocols"], "frames": 10, "crop_border": 2}
    assert list(document["protocols"]) == names and "+-5 px" in document["protocols"]["psnr"]


def test_records_of_a_training_epoch(data_root, tiny_deblur, tmp_path):
    """The validation pass of a training run: the default record metrics, no checkpoint file, the epoch trained;
    its evaluation CSV keeps DBNLoss's own columns, whose means are the frames'."""
    run = tmp_path / "train"
    result = run_main("--model=TinyDeblur", "--model_channels=8", "--loss=DBNLoss", "--optimizer=Adam",
                      "--batch_size=2", "--total_epochs=1", "--training_dataset=GoProNahTrain",
                      f"--training_dataset_root={data_root}", "--training_dataset_random_crop=[32, 32]",
                      "--training_dataset_num_workers=0", "--training_dataset_num_examples=2",
                      *_validation(data_root), "--validation_keys=[psnr]", "--validation_modes=[max]",
                      f"--save={run}", "--cuda=false")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads((run / "frames" / DATASET / "epoch-001.json").read_text())
    assert (document["metrics"], document["checkpoint"], document["checkpoint_epoch"], document["frames"]) == (
        ["psnr", "psnr_rgb", "ssim_rgb"], None, 1, 10)
    header = (run / "csv" / f"{DATASET}_evaluation_losses.csv").read_text().splitlines()[0]
    assert header == "epoch,step,psnr,psnr_rgb,ssim,total_loss"
    [evaluation] = read_csv_rows(str(run / "csv" / f"{DATASET}_evaluation_losses.csv"))
    rows = read_csv_rows(str(run / "frames" / DATASET / "epoch-001.csv"))
    for key, column in (("psnr", "psnr"), ("psnr_rgb", "psnr_rgb"), ("ssim", "ssim_rgb")):
        assert float(evaluation[key]) == pytest.approx(sum(float(r[column]) for r in rows) / 10, abs=1e-5)
