#!/usr/bin/env bash
# The CUDA device check (issue 12, item 5): one command on a machine with an NVIDIA GPU, < 5 minutes on an
# H200. Builds (PTX for sm_80 with nvcc; the driver JITs it), runs the fixture goldens through
# --target cuda, then prints one table: decode tok/s and % of the copy bandwidth measured in the same run
# for bench-0.1b and finch-1b6 in f16/bf16/int8, prefill tok/s at 512 and 4096 tokens, the WKV kernel
# alone (B8 T4096 C4096, serial vs chunked), and llama.cpp's CUDA build on the same weights.
#
#   bash bench/cuda/device-check.sh          # on the GPU machine (exit 1 when a golden or check fails)
#   bash bench/cuda/device-check.sh --sim    # the same script on the CPU emulator, tiny shapes
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/cuda/bin:$PATH"
die() { echo "device-check: $*" >&2; exit 2; }

[ -d node_modules/koffi ] || die "koffi is not installed (npm install; the CUDA runtime calls the driver through it)"
command -v g++ >/dev/null || [ "${1:-}" != "--sim" ] || die "the emulator needs g++"
if [ "${1:-}" != "--sim" ]; then
  command -v nvcc >/dev/null || die "nvcc not found (PATH, /usr/local/cuda/bin): the kernels are compiled to PTX here"
  { ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; } || [ -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ] ||
    die "no CUDA driver (libcuda.so.1) on this machine"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
if [ "${1:-}" = "--sim" ]; then
  echo "## fixture goldens on the emulator (test/cuda-sim.test.ts)"
  timeout 300 npx vitest run test/cuda-sim.test.ts
else
  echo "## fixture goldens through --target cuda (test/cuda-sim.test.ts with RWKVC_CUDA_DEVICE=1)"
  RWKVC_CUDA_DEVICE=1 timeout 300 npx vitest run test/cuda-sim.test.ts
fi
exec timeout 600 npx tsx bench/cuda/device-check.ts "$@"
