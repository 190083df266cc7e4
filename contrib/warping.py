"""Backward warping of images by optical flow (spec §3.3 and §3.5).

Both variants sample `image` at (x + u, y + v), where x is the column and y the row index, so a
neighbour frame warped with the flow reference→neighbour lands in the reference view. Pixel
coordinates are normalised as 2·coord / max(size − 1, 1) − 1 and passed to `grid_sample` with
align_corners=True: that is what the original did with PyTorch 1.2's grid_sample default.
"""
import torch
import torch.nn.functional as F


def _sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """Normalised (B, H, W, 2) grid of the positions pixel + flow, in grid_sample's (x, y) order."""
    if flow.dim() != 4 or flow.size(1) != 2:
        raise ValueError(f"flow must have shape (B, 2, H, W), got {tuple(flow.shape)}")
    _, _, height, width = flow.shape
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    grid_x = 2.0 * (xs + flow[:, 0]) / max(width - 1, 1) - 1.0
    grid_y = 2.0 * (ys + flow[:, 1]) / max(height - 1, 1) - 1.0
    return torch.stack((grid_x, grid_y), dim=3)


def _check_shapes(image: torch.Tensor, flow: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[0] != flow.shape[0] or image.shape[2:] != flow.shape[2:]:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} must share "
                         f"batch size and spatial size")


def warp_border(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp; samples outside the frame take the nearest border value (FlowDBN)."""
    _check_shapes(image, flow)
    grid = _sampling_grid(flow)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_with_mask(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp with zero padding; pixels whose sample touches the outside are zeroed.

    A ones image is warped the same way and the result is multiplied by (warped_ones >= 1.0), as in
    PWC-Net: any bilinear footprint that is partly outside the frame (or loses weight to rounding)
    gives 0.
    """
    _check_shapes(image, flow)
    grid = _sampling_grid(flow)
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    # One channel suffices: grid_sample uses identical weights for every channel.
    ones = torch.ones_like(image[:, :1])
    mask = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped * (mask >= 1.0).to(warped.dtype)
