"""What stays float32 under autocast (--amp): the flow that positions FlowDBN's warp.

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
from typing import Callable

import torch


def float32_op(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`fn(x)` with autocast off and `x` in at least float32 (exactly `fn(x)` for float32 `x` without autocast)."""
    device_type = x.device.type
    if not (torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)):
        return fn(x)  # nothing to turn off (a device without autocast, e.g. meta tensors, counts as off)
    with torch.autocast(device_type, enabled=False):
        return fn(x.to(torch.promote_types(x.dtype, torch.float32)))
