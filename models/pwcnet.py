"""PWC-Net with a dense flow estimator and a dilated context network (spec §3.5)."""
from argparse import Namespace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from contrib.correlation import Correlation
from contrib.interpolation import resize2d_as
from contrib.precision import float32_op
from contrib.warping import warp_with_mask
from contrib.weight_init import initialize_msra_leaky
from models.registry import MODELS

SEARCH_RANGE = 4
NUM_CHANNELS = (3, 16, 32, 64, 96, 128, 196)
OUTPUT_LEVEL = 4
DIM_CORR = (2 * SEARCH_RANGE + 1) ** 2
# Without autograd, dense estimators on levels of at least this many pixels write into one buffer.
BUFFER_MIN_PIXELS = 64 * 64


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
         dilation: int = 1, is_relu: bool = True) -> nn.Sequential:
    """Conv2d (bias, 'same' padding for odd kernels) → optional LeakyReLU(0.1); conv at index 0."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
                        padding=((kernel_size - 1) * dilation) // 2, bias=True)]
    if is_relu:
        layers.append(nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(*layers)


class FeaturePyramidExtractor(nn.Module):
    """Six levels of two 3x3 convs (the first with stride 2); returns features coarsest first."""

    def __init__(self, num_channels: Tuple[int, ...] = NUM_CHANNELS) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(conv(ch_in, ch_out, stride=2), conv(ch_out, ch_out))
            for ch_in, ch_out in zip(num_channels[:-1], num_channels[1:]))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        pyramid = []
        for level in self.convs:
            x = level(x)
            pyramid.append(x)
        return pyramid[::-1]


class FlowEstimatorDense(nn.Module):
    """DenseNet-style estimator: every conv output is prepended to its input; returns (features, flow)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, 128)
        self.conv2 = conv(in_channels + 128, 128)
        self.conv3 = conv(in_channels + 256, 96)
        self.conv4 = conv(in_channels + 352, 64)
        self.conv5 = conv(in_channels + 416, 32)
        self.conv_last = conv(in_channels + 448, 2, is_relu=False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled() or not x.is_contiguous() or x.shape[-2] * x.shape[-1] < BUFFER_MIN_PIXELS:
            for layer in self.dense_layers():
                x = torch.cat((layer(x), x), dim=1)
            return x, self.conv_last(x)
        return self._forward_into_buffer(x)

    def dense_layers(self) -> Tuple[nn.Sequential, ...]:
        """conv1..conv5, whose outputs are prepended to their inputs."""
        return self.conv1, self.conv2, self.conv3, self.conv4, self.conv5

    def _forward_into_buffer(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """`forward` without autograd, minus the growing copies of torch.cat.

        The final features [out5, ..., out1, x] are one buffer filled from the back: every layer reads
        the channels behind its slot and writes its output once. One sample at a time, because only
        then is a channel suffix contiguous; that pays from BUFFER_MIN_PIXELS per level on (the 1/4 and
        1/8 levels of 1280x720 video: about 3% faster FlowDBN evaluation on the CPU). The values equal those of
        the batched convolutions (bit for bit on the machines measured; oneDNN may in principle pick
        other kernels for one sample than for several, a float-rounding difference).
        """
        batch, channels = x.shape[:2]
        buffer = x.new_empty(batch, self.conv_last[0].in_channels, *x.shape[2:])
        start = buffer.size(1) - channels
        buffer[:, start:] = x
        for layer in self.dense_layers():
            end, start = start, start - layer[0].out_channels
            for sample in range(batch):
                buffer[sample:sample + 1, start:end] = layer(buffer[sample:sample + 1, end:])
        return buffer, self.conv_last(buffer)


class ContextNetwork(nn.Module):
    """Dilated convolutions (1, 2, 4, 8, 16, 1, 1) predicting a flow residual."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            conv(in_channels, 128, dilation=1),
            conv(128, 128, dilation=2),
            conv(128, 128, dilation=4),
            conv(128, 96, dilation=8),
            conv(96, 64, dilation=16),
            conv(64, 32, dilation=1),
            conv(32, 2, is_relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


def warp_level(x: torch.Tensor, flow: torch.Tensor, height_im: int, width_im: int,
               div_flow: float) -> torch.Tensor:
    """Warp pyramid features by a flow carried in full-resolution pixels × div_flow.

    The flow is converted to this level's pixel units (u · W_level / W_image, v · H_level / H_image)
    and applied with zero padding and the `>= 1.0` validity mask.
    """
    # Sampling positions in at least float32 even under autocast: bfloat16 is off by pixels at 1/4 of 720p.
    precise = torch.promote_types(flow.dtype, torch.float32)
    flow = flow.to(precise) / div_flow
    height, width = x.shape[-2:]
    scale = torch.tensor([width / width_im, height / height_im], dtype=precise, device=flow.device)
    return warp_with_mask(x.to(precise), flow * scale.view(1, 2, 1, 1)).to(x.dtype)


class PWCNetImpl(nn.Module):
    """The PWC-Net pipeline; forward(im1, im2) → [flow at 1/64, 1/32, 1/16, 1/8, refined 1/4]."""

    def __init__(self, div_flow: float = 0.05) -> None:
        super().__init__()
        self.div_flow = div_flow
        self.output_level = OUTPUT_LEVEL
        self.feature_pyramid_extractor = FeaturePyramidExtractor(NUM_CHANNELS)
        self.correlation = Correlation(max_displacement=SEARCH_RANGE)
        self.leaky_relu = nn.LeakyReLU(0.1)
        # Level 0 sees only the cost volume; finer levels also get their features and the flow.
        estimator_inputs = [DIM_CORR] + [DIM_CORR + ch + 2 for ch in NUM_CHANNELS[::-1][1:OUTPUT_LEVEL + 1]]
        self.flow_estimators = nn.ModuleList(FlowEstimatorDense(n) for n in estimator_inputs)
        self.context_network = ContextNetwork(estimator_inputs[-1] + 448 + 2)
        initialize_msra_leaky(self)

    def pyramid(self, images: torch.Tensor) -> List[torch.Tensor]:
        """Feature pyramid of a batch of images, coarsest (1/64) first; reusable for every pair of a frame."""
        return self.feature_pyramid_extractor(images)

    def flow_from_pyramids(self, pyramid1: Sequence[torch.Tensor], pyramid2: Sequence[torch.Tensor],
                           image_size: Sequence[int]) -> List[torch.Tensor]:
        """Flows 1 → 2 at 1/64, 1/32, 1/16, 1/8 and the refined 1/4 from the two images' pyramids.

        `image_size` (H, W) of the images converts the flow (full-resolution pixels × div_flow) to
        each level's pixel units for warping.
        """
        height_im, width_im = int(image_size[0]), int(image_size[1])
        flows = []
        flow = None
        for level, (x1, x2) in enumerate(zip(pyramid1, pyramid2)):
            if level == 0:
                x2_warp = x2
            else:
                flow = resize2d_as(flow, x1, mode="bilinear", align_corners=False)
                x2_warp = warp_level(x2, flow, height_im, width_im, self.div_flow)
            corr = self.leaky_relu(self.correlation(x1, x2_warp))
            if level == 0:
                features_out, flow = self.flow_estimators[level](corr)
            else:
                features_out, flow = self.flow_estimators[level](torch.cat((corr, x1, flow), dim=1))
            if level == self.output_level:
                flow = flow + self.context_network(torch.cat((features_out, flow), dim=1))
                flows.append(flow)
                break
            flows.append(flow)
        return flows

    def forward(self, im1: torch.Tensor, im2: torch.Tensor) -> List[torch.Tensor]:
        # Both images go through the pyramid in one batch, as in the original.
        batch = im1.size(0)
        features = self.pyramid(torch.cat((im1, im2), dim=0))
        return self.flow_from_pyramids([f[:batch] for f in features], [f[batch:] for f in features],
                                       im1.shape[-2:])


@MODELS.register("PWCNet")
class PWCNet(nn.Module):
    """PWC-Net on (input1, input2); train → flow2..flow6 (× div_flow), eval → full-res 'flow1'.

    Args:
        div_flow: scale of the training outputs: flow in pixels × div_flow (use the loss's div_flow).
    """

    def __init__(self, args: Optional[Namespace] = None, div_flow: float = 1.0) -> None:
        super().__init__()
        self.div_flow = div_flow
        self.pwcnet_impl = PWCNetImpl(div_flow=div_flow)

    def forward(self, example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        im1 = example_dict["input1"]
        im2 = example_dict["input2"]
        flow6, flow5, flow4, flow3, flow2 = self.pwcnet_impl(im1, im2)
        if self.training:
            return {"flow2": flow2, "flow3": flow3, "flow4": flow4, "flow5": flow5, "flow6": flow6}
        return {"flow1": self.full_resolution_flow(flow2, im1)}

    def full_resolution_flow(self, flow2: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The 1/4-resolution flow (× div_flow) as the eval output 'flow1': size of `image`, pixel units.

        In float32 also under autocast (--amp), see FLOAT32_FLOW_NOTE in contrib/precision.py.
        """
        return float32_op(lambda flow: resize2d_as(flow, image, mode="bilinear", align_corners=True) / self.div_flow,
                          flow2)

    def pyramid(self, images: torch.Tensor) -> List[torch.Tensor]:
        """Feature pyramid of a batch of images (see PWCNetImpl.pyramid)."""
        return self.pwcnet_impl.pyramid(images)

    def flow1_from_pyramids(self, pyramid1: Sequence[torch.Tensor], pyramid2: Sequence[torch.Tensor],
                            image: torch.Tensor) -> torch.Tensor:
        """Eval-mode 'flow1' (image 1 → image 2, full resolution, pixels) from precomputed pyramids.

        Only the spatial size of `image` (one of the input images, any batch size) is used.
        """
        flow2 = self.pwcnet_impl.flow_from_pyramids(pyramid1, pyramid2, image.shape[-2:])[-1]
        return self.full_resolution_flow(flow2, image)
