#!/usr/bin/env bash
# One prepared run on a machine with a GPU: the device tests on the real GPU (torch on the CPU as
# the reference), then the GPU half of the benchmark suite. Logs and results go to OUT.
#
#   bash bench/gpu_session.sh OUT [--full]
#
# Budgeted for a short loan of the machine (one command of at most 10 minutes): the tests get
# 3 minutes; then the workloads behind the GPU targets (8-op chain, softmax, layer norm, float16
# matmul) are measured on their own, 2 minutes, so that a later timeout cannot lose them; then
# the whole suite, 4 minutes (--quick sizes unless --full). Each bench run writes its own
# results folder. Needs tracegrad's run-time, GPU and test dependencies installed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:?usage: bash bench/gpu_session.sh OUT [--full]}"
quick="--quick"
[ "${2:-}" = "--full" ] && quick=""
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

python - <<'PY' 2>&1 | tee "$out/machine.txt"
import platform, numpy, torch, triton, tracegrad
print("python", platform.python_version(), "numpy", numpy.__version__, "torch", torch.__version__,
      "triton", triton.__version__)
print("gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None,
      "tracegrad sees", tracegrad.cuda.device_count(), "device(s)")
PY

TRACEGRAD_TEST_DEVICE=cuda timeout 180 python -m pytest -p no:cacheprovider -q -rf \
    tests/test_cuda_eager*.py 2>&1 | tee "$out/gpu-tests.log"
echo "device tests exit status: ${PIPESTATUS[0]}" | tee -a "$out/gpu-tests.log"

timeout 120 python -m bench --device cuda --quick --no-progress --out "$out/targets" \
    --only chain8 --only softmax --only layer_norm --only matmul_float16 2>&1 | tee "$out/targets.log"
echo "target benchmarks exit status: ${PIPESTATUS[0]}" | tee -a "$out/targets.log"

timeout 240 python -m bench --device cuda $quick --no-progress --out "$out/bench" 2>&1 | tee "$out/bench.log"
echo "benchmarks exit status: ${PIPESTATUS[0]}" | tee -a "$out/bench.log"
