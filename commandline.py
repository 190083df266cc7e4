"""The command line, generated from the registries by the original framework's rules.

For every category (model, loss, datasets, optimizer, ...) a selector flag `--<category>` picks a
registered class; each constructor parameter of that class with a default becomes
`--<category>_<parameter>`, converted according to its default (or its type hint when the default
is None). Class flags are added only for the classes chosen on the command line, so
`python main.py --model=DBN --help` lists DBN's flags.

The help describes a class flag with its parameter's entry in the class docstring (Google "Args:" or
":param x:", see utils.docstrings; base classes' docstrings too) and shows its default once: "(default: 5)",
"(none)" for None and the original's placeholders "filename"/"directory", "(required)" for a parameter without
default or whose description says "(required)". An unknown flag's error names the selector that enables it,
or the closest flag.
"""
import argparse
import collections.abc
import dataclasses
import difflib
import functools
import inspect
import json
import os
import re
import sys
import typing
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import torch

import constants
from augmentations import AUGMENTATIONS
from datasets import DATASETS
from losses import LOSSES
from metrics import METRICS
from models import MODELS
from optim import LR_SCHEDULERS, OPTIMIZERS
from utils import checkpoints, docstrings, files, jsonfile, strings
from utils.records import EpochRecorder
from utils.registry import Registry
from visualizers import VISUALIZERS

Converter = Callable[[str], Any]


@dataclasses.dataclass(frozen=True)
class Category:
    """One class-valued command-line category and the original's rules for its parameters."""

    name: str
    registry: Optional[Registry]
    default: Optional[str] = None
    excluded: FrozenSet[str] = frozenset({"self", "args"})
    forced: Dict[str, Converter] = dataclasses.field(default_factory=dict)
    without_default: Dict[str, Converter] = dataclasses.field(default_factory=dict)


_DATASET_EXCLUDED = frozenset({"self", "args", "is_cropped"})
_DATASET_FORCED = {
    "photometric_augmentations": strings.as_dict_or_none,
    "affine_augmentations": strings.as_dict_or_none,
    "random_crop": strings.as_intlist_or_none,
}

CATEGORIES: Tuple[Category, ...] = (
    Category("loss", LOSSES),
    Category("model", MODELS, default="FlowNet1S"),
    Category("training_augmentation", AUGMENTATIONS, forced={"crop": strings.as_intlist_or_none}),
    Category("validation_augmentation", AUGMENTATIONS),
    Category("training_dataset", DATASETS, excluded=_DATASET_EXCLUDED, forced=_DATASET_FORCED,
             without_default={"root": str}),
    Category("validation_dataset", DATASETS, excluded=_DATASET_EXCLUDED, forced=_DATASET_FORCED,
             without_default={"root": str}),
    Category("optimizer", OPTIMIZERS, excluded=frozenset({"self", "args", "params"}),
             forced={"lr": float, "momentum": float, "betas": strings.as_floatlist_or_none,
                     "dampening": float, "weight_decay": float, "nesterov": strings.as_bool_or_none}),
    Category("lr_scheduler", LR_SCHEDULERS, excluded=frozenset({"self", "args", "optimizer"}),
             forced={"min_lr": float, "eta_min": float},
             without_default={"T_max": int, "lr_lambda": str, "step_size": int,
                              "milestones": strings.as_intlist_or_none, "gamma": float}),
    Category("holistic_records", None, excluded=frozenset({"self", "args", "root", "epoch", "dataset"})),
    Category("visualizer", VISUALIZERS,
             excluded=frozenset({"self", "args", "model_and_loss", "optimizer", "param_scheduler",
                                 "lr_scheduler", "train_loader", "validation_loader"})),
)
CATEGORY_BY_NAME = {category.name: category for category in CATEGORIES}

_LIST_CONVERTERS = {int: strings.as_intlist_or_none, float: strings.as_floatlist_or_none,
                    str: strings.as_stringlist_or_none, bool: strings.as_booleanlist_or_none}
_SCALAR_OR_NONE = {int: strings.as_int_or_none, float: strings.as_float_or_none,
                   str: strings.as_string_or_none, bool: strings.as_bool_or_none}


def category_class(category: Category, class_name: Optional[str]) -> Optional[type]:
    """The class a category's selector value names (EpochRecorder for holistic_records)."""
    if category.registry is None:
        return EpochRecorder
    return None if class_name is None else category.registry.get(class_name)


def constructors(cls: type) -> List[Callable[..., None]]:
    """The `__init__`s whose parameters a class accepts: its own and, while one takes **kwargs, the next one
    up the MRO (as LightningCLI/jsonargparse resolve them), so a subclass forwarding **kwargs keeps its
    parent's parameters."""
    chain: List[Callable[..., None]] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # a constructor implemented in C: nothing to read
            break
        chain.append(init)
        if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return chain


def _resolved_parameters(cls: type) -> List[inspect.Parameter]:
    """Named parameters of a class's constructors (see `constructors`), the nearest definition of each name."""
    resolved: Dict[str, inspect.Parameter] = {}
    for init in constructors(cls):
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                resolved.setdefault(parameter.name, parameter)
    return list(resolved.values())


def constructor_parameters(cls: type, excluded: FrozenSet[str]) -> List[inspect.Parameter]:
    """Positional-or-keyword constructor parameters that are not excluded, inherited ones through **kwargs."""
    return [p for p in _resolved_parameters(cls)
            if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name not in excluded]


def _type_hints(cls: type) -> Dict[str, Any]:
    """Type hints of the constructor parameters, each from the constructor that defines the parameter."""
    hints: Dict[str, Any] = {}
    seen = set()
    for init in constructors(cls):
        try:
            own = typing.get_type_hints(init)
        except Exception:  # noqa: BLE001 -- foreign classes may carry unresolvable hints; fall back to defaults
            own = {}
        for name in inspect.signature(init).parameters:
            if name not in seen and name in own:
                hints[name] = own[name]
            seen.add(name)
    return hints


def _converter_from_hint(hint: Any) -> Converter:
    """Converter for a None default, read from the type hint (string-or-none if there is none)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        hint = args[0]
    origin = typing.get_origin(hint)
    if origin in (list, tuple, collections.abc.Sequence):
        element = (typing.get_args(hint) or (str,))[0]
        return _LIST_CONVERTERS.get(element, strings.as_stringlist_or_none)
    if hint is dict or origin is dict:
        return strings.as_dict_or_none
    return _SCALAR_OR_NONE.get(hint, strings.as_string_or_none)


def flag_converter_and_default(category: Category, cls: type, parameter: inspect.Parameter
                               ) -> Tuple[Converter, Any]:
    """The converter and default of the flag generated for one constructor parameter."""
    name, default = parameter.name, parameter.default
    if default is inspect.Parameter.empty:
        if name in category.without_default:
            return category.without_default[name], None
        raise ValueError(f"do not know how to make a flag for parameter '{name}' of {cls.__name__} "
                         f"(no default value)")
    if isinstance(default, tuple):
        default = list(default)
    if name in category.forced:
        return category.forced[name], default
    if isinstance(default, bool):
        return strings.as_bool_or_none, default
    if default is None:
        return _converter_from_hint(_type_hints(cls).get(name)), None
    if isinstance(default, list):
        element = type(default[0]) if default else str
        return _LIST_CONVERTERS.get(element, strings.as_stringlist_or_none), default
    if isinstance(default, dict):
        return strings.as_dict_or_none, default
    if isinstance(default, (int, float, str)):
        return type(default), default
    return strings.as_string_or_none, default


def _checked(converter: Converter) -> Converter:
    """Turn a converter's ValueError into an argparse message that says what was expected."""

    def convert(value: str) -> Any:
        try:
            return converter(value)
        except (ValueError, TypeError) as error:
            detail = str(error) or f"expected a value of type {converter.__name__}"
            raise argparse.ArgumentTypeError(f"{detail} (got {value!r})" if repr(value) not in detail
                                             else detail) from None

    convert.__name__ = getattr(converter, "__name__", "value")
    convert.converter = converter  # for the help's metavar
    return convert


class _Parser(argparse.ArgumentParser):
    """Reports errors in one line: 'main.py: error: <what is wrong>'."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


# The original's defaults of path parameters that mean "not given" (FlowDBN's checkpoints, GoProInference's folder).
_PLACEHOLDERS = frozenset({"filename", "directory"})

_METAVARS: Dict[Any, str] = {
    int: "INT", float: "FLOAT", str: "STR", strings.as_int_or_none: "INT", strings.as_float_or_none: "FLOAT",
    strings.as_string_or_none: "STR", strings.as_bool_or_none: "BOOL", strings.as_dict_or_none: "DICT",
    **{converter: "LIST" for converter in _LIST_CONVERTERS.values()},
}


def metavar(converter: Optional[Converter]) -> str:
    """The help's name for a flag's value: BOOL, INT, FLOAT, STR, LIST or DICT (VALUE for other converters)."""
    return _METAVARS.get(getattr(converter, "converter", converter), "VALUE")


def shown_default(value: Any) -> str:
    """How the help shows a default: 'none' for None, '' and the original's placeholders, else 'default: ...'."""
    if value is None or (isinstance(value, str) and (value == "" or value in _PLACEHOLDERS)):
        return "none"
    return f"default: {format_flag_value(value)}"


class _HelpFormatter(argparse.HelpFormatter):
    """Readable metavars: INT, BOOL, LIST, ... instead of the flag's name or its converter's."""

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return metavar(action.type)


def _escaped(text: Optional[str]) -> str:
    """Text for an argparse help string, where '%' starts a format specifier."""
    return (text or "").replace("%", "%%")


def _add(group: Any, flag: str, *, help: str = "", shown: Optional[str] = None, **kwargs: Any) -> argparse.Action:  # noqa: A002
    """Add a flag whose help ends with its default, once: '(default: 5)', '(none)' or '(required)' (`shown`)."""
    shown = shown or shown_default(kwargs.get("default"))
    return group.add_argument(flag, help=f"{_escaped(help)} ({_escaped(shown)})".strip(), **kwargs)


def _add_standard_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("standard")
    add = functools.partial(_add, group)
    add("--batch_size", type=int, default=1, help="examples per step (GoPro datasets multiply by their samples)")
    add("--checkpoint", type=_checked(strings.as_string_or_none), default=None, metavar="PATH",
        help="checkpoint file or run folder whose weights initialise the model")
    add("--clip_grad", type=float, default=0, help="clip the gradient norm to this value when > 0")
    add("--cuda", type=_checked(strings.as_bool_or_none), default=True, help="use cuda:0 when available")
    add("--logging_loss_graph", type=_checked(strings.as_bool_or_none), default=False, help="log the loss module")
    add("--logging_model_graph", type=_checked(strings.as_bool_or_none), default=False, help="log the model module")
    add("--loshchilov_weight_decay", type=float, default=0, help="decoupled weight decay when > 0")
    add("--proctitle", type=str, default="__random__", help="process title", shown="default: a random fantasy name")
    add("--save", type=str, default=None, metavar="DIR", help="run folder for records, TensorBoard and checkpoints",
        shown="required")
    add("--seed", type=_checked(strings.as_int_or_none), default=0, help="random seed base (none: unseeded)")
    add("--start_epoch", type=int, default=1, help="first epoch number")
    add("--total_epochs", type=int, default=10, help="last epoch number (inclusive)")
    add("--prefix", type=str, default="", help="free text shown in Telegram messages")
    add("--optimizer_group", type=_checked(strings.as_dict_or_none), action="append", default=None,
        help="extra optimizer parameter group, e.g. \"{'params': '*bias*', 'lr': 0.01}\" (repeatable)")
    add("--param_scheduler_group", type=_checked(strings.as_dict_or_none), action="append", default=None,
        help="parameter scheduling group {'params': pattern, 'scheduler': name, 'init': value, ...}")
    ours = functools.partial(_add, parser.add_argument_group("deblur-devil additions"))
    ours("--config", type=str, default=argparse.SUPPRESS, metavar="FILE",
         help="JSON or YAML file of flags (a run's args.json is one); flags on the command line override it",
         shown="none")
    ours("--resume", type=_checked(strings.as_string_or_none), default=None, metavar="PATH",
                      help="run folder or checkpoint file: continue that run exactly where it stopped")
    ours("--amp", type=str, default="none", choices=["none", "bf16", "fp16"],
                      help="mixed precision: autocast the model (fp16 adds a gradient scaler)")
    ours("--channels_last", type=_checked(strings.as_bool_or_none), default=False,
                      help="channels-last memory format for the model and its inputs")
    ours("--compile", type=_checked(strings.as_bool_or_none), default=False,
                      help="torch.compile the model (first steps are slow while it compiles)")
    ours("--fold_batchnorm", type=_checked(strings.as_bool_or_none), default=False,
                      help="evaluation-only runs: fold BatchNorm into the convolutions after loading the checkpoint "
                           "(faster; same results up to float rounding)")
    ours("--sync_batchnorm", type=_checked(strings.as_bool_or_none), default=False,
                      help="with torchrun: batch-norm statistics over all processes (SyncBatchNorm)")
    ours("--distributed_timeout_minutes", type=float, default=constants.DISTRIBUTED_TIMEOUT_MINUTES,
                      help="with torchrun: how long a process waits for the others in a collective before the run "
                           "ends with an error naming the rank and the operation (a dead or stalled peer)")


def _selector(registry: Registry) -> Converter:
    """A selector's converter: a registered name, else an error with the closest names and the registered ones."""

    def name(value: str) -> str:
        if value in registry:
            return value
        names = registry.names()
        by_lowercase = {known.lower(): known for known in names}
        close = difflib.get_close_matches(value.lower(), list(by_lowercase), n=1)
        hint = f"did you mean {by_lowercase[close[0]]}? " if close else ""
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} ({hint}registered: {', '.join(names)})")

    name.__name__ = registry.name
    return name


def _add_class_flags(parser: argparse.ArgumentParser, category: Category, cls: type) -> None:
    summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    group = parser.add_argument_group(f"{category.name}: {cls.__name__}", description=_escaped(summary) or None)
    descriptions = docstrings.parameter_descriptions(cls)
    for parameter in constructor_parameters(cls, category.excluded):
        converter, default = flag_converter_and_default(category, cls, parameter)
        description = descriptions.get(parameter.name, "")
        # Required: a value the category needs (a dataset root) or, for placeholder defaults, the docstring says so.
        required = parameter.default is inspect.Parameter.empty or "(required)" in description
        _add(group, f"--{category.name}_{parameter.name}", type=_checked(converter), default=default,
             help=description.replace(" (required)", ""), shown="required" if required else None)


def _add_training_flags(group: Any) -> None:
    _add(group, "--training_key", type=str, default="total_loss",
         help="loss_dict key that is back-propagated (checked before the run starts)")


def _add_validation_flags(group: Any) -> None:
    _add(group, "--validation_batch_size", type=int, default=-1, help="-1: same as --batch_size")
    _add(group, "--validation_keys", type=_checked(strings.as_stringlist_or_none),
         default=["total_loss"], help="loss_dict keys that decide the best checkpoints")
    _add(group, "--validation_modes", type=_checked(strings.as_stringlist_or_none), default=["min"],
         help="min or max, one per validation key")
    _add(group, "--validation_metrics", type=_checked(strings.as_stringlist_or_none), default=None,
         help="per-frame metrics added to the evaluation loss_dict of any loss (metrics/: psnr, psnr_rgb, psnr_y, "
              "ssim_y, ssim_rgb, psnr_batched); none: the loss's own keys, and psnr, psnr_rgb, ssim_rgb in the "
              "frame records")
    _add(group, "--validation_metrics_crop_border", type=int, default=0,
         help="pixels removed on every side before each --validation_metrics metric")


def _add_checkpoint_flags(group: Any) -> None:
    _add(group, "--checkpoint_mode", type=str, default="latest", choices=["latest", "best"],
         help="which checkpoint of a run folder to load")
    _add(group, "--checkpoint_include_params", type=_checked(strings.as_stringlist_or_none),
         default=["*"], help="fnmatch patterns of checkpoint keys to load")
    _add(group, "--checkpoint_exclude_params", type=_checked(strings.as_stringlist_or_none),
         default=[], help="fnmatch patterns of checkpoint keys to skip")
    _add(group, "--checkpoint_translations", type=_checked(strings.as_dict_or_none), default={},
         help="substring replacements applied to checkpoint keys")
    _add(group, "--checkpoint_fuzzy_translation_keys", type=_checked(strings.as_stringlist_or_none),
         default=[], help="key fragments that match checkpoint and model keys")


# Flags that exist only when a flag is given: (that flag, what its value is, help section, the flags' adder).
CONDITIONAL_FLAGS: Tuple[Tuple[str, str, str, Callable[[Any], None]], ...] = (
    ("loss", "<name>", "training (with --loss)", _add_training_flags),
    ("validation_dataset", "<name>", "validation (with --validation_dataset)", _add_validation_flags),
    ("checkpoint", "<file or run folder>", "checkpoint (with --checkpoint)", _add_checkpoint_flags),
)


def _add_conditional_flags(parser: argparse.ArgumentParser, known: argparse.Namespace) -> None:
    for selector, _, title, add in CONDITIONAL_FLAGS:
        if getattr(known, selector) is not None:
            add(parser.add_argument_group(title))


_DESCRIPTION = """\
Train and evaluate video deblurring and optical-flow networks. A selector (--model, --loss, --training_dataset,
...) picks a registered class; that class's constructor parameters become flags --<selector>_<parameter>, listed
below once the class is chosen, e.g. `main.py --model=DBN --training_dataset=GoProNahTrain --help`."""


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The full parser for `argv`: standard flags, selectors, chosen classes' flags, conditional flags."""
    parser = _Parser(prog="main.py", add_help=False, allow_abbrev=False, formatter_class=_HelpFormatter,
                     usage="%(prog)s --save=DIR [--<selector>=NAME ...] [--<flag>=VALUE ...]",
                     description=_DESCRIPTION)
    _add_standard_flags(parser)
    selectors = parser.add_argument_group("class selectors")
    for category in CATEGORIES:
        if category.registry is not None:
            _add(selectors, f"--{category.name}", type=_selector(category.registry), default=category.default,
                 metavar="NAME", help=f"{category.registry.name}: {', '.join(category.registry.names())}")
    known, _ = parser.parse_known_args(argv)
    for category in CATEGORIES:
        cls = category_class(category, getattr(known, category.name, None))
        if cls is not None:
            _add_class_flags(parser, category, cls)
    known, _ = parser.parse_known_args(argv)
    _add_conditional_flags(parser, known)
    parser.add_argument("-h", "--help", action="help", help="show this help message and exit")
    return parser


# ------------------------------------------------------------------------------------- hints for unknown flags
def class_flags(category: Category, cls: type) -> List[str]:
    """The flags a class makes in a category: its parameters with a default or one the category supplies."""
    return [f"--{category.name}_{p.name}" for p in constructor_parameters(cls, category.excluded)
            if p.default is not inspect.Parameter.empty or p.name in category.without_default]


def _conditional_flag_selectors() -> Dict[str, Tuple[str, str]]:
    """Every conditional flag -> (the flag that enables it, what that flag's value is)."""
    selectors = {}
    for selector, value, _, add in CONDITIONAL_FLAGS:
        scratch = argparse.ArgumentParser(add_help=False)
        add(scratch)
        selectors.update({option: (selector, value) for action in scratch._actions for option in action.option_strings})
    return selectors


def _selector_hint(known: argparse.Namespace, flag: str) -> Optional[str]:
    """For a flag some other command line accepts: which selector (or which class) it needs; else None."""
    conditional = _conditional_flag_selectors()
    if flag in conditional:
        selector, value = conditional[flag]
        return f"{flag} needs --{selector}: add --{selector}={value}"
    for category in CATEGORIES:
        if category.registry is None or not flag.startswith(f"--{category.name}_"):
            continue
        owners = [name for name in category.registry.names()
                  if flag in class_flags(category, category.registry.get(name))]
        chosen = getattr(known, category.name, None)
        if owners and chosen is None:
            return f"{flag} belongs to a --{category.name} class ({', '.join(owners)}): add --{category.name}=<name>"
        if owners and chosen not in owners:
            return f"{flag} is not a flag of --{category.name}={chosen}; it belongs to {', '.join(owners)}"
    return None


def _every_flag(parser: argparse.ArgumentParser) -> List[str]:
    """Every flag some command line accepts: this parser's, the conditional ones, every registered class's."""
    flags = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    flags += _conditional_flag_selectors()
    for category in CATEGORIES:
        for name in category.registry.names() if category.registry is not None else []:
            flags += class_flags(category, category.registry.get(name))
    return list(dict.fromkeys(flags))


def _unrecognized_flag(parser: argparse.ArgumentParser, known: argparse.Namespace, token: str) -> str:
    """What is wrong with one unrecognized `--flag[=value]` and what was probably meant."""
    flag = token.split("=", 1)[0]
    hint = _selector_hint(known, flag)
    if hint is not None:
        return hint
    matches = difflib.get_close_matches(flag, _every_flag(parser), n=1, cutoff=0.8)
    if not matches:
        return f"unrecognized arguments: {token}"
    accepted = {option for action in parser._actions for option in action.option_strings}
    also = "" if matches[0] in accepted else f" {_selector_hint(known, matches[0])}"
    return f"unrecognized arguments: {token} (did you mean {matches[0]}?{also})"


def unrecognized_message(parser: argparse.ArgumentParser, known: argparse.Namespace, extras: Sequence[str]) -> str:
    """One line for the arguments the parser did not accept, with the selector or the flag each probably needs."""
    messages = []
    for index, token in enumerate(extras):
        previous = extras[index - 1] if index > 0 else ""
        if token.startswith("--"):
            messages.append(_unrecognized_flag(parser, known, token))
        elif not (previous.startswith("--") and "=" not in previous):  # else the value of `--flag value`
            messages.append(f"unrecognized arguments: {token}")
    return "; ".join(messages)


def _check_consistency(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.validation_dataset is not None:
        for mode in args.validation_modes:
            if mode not in ("min", "max"):
                parser.error(f"argument --validation_modes: expected 'min' or 'max', got {mode!r}")
        if len(args.validation_keys) != len(args.validation_modes):
            parser.error(f"--validation_keys {args.validation_keys} and --validation_modes "
                         f"{args.validation_modes} must have the same length")
        for name in args.validation_metrics or []:
            if name not in METRICS:
                parser.error(f"argument --validation_metrics: unknown metric {name!r}; registered: "
                             f"{', '.join(METRICS.names())}")
        if args.validation_metrics_crop_border < 0:
            parser.error(f"argument --validation_metrics_crop_border: must be >= 0, "
                         f"got {args.validation_metrics_crop_border}")
    for name in ("training_dataset", "validation_dataset"):
        if getattr(args, name) is not None and getattr(args, f"{name}_root", None) is None:
            parser.error(f"--{name}={getattr(args, name)} needs --{name}_root")


def parse_arguments(argv: Optional[Sequence[str]] = None) -> Tuple[argparse.Namespace, Dict[str, Any]]:
    """Parse `argv` (default sys.argv[1:]); returns the arguments and their parser defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = expand_config(argv)
    except ConfigError as error:
        _Parser(prog="main.py").error(str(error))
    parser = build_parser(argv)
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.error(unrecognized_message(parser, args, extras))
    defaults = {key: parser.get_default(key) for key in vars(args)}
    args.cuda = bool(args.cuda) and torch.cuda.is_available()
    _check_consistency(parser, args)
    return args, defaults


def non_default_arguments(args: argparse.Namespace, defaults: Dict[str, Any]) -> Dict[str, Any]:
    """Arguments whose value differs from the parser default."""
    return {key: value for key, value in sorted(vars(args).items()) if defaults.get(key) != value}


def write_arguments(args: argparse.Namespace, directory: str) -> None:
    """Write args.txt ('key: value' lines) and args.json (the original's layout) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    arguments = dict(sorted(vars(args).items()))
    lines = "".join(f"{key}: {value}\n" for key, value in arguments.items())
    files.write_text(os.path.join(directory, "args.txt"), lines)
    files.write_text(os.path.join(directory, "args.json"), jsonfile.dumps(arguments) + "\n")


def kwargs_from_args(args: argparse.Namespace, category_name: str) -> Dict[str, Any]:
    """Constructor keyword arguments of the class chosen for a category, read from its flags."""
    category = CATEGORY_BY_NAME[category_name]
    cls = category_class(category, getattr(args, category_name, None))
    if cls is None:
        raise ValueError(f"no class chosen for --{category_name}")
    return {p.name: getattr(args, f"{category_name}_{p.name}")
            for p in constructor_parameters(cls, category.excluded)
            if hasattr(args, f"{category_name}_{p.name}")}


def instance_from_args(namespace: argparse.Namespace, category_name: str, **extra: Any) -> Any:
    """Instantiate the class chosen for a category with its flags plus `extra` (e.g. args=namespace)."""
    category = CATEGORY_BY_NAME[category_name]
    cls = category_class(category, getattr(namespace, category_name, None))
    accepted = {p.name for p in _resolved_parameters(cls)}
    kwargs = {k: v for k, v in extra.items() if k in accepted}
    kwargs.update(kwargs_from_args(namespace, category_name))
    try:
        return cls(**kwargs)
    except ValueError as error:
        if str(error).startswith("--"):  # names its flag already
            raise
        # A constructor knows its parameters, not the flags they came from: name the class's flag.
        raise ValueError(f"--{category_name}={getattr(namespace, category_name)}: {error}") from error


def _model_of_weights(state_dict: Dict[str, torch.Tensor], given: Dict[str, Any]) -> str:
    """The registered model whose `checkpoint_arguments` recognise a state dict (for checkpoints without args)."""
    readers = [name for name in MODELS.names() if hasattr(MODELS.get(name), "checkpoint_arguments")]
    for name in readers:
        if MODELS.get(name).checkpoint_arguments(state_dict, given) is not None:
            return name
    raise ValueError(f"--checkpoint: not a {' or '.join(readers)} checkpoint (it stores no --model, and its weights "
                     f"fit none of them); give --model and --sequence_length")


def build_model_from_checkpoint(checkpoint: Dict[str, Any], source: str, name: Optional[str] = None,
                                sequence_length: Optional[int] = None, given: Optional[Dict[str, Any]] = None
                                ) -> Tuple[torch.nn.Module, str, int]:
    """The model a checkpoint holds, its weights loaded strictly: (model, its name, its sequence length N).

    The class is `name`, else the run's --model, else the one whose weights the state dict holds (the
    original's checkpoints store no arguments). A class with a `checkpoint_arguments` class method (DBN,
    FlowDBN) is built from what its weights say, so no file the run named (a prewarping network) is needed;
    `given` (e.g. deblur.py's --pretrained_pwcnet) goes to that method. Any other class is built as main.py
    built it: from the run's stored arguments (its --model_* values), the sequence flags set to N when known.
    `source` names the checkpoint in errors.
    """
    state_dict, given = checkpoint["state_dict"], dict(given or {})
    stored = checkpoints.stored_arguments(checkpoint)
    name = name or stored.get("model") or _model_of_weights(state_dict, given)
    if name not in MODELS:
        raise ValueError(f"--model: the checkpoint holds model '{name}', which is not registered (is its file in "
                         f"models/?); registered: {', '.join(MODELS.names())}")
    length = sequence_length or checkpoints.stored_sequence_length(stored)
    read_weights = getattr(MODELS.get(name), "checkpoint_arguments", None)
    model = None
    if read_weights is not None:
        kwargs = read_weights(state_dict, given) or {}
        length = length or kwargs.get("sequence_length")
        if length is not None:
            model = MODELS.get(name)(**{**kwargs, "sequence_length": length})
    else:
        # Another --model than the run's: its own defaults, not the run's --model_* values.
        namespace = argparse.Namespace(**(stored if stored.get("model") == name else {}))
        namespace.model = name
        for flag in checkpoints.SEQUENCE_FLAGS if length is not None else ():
            setattr(namespace, flag, length)
        model = instance_from_args(namespace, "model", args=namespace)
        length = length or getattr(model, "sequence_length", None)
    if model is None or length is None:
        raise ValueError(f"--sequence_length: the checkpoint does not record how many frames {name} sees (no "
                         f"--{checkpoints.SEQUENCE_FLAGS[0]} or --{checkpoints.SEQUENCE_FLAGS[1]} in its "
                         f"arguments); give it")
    checkpoints.load_state_dict(torch.nn.ModuleDict({"model": model}), state_dict, source)  # keys 'model.<...>'
    return model, name, int(length)


# Not carried over from a stored run: where it ran (the machine, the folder, the epoch to start from) and
# what initialised it (--checkpoint: the run's own checkpoint holds those weights now).
RUN_SPECIFIC_FLAGS = frozenset({"help", "resume", "save", "cuda", "start_epoch"})


def given_flags(argv: Sequence[str]) -> List[str]:
    """Names of the flags `argv` sets, in order (`--optimizer_lr=0.1` and `--optimizer_lr 0.1` give 'optimizer_lr')."""
    return [token[2:].split("=", 1)[0] for token in argv if token.startswith("--") and len(token) > 2]


def format_flag_value(value: Any) -> str:
    """A value as command-line text that the flag's converter turns back into the same value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)  # "True"/"False": read by the boolean converters and as a Python literal
    if isinstance(value, list):
        return "[" + ", ".join(format_flag_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return repr(value)
    return str(value)


def argv_from_arguments(stored: Dict[str, Any], argv: Sequence[str]) -> List[str]:
    """Command line that recreates the stored arguments of a run, except those `argv` sets itself.

    `argv` appended to the result gives the stored run with the user's changes: flags of the classes the
    run chose, with the run's values wherever the user gives none.
    """
    given = set(given_flags(argv))
    selectors = [f"--{category.name}={format_flag_value(stored[category.name])}" for category in CATEGORIES
                 if category.registry is not None and category.name not in given
                 and stored.get(category.name) is not None]
    parser = build_parser(selectors + list(argv))
    result = []
    for action in parser._actions:  # the parser's own list: every flag it accepts, with its default
        name = action.dest
        if name in given or name not in stored or name in RUN_SPECIFIC_FLAGS or name.startswith("checkpoint") \
                or not action.option_strings:
            continue
        value = stored[name]
        if value == action.default:
            continue
        values = value if isinstance(action, argparse._AppendAction) and isinstance(value, list) else [value]
        result += [f"--{name}={format_flag_value(item)}" for item in values]
    return result


# ------------------------------------------------------------------------------------- configuration files
class ConfigError(ValueError):
    """A configuration file that cannot be read or holds a key no command line accepts."""


# Keys a configuration never carries over, so that a run's own args.json is a valid configuration: where that
# run ran (its folder, the machine's GPU, the epoch it started from), what initialised it (--checkpoint and its
# checkpoint_* flags: the run's own checkpoint holds those weights now), and the values earlier versions of
# this project added to a checkpoint's `args` at run time. Give them on the command line.
NOT_CARRIED = RUN_SPECIFIC_FLAGS | {"config", "device", "actual_device", "proctitle_name", "non_default_args",
                                    "holistic_records_kwargs"}
BASE_KEY = "_base_"  # a configuration's base file (relative to it), whose keys this one overrides


def _not_carried(key: str) -> bool:
    return key in NOT_CARRIED or key.startswith("checkpoint")


def _read_mapping(filename: str) -> Dict[str, Any]:
    """The key -> value mapping of a JSON or YAML file."""
    try:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"--config={filename}: cannot read it ({error.strerror or error})") from None
    if filename.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"--config={filename}: YAML needs PyYAML (pip install pyyaml); or write JSON") from None
        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"--config={filename}: not valid YAML ({str(error).splitlines()[0]})") from None
    else:
        try:
            content = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"--config={filename}: not valid JSON ({error})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"--config={filename}: expected a mapping of flag names to values")
    return content


def _expanded(filename: str, key: str, value: Any) -> Any:
    """`value` with ${NAME} replaced by the environment variable NAME (the launchers' folders)."""
    if isinstance(value, list):
        return [_expanded(filename, key, item) for item in value]
    if not isinstance(value, str):
        return value
    for name in re.findall(r"\$\{(\w+)\}", value):
        if name not in os.environ:
            raise ConfigError(f"--config={filename}: key {key!r} uses ${{{name}}}, which is not set")
        value = value.replace(f"${{{name}}}", os.environ[name])
    return value


def load_config(filename: str, _seen: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """A configuration file's flags (without "--"), on top of its _base_ chain, with ${NAME} expanded."""
    if os.path.abspath(filename) in _seen:
        raise ConfigError(f"--config={filename}: its {BASE_KEY} chain comes back to it")
    content = _read_mapping(filename)
    config: Dict[str, Any] = {}
    base = content.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"--config={filename}: {BASE_KEY} must be a file name")
        config = load_config(os.path.join(os.path.dirname(filename), base), _seen + (os.path.abspath(filename),))
    for key, value in content.items():
        config[key] = _expanded(filename, key, value)
    return config


def _last_value(argv: Sequence[str], name: str) -> Optional[str]:
    """The value `argv` gives flag `name` last (`--name=value` or `--name value`), else None."""
    value = None
    for index, token in enumerate(argv):
        if token.startswith(f"--{name}="):
            value = token.split("=", 1)[1]
        elif token == f"--{name}" and index + 1 < len(argv):
            value = argv[index + 1]
    return value


def _overridden_keys(config: Dict[str, Any], argv: Sequence[str]) -> List[str]:
    """Class flags of a category whose class the command line changes: they belong to the config's class."""
    dropped, given = [], given_flags(argv)
    for category in CATEGORIES:
        if category.registry is None or category.name not in given or category.name not in config \
                or _last_value(argv, category.name) == format_flag_value(config[category.name]):
            continue
        cls = category_class(category, config[category.name]) if config[category.name] in category.registry else None
        flags = class_flags(category, cls) if cls is not None else []
        dropped += [key for key in config if f"--{key}" in flags]
    return dropped


def _rerooted(config: Dict[str, Any], argv: Sequence[str]) -> Dict[str, Any]:
    """Paths inside the stored run's folder (a run's args.json: --visualizer_save=<save>/inference) moved into
    the new --save, so that a run made from another's arguments never writes into that run's folder."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--save", type=str, default=None)
    new_save = parser.parse_known_args(argv)[0].save
    old_save = config.get("save")
    if not isinstance(old_save, str) or not old_save or new_save is None:
        return config
    inside = old_save.rstrip("/") + "/"
    return {key: new_save.rstrip("/") + "/" + value[len(inside):]
            if isinstance(value, str) and key != "save" and value.startswith(inside) else value
            for key, value in config.items()}


def config_arguments(filename: str, argv: Sequence[str]) -> List[str]:
    """The flags of a configuration file that `argv` (the rest of the command line) does not set itself.

    `argv` appended to the result overrides the file: a repeatable flag given there replaces the file's list,
    and a selector given there (--model, --optimizer, ...) drops the file's flags of its own class.
    """
    config = load_config(filename)
    for category in CATEGORIES:
        value = config.get(category.name)
        if category.registry is not None and value is not None and value not in category.registry:
            raise ConfigError(f"--config={filename}: {category.name}={value!r} is not registered "
                              f"(registered: {', '.join(category.registry.names())})")
    given = given_flags(argv)
    config = _rerooted(config, argv)
    dropped = set(_overridden_keys(config, argv))
    config = {key: value for key, value in config.items() if not _not_carried(key) and key not in dropped}
    selectors = [f"--{category.name}={format_flag_value(config[category.name])}" for category in CATEGORIES
                 if category.registry is not None and category.name not in given
                 and config.get(category.name) is not None]
    parser = build_parser(selectors + list(argv))
    accepted = {action.dest for action in parser._actions if action.option_strings}
    for key in config:
        if key not in accepted:
            known, _ = parser.parse_known_args(selectors + list(argv))
            hint = _selector_hint(known, f"--{key}")
            raise ConfigError(f"--config={filename}: unknown key {key!r}" + (f" ({hint})" if hint else ""))
    return argv_from_arguments(config, argv)


def expand_config(argv: Sequence[str]) -> List[str]:
    """`argv` with --config=FILE (or --config FILE) replaced by the file's flags, which the rest overrides."""
    argv = list(argv)
    for index, token in enumerate(argv):
        if token == "--config" or token.startswith("--config="):
            if token == "--config" and index + 1 == len(argv):
                raise ConfigError("--config needs a file name")
            filename = token.split("=", 1)[1] if "=" in token else argv[index + 1]
            rest = argv[:index] + argv[index + (1 if "=" in token else 2):]
            if any(other == "--config" or other.startswith("--config=") for other in rest):
                raise ConfigError("--config is given twice: give one file (a file can name its _base_)")
            return config_arguments(filename, rest) + rest
    return argv
