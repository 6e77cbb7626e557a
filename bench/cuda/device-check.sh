#!/usr/bin/env bash
# The CUDA device check (issue 12, item 5): one command on a machine with an NVIDIA GPU, < 5 minutes on an
# H200. Builds (PTX for sm_80 with nvcc; the driver JITs it), runs the fixture goldens through
# --target cuda, then prints one table: decode tok/s and % of the copy bandwidth measured in the same run
# for bench-0.1b and finch-1b6 in f16/bf16/int8, prefill tok/s at 512 and 4096 tokens, the WKV kernel
# alone (B8 T4096 C4096, serial vs chunked), and llama.cpp's CUDA build on the same weights.
#
#   bash bench/cuda/device-check.sh          # on the GPU machine (exit 1 when a golden or check fails)
#   bash bench/cuda/device-check.sh --sim    # the same script on the CPU emulator, tiny shapes
#
# Where the GPU machine has no Node.js (this workplace's lent H200), run bench/cuda/device-pack.sh here first
# and carry out/device: the device tool's run with carry ["out/device"] and this command.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/cuda/bin:$PATH"
die() { echo "device-check: $*" >&2; exit 2; }

# A machine without Node.js or node_modules (the lent GPU machines): what bench/cuda/device-pack.sh packed.
if ! command -v node >/dev/null && [ -s out/device/node.xz ]; then
  mkdir -p /tmp/rwkvc-node/bin && xz -dc out/device/node.xz > /tmp/rwkvc-node/bin/node && chmod +x /tmp/rwkvc-node/bin/node
  export PATH="/tmp/rwkvc-node/bin:$PATH"
fi
if [ ! -d node_modules/koffi ] && [ -s out/device/deps.tar.xz ]; then mkdir -p node_modules && tar -C node_modules -xJf out/device/deps.tar.xz; fi
command -v node >/dev/null || die "no node here (run bench/cuda/device-pack.sh where it is, and carry out/device)"
[ -d node_modules/koffi ] || die "koffi is not installed (npm install; the CUDA runtime calls the driver through it)"
command -v g++ >/dev/null || [ "${1:-}" != "--sim" ] || die "the emulator needs g++"
if [ "${1:-}" != "--sim" ]; then
  command -v nvcc >/dev/null || die "nvcc not found (PATH, /usr/local/cuda/bin): the kernels are compiled to PTX here"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
# (a missing driver or GPU is reported by the CUDA runtime itself: one line, exit 2)
exec timeout 600 node node_modules/tsx/dist/cli.mjs bench/cuda/device-check.ts "$@"
