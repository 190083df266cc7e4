"""LeNet for MNIST (spec §12): the framework's smallest complete model, 1,111,947 parameters."""
from argparse import Namespace
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from contrib.weight_init import initialize_msra
from models.registry import MODELS


@MODELS.register("LeNet")
class LeNet(nn.Module):
    """Two 5×5 convolutions with max-pooling, two linear layers, dropout 0.5; `input1` (B, 1, 28, 28) →
    `output1` (B, 10) log-probabilities.

    `peter` is a scalar parameter that the forward pass never uses: it is there to show
    `--param_scheduler_group` (e.g. `{'params': '*peter*', 'scheduler': 'ExponentialLR', 'init': 100.0,
    'gamma': 0.7}`) on a model.
    """

    def __init__(self, args: Optional[Namespace] = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5)
        self.fc1 = nn.Linear(1024, 1024)
        self.fc2 = nn.Linear(1024, 10)
        self.peter = nn.Parameter(torch.ones(1))
        initialize_msra(self)

    def forward(self, example_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Log-probabilities of the ten classes; dropout only in training mode."""
        x = example_dict["input1"]
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            # The original reshapes to (-1, 1024), which silently changes the batch size for other sizes.
            raise ValueError(f"LeNet needs input1 of shape (B, 1, 28, 28) (MNIST), got {tuple(x.shape)}")
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.reshape(x.size(0), -1)))
        x = F.dropout(x, p=0.5, training=self.training)
        return {"output1": F.log_softmax(self.fc2(x), dim=1)}
