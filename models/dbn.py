"""DBN, the deep video deblurring network of Su et al. as used by Gast & Roth (spec §3.2)."""
from argparse import Namespace
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

from contrib.weight_init import initialize_dbn
from models.registry import MODELS
from utils.frames import reference_index

BN_EPS = 1e-3


def checked_sequence_length(sequence_length: Optional[int]) -> int:
    """N as a model needs it: a positive odd number of frames (main.py passes the datasets' sequence length)."""
    if sequence_length is None:
        raise ValueError("the deblurring models need the sequence length: give a dataset with "
                         "--validation_dataset_sequence_length or --training_dataset_sequence_length")
    if int(sequence_length) < 1 or int(sequence_length) % 2 == 0:
        raise ValueError(f"sequence_length must be a positive odd number of frames, got {sequence_length}")
    return int(sequence_length)


def input_frames(example_dict: Dict[str, torch.Tensor], sequence_length: int) -> List[torch.Tensor]:
    """[input1, …, inputN] in numeric order; a missing key raises a KeyError naming it."""
    frames = []
    for i in range(1, sequence_length + 1):
        key = f"input{i}"
        if key not in example_dict:
            raise KeyError(f"example_dict has no '{key}' (sequence length {sequence_length}); "
                           f"keys: {sorted(example_dict)}")
        frames.append(example_dict[key])
    return frames


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
            relu: bool = True) -> nn.Sequential:
    """Conv (no bias) → BatchNorm(eps 1e-3) → optional ReLU; conv at index 0, BN at index 1."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                        padding=(kernel_size - 1) // 2, bias=False),
              nn.BatchNorm2d(out_channels, eps=BN_EPS)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def deconv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """Transposed conv (k4, s2, p1, no bias) → BatchNorm(eps 1e-3): exact 2x upsampling."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels, eps=BN_EPS))


class DBNImpl(nn.Module):
    """Encoder-decoder with three additive skips; forward(list of frames) → {'f15': residual}."""

    def __init__(self, input_channels: int, output_channels: int = 3,
                 init_type: str = "fan_max") -> None:
        super().__init__()
        ni = input_channels
        self.f0 = conv_bn(ni, 64, kernel_size=5)
        self.d1 = conv_bn(64, 64, stride=2)
        self.f1 = conv_bn(64, 128)
        self.f2 = conv_bn(128, 128)
        self.d2 = conv_bn(128, 256, stride=2)
        self.f3 = conv_bn(256, 256)
        self.f4 = conv_bn(256, 256)
        self.f5 = conv_bn(256, 256)
        self.d3 = conv_bn(256, 512, stride=2)
        self.f6 = conv_bn(512, 512)
        self.f7 = conv_bn(512, 512)
        self.f8 = conv_bn(512, 512)
        self.u1 = deconv_bn(512, 256)
        self.f9 = conv_bn(256, 256)
        self.f10 = conv_bn(256, 256)
        self.f11 = conv_bn(256, 256)
        self.u2 = deconv_bn(256, 128)
        self.f12 = conv_bn(128, 128)
        self.f13 = conv_bn(128, 64)
        self.u3 = deconv_bn(64, 64)
        self.f14 = conv_bn(64, ni)
        self.f15 = conv_bn(ni, output_channels, relu=False)
        self.relu = nn.ReLU(inplace=True)
        initialize_dbn(self, init_type)

    def forward(self, frames: List[torch.Tensor]) -> Dict[str, torch.Tensor]:
        x = torch.cat(frames, dim=1)
        if self.f0[0].weight.is_contiguous(memory_format=torch.channels_last):
            # A channels-last model (--channels_last): FlowDBN's warped frames come out of grid_sample contiguous,
            # which makes the concatenation contiguous; one copy here instead of a conversion in the convolution.
            x = x.contiguous(memory_format=torch.channels_last)
        height, width = x.shape[-2:]
        if height % 8 != 0 or width % 8 != 0:
            raise ValueError(f"DBN needs height and width divisible by 8 (three 2x down/up-samplings), "
                             f"got {height}x{width}; crop the frames, e.g. with --*_dataset_random_crop")
        f0 = self.f0(x)
        f2 = self.f2(self.f1(self.d1(f0)))
        f5 = self.f5(self.f4(self.f3(self.d2(f2))))
        f8 = self.f8(self.f7(self.f6(self.d3(f5))))
        s1 = self.relu(f5 + self.u1(f8))
        s2 = self.relu(f2 + self.u2(self.f11(self.f10(self.f9(s1)))))
        s3 = self.relu(f0 + self.u3(self.f13(self.f12(s2))))
        return {"f15": self.f15(self.f14(s3))}


@MODELS.register("DBN")
class DBN(nn.Module):
    """DBN on the N input frames; predicts a residual added to the centre frame.

    Args:
        init_type: weight initialisation of the convolutions: fan_max (the original's), fan_in or fan_out.
    """

    pad_multiple = 8  # deblur.py pads frames to this: the encoder halves them three times

    @classmethod
    def checkpoint_arguments(cls, state_dict: Dict[str, torch.Tensor],
                             given: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
        """What a DBN checkpoint's weights say about its constructor (N, from the first layer); None if not DBN's."""
        first = state_dict.get("model.dbn_net.f0.0.weight")
        return None if first is None else {"sequence_length": first.shape[1] // 3}

    def __init__(self, args: Optional[Namespace] = None, init_type: str = "fan_max", *,
                 sequence_length: Optional[int] = None) -> None:
        # Keyword-only parameters make no command-line flags: main.py passes N from the dataset flags.
        # `args` is unused: it keeps the original's constructor form.
        super().__init__()
        self.sequence_length = checked_sequence_length(sequence_length)
        self.dbn_net = DBNImpl(input_channels=3 * self.sequence_length, output_channels=3,
                               init_type=init_type)

    def forward(self, example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        frames = input_frames(example_dict, self.sequence_length)
        f15 = self.dbn_net(frames)["f15"]
        output = f15 + frames[reference_index(self.sequence_length)]
        if not self.training:
            output = output.clamp(0.0, 1.0)
        return {"output1": output}
