"""A drop-in dataset (copy into datasets/): GoProNahTrain with Gaussian noise on the blurry inputs.

The subclass forwards **kwargs to GoProNahTrain, so it keeps every flag of its parent
(`--training_dataset_root`, `_random_crop`, `_sequence_length`, ...) and adds `--training_dataset_noise_sigma`;
redefining a parent parameter (`num_samples_per_example`) changes that flag's default.
"""
import argparse
from typing import Any, Dict, Optional

import torch

from datasets.gopro_nah import GoProNahTrain
from datasets.registry import DATASETS


@DATASETS.register("GoProNahNoisy")
class GoProNahNoisy(GoProNahTrain):
    """GoProNahTrain whose blurry inputs get Gaussian noise of standard deviation `noise_sigma`."""

    def __init__(self, args: Optional[argparse.Namespace], noise_sigma: float = 0.01,
                 num_samples_per_example: int = 2, **kwargs: Any) -> None:
        super().__init__(args, num_samples_per_example=num_samples_per_example, **kwargs)
        self.noise_sigma = noise_sigma

    def example(self, index: int, uint8_images: bool = False) -> Dict[str, Any]:
        """The parent's example with noise on input1..inputN (float images: noise is not integral)."""
        example = super().example(index, uint8_images=False)
        for key in [key for key in example if key.startswith("input")]:
            noise = self.noise_sigma * torch.randn_like(example[key])  # torch's RNG: seeded per example
            example[key] = (example[key] + noise).clamp(0.0, 1.0)
        return example
