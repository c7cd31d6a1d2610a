#!/usr/bin/env bash
# Installs the Debian packages kforge needs to build and test, only those missing.
# CUDA (/usr/local/cuda) and HIP (libamdhip64-dev) are optional and never installed here.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libfmt-dev libxxhash-dev libseccomp-dev
  libsqlite3-dev sqlite3 libgtest-dev libgmock-dev libbenchmark-dev
  libcurl4-openssl-dev  # the LLM client
  libcpp-httplib-dev    # the fake LLM server the agent tests talk to
  libopenblas-openmp-dev  # the vendor baseline of the matmul tasks (OpenBLAS, its OpenMP build)
  libamdhip64-dev  # hiprtc and HIP headers: the hip backend compiles for gfx90a without a GPU
  libjs-highlight.js  # kforge serve/report: source highlighting, served from its install path
  chromium curl  # the kforge serve tests: pages in headless Chromium, the API over HTTP
  slurmctld slurmd slurm-client munge openssh-server openssh-client  # the worker-pool tests' engines
  clang-14 libclang-rt-14-dev llvm-14  # the parsers' fuzz targets: clang, libFuzzer, ASan, UBSan, llvm-symbolizer
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "kforge: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
