"""The one hook system of the training loop (runtime.Trainer), in the style of detectron2's HookBase.

A hook overrides the events it needs; every event does nothing by default. Run and epoch events get the
trainer; pass and step events (one training or validation pass over a loader, one batch) get what the
original's visualizers got; `record_step` also gets the validation epoch's recorder (utils/records.py), through
which a hook writes image and batch records. main.py builds the list (the visualizer, then callbacks.default_hooks) and
passes it to the Trainer. A hook whose `state_dict` is not empty is saved with the run state
(utils/checkpoints.py) and restored by --resume.

This module imports nothing of the project, so that anything may import it without a cycle.
"""
from typing import Any, Dict, List, Optional


class HookBase:
    """Events of the epoch loop, no-ops unless a subclass overrides them; `trainer` is the runtime.Trainer."""

    # What starting fresh means for a stateful hook, said when a resumed checkpoint holds none of its state.
    fresh_start = "it starts fresh"

    def before_run(self, trainer: Any) -> None:
        """Before the first epoch (after the input baseline)."""

    def after_run(self, trainer: Any, error: Optional[BaseException]) -> None:
        """After the last epoch, or when the loop stops with `error`."""

    def before_epoch(self, trainer: Any, epoch: int) -> None:
        """Before an epoch's training."""

    def after_epoch(self, trainer: Any, epoch: int, stats: Dict[str, float], best_keys: List[str], eta: str) -> None:
        """After an epoch: its statistics, the validation keys it improved and the time left."""

    def after_input_baseline(self, baseline: Dict[str, float]) -> None:
        """Once before the first epoch, with the validation metrics of the unprocessed input (if computed)."""

    def before_pass(self, lr: Any, train: bool, epoch: int, total_epochs: int) -> None:
        """Before a training or validation pass; `lr` lists every parameter group's learning rate (or None)."""

    def after_pass(self, avg_loss_dict: Dict[str, float], train: bool, epoch: int, total_epochs: int) -> None:
        """After a pass, with its average losses."""

    def before_step(self, example_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        """Before each step of a pass."""

    def after_step(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any], loss_dict: Dict[str, Any],
                   train: bool, step: int, total_steps: int) -> None:
        """After each step of a pass."""

    def record_step(self, recorder: Any, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                    loss_dict: Dict[str, Any], step: int, total_steps: int) -> None:
        """After each validation step (on the main process): records of this batch through `recorder`, the
        epoch's utils.records.EpochRecorder (`add_images`, `add_batch`; kinds whose flag is off are ignored)."""

    def state_dict(self) -> Dict[str, Any]:
        """What a resumed run needs of this hook; empty (nothing saved) unless a subclass has state."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def hook_states(hooks: List[HookBase]) -> Dict[str, Dict[str, Any]]:
    """The non-empty `state_dict` of every hook, by class name (a repeated class gets `#<n>` from its second)."""
    states: Dict[str, Dict[str, Any]] = {}
    for name, hook in zip(hook_names(hooks), hooks):
        state = hook.state_dict()
        if state:
            states[name] = state
    return states


def load_hook_states(hooks: List[HookBase], states: Dict[str, Dict[str, Any]]) -> List[str]:
    """Restore every hook whose state was saved; returns the names of stateful hooks that start fresh."""
    fresh = []
    for name, hook in zip(hook_names(hooks), hooks):
        if name in states:
            hook.load_state_dict(states[name])
        elif hook.state_dict():
            fresh.append(name)
    return fresh


def hook_names(hooks: List[HookBase]) -> List[str]:
    """The name each hook's state is saved under: its class name, `#<n>` added from a repeated class's second."""
    seen: Dict[str, int] = {}
    names = []
    for hook in hooks:
        name = type(hook).__name__
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names
