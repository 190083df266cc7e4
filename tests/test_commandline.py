"""The generated command line: naming rules, converters, the original's scripts, help and errors."""
import os
from typing import Optional

import pytest

import commandline
from datasets import DATASETS
from datasets.gopro_nah import GoProNahTrain
from tests.helpers import reference_json, run_main, script_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(*argv):
    return commandline.parse_arguments(list(argv))


@pytest.mark.parametrize("script", sorted(script_args("", "")))
def test_original_scripts_parse_to_the_same_arguments(tmp_path, script):
    expected = script_args(str(tmp_path / "datasets"), str(tmp_path / "experiments"))[script]
    args, defaults = _parse(*expected["argv"])
    ours = vars(args)
    for key, value in expected["args"].items():
        assert key in ours, f"{script}: missing argument {key}"
        assert ours[key] == value, f"{script}: {key} = {ours[key]!r}, original {value!r}"
    extra = set(ours) - set(expected["args"])
    dataset = "training_dataset" if ours["training_dataset"] else "validation_dataset"
    # The per-frame evaluation metrics (metrics/) come with a validation dataset.
    metrics = {"validation_metrics", "validation_metrics_crop_border"} if ours["validation_dataset"] else set()
    assert extra == {"resume", "amp", "channels_last", "compile", "fold_batchnorm", "sync_batchnorm",
                     "distributed_timeout_minutes", f"{dataset}_cache_dir", *metrics}, \
        f"{script}: arguments the original does not have: {extra}"
    assert (ours.get("validation_metrics"), ours.get("validation_metrics_crop_border", 0)) == (None, 0)
    assert ours[f"{dataset}_cache_dir"] is None
    assert (args.resume, args.amp, args.channels_last, args.compile, args.sync_batchnorm) == (None, "none", False,
                                                                                              False, False)
    assert args.distributed_timeout_minutes == 30
    assert commandline.non_default_arguments(args, defaults) == expected["non_default"]


def test_class_flags_match_the_original_per_class():
    reference = reference_json("cli-flags-per-class.json")
    checked = 0
    for entry, rows in reference.items():
        if "=" not in entry:
            continue
        category, name = entry.split("=")
        cat = commandline.CATEGORY_BY_NAME[category]
        assert name in cat.registry, f"{entry}: a class of the original that this project does not register"
        cls = cat.registry.get(name)
        ours = {}
        for parameter in commandline.constructor_parameters(cls, cat.excluded):
            _, default = commandline.flag_converter_and_default(cat, cls, parameter)
            ours[f"--{category}_{parameter.name}"] = default
        for flag, _, default in rows:
            assert flag in ours, f"{entry}: flag {flag} missing"
            if isinstance(default, list) or default is None or isinstance(ours[flag], list):
                assert ours[flag] == default, f"{entry}: {flag} default {ours[flag]!r} != {default!r}"
            else:
                assert ours[flag] == default and type(ours[flag]) is type(default), f"{entry}: {flag}"
        checked += 1
    assert checked == sum("=" in entry for entry in reference)


def test_flags_follow_category_parameter_naming():
    args, _ = _parse("--model=DBN", "--loss=DBNLoss", "--optimizer=Adam", "--optimizer_lr=0.005",
                     "--lr_scheduler=MultiStepLR", "--lr_scheduler_milestones=[2, 4]", "--save=x")
    assert args.model_init_type == "fan_max"
    assert args.optimizer_lr == 0.005 and args.optimizer_betas == [0.9, 0.999]
    assert args.lr_scheduler_milestones == [2, 4] and args.lr_scheduler_gamma == 0.1
    assert args.training_key == "total_loss"
    assert not hasattr(args, "validation_keys")  # only with a validation dataset
    kwargs = commandline.kwargs_from_args(args, "optimizer")
    assert kwargs["lr"] == 0.005 and "group" not in kwargs


def test_none_default_dataset_flags_are_settable():
    args, _ = _parse("--validation_dataset=GoProNahTest", "--validation_dataset_root=/d",
                     "--validation_dataset_random_scales=weak", "--validation_dataset_random_crop=[64, 32]")
    assert args.validation_dataset_random_scales == "weak"
    assert args.validation_dataset_random_crop == [64, 32]
    args, _ = _parse("--validation_dataset=GoProNahTest", "--validation_dataset_root=/d")
    assert args.validation_dataset_random_scales is None


def test_checkpoint_flags_appear_only_with_checkpoint():
    args, _ = _parse("--checkpoint=some.ckpt", "--checkpoint_mode=best", "--checkpoint_translations={'a.': 'b.'}")
    assert args.checkpoint_mode == "best" and args.checkpoint_translations == {"a.": "b."}
    assert args.checkpoint_include_params == ["*"]
    args, _ = _parse("--checkpoint=None")
    assert args.checkpoint is None and not hasattr(args, "checkpoint_mode")


def _run_main(*argv):
    return run_main(*argv)


@pytest.mark.parametrize("argv,message", [
    (["--model=Foo"], "argument --model: invalid choice: 'Foo'"),
    (["--model=DBN", "--training_dataset=GoProNahTrain", "--training_dataset_root=/x",
      "--training_dataset_random_crop=[128, 128"], "argument --training_dataset_random_crop: unbalanced brackets"),
    (["--validation_dataset=GoProNahTest", "--validation_dataset_root=/x", "--validation_modes=[low]"],
     "--validation_modes: expected 'min' or 'max'"),
    (["--training_dataset=GoProNahTrain"], "--training_dataset=GoProNahTrain needs --training_dataset_root"),
    (["--model_typo=1"], "unrecognized arguments: --model_typo=1"),
    # A flag without its selector names the selector and the registered classes that have the flag.
    (["--lr_scheduler_milestones=[1]"], "--lr_scheduler_milestones belongs to a --lr_scheduler class (MultiStepLR, "
                                        "SequentialLR): add --lr_scheduler=<name>"),
    (["--validation_keys=[psnr]"], "--validation_keys needs --validation_dataset: add --validation_dataset=<name>"),
    (["--checkpoint_mode=best"], "--checkpoint_mode needs --checkpoint: add --checkpoint=<file or run folder>"),
    (["--training_key=psnr"], "--training_key needs --loss: add --loss=<name>"),
    (["--model=DBN", "--model_div_flow=0.05"], "--model_div_flow is not a flag of --model=DBN; it belongs to "
                                               "FlowNet1S, PWCNet"),
    # Typos: the closest flag of this command line, or of a class it does not choose.
    (["--optimizer=Adam", "--optimiser_lr=0.1"], "unrecognized arguments: --optimiser_lr=0.1 (did you mean "
                                                 "--optimizer_lr?)"),
    (["--optimiser_lr", "0.1"], "unrecognized arguments: --optimiser_lr (did you mean --optimizer_lr? --optimizer_lr "
                                "belongs to a --optimizer class (ASGD, AdaBound, Adadelta, Adafactor"),
    (["--batchsize=2", "stray"], "unrecognized arguments: --batchsize=2 (did you mean --batch_size?); "
                                 "unrecognized arguments: stray"),
    (["--model=DNB"], "argument --model: invalid choice: 'DNB' (did you mean DBN? registered: DBN, FlowDBN, "
                      "FlowNet1S, LeNet, PWCNet)"),
    (["--optimizer=adam"], "argument --optimizer: invalid choice: 'adam' (did you mean Adam? registered: ASGD, "),
])
def test_bad_command_lines_fail_with_one_clear_line(tmp_path, argv, message):
    result = _run_main(f"--save={tmp_path}", *argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("main.py: error:") and message in lines[0], result.stderr


def test_a_wrong_flag_is_reported_before_a_missing_save():
    result = _run_main("--lr_scheduler_milestones=[1]")
    assert result.returncode == 2 and "add --lr_scheduler=<name>" in result.stderr and "--save" not in result.stderr
    result = _run_main("--model=DBN")
    assert result.returncode == 2 and result.stderr.strip() == (
        "main.py: error: --save is required (the run folder for records and checkpoints)")


def test_help_lists_class_flags_grouped_by_class():
    result = _run_main("--model=DBN", "--training_dataset=GoProNahTrain", "--help")
    assert result.returncode == 0
    assert "model: DBN:" in result.stdout and "--model_init_type" in result.stdout
    assert "training_dataset: GoProNahTrain:" in result.stdout and "--training_dataset_random_crop" in result.stdout
    assert "--batch_size" in result.stdout and "--resume" in result.stdout


def test_an_unknown_flag_close_to_a_drop_in_class_flag_is_suggested(tmp_path, register):
    from losses import LOSSES

    class CharbonnierLoss:
        def __init__(self, args=None, epsilon: float = 1e-3) -> None:
            pass

    register(LOSSES, "CharbonnierLoss", CharbonnierLoss)
    result = _run_main(f"--save={tmp_path}", "--loss_epsillon=0.1")
    assert result.returncode == 2
    assert result.stderr.strip() == ("main.py: error: unrecognized arguments: --loss_epsillon=0.1 (did you mean "
                                     "--loss_epsilon? --loss_epsilon belongs to a --loss class (CharbonnierLoss): "
                                     "add --loss=<name>)")


def _help(*argv):
    result = _run_main(*argv, "--help")
    assert result.returncode == 0 and result.stderr == ""
    return result.stdout


def _flag_help(text, flag):
    """The help of one flag: its line(s) up to the next flag, joined."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("-") or not lines[i].strip()),
               len(lines))
    return " ".join(" ".join(lines[start:end]).split())


def test_help_shows_descriptions_readable_metavars_and_each_default_once():
    text = _help("--model=FlowDBN", "--training_dataset=GoProNahTrain", "--loss=MultiScaleEPE", "--optimizer=Adam",
                 "--lr_scheduler=MultiStepLR", "--visualizer=GoProInference")
    assert _flag_help(text, "--model_pretrained_pwcnet") == (
        "--model_pretrained_pwcnet STR PWCNet checkpoint of the frozen prewarping network (give this or "
        "pretrained_flownet) (none)")
    assert _flag_help(text, "--training_dataset_root") == (
        "--training_dataset_root STR dataset folder: GOPRO_Large for GoProNah*, DeepVideoDeblurring_Dataset for "
        "GoProSu* (required)")
    assert _flag_help(text, "--training_dataset_random_crop") == (
        "--training_dataset_random_crop LIST [height, width] of one random crop per sample, the same for all its "
        "frames; [-1, -1]: full frames (default: [-1, -1])")
    assert _flag_help(text, "--training_dataset_random_flips") == (
        "--training_dataset_random_flips BOOL random horizontal and vertical flips (default: True)")
    assert _flag_help(text, "--training_dataset_cache_dir").endswith("none: decode every time (none)")
    assert _flag_help(text, "--loss_num_scales") == (
        "--loss_num_scales INT outputs flow2, flow3, ... that the training loss compares (default: 5)")
    assert _flag_help(text, "--optimizer_lr") == "--optimizer_lr FLOAT learning rate (default: 0.001)"  # torch's doc
    assert _flag_help(text, "--lr_scheduler_milestones") == (
        "--lr_scheduler_milestones LIST List of epoch indices (required)")
    assert _flag_help(text, "--visualizer_save") == (
        "--visualizer_save STR folder for the deblurred frames, e.g. <save>/inference (required)")
    assert _flag_help(text, "--save") == "--save DIR run folder for records, TensorBoard and checkpoints (required)"
    assert _flag_help(text, "--batch_size").endswith("(default: 1)")
    assert "AS_" not in text and "'filename'" not in text and "default: filename" not in text
    assert "(default: None)" not in text
    for line in text.split("\n  --"):  # every flag's help names its default at most once
        assert " ".join(line.split()).count("default:") <= 1, line
    assert text.startswith("usage: main.py --save=DIR [--<selector>=NAME ...] [--<flag>=VALUE ...]\n")


@pytest.mark.parametrize("category,names", [
    ("model", ["DBN", "FlowDBN", "PWCNet", "FlowNet1S"]),
    ("loss", ["DBNLoss", "MultiScaleEPE", "ClassificationLoss"]),
    ("training_dataset", ["MnistTrain", "MnistValid", "Cifar10Train", "Cifar10Valid"]),
    ("training_dataset", [name for name in commandline.DATASETS.names() if name.startswith("GoPro")]),
    ("visualizer", ["GoProVisualizer", "GoProInference"]),
    ("holistic_records", [None]),
])
def test_every_flag_of_the_common_classes_has_a_description(category, names):
    from utils.docstrings import parameter_descriptions

    cat = commandline.CATEGORY_BY_NAME[category]
    for name in names:
        cls = commandline.category_class(cat, name)
        descriptions = parameter_descriptions(cls)
        undocumented = [flag for flag in commandline.class_flags(cat, cls)
                        if not descriptions.get(flag[len(category) + 3:])]
        assert undocumented == [], f"{cls.__name__}: {undocumented}"


def test_help_of_a_drop_in_class_reads_its_docstring(register):
    from losses import LOSSES

    class BaseLoss:
        """A loss documented in Sphinx style.

        :param weight: factor of the total loss, e.g. 50% less with 0.5 (default: 1.0)
        """

        def __init__(self, args=None, weight: float = 1.0, reduction: str = "mean") -> None:
            pass

    class WeightedLoss(BaseLoss):
        """Google style, and a parameter documented in the base class only.

        Args:
            reduction (str, optional): how pixels are combined. Sum or mean.
        """

    register(LOSSES, "WeightedLoss", WeightedLoss)
    text = _help("--loss=WeightedLoss")
    assert "loss: WeightedLoss:\n  Google style, and a parameter documented in the base class only." in text
    assert _flag_help(text, "--loss_weight") == (
        "--loss_weight FLOAT factor of the total loss, e.g. 50% less with 0.5 (default: 1.0)")
    assert _flag_help(text, "--loss_reduction") == "--loss_reduction STR how pixels are combined (default: mean)"


def test_help_imports_no_plotting_or_vision_module():
    """--help stays fast: it builds the parser only, without matplotlib or torchvision (seconds to import)."""
    import subprocess
    import sys

    from tests.helpers import subprocess_env

    code = ("import sys, main\n"
            "try:\n    main.main(['--model=FlowDBN', '--training_dataset=GoProNahTrain', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('matplotlib', 'torchvision') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env=subprocess_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--model_pretrained_flownet" in result.stdout and "HEAVY []" in result.stdout


class _ForwardingNah(GoProNahTrain):
    """A GoPro dataset subclass that adds one flag and forwards everything else to its parent."""

    def __init__(self, args, my_flag: int = 3, random_noise: bool = True, *, hidden: int = 1, **kwargs) -> None:
        self.my_flag, self.hidden = my_flag, hidden
        super().__init__(args, random_noise=random_noise, **kwargs)


class _ClosedNah(GoProNahTrain):
    """A subclass that does not forward **kwargs: only its own parameters are flags."""

    def __init__(self, args, root: str, width: Optional[int] = None) -> None:
        super().__init__(args, root, random_crop=(width or 32, width or 32))


def test_a_subclass_forwarding_kwargs_keeps_its_parents_flags(register, nah_root):
    register(DATASETS, "ForwardingNah", _ForwardingNah)
    category = commandline.CATEGORY_BY_NAME["training_dataset"]
    names = [p.name for p in commandline.constructor_parameters(_ForwardingNah, category.excluded)]
    parent = [p.name for p in commandline.constructor_parameters(GoProNahTrain, category.excluded)]
    # Its own parameters first (a redefined one once, with the subclass's default), keyword-only ones make none.
    assert names == ["my_flag", "random_noise"] + [name for name in parent if name != "random_noise"]
    args, _ = _parse("--training_dataset=ForwardingNah", f"--training_dataset_root={nah_root}",
                     "--training_dataset_random_crop=[32, 16]", "--training_dataset_my_flag=5",
                     "--training_dataset_sequence_length=3", "--training_dataset_random_rotate=False")
    assert (args.training_dataset_my_flag, args.training_dataset_random_noise) == (5, True)
    assert args.training_dataset_num_samples_per_example == 8 and not hasattr(args, "training_dataset_hidden")
    dataset = commandline.instance_from_args(args, "training_dataset", args=args)
    assert (dataset.my_flag, dataset.hidden) == (5, 1)
    example = dataset[0]
    assert sorted(k for k in example if k.startswith("input")) == ["input1", "input2", "input3"]
    assert tuple(example["input1"].shape[-2:]) == (32, 16)  # the parent got --training_dataset_random_crop


def test_a_subclass_without_kwargs_has_only_its_own_flags():
    category = commandline.CATEGORY_BY_NAME["training_dataset"]
    assert [p.name for p in commandline.constructor_parameters(_ClosedNah, category.excluded)] == ["root", "width"]
    width = next(p for p in commandline.constructor_parameters(_ClosedNah, category.excluded) if p.name == "width")
    converter, default = commandline.flag_converter_and_default(category, _ClosedNah, width)
    assert default is None and converter("7") == 7  # the hint Optional[int], read from the subclass


def test_inherited_none_default_flags_take_the_parents_type_hint():
    category = commandline.CATEGORY_BY_NAME["training_dataset"]
    parameter = next(p for p in commandline.constructor_parameters(_ForwardingNah, category.excluded)
                     if p.name == "cache_dir")
    converter, default = commandline.flag_converter_and_default(category, _ForwardingNah, parameter)
    assert default is None and converter("none") is None and converter("/tmp/c") == "/tmp/c"
