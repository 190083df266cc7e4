"""Registry behaviour and the registered names the original's users rely on."""
from pathlib import Path

import pytest

from utils.registry import Registry


def test_register_decorator_and_call():
    registry = Registry("thing")

    @registry.register("Alpha")
    class A:
        pass

    class B:
        pass

    registry.register(obj=B)
    assert registry.get("Alpha") is A
    assert registry.get("B") is B
    assert registry.names() == ["Alpha", "B"]
    assert "Alpha" in registry and "C" not in registry
    assert len(registry) == 2


def test_duplicate_name_raises():
    registry = Registry("thing")
    registry.register("X", obj=int)
    with pytest.raises(KeyError, match="thing 'X' is already registered"):
        registry.register("X", obj=float)


def test_unknown_name_lists_registered():
    registry = Registry("model")
    registry.register("DBN", obj=int)
    registry.register("FlowDBN", obj=float)
    with pytest.raises(KeyError, match=r"unknown model 'Foo'; registered: DBN, FlowDBN"):
        registry.get("Foo")


def test_original_registered_names_present():
    from datasets import DATASETS
    from losses import LOSSES
    from models import MODELS
    from optim import LR_SCHEDULERS, OPTIMIZERS

    assert {"DBN", "FlowDBN", "FlowNet1S", "PWCNet"} <= set(MODELS.names())
    assert {"DBNLoss", "MultiScaleEPE"} <= set(LOSSES.names())
    assert {"GoProNahTrain", "GoProNahTest", "GoProNahFull", "GoProNahGammaTrain", "GoProNahGammaTest",
            "GoProNahGammaFull", "GoProSuQuantitativeTrain", "GoProSuQuantitativeValid",
            "GoProSuQuantitativeFull", "GoProSuQualitative"} <= set(DATASETS.names())
    assert {"Adam", "SGD", "AdamW", "AdaBound"} <= set(OPTIMIZERS.names())
    assert {"MultiStepLR", "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau"} <= set(
        LR_SCHEDULERS.names())
    # Helper imports of torch.optim.lr_scheduler (Optimizer, Counter, partial) are not schedulers.
    assert "Optimizer" not in LR_SCHEDULERS and "partial" not in LR_SCHEDULERS


def _package(tmp_path, name, modules):
    """A package folder `name` under tmp_path whose __init__ discovers its modules; `modules` maps file -> text."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("from utils.registry import import_package_modules\n"
                                        "FOUND = import_package_modules(__name__, __path__)\n")
    for filename, text in modules.items():
        (folder / filename).write_text(text)
    return folder


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """tmp_path on sys.path; packages imported from it are forgotten afterwards."""
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_every_module_of_a_package_folder_is_imported_in_name_order(importable):
    import importlib

    log = "import builtins\nbuiltins.__dict__.setdefault('discovery_log', []).append(__name__)\n"
    _package(importable, "dropins_ok", {"b_model.py": log, "a_model.py": log, "_private.py": "raise ValueError\n",
                                        "notes.txt": "not python"})
    import builtins

    builtins.discovery_log = []
    try:
        package = importlib.import_module("dropins_ok")
        assert package.FOUND == ["a_model", "b_model"]
        assert builtins.discovery_log == ["dropins_ok.a_model", "dropins_ok.b_model"]
    finally:
        del builtins.discovery_log


def test_a_module_that_fails_to_import_stops_with_its_file_named(importable):
    import importlib

    _package(importable, "dropins_broken", {"good.py": "X = 1\n", "tiny.py": "import not_a_module_anywhere\n"})
    with pytest.raises(ImportError, match=r"^cannot import dropins_broken/tiny\.py: ModuleNotFoundError: "
                                          r"No module named 'not_a_module_anywhere'$") as caught:
        importlib.import_module("dropins_broken")
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_the_packages_import_a_dropped_in_module(tmp_path, monkeypatch):
    """models/ discovers a file it has never heard of: here a copy of the package with one extra module."""
    import importlib
    import shutil
    import sys

    from tests.helpers import REPO

    shutil.copytree(REPO / "models", tmp_path / "models", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "models" / "tiny.py").write_text(
        "import torch\nfrom models.registry import MODELS\n\n\n@MODELS.register('TinyDropIn')\n"
        "class TinyDropIn(torch.nn.Module):\n    pass\n")
    saved = {name: module for name, module in sys.modules.items() if name == "models" or name.startswith("models.")}
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "TinyDropIn" in importlib.import_module("models").MODELS
    finally:
        for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_unregister_removes_a_name_and_the_register_fixture_cleans_up(register):
    from models import MODELS

    class Extra:
        pass

    register(MODELS, "Extra", Extra)
    assert MODELS.get("Extra") is Extra
    assert MODELS.unregister("Extra") is Extra and "Extra" not in MODELS
    with pytest.raises(KeyError, match="unknown model 'Extra'"):
        MODELS.unregister("Extra")


def test_plug_in_folders_hold_no_command_line_tools():
    """Discovery imports every module of a plug-in folder: a tool with its own command line lives in tools/."""
    repo = Path(__file__).resolve().parents[1]
    folders = ("augmentations", "datasets", "losses", "models", "optim", "visualizers")
    tools = [str(path.relative_to(repo)) for folder in folders for path in sorted((repo / folder).glob("*.py"))
             if '__name__ == "__main__"' in path.read_text(encoding="utf-8")]
    assert tools == []
