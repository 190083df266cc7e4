"""Colour maps for scalar images (error maps) without matplotlib's removed `cm.get_cmap`.

The 'jet' map is defined by the same piecewise-linear anchor points as matplotlib's and looked
up in a 256-entry table the way matplotlib does (index = floor(value * 256), clipped), so
`colorize(x)` equals `matplotlib.colormaps['jet'](x)[..., :3]`.
"""
from typing import Dict, Sequence, Tuple

import torch

Anchors = Sequence[Tuple[float, float]]

# (position, value) anchor points per channel.
_SEGMENTS: Dict[str, Tuple[Anchors, Anchors, Anchors]] = {
    "jet": (
        ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
        ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
        ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
    ),
}


def _interpolate(anchors: Anchors, positions: torch.Tensor) -> torch.Tensor:
    xs = torch.tensor([p for p, _ in anchors], dtype=torch.float64)
    ys = torch.tensor([v for _, v in anchors], dtype=torch.float64)
    segment = (torch.searchsorted(xs, positions, right=True) - 1).clamp(0, len(xs) - 2)
    x0, x1, y0, y1 = xs[segment], xs[segment + 1], ys[segment], ys[segment + 1]
    return y0 + (positions - x0) / (x1 - x0) * (y1 - y0)


def color_table(name: str = "jet", num_colors: int = 256) -> torch.Tensor:
    """The (num_colors, 3) float RGB lookup table of a colour map."""
    if name not in _SEGMENTS:
        raise ValueError(f"unknown colour map {name!r}; available: {', '.join(sorted(_SEGMENTS))}")
    positions = torch.linspace(0.0, 1.0, num_colors, dtype=torch.float64)
    return torch.stack([_interpolate(anchors, positions) for anchors in _SEGMENTS[name]], dim=1).float()


def colorize(values: torch.Tensor, name: str = "jet", num_colors: int = 256) -> torch.Tensor:
    """Map values in [0, 1] of shape (...) to RGB floats of shape (..., 3); values outside are clipped."""
    table = color_table(name, num_colors).to(values.device)
    index = (values.detach().float() * num_colors).floor().clamp(0, num_colors - 1).long()
    return table[index]


def colorize_normalized(values: torch.Tensor, name: str = "jet") -> torch.Tensor:
    """Min-max normalise a (B, H, W) map per image and colour it → (B, 3, H, W) floats in [0, 1]."""
    if values.dim() != 3:
        raise ValueError(f"colorize_normalized expects a (B, H, W) map, got shape {tuple(values.shape)}")
    flat = values.detach().float().flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1)
    # A constant map (e.g. a perfect output) has no range; show it as the lowest colour.
    normalized = (values.float() - low) / (high - low).clamp_min(1e-12)
    return colorize(normalized, name).permute(0, 3, 1, 2).contiguous()
