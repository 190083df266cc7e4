"""deblur-devil: parse the command line, build datasets, model, loss, optimizer and visualizer, run epochs."""
import argparse
import logging
import os
import platform
import random
import socket
import sys
import traceback
from typing import Any, Dict, List, Optional

import colorama
import numpy as np
import torch
from torch.utils.data import DistributedSampler

import commandline
import constants
import runtime
from contrib.fusion import fold_batchnorm
from optim.groups import ParameterScheduler, parameter_groups
from utils import allocator, checkpoints, distributed, logger, summary, system, telegram
from utils.logger import block


def _early_arguments(argv: List[str]) -> argparse.Namespace:
    """--save (or, when resuming a run folder without --save, that folder) and --cuda before the full parse."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--save", type=str, default=None)
    parser.add_argument("--resume", type=str, default=None)
    parser.add_argument("--cuda", type=str, default="true")
    known, _ = parser.parse_known_args(argv)
    if known.save is None and known.resume is not None and os.path.isdir(known.resume):
        known.save = known.resume
    known.cuda = known.cuda.strip().lower() in ("yes", "true", "t", "y", "1")
    return known


def log_arguments(args: argparse.Namespace, non_default: Dict[str, Any]) -> None:
    """Every argument sorted by name, non-default ones in colour."""
    for key, value in sorted(vars(args).items()):
        color = colorama.Fore.CYAN if key in non_default else ""
        logging.info(f"{color}{key}: {value}{colorama.Style.RESET_ALL}")


def seed_everything(seed: Optional[int]) -> None:
    """python seed, numpy seed+1, torch seed+2, cuda seed+3 (the original's scheme)."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed + 1)
    torch.manual_seed(seed + 2)
    torch.cuda.manual_seed_all(seed + 3)


def _make_loader(args: argparse.Namespace, prefix: str, train: bool) -> Optional[runtime.Loader]:
    if getattr(args, prefix) is None:
        return None
    dataset = commandline.instance_from_args(args, prefix, args=args)
    batch_size = args.batch_size
    if not train and args.validation_batch_size > 0:
        batch_size = args.validation_batch_size
    if batch_size > len(dataset):
        raise ValueError(f"--{'batch_size' if train else 'validation_batch_size'}={batch_size} is larger than "
                         f"--{prefix}={getattr(args, prefix)} with {len(dataset)} examples")
    workers = getattr(args, f"{prefix}_num_workers", 0)
    shuffle = constants.TRAINING_DATALOADER_SHUFFLE if train else constants.VALIDATION_DATALOADER_SHUFFLE
    drop_last = constants.TRAINING_DATALOADER_DROP_LAST if train else constants.VALIDATION_DATALOADER_DROP_LAST
    sampler = None
    if distributed.is_distributed():
        # Training shards are shuffled per epoch and equally long (DDP steps in lockstep); validation
        # shards are disjoint and unpadded, so the reduced means cover every example exactly once.
        sampler = (DistributedSampler(dataset, shuffle=shuffle, drop_last=drop_last) if train
                   else distributed.ShardSampler(len(dataset)))
    loader = runtime.make_data_loader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                      num_workers=workers, device=args.device, sampler=sampler)
    collate = hasattr(args, f"{prefix}_num_samples_per_example")
    logging.info("%s: %s, %d examples, %d steps per epoch, %d workers", prefix, type(dataset).__name__,
                 len(dataset), len(loader), workers)
    return runtime.Loader(loader, args.device, collate, channels_last=args.channels_last)


def _sequence_length_check(args: argparse.Namespace) -> None:
    train_n = getattr(args, "training_dataset_sequence_length", None)
    valid_n = getattr(args, "validation_dataset_sequence_length", None)
    if train_n is not None and valid_n is not None and train_n != valid_n:
        raise ValueError(f"--training_dataset_sequence_length={train_n} and "
                         f"--validation_dataset_sequence_length={valid_n} must be equal")


def _lr_scheduler_value(scheduler: str, key: str, value: Any) -> Any:
    category = commandline.CATEGORY_BY_NAME["lr_scheduler"]
    converter = category.forced.get(key) or category.without_default.get(key)
    return converter(str(value)) if converter is not None and isinstance(value, str) else value


def build_and_run(argv: List[str]) -> None:
    """Everything main does after logging is configured."""
    with block("Registering factories"):
        for category in commandline.CATEGORIES:
            if category.registry is not None:
                logging.info("%s: %d registered", category.name, len(category.registry))
    with block("Commandline Arguments"):
        args, defaults = commandline.parse_arguments(argv)
        if args.save is None:
            args.save = _early_arguments(argv).save
        if distributed.is_main_process():
            commandline.write_arguments(args, args.save)
        non_default = commandline.non_default_arguments(args, defaults)
        log_arguments(args, non_default)
        args.non_default_args = non_default
        args.holistic_records_kwargs = commandline.kwargs_from_args(args, "holistic_records")
    if distributed.is_main_process():
        with block("Telegram"):
            telegram.configure()
        with block("Source Code"):
            logging.info("git hash: %s", system.git_hash())
            count = system.zip_source(os.path.join(args.save, constants.LOGGING_ZIPSOURCE_FILENAME),
                                      exclude=[args.save])
            logging.info("%d source files zipped into %s", count, constants.LOGGING_ZIPSOURCE_FILENAME)
    args.proctitle_name = system.random_fantasy_name() if args.proctitle == "__random__" else args.proctitle
    runtime.set_proctitle(args.proctitle_name)
    with block("Random Seeds"):
        seed_everything(args.seed)
        logging.info("seed: %s", args.seed)
    with block("Machine Statistics"):
        if distributed.is_distributed():
            args.device = torch.device("cuda", torch.cuda.current_device()) if args.cuda else torch.device("cpu")
            args.actual_device = f"{'gpu' if args.cuda else 'cpu'}:rank{distributed.rank()}/{distributed.world_size()}"
        elif args.cuda:
            args.device = torch.device("cuda:0")
            args.actual_device = f"gpu:{os.environ.get('CUDA_VISIBLE_DEVICES', '0')}"
            logging.info("CUDA %s, cuDNN %s", torch.version.cuda, torch.backends.cudnn.version())
        else:
            args.device = torch.device("cpu")
            args.actual_device = "cpu"
            if _early_arguments(argv).cuda:
                logging.info("CUDA is not available: running on the CPU")
        logging.info("hostname: %s, python %s, torch %s", socket.gethostname(), platform.python_version(),
                     torch.__version__)
    _sequence_length_check(args)
    with block("Datasets"):
        train_loader = _make_loader(args, "training_dataset", train=True)
        validation_loader = _make_loader(args, "validation_dataset", train=False)
        if train_loader is None and validation_loader is None:
            raise ValueError("no dataset given: pass --training_dataset and/or --validation_dataset")
    with block("Runtime Augmentations"):
        augmentations = {}
        for name in ("training_augmentation", "validation_augmentation"):
            if getattr(args, name) is not None:
                augmentations[name] = commandline.instance_from_args(args, name, args=args).to(args.device)
                logging.info("%s: %s", name, getattr(args, name))
    with block("Model and Loss"):
        if args.loss is None:
            raise ValueError("no loss given: pass --loss (e.g. --loss=DBNLoss)")
        model = commandline.instance_from_args(args, "model", args=args)
        loss = commandline.instance_from_args(args, "loss", args=args)
        model_and_loss = runtime.ModelAndLoss(model, loss, runtime.AMP_DTYPES[args.amp])
        trainable = sum(p.numel() for p in model_and_loss.parameters() if p.requires_grad)
        logging.info("batch_size: %d, loss: %s, model: %s, trainable parameters: %d", args.batch_size, args.loss,
                     args.model, trainable)
        logging.info("training_key: %s", args.training_key)
        if validation_loader is not None:
            logging.info("validation_keys: %s, validation_modes: %s", args.validation_keys, args.validation_modes)
    if args.logging_model_graph:
        with block("Model Graph"):
            for line in str(model).splitlines():
                logging.info(line)
    if args.logging_loss_graph:
        with block("Loss Graph"):
            for line in str(loss).splitlines():
                logging.info(line)
    with block("Checkpoint"):
        if args.checkpoint is not None:
            filename = checkpoints.find_checkpoint(args.checkpoint, args.checkpoint_mode,
                                                   getattr(args, "validation_keys", []))
            checkpoint = checkpoints.load_file(filename)
            restored, untouched = checkpoints.load_state_dict(
                model_and_loss, checkpoint["state_dict"], filename, args.checkpoint_include_params,
                args.checkpoint_exclude_params, args.checkpoint_translations, args.checkpoint_fuzzy_translation_keys)
            logging.info("restored %d tensors from %s (%d left as initialised)", len(restored), filename,
                         len(untouched))
            logging.values({k: v for k, v in checkpoint.items() if isinstance(v, (int, float, str))})
    resume = None
    if args.resume is not None:
        with block("Resume"):
            filename = checkpoints.find_checkpoint(args.resume, "latest")
            resume = checkpoints.load_file(filename)
            checkpoints.load_state_dict(model_and_loss, resume["state_dict"], filename)
            args.start_epoch = int(resume["epoch"]) + 1
            logging.info("resuming %s after epoch %d", filename, resume["epoch"])
    evaluation_only = train_loader is None
    if evaluation_only:
        args.start_epoch, args.total_epochs = 1, 1
        args.optimizer, args.lr_scheduler = None, None
    if args.fold_batchnorm:
        if not evaluation_only:
            raise ValueError("--fold_batchnorm is for evaluation-only runs (no --training_dataset): a folded "
                             "network has no BatchNorm left to train")
        fold_batchnorm(model_and_loss.model.eval())
    if distributed.is_main_process():
        with block("Tensorboard"):
            summary.open_writer(os.path.join(args.save, "tb"))
    model_and_loss.to(args.device)
    if args.channels_last:
        model_and_loss.to(memory_format=torch.channels_last)
    if args.compile:
        model_and_loss.model.compile()  # in place: state_dict keys stay those of the original
    optimizer = None
    with block("Optimizer"):
        named = list(model_and_loss.named_parameters())
        if args.optimizer is not None and any(p.requires_grad for _, p in named):
            groups = parameter_groups(named, args.optimizer_group)
            optimizer = commandline.instance_from_args(args, "optimizer", params=groups)
            if args.loshchilov_weight_decay > 0 and getattr(args, "optimizer_weight_decay", 0) > 0:
                logging.warning("both --loshchilov_weight_decay and --optimizer_weight_decay are set")
            for index, group in enumerate(optimizer.param_groups):
                logging.info("group %d: %d tensors, lr %g", index, len(group["params"]), group["lr"])
        elif train_loader is not None:
            raise ValueError("training needs an optimizer: pass --optimizer (e.g. --optimizer=Adam)")
    lr_scheduler = None
    with block("Learning Rate Scheduler"):
        if args.lr_scheduler is not None:
            if args.lr_scheduler == "ReduceLROnPlateau" and validation_loader is None:
                raise ValueError("--lr_scheduler=ReduceLROnPlateau steps on a validation loss: "
                                 "pass --validation_dataset")
            lr_scheduler = commandline.instance_from_args(args, "lr_scheduler", optimizer=optimizer)
            if resume is None:
                for _ in range(args.start_epoch - 1):  # LR of a later start epoch as if trained from epoch 1
                    lr_scheduler.step()
            logging.info("%s", args.lr_scheduler)
    param_scheduler = None
    if args.param_scheduler_group:
        with block("Parameter Scheduler"):
            param_scheduler = ParameterScheduler(list(model_and_loss.named_parameters()),
                                                 args.param_scheduler_group, _lr_scheduler_value)
    grad_scaler = None
    if args.amp == "fp16" and optimizer is not None:
        grad_scaler = torch.amp.GradScaler(args.device.type)
    best_values = None
    if resume is not None:
        if optimizer is not None and "optimizer" in resume:
            optimizer.load_state_dict(resume["optimizer"])
        if lr_scheduler is not None and "lr_scheduler" in resume:
            lr_scheduler.load_state_dict(resume["lr_scheduler"])
        if "best" in resume and resume["best"]["keys"] == list(getattr(args, "validation_keys", [])):
            best_values = list(resume["best"]["values"])
        if grad_scaler is not None and "grad_scaler" in resume:
            grad_scaler.load_state_dict(resume["grad_scaler"])
        if "rng" in resume:
            checkpoints.set_rng_state(resume["rng"])
    if args.device.type == "cuda":
        torch.backends.cudnn.benchmark = constants.CUDNN_BENCHMARK
    visualizer = None
    with block("Runtime Visualizers"):
        if args.visualizer is not None:
            visualizer = commandline.instance_from_args(
                args, "visualizer", args=args, model_and_loss=model_and_loss, optimizer=optimizer,
                param_scheduler=param_scheduler, lr_scheduler=lr_scheduler, train_loader=train_loader,
                validation_loader=validation_loader).to(args.device)
            logging.info("%s", args.visualizer)
    runner = model_and_loss
    if args.sync_batchnorm and not (distributed.is_distributed() and args.device.type == "cuda"):
        raise ValueError("--sync_batchnorm needs a torchrun launch on GPUs (torch's SyncBatchNorm runs on CUDA only)")
    if distributed.is_distributed() and train_loader is not None:
        if args.sync_batchnorm:
            model_and_loss = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model_and_loss)
        runner = torch.nn.parallel.DistributedDataParallel(
            model_and_loss, device_ids=[args.device.index] if args.device.type == "cuda" else None)
    trainer = runtime.Trainer(
        args, runner, train_loader, validation_loader, optimizer, lr_scheduler,
        augmentations.get("training_augmentation"), augmentations.get("validation_augmentation"), visualizer,
        save_checkpoints=not evaluation_only, best_values=best_values,
        before_epoch=(lambda epoch: param_scheduler.step()) if param_scheduler is not None else None,
        grad_scaler=grad_scaler)
    trainer.run()
    if distributed.is_distributed():
        logging.warning("rank %d final parameter checksum %.10e", distributed.rank(),
                        sum(float(p.double().sum()) for p in model_and_loss.parameters()))


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        commandline.parse_arguments(argv)  # prints help and exits
    early = _early_arguments(argv)
    save = early.save
    if save is None:
        print("main.py: error: --save is required (the run folder for records and checkpoints)", file=sys.stderr)
        return 2
    main_process = int(os.environ.get("RANK", "0")) == 0
    logger.configure_logging(os.path.join(save, constants.LOGGING_LOGBOOK_FILENAME) if main_process else None,
                             console_level=logging.INFO if main_process else logging.WARNING)
    logging.info("%s", allocator.keep_freed_memory())
    try:
        if distributed.launched_by_torchrun():
            distributed.init_from_environment(cuda=early.cuda and torch.cuda.is_available())
        build_and_run(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        logging.error("interrupted; records and checkpoints written so far are kept in %s", save)
        return 130
    except Exception as error:  # noqa: BLE001 -- every failure ends in one clear line (traceback in the logbook)
        logging.log(logger.LOGBOOK, "".join(traceback.format_exception(error)))
        message = str(error) if not isinstance(error, KeyError) else str(error.args[0] if error.args else error)
        logging.error(f"{colorama.Fore.RED}error:{colorama.Style.RESET_ALL} {type(error).__name__}: {message}")
        return 1
    finally:
        telegram.flush()
        summary.close()
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
