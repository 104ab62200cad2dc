#!/usr/bin/env bash
# Installs the Debian 12 packages expt needs to build, test and run. Idempotent: installs only
# what is missing. As non-root it prints the one apt-get command to run instead.
#   scripts/install-deps.sh          build + test + quickstart dependencies (with the PyTorch CPU
#                                    peer of bench/peer/, which the peer tests run; decision 98)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libopenmpi-dev openmpi-bin
  libeigen3-dev libhdf5-dev hdf5-tools libyaml-cpp-dev catch2
  libopenblas-dev libdnnl-dev libxsmm-dev librandom123-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libbenchmark-dev
  python3 python3-h5py python3-numpy python3-yaml python3-pandas python3-matplotlib
  python3-torch  # the PyTorch peer (bench/peer/) and its tests peer_compare, peer_same_model
  fortunes  # the default text corpus, /usr/share/games/fortunes (docs/tasks.md)
  clang-14 libclang-rt-14-dev  # libFuzzer + sanitizers for scripts/fuzz.sh (docs/reliability.md)
  slurm-wlm munge  # the one-node Slurm cluster of the slurm-labelled tests (tests/scripts/lib_slurm.sh)
  libcpp-httplib-dev libjs-chart.js  # `expt serve`: HTTP server, charts compiled in (docs/dashboard.md)
  chromium chromium-driver           # the dashboard's real-browser test (tests/scripts/serve_browser.sh)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if ((EUID != 0)); then
  echo "install-deps: missing packages; run as root:"
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
