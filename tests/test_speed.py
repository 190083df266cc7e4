"""Speed options: --amp=bf16, --channels_last and --compile on the CPU, BatchNorm folding, and FlowDBN's
streaming inference that computes each frame's PWC-Net pyramid once (bit-for-bit equal to the naive path).

Random PWC-Net weights give flows of hundreds of pixels, and PWC-Net's `mask >= 1` warping is
discontinuous, so float rounding alone can flip whole pixels there. The FlowDBN comparisons
therefore use a "constant-flow" PWC-Net: every layer runs, but the flow heads have zero weights and a
bias of (8, -4) px (exact binary fractions at every pyramid level), so the flows are exact.
"""
import copy
from typing import Dict, List

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import deblur
import models.flowdbn
import runtime
from contrib.fusion import fold_batchnorm
from contrib.interpolation import resize2d_as
from contrib.warping import warp_border
from losses.dbn_loss import DBNLoss
from models.dbn import DBN
from models.flowdbn import FlowDBN
from models.flownet1s import FlowNet1S
from models.pwcnet import PWCNetImpl
from tests.helpers import random_pwcnet, save_model_checkpoint, tame


def _smooth(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(shape[0], shape[1], shape[2] // 8, shape[3] // 8, generator=generator)
    return F.interpolate(coarse, size=shape[2:], mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def _example(length: int, batch: int = 2, size: int = 32) -> Dict[str, torch.Tensor]:
    example = {f"input{i}": _smooth(batch, 3, size, size, seed=i) for i in range(1, length + 1)}
    example["target1"] = _smooth(batch, 3, size, size, seed=99)
    return example


def _run(model_and_loss: runtime.ModelAndLoss, example: Dict[str, torch.Tensor], train: bool):
    """(loss_dict, model_dict, gradient of every trainable parameter) of one step."""
    model_and_loss.train(train)
    model_and_loss.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(train):
        loss_dict, model_dict = model_and_loss(example)
        grads = None
        if train:
            loss_dict["total_loss"].backward()
            grads = torch.cat([p.grad.flatten() for p in model_and_loss.parameters() if p.grad is not None])
    return loss_dict, model_dict, grads


# ------------------------------------------------------------------------------- streaming pyramids
def test_constant_flow_pwcnet_warps_by_exactly_the_constant_flow(constant_flow_pwcnet_checkpoint):
    model = tame(FlowDBN(sequence_length=3, pretrained_pwcnet=constant_flow_pwcnet_checkpoint), residual=0.05).eval()
    example = _example(3, batch=1)
    with torch.no_grad():
        warped = model(example)["warped1"]
    # Backward warp, border padding: warped(y, x) = input1(clamp(y - 4), clamp(x + 8)).
    rows = torch.arange(32).sub(4).clamp(0, 31)
    cols = torch.arange(32).add(8).clamp(0, 31)
    expected = example["input1"][:, :, rows][:, :, :, cols]
    torch.testing.assert_close(warped, expected, rtol=0, atol=1e-6)


def test_streaming_pyramids_are_bit_identical_to_recomputing_every_window(random_pwcnet_checkpoint, monkeypatch):
    model = tame(FlowDBN(sequence_length=3, pretrained_pwcnet=random_pwcnet_checkpoint), residual=0.05).eval()
    rng = np.random.default_rng(0)
    frames = [(rng.random((20, 30, 3)) * 255).astype(np.uint8) for _ in range(4)]  # padded to 24x32
    pyramid_calls: List[tuple] = []
    real_pyramid = PWCNetImpl.pyramid

    def counting_pyramid(self, images):
        pyramid_calls.append(tuple(images.shape))
        return real_pyramid(self, images)

    monkeypatch.setattr(PWCNetImpl, "pyramid", counting_pyramid)
    streamed: List[torch.Tensor] = []
    monkeypatch.setattr(deblur, "to_uint8", lambda output: streamed.append(output.clone()) or output)

    class Discard:
        def write(self, name, frame) -> None:
            pass

    names = [(f"{i}", frame) for i, frame in enumerate(frames)]
    assert deblur.deblur_stream(model, iter(names), 3, 8, torch.device("cpu"), Discard()) == 4
    assert pyramid_calls == [(1, 3, 24, 32)] * 4  # one pyramid per frame
    pyramid_calls.clear()
    naive = []
    padded = [deblur.pad_to_multiple(torch.tensor(f).permute(2, 0, 1)[None].float() / 255.0, 8) for f in frames]
    with torch.no_grad():
        for i in range(4):
            window = [padded[min(max(j, 0), 3)] for j in range(i - 1, i + 2)]
            naive.append(model({f"input{k + 1}": x for k, x in enumerate(window)})["output1"][0, :, :20, :30])
    assert len(pyramid_calls) == 4 * 3  # the naive path: every frame of every window
    for i, (a, b) in enumerate(zip(streamed, naive)):
        assert torch.equal(a, b), f"frame {i}: max difference {(a - b).abs().max().item()}"
    assert 0.01 < (naive[2] - padded[2][0, :, :20, :30]).abs().mean() < 0.5  # a real, unsaturated change


def test_flownet_prewarping_has_no_pyramids(tmp_path):
    from models.flownet1s import FlowNet1S

    net = FlowNet1S(div_flow=0.05)
    path = save_model_checkpoint(tmp_path / "flownet.ckpt", net.state_dict())
    model = FlowDBN(sequence_length=3, pretrained_flownet=path)
    assert model.frame_pyramid(torch.zeros(1, 3, 64, 64)) is None
    with pytest.raises(ValueError, match="only for a PWC-Net"):
        model.flowdbn.warping_network.pyramid(torch.zeros(1, 3, 64, 64))


# ------------------------------------------------------------------------------- BatchNorm folding
def _random_batchnorm_statistics(model: torch.nn.Module) -> None:
    torch.manual_seed(5)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.3, 3.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)


def test_folded_dbn_matches_conv_then_batchnorm():
    model = tame(DBN(sequence_length=5, init_type="fan_in"), residual=0.05)
    _random_batchnorm_statistics(model)
    model.eval()
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == 22  # 19 conv+BN and 3 deconv+BN blocks
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert folded.dbn_net.f0[0].bias is not None and folded.dbn_net.u1[0].bias is not None
    example = _example(5)
    with torch.no_grad():
        expected, actual = model(example)["output1"], folded(example)["output1"]
        f15 = model.dbn_net([example[f"input{i}"] for i in range(1, 6)])["f15"]
    assert f15.abs().max() > 0.1  # a non-trivial residual
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("transposed, groups, bias", [(False, 1, True), (False, 2, False), (True, 1, False),
                                                      (True, 2, True)])
def test_fold_conv_and_deconv_with_groups_and_bias(transposed, groups, bias):
    torch.manual_seed(2)
    cls = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    block = torch.nn.Sequential(cls(4, 6, 3, stride=2, padding=1, groups=groups, bias=bias),
                                torch.nn.BatchNorm2d(6, eps=1e-3), torch.nn.ReLU())
    _random_batchnorm_statistics(block)
    block.eval()
    x = torch.randn(2, 4, 9, 9)
    expected = block(x)
    assert fold_batchnorm(block) == 1 and isinstance(block[1], torch.nn.Identity)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)


def test_folding_a_training_network_is_an_error():
    with pytest.raises(ValueError, match="training mode"):
        fold_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3), torch.nn.BatchNorm2d(3)))


# ------------------------------------------------------------------------------- --amp=bf16 on the CPU
@pytest.mark.slow
def test_bf16_autocast_dbn_stays_close_to_fp32():
    model_and_loss = runtime.ModelAndLoss(tame(DBN(sequence_length=3, init_type="fan_in"), residual=0.05), DBNLoss())
    example = _example(3)
    # Fresh copies for every run: a training step updates the BatchNorm running statistics.
    reference = {train: _run(copy.deepcopy(model_and_loss), example, train) for train in (True, False)}
    model_and_loss.amp_dtype = torch.bfloat16
    for train in (True, False):
        loss_dict, model_dict, grads = _run(copy.deepcopy(model_and_loss), example, train)
        ref_loss, ref_model, ref_grads = reference[train]
        assert model_dict["output1"].dtype == torch.float32  # the loss sees float32
        difference = (model_dict["output1"] - ref_model["output1"]).abs()
        # Stated tolerance for bf16 (8-bit mantissa) through 20 conv layers of a random network:
        assert difference.mean() < 0.02 and difference.max() < 0.25, (train, difference.mean(), difference.max())
        assert abs(loss_dict["total_loss"] / ref_loss["total_loss"] - 1) < 0.01
        assert abs(loss_dict["psnr"] - ref_loss["psnr"]) < 0.1
        if train:
            assert torch.isfinite(grads).all()
            assert F.cosine_similarity(grads, ref_grads, dim=0) > 0.7


def test_bf16_autocast_flowdbn_runs_the_flow_network_in_bf16_and_warps_in_fp32(constant_flow_pwcnet_checkpoint,
                                                                                 monkeypatch):
    model = tame(FlowDBN(sequence_length=3, pretrained_pwcnet=constant_flow_pwcnet_checkpoint), residual=0.05)
    model_and_loss = runtime.ModelAndLoss(model, DBNLoss())
    example = _example(3, batch=1)
    ref_loss, ref_model, _ = _run(copy.deepcopy(model_and_loss), example, train=True)
    dtypes = []
    real_pyramid = PWCNetImpl.pyramid

    def recording_pyramid(self, images):
        pyramid = real_pyramid(self, images)
        dtypes.append(pyramid[0].dtype)
        return pyramid

    monkeypatch.setattr(PWCNetImpl, "pyramid", recording_pyramid)
    model_and_loss.amp_dtype = torch.bfloat16
    loss_dict, model_dict, grads = _run(model_and_loss, example, train=True)
    assert dtypes and set(dtypes) == {torch.bfloat16}
    # The flow (8, -4) is exact in bf16 too, so the warps agree up to bf16's rounding of the frames.
    for key in ("warped1", "warped3"):
        torch.testing.assert_close(model_dict[key], ref_model[key], rtol=0, atol=4e-3)
    difference = (model_dict["output1"] - ref_model["output1"]).abs()
    assert difference.mean() < 0.02 and difference.max() < 0.25
    assert abs(loss_dict["total_loss"] / ref_loss["total_loss"] - 1) < 0.01
    assert torch.isfinite(grads).all()


def _flowdbn_with_random_pwcnet() -> FlowDBN:
    state_dict = {"model." + key: value for key, value in random_pwcnet().state_dict().items()}
    return tame(FlowDBN(sequence_length=3, prewarping_state_dict=state_dict), residual=0.05).eval()


def _run_recording_the_warped_flow(model: torch.nn.Module, example: Dict[str, torch.Tensor], autocast: bool,
                                   monkeypatch) -> Dict[str, torch.Tensor]:
    """model_dict of an eval forward, plus 'flow': the flow handed to FlowDBN's warp."""
    recorded = {}

    def recording_warp(image, flow):
        recorded["flow"] = flow
        return warp_border(image, flow)

    monkeypatch.setattr(models.flowdbn, "warp_border", recording_warp)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model_dict = dict(model(example))
    model_dict["flow"] = recorded["flow"]
    return model_dict


def test_bf16_autocast_upsamples_and_scales_pwcnet_flow_in_fp32(monkeypatch):
    model = _flowdbn_with_random_pwcnet()
    example = _example(3, batch=1, size=64)
    estimated = []
    real_flow_from_pyramids = PWCNetImpl.flow_from_pyramids

    def recording_flow_from_pyramids(self, *args):
        flows = real_flow_from_pyramids(self, *args)
        estimated.append(flows[-1])
        return flows

    monkeypatch.setattr(PWCNetImpl, "flow_from_pyramids", recording_flow_from_pyramids)
    flow = _run_recording_the_warped_flow(model, example, autocast=True, monkeypatch=monkeypatch)["flow"]
    flow2 = estimated[-1]
    assert flow2.dtype == torch.bfloat16  # the flow network itself runs in bf16
    assert flow.dtype == torch.float32
    expected = resize2d_as(flow2.float(), example["input1"], mode="bilinear", align_corners=True) / 0.05
    assert flow.abs().max() > 1.0  # random weights: flows of pixels, not a trivial zero
    assert torch.equal(flow, expected)


def test_bf16_autocast_upsamples_and_scales_flownet_flow_in_fp32():
    model = FlowNet1S(div_flow=0.05).eval()
    example = {"input1": _smooth(1, 3, 64, 64, seed=1), "input2": _smooth(1, 3, 64, 64, seed=2)}
    estimated = []
    model.flownets.register_forward_hook(lambda module, inputs, output: estimated.append(output[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        flow = model(example)["flow1"]
    assert estimated[-1].dtype == torch.bfloat16 and flow.dtype == torch.float32
    expected = F.interpolate(estimated[-1].float(), size=(64, 64), mode="bilinear", align_corners=True) / 0.05
    assert torch.equal(flow, expected)


def test_bf16_autocast_warp_error_at_100_px_is_bounded_by_the_estimators_rounding(monkeypatch):
    # A smooth flow of at most 100 px planted as the last estimator's output (in the dtype that layer
    # produces) with a zero context residual, as bench/bench_flow_precision.py measures it.
    magnitude, size = 100.0, 160
    model = _flowdbn_with_random_pwcnet()
    impl = model.flowdbn.warping_network.network.pwcnet_impl
    coarse = torch.rand(2, 2, 3, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    field = F.interpolate(coarse, size=(size // 4, size // 4), mode="bicubic", align_corners=True)
    flow2 = field * (magnitude / field.abs().amax()) * 0.05
    impl.flow_estimators[-1].register_forward_hook(lambda module, inputs, out: (out[0], flow2.to(out[1].dtype)))
    impl.context_network.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    example = _example(3, batch=1, size=size)
    reference = _run_recording_the_warped_flow(model, example, autocast=False, monkeypatch=monkeypatch)
    amp = _run_recording_the_warped_flow(model, example, autocast=True, monkeypatch=monkeypatch)
    # bf16 rounds the estimator output by at most 2^-8 of its size; bilinear upsampling (a convex combination)
    # and the float32 scaling keep that bound in pixels. In bf16 they added up to 1.1 px (bench/README.md).
    flow_bound = 2.0 ** -8 * magnitude
    flow_error = (amp["flow"] - reference["flow"]).abs()
    assert 0.1 < flow_error.max() <= flow_bound * (1 + 1e-3)
    # A bilinear warp moves by at most the neighbouring-pixel difference per pixel of flow (border clamping
    # only shortens moves), plus float32 rounding.
    for key, neighbour in (("warped1", "input1"), ("warped3", "input3")):
        image = example[neighbour]
        lipschitz_x = image.diff(dim=3).abs().max()
        lipschitz_y = image.diff(dim=2).abs().max()
        warp_error = (amp[key] - reference[key]).abs().max()
        assert warp_error <= flow_bound * (lipschitz_x + lipschitz_y) + 1e-5, key


# ------------------------------------------------------------------------------- --channels_last
@pytest.mark.parametrize("flow", [False, True])
def test_channels_last_gives_the_same_results(flow, constant_flow_pwcnet_checkpoint):
    if flow:
        model = tame(FlowDBN(sequence_length=3, pretrained_pwcnet=constant_flow_pwcnet_checkpoint), residual=0.05)
    else:
        model = tame(DBN(sequence_length=3, init_type="fan_in"), residual=0.05)
    model_and_loss = runtime.ModelAndLoss(model, DBNLoss())
    example = _example(3)
    modes = (False,) if flow else (True, False)  # the flow network is frozen: its training step is DBN's
    reference = {train: _run(copy.deepcopy(model_and_loss), example, train) for train in modes}
    model_and_loss.to(memory_format=torch.channels_last)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    last = runtime.to_device(example, torch.device("cpu"), channels_last=True)
    assert last["input1"].is_contiguous(memory_format=torch.channels_last)
    for train in modes:
        loss_dict, model_dict, grads = _run(copy.deepcopy(model_and_loss), last, train)
        ref_loss, ref_model, ref_grads = reference[train]
        torch.testing.assert_close(model_dict["output1"], ref_model["output1"], rtol=0, atol=1e-5)
        torch.testing.assert_close(loss_dict["total_loss"], ref_loss["total_loss"], rtol=1e-5, atol=0)
        if train:
            # Train-mode BatchNorm's backward cancels heavily in this random network: even the contiguous
            # float32 gradient is ~2e-3 (normwise) away from a float64 one, channels_last ~6e-3.
            relative = ((grads - ref_grads).norm() / ref_grads.norm()).item()
            assert relative < 2e-2, relative


# ------------------------------------------------------------------------------- --compile
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a GPU: on the CPU, torch.compile's default (inductor) backend generates and builds "
                           "C++ for every graph (73 s for this one on 2 cores); the CPU tests the same "
                           "Dynamo/AOTAutograd capture with backend='aot_eager'")
def test_inductor_compile_matches_eager_on_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # both in full fp32: they agree to rounding
    model = tame(DBN(sequence_length=1, init_type="fan_in"), residual=0.05).cuda().eval()
    example = {"input1": _smooth(1, 3, 16, 16, seed=1).cuda()}
    expected = model(example)["output1"]
    model.compile()
    torch.testing.assert_close(model(example)["output1"], expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_compiled_dbn_training_step_matches_eager():
    model = tame(DBN(sequence_length=1, init_type="fan_in"), residual=0.05)
    model_and_loss = runtime.ModelAndLoss(model, DBNLoss())
    example = {"input1": _smooth(2, 3, 16, 16, seed=1), "target1": _smooth(2, 3, 16, 16, seed=2)}
    ref_loss, ref_model, ref_grads = _run(copy.deepcopy(model_and_loss), example, train=True)
    keys = list(model_and_loss.state_dict())
    model.compile(backend="aot_eager")  # in place, as main.py's --compile
    assert list(model_and_loss.state_dict()) == keys  # checkpoints keep the original's keys
    loss_dict, model_dict, grads = _run(model_and_loss, example, train=True)
    torch.testing.assert_close(model_dict["output1"], ref_model["output1"], rtol=0, atol=1e-5)
    assert ((grads - ref_grads).norm() / ref_grads.norm()).item() < 1e-5


# ---------------------------------------------- bf16 + channels-last: no layout conversion, no float32 island
class _ConvolutionFormats(torch.utils._python_dispatch.TorchDispatchMode):
    """The dtype and memory format of every convolution's input, weight and output (and of their gradients)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: List[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func.__name__.startswith(("conv2d.", "conv_transpose2d.", "convolution.", "convolution_backward.")):
            tensors = [t for t in (args[0], args[1], *(result if isinstance(result, tuple) else (result,)))
                       if isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[-2] * t.shape[-1] > 1]
            self.seen.extend((func.__name__, t.dtype, t.is_contiguous(memory_format=torch.channels_last))
                             for t in tensors)
        return result


@pytest.mark.parametrize("train", [False, True])
def test_bf16_channels_last_flowdbn_convolves_only_bf16_channels_last_tensors(train):
    # Every convolution of the model's fast path (PWC-Net's cost volume and concatenations, the warped frames'
    # way into DBN, the backward pass) in bf16 and channels-last: a contiguous operand would be converted in
    # every call, and a float32 one would be a float32 island. (The loss's SSIM window stays float32.)
    model = FlowDBN(sequence_length=3, prewarping_state_dict={
        f"model.{k}": v for k, v in random_pwcnet().state_dict().items()}).train(train)
    model.to(memory_format=torch.channels_last)
    example = runtime.to_device(_example(3, batch=1, size=128), torch.device("cpu"), channels_last=True)
    formats = _ConvolutionFormats()
    with torch.set_grad_enabled(train), formats:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = model(example)["output1"]
        if train:
            output.float().square().mean().backward()
    names = {name for name, _, _ in formats.seen}
    assert "conv2d.default" in names and ("convolution_backward.default" in names) == train
    assert len(formats.seen) > 200
    assert {(dtype, channels_last) for _, dtype, channels_last in formats.seen} == {(torch.bfloat16, True)}
