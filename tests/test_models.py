"""Models: state-dict compatibility with the original, CLI signatures, shapes and wiring numerics."""
import inspect
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import models
from models.dbn import DBN
from models.flowdbn import FlowDBN
from models.flownet1s import FlowNet1S
from models.pwcnet import BUFFER_MIN_PIXELS, FlowEstimatorDense, PWCNet, warp_level
from tests.helpers import reference_json, save_model_checkpoint


def frames(sequence_length: int, batch: int = 2, height: int = 32, width: int = 32) -> dict:
    return {f"input{i}": torch.rand(batch, 3, height, width) for i in range(1, sequence_length + 1)}


def write_checkpoint(path: Path, state_dict: dict, prefix: str) -> str:
    """A prewarping checkpoint as the original's flow training wrote it: loss statistics, epoch, state_dict."""
    return save_model_checkpoint(path, state_dict, prefix, epe=1.5, epoch=216)


def shapes(module: nn.Module) -> dict:
    return {key: list(value.shape) for key, value in module.state_dict().items()}


def parameter_counts(module: nn.Module):
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable


@pytest.fixture(scope="module")
def pwc_checkpoint(tmp_path_factory) -> str:
    network = PWCNet(div_flow=0.05)
    return write_checkpoint(tmp_path_factory.mktemp("prewarping") / "pwcnet.ckpt", network.state_dict(), "model.")


@pytest.fixture(scope="module")
def flownet_checkpoint(tmp_path_factory) -> str:
    network = FlowNet1S(div_flow=0.05)
    state = {key[len("flownets."):]: value for key, value in network.state_dict().items()}
    return write_checkpoint(tmp_path_factory.mktemp("prewarping") / "flownet1s.ckpt", state, "model._flownets.")


# --------------------------------------------------------------------------------------------
# registry, CLI signatures, state dicts
# --------------------------------------------------------------------------------------------

def test_registered_names():
    assert {"DBN", "FlowDBN", "FlowNet1S", "PWCNet"} <= set(models.MODELS.names())
    assert models.MODELS.get("FlowDBN") is FlowDBN


@pytest.mark.parametrize("name,cls", [("DBN", DBN), ("FlowDBN", FlowDBN), ("FlowNet1S", FlowNet1S),
                                      ("PWCNet", PWCNet)])
def test_constructor_parameters_match_original_flags(name, cls):
    flags = reference_json("cli-flags-per-class.json")[f"model={name}"]
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in ("self", "args") and p.kind == p.POSITIONAL_OR_KEYWORD]  # keyword-only: no flag
    assert [(f"--model_{p.name}", type(p.default).__name__, p.default) for p in params] == \
           [tuple(flag) for flag in flags]


@pytest.mark.parametrize("sequence_length", [5, 7])
def test_dbn_state_dict_matches_original(sequence_length):
    model = DBN(sequence_length=sequence_length)
    expected = reference_json(f"state-dict-keys/DBN_seq{sequence_length}.json")
    summary = reference_json("state-dict-keys/_summary.json")[f"DBN_seq{sequence_length}"]
    assert shapes(model) == expected
    assert parameter_counts(model) == (summary["total_parameters"], summary["trainable_parameters_requires_grad"])
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(m.bias is None for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


@pytest.mark.parametrize("name,cls", [("FlowNet1S", FlowNet1S), ("PWCNet", PWCNet)])
def test_flow_net_state_dict_matches_original(name, cls):
    model = cls()
    expected = reference_json(f"state-dict-keys/{name}.json")
    summary = reference_json("state-dict-keys/_summary.json")[name]
    assert shapes(model) == expected
    assert parameter_counts(model) == (summary["total_parameters"], summary["trainable_parameters_requires_grad"])


@pytest.mark.parametrize("flow_net", ["pwcnet", "flownet1s"])
@pytest.mark.parametrize("sequence_length", [5, 7])
def test_flowdbn_state_dict_matches_original(flow_net, sequence_length, pwc_checkpoint, flownet_checkpoint):
    if flow_net == "pwcnet":
        model = FlowDBN(sequence_length=sequence_length, pretrained_pwcnet=pwc_checkpoint)
    else:
        model = FlowDBN(sequence_length=sequence_length, pretrained_flownet=flownet_checkpoint)
    name = f"FlowDBN_{flow_net}_seq{sequence_length}"
    expected = reference_json(f"state-dict-keys/{name}.json")
    summary = reference_json("state-dict-keys/_summary.json")[name]
    assert shapes(model) == expected
    total, trainable = parameter_counts(model)
    assert (total, trainable, total - trainable) == (summary["total_parameters"],
                                                     summary["trainable_parameters_requires_grad"],
                                                     summary["frozen_parameters"])


# --------------------------------------------------------------------------------------------
# DBN
# --------------------------------------------------------------------------------------------

def test_deblurring_models_need_an_odd_sequence_length_and_ignore_args():
    assert DBN(sequence_length=7).sequence_length == 7
    with pytest.raises(ValueError, match="--validation_dataset_sequence_length"):
        DBN()
    with pytest.raises(ValueError, match="odd"):
        DBN(sequence_length=4)
    # `args` keeps the original's constructor form only: the project's models read nothing from it.
    assert DBN(object(), sequence_length=3).sequence_length == 3


@pytest.mark.parametrize("sequence_length,reference", [(5, "input3"), (7, "input4")])
def test_dbn_output_is_residual_plus_reference_frame(sequence_length, reference):
    model = DBN(sequence_length=sequence_length)
    example = frames(sequence_length)
    ordered = [example[f"input{i}"] for i in range(1, sequence_length + 1)]

    model.train()
    output = model(example)["output1"]
    assert output.shape == (2, 3, 32, 32)
    torch.testing.assert_close(output - example[reference], model.dbn_net(ordered)["f15"])
    # fan_max init gives huge activations: the unclamped training output leaves [0, 1].
    assert output.min().item() < 0.0 or output.max().item() > 1.0
    output.sum().backward()
    assert model.dbn_net.f0[0].weight.grad.abs().sum().item() > 0

    model.eval()
    output = model(example)["output1"]
    expected = (model.dbn_net(ordered)["f15"] + example[reference]).clamp(0, 1)
    torch.testing.assert_close(output, expected)
    assert output.min().item() >= 0.0 and output.max().item() <= 1.0


def test_dbn_rejects_sizes_not_divisible_by_8_and_missing_frames():
    model = DBN(sequence_length=5)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(frames(5, height=36, width=32))
    example = frames(5)
    del example["input4"]
    with pytest.raises(KeyError, match="input4"):
        model(example)


def test_dbn_init_type_flag():
    model = DBN(sequence_length=5, init_type="fan_in")
    weight = model.dbn_net.f1[0].weight
    assert weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.03)
    with pytest.raises(ValueError, match="--model_init_type"):
        DBN(sequence_length=5, init_type="uniform")


# --------------------------------------------------------------------------------------------
# FlowNet1S and PWCNet
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,size", [(FlowNet1S, (144, 256)), (PWCNet, (144, 256)), (PWCNet, (64, 64))])
def test_flow_net_output_shapes_and_eval_upsampling(cls, size):
    model = cls(div_flow=0.05)
    example = {"input1": torch.rand(1, 3, *size), "input2": torch.rand(1, 3, *size)}
    with torch.no_grad():
        model.train()
        train_dict = model(example)
        model.eval()
        eval_dict = model(example)
    height, width = size
    expected = {}
    for level in range(2, 7):
        height, width = -(-height // (4 if level == 2 else 2)), -(-width // (4 if level == 2 else 2))
        expected[f"flow{level}"] = (1, 2, height, width)
    assert {key: tuple(value.shape) for key, value in train_dict.items()} == expected
    if size == (144, 256):
        assert expected["flow6"] == (1, 2, 3, 4) and expected["flow5"] == (1, 2, 5, 8)
    assert list(eval_dict) == ["flow1"]
    # No BN or dropout: eval flow1 is the align_corners=True upsampling of flow2, divided by div_flow.
    upsampled = F.interpolate(train_dict["flow2"], size=size, mode="bilinear", align_corners=True) / 0.05
    torch.testing.assert_close(eval_dict["flow1"], upsampled)


def test_pwc_resizes_flow_with_align_corners_false_between_levels_and_true_at_the_end(monkeypatch):
    import models.pwcnet as pwcnet_module
    calls = []
    original = pwcnet_module.resize2d_as

    def recording_resize2d_as(x, target_as, mode="bilinear", align_corners=True):
        calls.append((tuple(x.shape[-2:]), tuple(target_as.shape[-2:]), mode, align_corners))
        return original(x, target_as, mode=mode, align_corners=align_corners)

    monkeypatch.setattr(pwcnet_module, "resize2d_as", recording_resize2d_as)
    model = PWCNet().eval()
    with torch.no_grad():
        model({"input1": torch.rand(1, 3, 64, 128), "input2": torch.rand(1, 3, 64, 128)})
    assert calls == [((1, 2), (2, 4), "bilinear", False), ((2, 4), (4, 8), "bilinear", False),
                     ((4, 8), (8, 16), "bilinear", False), ((8, 16), (16, 32), "bilinear", False),
                     ((16, 32), (64, 128), "bilinear", True)]


@pytest.mark.parametrize("in_channels,height,width", [(81, 2, 3), (179, 6, 10), (117, 64, 80)])
def test_pwc_dense_estimator_without_autograd_gives_the_same_values(in_channels, height, width, monkeypatch):
    torch.manual_seed(0)
    estimator = FlowEstimatorDense(in_channels).eval()
    x = torch.randn(3, in_channels, height, width)
    features, flow = estimator(x)  # autograd on: the torch.cat path
    buffered = height * width >= BUFFER_MIN_PIXELS
    if buffered:
        monkeypatch.setattr(torch, "cat", None)  # large levels are written into one buffer, never concatenated
    with torch.inference_mode():
        features_without_grad, flow_without_grad = estimator(x)
    monkeypatch.undo()
    assert features_without_grad.shape == features.shape == (3, in_channels + 448, height, width)
    if buffered:  # one sample at a time: oneDNN could round differently than for the batch
        torch.testing.assert_close(features_without_grad, features, rtol=0, atol=1e-6)
        torch.testing.assert_close(flow_without_grad, flow, rtol=0, atol=1e-6)
    else:
        assert torch.equal(features_without_grad, features) and torch.equal(flow_without_grad, flow)


def test_pwc_level_warp_converts_full_resolution_flow_to_level_pixels():
    features = torch.rand(1, 4, 8, 16, dtype=torch.float64) + 0.5
    flow = torch.empty(1, 2, 8, 16, dtype=torch.float64)
    # 8 px / 4 px at the 32x64 image, carried × div_flow -> 2 px / 1 px at this 1/4 level. div_flow 0.5
    # keeps every product exact in binary: with 0.05 the sample points land a rounding error off the
    # pixel grid, and the >= 1.0 mask then legitimately drops the border column or not.
    flow[:, 0], flow[:, 1] = 8 * 0.5, 4 * 0.5
    out = warp_level(features, flow, 32, 64, 0.5)
    expected = torch.zeros_like(features)
    expected[:, :, :7, :14] = features[:, :, 1:, 2:]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------------
# FlowDBN
# --------------------------------------------------------------------------------------------

def test_flowdbn_needs_exactly_one_checkpoint(pwc_checkpoint, flownet_checkpoint):
    for kwargs in ({}, {"pretrained_pwcnet": pwc_checkpoint, "pretrained_flownet": flownet_checkpoint}):
        with pytest.raises(ValueError, match="--model_pretrained_flownet or --model_pretrained_pwcnet"):
            FlowDBN(sequence_length=5, **kwargs)


def test_flowdbn_checkpoint_errors_name_file_and_keys(tmp_path, pwc_checkpoint):
    missing_file = str(tmp_path / "nowhere.ckpt")
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        FlowDBN(sequence_length=5, pretrained_pwcnet=missing_file)

    state = torch.load(pwc_checkpoint, weights_only=True)["state_dict"]
    del state["model.pwcnet_impl.context_network.convs.6.0.bias"]
    state["model.pwcnet_impl.extra.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.ckpt"
    torch.save({"state_dict": state}, broken)
    # The framework's one key check (utils/checkpoints.load_state_dict) words it.
    with pytest.raises(ValueError, match=r"broken\.ckpt' \(PWCNet\) does not fit the model \(missing keys: "
                                         r"pwcnet_impl\.context_network\.convs\.6\.0\.bias; unexpected keys: "
                                         r"pwcnet_impl\.extra\.weight\)"):
        FlowDBN(sequence_length=5, pretrained_pwcnet=str(broken))

    no_state_dict = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(1)}, no_state_dict)
    with pytest.raises(ValueError, match="plain.ckpt.*'state_dict'"):
        FlowDBN(sequence_length=5, pretrained_pwcnet=str(no_state_dict))


@pytest.mark.parametrize("prefix", ["model._flownets.", "model.flownets."])
def test_flowdbn_loads_flownet_checkpoint_variants(tmp_path, prefix):
    source = FlowNet1S()
    state = {key[len("flownets."):]: value for key, value in source.state_dict().items()}
    path = write_checkpoint(tmp_path / "flownet.ckpt", state, prefix)
    network = FlowDBN(sequence_length=5, pretrained_flownet=path).flowdbn.warping_network.network
    assert isinstance(network, FlowNet1S) and network.div_flow == 0.05
    for key, value in source.state_dict().items():
        assert torch.equal(network.state_dict()[key], value), key


def constant_flow_pwc_checkpoint(path: Path, u: float, v: float) -> str:
    """A PWC-Net whose weights are all zero except the last context bias: flow1 = (u, v) everywhere."""
    state = {key: torch.zeros_like(value) for key, value in PWCNet().state_dict().items()}
    state["pwcnet_impl.context_network.convs.6.0.bias"] = torch.tensor([u * 0.05, v * 0.05])
    return write_checkpoint(path, state, "model.")


@pytest.mark.parametrize("sequence_length", [5, 7])
def test_flowdbn_warps_neighbours_into_the_reference_view(tmp_path, sequence_length):
    path = constant_flow_pwc_checkpoint(tmp_path / "pwc.ckpt", u=2.0, v=1.0)
    model = FlowDBN(sequence_length=sequence_length, pretrained_pwcnet=path)
    example = frames(sequence_length)
    reference = sequence_length // 2 + 1
    neighbours = [i for i in range(1, sequence_length + 1) if i != reference]
    rows = (torch.arange(32) + 1).clamp(max=31)
    cols = (torch.arange(32) + 2).clamp(max=31)
    for train in (True, False):
        model.train(train)
        assert not model.flowdbn.warping_network.network.training
        model_dict = model(example)
        assert list(model_dict) == ["f15"] + [f"warped{i}" for i in neighbours] + ["output1"]
        assert all(value.shape == (2, 3, 32, 32) for value in model_dict.values())
        for i in neighbours:
            # Backward warp with border padding: warped(y, x) = input(y + 1, x + 2), clamped.
            expected = example[f"input{i}"][:, :, rows][:, :, :, cols]
            torch.testing.assert_close(model_dict[f"warped{i}"], expected, rtol=0, atol=1e-5)
        output = model_dict["output1"]
        torch.testing.assert_close(output - example[f"input{reference}"] if train else output,
                                   model_dict["f15"] if train else
                                   (model_dict["f15"] + example[f"input{reference}"]).clamp(0, 1))


def test_flowdbn_flow_net_is_frozen_and_dbn_trains(pwc_checkpoint):
    model = FlowDBN(sequence_length=5, pretrained_pwcnet=pwc_checkpoint)
    model.train()
    model(frames(5, batch=1))["output1"].sum().backward()
    warping = model.flowdbn.warping_network
    assert all(not p.requires_grad and p.grad is None for p in warping.parameters())
    assert all(p.grad is not None for p in model.flowdbn.dbn_net.parameters())


def test_flowdbn_state_dict_round_trip_through_framework_checkpoint(tmp_path, pwc_checkpoint):
    source = FlowDBN(sequence_length=5, pretrained_pwcnet=pwc_checkpoint)
    path = save_model_checkpoint(tmp_path / "checkpoint_latest_.ckpt", source.state_dict(), total_loss=12.5,
                                 psnr=30.1, epoch=3)

    other = FlowDBN(sequence_length=5, pretrained_pwcnet=constant_flow_pwc_checkpoint(tmp_path / "z.ckpt", 1, 1))
    loaded = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    result = other.load_state_dict({k[len("model."):]: v for k, v in loaded.items()}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in source.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    source.eval()
    other.eval()
    example = frames(5, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(other(example)["output1"], source(example)["output1"], rtol=0, atol=0)


def test_models_built_in_code_take_keyword_only_arguments_that_make_no_flags(pwc_checkpoint):
    import commandline

    dbn = DBN(sequence_length=7)
    assert dbn.sequence_length == 7 and shapes(dbn) == shapes(DBN(sequence_length=7))
    with pytest.raises(ValueError, match="sequence_length must be a positive odd number of frames, got 4"):
        DBN(sequence_length=4)
    from_file = FlowDBN(sequence_length=5, pretrained_pwcnet=pwc_checkpoint)
    stored = torch.load(pwc_checkpoint, weights_only=True)["state_dict"]
    in_memory = FlowDBN(sequence_length=5, prewarping_state_dict=stored)
    for key, value in from_file.flowdbn.warping_network.state_dict().items():
        assert torch.equal(in_memory.flowdbn.warping_network.state_dict()[key], value), key
    with pytest.raises(ValueError, match="prewarping_state_dict holds neither PWC-Net"):
        FlowDBN(sequence_length=5, prewarping_state_dict={"model.other.weight": torch.zeros(1)})
    category = commandline.CATEGORY_BY_NAME["model"]
    assert [p.name for p in commandline.constructor_parameters(FlowDBN, category.excluded)] == [
        "pretrained_flownet", "pretrained_pwcnet"]


def test_a_missing_released_prewarping_network_names_the_download_command(tmp_path):
    path = tmp_path / "prewarping_networks" / "pwcnet.ckpt"
    with pytest.raises(FileNotFoundError) as error:
        FlowDBN(sequence_length=5, pretrained_pwcnet=str(path))
    assert str(error.value) == (
        f"--model_pretrained_pwcnet: '{path}' does not exist; download the released prewarping networks with "
        f"`python scripts/get_data.py prewarping_networks --root {tmp_path}`, or make one with "
        f"`bash scripts/make_prewarping_network.sh {path}`")


def test_a_checkpoint_rebuilds_its_model_through_the_one_builder_and_the_one_key_check(pwc_checkpoint):
    import commandline
    from utils import checkpoints

    dbn = DBN(sequence_length=3)
    state_dict = {f"model.{key}": value for key, value in dbn.state_dict().items()}
    rebuilt, name, length = commandline.build_model_from_checkpoint({"state_dict": state_dict}, "dbn.ckpt")
    assert (type(rebuilt), name, length, rebuilt.pad_multiple) == (DBN, "DBN", 3, 8)  # the original's: no args
    assert all(torch.equal(value, rebuilt.state_dict()[key]) for key, value in dbn.state_dict().items())
    with pytest.raises(checkpoints.CheckpointError, match=r"dbn.ckpt: 'model.dbn_net.f0.0.weight' has shape \(64, 9"):
        commandline.build_model_from_checkpoint({"state_dict": state_dict}, "dbn.ckpt", sequence_length=5)
    flowdbn = FlowDBN(sequence_length=5, pretrained_pwcnet=pwc_checkpoint)
    state_dict = {f"model.{key}": value for key, value in flowdbn.state_dict().items()}
    rebuilt, name, length = commandline.build_model_from_checkpoint({"state_dict": state_dict}, "flowdbn.ckpt")
    assert (name, length) == ("FlowDBN", 5)  # the flow network comes from the checkpoint, not from a file
    assert all(torch.equal(value, rebuilt.state_dict()[key]) for key, value in flowdbn.state_dict().items())
    # FlowDBN's prewarping weights go through the framework's key check: one line naming the source and class.
    stored = torch.load(pwc_checkpoint, weights_only=True)["state_dict"]
    stored["model.pwcnet_impl.extra"] = torch.zeros(1)
    with pytest.raises(checkpoints.CheckpointError, match=r"checkpoint prewarping_state_dict \(PWCNet\) does not fit "
                                                          r"the model \(unexpected keys: pwcnet_impl.extra\)"):
        FlowDBN(sequence_length=5, prewarping_state_dict=stored)
