"""Image-quality metrics of deblurred frames, one value per frame, each under a named protocol.

Every metric takes NCHW float output and target in [0, 1] and returns a float64 tensor (N,): the value of
each frame on its own, so that a mean over frames does not depend on how the frames were batched. An
optional border crop (pixels removed on every side before the metric) comes first, as BasicSR's
`crop_border`. The protocols are the ones papers publish GoPro numbers under (README "Comparing models").
"""
import abc

import torch

from contrib.psnr import fitting_ssim_window, koehler_psnr, psnr_rgb, ssim
from metrics.registry import METRICS

SSIM_WINDOW = 11
PAPER_SHIFT_RANGE = 5
# BT.601 luma of 8-bit studio swing, as MATLAB's rgb2ycbcr and BasicSR's rgb2ycbcr(y_only=True).
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
PEAK_8BIT = 255.0
MIN_MSE = 1e-10  # a perfect frame scores 100 dB (peak 1) instead of +inf, as contrib.psnr.psnr_rgb


def crop_border(image: torch.Tensor, border: int) -> torch.Tensor:
    """`image` without `border` pixels on each side (unchanged for 0)."""
    if border == 0:
        return image
    height, width = image.shape[-2:]
    if 2 * border >= min(height, width):
        raise ValueError(f"--validation_metrics_crop_border={border} leaves nothing of a {height}x{width} frame")
    return image[..., border:height - border, border:width - border]


def paper_psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's PSNR of every frame (spec §4.2): grayscale, scale- and ±5 px shift-optimised → (N,) float32.

    Each frame is its own batch of one, so its scale and shift are its own and its value is bit-identical to
    the original's test scripts (which evaluate one frame at a time).
    """
    return torch.stack([koehler_psnr(output[i:i + 1], target[i:i + 1], scale_opt=True, trans_opt=True,
                                     trans_range=PAPER_SHIFT_RANGE) for i in range(output.size(0))])


def quantize_8bit(image: torch.Tensor) -> torch.Tensor:
    """Values 0..255 (float64) as the frame is saved: uint8(clamp(x·255 + 0.5, 0, 255)) as utils.images."""
    return torch.floor((image.double() * PEAK_8BIT + 0.5).clamp(0.0, PEAK_8BIT))


def y_channel(image_8bit: torch.Tensor) -> torch.Tensor:
    """BasicSR's Y of 8-bit RGB values: 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1], not rounded."""
    if image_8bit.size(1) != 3:
        raise ValueError(f"the Y channel needs RGB frames, got {image_8bit.size(1)} channels")
    weights = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=image_8bit.device).view(1, 3, 1, 1)
    return (image_8bit / PEAK_8BIT * weights).sum(dim=1, keepdim=True) + Y_OFFSET


class FrameMetric(abc.ABC):
    """A per-frame metric: `protocol` says how it is computed, `mode` whether larger ("max") is better."""

    protocol = ""
    mode = "max"

    def __init__(self, crop_border: int = 0) -> None:
        if crop_border < 0:
            raise ValueError(f"--validation_metrics_crop_border must be >= 0, got {crop_border}")
        self.crop_border = crop_border

    @abc.abstractmethod
    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The metric of every frame of cropped NCHW images → (N,)."""

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The metric of every frame → float64 (N,), after the border crop."""
        if output.dim() != 4 or output.shape != target.shape:
            raise ValueError(f"metric: output {tuple(output.shape)} and target {tuple(target.shape)} must be NCHW "
                             f"tensors of equal shape")
        output = crop_border(output.detach(), self.crop_border)
        target = crop_border(target.detach().to(output.device), self.crop_border)
        return self.compute(output, target).double()


@METRICS.register("psnr")
class PaperPSNR(FrameMetric):
    """The paper's PSNR (spec §4.2), DBNLoss's evaluation `psnr`."""

    protocol = ("paper (Gast & Roth, spec 4.2): grayscale 0.299R+0.587G+0.114B of the output as evaluated, scaled "
                "by sum(pred*gt)/sum(gt*gt), best integer shift within +-5 px on the overlap, peak 1, per frame")

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # The output as the model gives it (it clamps in evaluation), exactly as DBNLoss has always seen it.
        return paper_psnr(output, target)


@METRICS.register("psnr_rgb")
class PSNRRGB(FrameMetric):
    """PSNR over all RGB values of the clamped float output, DBNLoss's `psnr_rgb`."""

    protocol = "RGB: MSE over R, G, B of the output clamped to [0, 1] (not quantised), peak 1, per frame"

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return psnr_rgb(output.clamp(0.0, 1.0), target)


@METRICS.register("psnr_y")
class PSNRY(FrameMetric):
    """BasicSR's Y-channel PSNR of the frame as saved."""

    protocol = ("BasicSR Y: output and target rounded to 8 bit as saved, Y = 16 + 65.481R + 128.553G + 24.966B "
                "(R, G, B in [0, 1], Y not rounded), peak 255, per frame")

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        difference = y_channel(quantize_8bit(output)) - y_channel(quantize_8bit(target))
        mse = (difference * difference).mean(dim=(1, 2, 3))
        return 10.0 * torch.log10(PEAK_8BIT ** 2 / mse.clamp_min(MIN_MSE * PEAK_8BIT ** 2))


@METRICS.register("ssim_y")
class SSIMY(FrameMetric):
    """BasicSR's Y-channel SSIM of the frame as saved."""

    protocol = ("BasicSR Y SSIM: Y of the 8-bit output and target as psnr_y, Gaussian 11x11 window sigma 1.5, "
                "K1 0.01, K2 0.03, L 255, mean over the valid region, per frame")

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prediction, reference = y_channel(quantize_8bit(output)), y_channel(quantize_8bit(target))
        window = fitting_ssim_window(*reference.shape[-2:], SSIM_WINDOW)
        return ssim(prediction, reference, window_size=window, data_range=PEAK_8BIT)


@METRICS.register("ssim_rgb")
class SSIMRGB(FrameMetric):
    """SSIM on each RGB channel of the clamped float output, averaged over channels: DBNLoss's `ssim`."""

    protocol = ("RGB SSIM: output clamped to [0, 1] (not quantised), Gaussian 11x11 window sigma 1.5, K1 0.01, "
                "K2 0.03, L 1, mean over the valid region and the three channels, per frame")

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        window = fitting_ssim_window(*target.shape[-2:], SSIM_WINDOW)
        return ssim(output.clamp(0.0, 1.0), target, window_size=window)


@METRICS.register("psnr_batched")
class BatchedPaperPSNR(FrameMetric):
    """The original framework's logged validation psnr: the paper's protocol over a whole batch (not per frame)."""

    protocol = ("paper protocol per batch, as the original framework logged it: one scale per frame but one shift "
                "for the whole batch and the PSNR of the batch's mean MSE, given to every frame of the batch; "
                "depends on the batch size (equal to psnr at batch size 1)")

    def compute(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = koehler_psnr(output, target, scale_opt=True, trans_opt=True, trans_range=PAPER_SHIFT_RANGE)
        return value.expand(output.size(0))
