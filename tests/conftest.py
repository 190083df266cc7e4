"""Shared fixtures: every test starts from the same random state; tiny generated GoPro-like data and
prewarping checkpoints are made once per test session."""
import random

import numpy as np
import pytest
import torch

from tests import helpers


def pytest_collection_modifyitems(config, items) -> None:
    """Slow tests first, in the order collection (or pytest-randomly's seed) gave them, then the others.

    scripts/run_tests.sh has each pytest-xdist worker take the next test when it is done with one: with the
    long end-to-end runs at the front, the short tests fill the end, instead of one worker running a
    15-second test while the other has nothing left to do.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def seeded_random_state() -> None:
    """Each test starts from seed 0 of Python's, NumPy's and torch's generators, whatever ran before it."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def nah_root(tmp_path_factory) -> str:
    """GOPRO_Large layout: 2 training and 1 test sequence of 6 frames at 64x48."""
    from tools.synthetic_gopro import make_gopro_nah

    root = tmp_path_factory.mktemp("gopro")
    return str(make_gopro_nah(str(root), width=64, height=48, num_frames=6, train_sequences=2, test_sequences=1,
                              seed=0, sub_frames=5))


@pytest.fixture(scope="session")
def constant_flow_pwcnet_checkpoint(tmp_path_factory) -> str:
    """Prewarping checkpoint of helpers.constant_flow_pwcnet (flow exactly helpers.CONSTANT_FLOW)."""
    path = tmp_path_factory.mktemp("prewarping") / "pwcnet_constant_flow.ckpt"
    return helpers.save_model_checkpoint(path, helpers.constant_flow_pwcnet().state_dict())


@pytest.fixture(scope="session")
def random_pwcnet_checkpoint(tmp_path_factory) -> str:
    """Prewarping checkpoint of helpers.random_pwcnet (tamed random weights)."""
    path = tmp_path_factory.mktemp("prewarping") / "pwcnet_random.ckpt"
    return helpers.save_model_checkpoint(path, helpers.random_pwcnet().state_dict())


@pytest.fixture
def register(request):
    """`register(registry, name, obj)`: `obj` registered under `name` for this test only."""

    def add(registry, name: str, obj):
        registry.register(name, obj)
        request.addfinalizer(lambda: registry.unregister(name) if name in registry else None)
        return obj

    return add


@pytest.fixture()
def tiny_deblur():
    """examples/drop_in/tiny_deblur.py's TinyDeblur (a fraction of DBN's time), registered for one test only."""
    import importlib.util

    from models import MODELS

    spec = importlib.util.spec_from_file_location("tests_tiny_deblur", helpers.REPO / "examples/drop_in/tiny_deblur.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.TinyDeblur
    MODELS.unregister("TinyDeblur")
