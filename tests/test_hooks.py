"""hooks.py: the one hook base of the loop, its state in the run state, and the visualizers' original API on it."""
import torch

import callbacks
from hooks import HookBase, hook_states
from utils import checkpoints
from visualizers.visualizer import Visualizer


class _Counter(HookBase):
    """A stateful hook: counts the epochs it has seen."""

    def __init__(self):
        self.epochs = 0

    def after_epoch(self, trainer, epoch, stats, best_keys, eta):
        self.epochs += 1

    def state_dict(self):
        return {"epochs": self.epochs}

    def load_state_dict(self, state):
        self.epochs = state["epochs"]


def _checkpoint(tmp_path, hooks):
    model = torch.nn.Linear(2, 1)
    run_state = checkpoints.RunState(model)
    run_state.attach_hooks(hooks)
    run_state.save(str(tmp_path), {"total_loss": 1.0}, 1)
    return checkpoints.load_file(str(tmp_path / "checkpoint_latest_.ckpt"))


def test_stateless_hooks_leave_the_checkpoint_as_it_was(tmp_path):
    hooks = [callbacks.ProcessTitle(), callbacks.TensorBoardSteps(), Visualizer()]
    assert hook_states(hooks) == {}
    assert set(_checkpoint(tmp_path, hooks)) == {"epoch", "state_dict", "total_loss", "rng", "best", "args",
                                                 "world_size"}


def test_a_stateful_hooks_state_is_saved_and_restored_by_class_name(tmp_path):
    first, second = _Counter(), _Counter()
    first.epochs, second.epochs = 3, 5
    checkpoint = _checkpoint(tmp_path, [first, callbacks.ProcessTitle(), second])
    assert checkpoint["hooks"] == {"_Counter": {"epochs": 3}, "_Counter#2": {"epochs": 5}}
    restored = checkpoints.RunState(torch.nn.Linear(2, 1))
    assert restored.restore(checkpoint, "latest.ckpt") == []
    again = [_Counter(), _Counter()]
    assert restored.attach_hooks(again) == []
    assert [hook.epochs for hook in again] == [3, 5]


def test_a_checkpoint_without_hook_state_resumes_with_the_hook_fresh(tmp_path):
    checkpoint = _checkpoint(tmp_path, [callbacks.ProcessTitle()])  # as every checkpoint written before hooks.py
    assert "hooks" not in checkpoint
    restored = checkpoints.RunState(torch.nn.Linear(2, 1))
    restored.restore(checkpoint, "old.ckpt")
    counter = _Counter()
    assert restored.attach_hooks([counter, callbacks.ProcessTitle()]) == ["_Counter"]
    assert counter.epochs == 0
    assert checkpoints.RunState(torch.nn.Linear(2, 1)).attach_hooks([_Counter()]) == []  # a fresh run: nothing to say


def test_a_visualizer_written_against_the_original_gets_its_train_and_valid_methods():
    seen = []

    class Original(Visualizer):  # overrides only the original's per-mode no-ops
        def on_train_epoch_init(self, lr, epoch, total_epochs):
            seen.append(("train_epoch_init", lr, epoch, total_epochs))

        def on_valid_step_init(self, example_dict, step, total_steps):
            seen.append(("valid_step_init", sorted(example_dict), step, total_steps))

        def on_train_step_finished(self, example_dict, model_dict, loss_dict, step, total_steps):
            seen.append(("train_step_finished", sorted(model_dict), step, total_steps))

        def on_valid_epoch_finished(self, avg_loss_dict, epoch, total_epochs):
            seen.append(("valid_epoch_finished", avg_loss_dict, epoch, total_epochs))

    hook = Original()
    hook.before_pass([0.1], True, 2, 5)
    hook.before_pass([0.1], False, 2, 5)  # a validation pass: not the training method
    hook.before_step({"input1": 1}, False, 0, 4)
    hook.after_step({}, {"output1": 1}, {}, True, 3, 4)
    hook.after_pass({"psnr": 30.0}, False, 2, 5)
    hook.after_pass({"psnr": 20.0}, True, 2, 5)
    assert seen == [("train_epoch_init", [0.1], 2, 5), ("valid_step_init", ["input1"], 0, 4),
                    ("train_step_finished", ["output1"], 3, 4), ("valid_epoch_finished", {"psnr": 30.0}, 2, 5)]
    assert isinstance(hook, HookBase) and isinstance(hook, torch.nn.Module)
