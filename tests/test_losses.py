"""Losses: DBNLoss and MultiScaleEPE against hand-computed numbers."""
import inspect
import math

import pytest
import torch
from skimage.metrics import structural_similarity

import losses
from contrib.psnr import koehler_psnr, ssim
from losses.dbn_loss import DBNLoss
from losses.multiscale_epe import MultiScaleEPE, scale_weights
from tests.helpers import reference_json


def test_registered_names():
    assert {"DBNLoss", "MultiScaleEPE"} <= set(losses.LOSSES.names())


@pytest.mark.parametrize("name,cls", [("DBNLoss", DBNLoss), ("MultiScaleEPE", MultiScaleEPE)])
def test_constructor_parameters_match_original_flags(name, cls):
    flags = reference_json("cli-flags-per-class.json")[f"loss={name}"]
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name not in ("self", "args")]
    assert [(f"--loss_{p.name}", type(p.default).__name__, p.default) for p in params] == \
           [tuple(flag) for flag in flags]


# --------------------------------------------------------------------------------------------
# DBNLoss
# --------------------------------------------------------------------------------------------

def offset_pair():
    """Targets in [0.3, 0.7]; image 0 is off by +0.1, image 1 by +0.2 everywhere."""
    target = 0.3 + 0.4 * torch.rand(2, 3, 16, 16)
    output = target.clone()
    output[0] += 0.1
    output[1] += 0.2
    return output.requires_grad_(), target


def test_dbn_loss_training_values():
    output, target = offset_pair()
    loss = DBNLoss().train()
    loss_dict = loss({"output1": output}, {"target1": target})
    assert list(loss_dict) == ["total_loss", "psnr", "psnr_rgb", "ssim"]
    assert all(value.dim() == 0 for value in loss_dict.values())
    # 0.5 · (768 · 0.1² + 768 · 0.2²) over the whole batch, not averaged.
    assert loss_dict["total_loss"].item() == pytest.approx(19.2, rel=1e-4)
    # Grayscale weights sum to 1: batch MSE (0.01 + 0.04) / 2.
    assert loss_dict["psnr"].item() == pytest.approx(-10 * math.log10(0.025), abs=1e-3)
    # Mean of per-image PSNRs: (20 + 13.979) / 2.
    assert loss_dict["psnr_rgb"].item() == pytest.approx((20 - 10 * math.log10(0.04)) / 2, abs=1e-3)
    expected_ssim = sum(structural_similarity(output[b].detach().permute(1, 2, 0).numpy(),
                                              target[b].permute(1, 2, 0).numpy(), channel_axis=-1,
                                              gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                              data_range=1.0) for b in range(2)) / 2
    assert loss_dict["ssim"].item() == pytest.approx(float(expected_ssim), abs=1e-5)
    assert not any(loss_dict[key].requires_grad for key in ("psnr", "psnr_rgb", "ssim"))
    loss_dict["total_loss"].backward()
    torch.testing.assert_close(output.grad, (output - target).detach())


def test_dbn_loss_training_psnr_uses_clamped_output_but_loss_does_not():
    target = torch.full((1, 3, 12, 12), 0.95)
    output = torch.full((1, 3, 12, 12), 1.2)
    loss_dict = DBNLoss().train()({"output1": output}, {"target1": target})
    assert loss_dict["total_loss"].item() == pytest.approx(0.5 * 432 * 0.25 ** 2, rel=1e-5)
    assert loss_dict["psnr"].item() == pytest.approx(-10 * math.log10(0.05 ** 2), abs=1e-3)
    assert loss_dict["psnr_rgb"].item() == pytest.approx(-10 * math.log10(0.05 ** 2), abs=1e-3)


def test_dbn_loss_eval_psnr_is_scale_and_shift_optimised():
    target = torch.rand(1, 3, 24, 24) * 0.8
    output = torch.rand(1, 3, 24, 24)
    # The output is the target moved by (1, 2) px plus 0.05: eval PSNR finds that shift.
    output[:, :, 1:, 2:] = target[:, :, :-1, :-2] + 0.05
    loss = DBNLoss().eval()
    loss_dict = loss({"output1": output}, {"target1": target})
    expected = koehler_psnr(output, target, scale_opt=True, trans_opt=True, trans_range=5)
    assert loss_dict["psnr"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert loss_dict["psnr"].item() > koehler_psnr(output, target).item() + 5.0
    assert loss_dict["total_loss"].item() == pytest.approx(0.5 * ((output - target) ** 2).sum().item(), rel=1e-5)


def test_dbn_loss_on_images_smaller_than_the_ssim_window():
    target = torch.rand(2, 3, 8, 8)
    output = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    for mode in (True, False):
        loss_dict = DBNLoss().train(mode)({"output1": output}, {"target1": target})
        assert loss_dict["ssim"].item() == pytest.approx(ssim(output, target, window_size=7).mean().item())
        assert math.isfinite(loss_dict["psnr"].item())


def test_dbn_loss_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="output1.*target1"):
        DBNLoss()({"output1": torch.zeros(1, 3, 16, 16)}, {"target1": torch.zeros(1, 3, 16, 8)})


# --------------------------------------------------------------------------------------------
# MultiScaleEPE
# --------------------------------------------------------------------------------------------

def test_multiscale_weights():
    assert scale_weights(5, 2, 0.32) == pytest.approx([0.005, 0.01, 0.02, 0.08, 0.32])
    assert MultiScaleEPE().weights == pytest.approx([0.005, 0.01, 0.02, 0.08, 0.32])
    assert scale_weights(3, 0, 1.0) == pytest.approx([1 / 16, 1 / 4, 1.0])
    with pytest.raises(ValueError, match="--loss_num_highres_scales"):
        scale_weights(5, 5, 0.32)


def zero_flows(batch: int, height: int, width: int) -> dict:
    return {f"flow{level}": torch.zeros(batch, 2, height >> level, width >> level, requires_grad=True)
            for level in range(2, 7)}


def test_multiscale_epe_training_values():
    target = torch.zeros(2, 2, 64, 64)
    target[:, 0] = 12.0
    target[:, 1] = 16.0  # |(12, 16)| · 0.05 = 1.0 at every scale
    model_dict = zero_flows(2, 64, 64)
    loss_dict = MultiScaleEPE(scale_factor=2.0).train()(model_dict, {"target1": target})
    assert list(loss_dict) == ["total_loss", "epe2", "epe3", "epe4", "epe5", "epe6"]
    # 2 · B · (0.005·256 + 0.01·64 + 0.02·16 + 0.08·4 + 0.32·1) = 2 · 2 · 2.88
    assert loss_dict["total_loss"].item() == pytest.approx(11.52, rel=1e-5)
    for level in range(2, 7):
        assert loss_dict[f"epe{level}"].item() == pytest.approx(1.0, rel=1e-5)
    loss_dict["total_loss"].backward()
    assert model_dict["flow6"].grad.abs().sum().item() > 0


def test_multiscale_epe_downsamples_target_with_average_pooling():
    target = torch.randn(1, 2, 32, 32) * 10
    model_dict = zero_flows(1, 32, 32)
    model_dict["flow3"] = torch.nn.functional.adaptive_avg_pool2d(target * 0.05, (4, 4))
    loss_dict = MultiScaleEPE().train()(model_dict, {"target1": target})
    assert loss_dict["epe3"].item() == pytest.approx(0.0, abs=1e-6)
    assert loss_dict["epe2"].item() > 0.1


def test_multiscale_epe_eval_is_mean_endpoint_error_in_pixels():
    target = torch.randn(2, 2, 8, 8)
    flow1 = target * 0.05
    flow1[:, 0] += 3 * 0.05
    flow1[:, 1] += 4 * 0.05
    loss_dict = MultiScaleEPE().eval()({"flow1": flow1}, {"target1": target})
    assert list(loss_dict) == ["epe"]
    assert loss_dict["epe"].item() == pytest.approx(5.0, rel=1e-5)


def test_multiscale_epe_missing_scale_is_a_clear_error():
    model_dict = zero_flows(1, 64, 64)
    del model_dict["flow4"]
    with pytest.raises(KeyError, match="flow4"):
        MultiScaleEPE().train()(model_dict, {"target1": torch.zeros(1, 2, 64, 64)})
