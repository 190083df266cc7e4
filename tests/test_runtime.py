"""The loop itself, on a tiny model and dataset: collation, device keys, means, LR steps, checkpoints."""
import dataclasses
import math
import os

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import callbacks
import runtime
from optim.groups import ParameterScheduler
from tests.helpers import trainer_with_default_hooks
from utils.records import read_csv_rows, read_exhaustive_mat
from visualizers.visualizer import Visualizer


class _Samples(Dataset):
    """Each example holds S samples, like the GoPro datasets."""

    def __init__(self, n=6, samples=2):
        self.n, self.samples = n, samples

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        x = torch.rand(self.samples, 3, 4, 4, generator=g)
        return {"input1": x, "target1": x * 0.5, "index": torch.full((self.samples,), float(index)),
                "basename": [f"seq/{index:03d}_{s}" for s in range(self.samples)]}


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, example_dict):
        return {"output1": example_dict["input1"] * self.scale}


class _Loss(torch.nn.Module):
    def forward(self, model_dict, example_dict):
        error = ((model_dict["output1"] - example_dict["target1"]) ** 2).mean()
        return {"total_loss": error, "batch": torch.tensor(float(example_dict["input1"].size(0)))}


def _config(tmp_path, **overrides):
    return runtime.TrainerConfig(**{"save": str(tmp_path), "model": "Tiny", "total_epochs": 4, **overrides})


def _loader(dataset, batch_size, shuffle=False):
    return runtime.Loader(DataLoader(dataset, batch_size=batch_size, shuffle=shuffle), torch.device("cpu"), True)


def test_collate_samples_keeps_names_aligned_with_tensors():
    batch = next(iter(DataLoader(_Samples(n=2, samples=3), batch_size=2)))
    flat = runtime.collate_samples(batch)
    assert flat["input1"].shape == (6, 3, 4, 4)
    assert flat["index"].tolist() == [0, 0, 0, 1, 1, 1]
    assert flat["basename"] == ["seq/000_0", "seq/000_1", "seq/000_2", "seq/001_0", "seq/001_1", "seq/001_2"]
    assert torch.equal(flat["input1"][4], batch["input1"][1, 1])


def test_to_device_moves_only_input_and_target_keys():
    moved = runtime.to_device({"input1": torch.ones(1), "target1": torch.ones(1), "index": torch.ones(1),
                               "basename": ["a"]}, torch.device("meta"))
    assert moved["input1"].device.type == "meta" and moved["target1"].device.type == "meta"
    assert moved["index"].device.type == "cpu" and moved["basename"] == ["a"]


def test_epoch_means_are_weighted_by_batch_size(tmp_path):
    # 5 examples * 2 samples with batch size 2 and no drop_last: batches of 4, 4, 2 samples.
    loader = _loader(_Samples(n=5, samples=2), 2)
    model_and_loss = runtime.ModelAndLoss(_Model(), _Loss())
    means = runtime.EpochRunner(_config(tmp_path), model_and_loss, loader, train=False).run("Valid")
    assert means["batch"] == pytest.approx((4 * 4 + 4 * 4 + 2 * 2) / 10)
    expected = sum(((x["input1"] * 0.5) ** 2).mean().item() * x["input1"].size(0)
                   for x in loader) / 10
    assert means["total_loss"] == pytest.approx(expected)


def test_training_without_validation_steps_lr_and_checkpoints_every_epoch(tmp_path):
    torch.manual_seed(0)
    model_and_loss = runtime.ModelAndLoss(_Model(), _Loss())
    optimizer = torch.optim.SGD(model_and_loss.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 3], gamma=0.5)
    seen = []

    class Spy(Visualizer):
        def on_epoch_init(self, lr, train, epoch, total_epochs):
            seen.append((epoch, lr[0]))

    trainer = trainer_with_default_hooks(_config(tmp_path), model_and_loss, _loader(_Samples(), 2, shuffle=True), None,
                                         optimizer, scheduler, visualizer=Spy())
    trainer.run()
    # The original's semantics: epoch E trains with gamma ** (#milestones <= E - 1).
    assert seen == [(1, 0.1), (2, 0.1), (3, 0.05), (4, 0.025)]
    checkpoint = torch.load(tmp_path / "checkpoint_latest_.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 4 and "total_loss" in checkpoint
    assert checkpoint["lr_scheduler"]["last_epoch"] == 4
    rows = read_csv_rows(str(tmp_path / "csv" / "_Samples_training_losses.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert float(rows[-1]["total_loss"]) < float(rows[0]["total_loss"])


def test_validation_tracks_best_per_mode(tmp_path):
    model_and_loss = runtime.ModelAndLoss(_Model(), _Loss())
    optimizer = torch.optim.SGD(model_and_loss.parameters(), lr=0.2)
    args = _config(tmp_path, total_epochs=3, validation_keys=["total_loss", "batch"], validation_modes=["min", "max"])
    trainer = trainer_with_default_hooks(args, model_and_loss, _loader(_Samples(), 2), _loader(_Samples(n=3), 1),
                                         optimizer)
    trainer.run()
    best = torch.load(tmp_path / "checkpoint_best_total_loss.ckpt", weights_only=True)
    assert best["epoch"] == 3  # the loss keeps falling
    assert torch.load(tmp_path / "checkpoint_best_batch.ckpt", weights_only=True)["epoch"] == 1  # never beaten
    assert trainer.best_values[0] == pytest.approx(best["total_loss"])
    assert len(read_csv_rows(str(tmp_path / "csv" / "_Samples_evaluation_losses.csv"))) == 3


def test_nan_loss_stops_with_clear_error(tmp_path):
    class NanLoss(_Loss):
        def forward(self, model_dict, example_dict):
            return {"total_loss": model_dict["output1"].sum() * math.nan}

    model_and_loss = runtime.ModelAndLoss(_Model(), NanLoss())
    runner = runtime.EpochRunner(_config(tmp_path), model_and_loss, _loader(_Samples(), 2), True,
                                 torch.optim.SGD(model_and_loss.parameters(), lr=0.1))
    with pytest.raises(FloatingPointError, match="training loss 'total_loss' is nan"):
        runner.run("Train")


def test_clip_grad_and_loshchilov_decay(tmp_path):
    model_and_loss = runtime.ModelAndLoss(_Model(), _Loss())
    optimizer = torch.optim.SGD(model_and_loss.parameters(), lr=0.5)
    runner = runtime.EpochRunner(_config(tmp_path, clip_grad=1e-3, loshchilov_weight_decay=0.1), model_and_loss,
                                 _loader(_Samples(n=1), 1), True, optimizer)
    runner.step(next(iter(_loader(_Samples(n=1), 1))))
    # decay multiplies by (1 - 0.1 * 0.5); the clipped gradient moves the weight by at most 0.5 * 1e-3.
    assert abs(model_and_loss.model.scale.item() - 0.95) <= 0.5e-3 + 1e-7


def _trained(tmp_path, sync_every, loss=None):
    """A model after one training pass that reads losses every `sync_every` steps, and the pass's means."""
    torch.manual_seed(0)
    model_and_loss = runtime.ModelAndLoss(_Model(), loss or _Loss())
    optimizer = torch.optim.Adam(model_and_loss.parameters(), lr=0.1)
    runner = runtime.EpochRunner(_config(tmp_path), model_and_loss, _loader(_Samples(n=7, samples=2), 1), True,
                                 optimizer, sync_every=sync_every)
    return model_and_loss, runner.run("Train")


def test_reading_losses_every_few_steps_changes_no_number(tmp_path):
    """Losses summed on the device in float64 give the means of reading every value; the weights are the same."""
    reference, reference_means = _trained(tmp_path, sync_every=1)
    for sync_every in (3, 100):
        model_and_loss, means = _trained(tmp_path, sync_every)
        assert means == reference_means  # bit for bit
        assert torch.equal(model_and_loss.model.scale, reference.model.scale)


def test_a_non_finite_loss_noticed_at_a_later_read_names_its_step_and_writes_nothing(tmp_path):
    class NanFromStep3(_Loss):
        steps = 0

        def forward(self, model_dict, example_dict):
            NanFromStep3.steps += 1
            loss = super().forward(model_dict, example_dict)
            return {**loss, "total_loss": loss["total_loss"] * (math.inf if NanFromStep3.steps >= 3 else 1.0)}

    with pytest.raises(FloatingPointError, match=r"training loss 'total_loss' is inf \(not finite\) in training step "
                                                 r"3 of this epoch; stopping"):
        _trained(tmp_path, sync_every=5, loss=NanFromStep3())
    assert NanFromStep3.steps == 5  # stopped at the first read after it, not at the end of the epoch
    NanFromStep3.steps = 0
    model_and_loss = runtime.ModelAndLoss(_Model(), NanFromStep3())
    trainer = trainer_with_default_hooks(_config(tmp_path), model_and_loss, _loader(_Samples(n=7), 1), None,
                                         torch.optim.SGD(model_and_loss.parameters(), lr=0.1))
    with pytest.raises(FloatingPointError, match="step 3"):
        trainer.run()
    assert not list(tmp_path.glob("checkpoint*")) and not (tmp_path / "csv").exists()


def test_fp16_decay_skips_the_steps_the_grad_scaler_skips(tmp_path):
    """--loshchilov_weight_decay with --amp=fp16: a step whose scaled gradients overflow leaves the weights as they
    were (the scaler skips the optimizer step; the decay must not shrink them either)."""
    class Overflowing(_Loss):
        def forward(self, model_dict, example_dict):  # finite loss, gradient 1e35 x scale 65536: inf in float32
            return {"total_loss": model_dict["output1"].mean() * 1e-5 * self.factor}

    loss = Overflowing()
    model_and_loss = runtime.ModelAndLoss(_Model(), loss, amp_dtype=torch.float16)
    optimizer = torch.optim.SGD(model_and_loss.parameters(), lr=0.5)
    scaler = torch.amp.GradScaler("cpu")
    runner = runtime.EpochRunner(_config(tmp_path, loshchilov_weight_decay=0.1), model_and_loss,
                                 _loader(_Samples(n=1), 1), True, optimizer, grad_scaler=scaler)
    example = next(iter(_loader(_Samples(n=1), 1)))
    loss.factor = 1e40
    runner.step(example)
    assert model_and_loss.model.scale.item() == 1.0 and scaler.get_scale() == 32768.0  # skipped, scale halved
    loss.factor = 0.0  # a finite step: decay by (1 - 0.1 * 0.5), no gradient
    runner.step(example)
    assert model_and_loss.model.scale.item() == pytest.approx(0.95, abs=1e-7)


def test_progress_postfix_puts_the_given_keys_first():
    # A bar narrower than its postfix keeps the leading fields: the training key (or validation keys) first.
    means = {"psnr": 30.0, "ssim": 0.9, "total_loss": 1234.56789, "a": 1.0}
    assert runtime._format_postfix(means, ["total_loss"]) == \
        "total_loss_avg=1234.5679, a_avg=1.0000, psnr_avg=30.0000, ssim_avg=0.9000"
    assert runtime._format_postfix(means, ["ssim", "missing", "psnr"]) == \
        "ssim_avg=0.9000, psnr_avg=30.0000, a_avg=1.0000, total_loss_avg=1234.5679"


def test_under_torchrun_the_console_says_whose_values_it_shows(monkeypatch):
    assert runtime.rank_label(False) == runtime.rank_label(True) == ""  # one process: nothing to tell apart
    monkeypatch.setattr(runtime.distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(runtime.distributed, "rank", lambda: 0)
    # A pass's bar shows this rank's running means; the epoch's results are reduced over all ranks.
    assert runtime._format_postfix({"psnr": 30.0}, ["psnr"], runtime.rank_label(False)) == "rank 0, psnr_avg=30.0000"
    assert runtime.rank_label(True) == "all ranks"


class _BatchNormModel(torch.nn.Module):
    """A model whose training-mode forward changes its buffers (BatchNorm running statistics)."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm2d(3)

    def forward(self, example_dict):
        return {"output1": self.norm(example_dict["input1"])}


class _TrainingOnlyKeyLoss(_Loss):
    """A loss whose loss_dict has a key in training steps only (like MultiScaleEPE's total_loss)."""

    def forward(self, model_dict, example_dict):
        losses = super().forward(model_dict, example_dict)
        return {**losses, "train_only": losses["total_loss"] * 2} if self.training else losses


def test_training_key_is_checked_against_a_training_steps_keys_and_leaves_no_trace(tmp_path):
    model_and_loss = runtime.ModelAndLoss(_BatchNormModel(), _TrainingOnlyKeyLoss()).eval()
    trainer = runtime.Trainer(_config(tmp_path, training_key="train_only"), model_and_loss, _loader(_Samples(), 2),
                              None, torch.optim.SGD(model_and_loss.parameters(), lr=0.1))
    rng = torch.get_rng_state()
    trainer.check_training_key()  # a key of the training step's loss_dict only: accepted

    assert torch.equal(torch.get_rng_state(), rng) and not model_and_loss.training
    norm = model_and_loss.model.norm
    assert torch.equal(norm.running_mean, torch.zeros(3)) and torch.equal(norm.running_var, torch.ones(3))
    assert norm.num_batches_tracked.item() == 0

    trainer.config = dataclasses.replace(trainer.config, training_key="l1")
    with pytest.raises(ValueError, match=r"^--training_key: 'l1' is not a key of the loss's loss_dict; "
                                         r"available: batch, total_loss, train_only$"):
        trainer.check_training_key()


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before")
def test_parameter_scheduler_step_fills_the_parameters_before_every_epochs_training(tmp_path):
    seen = []

    class Spy(Visualizer):
        def on_epoch_init(self, lr, train, epoch, total_epochs):
            seen.append(model_and_loss.model.scale.item())

    model_and_loss = runtime.ModelAndLoss(_Model(), _Loss())
    param_scheduler = ParameterScheduler(list(model_and_loss.named_parameters()), [
        {"params": "model.scale", "scheduler": "MultiStepLR", "init": 0.5, "milestones": [2], "gamma": 0.1}],
        lambda scheduler, key, value: value)
    runtime.Trainer(_config(tmp_path, total_epochs=3), model_and_loss, _loader(_Samples(n=2), 2), None,
                    torch.optim.SGD(model_and_loss.parameters(), lr=0.0),
                    hooks=[Spy(), callbacks.ParameterSchedulerStep(param_scheduler)]).run()
    assert seen == [0.5, 0.5, pytest.approx(0.05)]


class _Frames(Dataset):
    """Examples of one 16x16 frame each: a blurry input, its sharp target, and an index into two sequences."""

    def __len__(self):
        return 7

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        target = torch.rand(1, 3, 16, 16, generator=g)
        blurry = (torch.roll(target, index % 3, dims=3) + 0.1 * torch.rand(1, 3, 16, 16, generator=g)).clamp(0, 1)
        return {"input1": blurry, "target1": target, "index": torch.full((1,), float(index)),
                "basename": [f"seq{index // 4}/{index:06d}"]}


def test_per_frame_metrics_and_frame_rows_do_not_depend_on_the_batch_size(tmp_path):
    from metrics.frame_metrics import FrameMetrics

    model_and_loss = runtime.ModelAndLoss(_Model(), _Loss())
    with torch.no_grad():
        model_and_loss.model.scale.fill_(0.9)
    results = {}
    for batch_size in (1, 3, 7):
        metrics = FrameMetrics(["psnr", "psnr_y", "ssim_rgb", "psnr_batched"])
        runner = runtime.EpochRunner(_config(tmp_path), model_and_loss, _loader(_Frames(), batch_size), train=False,
                                     metrics=metrics, keep_frames=True)
        results[batch_size] = (runner.run("Valid"), runner.frame_rows)
    for batch_size in (3, 7):
        means, rows = results[batch_size]
        for key in ("psnr", "psnr_y", "ssim_rgb"):
            assert means[key] == pytest.approx(results[1][0][key], abs=1e-12), key
        # Each frame's values are computed alone: equal whatever the batch up to the float rounding of batched
        # convolutions (SSIM's); psnr_batched is the batch's value.
        assert [(r.sequence, r.frame, r.basename) for r in rows] == [(r.sequence, r.frame, r.basename)
                                                                     for r in results[1][1]]
        for row, one in zip(rows, results[1][1]):
            for key, value in one.values.items():
                if "batched" not in key:
                    assert row.values[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        assert means["psnr_batched"] != pytest.approx(results[1][0]["psnr_batched"], abs=1e-3)
    means, rows = results[1]
    assert means["psnr_batched"] == means["psnr"]  # a batch of one is one frame
    assert [(r.sequence, r.frame, r.basename) for r in rows] == [(f"seq{i // 4}", i, f"seq{i // 4}/{i:06d}")
                                                                 for i in range(7)]
    assert set(rows[0].values) == {"psnr", "psnr_y", "ssim_rgb", "psnr_batched", "input_psnr", "input_psnr_y",
                                   "input_ssim_rgb", "input_psnr_batched"}
    assert means["psnr"] == pytest.approx(sum(r.values["psnr"] for r in rows) / 7, abs=1e-12)
    # The model only scales the input: its frames score differently from the input's.
    assert all(r.values["psnr"] != r.values["input_psnr"] for r in rows)


@pytest.mark.filterwarnings("error::UserWarning")  # the schedule's value holder steps before its scheduler
def test_a_parameter_schedules_state_continues_it_in_another_scheduler():
    def schedule():
        scale = torch.nn.Parameter(torch.ones(1))
        groups = [{"params": "scale", "scheduler": "ExponentialLR", "init": 0.5, "gamma": 0.7}]
        return scale, callbacks.ParameterSchedulerStep(ParameterScheduler([("scale", scale)], groups,
                                                                          lambda scheduler, key, value: value))

    scale, hook = schedule()
    values = []
    for epoch in (1, 2):
        hook.before_epoch(None, epoch)
        values.append(scale.item())
    state = hook.state_dict()
    resumed_scale, resumed = schedule()
    resumed.load_state_dict(state)
    for epoch in (3, 4):
        resumed.before_epoch(None, epoch)
        values.append(resumed_scale.item())
    assert values == pytest.approx([0.5, 0.35, 0.245, 0.1715], rel=1e-6)
    with pytest.raises(ValueError, match="holds 2 parameter schedules, this run has 1"):
        schedule()[1].load_state_dict({"schedules": state["schedules"] * 2})


def test_hooks_get_the_validation_epochs_recorder_after_every_validation_step(tmp_path):
    from hooks import HookBase

    calls = []

    class Targets(HookBase):  # a hook of its own: records the targets beside the default hook's outputs
        def record_step(self, recorder, example_dict, model_dict, loss_dict, step, total_steps):
            calls.append((recorder.epoch, step, total_steps, len(example_dict["basename"])))
            recorder.add_images([f"{name}_target" for name in example_dict["basename"]], example_dict["target1"])

    model_and_loss = runtime.ModelAndLoss(_Model(), _Loss())
    config = _config(tmp_path, total_epochs=2, records={"csv": False, "mat": False, "png": True,
                                                        "mat_exhaustive": True})
    trainer = trainer_with_default_hooks(config, model_and_loss, _loader(_Samples(n=2), 2),
                                         _loader(_Samples(n=3, samples=1), 2),
                                         torch.optim.SGD(model_and_loss.parameters(), lr=0.0), save_checkpoints=False)
    trainer.register_hooks([Targets()])
    trainer.run()
    assert calls == [(1, 0, 2, 2), (1, 1, 2, 1), (2, 0, 2, 2), (2, 1, 2, 1)]  # validation steps only
    for epoch in ("epoch-001", "epoch-002"):
        assert sorted(os.listdir(tmp_path / "png" / "_Samples" / epoch / "seq")) == [
            "000_0.png", "000_0_target.png", "001_0.png", "001_0_target.png", "002_0.png", "002_0_target.png"]
    columns = read_exhaustive_mat(str(tmp_path / "mat_exhaustive" / "_Samples_exhaustive.mat"))
    assert columns["epoch"].ravel().tolist() == [1, 1, 1, 2, 2, 2] and columns["output1"].shape == (6, 4, 4, 3)
