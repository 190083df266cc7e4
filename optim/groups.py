"""Optimizer parameter groups from fnmatch patterns, and scheduled parameter values."""
import fnmatch
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from optim.registry import LR_SCHEDULERS


def parameter_groups(named_parameters: Sequence[Tuple[str, torch.nn.Parameter]],
                     groups: Optional[Sequence[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """Split trainable parameters into the `--optimizer_group` groups (first match wins) and a default group."""
    trainable = [(name, p) for name, p in named_parameters if p.requires_grad]
    result: List[Dict[str, Any]] = []
    taken = set()
    for index, group in enumerate(groups or []):
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError(f"--optimizer_group #{index + 1}: expected a dict with a 'params' pattern, got {group!r}")
        pattern = group["params"]
        params = [p for name, p in trainable if name not in taken and fnmatch.fnmatch(name, pattern)]
        if not params:
            raise ValueError(f"--optimizer_group #{index + 1}: pattern {pattern!r} matches no trainable parameter")
        taken.update(name for name, _ in trainable if fnmatch.fnmatch(name, pattern))
        result.append({**group, "params": params})
    rest = [p for name, p in trainable if name not in taken]
    if rest:
        result.append({"params": rest})
    return result


class ParameterScheduler:
    """`--param_scheduler_group` entries: parameters filled, every epoch, with an LR scheduler's value."""

    def __init__(self, named_parameters: Sequence[Tuple[str, torch.nn.Parameter]],
                 groups: Sequence[Dict[str, Any]], coerce: Callable[[str, str, Any], Any]) -> None:
        self._entries = []
        for index, group in enumerate(groups):
            group = dict(group)
            try:
                pattern, scheduler_name, init = group.pop("params"), group.pop("scheduler"), group.pop("init")
            except KeyError as error:
                raise ValueError(f"--param_scheduler_group #{index + 1}: missing key {error.args[0]!r} "
                                 f"(expected 'params', 'scheduler', 'init')") from None
            params = [p for name, p in named_parameters if fnmatch.fnmatch(name, pattern)]
            if not params:
                raise ValueError(f"--param_scheduler_group #{index + 1}: pattern {pattern!r} matches no parameter")
            holder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(init))
            kwargs = {key: coerce(scheduler_name, key, value) for key, value in group.items()}
            scheduler = LR_SCHEDULERS.get(scheduler_name)(holder, **kwargs)
            self._entries.append((params, holder, scheduler))

    def step(self) -> None:
        """Fill the parameters with the current value, then advance each schedule by one epoch."""
        with torch.no_grad():
            for params, holder, scheduler in self._entries:
                for p in params:
                    p.fill_(holder.param_groups[0]["lr"])
                holder.step()  # changes nothing (no gradient); the scheduler then does not warn of a missing step
                scheduler.step()

    def state_dict(self) -> List[Dict[str, Any]]:
        """Every schedule's position: its value holder's state and its scheduler's, in --param_scheduler_group
        order (a resumed run continues each schedule where it stopped instead of restarting at 'init')."""
        return [{"holder": holder.state_dict(), "scheduler": scheduler.state_dict()}
                for _, holder, scheduler in self._entries]

    def load_state_dict(self, state: List[Dict[str, Any]]) -> None:
        """Restore what `state_dict` returned."""
        if len(state) != len(self._entries):
            raise ValueError(f"--resume: the checkpoint holds {len(state)} parameter schedules, this run has "
                             f"{len(self._entries)} --param_scheduler_group entries")
        for (_, holder, scheduler), saved in zip(self._entries, state):
            holder.load_state_dict(saved["holder"])
            scheduler.load_state_dict(saved["scheduler"])
