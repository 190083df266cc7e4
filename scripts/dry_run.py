"""DRY_RUN=1 of the launchers (common.sh's run_main): parse a main.py command line, print the result and
warn about every dataset folder, prewarping network and checkpoint it names that does not exist here.

    python scripts/dry_run.py --model=FlowDBN ... (the arguments main.py would get)

Exits 0 after warnings: a dry run checks a command line on a machine that need not hold the data.
"""
import json
import os
import sys
from argparse import Namespace
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import commandline  # noqa: E402
from datasets import mnist  # noqa: E402
from datasets.layout import LAYOUTS  # noqa: E402

PREWARPING_HINTS = {
    "model_pretrained_pwcnet": "download the released networks with `python scripts/get_data.py prewarping_networks "
                               "--root {experiments}`, or make one with `bash scripts/make_prewarping_network.sh "
                               "<that path>`",
    "model_pretrained_flownet": "train one with scripts/flow/train_flownet1s_with_sintel.sh or put the released "
                                "FlowNet1S checkpoint there",
}


# The folder each dataset of scripts/get_data.py unpacks to, and its name there (from the readers' layouts).
DOWNLOADS = {layout.folder: name for name, layout in LAYOUTS.items()}
# Datasets get_data.py checks by checksum instead of a layout: MNIST's root is that folder itself.
CHECKSUMMED_DOWNLOADS = {mnist.FOLDER: "mnist"}


def _dataset_remedy(root: str) -> str:
    folder = os.path.abspath(root)
    for name, download in {**DOWNLOADS, **CHECKSUMMED_DOWNLOADS}.items():
        if name in folder.split(os.sep):
            parent = folder[:folder.index(os.sep + name)] or os.sep
            return f"get it with `python scripts/get_data.py {download} --root {parent}`, or set DATASETS_HOME"
    return "put the dataset there or set DATASETS_HOME to the folder that holds it"


def missing_paths(args: Namespace, defaults: Dict[str, Any]) -> List[str]:
    """One warning line for each given dataset root, prewarping file or checkpoint that does not exist."""
    warnings = []
    for key, value in sorted(vars(args).items()):
        if value == defaults.get(key) or not isinstance(value, str) or value in ("", "None"):
            continue  # only paths given on the command line: defaults are placeholders or None
        if key.endswith("_dataset_root") and not os.path.isdir(value):
            warnings.append(f"warning: --{key}={value}: no such folder; {_dataset_remedy(value)}")
        elif key in PREWARPING_HINTS and not os.path.isfile(value):
            experiments = os.path.dirname(os.path.dirname(os.path.abspath(value)))
            warnings.append(f"warning: --{key}={value}: no such prewarping file; "
                            + PREWARPING_HINTS[key].format(experiments=experiments))
        elif key == "checkpoint" and not os.path.exists(value):
            warnings.append(f"warning: --checkpoint={value}: no such file or run folder; set CHECKPOINT to a "
                            "trained checkpoint")
    return warnings


def main(argv: List[str]) -> None:
    """Print the command line, the parsed and non-default arguments, then the warnings (stderr)."""
    try:
        argv = commandline.expand_config(argv)  # the command line main.py runs, the file's flags first
    except commandline.ConfigError as error:
        sys.exit(f"dry_run.py: error: {error}")
    args, defaults = commandline.parse_arguments(argv)
    print("command line: " + json.dumps(argv))
    print("parsed arguments: " + json.dumps(vars(args), sort_keys=True, default=str))
    print("non-default arguments: " + json.dumps(commandline.non_default_arguments(args, defaults), default=str))
    for line in missing_paths(args, defaults):
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
