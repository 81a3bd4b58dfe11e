#!/bin/sh
# Installs everything gst-moshi needs to build and test, from Debian 12 packages only.
# Runs as root, or as a user who may use sudo. Safe to run again.
set -eu
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "setup.sh: run it as root, or install sudo first (apt-get install sudo, as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# libopenblas0-pthread: without it Debian's libtorch falls back to the reference BLAS, about
# 12x slower. clang and libclang-rt-14-dev build the libFuzzer target of the test suite.
# moshi-gateway: Sofia-SIP (SIP and SDP), libsoup 3 (/metrics), gstreamer1.0-libav (G.722), and
# baresip-core, the SIP phone its tests call it with; kamailio, the SIP proxy the gateway-kamailio
# test puts in front of two gateways; gstreamer1.0-plugins-bad for opusparse, which the door of
# Kyutai's web client puts between oggdemux and opusdec (docs/GATEWAY.md). debhelper and
# lintian build and check the Debian packages (dpkg-buildpackage -b -us -uc; docs/GATEWAY.md).
$SUDO apt-get install -y --no-install-recommends \
  build-essential meson ninja-build pkg-config \
  libtorch-dev libopenblas0-pthread nlohmann-json3-dev libgtest-dev \
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  libsentencepiece-dev \
  clang libclang-rt-14-dev \
  libsofia-sip-ua-glib-dev libsoup-3.0-dev gstreamer1.0-libav gstreamer1.0-plugins-bad \
  baresip-core kamailio \
  debhelper lintian
