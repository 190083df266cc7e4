"""Checkpoints in the original framework's format, written atomically, plus the state to resume a run.

A checkpoint is a dict `{<loss keys>: float, "epoch": int, "state_dict": ModelAndLoss.state_dict()}`
(keys `model.<...>`), exactly as the original wrote it, so files load in both frameworks. This
project adds `optimizer`, `lr_scheduler`, `rng`, `best` and `args` entries, which the original ignores.
"""
import fnmatch
import glob
import logging
import os
import random
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from utils import jsonfile

LATEST = "checkpoint_latest_.ckpt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be found or does not fit the model."""


def best_filename(key: str) -> str:
    """File name of the best checkpoint for a validation key."""
    return f"checkpoint_best_{key}.ckpt"


def _atomic_torch_save(obj: Any, filename: str) -> None:
    temporary = f"{filename}.tmp"
    torch.save(obj, temporary)
    os.replace(temporary, filename)


def _atomic_copy(source: str, destination: str) -> None:
    temporary = f"{destination}.tmp"
    shutil.copyfile(source, temporary)
    os.replace(temporary, destination)


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


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(directory: str, stats: Dict[str, float], epoch: int, model_and_loss: torch.nn.Module,
         best_keys: Sequence[str] = (), extra: Optional[Dict[str, Any]] = None) -> List[str]:
    """Write checkpoint_latest_.ckpt/.json and copy them to checkpoint_best_<key> for every key in best_keys."""
    os.makedirs(directory, exist_ok=True)
    state_dict = {key: value.detach().cpu() for key, value in model_and_loss.state_dict().items()}
    checkpoint = {key: float(value) for key, value in stats.items()}
    checkpoint["epoch"] = int(epoch)
    checkpoint["state_dict"] = state_dict
    checkpoint.update(extra or {})
    latest = os.path.join(directory, LATEST)
    _atomic_torch_save(checkpoint, latest)
    summary = {key: value for key, value in checkpoint.items() if key in stats or key == "epoch"}
    latest_json = latest.replace(".ckpt", ".json")
    jsonfile.write(latest_json + ".tmp", summary, sort_keys=False)
    os.replace(latest_json + ".tmp", latest_json)
    written = [latest]
    for key in best_keys:
        best = os.path.join(directory, best_filename(key))
        _atomic_copy(latest, best)
        _atomic_copy(latest_json, best.replace(".ckpt", ".json"))
        written.append(best)
    return written


def find_checkpoint(path: str, mode: str = "latest", keys: Sequence[str] = ()) -> str:
    """The checkpoint file for `path`: the file itself, or a run folder's latest/best checkpoint."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise CheckpointError(f"--checkpoint: no such file or directory: {path}")
    if mode == "latest":
        filename = os.path.join(path, LATEST)
        if not os.path.isfile(filename):
            raise CheckpointError(f"--checkpoint: {path} holds no {LATEST}")
        return filename
    candidates = [os.path.join(path, best_filename(key)) for key in keys]
    candidates = [c for c in candidates if os.path.isfile(c)] or sorted(
        glob.glob(os.path.join(glob.escape(path), "checkpoint_best_*.ckpt")))
    if len(candidates) != 1 and not (candidates and keys):
        found = ", ".join(os.path.basename(c) for c in candidates) or "none"
        raise CheckpointError(f"--checkpoint_mode=best: expected one checkpoint_best_<key>.ckpt in {path}, "
                              f"found {found}; give --validation_keys or the file itself")
    return candidates[0]


def load_file(filename: str) -> Dict[str, Any]:
    """Load a checkpoint dict safely (weights_only) and check it has a state_dict."""
    try:
        checkpoint = torch.load(filename, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- any unpickling failure means the file is unusable
        raise CheckpointError(f"cannot read checkpoint {filename}: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{filename} is not a checkpoint: expected a dict with a 'state_dict' entry")
    return checkpoint


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
