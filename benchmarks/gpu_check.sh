#!/usr/bin/env bash
# One prepared GPU session: Triton kernels against their references on CUDA, then the GPU
# benchmark ratios. Needs only torch + triton + numpy + scipy + pytest (the device image has them).
# Usage (repo root): bash benchmarks/gpu_check.sh
set -u
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
echo "== gpu tests (kernels vs *_ref on CUDA)"
timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu -o addopts="" \
    tests/test_selective_scan_triton.py tests/test_selective_scan.py tests/test_lorenz.py tests/test_integrators.py 2>&1 | tail -25
echo "== selective scan: Triton vs chunked torch"
timeout 200 python3 benchmarks/bench_selective_scan.py --device cuda 2>&1 | tail -40
echo "== Lorenz96 ensemble at 65,536 members"
timeout 150 python3 benchmarks/bench_lorenz96.py --device cuda --members 65536 2>&1 | grep -v "^W1" | tail -12
