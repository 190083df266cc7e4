"""Evaluate and compare runs from their per-frame records; the original's `stats` and `cleanup` of a folder of runs.

    python scripts/compare_runs.py RUN [RUN ...] [--evaluate] [--split test|validation] [--checkpoint best|latest]
        [--dataset CLASS] [--dataset_root DIR] [--metrics psnr,ssim] [--markdown|--csv|--latex]
        [--evaluate options: --nproc_per_node K --cuda BOOL --output DIR --reevaluate] [-- main.py flags]
    python scripts/compare_runs.py stats [ROOT] [--keys xe,psnr,...]
    python scripts/compare_runs.py cleanup [ROOT] [--delete] [--keep 5]

Tables: one row per run (model, parameters, GFLOP per example at the dataset's frame size, the epoch
evaluated, every metric, the input's value and the gain over it: means over frames); runs whose stored
arguments differ only in --seed and in keys that do not change the result (utils/compare.py: IGNORED_*)
form a group: mean ± std (ddof=1) over its runs; every later group (or run) against the first: the
per-sequence paired differences' mean (frame-weighted) with a 95% percentile bootstrap interval over
sequences (10,000 resamples, seed 0). --evaluate first evaluates each run's chosen checkpoint with main.py
(the model rebuilt from the checkpoint's own weights, FlowDBN's flow network included) into
<RUN>/evaluations/<Dataset>-<mode>-epoch<NNN>/ (or under --output), under torchrun with --nproc_per_node > 1;
flags after `--` go to main.py (e.g. --validation_metrics=...).
"""
import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from bench_flops import count  # noqa: E402 -- FLOPs counted as bench/bench_flops.py counts them

import commandline  # noqa: E402
from datasets import DATASETS  # noqa: E402
from models.flowdbn import FLOW_PREFIX  # noqa: E402
from utils import checkpoints  # noqa: E402
from utils.compare import (  # noqa: E402
    INPUT_PREFIX,
    Cell,
    CompareError,
    MeanStd,
    Records,
    bootstrap_interval,
    cleanup_lines,
    decimals,
    differing_keys,
    format_table,
    group_indices,
    paired_sequences,
    read_arguments,
    record_files,
    select_records,
    stats_lines,
)

SPLIT_SUFFIXES = {"test": ("Test", "Valid"), "validation": ("Valid", "Test")}
DATASET_SUFFIXES = ("Train", "Test", "Valid", "Full")


@dataclass
class Run:
    """One run as compared: its folder, the arguments it was trained with, its records and its model."""

    name: str
    folder: str
    arguments: Dict[str, Any]
    records: Records
    model: str
    parameters: Optional[int]
    flops: Optional[float]


# ----------------------------------------------------------------------------------------- evaluation
def family(dataset: str) -> str:
    """A dataset class's family: its name without Train/Test/Valid/Full (GoProNahTest -> GoProNah)."""
    return next((dataset[:-len(suffix)] for suffix in DATASET_SUFFIXES if dataset.endswith(suffix)), dataset)


def family_root(arguments: Dict[str, Any], dataset: str) -> Optional[str]:
    """The run's root of a dataset of the same family as `dataset` (its validation dataset's first), else None."""
    for prefix in ("validation_dataset", "training_dataset"):
        if arguments.get(prefix) and family(arguments[prefix]) == family(dataset):
            return arguments.get(f"{prefix}_root")
    return None


def split_dataset(arguments: Dict[str, Any], split: str) -> Tuple[str, Optional[str]]:
    """The dataset class of a run's `split` (its family's Test/Valid class) and the run's root for that family."""
    for prefix in ("validation_dataset", "training_dataset"):
        name = arguments.get(prefix)
        if not name:
            continue
        for suffix in SPLIT_SUFFIXES[split]:
            if family(name) + suffix in DATASETS:
                return family(name) + suffix, arguments.get(f"{prefix}_root")
    raise CompareError(f"no {split} dataset: the run names no dataset of a family with a Test or Valid class; "
                       f"give --dataset")


def _flow_file(checkpoint: Dict[str, Any], folder: str) -> Optional[Tuple[str, str]]:
    """FlowDBN: its flow network's weights as a prewarping checkpoint (flag, file), so main.py needs no stored path."""
    flow = {f"model.{key[len(FLOW_PREFIX):]}": value for key, value in checkpoint["state_dict"].items()
            if key.startswith(FLOW_PREFIX)}
    if not flow:
        return None
    flag = "model_pretrained_pwcnet" if any(k.startswith("model.pwcnet_impl.") for k in flow) \
        else "model_pretrained_flownet"
    filename = os.path.join(folder, "prewarping.ckpt")
    torch.save({"state_dict": flow}, filename)
    return flag, filename


def evaluation_command(options: argparse.Namespace, arguments: Dict[str, Any], name: str, length: int,
                       checkpoint_file: str, dataset: str, root: str, save: str,
                       flow: Optional[Tuple[str, str]]) -> List[str]:
    """main.py's evaluation-only command line for one checkpoint (under torchrun with --nproc_per_node > 1)."""
    launcher = [sys.executable]
    if options.nproc_per_node > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={options.nproc_per_node}"]
    command = launcher + [os.path.join(REPO, "main.py"), f"--model={name}",
                          f"--loss={arguments.get('loss') or 'DBNLoss'}", f"--checkpoint={checkpoint_file}",
                          f"--validation_dataset={dataset}", f"--validation_dataset_root={root}", f"--save={save}",
                          "--batch_size=1", f"--validation_dataset_num_workers={options.num_workers}",
                          "--proctitle=compare_runs"]
    dataset_flags = commandline.class_flags(commandline.CATEGORY_BY_NAME["validation_dataset"], DATASETS.get(dataset))
    if "--validation_dataset_sequence_length" in dataset_flags:
        command.append(f"--validation_dataset_sequence_length={length}")
    if flow is not None:
        command.append(f"--{flow[0]}={flow[1]}")
    elif arguments.get("model") == name:  # a model built from its flags: the run's own --model_* values
        command += [f"--{key}={commandline.format_flag_value(value)}" for key, value in sorted(arguments.items())
                    if key.startswith("model_") and value is not None]
    if options.cuda is not None:
        command.append(f"--cuda={options.cuda}")
    return command + list(options.main_flags)


def evaluate(run: str, options: argparse.Namespace) -> str:
    """Evaluate a run's chosen checkpoint with main.py; returns the evaluation's run folder (reused if done)."""
    arguments = read_arguments(run)
    if options.checkpoint == "best" and not glob.glob(os.path.join(glob.escape(run), "checkpoint_best_*.ckpt")):
        raise CompareError(f"{run}: no checkpoint_best_<key>.ckpt (a run without validation keeps only its latest); "
                           f"use --checkpoint latest")
    try:
        checkpoint_file = checkpoints.find_checkpoint(run, options.checkpoint, arguments.get("validation_keys") or [])
        checkpoint = checkpoints.load_file(checkpoint_file)
        _, name, length = commandline.build_model_from_checkpoint(checkpoint, checkpoint_file)
    except (ValueError, FileNotFoundError) as error:
        raise CompareError(f"{run}: {error}") from None
    dataset, root = (options.dataset, None) if options.dataset else split_dataset(arguments, options.split)
    root = options.dataset_root or root
    if not root or not os.path.isdir(root):
        raise CompareError(f"{run}: the {dataset} folder '{root}' does not exist here; give --dataset_root")
    label = f"{dataset}-{options.checkpoint}-epoch{int(checkpoint.get('epoch', 0)):03d}"
    if options.main_flags:  # other metrics or settings: another evaluation, not the one done before
        label += "-" + hashlib.sha1(" ".join(options.main_flags).encode()).hexdigest()[:8]
    save = os.path.join(options.output, f"{os.path.basename(os.path.normpath(run))}-{label}") if options.output \
        else os.path.join(run, "evaluations", label)
    if os.path.isdir(os.path.join(save, "frames")) and not options.reevaluate:
        return save  # evaluated before: the same checkpoint on the same dataset
    if os.path.isdir(save):
        shutil.rmtree(save)
    with tempfile.TemporaryDirectory() as scratch:
        flow = _flow_file(checkpoint, scratch) if name == "FlowDBN" else None
        command = evaluation_command(options, arguments, name, length, checkpoint_file, dataset, root, save, flow)
        print(f"evaluating {run}: {' '.join(command)}", file=sys.stderr, flush=True)
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise CompareError(f"{run}: evaluation failed (main.py exited {result.returncode}): "
                           f"{lines[-1] if lines else 'no output'}")
    return save


# ------------------------------------------------------------------------------------ model and FLOPs
def frame_size(arguments: Dict[str, Any], dataset: str, root: Optional[str]) -> Optional[Tuple[int, int]]:
    """(width, height) of the dataset's first example, None where the dataset cannot be read here."""
    namespace = argparse.Namespace(**{**arguments, "validation_dataset": dataset})
    if root:
        namespace.validation_dataset_root = root
    try:
        example = commandline.instance_from_args(namespace, "validation_dataset", args=namespace)[0]
        return int(example["input1"].shape[-1]), int(example["input1"].shape[-2])
    except Exception:  # noqa: BLE001 -- any dataset that cannot be read here: no FLOPs, not an error
        return None


def model_figures(checkpoint_file: Optional[str], size: Optional[Tuple[int, int]]
                  ) -> Tuple[Optional[str], Optional[int], Optional[float]]:
    """(model name, parameters, FLOPs per example at `size`) of a checkpoint; None where unknown."""
    if not checkpoint_file or not os.path.isfile(checkpoint_file):
        return None, None, None
    try:
        checkpoint = checkpoints.load_file(checkpoint_file)
        model, name, length = commandline.build_model_from_checkpoint(checkpoint, checkpoint_file)
    except (ValueError, FileNotFoundError):
        return None, None, None
    parameters = sum(p.numel() for p in model.parameters())
    flops = None
    if size is not None:
        meta = torch.device("meta")
        model = model.to(meta).eval()  # nothing is computed: only the shapes count, as in bench_flops.py
        example = {f"input{i}": torch.empty(1, 3, size[1], size[0], device=meta) for i in range(1, length + 1)}
        try:
            with torch.no_grad():
                flops = count(lambda: model(example))
        except Exception:  # noqa: BLE001 -- a model that does not take this input: no FLOPs, not an error
            flops = None
    return name, parameters, flops


def checkpoint_of(folder: str, arguments: Dict[str, Any], records: Records, mode: str) -> Optional[str]:
    """The checkpoint file a record was made from: the record's own entry, else the run's chosen checkpoint."""
    recorded = records.info.get("checkpoint")
    if recorded and os.path.isfile(recorded):
        return recorded
    for path, flag_mode in ((folder, mode), (arguments.get("checkpoint"), arguments.get("checkpoint_mode", "latest"))):
        if path:
            try:
                return checkpoints.find_checkpoint(path, flag_mode, arguments.get("validation_keys") or [])
            except checkpoints.CheckpointError:
                continue
    return None


def load_run(folder: str, options: argparse.Namespace) -> Run:
    """A run folder (evaluated first with --evaluate) with its records, training arguments and model figures."""
    arguments = read_arguments(folder)
    if options.evaluate:
        evaluation = evaluate(folder, options)
        if not record_files(evaluation):
            raise CompareError(f"{folder}: its evaluation ({evaluation}) wrote no per-frame records; see its "
                               f"logbook.txt")
        records = select_records(evaluation, "latest", None)
    else:
        records = select_records(folder, options.checkpoint, options.dataset, arguments.get("validation_keys") or [])
    checkpoint_file = checkpoint_of(folder, arguments, records, options.checkpoint)
    trained = arguments
    if not arguments.get("training_dataset") and checkpoint_file:
        # An evaluation-only run: what the evaluated model was trained with decides its group.
        stored = checkpoints.stored_arguments(checkpoints.load_file(checkpoint_file))
        trained = stored or {**arguments, "evaluated_checkpoint": os.path.abspath(checkpoint_file)}
    root = options.dataset_root or family_root(arguments, records.dataset)
    size = options.frame_size or frame_size(arguments, records.dataset, root)
    name, parameters, flops = model_figures(checkpoint_file, size)
    return Run(os.path.basename(os.path.normpath(folder)), folder, {**trained, "_dataset": records.dataset},
               records, name or str(arguments.get("model")), parameters, flops)


# --------------------------------------------------------------------------------------------- tables
def _metrics(runs: Sequence[Run], chosen: Optional[List[str]]) -> List[str]:
    common = [m for m in runs[0].records.metrics if all(m in run.records.metrics for run in runs)]
    if chosen is None:
        return common
    missing = [m for m in chosen if m not in common]
    if missing:
        raise CompareError(f"--metrics: {', '.join(missing)} not recorded by every run (common: {', '.join(common)})")
    return chosen


def run_table(runs: Sequence[Run], metrics: Sequence[str], labels: Sequence[str]) -> Tuple[List[str], List[list]]:
    """One row per run: group, model, parameters, GFLOP, epoch, frames, then per metric its value, input, gain."""
    header = ["run", "group", "model", "parameters", "GFLOP", "epoch", "frames"]
    header += [name for m in metrics for name in (m, f"input {m}", f"gain {m}")]
    rows = []
    for run, label in zip(runs, labels):
        means = run.records.means()
        row = [run.name, label, run.model, Cell(run.parameters), Cell(run.flops / 1e9 if run.flops else None, 1),
               run.records.evaluated_epoch, len(run.records.frames)]
        for m in metrics:
            digits = decimals(m)
            row += [Cell(means[m], digits), Cell(means[INPUT_PREFIX + m], digits),
                    Cell(means[m] - means[INPUT_PREFIX + m], digits)]
        rows.append(row)
    return header, rows


def group_table(runs: Sequence[Run], groups: Sequence[List[int]], metrics: Sequence[str], labels: Sequence[str]
                ) -> Tuple[List[str], List[list]]:
    """One row per group: n, its runs and every metric's (and gain's) mean ± std over the runs."""
    header = ["group", "model", "n", "runs"] + [name for m in metrics for name in (m, f"input {m}", f"gain {m}")]
    rows = []
    for indices, label in zip(groups, labels):
        means = [runs[i].records.means() for i in indices]
        row = [label, runs[indices[0]].model, len(indices), " ".join(runs[i].name for i in indices)]
        for m in metrics:
            digits = decimals(m)
            row += [Cell(MeanStd.of([v[m] for v in means]), digits),
                    Cell(MeanStd.of([v[INPUT_PREFIX + m] for v in means]), digits),
                    Cell(MeanStd.of([v[m] - v[INPUT_PREFIX + m] for v in means]), digits)]
        rows.append(row)
    return header, rows


def paired_table(runs: Sequence[Run], groups: Sequence[List[int]], metrics: Sequence[str], labels: Sequence[str],
                 resamples: int, seed: int) -> Tuple[List[str], List[list]]:
    """Every later group against the first: per metric the frame-weighted mean of the per-sequence differences
    (later minus first) and its 95% paired bootstrap interval over sequences."""
    header = ["compared", "metric", "sequences", "difference", "95% low", "95% high", "excludes 0"]
    rows = []
    first = [runs[i].records for i in groups[0]]
    for indices, label in zip(groups[1:], labels[1:]):
        second = [runs[i].records for i in indices]
        for m in metrics:
            sequences, differences, frames = paired_sequences(first, second, m, (labels[0], label))
            estimate, low, high = bootstrap_interval(differences, frames, resamples, seed)
            digits = decimals(m) + 1
            rows.append([f"{label} - {labels[0]}", m, len(sequences), Cell(estimate, digits), Cell(low, digits),
                         Cell(high, digits), "yes" if low > 0 or high < 0 else "no"])
    return header, rows


def compare(options: argparse.Namespace) -> str:
    """The comparison's tables as text in the chosen style."""
    runs = [load_run(folder, options) for folder in options.runs]
    datasets = sorted({run.records.dataset for run in runs})
    if len(datasets) > 1:
        odd = next(run for run in runs if run.records.dataset == datasets[1])
        raise CompareError(f"{odd.folder}: records of {datasets[1]}, the others of {datasets[0]} (mismatched "
                           f"datasets); choose one with --dataset")
    metrics = _metrics(runs, options.metrics)
    groups = group_indices([run.arguments for run in runs])
    several = any(len(indices) > 1 for indices in groups)
    group_labels = [f"G{number}" for number in range(1, len(groups) + 1)] if several else \
        [runs[indices[0]].name for indices in groups]
    run_labels = [""] * len(runs)
    for indices, label in zip(groups, group_labels):
        for i in indices:
            run_labels[i] = label
    style = options.style
    title = (lambda text: f"{text}\n") if style != "latex" else (lambda text: f"% {text}\n")
    out = [title(f"Runs: {datasets[0]}, checkpoint {options.checkpoint}, means over frames"),
           format_table(*run_table(runs, metrics, run_labels), style)]
    if several:
        differing = differing_keys([runs[indices[0]].arguments for indices in groups])
        out += ["\n", title(f"Groups (mean ± std over runs, ddof=1); they differ in: {', '.join(differing) or '-'}"),
                format_table(*group_table(runs, groups, metrics, group_labels), style)]
    if len(groups) > 1:
        paired = paired_table(runs, groups, metrics, group_labels, options.resamples, options.seed)
        out += ["\n", title(f"Paired differences over sequences, 95% bootstrap interval ({options.resamples} "
                            f"resamples, seed {options.seed})"), format_table(*paired, style)]
    return "".join(out)


# --------------------------------------------------------------------------------------------- parsers
def _frame_size(text: str) -> Tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1280x720, got '{text}'") from None
    return width, height


def compare_parser() -> argparse.ArgumentParser:
    """Flags of the comparison."""
    parser = argparse.ArgumentParser(prog="compare_runs.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    parser.add_argument("--evaluate", action="store_true", help="evaluate each run's checkpoint first (main.py)")
    parser.add_argument("--split", choices=sorted(SPLIT_SUFFIXES), default="test", help="dataset split to evaluate")
    parser.add_argument("--checkpoint", choices=["best", "latest"], default="best",
                        help="which checkpoint (and so which epoch's records) a run is scored by")
    parser.add_argument("--dataset", default=None, help="dataset class of the records (default: the only one)")
    parser.add_argument("--dataset_root", default=None, help="with --evaluate: the dataset's folder here")
    parser.add_argument("--metrics", type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
                        default=None, help="comma-separated metrics to show (default: all that every run records)")
    parser.add_argument("--frame_size", type=_frame_size, default=None,
                        help="WIDTHxHEIGHT for the FLOPs (default: the dataset's first example, where readable)")
    parser.add_argument("--nproc_per_node", type=int, default=1, help="with --evaluate: torchrun processes")
    parser.add_argument("--num_workers", type=int, default=0, help="with --evaluate: data-loader workers")
    parser.add_argument("--cuda", choices=["true", "false"], default=None, help="with --evaluate: main.py's --cuda")
    parser.add_argument("--output", default=None, help="with --evaluate: folder for evaluations (default: in each run)")
    parser.add_argument("--reevaluate", action="store_true", help="with --evaluate: evaluate again, replacing the last")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    styles = parser.add_mutually_exclusive_group()
    for style in ("markdown", "csv", "latex"):
        styles.add_argument(f"--{style}", dest="style", action="store_const", const=style, help=f"{style} tables")
    parser.set_defaults(style="text")
    return parser


def stats_parser() -> argparse.ArgumentParser:
    """Flags of `stats`."""
    parser = argparse.ArgumentParser(prog="compare_runs.py stats",
                                     description="one line per run folder: its best checkpoint's epoch and values")
    parser.add_argument("root", nargs="?", default=".", help="folder of run folders (default: the current one)")
    parser.add_argument("--keys", type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
                        default=None, help="summary keys to show (default: xe,psnr,cosine_sim,total_loss)")
    return parser


def cleanup_parser() -> argparse.ArgumentParser:
    """Flags of `cleanup`."""
    parser = argparse.ArgumentParser(prog="compare_runs.py cleanup",
                                     description="list (dry run) or --delete run folders with fewer than --keep epochs")
    parser.add_argument("root", nargs="?", default=".", help="folder of run folders (default: the current one)")
    parser.add_argument("--delete", action="store_true", help="remove them (default: only list them)")
    parser.add_argument("--keep", type=int, default=5, help="fewest epochs a kept run has recorded")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one of the three commands; bad input ends in one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in ("stats", "cleanup"):
            options = (stats_parser() if argv[0] == "stats" else cleanup_parser()).parse_args(argv[1:])
            if not os.path.isdir(options.root):
                raise CompareError(f"{options.root}: no such folder")
            if argv[0] == "stats":
                lines = stats_lines(options.root, *([options.keys] if options.keys else []))
            else:
                lines = cleanup_lines(options.root, options.delete, options.keep)
            print("\n".join(lines))
            return 0
        main_flags = argv[argv.index("--") + 1:] if "--" in argv else []
        options = compare_parser().parse_args(argv[:argv.index("--")] if "--" in argv else argv)
        options.main_flags = main_flags
        print(compare(options), end="")
    except CompareError as error:
        print(f"compare_runs.py: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
