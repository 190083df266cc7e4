"""Registry behaviour and the registered names the original's users rely on."""
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
