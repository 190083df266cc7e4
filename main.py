"""deblur-devil: parse the command line, build and check the run, then open its folder and run epochs.

A run starts in three steps, and nothing under --save is created or changed before the third:
1. `resolve_arguments`: the command line (with --resume, on top of the run's stored arguments), checked.
2. `build_run`: datasets, model and loss, optimizer and schedulers, visualizer and trainer, the weights of
   --checkpoint and the state of --resume; files are only read.
3. `open_run_folder`: lock --save (one run per folder), then write args, src.zip, logbook and TensorBoard.
A command line that fails in steps 1 or 2 leaves the folder as it was.
"""
import argparse
import dataclasses
import glob
import json
import logging
import os
import platform
import random
import shlex
import socket
import sys
import traceback
from typing import Any, Dict, List, Optional, Tuple

import colorama
import numpy as np
import torch
from torch.utils.data import DistributedSampler

import callbacks
import commandline
import constants
import runtime
from contrib import precision
from contrib.fusion import fold_batchnorm
from hooks import HookBase
from metrics import frame_metrics
from optim.groups import ParameterScheduler, parameter_groups
from utils import allocator, checkpoints, distributed, files, logger, run_folder, summary, system, telegram, termination
from utils.logger import block

# Flags a resumed run keeps: its weights, optimizer and scheduler states and data were made with them.
# Start a new run with --checkpoint=<run folder> to begin from a run's weights with other settings.
FIXED_ON_RESUME = frozenset({"model", "loss", "optimizer", "optimizer_group", "lr_scheduler", "training_dataset",
                             "training_key", "seed", "param_scheduler_group"})


def _fixed_on_resume(name: str) -> bool:
    return (name in FIXED_ON_RESUME or name.endswith("_sequence_length") or name.startswith("lr_scheduler_")
            or (name.startswith("model_") and not name.startswith("model_pretrained_")))


@dataclasses.dataclass
class Resumption:
    """A run to continue: its checkpoint, and the flags this command line changes (name -> (run's, new))."""

    filename: str
    checkpoint: Dict[str, Any]
    overrides: Dict[str, Tuple[Any, Any]]
    folder: str


def _early_arguments(argv: List[str]) -> argparse.Namespace:
    """--save (or, when resuming a run folder without --save, that folder), --resume and --cuda."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--save", type=str, default=None)
    parser.add_argument("--resume", type=str, default=None)
    parser.add_argument("--cuda", type=str, default="true")
    known, _ = parser.parse_known_args(argv)
    if known.save is None and known.resume is not None:
        known.save = known.resume if os.path.isdir(known.resume) else os.path.dirname(os.path.abspath(known.resume))
    known.cuda = known.cuda.strip().lower() in ("yes", "true", "t", "y", "1")
    return known


def log_arguments(args: argparse.Namespace, non_default: Dict[str, Any]) -> None:
    """Every argument sorted by name, non-default ones in colour."""
    for key, value in sorted(vars(args).items()):
        color = colorama.Fore.CYAN if key in non_default else ""
        logging.info(f"{color}{key}: {value}{colorama.Style.RESET_ALL}")


def seed_everything(seed: Optional[int]) -> None:
    """python seed, numpy seed+1, torch seed+2, cuda seed+3 (the original's scheme)."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed + 1)
    torch.manual_seed(seed + 2)
    torch.cuda.manual_seed_all(seed + 3)


# ------------------------------------------------------------------------------------- 1. arguments
def _stored_model_flags(argv: List[str]) -> List[str]:
    """For --checkpoint without --model: the model flags stored in a checkpoint of this project (or none)."""
    given = set(commandline.given_flags(argv))
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--checkpoint", type=str, default=None)
    parser.add_argument("--checkpoint_mode", type=str, default="latest")
    known, _ = parser.parse_known_args(argv)
    if known.checkpoint is None or "model" in given or known.checkpoint.strip().lower() == "none":
        return []
    try:
        filename = checkpoints.find_checkpoint(known.checkpoint, known.checkpoint_mode)
        stored = checkpoints.stored_arguments(checkpoints.load_file(filename))
    except checkpoints.CheckpointError:
        return []  # reported where the checkpoint is loaded, with every flag known
    if not stored.get("model"):
        return []
    logging.info("--checkpoint: no --model given; using the checkpoint's model %s", stored["model"])
    return [f"--model={stored['model']}"] + [f"--{key}={commandline.format_flag_value(value)}"
                                              for key, value in sorted(stored.items())
                                              if key.startswith("model_") and key not in given]


def resolve_arguments(argv: List[str]) -> Tuple[argparse.Namespace, Dict[str, Any], Optional[Resumption]]:
    """Parse and check the command line; with --resume, on top of the resumed run's stored arguments."""
    early = _early_arguments(argv)
    resumption = None
    stored: Optional[Dict[str, Any]] = None
    # With --resume, --checkpoint is refused (check_resumable): its model flags are not read.
    full_argv = (_stored_model_flags(argv) if early.resume is None else []) + list(argv)
    if early.resume is not None:
        try:
            filename = checkpoints.find_checkpoint(early.resume, "latest", flag="--resume")
            checkpoint = checkpoints.load_file(filename, "--resume")
        except checkpoints.CheckpointError as error:
            raise checkpoints.CheckpointError(f"{error}{_intact_alternative(early.resume)}") from None
        stored = _with_resolved_roots(checkpoint.get("args"), checkpoint.get("roots"), argv)
        if stored:
            full_argv = commandline.argv_from_arguments(stored, argv) + list(argv)
        resumption = Resumption(filename, checkpoint, {}, os.path.dirname(os.path.abspath(filename)))
    args, defaults = commandline.parse_arguments(full_argv)
    if args.save is None:
        args.save = early.save
    check_arguments(args)
    check_save_outside_datasets(args)
    if resumption is not None:
        if _continues_run(early):  # first: a finished run's refusal would hide what resuming there discards
            check_resume_keeps_records(resumption, early.resume)
        check_resumable(args, resumption, argv, early.resume)
        if stored:
            resumption.overrides = _resume_overrides(args, stored, argv, early.resume)
    return args, defaults, resumption


def _with_resolved_roots(stored: Optional[Dict[str, Any]], roots: Optional[Dict[str, str]],
                         argv: List[str]) -> Optional[Dict[str, Any]]:
    """The resumed run's arguments, with the folders it resolved where the paths as typed do not resolve from
    here (a relative --training_dataset_root and a resume from another working directory)."""
    if not stored or not roots:
        return stored
    stored, given = dict(stored), set(commandline.given_flags(argv))
    for name, resolved in roots.items():
        typed = stored.get(name)
        if name in given or not isinstance(typed, str) or os.path.exists(typed) or not os.path.exists(resolved):
            continue
        logging.info("--%s=%s does not resolve from %s: using the folder the run resolved, %s", name, typed,
                     os.getcwd(), resolved)
        stored[name] = resolved
    return stored


def _intact_alternative(resume: str) -> str:
    """For an unreadable --resume checkpoint: the run folder's newest readable best checkpoint, and how to
    resume from it (into a new folder when the folder's checkpoints reach a later epoch)."""
    folder = resume if os.path.isdir(resume) else os.path.dirname(resume)
    intact = []
    for filename in sorted(glob.glob(os.path.join(glob.escape(folder), "checkpoint_best_*.ckpt"))):
        try:
            intact.append((int(checkpoints.load_file(filename)["epoch"]), filename))
        except (checkpoints.CheckpointError, KeyError, TypeError, ValueError):
            continue
    if not intact:
        return ""
    epoch, filename = max(intact, key=lambda pair: pair[0])
    later = checkpoints.last_epoch(folder) > epoch
    return (f"; {os.path.basename(filename)} (epoch {epoch}) is intact: resume from it with --resume={filename}"
            + (" --save=<new folder>" if later else ""))


def check_resume_keeps_records(resumption: Resumption, resume: str) -> None:
    """A checkpoint of an earlier epoch than the run folder's latest continues into another folder: resumed
    in its own, the run would rewrite the later epochs' checkpoints and records."""
    epoch = int(resumption.checkpoint.get("epoch", 0))
    last = checkpoints.last_epoch(resumption.folder)
    if os.path.basename(resumption.filename) != checkpoints.LATEST and epoch < last:
        raise ValueError(f"--resume={resume} holds epoch {epoch}, and {resumption.folder} has checkpoints up to "
                         f"epoch {last}, which resuming there would discard: resume into a new folder with "
                         f"--save=<new folder>")


def check_arguments(args: argparse.Namespace) -> None:
    """Values the parser cannot judge alone: epochs, batch sizes, sequence lengths."""
    if args.batch_size < 1:
        raise ValueError(f"--batch_size={args.batch_size}: expected a positive number of examples per step")
    if args.training_dataset is not None and not 1 <= args.start_epoch <= args.total_epochs:
        raise ValueError(f"--total_epochs={args.total_epochs} with --start_epoch={args.start_epoch}: nothing to "
                         f"train; expected 1 <= start_epoch <= total_epochs")
    train_n = getattr(args, "training_dataset_sequence_length", None)
    valid_n = getattr(args, "validation_dataset_sequence_length", None)
    if train_n is not None and valid_n is not None and train_n != valid_n:
        raise ValueError(f"--training_dataset_sequence_length={train_n} and "
                         f"--validation_dataset_sequence_length={valid_n} must be equal")


def dataset_roots(args: argparse.Namespace) -> List[Tuple[str, str]]:
    """(flag, folder) of every dataset root on the command line: --<training|validation>_dataset_*root."""
    roots = []
    for prefix in ("training_dataset", "validation_dataset"):
        if getattr(args, prefix, None) is None:
            continue
        for name, value in sorted(vars(args).items()):
            if name.startswith(f"{prefix}_") and name.endswith("root") and isinstance(value, str) and value:
                roots.append((name, value))
    return roots


def check_save_outside_datasets(args: argparse.Namespace) -> None:
    """Refuse a --save inside a dataset's tree: the run's folder would become part of the dataset (a new
    sequence without frames that every later run trips on), as the frame cache's folder is refused."""
    save = os.path.realpath(os.path.expanduser(args.save))
    for flag, root in dataset_roots(args):
        tree = os.path.realpath(os.path.expanduser(root))
        if save == tree or save.startswith(tree.rstrip(os.sep) + os.sep):
            raise run_folder.RunFolderError(
                f"--save={args.save} lies inside the dataset tree of --{flag}={root}: a run folder there becomes "
                f"part of the dataset; choose a --save outside it")


def check_resumable(args: argparse.Namespace, resumption: Resumption, argv: List[str], resume: str) -> None:
    """What refuses --resume before anything is built or logged: a run without training, a finished run,
    and --checkpoint (a resumed run continues with its own weights)."""
    given = set(commandline.given_flags(argv))
    if "checkpoint" in given and str(args.checkpoint).strip().lower() != "none":
        raise ValueError(f"--resume={resume} with --checkpoint={args.checkpoint}: a resumed run continues with its "
                         f"own weights; start a new run with --checkpoint={args.checkpoint} (and another --save), "
                         f"or resume without --checkpoint")
    if args.training_dataset is None:
        raise ValueError("--resume continues a training run: the run has no --training_dataset")
    try:
        epoch = int(resumption.checkpoint.get("epoch"))
    except (TypeError, ValueError):
        return  # restore_run names the checkpoint that holds no epoch
    if epoch >= args.total_epochs:
        raise ValueError(f"--resume={resumption.folder}: the run finished its {epoch} epochs; pass "
                         f"--total_epochs=<more than {epoch}> to extend it")


def _resume_overrides(args: argparse.Namespace, stored: Dict[str, Any], argv: List[str],
                      resume: str) -> Dict[str, Tuple[Any, Any]]:
    """The flags the command line changes against the resumed run; refuses those a resumed run must keep."""
    given = set(commandline.given_flags(argv))
    for name, value in stored.items():  # what the stored arguments should have restored
        restorable = name not in given and name not in commandline.RUN_SPECIFIC_FLAGS and hasattr(args, name)
        if restorable and not name.startswith("checkpoint") and getattr(args, name) != value:
            raise ValueError(f"--resume={resume}: cannot restore the run's --{name}={value!r} "
                             f"(read back as {getattr(args, name)!r}); give it on the command line")
    overrides = {}
    for name in dict.fromkeys(commandline.given_flags(argv)):
        if name in commandline.RUN_SPECIFIC_FLAGS or not hasattr(args, name):
            continue
        old, new = stored.get(name), getattr(args, name)
        if old == new:
            continue
        if _fixed_on_resume(name):
            raise ValueError(f"--resume={resume}: --{name}={commandline.format_flag_value(new)} differs from the "
                             f"run's {commandline.format_flag_value(old)}, which a resumed run keeps; start a new "
                             f"run with --checkpoint={resume} to begin from its weights")
        overrides[name] = (old, new)
    return overrides


def _apply_optimizer_overrides(optimizer: Optional[torch.optim.Optimizer], lr_scheduler: Any,
                               overrides: Dict[str, Tuple[Any, Any]]) -> None:
    """Optimizer settings changed on resume replace the restored ones in every parameter group."""
    for name, (old, new) in overrides.items():
        if optimizer is None or not name.startswith("optimizer_"):
            continue
        setting = name[len("optimizer_"):]
        if setting == "lr" and old:
            factor = float(new) / float(old)  # keeps the ratios of extra groups and the decay so far
            for group in optimizer.param_groups:
                group["lr"] *= factor
                if "initial_lr" in group:
                    group["initial_lr"] *= factor
            if hasattr(lr_scheduler, "base_lrs"):
                lr_scheduler.base_lrs = [lr * factor for lr in lr_scheduler.base_lrs]
                lr_scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
            logging.info("override: --optimizer_lr=%g instead of the run's %g: every group's learning rate x%g "
                         "(now %s)", new, old, factor,
                         runtime.format_learning_rate(runtime.current_learning_rates(optimizer)))
        elif setting in optimizer.param_groups[0]:
            for group in optimizer.param_groups:
                group[setting] = tuple(new) if isinstance(group[setting], tuple) else new
            logging.info("override: --%s=%s instead of the run's %s, in every parameter group", name, new, old)


# ------------------------------------------------------------------------------------- 2. building
def _make_loader(args: argparse.Namespace, prefix: str, train: bool, device: torch.device
                 ) -> Optional[runtime.Loader]:
    if getattr(args, prefix) is None:
        return None
    # flag_prefix: the role main.py gives the dataset, which its errors name (the class cannot know it)
    dataset = commandline.instance_from_args(args, prefix, args=args, flag_prefix=f"--{prefix}")
    batch_size = args.batch_size
    if not train and args.validation_batch_size > 0:
        batch_size = args.validation_batch_size
    if len(dataset) == 0:
        raise ValueError(f"--{prefix}={getattr(args, prefix)} has no examples")
    if batch_size > len(dataset):
        raise ValueError(f"--{'batch_size' if train else 'validation_batch_size'}={batch_size} is larger than "
                         f"--{prefix}={getattr(args, prefix)} with {len(dataset)} examples")
    requested = getattr(args, f"{prefix}_num_workers", 0)
    # More workers than CPUs only compete for them (and PyTorch warns); torchrun's processes share the CPUs.
    workers, capped = system.loader_workers(requested, distributed.local_world_size())
    shuffle = constants.TRAINING_DATALOADER_SHUFFLE if train else constants.VALIDATION_DATALOADER_SHUFFLE
    drop_last = constants.TRAINING_DATALOADER_DROP_LAST if train else constants.VALIDATION_DATALOADER_DROP_LAST
    sampler = None
    if distributed.is_distributed():
        # Training shards are shuffled per epoch and equally long (DDP steps in lockstep); validation
        # shards are disjoint and unpadded, so the reduced means cover every example exactly once.
        sampler = (DistributedSampler(dataset, shuffle=shuffle, drop_last=drop_last) if train
                   else distributed.ShardSampler(len(dataset)))
    loader = runtime.make_data_loader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                      num_workers=workers, device=device, sampler=sampler)
    collate = hasattr(args, f"{prefix}_num_samples_per_example")
    logging.info("%s: %s, %d examples, %d steps per epoch, %d workers%s", prefix, type(dataset).__name__,
                 len(dataset), len(loader), workers, capped)
    return runtime.Loader(loader, device, collate, channels_last=args.channels_last)


def _lr_scheduler_value(scheduler: str, key: str, value: Any) -> Any:
    category = commandline.CATEGORY_BY_NAME["lr_scheduler"]
    converter = category.forced.get(key) or category.without_default.get(key)
    return converter(str(value)) if converter is not None and isinstance(value, str) else value


def evaluation_only_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments a run without --training_dataset runs with: one epoch, no optimizer, no LR scheduler."""
    return argparse.Namespace(**{**vars(args), "start_epoch": 1, "total_epochs": 1, "optimizer": None,
                                 "lr_scheduler": None})


def choose_device(args: argparse.Namespace, cuda_requested: bool) -> Tuple[torch.device, str]:
    """The device the run uses and its label in messages."""
    if distributed.is_distributed():
        device = torch.device("cuda", torch.cuda.current_device()) if args.cuda else torch.device("cpu")
        label = f"{'gpu' if args.cuda else 'cpu'}:rank{distributed.rank()}/{distributed.world_size()}"
    elif args.cuda:
        device, label = torch.device("cuda:0"), f"gpu:{os.environ.get('CUDA_VISIBLE_DEVICES', '0')}"
        logging.info("CUDA %s, cuDNN %s", torch.version.cuda, torch.backends.cudnn.version())
    else:
        device, label = torch.device("cpu"), "cpu"
        if cuda_requested:
            logging.info("CUDA is not available: running on the CPU")
    logging.info("hostname: %s, python %s, torch %s", socket.gethostname(), platform.python_version(),
                 torch.__version__)
    return device, label


CHECKPOINT_PARTIAL_LOADING = ("checkpoint_include_params", "checkpoint_exclude_params", "checkpoint_translations",
                              "checkpoint_fuzzy_translation_keys")


CheckpointFile = Tuple[str, Dict[str, Any]]  # --checkpoint's file and what it holds


def read_checkpoint(args: argparse.Namespace) -> Optional[CheckpointFile]:
    """--checkpoint's file (of a run folder: per --checkpoint_mode) and content, read once; None without it."""
    if args.checkpoint is None:
        return None
    filename = checkpoints.find_checkpoint(args.checkpoint, args.checkpoint_mode, getattr(args, "validation_keys", []))
    return filename, checkpoints.load_file(filename)


def model_of_checkpoint(args: argparse.Namespace, source: Optional[CheckpointFile],
                        sequence_length: Optional[int]) -> Optional[torch.nn.Module]:
    """With --checkpoint of a run of this --model and these --model_* flags, loaded whole: the model rebuilt from
    the checkpoint (commandline.build_model_from_checkpoint, as deblur.py does), so that no file the run named
    (FlowDBN's prewarping network) is needed here. None otherwise: the flags build it, the weights follow."""
    if source is None or any(getattr(args, flag) != commandline.checkpoint_flag_default(flag)
                             for flag in CHECKPOINT_PARTIAL_LOADING):
        return None
    filename, checkpoint = source
    stored = checkpoints.stored_arguments(checkpoint)
    model_flags = {key: value for key, value in vars(args).items()
                   if key.startswith("model_") and not key.startswith("model_pretrained_")}
    if stored.get("model") != args.model or any(stored.get(key) != value for key, value in model_flags.items()):
        return None
    model, _, _ = commandline.build_model_from_checkpoint(checkpoint, filename, args.model, sequence_length)
    logging.info("--checkpoint: %s rebuilt from %s (its own weights, prewarping network included)", args.model,
                 filename)
    return model


def build_model_and_loss(args: argparse.Namespace, validation: bool,
                         source: Optional[CheckpointFile] = None) -> runtime.ModelAndLoss:
    """The model and loss chosen on the command line (the model rebuilt from `source` where it can be)."""
    if args.loss is None:
        raise ValueError("no loss given: pass --loss (e.g. --loss=DBNLoss)")
    # The datasets' sequence length is the one fact of another category a model may need (keyword-only).
    sequence_length = commandline.dataset_sequence_length(args)
    facts = {"sequence_length": sequence_length} if sequence_length is not None else {}
    model = (model_of_checkpoint(args, source, sequence_length)
             or commandline.instance_from_args(args, "model", args=args, **facts))
    loss = commandline.instance_from_args(args, "loss", args=args)
    model_and_loss = runtime.ModelAndLoss(model, loss, precision.AMP_DTYPES[args.amp])
    trainable = sum(p.numel() for p in model_and_loss.parameters() if p.requires_grad)
    logging.info("batch_size: %d, loss: %s, model: %s, trainable parameters: %d", args.batch_size, args.loss,
                 args.model, trainable)
    logging.info("training_key: %s", args.training_key)
    if validation:
        logging.info("validation_keys: %s, validation_modes: %s", args.validation_keys, args.validation_modes)
    if args.logging_model_graph:
        with block("Model Graph"):
            for line in str(model).splitlines():
                logging.info(line)
    if args.logging_loss_graph:
        with block("Loss Graph"):
            for line in str(loss).splitlines():
                logging.info(line)
    return model_and_loss


def load_checkpoint_weights(args: argparse.Namespace, model_and_loss: runtime.ModelAndLoss,
                            source: CheckpointFile) -> None:
    """--checkpoint: initialise the model from the checkpoint `read_checkpoint` read."""
    filename, checkpoint = source
    restored, untouched = checkpoints.load_state_dict(
        model_and_loss, checkpoint["state_dict"], filename, args.checkpoint_include_params,
        args.checkpoint_exclude_params, args.checkpoint_translations, args.checkpoint_fuzzy_translation_keys)
    epoch = checkpoint.get("epoch")
    model_and_loss.source_checkpoint = (os.path.abspath(filename), int(epoch) if epoch is not None else None)
    logging.info("restored %d tensors from %s, %s (%d left as initialised)", len(restored), filename,
                 f"the weights after epoch {epoch}" if epoch is not None else "which records no epoch",
                 len(untouched))
    logger.values({k: v for k, v in checkpoint.items() if isinstance(v, (int, float, str))})


def build_optimizer(args: argparse.Namespace, model_and_loss: runtime.ModelAndLoss,
                    training: bool) -> Optional[torch.optim.Optimizer]:
    """The optimizer over the trainable parameters, with --optimizer_group groups (None when evaluating)."""
    named = list(model_and_loss.named_parameters())
    if args.optimizer is None or not any(p.requires_grad for _, p in named):
        if training:
            raise ValueError("training needs an optimizer: pass --optimizer (e.g. --optimizer=Adam)")
        return None
    groups = parameter_groups(named, args.optimizer_group)
    optimizer = commandline.instance_from_args(args, "optimizer", params=groups)
    if args.loshchilov_weight_decay > 0 and getattr(args, "optimizer_weight_decay", 0) > 0:
        logging.warning("both --loshchilov_weight_decay and --optimizer_weight_decay are set")
    for index, group in enumerate(optimizer.param_groups):
        logging.info("group %d: %d tensors, lr %g", index, len(group["params"]), group["lr"])
    return optimizer


def build_lr_scheduler(args: argparse.Namespace, optimizer: Optional[torch.optim.Optimizer], validation: bool,
                       resuming: bool) -> Any:
    """The LR scheduler, stepped to --start_epoch for a new run that does not start at epoch 1."""
    if args.lr_scheduler is None:
        return None
    if args.lr_scheduler == "ReduceLROnPlateau" and not validation:
        raise ValueError("--lr_scheduler=ReduceLROnPlateau steps on a validation loss: pass --validation_dataset")
    lr_scheduler = commandline.instance_from_args(args, "lr_scheduler", optimizer=optimizer)
    if not resuming:
        for _ in range(args.start_epoch - 1):  # LR of a later start epoch as if trained from epoch 1
            lr_scheduler.step()
    logging.info("%s", args.lr_scheduler)
    return lr_scheduler


def restore_run(run_state: checkpoints.RunState, resumption: Resumption, args: argparse.Namespace) -> int:
    """--resume: restore every part of the run state and apply the flags the command line changes; returns the
    epoch the run continues with."""
    fresh = run_state.restore(resumption.checkpoint, resumption.filename)
    epoch = int(resumption.checkpoint["epoch"])
    logging.info("resuming %s after epoch %d", resumption.filename, epoch)
    trained_by = resumption.checkpoint.get("world_size")
    if trained_by is not None and int(trained_by) != distributed.world_size() and distributed.is_main_process():
        before = int(trained_by) * int((resumption.checkpoint.get("args") or {}).get("batch_size", args.batch_size))
        logging.warning("--resume: the run trained with %d process%s (a total batch of %d per step), this resume "
                        "runs %d (a total batch of %d): steps per epoch and gradient noise change, the learning "
                        "rate stays as it was", int(trained_by), "es" if int(trained_by) != 1 else "", before,
                        distributed.world_size(), distributed.world_size() * args.batch_size)
    if "args" not in resumption.checkpoint:
        logging.warning("%s holds no run arguments (a checkpoint of the original framework): the command line "
                        "alone describes the run", resumption.filename)
    note = frame_metrics.resumed_best_values_note(resumption.checkpoint)
    if note:
        logging.info("--resume: %s", note)
    if fresh:
        logging.warning("%s holds no %s: %s start fresh", resumption.filename, ", ".join(fresh),
                        "they" if len(fresh) > 1 else "it")
    _apply_optimizer_overrides(run_state.optimizer, run_state.lr_scheduler, resumption.overrides)
    for name, (old, new) in resumption.overrides.items():
        if not name.startswith("optimizer_"):
            logging.info("override: --%s=%s instead of the run's %s", name, commandline.format_flag_value(new),
                         commandline.format_flag_value(old))
    return epoch + 1  # check_resumable refused a finished run


def build_data(args: argparse.Namespace, device: torch.device
               ) -> Tuple[Optional[runtime.Loader], Optional[runtime.Loader], Dict[str, Any]]:
    """Training and validation loaders and the runtime augmentations."""
    with block("Datasets"):
        train_loader = _make_loader(args, "training_dataset", True, device)
        validation_loader = _make_loader(args, "validation_dataset", False, device)
        if train_loader is None and validation_loader is None:
            raise ValueError("no dataset given: pass --training_dataset and/or --validation_dataset")
    with block("Runtime Augmentations"):
        augmentations = {}
        for name in ("training_augmentation", "validation_augmentation"):
            if getattr(args, name) is not None:
                augmentations[name] = commandline.instance_from_args(args, name, args=args).to(device)
                logging.info("%s: %s", name, getattr(args, name))
    return train_loader, validation_loader, augmentations


def build_model(args: argparse.Namespace, device: torch.device, validation: bool,
                evaluation_only: bool) -> runtime.ModelAndLoss:
    """Model and loss with the weights of --checkpoint, folded, on the device, compiled as asked."""
    source = read_checkpoint(args)
    with block("Model and Loss"):
        model_and_loss = build_model_and_loss(args, validation, source)
    if source is not None:
        with block("Checkpoint"):
            load_checkpoint_weights(args, model_and_loss, source)
    if args.fold_batchnorm:
        if not evaluation_only:
            raise ValueError("--fold_batchnorm is for evaluation-only runs (no --training_dataset): a folded "
                             "network has no BatchNorm left to train")
        fold_batchnorm(model_and_loss.model.eval())
    model_and_loss.to(device)
    if args.channels_last:
        model_and_loss.to(memory_format=torch.channels_last)
    if args.compile:
        model_and_loss.model.compile()  # in place: state_dict keys stay those of the original
    return model_and_loss


def build_run_state(args: argparse.Namespace, device: torch.device, model_and_loss: runtime.ModelAndLoss,
                    validation: bool, evaluation_only: bool, resumption: Optional[Resumption]
                    ) -> Tuple[checkpoints.RunState, Optional[ParameterScheduler], int]:
    """Optimizer, schedulers and grad scaler around the model, restored from --resume; and the first epoch."""
    with block("Optimizer"):
        optimizer = build_optimizer(args, model_and_loss, training=not evaluation_only)
    with block("Learning Rate Scheduler"):
        lr_scheduler = build_lr_scheduler(args, optimizer, validation, resumption is not None)
    param_scheduler = None
    if args.param_scheduler_group:
        with block("Parameter Scheduler"):
            param_scheduler = ParameterScheduler(list(model_and_loss.named_parameters()),
                                                 args.param_scheduler_group, _lr_scheduler_value)
    grad_scaler = torch.amp.GradScaler(device.type) if args.amp == "fp16" and optimizer is not None else None
    keys = getattr(args, "validation_keys", []) if validation else []
    modes = getattr(args, "validation_modes", []) if validation else []
    run_state = checkpoints.RunState(model_and_loss, optimizer, lr_scheduler, grad_scaler, keys, modes)
    start_epoch = args.start_epoch
    if resumption is not None:
        with block("Resume"):
            start_epoch = restore_run(run_state, resumption, args)
    run_state.arguments = runtime.stored_arguments(args)  # the parsed flags, no runtime values
    run_state.roots = checkpoints.resolved_roots(run_state.arguments)
    run_state.world_size = distributed.world_size()
    return run_state, param_scheduler, start_epoch


def distributed_runner(args: argparse.Namespace, device: torch.device, model_and_loss: runtime.ModelAndLoss,
                       training: bool) -> torch.nn.Module:
    """The module the loop runs: DistributedDataParallel under torchrun, else the model and loss themselves."""
    if args.sync_batchnorm and not (distributed.is_distributed() and device.type == "cuda"):
        raise ValueError("--sync_batchnorm needs a torchrun launch on GPUs (torch's SyncBatchNorm runs on CUDA only)")
    if not (distributed.is_distributed() and training):
        return model_and_loss
    if args.sync_batchnorm:
        model_and_loss = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model_and_loss)
    return torch.nn.parallel.DistributedDataParallel(
        model_and_loss, device_ids=[device.index] if device.type == "cuda" else None)


def trainer_config(args: argparse.Namespace, start_epoch: int, device_label: str, validation: bool
                   ) -> runtime.TrainerConfig:
    """The loop's fixed settings, taken from the run's arguments once."""
    return runtime.TrainerConfig(
        save=args.save, total_epochs=args.total_epochs, start_epoch=start_epoch, training_key=args.training_key,
        validation_keys=getattr(args, "validation_keys", []) if validation else (),
        validation_modes=getattr(args, "validation_modes", []) if validation else (),
        clip_grad=args.clip_grad, loshchilov_weight_decay=args.loshchilov_weight_decay, model=args.model,
        device_label=device_label, validation_metrics=getattr(args, "validation_metrics", None) or (),
        validation_metrics_crop_border=getattr(args, "validation_metrics_crop_border", 0),
        records=commandline.kwargs_from_args(args, "holistic_records"),
        arguments=runtime.stored_arguments(args))


@dataclasses.dataclass(frozen=True)
class RunServices:
    """What a run's hooks report to besides the run folder: the Telegram notifier, the non-default arguments
    its first message lists, and the process title's name."""

    notifier: Optional[telegram.TelegramNotifier]
    non_default: Dict[str, Any]
    process_name: str


def build_hooks(args: argparse.Namespace, config: runtime.TrainerConfig, device: torch.device,
                built: Dict[str, Any], evaluation_only: bool, services: RunServices) -> List[HookBase]:
    """The loop's hooks, in call order: the visualizer, the default ones, the parameter schedule.

    `built` holds what the visualizer may take: the model and loss, the optimizer, the schedulers and the loaders.
    """
    hooks: List[HookBase] = []
    with block("Runtime Visualizers"):
        if args.visualizer is not None:
            # Facts of other categories a visualizer may take (keyword-only, no flags): the run's first epoch
            # and seed, its folder, and the loss's flow scale.
            facts = {"start_epoch": config.start_epoch, "seed": args.seed, "run_folder": args.save}
            if hasattr(args, "loss_div_flow"):
                facts["div_flow"] = args.loss_div_flow
            hooks.append(commandline.instance_from_args(args, "visualizer", args=args, **built, **facts).to(device))
            logging.info("%s", args.visualizer)
    title = f"{args.prefix}:{args.model} on {config.device_label}"
    hooks += callbacks.default_hooks(config, built["run_state"], not evaluation_only, distributed.is_main_process(),
                                     services.notifier, title=title, settings=services.non_default,
                                     process_name=services.process_name)
    if built["param_scheduler"] is not None:
        hooks.append(callbacks.ParameterSchedulerStep(built["param_scheduler"]))
    return hooks


def build_run(args: argparse.Namespace, resumption: Optional[Resumption], cuda_requested: bool,
              services: RunServices) -> runtime.Trainer:
    """Everything the run needs, built and checked against each other; writes no file."""
    with block("Random Seeds"):
        seed_everything(args.seed)
        logging.info("seed: %s", args.seed)
    with block("Machine Statistics"):
        device, device_label = choose_device(args, cuda_requested)
    train_loader, validation_loader, augmentations = build_data(args, device)
    evaluation_only = train_loader is None  # start_and_run set its arguments (evaluation_only_arguments)
    validation = validation_loader is not None
    model_and_loss = build_model(args, device, validation, evaluation_only)
    run_state, param_scheduler, start_epoch = build_run_state(args, device, model_and_loss, validation,
                                                              evaluation_only, resumption)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = constants.CUDNN_BENCHMARK
    config = trainer_config(args, start_epoch, device_label, validation)
    built = {"model_and_loss": model_and_loss, "optimizer": run_state.optimizer, "param_scheduler": param_scheduler,
             "lr_scheduler": run_state.lr_scheduler, "train_loader": train_loader,
             "validation_loader": validation_loader, "run_state": run_state}
    hooks = build_hooks(args, config, device, built, evaluation_only, services)
    return runtime.Trainer(
        config, distributed_runner(args, device, model_and_loss, not evaluation_only), train_loader,
        validation_loader, run_state.optimizer, run_state.lr_scheduler, augmentations.get("training_augmentation"),
        augmentations.get("validation_augmentation"), hooks, grad_scaler=run_state.grad_scaler, run_state=run_state)


# ------------------------------------------------------------------------------------- 3. run folder
def lock_run_folder(folder: str, lock: Optional[run_folder.RunLock], continues_run: bool) -> run_folder.RunLock:
    """Lock the run folder (unless `lock` holds it already) and check it may take this run."""
    if lock is None:
        run_folder.check_writable(folder)
        lock = run_folder.RunLock(folder)
        stale = lock.acquire()
        if stale:
            logging.warning("%s", run_folder.describe_stale_holder(stale))
    if not continues_run:
        run_folder.check_new_run(folder)
    return lock


def open_run_folder(args: argparse.Namespace, parsed: argparse.Namespace) -> summary.RunSummary:
    """Write the parsed arguments, source code snapshot and logbook; returns the run's TensorBoard writer
    (the folder is locked).

    What a run killed in mid-write left behind is tidied first: its temporary files are removed, and a
    checkpoint summary (.json) that disagrees with its checkpoint is rewritten from it.
    """
    logger.attach_logbook(os.path.join(args.save, constants.LOGGING_LOGBOOK_FILENAME))
    for removed in files.remove_stale_temporaries(args.save):
        logging.info("removed %s, left by a run that was killed while writing it", removed)
    for repaired in checkpoints.repair_summaries(args.save):
        logging.info("rewrote %s to agree with its checkpoint (a run was killed between writing the two)", repaired)
    commandline.write_arguments(parsed, args.save)
    with block("Source Code"):
        logging.info("git hash: %s", system.git_hash())
        count = system.zip_source(os.path.join(args.save, constants.LOGGING_ZIPSOURCE_FILENAME), exclude=[args.save])
        logging.info("%d source files zipped into %s", count, constants.LOGGING_ZIPSOURCE_FILENAME)
    with block("Tensorboard"):
        return summary.RunSummary(os.path.join(args.save, "tb"))


def error_line(error: BaseException) -> str:
    """One line for a failure: its type and first line, or for a DataLoader worker's failure the worker's own."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if "Original Traceback (most recent call last)" in text:  # re-raised by the DataLoader from a worker
        return text.strip().splitlines()[-1]
    return f"{type(error).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"


@dataclasses.dataclass
class RunFolderState:
    """The run folder as this process holds it: its lock (main process only), whether the run has opened
    it (written its arguments and logbook there) and the run's TensorBoard writer in it."""

    lock: Optional[run_folder.RunLock] = None
    opened: bool = False
    tensorboard: Optional[summary.RunSummary] = None


def _continues_run(early: argparse.Namespace) -> bool:
    """Whether --save is the folder of the run that --resume continues."""
    if early.resume is None or not os.path.isdir(early.save):
        return False
    resumed = early.resume if os.path.isdir(early.resume) else os.path.dirname(early.resume)
    return os.path.abspath(early.save) == os.path.abspath(resumed)


def start_and_run(argv: List[str], early: argparse.Namespace, main_process: bool, folder: RunFolderState) -> None:
    """Steps 1 to 3 of the module docstring, then the epochs; only the main process touches the run folder."""
    continues_run = _continues_run(early)
    if main_process:
        run_folder.check_writable(early.save)
        if os.path.isdir(early.save):  # a second run on the folder stops here, before building anything
            folder.lock = lock_run_folder(early.save, None, continues_run)
    with block("Registering factories"):
        for category in commandline.CATEGORIES:
            if category.registry is not None:
                logging.info("%s: %d registered", category.name, len(category.registry))
    with block("Commandline Arguments"):
        parsed, defaults, resumption = resolve_arguments(argv)  # args.json holds these, as the original's
        non_default = commandline.non_default_arguments(parsed, defaults)
        args = parsed
        if args.training_dataset is None:  # the dump shows what an evaluation-only run uses, not stale epochs
            args = evaluation_only_arguments(parsed)
        log_arguments(args, non_default)
    if distributed.launched_by_torchrun():
        if args.distributed_timeout_minutes <= 0:
            raise ValueError(f"--distributed_timeout_minutes={args.distributed_timeout_minutes:g}: expected a "
                             f"positive number of minutes")
        distributed.init_from_environment(early.cuda and torch.cuda.is_available(), args.distributed_timeout_minutes)
    notifier = None
    if main_process:
        with block("Telegram"):
            notifier = telegram.load_notifier()
    process_name = system.random_fantasy_name() if args.proctitle == "__random__" else args.proctitle
    trainer = build_run(args, resumption, early.cuda, RunServices(notifier, non_default, process_name))
    if trainer.train_loader is not None:
        trainer.check_training_key()
        trainer.check_validation_keys()
    if main_process:
        folder.lock = lock_run_folder(args.save, folder.lock, continues_run)
        folder.tensorboard = open_run_folder(args, parsed)
        folder.opened = True
    callbacks.set_proctitle(process_name)
    # Module-level calls (summary.scalar, telegram.send_message, the shim's logging.telegram) reach this run's
    # writer and notifier.
    with summary.active(folder.tensorboard), telegram.active(notifier):
        trainer.run()
    if distributed.is_distributed():
        distributed.check_replicas_agree(runtime.unwrap(trainer.model_and_loss))


def resume_hint(save: str) -> str:
    """What a stopped run's folder holds and the command that continues it."""
    try:
        with open(os.path.join(save, checkpoints.LATEST[:-len(".ckpt")] + ".json"), encoding="utf-8") as handle:
            epoch = json.load(handle)["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no epoch finished, nothing to resume in {save}: run the same command again to start anew"
    launch = "torchrun <the same options> main.py" if distributed.launched_by_torchrun() else "python main.py"
    return (f"records and checkpoints up to epoch {epoch} are kept in {save}; continue with: "
            f"{launch} --resume={shlex.quote(os.path.abspath(save))}")


def _terminated(save: str, main_process: bool, folder: RunFolderState) -> int:
    """SIGTERM (a scheduler's stop): the step in progress is abandoned; one line says how to continue."""
    if not folder.opened:
        logger.discard_buffered_records()  # the run never started: its folder stays as it was
    if main_process:
        logging.error("terminated (SIGTERM): the step in progress is abandoned; %s", resume_hint(save))
    return termination.EXIT_CODE


def _stuck(save: str, main_process: bool) -> None:
    """SIGTERM came, and the run has not stopped after the watchdog's grace time: the process ends now."""
    if main_process:
        logging.error("terminated (SIGTERM): still not stopped after %g s (blocked in a collective whose peers "
                      "left, or in a write), exiting now; %s", termination.GRACE_SECONDS, resume_hint(save))


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the process exit code."""
    try:  # first: the file's flags count as typed, for --resume's checks as for the rest
        argv = commandline.expand_config(sys.argv[1:] if argv is None else argv)
    except commandline.ConfigError as error:
        print(f"main.py: error: {error}", file=sys.stderr)
        return 2
    if "-h" in argv or "--help" in argv:
        commandline.parse_arguments(argv)  # prints help and exits
    early = _early_arguments(argv)
    if early.save is None:
        commandline.parse_arguments(argv)  # a wrong flag comes first: argparse exits with its hint
        print("main.py: error: --save is required (the run folder for records and checkpoints)", file=sys.stderr)
        return 2
    main_process = int(os.environ.get("RANK", "0")) == 0
    logger.configure_logging(console_level=logging.INFO if main_process else logging.WARNING,
                             keep_for_logbook=main_process)
    # Plug-ins written against the original framework call logging.block/value/values/telegram (opt-in shim).
    logger.install_original_logging_helpers()
    logging.info("%s", allocator.keep_freed_memory())
    folder = RunFolderState()
    finished = False
    previous_handler = termination.install(on_stuck=lambda: _stuck(early.save, main_process))
    try:
        start_and_run(argv, early, main_process, folder)
        finished = True
    except SystemExit:
        raise
    except KeyboardInterrupt:
        logging.error("interrupted; records and checkpoints written so far are kept in %s", early.save)
        return 130
    except termination.Terminated:
        return _terminated(early.save, main_process, folder)
    except Exception as error:  # noqa: BLE001 -- every failure ends in one clear line (traceback in the logbook)
        if termination.received() is not None:  # e.g. a collective whose peer stopped on the same SIGTERM
            return _terminated(early.save, main_process, folder)
        if folder.opened:
            logging.log(logger.LOGBOOK, "".join(traceback.format_exception(error)))
        else:
            logger.discard_buffered_records()  # the run never started: its folder stays as it was
        logging.error(f"{colorama.Fore.RED}error:{colorama.Style.RESET_ALL} {error_line(error)}")
        return 1
    finally:
        if folder.tensorboard is not None:
            folder.tensorboard.close()
        distributed.shutdown(synchronize=finished)
        if folder.lock is not None:
            folder.lock.release(remove_if_created=not folder.opened)
        termination.uninstall(previous_handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
