#!/usr/bin/env bash
# Installs the Debian 12 packages gst-earlyexit needs to build, test and run.
# Idempotent: packages already present are not touched, so a second run is fast.
# Works as root or through sudo.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
  libglib2.0-dev libjson-glib-dev libfftw3-dev libsndfile1-dev libdnnl-dev libpng-dev libjpeg-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav check
  python3-numpy python3-torch python3-torchvision python3-gst-1.0
  libmosquitto-dev librdkafka-dev mosquitto mosquitto-clients openssl python3-jsonschema
  python3-resampy python3-h5py python3-scipy
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root or install sudo" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
