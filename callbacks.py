"""What a run does around its epochs besides training, as hooks (hooks.HookBase) of runtime.Trainer's loop.

These act on what an epoch produced: TensorBoard's default step, notifications, the process title,
checkpoints and the training curves. `default_hooks` is what main.py runs with (after the visualizer, itself
a hook); code that builds a Trainer may pass its own list.
"""
import logging
import time
from typing import Any, Dict, List, Optional

import setproctitle
import torch

import constants
from hooks import HookBase
from optim.groups import ParameterScheduler
from utils import baseline, checkpoints, plots, run_folder, summary, telegram, termination


class TensorBoardSteps(HookBase):
    """The epoch as TensorBoard's default step; pending events written after every epoch."""

    def __init__(self, run_summary: Optional[summary.RunSummary] = None) -> None:
        self.run_summary = run_summary

    def _target(self) -> Optional[summary.RunSummary]:
        return self.run_summary or summary.current()

    def before_epoch(self, trainer: Any, epoch: int) -> None:
        if self._target() is not None:
            self._target().set_global_step(epoch)

    def after_epoch(self, trainer: Any, epoch: int, stats: Dict[str, float], best_keys: List[str], eta: str) -> None:
        if self._target() is not None:
            self._target().flush()

    def after_run(self, trainer: Any, error: Optional[BaseException]) -> None:
        if self._target() is not None:
            self._target().flush()


class Notifications(HookBase):
    """Telegram messages: the run's non-default arguments, progress after every epoch, a NaN loss.

    `title` names the run in every message (main.py: "<prefix>:<model> on <device>"); `settings` are the
    arguments the first message lists (the non-default ones).
    """

    def __init__(self, notifier: Optional[telegram.TelegramNotifier] = None, title: str = "run",
                 settings: Optional[Dict[str, Any]] = None) -> None:
        self.notifier = notifier
        self.title = title
        self.settings = dict(settings or {})

    def _send(self, msg: str, *args: object) -> None:
        if self.notifier is not None:
            self.notifier.send_message(msg, *args)
        else:
            telegram.send_message(msg, *args)  # the active run's notifier, if any

    def before_run(self, trainer: Any) -> None:
        self._send("%s @0/%d\n%s", self.title, trainer.config.total_epochs,
                   "\n".join(f"  {k}: {v}" for k, v in sorted(self.settings.items())))

    def after_epoch(self, trainer: Any, epoch: int, stats: Dict[str, float], best_keys: List[str], eta: str) -> None:
        progress = {f"best_{k}_avg": f"{v:1.4f}" for k, v in zip(trainer.validation_keys, trainer.best_values)}
        progress["lr"] = trainer.learning_rate_text()
        text = ", ".join(f"{k}: {v}" for k, v in progress.items())
        gain = baseline.gain_over_input(stats, getattr(trainer, "input_baseline", {}), trainer.validation_keys)
        if gain:
            text += f"; {gain}"
        self._send("%s [%d/%d<%s]: %s", self.title, epoch, trainer.config.total_epochs, eta, text)

    def after_run(self, trainer: Any, error: Optional[BaseException]) -> None:
        if isinstance(error, FloatingPointError):
            self._send("%s:\n  loss is NaN\n", self.title)
        if self.notifier is not None:
            self.notifier.flush()
        else:
            telegram.flush()


class ProcessTitle(HookBase):
    """The process title (ps, top, nvidia-smi) says when the run finishes."""

    def __init__(self, name: str = "deblur-devil") -> None:
        self.name = name

    def after_epoch(self, trainer: Any, epoch: int, stats: Dict[str, float], best_keys: List[str], eta: str) -> None:
        set_proctitle(f"{self.name} finishes in {eta}")


class CheckpointWriter(HookBase):
    """checkpoint_latest_ after every epoch and checkpoint_best_<key> when a validation key improves."""

    def __init__(self, run_state: checkpoints.RunState, directory: str) -> None:
        self.run_state = run_state
        self.directory = directory

    def after_epoch(self, trainer: Any, epoch: int, stats: Dict[str, float], best_keys: List[str], eta: str) -> None:
        with termination.deferred():  # a SIGTERM now stops the run after this epoch's checkpoint is complete
            written = self.run_state.save(self.directory, stats, epoch, best_keys)
            for filename in written[1:]:
                logging.info("Save ckpt to %s", filename)


class TrainingCurves(HookBase):
    """training_curves.png: every loss and metric per epoch, from the CSV records; redrawn after an epoch once
    `interval_s` seconds have passed since the run started or since the last drawing, and at the end."""

    def __init__(self, directory: str, interval_s: Optional[float] = None) -> None:
        self.directory = directory
        self.interval_s = constants.PLOT_INTERVAL_SECS if interval_s is None else interval_s
        self.drawn_at = time.monotonic()
        self.pending = False

    def _draw(self) -> None:
        plots.plot_records(self.directory)
        self.drawn_at, self.pending = time.monotonic(), False

    def before_run(self, trainer: Any) -> None:
        self.drawn_at = time.monotonic()

    def after_epoch(self, trainer: Any, epoch: int, stats: Dict[str, float], best_keys: List[str], eta: str) -> None:
        self.pending = True
        if time.monotonic() - self.drawn_at >= self.interval_s:
            self._draw()

    def after_run(self, trainer: Any, error: Optional[BaseException]) -> None:
        if not self.pending or isinstance(error, run_folder.RunFolderError):  # e.g. the folder was deleted
            return
        try:
            self._draw()
        except Exception as plot_error:  # noqa: BLE001 -- after a failed run, its own error is the one to report
            if error is None:
                raise
            logging.warning("training_curves.png not redrawn after the failure: %s", plot_error)


class HolisticRecords(HookBase):
    """--holistic_records_png and --holistic_records_mat_exhaustive: what a validation pass records by default.

    PNG: the model's `output1` when it is an image batch (B, 1 or 3, H, W), one file per example named by its
    `basename` (else its `index`). Exhaustive MAT: every example_dict and model_dict entry of every batch.
    """

    def __init__(self) -> None:
        self.warned = False

    def record_step(self, recorder: Any, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                    loss_dict: Dict[str, Any], step: int, total_steps: int) -> None:
        if recorder.png:
            output = model_dict.get("output1")
            if torch.is_tensor(output) and output.dim() == 4 and output.size(1) in (1, 3):
                recorder.add_images(example_names(example_dict, output.size(0), step), output)
            elif not self.warned:
                self.warned = True
                logging.warning("--holistic_records_png: the model's output1 is not an image batch (B, 1 or 3, H, W); "
                                "no PNG recorded")
        recorder.add_batch(example_dict, model_dict)


def example_names(example_dict: Dict[str, Any], batch_size: int, step: int) -> List[str]:
    """A batch's file names: its `basename` entries, else its indices, else the step and position."""
    names = example_dict.get("basename")
    if isinstance(names, (list, tuple)) and len(names) == batch_size and all(isinstance(n, str) for n in names):
        return list(names)
    index = example_dict.get("index")
    if torch.is_tensor(index) and index.numel() == batch_size:
        return [f"{int(i):06d}" for i in index.flatten().tolist()]
    return [f"step{step:06d}_{i}" for i in range(batch_size)]


class ParameterSchedulerStep(HookBase):
    """--param_scheduler_group: the scheduled parameters take their next value before every epoch's training
    (after the other hooks' `before_epoch`: main.py puts it last). The schedules' positions are saved with the
    run state, so a resumed run continues them (the original restarted them at 'init')."""

    fresh_start = "its --param_scheduler_group schedules restart from their 'init' values"

    def __init__(self, param_scheduler: ParameterScheduler) -> None:
        self.param_scheduler = param_scheduler

    def before_epoch(self, trainer: Any, epoch: int) -> None:
        self.param_scheduler.step()

    def state_dict(self) -> Dict[str, Any]:
        return {"schedules": self.param_scheduler.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.param_scheduler.load_state_dict(state["schedules"])


def default_hooks(config: Any, run_state: checkpoints.RunState, save_checkpoints: bool, is_main: bool,
                  notifier: Optional[telegram.TelegramNotifier] = None,
                  run_summary: Optional[summary.RunSummary] = None, title: str = "run",
                  settings: Optional[Dict[str, Any]] = None, process_name: str = "deblur-devil") -> List[HookBase]:
    """What a run of main.py does besides training and visualizing; only the main process writes files.

    `config` is the loop's runtime.TrainerConfig (its run folder and record options); `title`, `settings` and
    `process_name` go to the notifications and the process title.
    """
    result: List[HookBase] = [Notifications(notifier, title, settings), ProcessTitle(process_name)]
    if save_checkpoints and is_main:
        result.append(CheckpointWriter(run_state, config.save))
    if is_main and config.records.get("csv", True):
        result.append(TrainingCurves(config.save))
    if is_main and (config.records.get("png") or config.records.get("mat_exhaustive")):
        result.append(HolisticRecords())
    result.append(TensorBoardSteps(run_summary))
    return result


def set_proctitle(title: str) -> None:
    """Set the process title shown by ps/top/nvidia-smi."""
    setproctitle.setproctitle(title)

