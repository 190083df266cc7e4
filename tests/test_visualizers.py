"""Visualizers read back through TensorBoard's own event reader, inference frames and metrics,
colour maps against matplotlib and the Middlebury wheel's known colours."""
import io
import logging

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, Dataset

import commandline
import runtime
from contrib.colormap import colorize, colorize_normalized
from contrib.flow_colors import color_wheel, flow_to_color
from contrib.psnr import koehler_psnr
from tests.helpers import reference_json, save_model_checkpoint, trainer_with_default_hooks
from utils import summary
from utils.logger import configure_logging
from utils.records import read_csv_rows
from visualizers.flow_visualizer import FlowVisualizer
from visualizers.gopro_inference import GoProInference
from visualizers.gopro_visualizer import COLOUR_BAR_WIDTH, GoProVisualizer


class _TensorBoard:
    """A run's TensorBoard writer made current, as main.py does around a run, until `close`."""

    def __init__(self, logdir) -> None:
        self.writer = summary.RunSummary(str(logdir))
        self._active = summary.active(self.writer)
        self._active.__enter__()

    def close(self) -> None:
        self._active.__exit__(None, None, None)
        self.writer.close()


# ---------------------------------------------------------------- colours
def test_jet_equals_matplotlib():
    values = torch.cat([torch.rand(2000, generator=torch.Generator().manual_seed(0)),
                        torch.tensor([0.0, 1.0, 0.35, 0.66, 0.125, 0.999, -0.5, 1.5])])
    expected = matplotlib.colormaps["jet"](values.clamp(0, 1).numpy())[:, :3]
    np.testing.assert_allclose(colorize(values).numpy(), expected, atol=1e-6)


def test_colorize_normalized_spans_the_map_per_image():
    maps = torch.stack([torch.linspace(3, 5, 12).view(3, 4), torch.full((3, 4), 7.0)])
    colored = colorize_normalized(maps)
    assert colored.shape == (2, 3, 3, 4)
    jet = matplotlib.colormaps["jet"]
    np.testing.assert_allclose(colored[0, :, 0, 0].numpy(), jet(0.0)[:3], atol=1e-6)   # min → dark blue
    np.testing.assert_allclose(colored[0, :, 2, 3].numpy(), jet(1.0)[:3], atol=1e-6)   # max → dark red
    np.testing.assert_allclose(colored[1, :, 1, 1].numpy(), jet(0.0)[:3], atol=1e-6)   # constant map


def test_middlebury_wheel_colours():
    wheel = color_wheel()
    assert wheel.shape == (55, 3)
    assert torch.equal((wheel[[0, 15, 21, 25, 36, 49]] * 255).round(),
                       torch.tensor([[255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255], [0, 0, 255],
                                     [255, 0, 255]], dtype=torch.float32))
    # u → right, v → down, each of unit length (normalised by max_radius=1).
    flow = torch.tensor([[1.0, 1e-7], [-1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [2.0, 0.0]]).t().reshape(1, 2, 1, 5)
    colors = (flow_to_color(flow, max_radius=1.0)[0, :, 0] * 255).t()
    np.testing.assert_allclose(colors[0].numpy(), [255, 0, 0], atol=1e-3)           # angle −π: wheel[0]
    np.testing.assert_allclose(colors[1].numpy(), [0, 209, 255], atol=1e-3)         # angle 0: wheel[27]
    np.testing.assert_allclose(colors[2].numpy(), [255, (221 + 238) / 2, 0], atol=1e-3)  # wheel[13.5]
    np.testing.assert_allclose(colors[3].numpy(), [255, 255, 255], atol=1e-3)       # no motion: white
    # radius 2 > 1: wheel[0] (atan2(-0.0, -2) = -π) darkened to 75 %
    np.testing.assert_allclose(colors[4].numpy(), [0.75 * 255, 0, 0], atol=1e-3)
    unknown = flow_to_color(torch.tensor([[[[float("nan")]], [[1.0]]]]))
    assert torch.equal(unknown, torch.zeros(1, 3, 1, 1))


# ---------------------------------------------------------------- fixtures: a tiny GoPro-like run
class _Sequences(Dataset):
    """S samples of N frames per example, basenames '<seq>/<frame>' as the GoPro datasets produce."""

    def __init__(self, n_frames, examples=6, samples=2, height=16, width=24):
        self.n_frames, self.examples, self.samples = n_frames, examples, samples
        self.height, self.width = height, width

    def __len__(self):
        return self.examples

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        shape = (self.samples, 3, self.height, self.width)
        example = {f"input{i}": torch.rand(shape, generator=g) for i in range(1, self.n_frames + 1)}
        example["target1"] = torch.rand(shape, generator=g)
        example["index"] = torch.full((self.samples,), float(index))
        example["basename"] = [f"seq{index % 2}/{index:06d}"] * self.samples
        return example


class _FakeFlowDBN(torch.nn.Module):
    """Returns output1 and warped<i> for every non-reference frame, as FlowDBN does."""

    def __init__(self, n_frames, warped=True):
        super().__init__()
        self.n_frames, self.warped = n_frames, warped
        self.weight = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, example_dict):
        reference = self.n_frames // 2
        center = example_dict[f"input{reference + 1}"]
        mean = example_dict["target1"].mean(dim=(1, 2, 3), keepdim=True)
        model_dict = {"output1": center * self.weight + (1 - self.weight) * mean}
        if self.warped:
            for i in range(self.n_frames):
                if i != reference:
                    model_dict[f"warped{i + 1}"] = example_dict[f"input{i + 1}"] * 0.9
        if not self.training:
            model_dict["output1"] = model_dict["output1"].clamp(0, 1)
        return model_dict


class _Loss(torch.nn.Module):
    def forward(self, model_dict, example_dict):
        error = model_dict["output1"] - example_dict["target1"]
        return {"total_loss": 0.5 * (error ** 2).sum(), "psnr": -10 * torch.log10((error ** 2).mean())}


def _config(tmp_path, **overrides):
    return runtime.TrainerConfig(**{"save": str(tmp_path), "total_epochs": 3, "model": "Fake",
                                    "validation_keys": ["psnr"], "validation_modes": ["max"], **overrides})


def _loader(dataset, batch_size):
    return runtime.Loader(DataLoader(dataset, batch_size=batch_size), torch.device("cpu"), True)


def _events(logdir):
    accumulator = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def _decode(image_event):
    return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)).convert("RGB"))


# ---------------------------------------------------------------- GoProVisualizer
@pytest.mark.parametrize("n_frames, scheduler", [(5, True), (7, False)])
def test_gopro_visualizer_scalars_and_images(tmp_path, n_frames, scheduler):
    torch.manual_seed(0)
    tensorboard = _TensorBoard(tmp_path / "tb")
    model_and_loss = runtime.ModelAndLoss(_FakeFlowDBN(n_frames), _Loss())
    optimizer = torch.optim.SGD(model_and_loss.parameters(), lr=0.01)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5) if scheduler else None
    config = _config(tmp_path)
    # 6 examples, batch 2 → 3 training steps; 3 validation steps of batch 1.
    visualizer = GoProVisualizer(None, model_and_loss, optimizer, lr_scheduler=lr_scheduler,
                                 images_every_n_epochs=3, keep_num_training_steps=2, keep_num_validation_steps=1,
                                 track_epochs=True)
    trainer = trainer_with_default_hooks(config, model_and_loss, _loader(_Sequences(n_frames), 2),
                                         _loader(_Sequences(n_frames, examples=3, samples=1), 1), optimizer,
                                         lr_scheduler, visualizer=visualizer, save_checkpoints=False)
    trainer.run()
    tensorboard.close()
    events = _events(tmp_path / "tb")
    scalars = events.Tags()["scalars"]
    lrs = [(e.step, e.value) for e in events.Scalars("lr/group0")]
    expected_lr = [0.01, 0.005, 0.0025] if scheduler else [0.01] * 3
    assert [s for s, _ in lrs] == [1, 2, 3] and np.allclose([v for _, v in lrs], expected_lr)
    for key in ("total_loss", "psnr"):
        assert [e.step for e in events.Scalars(f"train/{key}")] == list(range(1, 10))  # 3 epochs x 3 steps
        valid = events.Scalars(f"valid/{key}")
        assert [e.step for e in valid] == [1, 2, 3]
    csv_rows = read_csv_rows(str(tmp_path / "csv" / "_Sequences_evaluation_losses.csv"))
    assert np.allclose([e.value for e in events.Scalars("valid/psnr")], [float(r["psnr"]) for r in csv_rows])
    # Per-step scalars only in train/, per-epoch ones in lr/, train_epoch/ and valid/.
    assert sorted(scalars) == ["lr/group0", "train/psnr", "train/total_loss", "train_epoch/psnr",
                               "train_epoch/total_loss", "valid/psnr", "valid/psnr_input_baseline",
                               "valid/total_loss", "valid/total_loss_input_baseline"]
    # The input's value at every epoch: a flat line beside the model's.
    baseline = [(e.step, e.value) for e in events.Scalars("valid/psnr_input_baseline")]
    assert baseline == [(epoch, pytest.approx(trainer.input_baseline["psnr"])) for epoch in (1, 2, 3)]
    assert [e.step for e in events.Scalars("train_epoch/psnr")] == [1, 2, 3]
    image_tags = events.Tags()["images"]
    expected_names = [f"input{i}" for i in range(1, n_frames + 1)] + ["gt", "output", "error", "summary"] + \
        [f"warped{i}" for i in range(1, n_frames + 1) if i != n_frames // 2 + 1]
    # Two sections, one slot per kept step, whatever the epochs: 2 training slots and 1 validation slot.
    assert sorted(image_tags) == sorted(f"{section}/{slot}/{name}" for section, slots in
                                        (("train_images", ("00", "01")), ("valid_images", ("00",)))
                                        for slot in slots for name in expected_names)
    # Tracked epochs 1, 2 (track_epochs) and 3 (multiple of 3): 2 training steps each → 6 image steps,
    # written at the global training step; validation images at the epoch number.
    train_steps = sorted(e.step for slot in ("00", "01") for e in events.Images(f"train_images/{slot}/gt"))
    assert len(train_steps) == 6 and all(1 <= s <= 9 for s in train_steps)
    assert [e.step for e in events.Images("valid_images/00/gt")] == [1, 2, 3]
    # The same validation example every epoch: its ground truth does not change.
    truths = [_decode(e) for e in events.Images("valid_images/00/gt")]
    assert all(np.array_equal(truths[0], truth) for truth in truths)
    output = events.Images("valid_images/00/output")[0]
    summary_image = events.Images("valid_images/00/summary")[0]
    assert (output.height, output.width) == (16, 24)
    # 2x2 mosaic at half resolution, and the colour bar of the error
    assert (summary_image.height, summary_image.width) == (16, 24 + COLOUR_BAR_WIDTH)
    error = _decode(events.Images("valid_images/00/error")[0])
    assert error.shape == (16, 24 + COLOUR_BAR_WIDTH, 3) and error[:, :24].max() > 100


def test_gopro_visualizer_with_flowdbn_n7_on_generated_gopro_frames(tmp_path):
    from datasets.gopro_nah import GoProNahTrain
    from losses.dbn_loss import DBNLoss
    from models.flowdbn import FlowDBN
    from models.pwcnet import PWCNet
    from tools.synthetic_gopro import make_gopro_nah

    torch.manual_seed(0)
    root = make_gopro_nah(str(tmp_path / "data"), width=32, height=32, num_frames=2, train_sequences=1,
                          test_sequences=0)
    pwcnet_file = save_model_checkpoint(tmp_path / "pwcnet.ckpt", PWCNet().state_dict())
    config = _config(tmp_path, total_epochs=1)
    dataset = GoProNahTrain(None, root=str(root), sequence_length=7, num_samples_per_example=1, num_examples=1,
                            random_crop=[32, 32], num_workers=0)
    model_and_loss = runtime.ModelAndLoss(FlowDBN(sequence_length=7, pretrained_pwcnet=pwcnet_file), DBNLoss())
    optimizer = torch.optim.SGD([p for p in model_and_loss.parameters() if p.requires_grad], lr=0.005)
    tensorboard = _TensorBoard(tmp_path / "tb")
    visualizer = GoProVisualizer(None, model_and_loss, optimizer, track_epochs=True, keep_num_training_steps=1)
    trainer_with_default_hooks(config, model_and_loss, _loader(dataset, 1), None, optimizer, visualizer=visualizer,
                               save_checkpoints=False).run()
    tensorboard.close()
    events = _events(tmp_path / "tb")
    assert [e.value for e in events.Scalars("lr/group0")] == [pytest.approx(0.005)]
    keys = ["psnr", "psnr_rgb", "ssim", "total_loss"]
    assert sorted(events.Tags()["scalars"]) == ["lr/group0"] + [f"{section}/{key}" for section in
                                                                ("train", "train_epoch") for key in keys]
    tags = events.Tags()["images"]
    prefix = "train_images/00/"
    expected = [f"input{i}" for i in range(1, 8)] + ["gt", "output", "error", "summary"] + \
        [f"warped{i}" for i in (1, 2, 3, 5, 6, 7)]
    assert sorted(tags) == sorted(prefix + name for name in expected)
    warped = _decode(events.Images(prefix + "warped7")[0])
    assert warped.shape == (32, 32, 3) and warped.std() > 5  # a real image, not a blank


def test_gopro_visualizer_without_optimizer_and_untracked_epochs(tmp_path):
    tensorboard = _TensorBoard(tmp_path / "tb")
    model_and_loss = runtime.ModelAndLoss(_FakeFlowDBN(5, warped=False), _Loss())
    visualizer = GoProVisualizer(None, model_and_loss, images_every_n_epochs=2)
    config = _config(tmp_path, total_epochs=1)
    trainer_with_default_hooks(config, model_and_loss, None, _loader(_Sequences(5, examples=2, samples=1), 1),
                               visualizer=visualizer, save_checkpoints=False).run()
    visualizer.on_epoch_init(None, True, 2, 2)  # no optimizer: lr is None, nothing to write, no crash
    tensorboard.close()
    events = _events(tmp_path / "tb")
    assert events.Tags()["images"] == [] and "lr/group0" not in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("valid/total_loss")] == [1]


def test_gopro_visualizer_error_image_matches_brute_force(tmp_path):
    tensorboard = _TensorBoard(tmp_path / "tb")
    visualizer = GoProVisualizer(keep_num_validation_steps=1, images_every_n_epochs=1)
    example = _Sequences(5, examples=1, samples=1)[0]
    output = example["input3"].clone()
    visualizer.on_epoch_init(None, False, 1, 1)
    visualizer.on_step_finished(example, {"output1": output}, {}, False, 0, 1)
    tensorboard.close()
    events = _events(tmp_path / "tb")
    error = _decode(events.Images("valid_images/00/error")[0])
    squared = ((output[0] - example["target1"][0]) ** 2).sum(0).numpy()
    normalized = (squared - squared.min()) / (squared.max() - squared.min())
    expected = np.round(matplotlib.colormaps["jet"](normalized)[..., :3] * 255)
    assert np.abs(error[:, :24].astype(float) - expected).max() <= 1
    # The colour bar beside it: the scale from dark red (top, the largest error) to dark blue (bottom).
    bar = error[:, 24 + 2:24 + 10].astype(float)
    top, bottom = np.round(matplotlib.colormaps["jet"]([1.0, 0.0])[:, :3] * 255)
    assert np.abs(bar[0] - top).max() <= 1 and np.abs(bar[-1] - bottom).max() <= 1
    summary_image = _decode(events.Images("valid_images/00/summary")[0])
    gt = np.floor(example["target1"][0].permute(1, 2, 0).numpy() * 255)
    assert np.abs(summary_image[:8, 12:24].astype(float) - gt[::2, ::2]).max() <= 1  # top right: ground truth


# ---------------------------------------------------------------- GoProInference
def test_gopro_inference_writes_every_frame_and_the_metrics_table(tmp_path):
    configure_logging(str(tmp_path / "logbook.txt"))
    dataset = _Sequences(5, examples=5, samples=1, height=16, width=24)
    model_and_loss = runtime.ModelAndLoss(_FakeFlowDBN(5), _Loss())
    visualizer = GoProInference(None, model_and_loss, save=str(tmp_path / "inference"), run_folder=str(tmp_path))
    config = _config(tmp_path, total_epochs=1)
    trainer_with_default_hooks(config, model_and_loss, None, _loader(dataset, 2), visualizer=visualizer,
                               save_checkpoints=False).run()
    logging.getLogger().handlers[-1].flush()
    model_and_loss.eval()
    per_sequence = {}
    for index in range(len(dataset)):
        example = dataset[index]
        with torch.no_grad():
            output = model_and_loss.model(example)["output1"]
        expected = np.clip(np.floor(output[0].permute(1, 2, 0).numpy() * 255 + 0.5), 0, 255)
        written = np.asarray(Image.open(tmp_path / "inference" / f"seq{index % 2}" / f"{index:06d}.png"))
        assert written.dtype == np.uint8 and np.array_equal(written, expected)
        target = example["target1"]
        mse = ((output[0] - target[0]) ** 2).mean().item()
        per_sequence.setdefault(f"seq{index % 2}", []).append(
            (koehler_psnr(output, target, scale_opt=True, trans_opt=True, trans_range=5).item(),
             -10 * np.log10(mse),
             structural_similarity(output[0].permute(1, 2, 0).numpy(), target[0].permute(1, 2, 0).numpy(),
                                   gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=1.0, channel_axis=2)))
    rows = read_csv_rows(str(tmp_path / "inference_metrics.csv"))
    assert [(r["sequence"], r["frames"]) for r in rows] == [("seq0", "3"), ("seq1", "2"), ("overall", "5")]
    per_sequence["overall"] = [v for key in ("seq0", "seq1") for v in per_sequence[key]]
    for row in rows:
        means = np.mean(per_sequence[row["sequence"]], axis=0)
        assert float(row["psnr"]) == pytest.approx(means[0], abs=1e-4)
        assert float(row["psnr_rgb"]) == pytest.approx(means[1], abs=1e-4)
        assert float(row["ssim"]) == pytest.approx(means[2], abs=1e-4)
    logbook = (tmp_path / "logbook.txt").read_text()
    assert "==> Inference Metrics" in logbook
    overall = next(line for line in logbook.splitlines() if " overall " in line)
    assert f"{float(rows[-1]['psnr']):.4f}" in overall and f"{float(rows[-1]['ssim']):.4f}" in overall
    configure_logging(None)


def test_gopro_inference_flag_errors(tmp_path):
    with pytest.raises(ValueError, match="--visualizer_save"):
        GoProInference()
    with pytest.raises(ValueError, match="--visualizer_ext"):
        GoProInference(save=str(tmp_path), ext=".gifx")


# ---------------------------------------------------------------- FlowVisualizer
class _FakeFlowNet(torch.nn.Module):
    def forward(self, example_dict):
        flow = example_dict["target1"] * 1.1
        if self.training:
            return {f"flow{k}": torch.nn.functional.adaptive_avg_pool2d(flow, (32 // 2 ** k, 48 // 2 ** k)) * 0.05
                    for k in range(2, 5)}
        return {"flow1": flow}


def test_flow_visualizer_progress_images_do_not_touch_the_dictionaries(tmp_path):
    tensorboard = _TensorBoard(tmp_path / "tb")
    visualizer = FlowVisualizer(div_flow=0.05, keep_num_training_steps=1,
                                keep_num_validation_steps=1)
    g = torch.Generator().manual_seed(0)
    example = {"input1": torch.rand(2, 3, 32, 48, generator=g), "input2": torch.rand(2, 3, 32, 48, generator=g),
               "target1": torch.randn(2, 2, 32, 48, generator=g) * 3, "basename": ["alley_1/frame_0001", "b"]}
    network = _FakeFlowNet()
    for train in (True, False):
        network.train(train)
        model_dict = network(example)
        before = {k: v.clone() for k, v in list(example.items())[:3]}
        before_model = {k: v.clone() for k, v in model_dict.items()}
        visualizer.on_epoch_init([0.1], train, 1, 8)
        visualizer.on_step_init(example, train, 0, 1)
        visualizer.on_step_finished(example, model_dict, {"total_loss": torch.tensor(1.0)}, train, 0, 1)
        assert all(torch.equal(before[k], example[k]) for k in before)
        assert all(torch.equal(before_model[k], model_dict[k]) for k in model_dict)
    visualizer.on_epoch_init([0.1], True, 3, 8)  # epoch 3 is not tracked: scalars only
    visualizer.on_step_finished(example, network.train()(example), {"total_loss": torch.tensor(2.0)}, True, 0, 1)
    tensorboard.close()
    events = _events(tmp_path / "tb")
    assert sorted(events.Tags()["images"]) == ["train_images/00/progress", "valid_images/00/progress"]
    train_image = events.Images("train_images/00/progress")[0]
    assert train_image.height == 128 and train_image.width == 4 * 192  # four 8x12 panels scaled to height 128
    valid = _decode(events.Images("valid_images/00/progress")[0])
    assert valid.shape == (128, 4 * 192, 3)
    # Prediction = 1.1 x truth on one colour scale: same hues, so the two flow panels are close.
    assert np.abs(valid[:, 384:576].astype(float) - valid[:, 576:].astype(float)).mean() < 30
    assert [e.value for e in events.Scalars("train/total_loss")] == [1.0, 2.0]


# ---------------------------------------------------------------- flags
def test_visualizer_flags_match_the_original():
    reference = reference_json("cli-flags-per-class.json")
    category = commandline.CATEGORY_BY_NAME["visualizer"]
    for name in ("GoProVisualizer", "GoProInference", "FlowVisualizer"):
        cls = commandline.category_class(category, name)
        flags = []
        for parameter in commandline.constructor_parameters(cls, category.excluded):
            converter, default = commandline.flag_converter_and_default(category, cls, parameter)
            flags.append([f"--visualizer_{parameter.name}", converter.__name__, default])
        assert flags == reference[f"visualizer={name}"], name


# ---------------------------------------------------------------- training curves
def test_plot_records_draws_one_panel_per_key_and_split_with_the_input_baseline(tmp_path):
    from utils import baseline
    from utils.plots import arrange_panels, collect_records, plot_records
    from utils.records import EpochRecorder

    assert plot_records(str(tmp_path)) is None  # no records yet
    for epoch in (1, 2, 3):
        EpochRecorder(None, str(tmp_path), epoch, "GoProNahTrain", mat=False).add_scalars(
            "training_losses", {"total_loss": 100.0 / epoch, "psnr": 20.0 + epoch})
        EpochRecorder(None, str(tmp_path), epoch, "GoProNahTest", mat=False).add_scalars(
            "evaluation_losses", {"total_loss": 120.0 / epoch, "psnr": 19.0 + epoch, "ssim": 0.5 + 0.1 * epoch})
    baseline.write(str(tmp_path), "GoProNahTest", {}, {"total_loss": 30.0, "psnr": 21.5, "ssim": 0.7}, {"mat": False})
    curves = collect_records(str(tmp_path))
    assert sorted(curves) == ["psnr", "ssim", "total_loss"]
    assert curves["psnr"]["GoProNahTrain_training_losses"] == ([1, 2, 3], [21.0, 22.0, 23.0])
    panels = arrange_panels(curves)
    # Training and validation never share an axis; the baseline is a reference line of the validation panel.
    assert sorted(panels) == [("psnr", "training"), ("psnr", "validation"), ("ssim", "validation"),
                              ("total_loss", "training"), ("total_loss", "validation")]
    assert panels[("psnr", "validation")].curves == {"GoProNahTest": ([1, 2, 3], [20.0, 21.0, 22.0])}
    assert panels[("psnr", "validation")].references == {"input (GoProNahTest)": 21.5}
    assert panels[("ssim", "validation")].references == {"input (GoProNahTest)": 0.7}
    assert panels[("psnr", "training")].references == {}
    filename = plot_records(str(tmp_path))
    assert filename == str(tmp_path / "training_curves.png")
    image = np.asarray(Image.open(filename).convert("RGB")).astype(int)
    assert image.shape == (900, 800, 3)  # rows psnr, ssim, total_loss; columns training, validation
    # Curves in matplotlib's first colour (31, 119, 180); the dashed baseline in tab:red, blended by
    # antialiasing across two pixel rows.
    def blue(pixels):
        return (np.abs(pixels - np.array([31, 119, 180])).sum(-1) < 30)

    def red(pixels):
        return (pixels[..., 0] > 150) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)

    def count(row, column, colour):
        rows, columns = slice(row * 300, (row + 1) * 300), slice(column * 400, (column + 1) * 400)
        return int(colour(image[rows, columns]).sum())

    for row, column in [(0, 0), (0, 1), (1, 1), (2, 0), (2, 1)]:
        assert count(row, column, blue) > 50
    assert count(1, 0, blue) == 0  # no ssim in training: an empty slot
    for row in range(3):
        assert count(row, 1, red) > 200 and count(row, 0, red) == 0  # the baseline in validation panels only
    # The line lies at the baseline's height: in the psnr validation panel (values 20..22, input 21.5) the red
    # rows are between the first and last epoch's points.
    panel = image[0:300, 400:800]
    red_rows = np.where(red(panel).sum(1) > 100)[0]
    blue_rows = np.where(blue(panel).sum(1) > 0)[0]
    assert len(red_rows) and blue_rows.min() < red_rows.mean() < blue_rows.max()


def test_resumed_run_continues_the_training_step_axis(tmp_path):
    loader = _loader(_Sequences(5), 2)  # 3 steps per epoch
    visualizer = GoProVisualizer(train_loader=loader, start_epoch=4)
    assert visualizer.global_train_step == 9
    with pytest.raises(ValueError, match="--visualizer_images_every_n_epochs must be positive"):
        GoProVisualizer(images_every_n_epochs=0)
    with pytest.raises(ValueError, match="--visualizer_keep_num_validation_steps must be >= 0"):
        FlowVisualizer(keep_num_validation_steps=-1)


def test_plot_y_axis_leaves_out_a_first_epoch_far_off_the_others(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from utils.plots import Panel, YLimits, plot_records, robust_y_limits
    from utils.records import EpochRecorder

    train = [3000.0, 12.0, 10.0, 9.0]  # an untrained network's first epoch, as in the demo
    panel = Panel({"GoProNahTrain": ([1, 2, 3, 4], train)}, {"input (GoProNahTrain)": 11.0})
    assert robust_y_limits(panel) == YLimits(9.0 - 0.08 * 3, 12.0 + 0.08 * 3, (("GoProNahTrain", 1, 3000.0),))
    below = Panel({"GoProNahTest": ([1, 2, 3], [5.0, 25.0, 26.0])})
    assert robust_y_limits(below) == YLimits(25.0 - 0.08, 26.0 + 0.08, (("GoProNahTest", 1, 5.0),))
    # A 1/epoch loss stays whole (its first value lies 3x the range of the others beyond them, not 4x); so do
    # curves too short to tell and a first epoch that a reference line reaches.
    assert robust_y_limits(Panel({"A": ([1, 2, 3], [100.0, 50.0, 100.0 / 3])})) is None
    assert robust_y_limits(Panel({"A": ([1, 2], [3000.0, 12.0])})) is None
    assert robust_y_limits(Panel({"A": ([1, 2, 3], [3000.0, 12.0, 10.0])}, {"input (A)": 2000.0})) is None

    drawn = []  # each saved figure's y-limits per axes
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda figure, *args, **kwargs: (
        drawn.append([axes.get_ylim() for axes in figure.axes]), save(figure, *args, **kwargs))[1])
    for epoch, value in enumerate(train, start=1):
        EpochRecorder(None, str(tmp_path), epoch, "GoProNahTrain", mat=False).add_scalars(
            "training_losses", {"total_loss": value})
    image = np.asarray(Image.open(plot_records(str(tmp_path))).convert("RGB")).astype(int)
    assert drawn == [[pytest.approx((9.0 - 0.24, 12.0 + 0.24))]]
    assert image.shape == (300, 400, 3)
    blue = np.abs(image - np.array([31, 119, 180])).sum(-1) < 30
    assert blue[25:40, 75:110].sum() > 20  # the arrow head at the top edge (row 35) at epoch 1
