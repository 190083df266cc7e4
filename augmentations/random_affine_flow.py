"""RandomAffineFlow: batch-wise random affine augmentation for optical-flow training (spec §6).

Per batch element a global transform T1 is drawn for both images and a small relative transform
Trel for the second image only (T2 = T1 ∘ Trel). Transforms map *output* pixels to *input* pixels
(backward sampling, bilinear, border padding, align_corners=True pixel convention):

* global: zoom U(1, 1.5), squeeze U(0.86, 1.16) (x scaled by squeeze, y by 1/squeeze), rotation
  U(−0.2, 0.2) rad, translation U(−0.1, 0.1) of the half-size per axis, horizontal and vertical
  mirroring with probability 0.5 each;
* relative: zoom U(0.985, 1.015), squeeze U(0.98, 1.02), rotation U(−0.015, 0.015) rad,
  translation U(−0.0075, 0.0075) of the half-size.

Draws are repeated (per element) until the four image corners of both transforms land inside the
input frame, so no output pixel samples outside; an element still invalid after 100 rounds keeps
its images (identity transforms). The flow follows the images exactly:
flow'(p) = T2⁻¹(T1(p) + flow(T1(p))) − p.

Deliberate deviation (bug fix): the original drew the rotations with uniform_(−min, max) where
min = −0.2, i.e. uniform_(0.2, 0.2) — always exactly 0.2 rad (0.015 rad for the relative one). Here
they are uniform in [−0.2, 0.2] and [−0.015, 0.015] as intended. Because of the corner constraint
the accepted parameters are that uniform distribution conditioned on validity.
"""
from argparse import Namespace
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from augmentations.registry import AUGMENTATIONS

GLOBAL_RANGES = {"zoom": (1.0, 1.5), "squeeze": (0.86, 1.16), "rotation": (-0.2, 0.2), "translation": (-0.1, 0.1)}
RELATIVE_RANGES = {"zoom": (0.985, 1.015), "squeeze": (0.98, 1.02), "rotation": (-0.015, 0.015),
                   "translation": (-0.0075, 0.0075)}
MAX_ROUNDS = 100


def _uniform(batch: int, bounds: Tuple[float, float], device: torch.device) -> torch.Tensor:
    low, high = bounds
    return torch.rand(batch, device=device, dtype=torch.float64) * (high - low) + low


def sample_parameters(batch: int, device: torch.device) -> Dict[str, torch.Tensor]:
    """Independent draws of every global and relative parameter, float64 tensors of shape (batch,)."""
    params = {name: _uniform(batch, bounds, device) for name, bounds in GLOBAL_RANGES.items() if name != "translation"}
    params["translation_x"] = _uniform(batch, GLOBAL_RANGES["translation"], device)
    params["translation_y"] = _uniform(batch, GLOBAL_RANGES["translation"], device)
    params["flip_x"] = torch.rand(batch, device=device) < 0.5
    params["flip_y"] = torch.rand(batch, device=device) < 0.5
    for name, bounds in RELATIVE_RANGES.items():
        if name == "translation":
            params["relative_translation_x"] = _uniform(batch, bounds, device)
            params["relative_translation_y"] = _uniform(batch, bounds, device)
        else:
            params[f"relative_{name}"] = _uniform(batch, bounds, device)
    return params


def _affine(zoom: torch.Tensor, squeeze: torch.Tensor, rotation: torch.Tensor, translation_x: torch.Tensor,
            translation_y: torch.Tensor, flip_x: torch.Tensor, flip_y: torch.Tensor, height: int,
            width: int) -> torch.Tensor:
    """(B, 3, 3) output-pixel → input-pixel matrices about the image centre."""
    half_w, half_h = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = torch.cos(rotation), torch.sin(rotation)
    # Zooming in (zoom > 1) means each output pixel covers less of the input.
    scale_x = 1.0 / (zoom * squeeze) * torch.where(flip_x, -1.0, 1.0).to(zoom)
    scale_y = squeeze / zoom * torch.where(flip_y, -1.0, 1.0).to(zoom)
    matrix = torch.zeros(zoom.numel(), 3, 3, dtype=zoom.dtype, device=zoom.device)
    matrix[:, 0, 0], matrix[:, 0, 1] = cos * scale_x, -sin * scale_y
    matrix[:, 1, 0], matrix[:, 1, 1] = sin * scale_x, cos * scale_y
    # p_in = c + A (p_out − c) + t  →  offset = c + t − A c
    matrix[:, 0, 2] = half_w + translation_x * half_w - (matrix[:, 0, 0] * half_w + matrix[:, 0, 1] * half_h)
    matrix[:, 1, 2] = half_h + translation_y * half_h - (matrix[:, 1, 0] * half_w + matrix[:, 1, 1] * half_h)
    matrix[:, 2, 2] = 1.0
    return matrix


def transforms_from_parameters(params: Dict[str, torch.Tensor], height: int, width: int
                               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(T1, T2): (B, 3, 3) float64 output → input pixel transforms of the first and second image."""
    first = _affine(params["zoom"], params["squeeze"], params["rotation"], params["translation_x"],
                    params["translation_y"], params["flip_x"], params["flip_y"], height, width)
    no_flip = torch.zeros_like(params["flip_x"])
    relative = _affine(params["relative_zoom"], params["relative_squeeze"], params["relative_rotation"],
                       params["relative_translation_x"], params["relative_translation_y"], no_flip, no_flip,
                       height, width)
    return first, first @ relative


def corners_inside(transform: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B,) whether the four output corners map into [0, W−1] × [0, H−1]."""
    corners = torch.tensor([[0.0, width - 1.0, 0.0, width - 1.0], [0.0, 0.0, height - 1.0, height - 1.0],
                            [1.0, 1.0, 1.0, 1.0]], dtype=transform.dtype, device=transform.device)
    mapped = transform @ corners
    eps = 1e-6
    inside_x = (mapped[:, 0] >= -eps) & (mapped[:, 0] <= width - 1 + eps)
    inside_y = (mapped[:, 1] >= -eps) & (mapped[:, 1] <= height - 1 + eps)
    return (inside_x & inside_y).all(dim=1)


def sample_transforms(batch: int, height: int, width: int, device: torch.device
                      ) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]:
    """Draw valid (T1, T2) per element by re-sampling invalid elements; returns them and their parameters."""
    params = sample_parameters(batch, device)
    first, second = transforms_from_parameters(params, height, width)
    valid = corners_inside(first, height, width) & corners_inside(second, height, width)
    for _ in range(MAX_ROUNDS):
        if bool(valid.all()):
            break
        redraw = ~valid
        fresh = sample_parameters(batch, device)
        params = {key: torch.where(redraw, fresh[key], value) for key, value in params.items()}
        first, second = transforms_from_parameters(params, height, width)
        valid = corners_inside(first, height, width) & corners_inside(second, height, width)
    if not bool(valid.all()):
        identity = torch.eye(3, dtype=first.dtype, device=device).expand_as(first)
        first = torch.where(valid.view(-1, 1, 1), first, identity)
        second = torch.where(valid.view(-1, 1, 1), second, identity)
    return first, second, params


def _pixel_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(B, H·W, 3) homogeneous float64 pixel coordinates (x = column, y = row)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float64),
                            torch.arange(width, device=device, dtype=torch.float64), indexing="ij")
    grid = torch.stack((xs.reshape(-1), ys.reshape(-1), torch.ones(height * width, device=device,
                                                                    dtype=torch.float64)), dim=1)
    return grid.unsqueeze(0).expand(batch, -1, -1)


def _sample(image: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of (B, C, H, W) at (B, H·W, 2) pixel positions of the same frame size."""
    batch, _, height, width = image.shape
    normalised = torch.stack((2.0 * positions[..., 0] / max(width - 1, 1) - 1.0,
                              2.0 * positions[..., 1] / max(height - 1, 1) - 1.0), dim=-1)
    grid = normalised.view(batch, height, width, 2).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def apply_transforms(input1: torch.Tensor, input2: torch.Tensor, flow: torch.Tensor, first: torch.Tensor,
                     second: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Warp both images by their transforms and map the flow consistently."""
    batch, _, height, width = input1.shape
    grid = _pixel_grid(batch, height, width, input1.device)
    positions1 = (grid @ first.transpose(1, 2))[..., :2]
    positions2 = (grid @ second.transpose(1, 2))[..., :2]
    output1 = _sample(input1, positions1)
    output2 = _sample(input2, positions2)
    flow_at = _sample(flow, positions1).flatten(2).transpose(1, 2).to(torch.float64)
    # Where the scene point of output1 pixel p lands in input2, expressed in output2 pixels.
    target = positions1 + flow_at
    inverse = torch.linalg.inv(second)
    mapped = target @ inverse[:, :2, :2].transpose(1, 2) + inverse[:, :2, 2].unsqueeze(1)
    new_flow = (mapped - grid[..., :2]).transpose(1, 2).reshape(batch, 2, height, width)
    return output1, output2, new_flow.to(flow.dtype)


@AUGMENTATIONS.register("RandomAffineFlow")
class RandomAffineFlow(nn.Module):
    """Random global + relative affine transforms of (input1, input2) with the flow target1 kept consistent."""

    def __init__(self, args: Optional[Namespace] = None) -> None:
        super().__init__()  # `args` is unused: it keeps the original's constructor form

    def forward(self, example_dict: Dict[str, Any]) -> Dict[str, Any]:
        for key in ("input1", "input2", "target1"):
            if key not in example_dict:
                raise KeyError(f"RandomAffineFlow needs '{key}' in the example; got {sorted(example_dict)}")
        input1, input2, flow = example_dict["input1"], example_dict["input2"], example_dict["target1"]
        if input1.dim() != 4 or input1.shape != input2.shape or flow.shape != (input1.size(0), 2, *input1.shape[2:]):
            raise ValueError(f"RandomAffineFlow expects input1/input2 (B, C, H, W) and target1 (B, 2, H, W), got "
                             f"{tuple(input1.shape)}, {tuple(input2.shape)}, {tuple(flow.shape)}")
        batch, _, height, width = input1.shape
        first, second, _ = sample_transforms(batch, height, width, input1.device)
        output1, output2, new_flow = apply_transforms(input1, input2, flow, first, second)
        return {**example_dict, "input1": output1, "input2": output2, "target1": new_flow}

    def extra_repr(self) -> str:
        return f"global={GLOBAL_RANGES}, relative={RELATIVE_RANGES}, max_rounds={MAX_ROUNDS}"
