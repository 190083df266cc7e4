"""The training/validation loop: example_dict -> model_dict -> loss_dict, epoch after epoch."""
import argparse
import dataclasses
import logging
import socket
import types
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler, default_collate

import constants
from datasets.sampling import KeyedDataset, SeededSampler, images_to_float
from hooks import HookBase, hook_names
from metrics.frame_metrics import INPUT_PREFIX, FrameMetrics, from_settings, image_pair
from utils import baseline, checkpoints, distributed, frame_records, termination
from utils.frame_records import FrameRow
from utils.frames import reference_index
from utils.logger import ProgressBar, block
from utils.records import EpochRecorder

DEVICE_KEY_PREFIXES = ("input", "target")
COUNT_KEY = "\0count"  # the number of examples, summed over ranks with the losses (no loss key looks like it)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What the loop knows of the run, fixed once main.py has built it.

    `arguments` are the run's parsed flags (what checkpoints store and the input baseline's record is keyed
    on); `records` the holistic-record options as `EpochRecorder` keywords; `device_label` names the device in
    the epoch banner; `validation_metrics` (none: the records' defaults only) and `validation_metrics_crop_border`
    choose the per-frame evaluation metrics (metrics.frame_metrics.from_settings).
    """

    save: str
    total_epochs: int = 1
    start_epoch: int = 1
    training_key: str = "total_loss"
    validation_keys: Tuple[str, ...] = ()
    validation_modes: Tuple[str, ...] = ()
    clip_grad: float = 0.0
    loshchilov_weight_decay: float = 0.0
    model: str = ""
    device_label: str = "cpu"
    validation_metrics: Tuple[str, ...] = ()
    validation_metrics_crop_border: int = 0
    records: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only views and tuples: a hook or component cannot change the run's settings under the loop.
        object.__setattr__(self, "validation_keys", tuple(self.validation_keys))
        object.__setattr__(self, "validation_modes", tuple(self.validation_modes))
        object.__setattr__(self, "validation_metrics", tuple(self.validation_metrics or ()))
        object.__setattr__(self, "records", types.MappingProxyType(dict(self.records)))
        object.__setattr__(self, "arguments", types.MappingProxyType(dict(self.arguments)))


class ModelAndLoss(torch.nn.Module):
    """The model and its loss as submodules `model` and `loss`: state_dict keys are `model.<...>`.

    With `amp_dtype` the model runs under autocast; the loss always sees float32 outputs, because sums
    over a whole batch (DBNLoss) overflow in half precision. `source_checkpoint` is the (file, epoch) the
    weights were loaded from with --checkpoint, None otherwise.
    """

    def __init__(self, model: torch.nn.Module, loss: torch.nn.Module, amp_dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.amp_dtype = amp_dtype
        self.source_checkpoint: Optional[Tuple[str, Optional[int]]] = None

    def forward(self, example_dict: Dict[str, Any]):  # noqa: ANN201
        """Returns (loss_dict, model_dict)."""
        if self.amp_dtype is None:
            model_dict = self.model(example_dict)
        else:
            device_type = next(v for k, v in example_dict.items() if k.startswith("input")).device.type
            with torch.autocast(device_type=device_type, dtype=self.amp_dtype):
                model_dict = self.model(example_dict)
            model_dict = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                          for k, v in model_dict.items()}
        loss_dict = self.loss(model_dict, example_dict)
        return loss_dict, model_dict


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The ModelAndLoss inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module


def collate_samples(example_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Merge the S samples per example into the batch: (B, S, ...) -> (B*S, ...), names in the same order."""
    result = {}
    for key, value in example_dict.items():
        if torch.is_tensor(value) and value.dim() >= 2:
            result[key] = value.reshape(-1, *value.shape[2:])
        elif isinstance(value, list) and value and isinstance(value[0], (list, tuple)):
            # default_collate turns S lists of B entries into value[s][b]; tensor order is b*S + s.
            result[key] = [value[s][b] for b in range(len(value[0])) for s in range(len(value))]
        else:
            result[key] = value
    return result


def to_device(example_dict: Dict[str, Any], device: torch.device, channels_last: bool = False) -> Dict[str, Any]:
    """Move tensors whose key starts with 'input' or 'target' to the device (uint8 images become float there)."""
    non_blocking = device.type == "cuda"
    result = {}
    for key, value in example_dict.items():
        if torch.is_tensor(value) and key.startswith(DEVICE_KEY_PREFIXES):
            value = images_to_float(value.to(device, non_blocking=non_blocking))
            if channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        result[key] = value
    return result


def make_data_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int,
                     device: torch.device, sampler: Optional[Sampler] = None) -> DataLoader:
    """The DataLoader main.py trains and validates with.

    A `KeyedDataset` gets its keys from a `SeededSampler`: every example's augmentation is seeded by the
    epoch's seed and its index, and its images travel as uint8. Its workers are then persistent, which
    cannot change what they load; their own base seed comes from a private generator, so that the
    main process's RNG (kept by checkpoints for --resume) advances the same with or without them.
    """
    if sampler is None:
        sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    keyed = isinstance(dataset, KeyedDataset)
    generator = None
    if keyed:
        sampler = SeededSampler(sampler)
        generator = torch.Generator().manual_seed(torch.initial_seed())
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=num_workers,
                      pin_memory=constants.DATALOADER_PIN_MEMORY and device.type == "cuda",
                      persistent_workers=keyed and num_workers > 0, generator=generator)


class Loader:
    """A DataLoader whose batches are collated over samples and moved to the device."""

    def __init__(self, loader: DataLoader, device: torch.device, collate: bool, channels_last: bool = False) -> None:
        self.loader = loader
        self.device = device
        self.collate = collate
        self.channels_last = channels_last

    def set_epoch(self, epoch: int) -> None:
        """Let a DistributedSampler shuffle differently every epoch."""
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self) -> Dataset:
        """The wrapped dataset."""
        return self.loader.dataset

    def prepare(self, example_dict: Dict[str, Any]) -> Dict[str, Any]:
        """A batch as the model gets it: samples merged into the batch, inputs and targets on the device."""
        if self.collate:
            example_dict = collate_samples(example_dict)
        return to_device(example_dict, self.device, self.channels_last)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        batches = iter(self.loader)  # starting workers is not interruptible: a half-built iterator would remain
        while True:
            with termination.interruptible():  # a SIGTERM stops the wait for a batch at once
                example_dict = next(batches, None)
                if example_dict is None:
                    return
                example_dict = self.prepare(example_dict)
            yield example_dict


def current_learning_rates(optimizer: Optional[torch.optim.Optimizer]) -> Optional[List[float]]:
    """The learning rate of every parameter group (None without optimizer)."""
    return None if optimizer is None else [group["lr"] for group in optimizer.param_groups]


def format_learning_rate(lr: Optional[List[float]]) -> str:
    """'None', a bare number for one group, else the list."""
    if lr is None:
        return "None"
    return f"{lr[0]:g}" if len(lr) == 1 else "[" + ", ".join(f"{x:g}" for x in lr) + "]"


def _format_postfix(means: Dict[str, float], first: List[str], label: str = "") -> str:
    """'key_avg=value' fields, the keys of `first` first (a narrow bar keeps them), then the others sorted;
    `label` (whose values these are, under torchrun) before them all."""
    keys = [key for key in first if key in means] + sorted(key for key in means if key not in first)
    return ", ".join(([label] if label else []) + [f"{key}_avg={means[key]:1.4f}" for key in keys])


def rank_label(all_ranks: bool) -> str:
    """Under torchrun, whose values the console shows: 'all ranks' (reduced) or this rank's; else ''."""
    if not distributed.is_distributed():
        return ""
    return "all ranks" if all_ranks else f"rank {distributed.rank()}"


def require_loss_keys(loss_dict: Dict[str, Any], flag: str, keys: List[str]) -> None:
    """Raise ValueError naming `flag` if one of `keys` is not in the loss_dict."""
    missing = [key for key in keys if key not in loss_dict]
    if missing:
        raise ValueError(f"{flag}: {', '.join(repr(k) for k in missing)} is not a key of the loss's loss_dict; "
                         f"available: {', '.join(sorted(loss_dict))}")


class ReferenceFrame(torch.nn.Module):
    """A 'model' that returns the unprocessed reference frame (the centre input, as DBN's) as output1."""

    def forward(self, example_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """{'output1': input<N//2 + 1>} of the N input frames."""
        return {"output1": example_dict[reference_key(example_dict)]}


def reference_key(example_dict: Dict[str, Any]) -> str:
    """'input3' of input1..input5, 'input4' of input1..input7: DBN's reference frame."""
    count = sum(1 for key in example_dict if key.startswith("input") and key[len("input"):].isdigit())
    return f"input{reference_index(count) + 1}"


def has_image_target(example_dict: Dict[str, Any]) -> bool:
    """Whether the reference frame can stand in for output1: a target1 of the inputs' shape (deblurring,
    not optical flow)."""
    target, frame = example_dict.get("target1"), example_dict.get(reference_key(example_dict))
    return torch.is_tensor(target) and torch.is_tensor(frame) and target.shape == frame.shape


def baseline_protocol(arguments: Mapping[str, Any], loader: Loader) -> Dict[str, Any]:
    """What the input baseline depends on: validation data, augmentation and loss flags, batching, ranks."""
    prefixes = ("validation_dataset", "validation_augmentation", "validation_metrics", "loss")
    flags = {key: value for key, value in arguments.items()
             if key.startswith(prefixes) and not key.endswith("_num_workers")}
    return {"flags": flags, "examples": len(loader.dataset), "batch_size": loader.loader.batch_size,
            "world_size": distributed.world_size()}


class EpochRunner:
    """One training or validation pass over a loader.

    Loss values stay on the device, summed in float64 (the same arithmetic as Python floats, so the means
    are bit-identical to reading every value), and are read only every `sync_every` steps and at the end:
    a GPU then runs ahead of the host instead of waiting for it after every step. On the CPU, where nothing
    runs ahead, that is every step. A non-finite training loss is noticed at the next read, which ends
    the pass before anything is recorded or checkpointed, and the error names the step that produced it.
    """

    COLLECTIVES = " (DistributedDataParallel's buffer broadcast and gradient all-reduce)"
    NO_BAD_STEP = 2 ** 62  # "no non-finite loss yet" (steps count up from 1)

    def __init__(self, config: TrainerConfig, model_and_loss: ModelAndLoss, loader: Loader, train: bool,
                 optimizer: Optional[torch.optim.Optimizer] = None, augmentation: Optional[torch.nn.Module] = None,
                 hooks: Sequence[HookBase] = (), grad_scaler: Optional[torch.amp.GradScaler] = None,
                 sync_every: Optional[int] = None, metrics: Optional[FrameMetrics] = None,
                 keep_frames: bool = False, recorder: Optional[EpochRecorder] = None) -> None:
        self.config = config
        # Evaluation only: the per-frame metrics (added to the loss_dict if metrics.in_loss_dict) and, with
        # keep_frames, every frame's values and its input's, gathered into `frame_rows` on rank 0 by `run`.
        self.metrics = None if train else metrics
        self.keep_frames = keep_frames and self.metrics is not None
        self._frame_batches: List[Tuple[List[int], List[str], Dict[str, torch.Tensor]]] = []
        self.frame_rows: List[FrameRow] = []
        self.model_and_loss = model_and_loss
        self.loader = loader
        self.train = train
        self.optimizer = optimizer
        self.augmentation = augmentation
        self.hooks = list(hooks)  # their step events
        self.grad_scaler = grad_scaler
        if sync_every is None:
            cuda = loader is not None and loader.device.type == "cuda"
            sync_every = constants.CUDA_SYNC_INTERVAL_STEPS if cuda else 1
        self.sync_every = sync_every
        self.recorder = recorder  # offered to the hooks' record_step after every step (validation, main process)

    def step(self, example_dict: Dict[str, Any]):  # noqa: ANN201
        """One forward (and, in training, backward and optimizer) step; returns (loss_dict, model_dict)."""
        if self.augmentation is not None:
            with torch.no_grad():
                example_dict = self.augmentation(example_dict)
        if not self.train:
            return self.model_and_loss(example_dict)
        self.optimizer.zero_grad(set_to_none=True)
        loss_dict, model_dict = self.model_and_loss(example_dict)
        require_loss_keys(loss_dict, "--training_key", [self.config.training_key])
        loss = loss_dict[self.config.training_key]
        scaler = self.grad_scaler
        (scaler.scale(loss) if scaler is not None else loss).backward()
        gradients_finite = None
        if scaler is not None:
            scaler.unscale_(self.optimizer)
            gradients_finite = _all_finite([p.grad for group in self.optimizer.param_groups for p in group["params"]
                                            if p.grad is not None])
        if self.config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.model_and_loss.parameters(), self.config.clip_grad)
        if self.config.loshchilov_weight_decay > 0:
            with torch.no_grad():
                for group in self.optimizer.param_groups:
                    factor = 1.0 - self.config.loshchilov_weight_decay * group["lr"]
                    if gradients_finite is not None:  # the scaler skips this step: so does the decay
                        factor = torch.where(gradients_finite, factor, 1.0)
                    for parameter in group["params"]:
                        parameter.mul_(factor)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        return loss_dict, model_dict

    def evaluate(self, example_dict: Dict[str, Any]):  # noqa: ANN201
        """One evaluation step; returns (loss_dict, model_dict, {metric: per-frame values} or None).

        The metrics see the example as the loss does (after the validation augmentation); with keep_frames
        the input's reference frame is scored too, as input_<metric>.
        """
        if self.augmentation is not None:
            with torch.no_grad():
                example_dict = self.augmentation(example_dict)
        loss_dict, model_dict = self.model_and_loss(example_dict)
        wanted = self.metrics is not None and (self.metrics.in_loss_dict or self.keep_frames)
        if not wanted or not image_pair(model_dict, example_dict):
            return loss_dict, model_dict, None
        target = example_dict["target1"]
        values = self.metrics(model_dict["output1"], target)
        if self.metrics.in_loss_dict:  # batch means for the hooks; the pass's mean sums the frames themselves
            loss_dict = {**loss_dict, **{key: value.mean() for key, value in values.items()}}
        if self.keep_frames and has_image_target(example_dict):
            values.update(self.metrics(example_dict[reference_key(example_dict)], target, INPUT_PREFIX))
        return loss_dict, model_dict, values

    def _keep_frames(self, example_dict: Dict[str, Any], values: Dict[str, torch.Tensor], batch_size: int) -> None:
        """Remember a batch's per-frame values with the dataset index and basename of every frame."""
        indices = example_dict.get("index")
        if torch.is_tensor(indices) and indices.numel() == batch_size:
            order = [int(index) for index in indices.reshape(-1).tolist()]
        else:  # no per-frame index: the order in which this rank evaluated them
            start = sum(len(batch[0]) for batch in self._frame_batches)
            order = list(range(start, start + batch_size))
        names = example_dict.get("basename")
        names = [str(name) for name in names] if isinstance(names, (list, tuple)) and len(names) == batch_size \
            else [""] * batch_size
        self._frame_batches.append((order, names, {key: value.detach() for key, value in values.items()}))

    def _gather_frames(self, desc: str) -> List[FrameRow]:
        """Every rank's kept frames as rows, in dataset order, on rank 0 (every rank takes part)."""
        dataset = self.loader.dataset
        rows = []
        for order, names, values in self._frame_batches:
            lists = {key: value.tolist() for key, value in values.items()}
            for position, (index, name) in enumerate(zip(order, names)):
                sequence, frame = frame_identity(dataset, index, name)
                rows.append((index, FrameRow(sequence, frame, name,
                                             {key: float(value[position]) for key, value in lists.items()})))
        self._frame_batches = []
        gathered = distributed.gather_to_main(rows, f"gathering the {desc} pass's per-frame metrics")
        # A stable sort: the samples of one example keep the order in which they were evaluated.
        return [row for _, row in sorted((entry for part in gathered for entry in part), key=lambda e: e[0])]

    def _raise_if_not_finite(self, bad_step: torch.Tensor, bad_value: torch.Tensor) -> None:
        """Stop with the first step whose training loss was not finite, on any rank (read once per sync)."""
        first = int(distributed.min_over_ranks(bad_step, "checking the training loss is finite"))
        if first == self.NO_BAD_STEP:
            return
        value = float(bad_value) if int(bad_step) == first else "not finite on another rank"
        raise FloatingPointError(f"training loss '{self.config.training_key}' is {value} (not finite) in training "
                                 f"step {first} of this epoch; stopping (no checkpoint holds weights updated from it)")

    def _read_back(self, sums: Dict[str, torch.Tensor], count: int, first: List[str], bar: ProgressBar,
                   bad_step: torch.Tensor, bad_value: torch.Tensor) -> None:
        """The host reads the device: a non-finite training loss stops the pass, the means go to the bar."""
        if self.train:
            self._raise_if_not_finite(bad_step, bad_value)
        means = {key: float(value) / count for key, value in sums.items()}
        bar.set_postfix_str(_format_postfix(means, first, rank_label(False)), refresh=False)

    def _step_with_hooks(self, example_dict: Dict[str, Any], step: int, total_steps: int, desc: str
                         ) -> Tuple[Dict[str, Any], Optional[Dict[str, torch.Tensor]]]:
        """One step between the hooks' step events; returns its loss_dict and, when evaluating with per-frame
        metrics, their values per frame (else None)."""
        for hook in self.hooks:
            hook.before_step(example_dict, self.train, step, total_steps)
        with distributed.collective(f"{desc} step {step + 1}" + self.COLLECTIVES * self.train), \
                termination.interruptible():  # a SIGTERM abandons the step in progress
            frame_values = None
            if self.train:
                loss_dict, model_dict = self.step(example_dict)
            else:
                loss_dict, model_dict, frame_values = self.evaluate(example_dict)
        if step == 0 and not self.train:  # checked before a whole epoch has run
            require_loss_keys(loss_dict, "--validation_keys", list(self.config.validation_keys))
        for hook in self.hooks:
            hook.after_step(example_dict, model_dict, loss_dict, self.train, step, total_steps)
        if self.recorder is not None:
            for hook in self.hooks:
                hook.record_step(self.recorder, example_dict, model_dict, loss_dict, step, total_steps)
        return loss_dict, frame_values

    def run(self, desc: str) -> Dict[str, float]:
        """Run the pass; returns the mean of every loss_dict entry weighted by batch size."""
        self.model_and_loss.train(self.train)
        sums: Dict[str, torch.Tensor] = {}
        count = 0
        total_steps = len(self.loader)
        device = self.loader.device
        bad_step = torch.full((), self.NO_BAD_STEP, dtype=torch.int64, device=device)
        bad_value = torch.zeros((), dtype=torch.float64, device=device)
        first = [self.config.training_key] if self.train else list(self.config.validation_keys)
        context = torch.enable_grad() if self.train else torch.no_grad()
        with context, ProgressBar(total=total_steps, desc=desc, unit="it",
                                  disable=not distributed.is_main_process()) as bar:
            for step, example_dict in enumerate(self.loader):
                loss_dict, frame_values = self._step_with_hooks(example_dict, step, total_steps, desc)
                batch_size = next(v for k, v in example_dict.items() if k.startswith("input")).size(0)
                for key, value in loss_dict.items():
                    if frame_values is not None and self.metrics.in_loss_dict and key in frame_values:
                        value = frame_values[key].to(device=device).sum()  # a per-frame metric: its frames' sum
                    else:
                        value = value.detach().to(device=device, dtype=torch.float64) * batch_size
                    sums[key] = sums[key] + value if key in sums else value
                if self.keep_frames and frame_values is not None:
                    self._keep_frames(example_dict, frame_values, batch_size)
                count += batch_size
                if self.train:
                    loss = loss_dict[self.config.training_key].detach()
                    new_bad = (bad_step == self.NO_BAD_STEP) & ~torch.isfinite(loss).all()
                    bad_value = torch.where(new_bad, loss.to(device=device, dtype=torch.float64).sum(), bad_value)
                    bad_step = torch.where(new_bad, step + 1, bad_step)
                if (step + 1) % self.sync_every == 0:
                    self._read_back(sums, count, first, bar, bad_step, bad_value)
                bar.update()
            if count and total_steps % self.sync_every:  # the steps after the last read
                self._read_back(sums, count, first, bar, bad_step, bad_value)
        # loss_dict order, as the original's checkpoint statistics
        totals = distributed.sum_over_ranks({**{key: float(value) for key, value in sums.items()}, COUNT_KEY: count},
                                            f"the {desc} pass's losses")
        count = totals.pop(COUNT_KEY)
        if self.keep_frames:
            self.frame_rows = self._gather_frames(desc)
        return {key: total / max(count, 1) for key, total in totals.items()}


def frame_identity(dataset: Dataset, index: int, basename: str) -> Tuple[str, int]:
    """(sequence, reference frame index within it) of example `index`: the dataset's own `frame_identity` if
    it has one, else the basename's folder and the example index."""
    identify = getattr(dataset, "frame_identity", None)
    if identify is not None:
        return identify(index)
    return (basename.rsplit("/", 1)[0] if "/" in basename else ""), index


def _all_finite(tensors: List[torch.Tensor]) -> torch.Tensor:
    """A device bool: whether every element of every tensor is finite (what GradScaler checks to skip a step)."""
    if not tensors:
        return torch.tensor(True)
    return torch.stack([torch.isfinite(tensor).all() for tensor in tensors]).all()


def first_loss_dict(model_and_loss: ModelAndLoss, loader: Loader, train: bool,
                    augmentation: Optional[torch.nn.Module]) -> Dict[str, Any]:
    """The loss_dict of the loader's first example, without a trace in the run: no gradients, the random number
    generators and the model's buffers (BatchNorm statistics) restored afterwards, and eager even with
    --compile (a no-gradient graph would be compiled for this one call)."""
    was_training = model_and_loss.training
    rng = checkpoints.rng_state()
    buffers = [buffer.clone() for buffer in model_and_loss.buffers()]
    try:
        example_dict = loader.prepare(default_collate([loader.dataset[0]]))
        model_and_loss.train(train)
        with torch.no_grad(), torch.compiler.set_stance("force_eager"):
            if augmentation is not None:
                example_dict = augmentation(example_dict)
            loss_dict, _ = model_and_loss(example_dict)
    finally:
        checkpoints.set_rng_state(rng)
        model_and_loss.train(was_training)
        with torch.no_grad():
            for buffer, saved in zip(model_and_loss.buffers(), buffers):
                buffer.copy_(saved)
    return loss_dict


def input_baseline(config: TrainerConfig, model_and_loss: ModelAndLoss, loader: Loader,
                   augmentation: Optional[torch.nn.Module], is_main: bool,
                   metrics: Optional[FrameMetrics] = None) -> Optional[Dict[str, float]]:
    """The validation pass with the reference frame as output (same loss, batches and augmentation),
    recorded as `<save>/csv/<Dataset>_input_baseline.csv`; read back instead when the record exists
    and was made under the same protocol (not under torchrun, where every rank must run the pass).
    None when the dataset has no image target to compare the input with."""
    dataset = type(loader.dataset).__name__
    first = default_collate([loader.dataset[0]])
    if not has_image_target(first):
        logging.info("input baseline: skipped (%s has no image target1 of the inputs' shape)", dataset)
        return None
    protocol = baseline_protocol(config.arguments, loader)
    values = None if distributed.is_distributed() else baseline.read(config.save, dataset, protocol)
    if values is not None:
        logging.info("input baseline of %s: read from %s", dataset, baseline.csv_filename(config.save, dataset))
    else:
        rng = checkpoints.rng_state()  # the run's random streams do not see this extra pass
        try:
            reference = ModelAndLoss(ReferenceFrame(), model_and_loss.loss)
            values = EpochRunner(config, reference, loader, False, None, augmentation, metrics=metrics).run("Input")
        finally:
            checkpoints.set_rng_state(rng)
            model_and_loss.loss.train(model_and_loss.training)
        if is_main:
            baseline.write(config.save, dataset, protocol, values, dict(config.records))
    logging.info("input baseline of %s (%s as output): %s", dataset, reference_key(first),
                 ", ".join(baseline.compare(k, v, None) for k, v in values.items()))
    return values


def update_best_values(stats: Dict[str, float], keys: List[str], modes: List[str], best_values: List[float]
                       ) -> List[str]:
    """Replace the best value of every validation key that `stats` improves (per its "min"/"max" mode); returns
    those keys."""
    improved = []
    for index, key in enumerate(keys):
        better = stats[key] < best_values[index] if modes[index] == "min" else stats[key] > best_values[index]
        if better:
            best_values[index] = stats[key]
            improved.append(key)
    return improved


def epoch_recorder(config: TrainerConfig, dataset: Dataset, epoch: int) -> EpochRecorder:
    """The records of a dataset's pass in `epoch`, as the --holistic_records_* flags ask."""
    return EpochRecorder(None, root=config.save, epoch=epoch, dataset=type(dataset).__name__, **config.records)


def record_pass(config: TrainerConfig, name: str, dataset: Dataset, epoch: int, stats: Dict[str, float],
                recorder: Optional[EpochRecorder] = None) -> None:
    """A pass's means as the epoch's row of `<save>/csv/<Dataset>_<name>.csv` (and the other record formats),
    then what the hooks recorded during the pass through `recorder`."""
    recorder = recorder or epoch_recorder(config, dataset, epoch)
    recorder.add_scalars(name, stats)
    recorder.close()


def step_lr_scheduler(lr_scheduler: Optional[Any], stats: Dict[str, float], validation_keys: List[str]) -> None:
    """Step the LR scheduler after an epoch; ReduceLROnPlateau watches the first validation key."""
    if lr_scheduler is None:
        return
    if isinstance(lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        lr_scheduler.step(stats[validation_keys[0]])
    else:
        lr_scheduler.step()


class Trainer:
    """The epoch loop: a training and a validation pass per epoch; the hooks do everything else."""

    def __init__(self, config: TrainerConfig, model_and_loss: ModelAndLoss,
                 train_loader: Optional[Loader], validation_loader: Optional[Loader],
                 optimizer: Optional[torch.optim.Optimizer] = None, lr_scheduler: Optional[Any] = None,
                 training_augmentation: Optional[torch.nn.Module] = None,
                 validation_augmentation: Optional[torch.nn.Module] = None,
                 hooks: Sequence[HookBase] = (), grad_scaler: Optional[torch.amp.GradScaler] = None,
                 run_state: Optional[checkpoints.RunState] = None) -> None:
        self.config = config
        self.model_and_loss = model_and_loss
        self.train_loader = train_loader
        self.validation_loader = validation_loader
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.training_augmentation = training_augmentation
        self.validation_augmentation = validation_augmentation
        self.grad_scaler = grad_scaler
        self.is_main = distributed.is_main_process()
        keys = list(config.validation_keys) if validation_loader is not None else []
        modes = list(config.validation_modes) if validation_loader is not None else []
        self.validation_keys: List[str] = keys
        self.validation_modes: List[str] = modes
        self.run_state = run_state or checkpoints.RunState(
            unwrap(model_and_loss), optimizer, lr_scheduler, grad_scaler, keys, modes, dict(config.arguments))
        self.hooks: List[HookBase] = []
        self.register_hooks(hooks)
        # The validation metrics of the unprocessed input (see utils/baseline.py); empty until computed.
        self.input_baseline: Dict[str, float] = {}
        self.frame_metrics = from_settings(config.validation_metrics, config.validation_metrics_crop_border)

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        """Append hooks, called in list order; a stateful one is saved with the run state (and restored by it)."""
        self.hooks.extend(hooks)
        fresh = self.run_state.attach_hooks(self.hooks)
        by_name = dict(zip(hook_names(self.hooks), self.hooks))
        for name in fresh:  # a checkpoint written before the hook had state
            logging.warning("--resume: the checkpoint holds no state of %s: %s", name, by_name[name].fresh_start)

    def learning_rate_text(self) -> str:
        """The learning rate of every parameter group, as the log shows it."""
        return format_learning_rate(current_learning_rates(self.optimizer))

    @property
    def best_values(self) -> List[float]:
        """Best value so far of every validation key."""
        return self.run_state.best_values

    def check_validation_keys(self) -> None:
        """Raise ValueError now, not after a training epoch, if a --validation_keys entry is not a loss key
        (from the first validation example in evaluation mode; see `first_loss_dict`)."""
        if self.validation_loader is None or not self.validation_keys or self.validation_loader.dataset is None:
            return
        loss_dict = first_loss_dict(unwrap(self.model_and_loss), self.validation_loader, False, None)
        if self.frame_metrics.in_loss_dict:  # added to every evaluation loss_dict of image outputs
            loss_dict = {**loss_dict, **dict.fromkeys(self.frame_metrics.names)}
        require_loss_keys(loss_dict, "--validation_keys", self.validation_keys)

    def check_training_key(self) -> None:
        """Raise ValueError now, not in the first training step, if --training_key is not a key of the loss_dict
        (from the first training example in training mode, whose loss_dict may differ from an evaluation's)."""
        if self.train_loader is None or self.train_loader.dataset is None:
            return
        loss_dict = first_loss_dict(unwrap(self.model_and_loss), self.train_loader, True, self.training_augmentation)
        require_loss_keys(loss_dict, "--training_key", [self.config.training_key])

    def compute_input_baseline(self) -> Dict[str, float]:
        """The validation metrics of the unprocessed input (see `input_baseline`), handed to the hooks."""
        loader = self.validation_loader
        # The whole dataset, not this rank's shard: a rank whose shard is empty still joins the pass's sum.
        if loader is None or loader.dataset is None or len(loader.dataset) == 0:
            return {}
        values = input_baseline(self.config, unwrap(self.model_and_loss), loader, self.validation_augmentation,
                                self.is_main, self.frame_metrics)
        if values is None:
            return {}
        self.input_baseline = values
        for hook in self.hooks:
            hook.after_input_baseline(self.input_baseline)
        return self.input_baseline

    def run(self) -> Dict[str, float]:
        """Run epochs start_epoch..total_epochs; returns the last epoch's statistics."""
        config = self.config
        last_stats: Dict[str, float] = {}
        with block("Runtime"):
            if self.train_loader is not None:
                logging.info("start_epoch: %d, total_epochs: %d", config.start_epoch, config.total_epochs)
            self.compute_input_baseline()
        for hook in self.hooks:
            hook.before_run(self)
        total_bar = ProgressBar(total=config.total_epochs, initial=config.start_epoch - 1, desc="Total", unit="ep",
                                logbook_every_update=True, position=0, leave=True,
                                disable=not self.is_main)
        error: Optional[BaseException] = None
        try:
            for epoch in range(config.start_epoch, config.total_epochs + 1):
                last_stats = self._run_epoch(epoch, total_bar)
        except BaseException as stopped:
            error = stopped
            raise
        finally:
            total_bar.close()
            for hook in self.hooks:
                hook.after_run(self, error)
        logging.info("Finished.")
        return last_stats

    def _pass(self, train: bool, epoch: int, lr: Optional[List[float]]) -> Dict[str, float]:
        """One training or validation pass, its events sent to the hooks and its means recorded."""
        config = self.config
        loader = self.train_loader if train else self.validation_loader
        recorder = None
        for hook in self.hooks:
            hook.before_pass(lr, train, epoch, config.total_epochs)
        if train:
            stats = EpochRunner(config, self.model_and_loss, loader, True, self.optimizer, self.training_augmentation,
                                self.hooks, self.grad_scaler).run("Train")
        else:
            # Not through DDP: its forward broadcasts buffers, which a rank without validation examples
            # never joins (the others waited for it until the process-group timeout).
            distributed.broadcast_buffers(unwrap(self.model_and_loss))
            # Image and batch records of validation passes, on the main process (the one that writes files).
            recorder = epoch_recorder(config, loader.dataset, epoch) if self.is_main else None
            runner = EpochRunner(config, unwrap(self.model_and_loss), loader, False, None, self.validation_augmentation,
                                 self.hooks, metrics=self.frame_metrics, keep_frames=True, recorder=recorder)
            stats = runner.run("Valid")
            if self.is_main:
                self.record_frames(loader.dataset, epoch, runner.frame_rows)
        for hook in self.hooks:
            hook.after_pass(stats, train, epoch, config.total_epochs)
        if self.is_main:
            record_pass(config, "training_losses" if train else "evaluation_losses", loader.dataset, epoch, stats,
                        recorder)
        return stats

    def record_frames(self, dataset: Dataset, epoch: int, rows: List[FrameRow]) -> None:
        """Write the pass's per-frame records (utils/frame_records.py); nothing for a pass without image outputs."""
        if not rows or not self.config.save:
            return
        source = unwrap(self.model_and_loss).source_checkpoint
        evaluation_only = self.train_loader is None
        checkpoint = source[0] if evaluation_only and source is not None else None
        if evaluation_only:
            checkpoint_epoch = source[1] if source is not None else None
        else:
            checkpoint_epoch = epoch
        filename = frame_records.write(self.config.save, type(dataset).__name__, epoch, rows, self.frame_metrics.names,
                                       self.frame_metrics.protocols(), checkpoint, checkpoint_epoch,
                                       self.frame_metrics.crop_border)
        logging.info("per-frame metrics of %d frames: %s", len(rows), filename)

    def _run_epoch(self, epoch: int, total_bar: ProgressBar) -> Dict[str, float]:
        config = self.config
        where = f"-- {config.device_label} on {socket.gethostname()} --"
        training = self.train_loader is not None  # else an evaluation-only run: no epochs, lr or best values
        title = (f"Epoch {epoch}/{config.total_epochs}" if training else "Evaluation") + " " * 24 + where
        with block(title, emph=True):
            for hook in self.hooks:
                hook.before_epoch(self, epoch)
            lr = current_learning_rates(self.optimizer)
            if lr is None:
                logging.info("Model: %s", config.model)
            else:
                logging.info("Model: %s  lr: %s", config.model, format_learning_rate(lr))
            stats: Dict[str, float] = {}
            if training:
                self.train_loader.set_epoch(epoch)
                stats = self._pass(True, epoch, lr)
            best_keys: List[str] = []
            if self.validation_loader is not None:
                stats = self._pass(False, epoch, lr)
                if self.input_baseline:
                    label = rank_label(True)
                    logging.info("Valid vs input%s: %s", f" ({label})" if label else "",
                                 baseline.compare_all(stats, self.input_baseline))
                require_loss_keys(stats, "--validation_keys", self.validation_keys)
                best_keys = update_best_values(stats, self.validation_keys, self.validation_modes, self.best_values)
            step_lr_scheduler(self.lr_scheduler, stats, self.validation_keys)
            if training:
                best = [f"best_{k}_avg={v:1.4f}" for k, v in zip(self.validation_keys, self.best_values)]
                total_bar.set_postfix_str(", ".join(([rank_label(True)] if best and rank_label(True) else []) + best),
                                          refresh=False)
            total_bar.update()
            eta = total_bar.eta_string()
            for hook in self.hooks:
                hook.after_epoch(self, epoch, stats, best_keys, eta)
            return stats


def stored_arguments(args: argparse.Namespace) -> Dict[str, Any]:
    """The arguments a checkpoint keeps (plain values only), from which `--resume` rebuilds the run."""
    plain = (str, int, float, bool, list, dict, type(None))
    return {key: value for key, value in vars(args).items() if isinstance(value, plain) and not key.endswith("_class")}

