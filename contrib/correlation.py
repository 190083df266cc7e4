"""Cost-volume correlation as used by PWC-Net (spec §3.5), in pure PyTorch.

out[b, dy·P + dx, y, x] = Σ_c f1[b, c, y, x] · f2[b, c, y + dy − r, x + dx − r] with P = 2r + 1,
dy, dx ∈ 0..P−1 (vertical displacement major), zero where the displaced position is outside the
frame and no normalisation by the channel count. This matches the original's
`spatial_correlation_sampler` call (kernel 1, patch 9, stride 1), reshaped to (B, 81, H, W).

The loops over the P² displacements keep the temporaries at one (B, C, H, W) product; a
(B, P², C, H, W) tensor is never built, which matters at full resolution (C=32, 180×320 per frame).
"""
import importlib
import importlib.util
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

BACKENDS = ("torch", "spatial_correlation_sampler")


def sampler_available() -> bool:
    """Whether the compiled `spatial_correlation_sampler` extension can be imported."""
    return importlib.util.find_spec("spatial_correlation_sampler") is not None


def _check_inputs(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int) -> None:
    if f1.dim() != 4 or f1.shape != f2.shape:
        raise ValueError(f"correlation expects two NCHW tensors of equal shape, "
                         f"got {tuple(f1.shape)} and {tuple(f2.shape)}")
    if max_displacement < 0:
        raise ValueError(f"max_displacement must be >= 0, got {max_displacement}")


def _displacement_windows(height: int, width: int, max_displacement: int):
    """Yield (channel, row slice, column slice) of every displacement into the padded f2."""
    patch = 2 * max_displacement + 1
    for dy in range(patch):
        for dx in range(patch):
            yield dy * patch + dx, slice(dy, dy + height), slice(dx, dx + width)


def _memory_format(tensor: torch.Tensor) -> torch.memory_format:
    """channels_last for a channels-last NCHW tensor (with more than one channel), else contiguous."""
    if tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class _CorrelationFunction(torch.autograd.Function):
    """Correlation with a hand-written backward that is as memory-lean as the forward."""

    @staticmethod
    def forward(ctx: Any, f1: torch.Tensor, f2: torch.Tensor, max_displacement: int) -> torch.Tensor:
        ctx.save_for_backward(f1, f2)
        ctx.max_displacement = max_displacement
        batch, _, height, width = f1.shape
        r = max_displacement
        f2_padded = F.pad(f2, (r, r, r, r))
        # Channels-last features get a channels-last cost volume: PWC-Net concatenates it with them, and a
        # mixed concatenation comes out contiguous, which every following convolution converted back.
        out = torch.empty(batch, (2 * r + 1) ** 2, height, width, dtype=f1.dtype, device=f1.device,
                          memory_format=_memory_format(f1))
        for k, rows, cols in _displacement_windows(height, width, r):
            out[:, k] = (f1 * f2_padded[:, :, rows, cols]).sum(dim=1)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor):
        f1, f2 = ctx.saved_tensors
        r = ctx.max_displacement
        _, _, height, width = f1.shape
        grad_out = grad_out.contiguous()
        need_f1, need_f2 = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        f2_padded = F.pad(f2, (r, r, r, r))
        grad_f1 = torch.zeros_like(f1) if need_f1 else None
        grad_f2_padded = torch.zeros_like(f2_padded) if need_f2 else None
        for k, rows, cols in _displacement_windows(height, width, r):
            g = grad_out[:, k:k + 1]
            if need_f1:
                grad_f1.addcmul_(g, f2_padded[:, :, rows, cols])
            if need_f2:
                grad_f2_padded[:, :, rows, cols].addcmul_(g, f1)
        grad_f2 = None
        if need_f2:
            # Gradients that fell on the zero padding belong to no input pixel.
            grad_f2 = grad_f2_padded[:, :, r:r + height, r:r + width]
        return grad_f1, grad_f2, None


def _correlation_sampler(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int) -> torch.Tensor:
    module = importlib.import_module("spatial_correlation_sampler")
    patch = 2 * max_displacement + 1
    out = module.spatial_correlation_sample(f1, f2, kernel_size=1, patch_size=patch, stride=1,
                                            padding=0, dilation=1, dilation_patch=1)
    return out.reshape(f1.size(0), patch * patch, f1.size(2), f1.size(3))


def correlation(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int = 4,
                backend: str = "torch") -> torch.Tensor:
    """Un-normalised local correlation of f1 with f2 → (B, (2·max_displacement+1)², H, W)."""
    _check_inputs(f1, f2, max_displacement)
    if backend == "torch":
        return _CorrelationFunction.apply(f1, f2, max_displacement)
    if backend == "spatial_correlation_sampler":
        if not sampler_available():
            raise ValueError("correlation backend 'spatial_correlation_sampler' requested, "
                             "but the package is not importable; use backend='torch'")
        return _correlation_sampler(f1, f2, max_displacement)
    raise ValueError(f"unknown correlation backend '{backend}'; expected one of {BACKENDS}")


class Correlation(nn.Module):
    """Stateless module wrapper of `correlation` (no parameters, no state-dict entries)."""

    def __init__(self, max_displacement: int = 4, backend: str = "torch") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown correlation backend '{backend}'; expected one of {BACKENDS}")
        self.max_displacement = max_displacement
        self.backend = backend

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return correlation(f1, f2, self.max_displacement, self.backend)

    def extra_repr(self) -> str:
        return f"max_displacement={self.max_displacement}, backend={self.backend!r}"
