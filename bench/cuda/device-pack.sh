#!/usr/bin/env bash
# Packs what bench/cuda/device-check.sh needs on a GPU machine that has CUDA but no Node.js (this
# workplace's lent H200): out/device/node.xz (this machine's node binary) and out/device/deps.tar.xz (the
# few packages the check imports: tsx + esbuild to run TypeScript, koffi for the driver API (linux x64
# only), handlebars for the codegen). About 30 MB; the device tool carries out/device with the tree:
#
#   bash bench/cuda/device-pack.sh                     # here, once
#   device run  carry=["out/device"]  command="bash bench/cuda/device-check.sh"
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p out/device
node_bin="$(readlink -f "$(command -v node)")"
if [ ! -s out/device/node.xz ] || [ "$(cat out/device/node.version 2>/dev/null)" != "$(node --version)" ]; then
  xz -T2 -6 -c "$node_bin" > out/device/node.xz.tmp && mv out/device/node.xz.tmp out/device/node.xz
  node --version > out/device/node.version
fi
tar -C node_modules -cJf out/device/deps.tar.xz \
  tsx esbuild @esbuild/linux-x64 handlebars source-map \
  koffi/package.json koffi/index.js koffi/indirect.js koffi/index.d.ts koffi/build/koffi/linux_x64
du -sh out/device/*
