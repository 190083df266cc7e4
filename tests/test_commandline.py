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
    assert extra == {"resume", "amp", "channels_last", "compile", "fold_batchnorm", "sync_batchnorm",
                     f"{dataset}_cache_dir"}, \
        f"{script}: arguments the original does not have: {extra}"
    assert ours[f"{dataset}_cache_dir"] is None
    assert (args.resume, args.amp, args.channels_last, args.compile, args.sync_batchnorm) == (None, "none", False,
                                                                                              False, False)
    assert commandline.non_default_arguments(args, defaults) == expected["non_default"]


def test_class_flags_match_the_original_per_class():
    reference = reference_json("cli-flags-per-class.json")
    checked = 0
    for entry, rows in reference.items():
        if "=" not in entry:
            continue
        category, name = entry.split("=")
        cat = commandline.CATEGORY_BY_NAME[category]
        if name not in cat.registry:
            continue  # classes of the original that this project does not provide (MNIST, CIFAR, LeNet)
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
    assert checked >= 15


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
])
def test_bad_command_lines_fail_with_one_clear_line(tmp_path, argv, message):
    result = _run_main(f"--save={tmp_path}", *argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("main.py: error:") and message in lines[0], result.stderr


def test_help_lists_class_flags_grouped_by_class():
    result = _run_main("--model=DBN", "--training_dataset=GoProNahTrain", "--help")
    assert result.returncode == 0
    assert "model: DBN:" in result.stdout and "--model_init_type" in result.stdout
    assert "training_dataset: GoProNahTrain:" in result.stdout and "--training_dataset_random_crop" in result.stdout
    assert "--batch_size" in result.stdout and "--resume" in result.stdout


class _ForwardingNah(GoProNahTrain):
    """A GoPro dataset subclass that adds one flag and forwards everything else to its parent."""

    def __init__(self, args, my_flag: int = 3, random_noise: bool = True, *, hidden: int = 1, **kwargs) -> None:
        self.my_flag, self.hidden = my_flag, hidden
        super().__init__(args, random_noise=random_noise, **kwargs)


class _ClosedNah(GoProNahTrain):
    """A subclass that does not forward **kwargs: only its own parameters are flags."""

    def __init__(self, args, root: str, width: Optional[int] = None) -> None:
        super().__init__(args, root, random_crop=(width or 32, width or 32))


def test_a_subclass_forwarding_kwargs_keeps_its_parents_flags(monkeypatch, nah_root):
    monkeypatch.setitem(DATASETS._objects, "ForwardingNah", _ForwardingNah)
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
