"""torch.distributed helpers for `torchrun` launches; single-process runs see rank 0 of 1."""
import contextlib
import datetime
import logging
import os
import re
from typing import Any, Dict, Iterator, List, Optional

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

import constants


def is_distributed() -> bool:
    """Whether a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without torchrun)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Only rank 0 writes records, checkpoints, TensorBoard and Telegram messages."""
    return rank() == 0


def local_world_size() -> int:
    """Processes on this machine: torchrun's LOCAL_WORLD_SIZE (1 without torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if launched_by_torchrun() else 1


def launched_by_torchrun() -> bool:
    """torchrun (or torch.distributed.launch) sets WORLD_SIZE and RANK for every process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_environment(cuda: bool, timeout_minutes: float = constants.DISTRIBUTED_TIMEOUT_MINUTES) -> torch.device:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs); returns this rank's device.

    A collective that waits longer than `timeout_minutes` for a peer fails (gloo: an exception that
    `collective` turns into one line; NCCL: torch's watchdog logs the rank and the operation, then ends the
    process), so a dead or stuck peer ends the run in bounded time instead of holding every GPU.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_minutes))
    logging.info("distributed: rank %d of %d (local rank %d), backend %s, timeout %g min", rank(), world_size(),
                 local_rank, dist.get_backend(), timeout_minutes)
    return device


class CollectiveError(RuntimeError):
    """A collective operation that failed or timed out: a peer died, or stalled past the timeout."""


def _is_collective_failure(error: BaseException) -> bool:
    return isinstance(error, dist.DistError) or bool(re.search(
        r"gloo|NCCL|Timed out|timed out|Connection closed by peer|Connection reset", str(error)))


@contextlib.contextmanager
def collective(name: str) -> Iterator[None]:
    """Within a process group: a failed collective becomes one line naming this rank and `name`."""
    try:
        yield
    except RuntimeError as error:
        if not is_distributed() or isinstance(error, CollectiveError) or not _is_collective_failure(error):
            raise
        detail = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[0] if str(error).strip() else "")
        raise CollectiveError(f"rank {rank()} of {world_size()}: {name} failed (a peer died, or stalled longer "
                              f"than --distributed_timeout_minutes): {detail}") from error


def shutdown(synchronize: bool = False) -> None:
    """Leave the process group; with `synchronize` (every rank finished the run) after a barrier, so that no rank
    tears down its connections while another still uses them (gloo aborted the process: 'terminate called
    without an active exception'). A failed rank does not wait: the others may never arrive."""
    if is_distributed():
        if synchronize:
            try:
                with collective("the barrier at the end of the run"):
                    dist.barrier()
            except CollectiveError as error:  # the run itself finished: say so, and still leave the group
                logging.error("%s", error)
        dist.destroy_process_group()


def sum_over_ranks(sums: Dict[str, float], name: str = "values") -> Dict[str, float]:
    """Add up every rank's dict of floats (identity without a process group).

    A rank that saw no example (a validation set smaller than the world size) has no keys at all; the
    dicts are gathered whole, so such a rank still takes part and adds nothing. Every rank adds them in
    rank order, in float64, and so gets the same result.
    """
    if not is_distributed():
        return dict(sums)
    gathered: List[Optional[Dict[str, float]]] = [None] * world_size()
    with collective(f"summing {name} over ranks"):
        dist.all_gather_object(gathered, {key: float(value) for key, value in sums.items()})
    total: Dict[str, float] = {}
    for part in gathered:
        for key, value in (part or {}).items():
            total[key] = total.get(key, 0.0) + value
    return total


def min_over_ranks(value: torch.Tensor, name: str) -> int:
    """The smallest of every rank's integer scalar (the value itself without a process group)."""
    if not is_distributed():
        return int(value)
    value = value.clone()
    with collective(name):
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return int(value)


def gather_to_main(value: Any, name: str) -> List[Any]:
    """Every rank's `value` (picklable), in rank order, on rank 0; other ranks get an empty list."""
    if not is_distributed():
        return [value]
    gathered: List[Any] = [None] * world_size() if is_main_process() else []
    with collective(name):
        dist.gather_object(value, gathered if is_main_process() else None, dst=0)
    return gathered


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), as DistributedDataParallel's forward does.

    Evaluation runs on the unwrapped module, so that a rank without examples need not join a forward's
    broadcast; after training each rank's statistics are those of its own last batch, so they are made
    rank 0's (the ones its checkpoint holds) here, with every rank taking part.
    """
    if is_distributed():
        with collective("broadcasting rank 0's buffers before validation"):
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)


def check_replicas_agree(module: torch.nn.Module) -> bool:
    """After training: whether every rank holds the same parameters (compared by their float64 sum, which DDP's
    synchronised updates make bit-identical); rank 0 logs the outcome."""
    parameters = list(module.parameters())
    device = parameters[0].device if parameters else torch.device("cpu")
    total = torch.tensor([sum(float(p.detach().double().sum()) for p in parameters)], dtype=torch.float64,
                         device=device)
    sums = [torch.zeros_like(total) for _ in range(world_size())]
    with collective("comparing the parameters of all ranks after training"):
        dist.all_gather(sums, total)
    values = [float(s) for s in sums]
    agree = all(v == values[0] for v in values)
    if is_main_process():
        if agree:
            logging.info("parameters identical on all %d ranks (sum %.10e)", len(values), values[0])
        else:
            logging.error("parameters differ between ranks after training (sums %s): the replicas diverged",
                          ", ".join(f"{v:.10e}" for v in values))
    return agree


class ShardSampler(Sampler):
    """Every rank takes indices rank, rank + world, ... in order: no padding, so validation means stay exact."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __iter__(self) -> Iterator[int]:
        return iter(range(rank(), self.length, world_size()))

    def __len__(self) -> int:
        return len(range(rank(), self.length, world_size()))
