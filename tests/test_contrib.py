"""Numerical checks of contrib: resizing, correlation, warping, weight init, PSNR and SSIM."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from contrib.correlation import Correlation, correlation, sampler_available
from contrib.interpolation import resize2d, resize2d_as
from contrib.psnr import koehler_psnr, psnr_rgb, rgb_to_gray, ssim
from contrib.warping import warp_border, warp_with_mask
from contrib.weight_init import fan_max_std, initialize_dbn, initialize_msra_leaky

# --------------------------------------------------------------------------------------------
# resize2d
# --------------------------------------------------------------------------------------------

def test_resize2d_same_size_returns_input_unchanged():
    x = torch.rand(1, 2, 5, 6)
    assert resize2d(x, (5, 6)) is x
    assert resize2d_as(x, torch.zeros(3, 1, 5, 6)) is x


def test_resize2d_smaller_uses_adaptive_avg_pool():
    x = torch.rand(2, 3, 9, 16)
    torch.testing.assert_close(resize2d(x, (5, 8)), F.adaptive_avg_pool2d(x, (5, 8)), rtol=0, atol=0)


def test_resize2d_larger_uses_interpolation_with_given_align_corners():
    x = torch.rand(2, 2, 3, 4)
    for align in (True, False):
        expected = F.interpolate(x, size=(5, 8), mode="bilinear", align_corners=align)
        torch.testing.assert_close(resize2d(x, (5, 8), align_corners=align), expected, rtol=0, atol=0)
    # Flow magnitudes are not rescaled: a constant field stays the same constant.
    constant = torch.full((1, 2, 3, 4), 2.5)
    torch.testing.assert_close(resize2d(constant, (6, 8)), torch.full((1, 2, 6, 8), 2.5))


def test_resize2d_compares_sizes_lexicographically():
    # (10, 20) vs (8, 30): not "smaller" as tuples although the width shrinks -> interpolation.
    x = torch.rand(1, 1, 8, 30)
    expected = F.interpolate(x, size=(10, 20), mode="bilinear", align_corners=True)
    torch.testing.assert_close(resize2d(x, (10, 20)), expected, rtol=0, atol=0)
    # (10, 20) vs (12, 10): "smaller" as tuples although the width grows -> adaptive pooling.
    y = torch.rand(1, 1, 12, 10)
    torch.testing.assert_close(resize2d(y, (10, 20)), F.adaptive_avg_pool2d(y, (10, 20)), rtol=0, atol=0)


def test_resize2d_nearest_mode_works():
    x = torch.arange(4.0).view(1, 1, 2, 2)
    out = resize2d(x, (4, 4), mode="nearest")
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 3, 3].item() == 3.0


# --------------------------------------------------------------------------------------------
# correlation
# --------------------------------------------------------------------------------------------

def brute_force_correlation(f1: np.ndarray, f2: np.ndarray, r: int) -> np.ndarray:
    batch, channels, height, width = f1.shape
    patch = 2 * r + 1
    out = np.zeros((batch, patch * patch, height, width), dtype=np.float64)
    for b in range(batch):
        for ph in range(patch):
            for pw in range(patch):
                for y in range(height):
                    for x in range(width):
                        y2, x2 = y + ph - r, x + pw - r
                        if 0 <= y2 < height and 0 <= x2 < width:
                            out[b, ph * patch + pw, y, x] = float(np.dot(f1[b, :, y, x], f2[b, :, y2, x2]))
    return out


def test_correlation_matches_brute_force_loop():
    f1 = torch.randn(2, 3, 6, 7)
    f2 = torch.randn(2, 3, 6, 7)
    out = correlation(f1, f2, max_displacement=4)
    assert out.shape == (2, 81, 6, 7)
    expected = brute_force_correlation(f1.double().numpy(), f2.double().numpy(), 4)
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_correlation_channel_is_vertical_major_and_unnormalised():
    f1 = torch.zeros(1, 5, 12, 12)
    f2 = torch.zeros(1, 5, 12, 12)
    f1[0, :, 6, 6] = 1.0
    # Displacement dy=+2, dx=-3 -> channel (2+4)*9 + (-3+4) = 55; the 5 channels are summed, not averaged.
    f2[0, :, 8, 3] = 0.5
    out = correlation(f1, f2)
    assert out[0, 55, 6, 6].item() == pytest.approx(2.5)
    assert out[0, :, 6, 6].abs().sum().item() == pytest.approx(2.5)
    assert out.abs().sum().item() == pytest.approx(2.5)


def test_correlation_gradcheck_float64():
    small1 = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    small2 = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: correlation(a, b, 1), (small1, small2))
    f1 = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    # Displacement 4 on a 4x5 image: most samples fall outside, so the padding path is exercised.
    # fast_mode checks random projections of the Jacobian instead of all 81·40 rows.
    assert torch.autograd.gradcheck(lambda a, b: correlation(a, b, 4), (f1, f2), fast_mode=True)


def test_correlation_gradient_matches_autograd_of_shifted_products():
    f1 = torch.randn(1, 4, 9, 11, requires_grad=True)
    f2 = torch.randn(1, 4, 9, 11, requires_grad=True)
    weights = torch.randn(1, 81, 9, 11)
    (correlation(f1, f2) * weights).sum().backward()
    grads = f1.grad.clone(), f2.grad.clone()
    f1.grad, f2.grad = None, None
    padded = F.pad(f2, (4, 4, 4, 4))
    reference = torch.stack([(f1 * padded[:, :, dy:dy + 9, dx:dx + 11]).sum(1)
                             for dy in range(9) for dx in range(9)], dim=1)
    (reference * weights).sum().backward()
    torch.testing.assert_close(grads[0], f1.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], f2.grad, rtol=1e-5, atol=1e-5)


def test_correlation_module_is_stateless_and_rejects_bad_input():
    module = Correlation()
    assert len(module.state_dict()) == 0
    with pytest.raises(ValueError, match="equal shape"):
        correlation(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="unknown correlation backend"):
        correlation(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), backend="cuda")


@pytest.mark.skipif(sampler_available(), reason="spatial_correlation_sampler is installed here")
def test_correlation_sampler_backend_unavailable_is_a_clear_error():
    with pytest.raises(ValueError, match="not importable"):
        correlation(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), backend="spatial_correlation_sampler")


@pytest.mark.skipif(not sampler_available(), reason="spatial_correlation_sampler is not installed")
def test_correlation_sampler_backend_agrees_with_pure_pytorch():
    f1, f2 = torch.randn(2, 8, 10, 12), torch.randn(2, 8, 10, 12)
    torch.testing.assert_close(correlation(f1, f2, backend="spatial_correlation_sampler"),
                               correlation(f1, f2), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# warping
# --------------------------------------------------------------------------------------------

def constant_flow(u: float, v: float, batch: int, height: int, width: int) -> torch.Tensor:
    flow = torch.empty(batch, 2, height, width, dtype=torch.float64)
    flow[:, 0] = u
    flow[:, 1] = v
    return flow


@pytest.mark.parametrize("warp", [warp_border, warp_with_mask])
def test_warp_zero_flow_is_identity(warp):
    image = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(warp(image, constant_flow(0, 0, 2, 7, 9)), image, rtol=0, atol=1e-12)


def test_warp_integer_flow_is_exact_shift_with_border_padding():
    image = torch.rand(1, 3, 6, 8, dtype=torch.float64)
    out = warp_border(image, constant_flow(2.0, -1.0, 1, 6, 8))
    # Sample image(y + v, x + u), clamped to the frame.
    rows = torch.arange(6).add(-1).clamp(0, 5)
    cols = torch.arange(8).add(2).clamp(0, 7)
    expected = image[:, :, rows][:, :, :, cols]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_warp_integer_flow_is_exact_shift_with_zero_mask():
    image = torch.rand(1, 3, 6, 8, dtype=torch.float64) + 0.5
    out = warp_with_mask(image, constant_flow(2.0, -1.0, 1, 6, 8))
    expected = torch.zeros_like(image)
    expected[:, :, 1:, :6] = image[:, :, :5, 2:]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_warp_fractional_flow_at_the_edge():
    image = torch.rand(1, 2, 4, 5, dtype=torch.float64)
    flow = constant_flow(0.5, 0.0, 1, 4, 5)
    inside = 0.5 * (image[..., :4] + image[..., 1:])
    border = warp_border(image, flow)
    torch.testing.assert_close(border[..., :4], inside, rtol=0, atol=1e-12)
    # Half outside: border padding repeats the last column ...
    torch.testing.assert_close(border[..., 4], image[..., 4], rtol=0, atol=1e-12)
    # ... the PWC-Net warp zeroes any footprint that is not fully inside (mask < 1).
    masked = warp_with_mask(image, flow)
    torch.testing.assert_close(masked[..., :4], inside, rtol=0, atol=1e-12)
    assert masked[..., 4].abs().max().item() == 0.0


def test_warp_uses_per_pixel_flow_and_rejects_mismatched_shapes():
    image = torch.arange(12.0, dtype=torch.float64).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    flow[0, 0, 1, 2] = -2.0  # only pixel (1, 2) looks two columns to the left
    out = warp_border(image, flow)
    assert out[0, 0, 1, 2].item() == image[0, 0, 1, 0].item()
    assert out[0, 0, 0, 0].item() == image[0, 0, 0, 0].item()
    with pytest.raises(ValueError, match="share"):
        warp_border(image, torch.zeros(1, 2, 3, 5, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# weight init
# --------------------------------------------------------------------------------------------

def test_fan_max_std_formula_and_statistics():
    conv = nn.Conv2d(27, 64, 5, bias=True)
    deconv = nn.ConvTranspose2d(128, 64, 4, bias=False)
    bn = nn.BatchNorm2d(64)
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    nn.init.normal_(conv.bias)
    initialize_dbn(nn.Sequential(conv, bn, deconv), "fan_max")
    # The original multiplies by the kernel area: sqrt(2/64 * 25) and sqrt(2/128 * 16).
    assert fan_max_std(conv) == pytest.approx(math.sqrt(2 / 64 * 25))
    assert fan_max_std(deconv) == pytest.approx(0.5)
    for module, expected in ((conv, math.sqrt(2 / 64 * 25)), (deconv, 0.5)):
        weight = module.weight.detach()
        assert weight.std().item() == pytest.approx(expected, rel=0.02)
        assert abs(weight.mean().item()) < 0.03 * expected
    assert torch.all(conv.bias == 0)
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_init_types(mode):
    conv = nn.Conv2d(32, 96, 3, bias=False)
    initialize_dbn(conv, mode)
    fan = 32 * 9 if mode == "fan_in" else 96 * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan), rel=0.03)


def test_unknown_init_type_names_the_flag():
    with pytest.raises(ValueError, match="--model_init_type"):
        initialize_dbn(nn.Conv2d(1, 1, 3), "xavier")


def test_msra_leaky_init():
    conv = nn.Conv2d(64, 128, 3)
    initialize_msra_leaky(conv)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    assert torch.all(conv.bias == 0)


# --------------------------------------------------------------------------------------------
# PSNR / SSIM
# --------------------------------------------------------------------------------------------

def numpy_koehler_psnr(pred: np.ndarray, gt: np.ndarray, scale_opt: bool, trans_opt: bool, r: int = 5) -> float:
    weights = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    p = (pred * weights).sum(axis=1)
    g = (gt * weights).sum(axis=1)
    if scale_opt:
        p = p * ((p * g).sum(axis=(1, 2)) / (g * g).sum(axis=(1, 2))).reshape(-1, 1, 1)
    if not trans_opt:
        return -10 * math.log10(((p - g) ** 2).mean())
    height, width = p.shape[1:]
    best = math.inf
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            errors = [(p[:, y + dy, x + dx] - g[:, y, x]) ** 2
                      for y in range(height) for x in range(width)
                      if 0 <= y + dy < height and 0 <= x + dx < width]
            best = min(best, float(np.mean(errors)))
    return -10 * math.log10(best)


@pytest.mark.parametrize("scale_opt,trans_opt", [(False, False), (True, False), (False, True), (True, True)])
def test_koehler_psnr_matches_numpy_brute_force(scale_opt, trans_opt):
    gt = torch.rand(2, 3, 12, 14, dtype=torch.float64)
    pred = (gt.roll(1, dims=3) * 0.9 + 0.05 * torch.rand_like(gt)).clamp(0, 1)
    value = koehler_psnr(pred, gt, scale_opt=scale_opt, trans_opt=trans_opt)
    expected = numpy_koehler_psnr(pred.numpy(), gt.numpy(), scale_opt, trans_opt)
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, abs=1e-9)


def test_koehler_psnr_of_shifted_image_is_the_psnr_of_the_overlap():
    gt = torch.rand(1, 3, 20, 24) * 0.8
    pred = torch.rand(1, 3, 20, 24)
    dy, dx = 2, -3
    # pred(y + dy, x + dx) = gt(y, x) + 0.1 on the overlap -> grayscale MSE 0.01 -> exactly 20 dB.
    pred[:, :, dy:, :dx] = gt[:, :, :-dy, -dx:] + 0.1
    assert koehler_psnr(pred, gt, trans_opt=True).item() == pytest.approx(20.0, abs=1e-4)
    assert koehler_psnr(pred, gt).item() < 15.0


def test_koehler_scale_optimisation_uses_gt_energy_denominator():
    gt = torch.rand(1, 3, 8, 8, dtype=torch.float64) * 0.5
    # Σ(2g·g)/Σ(g·g) = 2, so 2·gt becomes 4·gt (the least-squares factor would give gt back).
    scaled = koehler_psnr(2 * gt, gt, scale_opt=True)
    torch.testing.assert_close(scaled, koehler_psnr(4 * gt, gt), rtol=0, atol=1e-9)


def test_rgb_to_gray_weights():
    x = torch.zeros(1, 3, 1, 1)
    x[0, :, 0, 0] = torch.tensor([1.0, 0.5, 0.25])
    assert rgb_to_gray(x).item() == pytest.approx(0.299 + 0.587 * 0.5 + 0.114 * 0.25)


def test_psnr_rgb_per_image():
    target = torch.full((2, 3, 8, 8), 0.5)
    pred = target.clone()
    pred[0] += 0.1
    pred[1, 0] += 0.2  # only the red channel: MSE 0.04 / 3
    values = psnr_rgb(pred, target)
    assert values.shape == (2,)
    assert values[0].item() == pytest.approx(20.0, abs=1e-4)
    assert values[1].item() == pytest.approx(-10 * math.log10(0.04 / 3), abs=1e-4)
    assert psnr_rgb(target, target)[0].item() == pytest.approx(100.0)


def test_ssim_matches_scikit_image():
    target = torch.rand(2, 3, 24, 30)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    values = ssim(pred, target)
    for b in range(2):
        expected = structural_similarity(pred[b].permute(1, 2, 0).numpy(), target[b].permute(1, 2, 0).numpy(),
                                         channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=1.0)
        assert values[b].item() == pytest.approx(float(expected), abs=1e-5)
    assert ssim(target, target).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
