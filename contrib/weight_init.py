"""Weight initialisation schemes of the original models (spec §3.2, §3.4, §3.5)."""
import logging
import math

import torch.nn as nn

INIT_TYPES = ("fan_max", "fan_in", "fan_out")

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fan_max_std(module: nn.Module) -> float:
    """The original's fan_max standard deviation sqrt((2 / max(in, out)) · kh · kw).

    The kernel area multiplies instead of dividing (operator precedence as written in the
    original, probably meant as 2 / (max · kh · kw)); reproduced so that training from scratch
    starts from the same distribution.
    """
    kh, kw = module.kernel_size
    return math.sqrt((2.0 / max(module.in_channels, module.out_channels)) * kh * kw)


def initialize_dbn(module: nn.Module, init_type: str = "fan_max") -> None:
    """DBN init: conv/deconv weights by `init_type`, biases 0, BatchNorm weight 1 and bias 0."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"--model_init_type must be one of {', '.join(INIT_TYPES)}; got '{init_type}'")
    logging.getLogger(__name__).info("Initializing %s", init_type.upper())
    for m in module.modules():
        if isinstance(m, _CONVS):
            if init_type == "fan_max":
                nn.init.normal_(m.weight, mean=0.0, std=fan_max_std(m))
            else:
                nn.init.kaiming_normal_(m.weight, mode=init_type, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BATCHNORMS) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def initialize_msra_leaky(module: nn.Module) -> None:
    """Flow-net init: kaiming_normal_(fan_in, 'leaky_relu', a=0 → gain √2) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, _CONVS):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in", nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def initialize_msra(module: nn.Module) -> None:
    """LeNet init (spec §12.3): conv/deconv weights kaiming_normal_(fan_out, relu), biases 0, BatchNorm 1/0.

    Other layers with parameters (LeNet's Linear layers) keep PyTorch's default init; their parameter
    counts are logged per class, as the original does.
    """
    log = logging.getLogger(__name__)
    log.info("Initializing MSRA")
    untouched = {}
    for m in module.modules():
        if isinstance(m, _CONVS):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BATCHNORMS) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif m is not module and not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            count = sum(p.numel() for p in m.parameters(recurse=False))
            if count:
                untouched[type(m).__name__] = untouched.get(type(m).__name__, 0) + count
    for name, count in untouched.items():
        log.info("Found uninitialized layer of type '%s' [%d params]", name, count)
