#!/usr/bin/env bash
# Make .venv with everything dvsapp needs, from a clean clone, nothing installed by hand.
# torch is installed first and pinned (2.13.0; on this kind of machine pip takes a local CPU
# build): any later package that asks for torch then finds it and pulls no second torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${DVSAPP_VENV:-.venv}
TORCH_VERSION=${DVSAPP_TORCH:-2.13.0}
STAMP="$VENV/.dvsapp-installed"

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt scripts/setup.sh ]; then
    exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PY --version)" >&2
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "setup: installing torch==$TORCH_VERSION (first, pinned)" >&2
    "${PIP[@]}" install "torch==$TORCH_VERSION"
fi
echo "setup: installing dvsapp and its dependencies" >&2
"${PIP[@]}" install -e ".[dev,gui,camera,train]"
# Peers for the benchmarks and tests, without their dependencies (they ask for torchvision /
# torchaudio: a second torch). NeuroBench's metrics need nothing beyond what is installed.
"${PIP[@]}" install --no-deps "spikingjelly==2.0.0" "loguru>=0.7,<1" "neurobench==2.3.0"
"$VENV/bin/python" - <<'PYCHECK'
import importlib.metadata as md
torches = [d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith(("torch", "nvidia-"))]
assert torches.count("torch") == 1, f"more than one torch: {torches}"
bad = [n for n in torches if n.lower() in ("torchvision", "torchaudio") or n.lower().startswith("nvidia-")]
assert not bad, f"a dependency pulled CUDA/torchvision wheels: {bad}"
PYCHECK
# The in-depth probes' compiled kernels: compiled once here (numba caches them beside the
# source), not in the app's first in-depth view.
"$VENV/bin/python" -c "from dvsapp.snn.analysis.cpu_kernels import warm_up; warm_up()"
touch "$STAMP"
echo "setup: done ($VENV)" >&2
