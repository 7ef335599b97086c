#!/usr/bin/env bash
# Install the Debian packages the build and the tests need, only those that are missing.
# Idempotent: a second run installs nothing and does not touch apt.
set -euo pipefail

need=(gcc make pkg-config meson ninja-build libcmocka-dev python3 python3-dev libucx-dev libfabric-dev libfabric-bin iproute2
      python3-pytest python3-numpy python3-torch etcd-server libcurl4-openssl-dev libjson-c-dev libssl-dev
      openssl
      liburing-dev libaio-dev fio ucx-utils clang libclang-rt-14-dev g++ libgtest-dev
      libmicrohttpd-dev prometheus)
[ -n "${NIXL_DEPS_EXTRA:-}" ] && read -r -a extra <<<"$NIXL_DEPS_EXTRA" && need+=("${extra[@]}")

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
