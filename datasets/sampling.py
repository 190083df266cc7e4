"""Loader keys: the training loop's sampler fixes each example's randomness and asks for uint8 images.

A `KeyedDataset` answers two kinds of keys:
  dataset[i]                       float images in [0, 1], augmentation drawn from the global RNGs
                                   (python `random`, numpy, torch), as a plain map-style dataset;
  dataset[LoaderKey(i, seed)]      what `SeededSampler` yields for the framework's DataLoader:
                                   augmentation drawn from RNGs seeded by (seed, i) only, images
                                   left as uint8 where the augmentation keeps them integral
                                   (`runtime.to_device` converts them to float on the device, so
                                   workers pass a quarter of the bytes between processes).
Because a sample's randomness depends on the epoch's seed and the example index alone, not on the
worker that loads it or on what that worker loaded before, a run gives the same batches with 0, 1
or 12 workers, persistent workers are safe, and `--resume` continues exactly.
"""
import abc
import contextlib
import random
from typing import Any, Dict, Iterator, List, NamedTuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class LoaderKey(NamedTuple):
    """A dataset index plus the seed of the epoch it is loaded in."""

    index: int
    seed: int


@contextlib.contextmanager
def seeded_randomness(seed: int, index: int) -> Iterator[None]:
    """Seed python's, numpy's and torch's global CPU RNGs from (seed, index); restore them afterwards."""
    python_seed, numpy_seed, torch_seed = np.random.SeedSequence([seed, index]).generate_state(3)
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(int(python_seed))
    np.random.seed(int(numpy_seed))
    torch.default_generator.manual_seed(int(torch_seed))  # the CPU's only: CUDA generators stay untouched
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class KeyedDataset(Dataset, abc.ABC):
    """Map-style dataset that also answers `LoaderKey`s; subclasses implement `example`."""

    @abc.abstractmethod
    def example(self, index: int, uint8_images: bool) -> Dict[str, Any]:
        """Example `index`; with `uint8_images` its images may stay uint8 in [0, 255] instead of float."""

    def __getitem__(self, key: Union[int, LoaderKey]) -> Dict[str, Any]:
        if isinstance(key, LoaderKey):
            with seeded_randomness(key.seed, key.index):
                return self.example(key.index, uint8_images=True)
        return self.example(int(key), uint8_images=False)


class SeededSampler(Sampler):
    """Wraps a sampler of indices into one of `LoaderKey`s, drawing one seed per epoch from torch's RNG."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler (DistributedSampler shuffles by it)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[LoaderKey]:
        # Drawn in the main process, whose RNG state checkpoints keep: a resumed run draws the same seeds.
        seed = int(torch.randint(0, 2 ** 62, ()))
        for index in self.sampler:
            yield LoaderKey(int(index), seed)


def images_to_float(value: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] → float32 in [0, 1] (exactly what the datasets compute); others unchanged."""
    if value.dtype == torch.uint8:
        return value.float().div_(255.0)
    return value


def check_num_examples(num_examples: int) -> None:
    """Raise ValueError unless num_examples is -1 (every example) or positive."""
    if num_examples == 0 or num_examples < -1:
        raise ValueError(f"num_examples={num_examples}: expected -1 (every example) or a positive number")


def deterministic_indices(k: int, n: int, seed: int) -> List[int]:
    """The original's subset (spec §14): the first k of 0..n-1 shuffled by random.Random(seed), sorted."""
    indices = list(range(n))
    random.Random(seed).shuffle(indices)
    return sorted(indices[:k])
