"""What bfloat16 costs FlowDBN's prewarping: flow, warp and output errors against the flow's magnitude.

A trained flow network is not needed (and a few minutes of CPU training give near-zero flows): known smooth
sub-pixel flow fields of a chosen magnitude are planted as the output of PWC-Net's last flow estimator (its
context-network residual set to zero) by forward hooks that cast them to the dtype that layer really
produces. Under autocast that is exactly the rounding a network's bfloat16 output carries. The frames are
scikit-image photographs (as tools/synthetic_gopro.py uses); the DBN has Kaiming fan-in weights and a last
BatchNorm scale of 0.05 (a near-identity, sensible output, as tests/helpers.tame).

Per magnitude bucket (max |u|, |v| in full-resolution pixels) and variant:
  (a) float32 everywhere: the reference;
  (b) the flow path in bfloat16 as autocast left it before: estimator output, the final bilinear
      upsampling and the division by div_flow in bfloat16, then the float32 warp;
  (c) estimator output in bfloat16, final upsampling and scaling in float32;
  (d) as (c) with the estimator output (its last convolution) in float32 too: no rounding left here;
  model: the real FlowDBN under torch.autocast(bfloat16), as the model code runs it now.
Reported: the flow error in px (max, mean) against (a), the warped neighbours' mean absolute error (in
1/255) and PSNR against (a)'s warp, and the PSNR of FlowDBN's output against (a)'s output with the DBN in
float32 (so that only the flow path differs); for `model` also with the whole model under autocast.

Usage: python bench/bench_flow_precision.py [--quick] [--width 640] [--height 360] [--json FILE]
  --quick: 128x64 and two magnitudes (what the tests run).
"""
import math
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from common import base_parser, emit, finish_parsing, machine, print_table  # noqa: I100 (common puts the repository on sys.path)

import models.flowdbn  # noqa: E402
from contrib.interpolation import resize2d_as  # noqa: E402
from contrib.warping import warp_border  # noqa: E402
from models.flowdbn import PREWARPING_DIV_FLOW, FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402
from tools.synthetic_gopro import photograph  # noqa: E402

MAGNITUDES = (1.0, 4.0, 16.0, 64.0, 100.0)
QUICK_MAGNITUDES = (4.0, 100.0)
SEQUENCE_LENGTH = 3
VARIANTS = ("(b) bf16 flow path", "(c) fp32 upsample+scale", "(d) (c) + fp32 last conv", "model (autocast)")


def build_model(seed: int = 0) -> FlowDBN:
    """FlowDBN with a random-weight PWC-Net (its flow gets planted) and a near-identity DBN."""
    torch.manual_seed(seed)
    pwcnet = PWCNet(div_flow=PREWARPING_DIV_FLOW)
    model = FlowDBN(sequence_length=SEQUENCE_LENGTH,
                    prewarping_state_dict={"model." + key: value for key, value in pwcnet.state_dict().items()})
    dbn = model.flowdbn.dbn_net
    for module in dbn.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    dbn.f15[1].weight.data.fill_(0.05)
    return model.eval()


def frames(width: int, height: int) -> List[torch.Tensor]:
    """SEQUENCE_LENGTH photographs (1, 3, height, width) in [0, 1]."""
    return [photograph(index, width, height)[:, :, :height, :width].contiguous() for index in range(SEQUENCE_LENGTH)]


def planted_flow(batch: int, height: int, width: int, magnitude: float, seed: int) -> torch.Tensor:
    """Smooth random flow fields (batch, 2, height, width) in pixels whose largest |component| is `magnitude`."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 2, 3, 4, generator=generator) * 2 - 1
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    return field * (magnitude / field.abs().amax())


def plant(model: FlowDBN, flow2: Dict[str, torch.Tensor]) -> Callable[[], None]:
    """Make PWC-Net's 1/4-resolution output flow2["value"] (pixels x div_flow) in the dtype its last estimator
    produces; returns the function that removes the hooks."""
    impl = model.flowdbn.warping_network.network.pwcnet_impl
    handles = [
        impl.flow_estimators[-1].register_forward_hook(
            lambda module, inputs, output: (output[0], flow2["value"].to(output[1].dtype))),
        impl.context_network.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output)),
    ]
    return lambda: [handle.remove() for handle in handles]


def run_model(model: FlowDBN, example: Dict[str, torch.Tensor], autocast: bool) -> Dict[str, torch.Tensor]:
    """model_dict (float32) plus 'flow': the flow that reached the warp."""
    recorded = {}
    real_warp = models.flowdbn.warp_border

    def recording_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        recorded["flow"] = flow
        return real_warp(image, flow)

    models.flowdbn.warp_border = recording_warp
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model_dict = model(example)
    finally:
        models.flowdbn.warp_border = real_warp
    result = {key: value.float() for key, value in model_dict.items()}
    result["flow"] = recorded["flow"]
    return result


def dbn_output(model: FlowDBN, inputs: List[torch.Tensor], warped: List[torch.Tensor]) -> torch.Tensor:
    """FlowDBN's eval output from given warped neighbours, all in float32 (as FlowDBNImpl.forward)."""
    reference = SEQUENCE_LENGTH // 2
    with torch.no_grad():
        return (model.flowdbn.dbn_net(inputs + warped)["f15"] + inputs[reference]).clamp(0.0, 1.0)


def flow_path(flow2: torch.Tensor, image: torch.Tensor, output_dtype: torch.dtype, scaling_dtype: torch.dtype
              ) -> torch.Tensor:
    """Full-resolution flow from the estimator output rounded to `output_dtype`, upsampled and scaled in
    `scaling_dtype`."""
    flow2 = flow2.to(output_dtype).to(scaling_dtype)
    return resize2d_as(flow2, image, mode="bilinear", align_corners=True) / PREWARPING_DIV_FLOW


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB for images in [0, 1] (inf when equal)."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def measure_bucket(model: FlowDBN, inputs: List[torch.Tensor], magnitude: float, seed: int) -> List[Dict]:
    """The rows of one magnitude bucket."""
    example = {f"input{i + 1}": frame for i, frame in enumerate(inputs)}
    reference = SEQUENCE_LENGTH // 2
    neighbours = [inputs[i] for i in range(SEQUENCE_LENGTH) if i != reference]
    height, width = inputs[0].shape[-2:]
    flow2 = {"value": planted_flow(len(neighbours), math.ceil(height / 4), math.ceil(width / 4), magnitude, seed)
             * PREWARPING_DIV_FLOW}
    remove = plant(model, flow2)
    try:
        fp32 = run_model(model, example, autocast=False)  # (a)
        amp = run_model(model, example, autocast=True)
    finally:
        remove()
    warped_keys = [f"warped{i + 1}" for i in range(SEQUENCE_LENGTH) if i != reference]
    ref_warped = torch.cat([fp32[key] for key in warped_keys])
    bf16, fp32_dtype = torch.bfloat16, torch.float32
    flows = {VARIANTS[0]: flow_path(flow2["value"], inputs[0], bf16, bf16),
             VARIANTS[1]: flow_path(flow2["value"], inputs[0], bf16, fp32_dtype),
             VARIANTS[2]: flow_path(flow2["value"], inputs[0], fp32_dtype, fp32_dtype),
             VARIANTS[3]: amp["flow"]}
    rows = []
    for variant, flow in flows.items():
        if variant == VARIANTS[3]:
            warped = torch.cat([amp[key] for key in warped_keys])
        else:
            with torch.no_grad():
                warped = warp_border(torch.cat(neighbours), flow.float())
        output = dbn_output(model, inputs, list(warped.chunk(len(neighbours))))
        error = (flow.float() - fp32["flow"]).abs()
        row = {"magnitude": magnitude, "variant": variant, "flow_dtype": str(flow.dtype).replace("torch.", ""),
               "flow_max_px": error.max().item(), "flow_mean_px": error.mean().item(),
               "warp_mean_abs_255": (warped - ref_warped).abs().mean().item() * 255,
               "warp_psnr_db": psnr(warped, ref_warped), "output_psnr_db": psnr(output, fp32["output1"])}
        if variant == VARIANTS[3]:
            row["output_psnr_db_whole_model_amp"] = psnr(amp["output1"], fp32["output1"])
        rows.append(row)
    return rows


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=1)
    parser.add_argument("--width", type=int, default=None, help="frame width (default 640, quick 128)")
    parser.add_argument("--height", type=int, default=None, help="frame height (default 360, quick 64)")
    options = finish_parsing(parser)
    if options.device.type != "cpu":
        parser.error("--device: this bench measures numerics on the CPU only")
    width = options.width or (128 if options.quick else 640)
    height = options.height or (64 if options.quick else 360)
    model = build_model()
    inputs = frames(width, height)
    rows = []
    for seed, magnitude in enumerate(QUICK_MAGNITUDES if options.quick else MAGNITUDES):
        rows.extend(measure_bucket(model, inputs, magnitude, seed))

    def db(value: float) -> str:
        return "inf" if math.isinf(value) else f"{value:.1f}"

    print_table(["±px", "variant", "flow dtype", "flow err max/mean px", "warp |err| ·255", "warp PSNR dB",
                 "output PSNR dB (DBN fp32)", "output PSNR dB (all amp)"],
                [[f"{row['magnitude']:g}", row["variant"], row["flow_dtype"],
                  f"{row['flow_max_px']:.3f} / {row['flow_mean_px']:.3f}", f"{row['warp_mean_abs_255']:.3f}",
                  db(row["warp_psnr_db"]), db(row["output_psnr_db"]),
                  db(row["output_psnr_db_whole_model_amp"]) if "output_psnr_db_whole_model_amp" in row else ""]
                 for row in rows])
    emit({"machine": machine(options.device), "config": {"width": width, "height": height,
                                                         "div_flow": PREWARPING_DIV_FLOW}, "rows": rows},
         options.json)


if __name__ == "__main__":
    main()
