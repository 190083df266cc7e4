"""A drop-in model (copy into models/): a small residual CNN over the N input frames.

Like every deblurring model it maps `input1..inputN` to `output1`. The constructor parameter
`channels` becomes the flag `--model_channels`; the keyword-only `sequence_length` makes no flag: main.py
passes N, the datasets' `--*_sequence_length`.
"""
import argparse
from typing import Dict, Optional

import torch
from torch import nn

from models.dbn import checked_sequence_length, input_frames, reference_index
from models.registry import MODELS


@MODELS.register("TinyDeblur")
class TinyDeblur(nn.Module):
    """The reference frame plus a residual from three 3x3 convolutions over all N frames."""

    def __init__(self, args: Optional[argparse.Namespace] = None, channels: int = 16, *,
                 sequence_length: Optional[int] = None) -> None:
        super().__init__()
        self.sequence_length = checked_sequence_length(sequence_length)  # `args` is unused
        self.body = nn.Sequential(
            nn.Conv2d(3 * self.sequence_length, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 3, 3, padding=1))
        # A zero residual at the start: the untrained model returns the blurry reference frame.
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        frames = input_frames(example_dict, self.sequence_length)
        output = frames[reference_index(self.sequence_length)] + self.body(torch.cat(frames, dim=1))
        return {"output1": output if self.training else output.clamp(0.0, 1.0)}
