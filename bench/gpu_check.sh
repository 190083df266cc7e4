#!/usr/bin/env bash
# One check of a GPU machine, for whoever borrows one: correctness CPU vs GPU, AMP, resume, DDP, speed.
#
#   bash bench/gpu_check.sh                                     # on the GPU machine, about 5 minutes at most
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 bash bench/gpu_check.sh   # every stage at tiny sizes on the CPU
#
# Uses whatever `python3` and torch it finds (PYTHON= overrides) and installs nothing: torch, numpy and PIL
# are enough; a stage that needs a missing package (main.py needs colorama, tqdm, scipy, tensorboard, ...;
# the data generator scikit-image) says "skipped: <package> missing". Each stage is its own process under
# `timeout <budget>`; a failure never stops the stages after it. Results: $OUT/<stage>.json and .log, then
# $OUT/summary.json (every stage's status passed/failed/skipped, seconds, budget, key numbers).
#
# Environment: OUT (output folder, default gpu_check_<date> in the current folder), PYTHON,
# GPU_CHECK_DEVICE (cpu|cuda), GPU_CHECK_QUICK=1 (tiny sizes), GPU_CHECK_STAGES=a,b (rerun a subset; the
# other stages' files in OUT stay and summary.json lists them too), GPU_CHECK_FAIL=<stage> (inject a failure).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="$(realpath -m "${OUT:-gpu_check_$(date -u +%Y%m%d_%H%M%S)}")"
export OUT
mkdir -p "$OUT"

# Stage budgets in seconds on one H100-class GPU (the timeout of each stage, interpreter start included).
# They add up to 300 s by construction: compile runs last and only when the time spent so far leaves its
# budget (it then gets all that is left). Quick CPU mode gives every stage 180 s instead (2 slow cores).
STAGES=(
    "env 10"              # GPU, driver, torch/CUDA/cuDNN, TF32 defaults, optional packages present
    "data 15"             # generated GoPro-like frames, prewarping network, FlowDBN checkpoint
    "correctness 20"      # DBN and FlowDBN CPU vs GPU: a training step and an evaluation, TF32 off and on
    "correlation 10"      # correlation forward and backward CPU vs GPU
    "amp 20"              # bf16 and fp16 vs fp32: PSNR difference, fp16 steps skipped
    "resume 25"           # resume on the GPU, also from a checkpoint with 8 GPUs' RNG states
    "ddp 25"              # torchrun, 2 processes (needs 2 GPUs; gloo on the CPU)
    "speed_training 40"   # steps/s and crops/s at the paper's batch: fp32, TF32, channels_last, bf16, fp16
    "speed_eval 20"       # 1280x720 frames/s, N=5 and N=7, peak memory
    "deblur 15"           # deblur.py end to end
    "loader 15"           # data-loader supply vs training demand
    "profile 15"          # convolutions vs correlation vs the rest
    "compile 70"          # --compile (torch.compile, inductor); last
)
TOTAL_BUDGET=300
QUICK="${GPU_CHECK_QUICK:-0}"
if [ "$QUICK" = "1" ]; then TOTAL_BUDGET=3000; fi
export GPU_CHECK_TOTAL_BUDGET="$TOTAL_BUDGET"
WANTED=",${GPU_CHECK_STAGES:-},"

cd "$ROOT"
echo "==> GPU check: python $PYTHON, output $OUT, device ${GPU_CHECK_DEVICE:-default}, quick $QUICK"
: > "$OUT/stages.tsv"
START=$SECONDS
for entry in "${STAGES[@]}"; do
    read -r NAME BUDGET <<< "$entry"
    if [ -n "${GPU_CHECK_STAGES:-}" ] && [[ "$WANTED" != *",$NAME,"* ]]; then continue; fi
    TIMEOUT=$BUDGET
    if [ "$QUICK" = "1" ]; then TIMEOUT=180; fi
    LEFT=$((TOTAL_BUDGET - (SECONDS - START)))
    if [ "$NAME" = "compile" ] && [ "$QUICK" != "1" ]; then
        if [ "$LEFT" -lt "$BUDGET" ]; then
            printf '{"stage": "compile", "status": "skipped", "reason": "budget spent: %s s left of %s, compile needs %s", "seconds": 0, "budget_s": %s}\n' \
                "$LEFT" "$TOTAL_BUDGET" "$BUDGET" "$BUDGET" > "$OUT/compile.json"
            printf 'compile\t%s\t0\t0\n' "$BUDGET" >> "$OUT/stages.tsv"
            echo "compile: skipped (budget spent)"
            continue
        fi
        TIMEOUT=$LEFT
    fi
    rm -f "$OUT/$NAME.json"
    STAGE_START=$SECONDS
    GPU_CHECK_BUDGET=$TIMEOUT timeout --kill-after=5 "$TIMEOUT" "$PYTHON" bench/gpu_check.py "$NAME" \
        > "$OUT/$NAME.log" 2>&1
    CODE=$?
    WALL=$((SECONDS - STAGE_START))
    if [ ! -s "$OUT/$NAME.json" ]; then
        # The process died before writing its result: a timeout, a crash, or a python without torch.
        if [ "$CODE" = "124" ] || [ "$CODE" = "137" ]; then REASON="timeout after $TIMEOUT s"
        else REASON="exit status $CODE: $(tail -n 1 "$OUT/$NAME.log" | tr -d '"\\' | cut -c1-200)"; fi
        printf '{"stage": "%s", "status": "failed", "reason": "%s", "seconds": %s, "budget_s": %s}\n' \
            "$NAME" "$REASON" "$WALL" "$TIMEOUT" > "$OUT/$NAME.json"
    fi
    printf '%s\t%s\t%s\t%s\n' "$NAME" "$TIMEOUT" "$CODE" "$WALL" >> "$OUT/stages.tsv"
    tail -n 1 "$OUT/$NAME.log"
done

"$PYTHON" bench/gpu_check.py summary
echo "==> Results in $OUT (summary.json; each stage's .json and .log)"
