"""Print the demo's result: PSNR of the blurred input and of the deblurred output on the test frames."""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from contrib.psnr import koehler_psnr  # noqa: E402
from datasets import DATASETS  # noqa: E402


def blurred_input_psnr(root: str, sequence_length: int = 5) -> float:
    """Mean paper-protocol PSNR of the blurred centre frame against the sharp frame over GoProNahTest."""
    dataset = DATASETS.get("GoProNahTest")(None, root=root, sequence_length=sequence_length)
    centre = f"input{sequence_length // 2 + 1}"
    values = []
    for index in range(len(dataset)):
        example = dataset[index]
        values.append(float(koehler_psnr(example[centre], example["target1"], scale_opt=True, trans_opt=True,
                                         trans_range=5)))
    return sum(values) / len(values)


def main() -> None:
    """Read the run folder's best checkpoint statistics and compare with the blurred input."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="GOPRO_Large-layout root of the demo data")
    parser.add_argument("--save", required=True, help="run folder of the demo")
    args = parser.parse_args()
    with open(os.path.join(args.save, "checkpoint_best_psnr.json"), encoding="utf-8") as handle:
        best = json.load(handle)
    with open(os.path.join(args.save, "checkpoint_latest_.json"), encoding="utf-8") as handle:
        latest = json.load(handle)
    blurred = blurred_input_psnr(args.data)
    print()
    print("==> Demo result on the generated GoProNahTest frames (paper protocol: grayscale, scale- and")
    print("    +-5 px shift-optimised PSNR)")
    print(f"    blurred input             : {blurred:6.2f} dB")
    print(f"    DBN, best epoch {best['epoch']:<2d}        : {best['psnr']:6.2f} dB")
    print(f"    DBN, last epoch {latest['epoch']:<2d}        : {latest['psnr']:6.2f} dB")
    print(f"    run folder                : {args.save}")
    print(f"    records                   : {os.path.join(args.save, 'csv')}, logbook.txt")
    print(f"    TensorBoard               : tensorboard --logdir {os.path.join(args.save, 'tb')}")


if __name__ == "__main__":
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    main()
