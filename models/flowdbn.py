"""FlowDBN: DBN on the input frames plus neighbours pre-warped by a frozen flow network (spec §3.3)."""
import logging
import os
from argparse import Namespace
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from contrib.warping import warp_border
from models.dbn import DBNImpl, checked_sequence_length, input_frames, reference_index
from models.flownet1s import FlowNet1S
from models.pwcnet import PWCNet
from models.registry import MODELS
from utils import checkpoints

NOT_GIVEN = "filename"
PREWARPING_FILES = ("pretrained_pwcnet", "pretrained_flownet")  # the first one given wins
FLOW_PREFIX = "model.flowdbn.warping_network.network."  # the flow network's keys in a FlowDBN checkpoint
PREWARPING_DIV_FLOW = 0.05


def _given(path: Optional[str]) -> bool:
    """The CLI default "filename" (and None / "none") mean that no checkpoint was given."""
    return path is not None and path != NOT_GIVEN and str(path).lower() != "none"


def _translate_flownet_key(key: str) -> str:
    """model._flownets.* / model.flownets.* (checkpoints of this framework) → flownets.*."""
    for prefix in ("model._flownets.", "model.flownets."):
        if key.startswith(prefix):
            return "flownets." + key[len(prefix):]
    return key


def _translate_pwcnet_key(key: str) -> str:
    """model.pwcnet_impl.* (checkpoints of this framework) → pwcnet_impl.*."""
    prefix = "model.pwcnet_impl."
    if key.startswith(prefix):
        return "pwcnet_impl." + key[len(prefix):]
    return key


def load_prewarping_checkpoint(network: nn.Module, path: str, flag: str, translate: Callable[[str], str]) -> None:
    """Strictly load a framework checkpoint {'state_dict': {'model.…': tensor}} into `network`."""
    if not os.path.isfile(path) and os.path.basename(os.path.dirname(os.path.abspath(path))) == "prewarping_networks":
        # Where the launch scripts look for the released networks: say how to get them.
        experiments = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        raise FileNotFoundError(f"{flag}: '{path}' does not exist; download the released prewarping networks with "
                                f"`python scripts/get_data.py prewarping_networks --root {experiments}`, or make one "
                                f"with `bash scripts/make_prewarping_network.sh {path}`")
    checkpoint = checkpoints.load_file(path, flag)
    load_prewarping_state_dict(network, checkpoint["state_dict"], f"{flag}: '{path}'", translate)


def load_prewarping_state_dict(network: nn.Module, state_dict: Dict[str, torch.Tensor], source: str,
                               translate: Callable[[str], str]) -> None:
    """Strictly load a prewarping state dict ('model.…' keys as in checkpoints) into `network`."""
    state_dict = {translate(key): value for key, value in state_dict.items()}
    # The framework's one key and shape check (every key on both sides): one line naming the source.
    checkpoints.load_state_dict(network, state_dict, f"{source} ({type(network).__name__})")
    logging.getLogger(__name__).info("Restored %d tensors of %s from %s",
                                     len(state_dict), type(network).__name__, source)


def _prewarping_network_from_state_dict(state_dict: Dict[str, torch.Tensor]) -> nn.Module:
    """The PWC-Net or FlowNet1S whose weights `state_dict` holds ('model.…' keys, as in checkpoints)."""
    if any(_translate_pwcnet_key(key).startswith("pwcnet_impl.") for key in state_dict):
        network, translate = PWCNet(div_flow=PREWARPING_DIV_FLOW), _translate_pwcnet_key
    elif any(_translate_flownet_key(key).startswith("flownets.") for key in state_dict):
        network, translate = FlowNet1S(div_flow=PREWARPING_DIV_FLOW), _translate_flownet_key
    else:
        raise ValueError("prewarping_state_dict holds neither PWC-Net ('model.pwcnet_impl.*') nor FlowNet1S "
                         "('model.flownets.*') weights")
    load_prewarping_state_dict(network, state_dict, "prewarping_state_dict", translate)
    return network


class WarpingNetwork(nn.Module):
    """Frozen FlowNet1S or PWCNet (div_flow 0.05) that backward-warps neighbours to the reference."""

    def __init__(self, pretrained_flownet: str = NOT_GIVEN, pretrained_pwcnet: str = NOT_GIVEN,
                 state_dict: Optional[Dict[str, torch.Tensor]] = None) -> None:
        super().__init__()
        use_flownet = _given(pretrained_flownet)
        use_pwcnet = _given(pretrained_pwcnet)
        if state_dict is not None and not (use_flownet or use_pwcnet):
            self.network = _prewarping_network_from_state_dict(state_dict)
        elif use_flownet == use_pwcnet:
            raise ValueError("FlowDBN needs exactly one prewarping checkpoint: give either "
                             "--model_pretrained_flownet or --model_pretrained_pwcnet "
                             f"(got flownet='{pretrained_flownet}', pwcnet='{pretrained_pwcnet}')")
        elif use_flownet:
            self.network = FlowNet1S(div_flow=PREWARPING_DIV_FLOW)
            load_prewarping_checkpoint(self.network, pretrained_flownet, "--model_pretrained_flownet",
                                       _translate_flownet_key)
        else:
            self.network = PWCNet(div_flow=PREWARPING_DIV_FLOW)
            load_prewarping_checkpoint(self.network, pretrained_pwcnet, "--model_pretrained_pwcnet",
                                       _translate_pwcnet_key)
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.network.eval()

    def train(self, mode: bool = True) -> "WarpingNetwork":
        # The flow network only has an eval path that returns full-resolution 'flow1'.
        super().train(mode)
        self.network.eval()
        return self

    @property
    def reuses_pyramids(self) -> bool:
        """Whether per-frame feature pyramids can be computed once and shared by every pair (PWC-Net)."""
        return isinstance(self.network, PWCNet)

    def pyramid(self, frame: torch.Tensor) -> List[torch.Tensor]:
        """PWC-Net's feature pyramid of one batch of frames, for `forward(..., pyramids=...)`."""
        if not self.reuses_pyramids:
            raise ValueError("feature pyramids exist only for a PWC-Net prewarping network, not FlowNet1S")
        with torch.inference_mode():
            return self.network.pyramid(frame)

    def forward(self, frames: List[torch.Tensor], reference: int,
                pyramids: Optional[Sequence[List[torch.Tensor]]] = None) -> List[torch.Tensor]:
        """Warp every non-reference frame into the reference view, in increasing frame order.

        With PWC-Net every frame's feature pyramid is computed once (or taken from `pyramids`, one per
        frame, e.g. kept by a sliding window over a video) and shared by all pairs it appears in.
        """
        self.network.eval()
        # torch.compile cannot trace inference mode; under compile no_grad gives the same savings.
        compiling = torch.compiler.is_compiling()
        outside_inference_mode = not compiling and not torch.is_inference_mode_enabled()
        with torch.no_grad() if compiling else torch.inference_mode():
            neighbours = [i for i in range(len(frames)) if i != reference]
            x2 = torch.cat([frames[i] for i in neighbours], dim=0)
            if self.reuses_pyramids:
                if pyramids is None:
                    pyramids = [self.network.pyramid(frame) for frame in frames]
                if len(pyramids) != len(frames):
                    raise ValueError(f"got {len(pyramids)} feature pyramids for {len(frames)} frames")
                levels = range(len(pyramids[reference]))
                pyramid1 = [torch.cat([pyramids[reference][level]] * len(neighbours), dim=0) for level in levels]
                pyramid2 = [torch.cat([pyramids[i][level] for i in neighbours], dim=0) for level in levels]
                flow = self.network.flow1_from_pyramids(pyramid1, pyramid2, frames[reference])
            else:
                x1 = torch.cat([frames[reference]] * len(neighbours), dim=0)
                flow = self.network({"input1": x1, "input2": x2})["flow1"]
            # Sampling positions in reduced precision (--amp) would be off by pixels at 1280 px.
            precise = torch.promote_types(flow.dtype, torch.float32)
            warped = warp_border(x2.to(precise), flow.to(precise)).to(x2.dtype).chunk(len(neighbours), dim=0)
        if outside_inference_mode:
            # Normal tensors again, so that training code and visualizers may use them freely.
            return [image.clone() for image in warped]
        return list(warped)


class FlowDBNImpl(nn.Module):
    """DBN on cat(input1..inputN, warped neighbours); returns f15, warped<i> and output1."""

    def __init__(self, sequence_length: int, pretrained_flownet: str = NOT_GIVEN,
                 pretrained_pwcnet: str = NOT_GIVEN,
                 prewarping_state_dict: Optional[Dict[str, torch.Tensor]] = None) -> None:
        super().__init__()
        self.sequence_length = sequence_length
        self.dbn_net = DBNImpl(input_channels=3 * (2 * sequence_length - 1), output_channels=3,
                               init_type="fan_max")
        self.warping_network = WarpingNetwork(pretrained_flownet, pretrained_pwcnet, prewarping_state_dict)

    def forward(self, example_dict: Dict[str, torch.Tensor],
                pyramids: Optional[Sequence[List[torch.Tensor]]] = None) -> Dict[str, torch.Tensor]:
        frames = input_frames(example_dict, self.sequence_length)
        reference = reference_index(self.sequence_length)
        warped = self.warping_network(frames, reference, pyramids)
        f15 = self.dbn_net(frames + warped)["f15"]
        output = f15 + frames[reference]
        if not self.training:
            output = output.clamp(0.0, 1.0)
        model_dict = {"f15": f15}
        neighbour_numbers = [i + 1 for i in range(self.sequence_length) if i != reference]
        for number, image in zip(neighbour_numbers, warped):
            model_dict[f"warped{number}"] = image
        model_dict["output1"] = output
        return model_dict


@MODELS.register("FlowDBN")
class FlowDBN(nn.Module):
    """DBN with flow-based pre-warping; exactly one of the two prewarping checkpoints must be given.

    Args:
        pretrained_flownet: FlowNet1S checkpoint of the frozen prewarping network (give this or pretrained_pwcnet).
        pretrained_pwcnet: PWCNet checkpoint of the frozen prewarping network (give this or pretrained_flownet).
    """

    pad_multiple = 8  # deblur.py pads frames to this: DBN's encoder halves them three times

    @classmethod
    def checkpoint_arguments(cls, state_dict: Dict[str, torch.Tensor],
                             given: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
        """What a FlowDBN checkpoint's weights say about its constructor, None if they are not FlowDBN's: N (from
        DBN's first layer) and the flow network's own weights, unless `given` names a prewarping file."""
        first = state_dict.get("model.flowdbn.dbn_net.f0.0.weight")
        if first is None:
            return None
        arguments: Dict[str, Any] = {"sequence_length": (first.shape[1] // 3 + 1) // 2}  # N frames + N-1 warped
        files = [name for name in PREWARPING_FILES if (given or {}).get(name)]
        if files:
            arguments[files[0]] = given[files[0]]
            return arguments
        flow = {f"model.{key[len(FLOW_PREFIX):]}": value for key, value in state_dict.items()
                if key.startswith(FLOW_PREFIX)}
        if not any(key.startswith(("model.pwcnet_impl.", "model.flownets.")) for key in flow):
            raise ValueError("--checkpoint: this FlowDBN checkpoint holds no flow-network weights "
                             f"('{FLOW_PREFIX}pwcnet_impl.*' or '...flownets.*'); give --pretrained_pwcnet "
                             "or --pretrained_flownet")
        arguments["prewarping_state_dict"] = flow
        return arguments

    def __init__(self, args: Optional[Namespace] = None, pretrained_flownet: str = NOT_GIVEN,
                 pretrained_pwcnet: str = NOT_GIVEN, *, sequence_length: Optional[int] = None,
                 prewarping_state_dict: Optional[Dict[str, torch.Tensor]] = None) -> None:
        """Keyword-only parameters make no command-line flags. `sequence_length` replaces the dataset flag
        (main.py passes the datasets'); `prewarping_state_dict` (a prewarping checkpoint's 'model.…' state dict)
        replaces a prewarping file, e.g. when a whole FlowDBN checkpoint is loaded right after."""
        super().__init__()  # `args` is unused: it keeps the original's constructor form
        self.flowdbn = FlowDBNImpl(checked_sequence_length(sequence_length), pretrained_flownet,
                                   pretrained_pwcnet, prewarping_state_dict)

    def forward(self, example_dict: Dict[str, torch.Tensor],
                pyramids: Optional[Sequence[List[torch.Tensor]]] = None) -> Dict[str, torch.Tensor]:
        """model_dict of one batch; `pyramids` (one per input frame, see `frame_pyramid`) skip recomputing them."""
        return self.flowdbn(example_dict, pyramids)

    def frame_pyramid(self, frame: torch.Tensor) -> Optional[List[torch.Tensor]]:
        """The prewarping PWC-Net's feature pyramid of a frame (None for FlowNet1S, which has none)."""
        network = self.flowdbn.warping_network
        return network.pyramid(frame) if network.reuses_pyramids else None
