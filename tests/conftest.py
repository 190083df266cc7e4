"""Shared fixtures: tiny generated GoPro-like data, made once per test session."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def nah_root(tmp_path_factory) -> str:
    """GOPRO_Large layout: 2 training and 1 test sequence of 6 frames at 64x48."""
    from datasets.synthetic_gopro import make_gopro_nah

    root = tmp_path_factory.mktemp("gopro")
    return str(make_gopro_nah(str(root), width=64, height=48, num_frames=6, train_sequences=2, test_sequences=1,
                              seed=0, sub_frames=5))
