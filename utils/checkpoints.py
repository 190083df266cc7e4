"""Checkpoints in the original framework's format, written atomically, plus the state to resume a run.

A checkpoint is a dict `{<loss keys>: float, "epoch": int, "state_dict": ModelAndLoss.state_dict()}`
(keys `model.<...>`), exactly as the original wrote it, so files load in both frameworks. This
project adds `optimizer`, `lr_scheduler`, `grad_scaler`, `rng`, `best`, `args`, `roots` and `world_size`
entries, which the original ignores.
"""
import fnmatch
import glob
import json
import logging
import os
import random
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from hooks import HookBase, hook_states, load_hook_states
from utils import files, jsonfile

LATEST = "checkpoint_latest_.ckpt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be found or does not fit the model."""


def best_filename(key: str) -> str:
    """File name of the best checkpoint for a validation key."""
    return f"checkpoint_best_{key}.ckpt"


def rng_state() -> Dict[str, Any]:
    """Python, numpy and torch RNG states as plain types and tensors (loadable with weights_only)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> Optional[str]:
    """Restore what `rng_state` returned; returns what of it did not fit this process's GPUs (else None).

    A checkpoint holds one CUDA state per GPU that was visible when it was written (8 on an 8-GPU node, even
    for a run on cuda:0 alone). GPU i gets state i as far as both exist, so a resume on the same device set is
    exact and one that sees fewer (or more) GPUs still starts.
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    saved = list(state.get("cuda", []))
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device, cuda_state in enumerate(saved[:visible]):
        torch.cuda.set_rng_state(cuda_state, device)
    if len(saved) > visible:
        return (f"{len(saved)} CUDA random states saved, {visible} GPU{'s' if visible != 1 else ''} visible: "
                f"restored {visible}, dropped those of GPUs {visible}..{len(saved) - 1} (not visible now)")
    if 0 < len(saved) < visible:
        return (f"{len(saved)} CUDA random states saved, {visible} GPUs visible: GPUs {len(saved)}..{visible - 1} "
                f"keep their seeded states (their random draws differ from an uninterrupted run's)")
    return None


def save(directory: str, stats: Dict[str, float], epoch: int, model_and_loss: torch.nn.Module,
         best_keys: Sequence[str] = (), extra: Optional[Dict[str, Any]] = None) -> List[str]:
    """Write checkpoint_latest_.ckpt/.json and copies of them as checkpoint_best_<key> for every key in best_keys.

    All files are written under temporary names first and renamed only when every one is complete, so a
    failure (a full disk, a kill) leaves the previous checkpoints as they were and no temporary file behind.
    """
    files.make_folder(directory)
    state_dict = {key: value.detach().cpu() for key, value in model_and_loss.state_dict().items()}
    checkpoint = {key: float(value) for key, value in stats.items()}
    checkpoint["epoch"] = int(epoch)
    checkpoint["state_dict"] = state_dict
    checkpoint.update(extra or {})
    summary = {key: value for key, value in checkpoint.items() if key in stats or key == "epoch"}
    summary_text = jsonfile.dumps(summary, sort_keys=False) + "\n"
    written = [os.path.join(directory, LATEST)] + [os.path.join(directory, best_filename(key)) for key in best_keys]
    destinations = [name for filename in written for name in (filename, _summary_filename(filename))]
    try:
        with files.staged(destinations) as temporaries:
            torch.save(checkpoint, temporaries[0])
            for index in range(0, len(temporaries), 2):
                if index > 0:
                    shutil.copyfile(temporaries[0], temporaries[index])
                with open(temporaries[index + 1], "w", encoding="utf-8") as handle:
                    handle.write(summary_text)
    except files.WriteError as error:
        raise files.WriteError(f"{error}; the previous checkpoints are intact") from error
    return written


def _summary_filename(filename: str) -> str:
    return filename[:-len(".ckpt")] + ".json"


def repair_summaries(directory: str) -> List[str]:
    """Rewrite every checkpoint's .json that disagrees with its checkpoint (a run killed between the two
    renames of `save`); returns the names of the rewritten files."""
    repaired = []
    for filename in sorted(glob.glob(os.path.join(glob.escape(directory), "checkpoint_*.ckpt"))):
        try:
            checkpoint = torch.load(filename, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 -- an unreadable checkpoint is reported where it is loaded
            continue
        if not isinstance(checkpoint, dict) or "epoch" not in checkpoint:
            continue
        keys = list(checkpoint)
        summary = {key: checkpoint[key] for key in keys[:keys.index("epoch") + 1]}  # loss values, then epoch
        text = jsonfile.dumps(summary, sort_keys=False) + "\n"
        summary_file = _summary_filename(filename)
        try:
            with open(summary_file, encoding="utf-8") as handle:
                if handle.read() == text:
                    continue
        except OSError:
            pass
        files.write_text(summary_file, text)
        repaired.append(os.path.basename(summary_file))
    return repaired


def last_epoch(directory: str) -> int:
    """The latest epoch that a checkpoint summary (.json) in `directory` names (0 if none)."""
    epochs = [0]
    for filename in glob.glob(os.path.join(glob.escape(directory), "checkpoint_*.json")):
        try:
            with open(filename, encoding="utf-8") as handle:
                epochs.append(int(json.load(handle)["epoch"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(epochs)


def find_checkpoint(path: str, mode: str = "latest", keys: Sequence[str] = (), flag: str = "--checkpoint") -> str:
    """The checkpoint file for `path`: the file itself, or a run folder's latest/best checkpoint."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise CheckpointError(f"{flag}: no such file or directory: {path}")
    if mode == "latest":
        filename = os.path.join(path, LATEST)
        if not os.path.isfile(filename):
            hint = "; the run ended before its first checkpoint: start it anew there" if flag == "--resume" else ""
            raise CheckpointError(f"{flag}: {path} holds no {LATEST}{hint}")
        return filename
    candidates = [os.path.join(path, best_filename(key)) for key in keys]
    candidates = [c for c in candidates if os.path.isfile(c)] or sorted(
        glob.glob(os.path.join(glob.escape(path), "checkpoint_best_*.ckpt")))
    if len(candidates) != 1 and not (candidates and keys):
        found = ", ".join(os.path.basename(c) for c in candidates) or "none"
        raise CheckpointError(f"{flag}_mode=best: expected one checkpoint_best_<key>.ckpt in {path}, "
                              f"found {found}; give --validation_keys or the file itself")
    return candidates[0]


def load_file(filename: str, flag: str = "--checkpoint") -> Dict[str, Any]:
    """Load a checkpoint dict safely (weights_only) and check it has a state_dict; errors name `flag`."""
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{flag}: checkpoint file '{filename}' does not exist")
    try:
        checkpoint = torch.load(filename, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- any unpickling failure means the file is unusable
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if "Weights only load failed" in str(error):
            reason = "it holds Python objects other than tensors and plain values (refused for safety)"
        raise CheckpointError(f"{flag}: cannot read checkpoint '{filename}': {type(error).__name__}: "
                              f"{reason}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{flag}: '{filename}' is not a checkpoint of this framework "
                              f"(expected a dict with a 'state_dict' entry)")
    return checkpoint


# Where a run's stored arguments give its sequence length N (the validation dataset's first).
SEQUENCE_FLAGS = ("validation_dataset_sequence_length", "training_dataset_sequence_length")


def stored_arguments(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The command-line arguments a checkpoint of this project stores (empty for the original's)."""
    stored = checkpoint.get("args")
    return stored if isinstance(stored, dict) else {}


def stored_sequence_length(stored: Dict[str, Any]) -> Optional[int]:
    """N from a run's stored dataset flags (the validation dataset's first), None if the run set none."""
    return next((int(stored[flag]) for flag in SEQUENCE_FLAGS if stored.get(flag)), None)


def translate_keys(keys: Sequence[str], module_keys: Sequence[str], translations: Dict[str, str],
                   fuzzy_keys: Sequence[str]) -> Dict[str, str]:
    """Map checkpoint keys to module keys by fuzzy fragments, then substring translations (spec §2.7)."""
    translations = dict(translations)
    for fragment in fuzzy_keys:
        for key in keys:
            for module_key in module_keys:
                if fragment in key and fragment in module_key:
                    source = key.replace(fragment, "")
                    translations.setdefault(source, module_key.replace(fragment, ""))
    mapping = {}
    for key in keys:
        translated = key
        for old, new in translations.items():
            translated = translated.replace(old, new)
        mapping[key] = translated
    return mapping


def _describe(keys: Sequence[str], limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def load_state_dict(module: torch.nn.Module, state_dict: Dict[str, torch.Tensor], source: str,
                    include: Sequence[str] = ("*",), exclude: Sequence[str] = (),
                    translations: Optional[Dict[str, str]] = None, fuzzy_keys: Sequence[str] = ()
                    ) -> Tuple[List[str], List[str]]:
    """Copy `state_dict` into `module`; strict (every key on both sides) iff include is ['*'] and no exclude.

    Returns (restored keys, module keys left as they were).
    """
    module_state = module.state_dict()
    mapping = translate_keys(list(state_dict), list(module_state), translations or {}, fuzzy_keys)
    selected = {new: state_dict[old] for old, new in mapping.items()
                if any(fnmatch.fnmatch(new, p) for p in include) and not any(fnmatch.fnmatch(new, p) for p in exclude)}
    strict = list(include) == ["*"] and not list(exclude)
    unexpected = [key for key in selected if key not in module_state]
    missing = [key for key in module_state if key not in selected]
    if strict and (unexpected or missing):
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe(unexpected)}")
        raise CheckpointError(f"checkpoint {source} does not fit the model ({'; '.join(parts)})")
    for key, tensor in selected.items():
        if key in module_state and tuple(module_state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"checkpoint {source}: '{key}' has shape {tuple(tensor.shape)}, "
                                  f"the model expects {tuple(module_state[key].shape)}")
    restored = {key: tensor for key, tensor in selected.items() if key in module_state}
    module.load_state_dict({**module_state, **restored}, strict=True)
    return sorted(restored), sorted(missing)


ROOT_FLAG_SUFFIXES = ("_root", "_cache_dir")


def resolved_roots(arguments: Dict[str, Any]) -> Dict[str, str]:
    """Dataset folders (`*_root`, `*_cache_dir`) as absolute paths: a resume from another working directory
    finds them when the paths as typed were relative."""
    return {name: os.path.abspath(os.path.expanduser(value)) for name, value in arguments.items()
            if name.endswith(ROOT_FLAG_SUFFIXES) and isinstance(value, str) and value}


class RunState:
    """The one owner of what a checkpoint saves and `--resume` restores.

    Model (with its loss), optimizer, LR scheduler, grad scaler, RNG states, the best validation values
    and the run's arguments are saved together by `save` and restored together by `restore`, in the
    spirit of fvcore's Checkpointer and its checkpointables.
    """

    def __init__(self, model_and_loss: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                 lr_scheduler: Optional[Any] = None, grad_scaler: Optional[Any] = None,
                 validation_keys: Sequence[str] = (), validation_modes: Sequence[str] = (),
                 arguments: Optional[Dict[str, Any]] = None) -> None:
        self.model_and_loss = model_and_loss
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.grad_scaler = grad_scaler
        self.validation_keys = list(validation_keys)
        self.validation_modes = list(validation_modes)
        self.best_values = [float("inf") if mode == "min" else -float("inf") for mode in self.validation_modes]
        self.arguments = dict(arguments or {})
        self.roots: Dict[str, str] = {}  # the folder flags of `arguments` as absolute paths (see `resolved_roots`)
        self.world_size = 1  # processes that train together (torchrun's WORLD_SIZE)
        self.hooks: List[HookBase] = []  # the loop's hooks (see `attach_hooks`); only stateful ones are saved
        self.hook_states: Optional[Dict[str, Dict[str, Any]]] = None  # restored, waiting for `attach_hooks`

    def extra(self) -> Dict[str, Any]:
        """What, beyond the original's checkpoint content, a resumed run needs."""
        state: Dict[str, Any] = {"rng": rng_state(), "best": {"values": list(self.best_values),
                                                              "keys": list(self.validation_keys)},
                                 "args": dict(self.arguments), "world_size": int(self.world_size)}
        if self.roots:
            state["roots"] = dict(self.roots)
        states = hook_states(self.hooks)
        if states:  # a new key only when a hook has state: checkpoints stay as they were otherwise
            state["hooks"] = states
        for name in ("optimizer", "lr_scheduler", "grad_scaler"):
            if getattr(self, name) is not None:
                state[name] = getattr(self, name).state_dict()
        return state

    def save(self, directory: str, stats: Dict[str, float], epoch: int, best_keys: Sequence[str] = ()) -> List[str]:
        """Write the latest (and best) checkpoints; see `save`."""
        return save(directory, stats, epoch, self.model_and_loss, best_keys, extra=self.extra())

    def restore(self, checkpoint: Dict[str, Any], filename: str) -> List[str]:
        """Restore every part from a checkpoint loaded by `load_file`; returns the parts that start fresh.

        Raises CheckpointError, before changing anything, when the optimizer state was saved by another
        optimizer or for other parameter groups.
        """
        if self.optimizer is not None and "optimizer" in checkpoint:
            _check_optimizer_state(self.optimizer, checkpoint["optimizer"], filename)
        load_state_dict(self.model_and_loss, checkpoint["state_dict"], filename)
        fresh = []
        for name in ("optimizer", "lr_scheduler", "grad_scaler"):
            part = getattr(self, name)
            if part is None:
                continue
            if name in checkpoint:
                part.load_state_dict(checkpoint[name])
            else:
                fresh.append(name.replace("_", " "))
        best = checkpoint.get("best")
        if best is not None and best.get("keys") == self.validation_keys:
            self.best_values = [float(value) for value in best["values"]]
        elif self.validation_keys:
            fresh.append("best validation values")
        if "rng" in checkpoint:
            mismatch = set_rng_state(checkpoint["rng"])
            if mismatch is not None:
                logging.warning("%s: %s", filename, mismatch)
        else:
            fresh.append("random number generators")
        self.hook_states = dict(checkpoint.get("hooks", {}))
        return fresh

    def attach_hooks(self, hooks: List[HookBase]) -> List[str]:
        """Save these hooks' state from now on, restoring what `restore` read; returns the stateful hooks that
        start fresh (none unless a checkpoint was restored)."""
        self.hooks = list(hooks)
        if self.hook_states is None:
            return []
        fresh = load_hook_states(self.hooks, self.hook_states)
        self.hook_states = None
        return fresh


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: Dict[str, Any], filename: str) -> None:
    saved_groups = state.get("param_groups", [])
    if len(saved_groups) != len(optimizer.param_groups) or any(
            len(saved["params"]) != len(group["params"]) for saved, group in zip(saved_groups, optimizer.param_groups)):
        raise CheckpointError(f"--resume: the optimizer state in {filename} has other parameter groups than "
                              f"this run's (--optimizer_group differs)")
    # Settings this optimizer does not have mean another optimizer saved the state (a torch release may
    # add settings, which load_state_dict fills in, so missing ones alone prove nothing).
    foreign = set(saved_groups[0]) - set(optimizer.param_groups[0]) - {"initial_lr"} if saved_groups else set()
    if foreign:
        raise CheckpointError(f"--resume: the optimizer state in {filename} was saved by another optimizer "
                              f"(settings {', '.join(sorted(foreign))} are not {type(optimizer).__name__}'s)")
