"""FlowNet1S: FlowNetS with two-channel flow predictions (spec §3.4)."""
from argparse import Namespace
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from contrib.interpolation import resize2d_as
from contrib.precision import float32_op
from contrib.weight_init import initialize_msra_leaky
from models.registry import MODELS


def conv_leaky(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    """Conv2d (bias, padding k//2) → LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
        nn.LeakyReLU(0.1, inplace=True))


def deconv_leaky(in_channels: int, out_channels: int) -> nn.Sequential:
    """ConvTranspose2d (k4, s2, p1, no bias) → LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.LeakyReLU(0.1, inplace=True))


def predict_flow(in_channels: int, num_pred: int) -> nn.Conv2d:
    """3x3 conv to `num_pred` flow channels, no activation."""
    return nn.Conv2d(in_channels, num_pred, 3, stride=1, padding=1)


def upsample_flow(num_pred: int) -> nn.ConvTranspose2d:
    """Learned 2x flow upsampling (k4, s2, p1, no bias), no activation."""
    return nn.ConvTranspose2d(num_pred, num_pred, 4, stride=2, padding=1, bias=False)


def concatenate_as_first(*tensors: torch.Tensor) -> torch.Tensor:
    """Channel concat after resizing every tensor to the first one's size (absorbs odd sizes)."""
    first = tensors[0]
    return torch.cat([resize2d_as(t, first, mode="bilinear", align_corners=True) for t in tensors], dim=1)


class FlowNetS(nn.Module):
    """FlowNetS encoder-decoder; returns predictions at 1/4 … 1/64 resolution, finest first."""

    def __init__(self, num_pred: int = 2) -> None:
        super().__init__()
        self.conv1 = conv_leaky(6, 64, 7, 2)
        self.conv2 = conv_leaky(64, 128, 5, 2)
        self.conv3 = conv_leaky(128, 256, 5, 2)
        self.conv3_1 = conv_leaky(256, 256, 3, 1)
        self.conv4 = conv_leaky(256, 512, 3, 2)
        self.conv4_1 = conv_leaky(512, 512, 3, 1)
        self.conv5 = conv_leaky(512, 512, 3, 2)
        self.conv5_1 = conv_leaky(512, 512, 3, 1)
        self.conv6 = conv_leaky(512, 1024, 3, 2)
        self.conv6_1 = conv_leaky(1024, 1024, 3, 1)

        self.deconv5 = deconv_leaky(1024, 512)
        self.deconv4 = deconv_leaky(1024 + num_pred, 256)
        self.deconv3 = deconv_leaky(512 + 256 + num_pred, 128)
        self.deconv2 = deconv_leaky(256 + 128 + num_pred, 64)

        self.predict_flow6 = predict_flow(1024, num_pred)
        self.predict_flow5 = predict_flow(1024 + num_pred, num_pred)
        self.predict_flow4 = predict_flow(512 + 256 + num_pred, num_pred)
        self.predict_flow3 = predict_flow(256 + 128 + num_pred, num_pred)
        self.predict_flow2 = predict_flow(128 + 64 + num_pred, num_pred)

        self.upsample_flow6_to_5 = upsample_flow(num_pred)
        self.upsample_flow5_to_4 = upsample_flow(num_pred)
        self.upsample_flow4_to_3 = upsample_flow(num_pred)
        self.upsample_flow3_to_2 = upsample_flow(num_pred)
        initialize_msra_leaky(self)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        conv2 = self.conv2(self.conv1(x))
        conv3_1 = self.conv3_1(self.conv3(conv2))
        conv4_1 = self.conv4_1(self.conv4(conv3_1))
        conv5_1 = self.conv5_1(self.conv5(conv4_1))
        conv6_1 = self.conv6_1(self.conv6(conv5_1))

        flow6 = self.predict_flow6(conv6_1)
        concat5 = concatenate_as_first(conv5_1, self.deconv5(conv6_1), self.upsample_flow6_to_5(flow6))
        flow5 = self.predict_flow5(concat5)
        concat4 = concatenate_as_first(conv4_1, self.deconv4(concat5), self.upsample_flow5_to_4(flow5))
        flow4 = self.predict_flow4(concat4)
        concat3 = concatenate_as_first(conv3_1, self.deconv3(concat4), self.upsample_flow4_to_3(flow4))
        flow3 = self.predict_flow3(concat3)
        concat2 = concatenate_as_first(conv2, self.deconv2(concat3), self.upsample_flow3_to_2(flow3))
        flow2 = self.predict_flow2(concat2)
        return flow2, flow3, flow4, flow5, flow6


@MODELS.register("FlowNet1S")
class FlowNet1S(nn.Module):
    """FlowNetS on cat(input1, input2); train → flow2..flow6 (× div_flow), eval → full-res 'flow1'.

    Args:
        div_flow: scale of the training outputs: flow in pixels × div_flow (use the loss's div_flow).
    """

    def __init__(self, args: Optional[Namespace] = None, div_flow: float = 1.0) -> None:
        super().__init__()
        self.div_flow = div_flow
        self.flownets = FlowNetS(num_pred=2)

    def forward(self, example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        im1 = example_dict["input1"]
        im2 = example_dict["input2"]
        flows = self.flownets(torch.cat((im1, im2), dim=1))
        if self.training:
            return {f"flow{level}": flow for level, flow in zip(range(2, 7), flows)}
        # In float32 also under autocast (--amp), see FLOAT32_FLOW_NOTE in contrib/precision.py.
        flow1 = float32_op(lambda flow: F.interpolate(flow, size=im1.shape[-2:], mode="bilinear",
                                                      align_corners=True) / self.div_flow, flows[0])
        return {"flow1": flow1}
