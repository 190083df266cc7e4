"""What several test modules share: the original's formats as test data, well-conditioned models and
prewarping checkpoints, and the environment of the processes the tests start."""
import contextlib
import io
import json
import os
import types
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
# Facts about the original implementation (state-dict keys and shapes, its scripts' argument namespaces,
# its flags per class), copied from the project's specification so that every clone tests them.
REFERENCE = Path(__file__).resolve().parent / "data" / "reference"

# Flow of the constant-flow PWC-Net, in pixels: exact binary fractions at every pyramid level.
CONSTANT_FLOW = (8.0, -4.0)


def reference_json(relative_path: str) -> Any:
    """One JSON file of tests/data/reference."""
    return json.loads((REFERENCE / relative_path).read_text())


def script_args(datasets_home: str, experiments_home: str) -> Dict[str, dict]:
    """The original scripts' argv, argument namespace and non-default arguments, with the placeholders
    $DATASETS_HOME and $EXPERIMENTS_HOME replaced by the given folders."""
    text = (REFERENCE / "script-args.json").read_text()
    text = text.replace("$DATASETS_HOME", datasets_home).replace("$EXPERIMENTS_HOME", experiments_home)
    return {name: entry for name, entry in json.loads(text).items() if not name.startswith("_")}


def subprocess_env(**extra: str) -> Dict[str, str]:
    """This environment, with the thread count of this process, so that results computed in a subprocess
    round like the ones computed here."""
    return dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), **extra)


def run_main(*argv: str) -> types.SimpleNamespace:
    """`main.main(argv)` in this process, with what it prints captured: the returncode, stdout and stderr a
    `python main.py` subprocess gives, without starting an interpreter and importing torch again.

    For tests where a separate process is not the point; SIGKILL, torchrun, two concurrent runs and the
    launch scripts need real processes.
    """
    import main
    from utils.logger import configure_logging

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            returncode = main.main(list(argv))
        except SystemExit as exit:  # argparse's errors and --help
            returncode = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        finally:
            configure_logging(None)
    return types.SimpleNamespace(returncode=returncode, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def save_model_checkpoint(path: Path, state_dict: Dict[str, torch.Tensor], prefix: str = "model.",
                          **entries: Any) -> str:
    """A checkpoint in the framework's format: `entries` (loss values, epoch, ...) plus the prefixed state_dict."""
    torch.save({**entries, "state_dict": {prefix + key: value for key, value in state_dict.items()}}, path)
    return str(path)


def tame(model: torch.nn.Module, seed: int = 0, residual: Optional[float] = None) -> torch.nn.Module:
    """Kaiming fan-in weights (activations of order 1, outputs not saturated) for DBN, FlowDBN's DBN part or
    a flow network, and optionally a small residual scale in DBN's last BatchNorm.

    For FlowDBN only the DBN part changes: the flow network keeps the weights of its checkpoint.
    """
    from models.flowdbn import FlowDBN

    torch.manual_seed(seed)
    trained = model.flowdbn.dbn_net if isinstance(model, FlowDBN) else model
    for module in trained.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    dbn = model.flowdbn.dbn_net if isinstance(model, FlowDBN) else getattr(model, "dbn_net", None)
    if residual is not None and dbn is not None:
        dbn.f15[1].weight.data.fill_(residual)
    return model


def random_pwcnet(seed: int = 1) -> torch.nn.Module:
    """A PWC-Net with tamed random weights: flows of many pixels that change with every input."""
    from models.pwcnet import PWCNet

    return tame(PWCNet(div_flow=0.05), seed=seed)


def constant_flow_pwcnet(flow: Sequence[float] = CONSTANT_FLOW) -> torch.nn.Module:
    """A PWC-Net whose every layer runs but whose flow heads have zero weights and a bias of `flow` pixels, so
    its flow is exactly `flow` everywhere: a well-conditioned prewarping network whose results do not depend
    on float rounding (random flows put pixels on the discontinuity of PWC-Net's `mask >= 1` warping)."""
    net = random_pwcnet(seed=0)
    impl = net.pwcnet_impl
    for estimator in impl.flow_estimators:
        estimator.conv_last[0].weight.data.zero_()
        estimator.conv_last[0].bias.data.copy_(torch.tensor(flow) * 0.05)
    impl.context_network.convs[-1][0].weight.data.zero_()
    impl.context_network.convs[-1][0].bias.data.zero_()
    return net


def trainer_with_default_hooks(*args: Any, visualizer: Optional[torch.nn.Module] = None, save_checkpoints: bool = True,
                               **kwargs: Any):
    """A runtime.Trainer with the hooks main.py gives it: the visualizer (if any), then callbacks.default_hooks."""
    import callbacks  # here, not above: most test modules that use these helpers never build a Trainer
    import runtime

    trainer = runtime.Trainer(*args, hooks=[visualizer] if visualizer is not None else [], **kwargs)
    trainer.register_hooks(callbacks.default_hooks(trainer.config, trainer.run_state, save_checkpoints, True))
    return trainer
