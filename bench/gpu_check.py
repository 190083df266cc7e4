"""The stages of bench/gpu_check.sh: `python bench/gpu_check.py <stage>` runs one and writes $OUT/<stage>.json.

Each stage is its own process (the driver runs it under `timeout <budget>`), needs only torch, numpy and
PIL, and reports one of: passed, failed (an exception or a check out of tolerance, with the numbers it got)
or skipped (with the reason: a package the stage needs is missing, two GPUs are needed, ...).
`python bench/gpu_check.py summary` writes $OUT/summary.json from the stage files and the driver's table.
Environment: OUT (required), GPU_CHECK_DEVICE (cpu or cuda, default cuda when available), GPU_CHECK_QUICK=1
(tiny sizes), GPU_CHECK_FAIL=<stage> (raise in that stage: how the driver's failure handling is tested).
"""
import datetime
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "bench"))

QUICK = os.environ.get("GPU_CHECK_QUICK", "0") == "1"
DEVICE = torch.device(os.environ.get("GPU_CHECK_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
CUDA = DEVICE.type == "cuda"
OUT = Path(os.environ.get("OUT", "gpu_check_out")).resolve()
DATA = OUT / "data"
# Packages the project uses beyond torch, numpy and PIL; a bare GPU machine may lack any of them.
OPTIONAL = ("torchvision", "scipy", "pyspng", "skimage", "colorama", "pytz", "tqdm", "tensorboard", "matplotlib",
            "setproctitle", "imageio", "telegram")
# Sizes: the paper's training batch (B=8 examples x S=8 crops of 128x128, N=5) and 1280x720 evaluation frames;
# quick mode: what a 2-core CPU runs in seconds.
SIZES = {"crop": 32 if QUICK else 128, "batch": 1 if QUICK else 8, "samples": 1 if QUICK else 8,
         "frame": (64, 48) if QUICK else (1280, 720), "data": (64, 48) if QUICK else (256, 144),
         "steps": 1 if QUICK else 5, "warmup": 0 if QUICK else 2, "amp_steps": 2 if QUICK else 8,
         "small_frame": (32, 32) if QUICK else (320, 192)}
TEST_FRAMES = 3 if QUICK else 6
STEP_DESCRIPTION = "forward, DBNLoss (float32), backward, Adam step, as runtime.ModelAndLoss/EpochRunner run it"


class SkipStage(Exception):  # noqa: N818 -- a skip is not an error
    """The stage cannot run here; the message says why."""


class Checks:
    """Named comparisons of a stage; any that fails makes the stage fail (its numbers are still reported)."""

    def __init__(self) -> None:
        self.results: List[Dict[str, Any]] = []

    def less(self, name: str, value: float, limit: float) -> None:
        """Record `value < limit` (a NaN fails)."""
        self.results.append({"check": name, "value": value, "limit": limit, "ok": bool(value < limit)})

    def true(self, name: str, ok: bool, detail: Any = None) -> None:
        """Record a condition."""
        self.results.append({"check": name, "value": detail, "ok": bool(ok)})

    def failed(self) -> List[str]:
        """Names of the failed checks."""
        return [result["check"] for result in self.results if not result["ok"]]


def synchronize() -> None:
    """Wait for queued device work."""
    if CUDA:
        torch.cuda.synchronize(DEVICE)


def set_tf32(enabled: bool) -> None:
    """TF32 for matrix products and cuDNN convolutions (no effect on the CPU)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def require(*modules: str) -> None:
    """Skip the stage when one of the modules cannot be imported."""
    for module in modules:
        try:
            __import__(module)
        except ModuleNotFoundError as error:
            raise SkipStage(f"{error.name or module} missing (needed by {module})") from error


# ---------------------------------------------------------------------------------------------------- models


def constant_flow_pwcnet(flow=(8.0, -4.0)) -> torch.nn.Module:
    """A PWC-Net whose every layer runs but whose flow is exactly `flow` pixels everywhere: random flows put
    pixels on the discontinuity of PWC-Net's `mask >= 1` warping, where CPU and GPU rounding would disagree."""
    from models.pwcnet import PWCNet

    torch.manual_seed(1)
    net = PWCNet(div_flow=0.05)
    impl = net.pwcnet_impl
    for estimator in impl.flow_estimators:
        estimator.conv_last[0].weight.data.zero_()
        estimator.conv_last[0].bias.data.copy_(torch.tensor(flow) * 0.05)
    impl.context_network.convs[-1][0].weight.data.zero_()
    impl.context_network.convs[-1][0].bias.data.zero_()
    return net


def build_model(name: str, sequence_length: int = 5) -> torch.nn.Module:
    """DBN or FlowDBN (constant-flow PWC-Net prewarping) on the CPU with seeded Kaiming fan-in weights, so
    that activations stay of order 1 and every device starts from the same weights."""
    from models.dbn import DBN
    from models.flowdbn import FlowDBN

    if name == "DBN":
        model = DBN(sequence_length=sequence_length)
        trained = model.dbn_net
    else:
        state = {f"model.{k}": v for k, v in constant_flow_pwcnet().state_dict().items()}
        model = FlowDBN(sequence_length=sequence_length, prewarping_state_dict=state)
        trained = model.flowdbn.dbn_net
    torch.manual_seed(0)
    for module in trained.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    trained.f15[1].weight.data.fill_(0.1)  # a small residual: outputs near the reference frame, PSNR meaningful
    return model


def example(sequence_length: int, batch: int, width: int, height: int, seed: int = 1) -> Dict[str, torch.Tensor]:
    """Smooth random frames (a blurred target and shifted copies), CPU float32, as the loader delivers them."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(batch, 3, height // 4 + 2, width // 4 + 2, generator=generator)
    sharp = torch.nn.functional.interpolate(base, size=(height + 8, width + 8), mode="bilinear", align_corners=False)
    result = {}
    for i in range(sequence_length):
        shift = i - sequence_length // 2
        frame = sharp[:, :, 4 + shift:4 + shift + height, 4:4 + width]
        result[f"input{i + 1}"] = (frame + 0.02 * torch.randn(frame.shape, generator=generator)).clamp(0, 1)
    result["target1"] = sharp[:, :, 4:4 + height, 4:4 + width].contiguous()
    return result


def to_device(batch: Dict[str, torch.Tensor], channels_last: bool = False) -> Dict[str, torch.Tensor]:
    """The batch on DEVICE (optionally channels-last)."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return {k: v.to(DEVICE).contiguous(memory_format=memory_format) for k, v in batch.items()}


class Trainer:
    """One training step as main.py runs it: the model under autocast (amp), DBNLoss in float32, backward
    (through a GradScaler for fp16), Adam step. Counts the steps the scaler skipped."""

    def __init__(self, model: torch.nn.Module, amp: Optional[torch.dtype] = None, lr: float = 1e-4) -> None:
        from losses.dbn_loss import DBNLoss

        self.model, self.loss, self.amp = model, DBNLoss(), amp
        self.optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        self.scaler = torch.amp.GradScaler(DEVICE.type) if amp == torch.float16 else None
        self.skipped = 0

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The model's outputs in float32."""
        if self.amp is None:
            return self.model(batch)
        with torch.autocast(device_type=DEVICE.type, dtype=self.amp):
            outputs = self.model(batch)
        return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}

    def step(self, batch: Dict[str, torch.Tensor]) -> float:
        """One step; returns the loss."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.forward(batch), batch)["total_loss"]
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            scale = self.scaler.get_scale()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.skipped += int(self.scaler.get_scale() < scale)  # the scale drops exactly when a step is skipped
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """output1 in evaluation mode, clamped to [0, 1] as the evaluation does, on the CPU."""
        self.model.eval()
        return self.forward(batch)["output1"].float().clamp(0, 1).cpu()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """RGB PSNR in dB of two [0, 1] images (batches averaged over all pixels)."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def timed(fn: Callable[[], Any], repeats: int, warmup: int) -> float:
    """Median seconds of fn() after untimed warm-up calls, synchronised."""
    for _ in range(warmup):
        fn()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peak_flops(reduced_precision: bool) -> Optional[float]:
    """The data-sheet peak FLOP/s of this GPU (bench/bench_flops.py's table); None on the CPU or when unknown."""
    if not CUDA:
        return None
    try:
        from bench_flops import gpu_peak_flops
    except ImportError:  # bench_flops imports runtime, which needs packages a bare machine may lack
        return None
    return gpu_peak_flops(torch.cuda.get_device_name(DEVICE), reduced_precision)


def count_flops(fn: Callable[[], Any]) -> float:
    """FLOPs of one call of fn, counted by torch's FlopCounterMode (the batch that actually ran)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------------- stages


def stage_env(checks: Checks) -> Dict[str, Any]:
    """GPU, driver, torch/CUDA/cuDNN versions, TF32 defaults, and which optional packages are present."""
    info: Dict[str, Any] = {
        "python": sys.version.split()[0], "python_executable": sys.executable, "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if CUDA else None,
        "cuda_available": torch.cuda.is_available(), "gpu_count": torch.cuda.device_count(),
        "tf32_matmul_default": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn_default": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(), "cpu_count": os.cpu_count(),
        "packages": {name: importlib.util.find_spec(name) is not None for name in OPTIONAL},
    }
    if CUDA:
        properties = torch.cuda.get_device_properties(DEVICE)
        info.update(gpu=properties.name, capability=f"{properties.major}.{properties.minor}",
                    gpu_memory_gib=properties.total_memory / 2 ** 30, bf16_supported=torch.cuda.is_bf16_supported())
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, IndexError):
            info["driver"] = None
    # What the project itself can import here (main.py and deblur.py need more than torch + numpy + PIL).
    info["imports"] = {}
    for module in ("models.flowdbn", "losses.dbn_loss", "datasets.gopro_nah", "runtime", "main", "deblur"):
        try:
            __import__(module)
            info["imports"][module] = "ok"
        except ImportError as error:
            info["imports"][module] = f"{type(error).__name__}: {error}"
    checks.true("device usable", bool(torch.ones(1, device=DEVICE).item() == 1))
    return info


def stage_data(checks: Checks) -> Dict[str, Any]:
    """Tiny GoPro-like data (tools/synthetic_gopro.py), a constant-flow PWC-Net prewarping file and a FlowDBN
    checkpoint in the original's format, under $OUT/data, for the stages that run main.py and deblur.py."""
    require("skimage", "tools.synthetic_gopro")
    from tools.synthetic_gopro import make_gopro_nah

    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    width, height = SIZES["data"]
    # Two test sequences: the validation set must have at least as many examples as DDP has ranks.
    make_gopro_nah(str(DATA), width=width, height=height, num_frames=8, train_sequences=2, test_sequences=2,
                   seed=0, sub_frames=3, test_frames=TEST_FRAMES)
    pwcnet = constant_flow_pwcnet()
    torch.save({"state_dict": {f"model.{k}": v for k, v in pwcnet.state_dict().items()}}, DATA / "pwcnet.ckpt")
    model = build_model("FlowDBN")
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, DATA / "flowdbn.ckpt")
    frames = sorted((DATA / "GOPRO_Large").glob("*/*/blur/*.png"))
    checks.true("frames written", len(frames) == 2 * 8 + 2 * TEST_FRAMES, len(frames))
    return {"root": str(DATA / "GOPRO_Large"), "frames": len(frames), "width": width, "height": height}


def stage_correctness(checks: Checks) -> Dict[str, Any]:
    """DBN and FlowDBN: one training step and one evaluation on the CPU and on the device, TF32 off and on."""
    width, height = SIZES["small_frame"]
    crop, samples = SIZES["crop"], 2
    results: Dict[str, Any] = {}
    for name in ("DBN", "FlowDBN"):
        train_batch, eval_batch = example(5, samples, crop, crop, seed=1), example(5, 1, width, height, seed=2)
        cpu_model = build_model(name)
        device_model = build_model(name).to(DEVICE)
        cpu = Trainer(cpu_model)
        cpu_loss = cpu.step(train_batch)
        cpu_output = cpu.evaluate(eval_batch)
        cpu_psnr = psnr(cpu_output, eval_batch["target1"])
        state = {k: v.clone() for k, v in device_model.state_dict().items()}
        for tf32 in (False, True) if CUDA else (False,):  # TF32 does not exist on the CPU
            set_tf32(tf32)
            device_model.load_state_dict(state)
            trainer = Trainer(device_model)
            loss = trainer.step(to_device(train_batch))
            output = trainer.evaluate(to_device(eval_batch))
            entry = {"loss_cpu": cpu_loss, "loss_device": loss, "loss_rel_diff": abs(loss - cpu_loss) / abs(cpu_loss),
                     "psnr_cpu": cpu_psnr, "psnr_device": psnr(output, eval_batch["target1"]),
                     "max_abs_output_diff": float((output - cpu_output).abs().max())}
            entry["abs_delta_psnr_db"] = abs(entry["psnr_device"] - cpu_psnr)
            key = f"{name}_tf32_{'on' if tf32 else 'off'}"
            results[key] = entry
            if tf32:
                checks.less(f"{key} |dPSNR| dB", entry["abs_delta_psnr_db"], 0.01)
            else:
                checks.less(f"{key} loss relative difference", entry["loss_rel_diff"], 1e-4)
                checks.less(f"{key} |dPSNR| dB", entry["abs_delta_psnr_db"], 1e-3)
                checks.less(f"{key} max |output difference|", entry["max_abs_output_diff"], 5e-3)
        set_tf32(False)
    return results


def stage_correlation(checks: Checks) -> Dict[str, Any]:
    """PWC-Net's 9x9 correlation, forward and backward, on the CPU and on the device (float32, TF32 off)."""
    from contrib.correlation import correlation

    set_tf32(False)
    batch, channels, height, width = (2, 16, 12, 16) if QUICK else (8, 196, 45, 80)
    generator = torch.Generator().manual_seed(0)
    f1 = torch.randn(batch, channels, height, width, generator=generator)
    f2 = torch.randn(batch, channels, height, width, generator=generator)
    grad = torch.randn(batch, 81, height, width, generator=generator)

    def run(device: torch.device):
        a, b = f1.to(device).requires_grad_(), f2.to(device).requires_grad_()
        out = correlation(a, b, max_displacement=4)
        out.backward(grad.to(device))
        return out.detach().cpu(), a.grad.cpu(), b.grad.cpu()

    reference, result = run(torch.device("cpu")), run(DEVICE)
    numbers = {"shape": [batch, channels, height, width]}
    for name, r, d in zip(("forward", "grad_f1", "grad_f2"), reference, result):
        diff = float((r - d).abs().max() / r.abs().max().clamp_min(1e-12))
        numbers[f"{name}_max_rel_diff"] = diff
        checks.less(f"{name} max difference / max value", diff, 1e-5)
    return numbers


def stage_amp(checks: Checks) -> Dict[str, Any]:
    """FlowDBN under bf16 and fp16 autocast against float32: evaluation PSNR, and the fp16 steps skipped."""
    set_tf32(False)
    width, height = SIZES["small_frame"] if QUICK else (640, 352)
    crop, samples = SIZES["crop"], SIZES["batch"] * SIZES["samples"]
    eval_batch = to_device(example(5, 1, width, height, seed=2))
    train_batch = to_device(example(5, samples, crop, crop, seed=1))
    model = build_model("FlowDBN").to(DEVICE)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = Trainer(model).evaluate(eval_batch)
    target = eval_batch["target1"].cpu()
    results: Dict[str, Any] = {"psnr_fp32": psnr(reference, target)}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        model.load_state_dict(state)
        trainer = Trainer(model, amp=dtype)
        output = trainer.evaluate(eval_batch)
        losses = [trainer.step(train_batch) for _ in range(SIZES["amp_steps"])]
        entry = {"psnr": psnr(output, target), "psnr_vs_fp32_output": psnr(output, reference),
                 "losses": losses, "steps": len(losses), "skipped_steps": trainer.skipped}
        entry["abs_delta_psnr_db"] = abs(entry["psnr"] - results["psnr_fp32"])
        results[name] = entry
        checks.less(f"{name} |dPSNR| dB vs fp32", entry["abs_delta_psnr_db"], 0.1)
        checks.true(f"{name} losses finite", all(math.isfinite(v) for v in losses), losses)
        if name == "fp16":
            checks.true("fp16 not every step skipped", trainer.skipped < len(losses), trainer.skipped)
    return results


def main_flags(save: Path, epochs: int) -> List[str]:
    """main.py flags of a small DBN run on the generated data."""
    root = DATA / "GOPRO_Large"
    if not root.is_dir():
        raise SkipStage("no generated data (the data stage did not pass)")
    crop = SIZES["crop"]
    return ["--model=DBN", "--loss=DBNLoss", "--optimizer=Adam", "--optimizer_lr=0.0001", "--batch_size=1",
            f"--total_epochs={epochs}", "--training_dataset=GoProNahTrain", f"--training_dataset_root={root}",
            f"--training_dataset_random_crop=[{crop}, {crop}]", "--training_dataset_num_samples_per_example=2",
            "--training_dataset_num_workers=0", "--training_dataset_num_examples=2",
            "--validation_dataset=GoProNahTest", f"--validation_dataset_root={root}",
            "--validation_dataset_num_workers=0", "--validation_dataset_num_examples=2",
            "--validation_keys=psnr", "--validation_modes=max", f"--save={save}", f"--cuda={CUDA}",
            "--proctitle=gpu-check"]


def run_main(argv: List[str]) -> int:
    """main.main(argv) in this process, logging reset afterwards."""
    import main
    from utils.logger import configure_logging

    try:
        return main.main(argv)
    finally:
        configure_logging(None)


def stage_resume(checks: Checks) -> Dict[str, Any]:
    """Train one epoch, then resume it for a second from a copy of the checkpoint that holds 8 CUDA RNG states
    (as an 8-GPU node writes it); on the CPU the copy has none and the resume path still runs."""
    require("main")
    from utils.records import read_csv_rows

    first = OUT / "resume" / "run"
    shutil.rmtree(first.parent, ignore_errors=True)
    checks.true("first run exits 0", run_main(main_flags(first, 1)) == 0)
    copy = first.parent / "run_8gpu"
    shutil.copytree(first, copy)
    checkpoint_file = copy / "checkpoint_latest_.ckpt"
    checkpoint = torch.load(checkpoint_file, weights_only=False)
    states = len(checkpoint.get("rng", {}).get("cuda", []))
    if CUDA:
        cuda_states = list(checkpoint["rng"]["cuda"])
        checkpoint["rng"]["cuda"] = (cuda_states * 8)[:8]
        torch.save(checkpoint, checkpoint_file)
    code = run_main(main_flags(copy, 2) + [f"--resume={copy}"])
    checks.true("resumed run exits 0", code == 0, code)
    rows = read_csv_rows(str(copy / "csv" / "GoProNahTrain_training_losses.csv"))
    epochs = [row["epoch"] for row in rows]
    checks.true("resumed run continues with epoch 2", epochs == ["1", "2"], epochs)
    logbook = (copy / "logbook.txt").read_text()
    return {"cuda_rng_states_written": states, "cuda_rng_states_in_copy": 8 if CUDA else 0,
            "visible_gpus": torch.cuda.device_count() if CUDA else 0, "training_epochs": epochs,
            "logbook_resume_lines": [line for line in logbook.splitlines() if "esum" in line or "RNG" in line][-5:]}


def stage_ddp(checks: Checks) -> Dict[str, Any]:
    """torchrun with 2 processes (NCCL on 2 GPUs with --sync_batchnorm; gloo on the CPU): records written once."""
    require("main")
    from utils.records import read_csv_rows

    if CUDA and torch.cuda.device_count() < 2:
        raise SkipStage(f"needs 2 GPUs (found {torch.cuda.device_count()})")
    save = OUT / "ddp" / "run"
    shutil.rmtree(save.parent, ignore_errors=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO / "main.py"), *main_flags(save, 2)]
    if CUDA:
        command.append("--sync_batchnorm=true")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    seconds = time.perf_counter() - start
    print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    checks.true("torchrun exits 0", result.returncode == 0, result.returncode)
    logbook = (save / "logbook.txt").read_text() if (save / "logbook.txt").is_file() else ""
    checks.true("parameters identical on 2 ranks", "parameters identical on all 2 ranks" in logbook)
    numbers: Dict[str, Any] = {"backend": "nccl" if CUDA else "gloo", "sync_batchnorm": CUDA, "seconds": seconds}
    for name in ("GoProNahTrain_training_losses", "GoProNahTest_evaluation_losses"):
        path = save / "csv" / f"{name}.csv"
        epochs = [row["epoch"] for row in read_csv_rows(str(path))] if path.is_file() else []
        numbers[f"{name}_epochs"] = epochs
        checks.true(f"{name} written once per epoch", epochs == ["1", "2"], epochs)
    return numbers


TRAINING_VARIANTS = ("fp32", "tf32", "channels_last", "bf16", "fp16")


def training_speed(variant: str, compile_backend: Optional[str] = None, model_name: str = "FlowDBN") -> Dict[str, Any]:
    """Steps/s, crops/s, peak memory and fraction of peak of FlowDBN training at the paper's batch."""
    set_tf32(variant in ("tf32", "channels_last", "bf16", "fp16", "compile"))
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(variant)
    channels_last = variant == "channels_last"
    crops = SIZES["batch"] * SIZES["samples"]
    model = build_model(model_name).to(DEVICE)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile_backend:
        model.compile(backend=compile_backend)
    trainer = Trainer(model, amp=amp)
    batch = to_device(example(5, crops, SIZES["crop"], SIZES["crop"]), channels_last)
    start = time.perf_counter()
    # The first step (compilation, cuDNN autotuning) is timed on its own; FLOPs are counted on the second,
    # which also warms up, and are those of the batch that runs (inductor's kernels are not counted).
    # Quick mode counts FLOPs on the first step (two steps per variant in all).
    if not QUICK or compile_backend:
        trainer.step(batch)
        synchronize()
    first = time.perf_counter() - start
    flops = count_flops(lambda: trainer.step(batch)) if compile_backend is None else None
    if CUDA:
        torch.cuda.reset_peak_memory_stats(DEVICE)
    seconds = timed(lambda: trainer.step(batch), SIZES["steps"], SIZES["warmup"])
    entry = {"variant": variant, "model": model_name, "step_s": seconds, "steps_per_s": 1 / seconds,
             "crops_per_s": crops / seconds, "first_step_s": first, "crops": crops, "crop": SIZES["crop"],
             "tf32": torch.backends.cudnn.allow_tf32}
    if CUDA:
        entry["peak_cuda_mib"] = torch.cuda.max_memory_allocated(DEVICE) / 2 ** 20
    if flops:
        peak = peak_flops(reduced_precision=variant != "fp32")
        entry.update(tflop_per_step=flops / 1e12, achieved_tflops=flops / seconds / 1e12,
                     fraction_of_peak=flops / seconds / peak if peak else None)
    return entry


def stage_speed_training(checks: Checks) -> Dict[str, Any]:
    """Training steps/s and crops/s at the paper's batch: fp32 (TF32 off), TF32, channels_last, bf16, fp16."""
    rows = []
    for variant in TRAINING_VARIANTS:
        try:
            rows.append(training_speed(variant))
        except RuntimeError as error:  # e.g. fp16 autocast unsupported on an old CPU build: the others still count
            rows.append({"variant": variant, "error": str(error).splitlines()[0]})
    for row in rows:
        checks.true(f"{row['variant']} ran", "error" not in row, row.get("error"))
    return {"config": {"model": "FlowDBN (PWC-Net)", "N": 5, "batch": SIZES["batch"],
                       "samples_per_example": SIZES["samples"], "step": STEP_DESCRIPTION}, "rows": rows}


def stage_speed_eval(checks: Checks) -> Dict[str, Any]:
    """Evaluation frames/s of FlowDBN at 1280x720 for N=5 and N=7 (TF32 on), with peak memory."""
    set_tf32(True)
    width, height = SIZES["frame"]
    rows = []
    for n in (5, 7):
        model = build_model("FlowDBN", sequence_length=n).to(DEVICE).eval()
        batch = to_device(example(n, 1, width, height))
        if CUDA:
            torch.cuda.reset_peak_memory_stats(DEVICE)

        def frame(model: torch.nn.Module = model, batch: Dict[str, torch.Tensor] = batch) -> None:
            with torch.inference_mode():
                model(batch)

        seconds = timed(frame, SIZES["steps"], SIZES["warmup"])
        row = {"N": n, "width": width, "height": height, "frame_s": seconds, "frames_per_s": 1 / seconds}
        if CUDA:
            row["peak_cuda_mib"] = torch.cuda.max_memory_allocated(DEVICE) / 2 ** 20
        rows.append(row)
        checks.true(f"N={n} frame time positive", seconds > 0, seconds)
        del model
    return {"rows": rows}


def stage_deblur(checks: Checks) -> Dict[str, Any]:
    """deblur.py end to end on a generated test sequence with the FlowDBN checkpoint of the data stage."""
    require("deblur")
    frames = sorted((DATA / "GOPRO_Large" / "test").glob("*/blur"))
    if not frames or not (DATA / "flowdbn.ckpt").is_file():
        raise SkipStage("no generated data (the data stage did not pass)")
    output = OUT / "deblur" / "frames"
    shutil.rmtree(output.parent, ignore_errors=True)
    command = [sys.executable, str(REPO / "deblur.py"), "--checkpoint", str(DATA / "flowdbn.ckpt"),
               "--input", str(frames[0]), "--output", str(output), "--device", str(DEVICE)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    seconds = time.perf_counter() - start
    print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    checks.true("deblur.py exits 0", result.returncode == 0, result.returncode)
    written = len(list(output.glob("*.png")))
    inputs = len(list(frames[0].glob("*.png")))
    checks.true("one output per input frame", written == inputs, [written, inputs])
    return {"frames": written, "seconds_incl_start": seconds, "frames_per_s_incl_start": written / seconds}


def stage_loader(checks: Checks) -> Dict[str, Any]:
    """Data-loader supply (crops/s the GoProNahTrain pipeline delivers) vs demand (crops/s training consumes)."""
    require("datasets.gopro_nah", "runtime")
    import runtime
    from datasets.gopro_nah import GoProNahTrain

    root = DATA / "GOPRO_Large"
    if not root.is_dir():
        raise SkipStage("no generated data (the data stage did not pass)")
    workers = 0 if QUICK else min(8, os.cpu_count() or 1)
    crop, samples = SIZES["crop"], SIZES["samples"]
    data = GoProNahTrain(None, root=str(root), random_crop=[crop, crop], num_samples_per_example=samples,
                         sequence_length=5)
    loader = runtime.Loader(runtime.make_data_loader(data, batch_size=SIZES["batch"], shuffle=True, drop_last=False,
                                                     num_workers=workers, device=DEVICE), DEVICE, collate=True)
    crops, start = 0, None
    for _ in range(1 if QUICK else 3):
        for batch in loader:
            if start is None:  # from the first batch on: worker start-up is not supply
                start = time.perf_counter()
                continue
            crops += batch["input1"].shape[0]
    synchronize()
    seconds = time.perf_counter() - (start or time.perf_counter())
    supply = crops / seconds if crops and seconds > 0 else None
    demand = None
    speed = OUT / "speed_training.json"
    if speed.is_file():
        rows = (json.loads(speed.read_text()).get("numbers") or {}).get("rows", [])
        rates = [row["crops_per_s"] for row in rows if "crops_per_s" in row]
        demand = max(rates) if rates else None
    checks.true("loader delivered crops", crops > 0, crops)
    return {"workers": workers, "crops": crops, "supply_crops_per_s": supply,
            "demand_crops_per_s_fastest_variant": demand,
            "supply_over_demand": supply / demand if supply and demand else None,
            "note": "frames of the generated data (small): real 1280x720 PNGs decode slower"}


def stage_profile(checks: Checks) -> Dict[str, Any]:
    """Profiler table of one FlowDBN training step: time in convolutions vs correlation vs the rest."""
    from torch.profiler import ProfilerActivity, profile

    set_tf32(True)
    crops = SIZES["batch"] * SIZES["samples"]
    model = build_model("FlowDBN").to(DEVICE)
    trainer = Trainer(model)
    batch = to_device(example(5, crops, SIZES["crop"], SIZES["crop"]))
    if not QUICK:
        trainer.step(batch)  # warm-up: autotuning and allocations out of the profile
    synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if CUDA else [])
    with profile(activities=activities) as profiler:
        trainer.step(batch)
        synchronize()
    averages = profiler.key_averages()
    attribute = "self_device_time_total" if CUDA else "self_cpu_time_total"
    groups = {"convolution": 0.0, "correlation": 0.0, "rest": 0.0}
    with profile(activities=activities) as correlation_profile:
        from contrib.correlation import correlation

        a = torch.randn(crops, 32, SIZES["crop"] // 4, SIZES["crop"] // 4, device=DEVICE)
        correlation(a, a, max_displacement=4)
        synchronize()
    correlation_ops = {event.key for event in correlation_profile.key_averages()}
    for event in averages:
        time_us = getattr(event, attribute, 0.0) or 0.0
        name = event.key.lower()
        if "conv" in name or "cudnn" in name or "gemm" in name or "winograd" in name:
            groups["convolution"] += time_us
        elif "correlation" in name or event.key in correlation_ops and "conv" not in name and "copy" not in name:
            groups["correlation"] += time_us
        else:
            groups["rest"] += time_us
    total = sum(groups.values()) or 1.0
    table = averages.table(sort_by=attribute, row_limit=25)
    (OUT / "profile_table.txt").write_text(table + "\n")
    print(table)
    checks.true("profiled time", total > 1.0, total)
    return {"time_basis": attribute, "total_ms": total / 1e3,
            "fraction": {key: value / total for key, value in groups.items()},
            "table": str(OUT / "profile_table.txt"),
            "note": "correlation = the ops contrib.correlation runs on its own (besides convolutions and copies)"}


def stage_compile(checks: Checks) -> Dict[str, Any]:
    """The training step under torch.compile (inductor on a GPU; 'eager' in quick CPU mode, which tests the
    code path without minutes of compilation, on DBN whose graph traces faster), TF32 on."""
    backend = os.environ.get("GPU_CHECK_COMPILE_BACKEND") or ("eager" if QUICK and not CUDA else "inductor")
    row = training_speed("compile", compile_backend=backend, model_name="DBN" if QUICK else "FlowDBN")
    row["backend"] = backend
    checks.true("compiled steps ran", row["step_s"] > 0, row["step_s"])
    return row


STAGES: Dict[str, Callable[[Checks], Dict[str, Any]]] = {
    "env": stage_env, "data": stage_data, "correctness": stage_correctness, "correlation": stage_correlation,
    "amp": stage_amp, "resume": stage_resume, "ddp": stage_ddp, "speed_training": stage_speed_training,
    "speed_eval": stage_speed_eval, "deblur": stage_deblur, "loader": stage_loader, "profile": stage_profile,
    "compile": stage_compile,
}


def write_json(path: Path, document: Dict[str, Any]) -> None:
    """Write a JSON document (NaN/inf as strings are not needed: json writes NaN, Python reads it back)."""
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


def run_stage(name: str) -> int:
    """Run one stage and write $OUT/<name>.json; exit status 0 unless it failed."""
    checks = Checks()
    document: Dict[str, Any] = {"stage": name, "device": str(DEVICE), "quick": QUICK,
                                "budget_s": float(os.environ.get("GPU_CHECK_BUDGET", "nan"))}
    start = time.perf_counter()
    torch.manual_seed(0)
    try:
        if os.environ.get("GPU_CHECK_FAIL") == name:
            raise RuntimeError(f"failure injected by GPU_CHECK_FAIL={name}")
        document["numbers"] = STAGES[name](checks)
        failed = checks.failed()
        document["status"] = "failed" if failed else "passed"
        if failed:
            document["reason"] = "out of tolerance: " + ", ".join(failed)
    except SkipStage as skip:
        document.update(status="skipped", reason=str(skip))
    except Exception as error:  # noqa: BLE001 -- any failure of a stage is its result, reported in its JSON
        traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else ""
        document.update(status="failed", reason=f"{type(error).__name__}: {message}")
    document["checks"] = checks.results
    document["seconds"] = time.perf_counter() - start
    write_json(OUT / f"{name}.json", document)
    print(f"{name}: {document['status']}" + (f" ({document['reason']})" if "reason" in document else ""))
    return 1 if document["status"] == "failed" else 0


def summary() -> int:
    """$OUT/summary.json: every stage in order with status, seconds, budget and key numbers."""
    table = {}
    table_file = OUT / "stages.tsv"
    if table_file.is_file():
        for line in table_file.read_text().splitlines():
            name, budget, code, seconds = line.split("\t")
            table[name] = {"budget_s": float(budget), "exit_status": int(code), "wall_s": float(seconds)}
    stages = []
    for name in STAGES:
        path = OUT / f"{name}.json"
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        entry = {"stage": name, "status": document.get("status", "failed"), "reason": document.get("reason"),
                 "seconds": document.get("seconds"), **table.get(name, {}), "numbers": document.get("numbers")}
        stages.append(entry)
    counts = {status: sum(entry["status"] == status for entry in stages) for status in ("passed", "failed", "skipped")}
    document = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "device": str(DEVICE), "quick": QUICK, "counts": counts,
                "total_budget_s": float(os.environ.get("GPU_CHECK_TOTAL_BUDGET", "nan")), "stages": stages}
    write_json(OUT / "summary.json", document)
    for entry in stages:
        print(f"{entry['stage']:<15} {entry['status']:<8} {entry.get('wall_s', entry['seconds'] or 0):6.1f} s"
              + (f"  {entry['reason']}" if entry["reason"] else ""))
    return 0


def main(argv: List[str]) -> int:
    """`gpu_check.py <stage>` or `gpu_check.py summary`."""
    if len(argv) != 1 or argv[0] not in (*STAGES, "summary"):
        print(f"usage: gpu_check.py <{'|'.join(STAGES)}|summary>", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    return summary() if argv[0] == "summary" else run_stage(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
