"""metrics/: per-frame evaluation metrics against independent computations (scikit-image, contrib.psnr)."""
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from contrib.psnr import koehler_psnr, psnr_rgb, ssim
from losses.dbn_loss import DBNLoss
from metrics import METRICS
from metrics.frame_metrics import RECORD_DEFAULT, FrameMetrics, from_settings, resumed_best_values_note


def pair(frames=3, height=24, width=20, seed=0):
    """A target and a noisy, slightly shifted output in [0, 1] (NCHW float32)."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(frames, 3, height, width, generator=generator)
    target = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1)  # some structure to align
    output = torch.roll(target, shifts=(1, -2), dims=(2, 3)) + 0.05 * torch.randn(target.shape, generator=generator)
    return output.clamp(0.0, 1.0), target


def y_reference(image: torch.Tensor) -> np.ndarray:
    """(H, W) float64 Y of one (3, H, W) frame: RGB rounded to uint8 as saved, then BasicSR's formula, not rounded."""
    rgb8 = np.floor(np.clip(image.double().numpy() * 255.0 + 0.5, 0, 255)).astype(np.uint8)
    r, g, b = (rgb8[c].astype(np.float64) / 255.0 for c in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


@pytest.mark.parametrize("border", [0, 3])
def test_y_channel_psnr_and_ssim_equal_scikit_image(border):
    output, target = pair()
    psnr_y = METRICS.get("psnr_y")(crop_border=border)(output, target)
    ssim_y = METRICS.get("ssim_y")(crop_border=border)(output, target)
    assert psnr_y.dtype == ssim_y.dtype == torch.float64 and psnr_y.shape == ssim_y.shape == (3,)
    inside = (slice(border, -border or None), slice(border, -border or None))
    for frame in range(3):
        y_out, y_gt = y_reference(output[frame])[inside], y_reference(target[frame])[inside]
        assert psnr_y[frame].item() == pytest.approx(peak_signal_noise_ratio(y_gt, y_out, data_range=255),
                                                     abs=1e-9)
        expected = structural_similarity(y_out, y_gt, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255)
        assert ssim_y[frame].item() == pytest.approx(expected, abs=1e-9)
    assert 15 < float(psnr_y.mean()) < 40 and 0.1 < float(ssim_y.mean()) < 0.99  # not a degenerate pair


def test_y_channel_metrics_score_the_frame_as_saved():
    """Output values that round to the target's 8-bit values score like the target itself (100 dB, SSIM 1)."""
    _, target = pair(frames=2)
    target = torch.round(target * 255.0) / 255.0
    output = target + 0.4 / 255.0  # below half a step: the saved frame equals the target
    assert METRICS.get("psnr_y")()(output, target).tolist() == [100.0, 100.0]
    assert METRICS.get("ssim_y")()(output, target).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert float(METRICS.get("psnr_rgb")()(output, target).min()) < 100.0  # the float protocol sees the offset


def test_paper_psnr_is_each_frames_own_and_bit_identical_to_a_batch_of_one():
    output, target = pair(frames=4)
    values = METRICS.get("psnr")()(output, target)
    for frame in range(4):
        alone = koehler_psnr(output[frame:frame + 1], target[frame:frame + 1], scale_opt=True, trans_opt=True,
                             trans_range=5)
        assert values[frame].item() == alone.item()  # bitwise: each frame picks its own scale and shift
    # The order of the frames does not matter, unlike the batched value (one shift for the batch).
    order = torch.tensor([2, 0, 3, 1])
    assert torch.equal(METRICS.get("psnr")()(output[order], target[order]), values[order])
    batched = METRICS.get("psnr_batched")()(output, target)
    expected = koehler_psnr(output, target, scale_opt=True, trans_opt=True, trans_range=5).item()
    assert batched.tolist() == [expected] * 4


def test_dbn_loss_evaluation_psnr_is_the_mean_of_per_frame_values_and_unchanged_for_one_frame():
    output, target = pair(frames=3)
    loss = DBNLoss().eval()
    loss_dict = loss({"output1": output}, {"target1": target})
    assert list(loss_dict) == ["total_loss", "psnr", "psnr_rgb", "ssim"]
    assert loss_dict["psnr"].item() == pytest.approx(float(METRICS.get("psnr")()(output, target).mean()), abs=1e-5)
    one = loss({"output1": output[:1]}, {"target1": target[:1]})
    assert one["psnr"].item() == koehler_psnr(output[:1], target[:1], scale_opt=True, trans_opt=True,
                                              trans_range=5).item()
    # psnr_rgb and ssim_rgb are DBNLoss's psnr_rgb and ssim, frame by frame.
    assert torch.equal(METRICS.get("psnr_rgb")()(output, target), psnr_rgb(output, target).double())
    assert torch.equal(METRICS.get("ssim_rgb")()(output, target), ssim(output, target).double())


@pytest.mark.parametrize("name", ["psnr", "psnr_rgb", "psnr_y", "ssim_y", "ssim_rgb", "psnr_batched"])
def test_border_crop_equals_the_metric_of_the_cropped_frames(name):
    output, target = pair(frames=2, height=30, width=28)
    cropped = METRICS.get(name)(crop_border=4)(output, target)
    expected = METRICS.get(name)()(output[..., 4:-4, 4:-4], target[..., 4:-4, 4:-4])
    assert torch.equal(cropped, expected)
    assert not torch.equal(cropped, METRICS.get(name)()(output, target))


def test_frame_metrics_names_protocols_and_input_prefix():
    metrics = FrameMetrics(["psnr_y", "psnr"], crop_border=2)
    assert metrics.names == ["psnr_y", "psnr"] and metrics.in_loss_dict
    assert set(metrics.protocols()) == {"psnr_y", "psnr"} and all(metrics.protocols().values())
    output, target = pair(frames=2)
    values = metrics(output, target, prefix="input_")
    assert list(values) == ["input_psnr_y", "input_psnr"] and all(v.shape == (2,) for v in values.values())
    assert from_settings(None).names == list(RECORD_DEFAULT) and not from_settings(None).in_loss_dict
    assert from_settings(["ssim_y"], 1).names == ["ssim_y"] and from_settings(["ssim_y"], 1).crop_border == 1


@pytest.mark.parametrize("names,crop,message", [
    (["psnr", "nope"], 0, "--validation_metrics: unknown metric 'nope'; registered: psnr, psnr_batched"),
    (["psnr", "psnr"], 0, "--validation_metrics: psnr given more than once"),
    (["psnr"], -1, "--validation_metrics_crop_border must be >= 0, got -1"),
])
def test_bad_metric_settings_name_the_flag(names, crop, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        FrameMetrics(names, crop)


def test_a_crop_that_leaves_nothing_names_the_flag():
    output, target = pair(frames=1, height=10, width=12)
    with pytest.raises(ValueError, match=r"--validation_metrics_crop_border=5 leaves nothing of a 10x12 frame"):
        METRICS.get("psnr_rgb")(crop_border=5)(output, target)


def test_resumed_best_values_note_only_for_checkpoints_from_before_per_frame_metrics():
    old = {"args": {"validation_keys": ["psnr"]}, "best": {"keys": ["psnr"], "values": [26.1875]}}
    note = resumed_best_values_note(old)
    assert "best_psnr=26.1875" in note and "computed the old way" in note and "kept" in note
    assert resumed_best_values_note({**old, "args": {"validation_metrics": None}}) == ""
    assert resumed_best_values_note({"args": {}, "best": {"keys": [], "values": []}}) == ""
    assert resumed_best_values_note({"args": {}, "best": {"keys": ["total_loss"], "values": [3.5]}}) == ""
