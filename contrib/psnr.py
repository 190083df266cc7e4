"""Image-quality metrics: the original's Köhler-style PSNR (spec §4.2), plain RGB PSNR and SSIM.

All functions expect NCHW float images with peak value 1.0.
"""
from typing import Optional

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.dim() != 4 or prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} "
                         f"must be NCHW tensors of equal shape")


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (0.299 R + 0.587 G + 0.114 B) as a 1x1 convolution; other channel counts pass through."""
    if x.size(1) != 3:
        return x
    weight = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return F.conv2d(x, weight)


def _overlap(size: int, shift: int):
    """Slices of the prediction and the target that overlap when the prediction is moved by `shift`."""
    return slice(max(0, shift), min(size, size + shift)), slice(max(0, -shift), min(size, size - shift))


def koehler_psnr(prediction: torch.Tensor, target: torch.Tensor, scale_opt: bool = False,
                 trans_opt: bool = False, trans_range: int = 5) -> torch.Tensor:
    """PSNR of the batch on grayscale, optionally scale- and integer-shift-optimised (0-dim tensor).

    Scale optimisation multiplies each prediction by Σ(pred·gt) / Σ(gt·gt), as the original does
    (the least-squares optimum would divide by Σ(pred·pred)). Translation optimisation compares
    pred(y + dy, x + dx) with gt(y, x) on the overlap for all dy, dx in [−trans_range, trans_range]
    and keeps the smallest MSE, one shift for the whole batch. The MSE is averaged over the whole
    batch, so for batch size > 1 this is the PSNR of the batch-mean MSE.
    """
    _check_pair(prediction, target)
    pred = rgb_to_gray(prediction)
    gt = rgb_to_gray(target)
    if scale_opt:
        numerator = (pred * gt).sum(dim=(1, 2, 3))
        denominator = (gt * gt).sum(dim=(1, 2, 3))
        # An all-black target would divide by zero; leave such predictions unscaled.
        scale = torch.where(denominator > 0, numerator / denominator.clamp_min(1e-30),
                            torch.ones_like(numerator))
        pred = pred * scale.view(-1, 1, 1, 1)
    if not trans_opt:
        mse = ((pred - gt) ** 2).mean()
    else:
        height, width = pred.shape[-2:]
        mse = None
        for dy in range(-trans_range, trans_range + 1):
            if abs(dy) >= height:
                continue
            pred_rows, gt_rows = _overlap(height, dy)
            for dx in range(-trans_range, trans_range + 1):
                if abs(dx) >= width:
                    continue
                pred_cols, gt_cols = _overlap(width, dx)
                diff = pred[:, :, pred_rows, pred_cols] - gt[:, :, gt_rows, gt_cols]
                candidate = (diff * diff).mean()
                mse = candidate if mse is None else torch.minimum(mse, candidate)
    return -10.0 * torch.log10(mse)


def psnr_rgb(prediction: torch.Tensor, target: torch.Tensor, min_mse: float = 1e-10) -> torch.Tensor:
    """Plain PSNR per image over all channels and pixels → shape (B,).

    The MSE is floored at `min_mse` (100 dB) so that one perfect frame does not turn a running
    mean into +inf.
    """
    _check_pair(prediction, target)
    mse = ((prediction - target) ** 2).mean(dim=(1, 2, 3))
    return -10.0 * torch.log10(mse.clamp_min(min_mse))


def fitting_ssim_window(height: int, width: int, size: int = 11) -> int:
    """The `size`-tap SSIM window, shrunk to the largest odd size that fits a smaller image."""
    smallest = min(height, width)
    return size if smallest >= size else max(1, smallest - (1 - smallest % 2))


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32,
                    device: Optional[torch.device] = None) -> torch.Tensor:
    """Normalised 1-D gaussian of `size` taps."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    window = torch.exp(-(coords ** 2) / (2.0 * sigma * sigma))
    return (window / window.sum()).to(dtype=dtype, device=device)


def ssim(prediction: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004, gaussian window, averaged over channels) → shape (B,).

    Statistics use a 'valid' gaussian filter, i.e. only windows fully inside the image, which
    equals scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False) with its border crop.
    """
    _check_pair(prediction, target)
    height, width = prediction.shape[-2:]
    if height < window_size or width < window_size:
        raise ValueError(f"ssim needs images of at least {window_size}x{window_size} pixels, "
                         f"got {height}x{width}")
    channels = prediction.size(1)
    window = gaussian_window(window_size, sigma, prediction.dtype, prediction.device)
    # Filter the five statistics maps in one grouped, separable convolution.
    stacked = torch.cat([prediction, target, prediction * prediction, target * target,
                         prediction * target], dim=1)
    groups = 5 * channels
    stacked = F.conv2d(stacked, window.view(1, 1, 1, -1).expand(groups, 1, 1, window_size), groups=groups)
    stacked = F.conv2d(stacked, window.view(1, 1, -1, 1).expand(groups, 1, window_size, 1), groups=groups)
    mu_x, mu_y, xx, yy, xy = torch.split(stacked, channels, dim=1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov_xy = xy - mu_x * mu_y
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / \
               ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))
