"""torch.distributed helpers for `torchrun` launches; single-process runs see rank 0 of 1."""
import logging
import os
from typing import Iterator, List

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


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


def launched_by_torchrun() -> bool:
    """torchrun (or torch.distributed.launch) sets WORLD_SIZE and RANK for every process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_environment(cuda: bool) -> torch.device:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs); returns this rank's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    logging.info("distributed: rank %d of %d (local rank %d), backend %s", rank(), world_size(), local_rank,
                 dist.get_backend())
    return device


def shutdown(synchronize: bool = False) -> None:
    """Leave the process group; with `synchronize` (every rank finished the run) after a barrier, so that no rank
    tears down its connections while another still uses them (gloo aborted the process: 'terminate called
    without an active exception'). A failed rank does not wait: the others may never arrive."""
    if is_distributed():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: List[float], device: torch.device) -> List[float]:
    """Sum a list of floats over all ranks (identity without a process group)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def check_replicas_agree(module: torch.nn.Module) -> bool:
    """After training: whether every rank holds the same parameters (compared by their float64 sum, which DDP's
    synchronised updates make bit-identical); rank 0 logs the outcome."""
    parameters = list(module.parameters())
    device = parameters[0].device if parameters else torch.device("cpu")
    total = torch.tensor([sum(float(p.detach().double().sum()) for p in parameters)], dtype=torch.float64,
                         device=device)
    sums = [torch.zeros_like(total) for _ in range(world_size())]
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
