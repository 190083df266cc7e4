"""What the registered GoPro dataset classes share: their flags, the defaults of a split kind, a class decorator.

The command line makes a flag of every constructor parameter of a registered class, so each split is a
class (`class GoProNahTrain(GoProNah)` in gopro_nah.py) decorated with `split_variant(split, defaults)`,
which gives it the constructor whose signature lists its flags with that split's defaults (the original's
flag names, order and defaults). A new split is one such decorated class.
"""
import argparse
import inspect
from typing import Any, Callable, Dict, Optional, Sequence

from datasets.gopro_common import Augmentation, parse_random_crop, parse_random_scales

# Every flag a GoPro dataset class can have, in the order of the original's signatures, with its type.
FLAG_TYPES: Dict[str, Any] = {
    "split": str,  # PairedFrames* only, as the next three
    "blur_template": str,
    "sharp_template": str,
    "frame_extension": str,
    "gamma_corrected_data": bool,
    "random_brightness": bool,
    "random_channel_permutation": bool,
    "random_contrast": bool,
    "random_crop": Sequence[int],
    "random_flips": bool,
    "random_hue": bool,
    "random_multiplicative_colors": bool,
    "random_noise": bool,
    "random_reverse": bool,
    "random_rotate": bool,
    "random_saturation": bool,
    "random_scales": Optional[str],
    "random_scales_min": float,
    "sequence_length": int,
    "num_samples_per_example": int,
    "num_workers": int,
    "num_examples": int,
    "cache_dir": Optional[str],
}

# What every flag means, for the variants' docstrings and so for `main.py --help`.
FLAG_DOCS: Dict[str, str] = {
    "root": "dataset folder: GOPRO_Large for GoProNah*, DeepVideoDeblurring_Dataset for GoProSu*",
    "split": "the value of {split} in the templates (e.g. train, val, test)",
    "blur_template": "folder of a sequence's blurry frames below the root; {seq}: the sequence folder, {split}: split",
    "sharp_template": "folder of a sequence's sharp frames below the root, as blur_template",
    "frame_extension": "the frames' file-name ending (case matters), e.g. .png or .jpg",
    "gamma_corrected_data": "read the gamma-corrected inputs (blur_gamma) instead of blur",
    "random_brightness": "random brightness jitter of every sample",
    "random_channel_permutation": "randomly permute the RGB channels of every sample",
    "random_contrast": "random contrast jitter of every sample",
    "random_crop": "[height, width] of one random crop per sample, the same for all its frames; [-1, -1]: full frames",
    "random_flips": "random horizontal and vertical flips",
    "random_hue": "random hue jitter of every sample",
    "random_multiplicative_colors": "multiply each colour channel by a random factor in [0.5, 2]",
    "random_noise": "add Gaussian noise (random sigma up to 0.04) to the inputs",
    "random_reverse": "reverse the frame order of half the samples",
    "random_rotate": "random rotations by multiples of 90 degrees",
    "random_saturation": "random saturation jitter of every sample",
    "random_scales": "rescale before cropping: none, weak (1/4, 1/3 or 1/2) or strong (uniform in "
                     "[random_scales_min, 1]); needs random_crop",
    "random_scales_min": "smallest scale of random_scales=strong",
    "sequence_length": "frames N per example (odd); the model sees input1..inputN, the centre one is deblurred",
    "num_samples_per_example": "independently augmented samples per example, merged into the batch",
    "num_workers": "DataLoader worker processes",
    "num_examples": "use a fixed random subset of this many examples; -1: all",
    "cache_dir": "folder for decoded frames (uint8 .npy, memory-mapped on later reads); none: decode every time",
}

# An evaluation split's defaults (full frames, no augmentation, one sample per example) ...
EVALUATION = {"random_brightness": False, "random_channel_permutation": False, "random_contrast": False,
              "random_crop": (-1, -1), "random_flips": False, "random_hue": False,
              "random_multiplicative_colors": False, "random_noise": False, "random_reverse": False,
              "random_rotate": False, "random_saturation": False, "random_scales": None, "sequence_length": 5,
              "num_samples_per_example": 1, "num_workers": 12, "num_examples": -1, "cache_dir": None}
# ... and what training splits change: geometric augmentation, reversal and 8 samples per example,
TRAINING = {"random_flips": True, "random_reverse": True, "random_rotate": True, "random_scales": "none",
            "num_samples_per_example": 8}
# ... and what the "full" splits add: photometric augmentation.
PHOTOMETRIC = {"random_brightness": True, "random_contrast": True, "random_hue": True}


def augmentation_from_flags(flags: Dict[str, Any], random_scales_min: float) -> Augmentation:
    """The Augmentation that a GoPro dataset's flags ask for."""
    switches = ("random_flips", "random_rotate", "random_multiplicative_colors", "random_brightness",
                "random_contrast", "random_saturation", "random_hue", "random_channel_permutation", "random_noise")
    return Augmentation(random_crop=parse_random_crop(flags["random_crop"]),
                        random_scales=parse_random_scales(flags["random_scales"]),
                        random_scales_min=random_scales_min, **{name: bool(flags[name]) for name in switches})


def split_variant(split: str, defaults: Dict[str, Any], root_doc: Optional[str] = None) -> Callable[[type], type]:
    """Class decorator: give a subclass of a GoPro reader the constructor of one split and its flags' defaults.

    The constructor's signature (what the command line turns into flags) is (args, root, then every flag of
    FLAG_TYPES that `defaults` sets, in that order, with its default); it calls the parent's constructor as
    parent(args, root, split, **flags). The class docstring gains an Args section from FLAG_DOCS.
    """

    def decorate(cls: type) -> type:
        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                      inspect.Parameter("args", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        annotation=Optional[argparse.Namespace]),
                      inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)]
        parameters += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[name],
                                         annotation=kind) for name, kind in FLAG_TYPES.items() if name in defaults]
        signature = inspect.Signature(parameters, return_annotation=None)

        def __init__(self: Any, *positional: Any, **keywords: Any) -> None:  # noqa: N807 -- the class's constructor
            bound = signature.bind(self, *positional, **keywords)
            bound.apply_defaults()
            flags = dict(bound.arguments)
            del flags["self"]
            super(cls, self).__init__(flags.pop("args"), flags.pop("root"), split, **flags)

        __init__.__signature__ = signature
        __init__.__annotations__ = {p.name: p.annotation for p in parameters[1:]} | {"return": None}
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__doc__ = f"{cls.__name__}: flags as in the signature; see the class docstring."
        docs = {**FLAG_DOCS, "root": root_doc or FLAG_DOCS["root"]}
        arguments = "".join(f"    {p.name}: {docs[p.name]}\n" for p in parameters[2:] if p.name in docs)
        cls.__init__ = __init__
        cls.__doc__ = f"{cls.__doc__}\n\nArgs:\n{arguments}"
        return cls

    return decorate
