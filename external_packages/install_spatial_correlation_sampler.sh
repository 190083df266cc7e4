#!/usr/bin/env bash
# Installs the optional compiled correlation backend `spatial_correlation_sampler` (Clément Pinard's
# PyTorch extension, the one the original framework vendored) into the project's Python, built
# against the installed PyTorch.
#
# The project never needs it: contrib/correlation.py has a pure-PyTorch layer with identical
# semantics, and the tests compare both when the extension is importable. If anything below fails,
# the script stops with the reason and the built-in layer stays in use.
#
# What it does:
#   1. pip download the 0.5.0 source distribution (or use SCS_SDIST=/path/to/sdist.tar.gz offline);
#   2. patch it for today's PyTorch: compile with the C++ standard the installed headers demand
#      (C++20 for recent PyTorch instead of the hard-coded C++17), guard the CUDA-only include so a
#      CPU-only build compiles, choose CPU-only or CUDA build, and replace the removed autograd
#      attribute ctx.saved_variables by ctx.saved_tensors;
#   3. pip install it with --no-build-isolation (so it links against the installed torch);
#   4. check it against contrib/correlation.py on random tensors (forward and gradients).
#
# Usage: bash external_packages/install_spatial_correlation_sampler.sh [--cpu-only | --cuda]
#   default: CUDA build when PyTorch has CUDA, nvcc is found and a GPU is visible, else CPU-only.
#   GPU_ARCH="80 90" limits the CUDA architectures (default: those of the visible GPUs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="${PYTHON:-python3}"; fi
VERSION="0.5.0"
MODE="auto"
for arg in "$@"; do
    case "$arg" in
        --cpu-only) MODE="cpu" ;;
        --cuda) MODE="cuda" ;;
        -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument '$arg' (expected --cpu-only or --cuda)" >&2; exit 2 ;;
    esac
done

give_up() {
    echo "" >&2
    echo "spatial_correlation_sampler was NOT installed: $1" >&2
    echo "Nothing is lost: the built-in pure-PyTorch correlation layer (contrib/correlation.py) is used." >&2
    exit 1
}

"$PYTHON" -c "import torch" 2>/dev/null || give_up "'$PYTHON' cannot import torch (create the project's .venv first)"
command -v "${CXX:-c++}" >/dev/null || give_up "no C++ compiler ('${CXX:-c++}') on PATH"

TORCH_INCLUDE="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')"
CXX_STD="c++17"
if grep -qs "C++20 or later" "$TORCH_INCLUDE/ATen/ATen.h" "$TORCH_INCLUDE/torch/csrc/api/include/torch/all.h"; then
    CXX_STD="c++20"
fi

if [[ "$MODE" == "auto" ]]; then
    if "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)" \
        && command -v nvcc >/dev/null; then
        MODE="cuda"
    else
        MODE="cpu"
    fi
fi
if [[ "$MODE" == "cuda" ]]; then
    "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" \
        || give_up "--cuda requested but the installed PyTorch has no CUDA support"
    command -v nvcc >/dev/null || give_up "--cuda requested but nvcc is not on PATH"
fi
echo "Building spatial_correlation_sampler $VERSION: mode=$MODE, -std=$CXX_STD, python=$PYTHON"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [[ -n "${SCS_SDIST:-}" ]]; then
    [[ -f "$SCS_SDIST" ]] || give_up "SCS_SDIST='$SCS_SDIST' does not exist"
    cp "$SCS_SDIST" "$WORK/"
else
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        --dest "$WORK" "spatial-correlation-sampler==$VERSION" \
        || give_up "could not download the source of spatial-correlation-sampler==$VERSION from the package index"
fi
SDIST="$(ls "$WORK"/spatial_correlation_sampler-*.tar.gz 2>/dev/null | head -n 1)"
[[ -n "$SDIST" ]] || give_up "no spatial_correlation_sampler-*.tar.gz source distribution in $WORK"
tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/spatial_correlation_sampler-$VERSION"
[[ -f "$SRC/setup.py" ]] || give_up "unexpected source layout (no $SRC/setup.py)"

# Patches; each one must match exactly, or the source is not the version they were written for.
"$PYTHON" - "$SRC" "$MODE" "$CXX_STD" <<'PATCH' || give_up "the source does not match the patches written for version $VERSION"
import os
import sys

src, mode, std = sys.argv[1:4]


def patch(relative, old, new):
    path = os.path.join(src, relative)
    with open(path) as handle:
        text = handle.read()
    if old not in text:
        sys.exit(f"patch failed: {relative} does not contain {old!r}")
    with open(path, "w") as handle:
        handle.write(text.replace(old, new))


patch("setup.py", "CPU_ONLY = False", f"CPU_ONLY = {mode == 'cpu'}")
patch("setup.py", "cxx_args = ['-std=c++17', '-fopenmp']", f"cxx_args = ['-std={std}', '-fopenmp']")
patch("setup.py", "nvcc_args = []", f"nvcc_args = ['-std={std}']")
patch("Correlation_Module/correlation_sampler.cpp", "#include <c10/cuda/CUDAGuard.h>\n",
      "#ifdef USE_CUDA\n#include <c10/cuda/CUDAGuard.h>\n#endif\n")
patch("Correlation_Module/spatial_correlation_sampler/spatial_correlation_sampler.py",
      "ctx.saved_variables", "ctx.saved_tensors")
print("patched: CPU_ONLY, C++ standard, CUDA include guard, saved_tensors")
PATCH

echo "Compiling (a minute or two on a few cores)..."
( cd "$SRC" && MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PYTHON" -m pip install --no-build-isolation --no-deps . ) \
    || give_up "compilation failed (see the compiler output above)"

cd "$ROOT"
"$PYTHON" - <<'CHECK' || give_up "the installed extension does not agree with contrib/correlation.py (it was installed; remove it with: $PYTHON -m pip uninstall spatial-correlation-sampler)"
import torch

from contrib.correlation import correlation

torch.manual_seed(0)
devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
for device in devices:
    f1 = torch.randn(2, 16, 12, 15, dtype=torch.float64, device=device, requires_grad=True)
    f2 = torch.randn(2, 16, 12, 15, dtype=torch.float64, device=device, requires_grad=True)
    ours = correlation(f1, f2)
    theirs = correlation(f1, f2, backend="spatial_correlation_sampler")
    grads_ours = torch.autograd.grad(ours.square().sum(), (f1, f2))
    grads_theirs = torch.autograd.grad(theirs.square().sum(), (f1, f2))
    difference = max([(ours - theirs).abs().max().item()] +
                     [(a - b).abs().max().item() for a, b in zip(grads_ours, grads_theirs)])
    print(f"{device}: largest difference to the built-in layer (forward and gradients): {difference:.2e}")
    if difference > 1e-8:
        raise SystemExit(1)
CHECK
echo "spatial_correlation_sampler installed; select it with contrib.correlation.correlation(..., backend='spatial_correlation_sampler')."
