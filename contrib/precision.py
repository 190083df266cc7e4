"""Precision and memory format of a model's computation: what runs in bfloat16 (--amp), where the hardware
multiplies bfloat16 natively, and what stays float32 under autocast (the flow that positions FlowDBN's warp).

FLOAT32_FLOW_NOTE: the flow networks' final upsampling (1/4 → full resolution) and division by div_flow run
in float32 even under bfloat16 autocast; the rest of the flow network stays in bfloat16 (PWC-Net is about
half of FlowDBN's work). In bfloat16 they put planted smooth ±100 px flows off by up to 1.08 px (mean
0.09 px; warp PSNR against float32 41.4 dB); in float32 only the estimator output's own bfloat16 rounding
(≤ 2^-8 of the flow) remains: 0.31 px max, 0.03 px mean, warp PSNR 50.3 dB (bench/bench_flow_precision.py,
640x360, see bench/README.md). The last flow prediction in float32 too would remove that rounding as well,
but costs about 0.8 s per 1280x720 FlowDBN frame (a float32 copy of its 563 input channels and a slow
2-channel float32 convolution), and a real network's output carries rounding of that order anyway: the
coarser level's flow enters it as a bfloat16 channel. With float32 upsampling the flow error already costs FlowDBN's
output less (76.5 dB PSNR against float32 at 100 px) than its bfloat16 DBN does (67-68 dB).
"""
import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, ContextManager, FrozenSet, Optional

import torch

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=None)
def cpu_flags() -> FrozenSet[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> Optional[str]:
    """The unit that multiplies bfloat16 natively on `device` ("AMX", "AVX512-BF16", "bf16 tensor cores"), or None.

    Without one, bfloat16 is converted to float32 for every product and runs slower than float32 itself.
    """
    if device.type == "cuda":
        return "bf16 tensor cores" if torch.cuda.is_bf16_supported(including_emulation=False) else None
    if device.type == "cpu":
        flags = cpu_flags()
        if "amx_bf16" in flags:
            return "AMX"
        if "avx512_bf16" in flags:
            return "AVX512-BF16"
    return None


@dataclass(frozen=True)
class Precision:
    """How a model computes: autocast to `amp_dtype` (None: float32) and channels-last inputs or not."""

    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False

    def autocast(self, device: torch.device) -> ContextManager:
        """Autocast to `amp_dtype` on `device` for the block; nothing for float32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def input(self, image: torch.Tensor) -> torch.Tensor:
        """An NCHW input in the memory format the model's weights have."""
        return image.contiguous(memory_format=torch.channels_last) if self.channels_last else image


def float32_op(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`fn(x)` with autocast off and `x` in at least float32 (exactly `fn(x)` for float32 `x` without autocast)."""
    device_type = x.device.type
    if not (torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)):
        return fn(x)  # nothing to turn off (a device without autocast, e.g. meta tensors, counts as off)
    with torch.autocast(device_type, enabled=False):
        return fn(x.to(torch.promote_types(x.dtype, torch.float32)))


FLOAT32 = Precision()  # float32, contiguous: the exact result
