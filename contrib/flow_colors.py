"""Optical flow → RGB with the Middlebury colour wheel (Baker et al., "A Database and Evaluation
Methodology for Optical Flow"): hue encodes the direction, saturation the magnitude.

The wheel has 55 colours in six ramps (red→yellow 15, yellow→green 6, green→cyan 4, cyan→blue 11,
blue→magenta 13, magenta→red 6). A flow vector (u, v) of radius r (after dividing by the largest
radius) gets angle a = atan2(−v, −u) / π ∈ [−1, 1], which indexes the wheel linearly from colour 0
(a = −1) to colour 54 (a = 1); the colour fades to white as r → 0, and vectors with r > 1 are
darkened to 75 %.
"""
from typing import Optional

import torch

_RAMPS = ((15, (1.0, 0.0, 0.0), (1.0, 1.0, 0.0)),   # red → yellow
          (6, (1.0, 1.0, 0.0), (0.0, 1.0, 0.0)),    # yellow → green
          (4, (0.0, 1.0, 0.0), (0.0, 1.0, 1.0)),    # green → cyan
          (11, (0.0, 1.0, 1.0), (0.0, 0.0, 1.0)),   # cyan → blue
          (13, (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)),   # blue → magenta
          (6, (1.0, 0.0, 1.0), (1.0, 0.0, 0.0)))    # magenta → red


def color_wheel() -> torch.Tensor:
    """The (55, 3) Middlebury wheel as floats in [0, 1], quantised to 8 bit as in the reference code."""
    colors = []
    for steps, start, end in _RAMPS:
        for i in range(steps):
            # The reference code computes floor(255 * i / steps) for the channel that moves.
            fraction = torch.floor(torch.tensor(255.0 * i / steps)) / 255.0
            colors.append([s + (e - s) * fraction for s, e in zip(start, end)])
    return torch.tensor(colors, dtype=torch.float32)


def flow_to_color(flow: torch.Tensor, max_radius: Optional[float] = None) -> torch.Tensor:
    """Colour a (B, 2, H, W) flow (u = x, v = y displacement) → (B, 3, H, W) RGB floats in [0, 1].

    Every image is normalised by `max_radius` if given, else by its own largest flow radius;
    non-finite vectors (unknown flow) are shown black.
    """
    if flow.dim() != 4 or flow.size(1) != 2:
        raise ValueError(f"flow_to_color expects a (B, 2, H, W) flow, got shape {tuple(flow.shape)}")
    flow = flow.detach().float()
    valid = torch.isfinite(flow).all(dim=1)
    u = torch.where(valid, flow[:, 0], torch.zeros_like(flow[:, 0]))
    v = torch.where(valid, flow[:, 1], torch.zeros_like(flow[:, 1]))
    radius = torch.sqrt(u * u + v * v)
    if max_radius is None:
        scale = radius.flatten(1).max(dim=1).values.view(-1, 1, 1)
    else:
        scale = torch.full((flow.size(0), 1, 1), float(max_radius), device=flow.device)
    scale = scale.clamp_min(1e-12)
    u, v, radius = u / scale, v / scale, radius / scale

    wheel = color_wheel().to(flow.device)
    num_colors = wheel.size(0)
    angle = torch.atan2(-v, -u) / torch.pi
    position = (angle + 1.0) / 2.0 * (num_colors - 1)
    k0 = position.floor().long().clamp(0, num_colors - 1)
    k1 = (k0 + 1) % num_colors
    weight = (position - k0.float()).unsqueeze(-1)
    color = (1.0 - weight) * wheel[k0] + weight * wheel[k1]          # (B, H, W, 3)
    inside = (radius <= 1.0).unsqueeze(-1)
    color = torch.where(inside, 1.0 - radius.unsqueeze(-1) * (1.0 - color), color * 0.75)
    color = color * valid.unsqueeze(-1)
    return color.permute(0, 3, 1, 2).contiguous()
