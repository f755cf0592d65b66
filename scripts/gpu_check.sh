#!/usr/bin/env bash
# Every check that needs a GPU, in one command, for a machine that has one but not our venv
# (the device machine: Python 3.12 with its own CUDA torch, numpy, safetensors, pytest,
# hypothesis, scipy, h5py, tensorboard). What it lacks travels as wheels in .whl/:
#
#   here:        bash scripts/gpu_check.sh --fetch        # Python 3.12 wheels into .whl/
#   GPU machine: bash scripts/gpu_check.sh [OUTDIR]       # default OUTDIR: $OUT or gpu_check/
#
# On the GPU machine it runs the CUDA tests (step == forward on CUDA, CUDA-graph capture and
# replay, the torch binner on CUDA), the step-latency benchmark on CUDA against SpikingJelly,
# `dvsapp run --device cuda` with the shipped model on the shipped recording, and a short AMP
# training run per family, writing each log into OUTDIR (at most 8 files). It never installs
# a torch: the machine's own is the one under test.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(tonic==1.7.0 importRosbag==1.0.4 loguru==0.7.3 spikingjelly==2.0.0 aedat==2.3.0)

if [[ "${1:-}" == "--fetch" ]]; then
    grep -qxF "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >>.git/info/exclude
    py=$(command -v .venv/bin/python || command -v python3)
    exec "$py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
fi

out="${1:-${OUT:-gpu_check}}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/dvsapp_site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/dvsapp_site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch',
        torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    nproc
} 2>&1 | tee "$out/machine.txt"

status=0
python3 -m pytest -q -p no:cacheprovider -o addopts="" -rs \
    tests/test_cuda_graph.py tests/test_snn_resnet.py tests/test_snn_vgg.py \
    tests/test_binning.py tests/test_stepper.py tests/test_early_exit.py \
    tests/test_checkpoint.py 2>&1 | tee "$out/pytest_cuda.txt" || status=1

python3 benchmarks/bench_step.py --device cuda --sizes all 2>&1 \
    | tee "$out/bench_step_cuda.txt" || status=1

python3 -m dvsapp run recordings/synth_seed9000000.aedat \
    --model models/resnet_small_synth.safetensors --device cuda --speed max 2>&1 \
    | tail -n 3 | tee "$out/run_cuda.txt" || status=1

# One short AMP training run per family (330 clips, 3 epochs): seconds per epoch on the GPU.
for arch in vgg_small resnet_small; do
    python3 -m dvsapp train --arch "$arch" --n-per-class 30 --epochs 3 --device cuda \
        --logdir "/tmp/gpu_check_$arch" --cache-dir /tmp/gpu_check_cache 2>&1 \
        | tr '\r' '\n' | grep -E "^epoch [0-9]+/[0-9]+: loss|^best|rror" \
        | tee -a "$out/train_cuda.txt" || status=1
done

echo "gpu_check: exit $status, logs in $out"
exit $status
