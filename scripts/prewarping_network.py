"""Turn a `--model=PWCNet` run of main.py into a FlowDBN prewarping checkpoint and measure it.

The written file has the original's prewarping format: {"state_dict": {"model.pwcnet_impl.*": tensor},
"epoch": int, "epe": float, "zero_flow_epe": float}. It is loaded exactly as FlowDBN loads it
(strictly, through --model_pretrained_pwcnet) before the EPE on the validation pairs is measured, so
a file that this script writes is known to work with FlowDBN.

Usage: python scripts/prewarping_network.py --run RUN_FOLDER_OR_CKPT --output pwcnet.ckpt
       [--data FLYINGCHAIRS_DATA_FOLDER]   (FlyingChairsValid pairs for the EPE; FlyingChairsFull
                                            when the folder has no split file)
"""
import argparse
import os
import sys
from typing import Dict

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.flyingchairs import FlyingChairsFull, FlyingChairsValid, find_split_file  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402
from utils.checkpoints import find_checkpoint, load_file  # noqa: E402

PREFIX = "model.pwcnet_impl."


def export(run: str, output: str) -> Dict[str, object]:
    """Write the PWC-Net weights of a run's latest checkpoint to `output`; returns what was written."""
    filename = find_checkpoint(run, "latest")
    checkpoint = load_file(filename)
    state_dict = {key: value for key, value in checkpoint["state_dict"].items() if key.startswith(PREFIX)}
    expected = {"model." + key for key in PWCNet().state_dict()}
    if set(state_dict) != expected:
        raise ValueError(f"'{filename}' is not a checkpoint of a --model=PWCNet run: it has {len(state_dict)} of the "
                         f"{len(expected)} model.pwcnet_impl.* tensors")
    exported = {"state_dict": {key: value.detach().cpu().contiguous() for key, value in state_dict.items()},
                "epoch": int(checkpoint.get("epoch", 0))}
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    torch.save(exported, output)
    return exported


def evaluate(checkpoint: str, data: str, batch_size: int = 8) -> Dict[str, float]:
    """EPE of the prewarping network loaded the way FlowDBN loads it, and of zero flow, on generated pairs."""
    model = FlowDBN(sequence_length=5, pretrained_pwcnet=checkpoint)
    network = model.flowdbn.warping_network.network.eval()
    dataset = FlyingChairsValid(None, data) if find_split_file(data) else FlyingChairsFull(None, data)
    errors, zero_errors, count = 0.0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            examples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = {key: torch.stack([e[key] for e in examples]) for key in ("input1", "input2", "target1")}
            flow = network(batch)["flow1"]
            errors += float((flow - batch["target1"]).norm(dim=1).mean(dim=(1, 2)).sum())
            zero_errors += float(batch["target1"].norm(dim=1).mean(dim=(1, 2)).sum())
            count += len(examples)
    return {"epe": errors / count, "zero_flow_epe": zero_errors / count, "pairs": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run folder (checkpoint_latest_.ckpt) or checkpoint file")
    parser.add_argument("--output", required=True, help="prewarping checkpoint to write")
    parser.add_argument("--data", default=None, help="FlyingChairs-layout folder whose pairs measure the EPE")
    options = parser.parse_args()
    exported = export(options.run, options.output)
    print(f"wrote {len(exported['state_dict'])} PWC-Net tensors (epoch {exported['epoch']}) to {options.output}")
    if options.data is not None:
        metrics = evaluate(options.output, options.data)
        exported.update(epe=metrics["epe"], zero_flow_epe=metrics["zero_flow_epe"])
        torch.save(exported, options.output)
        print(f"loaded strictly as FlowDBN --model_pretrained_pwcnet; on {metrics['pairs']} held-out generated pairs: "
              f"EPE {metrics['epe']:.3f} px (zero flow: {metrics['zero_flow_epe']:.3f} px)")
        if metrics["epe"] >= 0.9 * metrics["zero_flow_epe"]:
            print("note: this network is hardly better than zero flow, so its warped frames are close to the "
                  "unwarped ones; it lets FlowDBN run, but for useful prewarping train longer (e.g. "
                  "PREWARPING_EPOCHS=100 PREWARPING_PAIRS=2000) or use the released prewarping networks")


if __name__ == "__main__":
    main()
