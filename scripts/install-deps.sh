#!/usr/bin/env bash
# Install the Debian packages the build and the tests need, only those that are missing.
# Idempotent: a second run installs nothing and does not touch apt.
set -euo pipefail

need=(gcc make pkg-config meson ninja-build libcmocka-dev python3 python3-dev libucx-dev libfabric-dev libfabric-bin iproute2
      python3-pytest python3-numpy python3-torch etcd-server libcurl4-openssl-dev libjson-c-dev libssl-dev
      openssl python3-boto3
      liburing-dev libaio-dev fio ucx-utils clang libclang-rt-14-dev g++ libgtest-dev
      libmicrohttpd-dev prometheus valgrind)
# Node and npm from Debian only where none is installed (another install's npm conflicts).
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -n "${NIXL_DEPS_EXTRA:-}" ] && read -r -a extra <<<"$NIXL_DEPS_EXTRA" && need+=("${extra[@]}")

# npm tools of the tests, pinned, installed into build-npm/ of the tree (never globally):
# s3rver, the S3 server the OBJ tests start on loopback; azurite, the Azure Blob server the
# AZURE_BLOB tests start on loopback.
npm_tools=(s3rver@3.7.1 azurite@3.35.0)
root=$(cd "$(dirname "$0")/.." && pwd)
npm_deps() {
  local missing_npm=()
  for t in "${npm_tools[@]}"; do
    [ -e "$root/build-npm/node_modules/${t%@*}/package.json" ] || missing_npm+=("$t")
  done
  if [ ${#missing_npm[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing_npm[*]} from npm into build-npm/"
    mkdir -p "$root/build-npm"
    # A failure leaves the tests that need these tools skipping (77) with the reason.
    npm install --prefix "$root/build-npm" --no-audit --no-fund --loglevel=error \
        "${missing_npm[@]}" || echo "install-deps: npm install failed; the OBJ and AZURE_BLOB tests will skip" >&2
  fi
  # s3rver answers a PUT before the object is in its file (the script says more)
  python3 "$root/scripts/patch-s3rver.py" "$root" || echo "install-deps: s3rver not patched; OBJ tests may see short reads after writes" >&2
}

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then npm_deps; exit 0; fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
npm_deps
