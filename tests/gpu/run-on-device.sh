#!/usr/bin/env bash
# Build and run everything GPU on the accelerator machine (the `device` tool), in one call:
#   scripts/device-deps.sh stage                    (here, once: the headers the machine lacks)
#   run: tests/gpu/run-on-device.sh [what...]       (there, carrying build-devdeps)
# what: build (default set: build test nokernel bench), test, nokernel, bench, tools, gds,
#   copythreads (SHM's copy threads on this many-core host: bench/xfer, $OUT/copy-threads.md).
#   gds: tests/gpu/run-gds.sh (test_gds, then the GDS figures) with files in
#        $NIXL_GDS_TEST_DIR (default /var/tmp/nixl-gds, for `test` too). On the accelerator VMs
#        cuFile finds no udev data for the disk and refuses every file (5027); with
#        NIXL_GDS_FIX_UDEV=1 (root) the script first writes the two properties cuFile reads
#        (/run/udev/data/b<major>:<minor>).
# Results go to $OUT (when set) as well as stdout.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
steps=${*:-build test nokernel bench}
rc=0
if [ -d build-devdeps ]; then
  export PKG_CONFIG_PATH=$(scripts/device-deps.sh setup | tail -1)
fi
nvidia-smi -L 2>&1 | tee "$out/device.txt"
gdir=${NIXL_GDS_TEST_DIR:-/var/tmp/nixl-gds}
mkdir -p "$gdir"
if [ "${NIXL_GDS_FIX_UDEV:-0}" = 1 ]; then # before any step: `test` runs test_gds too
  mm=$(stat -c '%Hd:%Ld' "$gdir")
  mkdir -p /run/udev/data
  [ -e "/run/udev/data/b$mm" ] ||
    printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=ext4\n' >"/run/udev/data/b$mm"
fi
export NIXL_GDS_TEST_DIR=$gdir
for step in $steps; do
  echo "=== $step"
  case $step in
  build)
    { meson setup build-gpu -Dbuildtype=release >/dev/null && ninja -k 0 -C build-gpu; } \
      >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; rc=1; }
    ;;
  test)
    meson test -C build-gpu --no-rebuild --suite gpu --print-errorlogs 2>&1 | tee "$out/test-gpu.txt" | tail -25
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    cp build-gpu/meson-logs/testlog.txt "$out/testlog-gpu.txt" 2>/dev/null
    ;;
  unit)
    meson test -C build-gpu --no-rebuild --suite unit --suite integration 2>&1 | tail -8 | tee "$out/test-unit.txt"
    ;;
  nokernel)
    # The fallback without nvcc: the driver copies each descriptor.
    { meson setup build-nokernel -Dgpu_kernel=disabled >/dev/null && ninja -C build-nokernel tests/gpu/test_shm_vram; } \
      >"$out/build-nokernel.log" 2>&1 || { tail -20 "$out/build-nokernel.log"; rc=1; }
    NIXL_LOG_LEVEL=INFO build-nokernel/tests/gpu/test_shm_vram 2>&1 | tail -8 | tee "$out/test-nokernel.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    ;;
  bench)
    build-gpu/tests/gpu/gpu_bench 20 2>&1 | tee "$out/gpu-bench.md"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    ;;
  gds)
    OUT=$out tests/gpu/run-gds.sh build-gpu "$gdir" 2>&1 | tee "$out/run-gds.txt" | tail -40
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    ;;
  copythreads)
    # SHM's copy threads on a host with spare cores (issue 18): bench/xfer with
    # NIXL_SHM_COPY_THREADS = 1, 2, 4, 8, through CMA and through a mapping, three rounds.
    { echo "$(nproc) CPUs"; lscpu | grep -E 'Model name|Socket|NUMA node\(s\)|L3'; } >"$out/copy-threads.md"
    for r in 1 2 3; do for t in 1 2 4 8; do for m in SHM SHM-memfd; do
      echo "### $m, NIXL_SHM_COPY_THREADS=$t, round $r"
      NIXL_SHM_COPY_THREADS=$t timeout 60 build-gpu/bench/xfer/nixl_bench_xfer --only $m \
        2>&1 | grep '^|' || rc=1
    done; done; done >>"$out/copy-threads.md"
    tail -12 "$out/copy-threads.md"
    ;;
  tools)
    if [ -x tests/gpu/run-gpu-tools.sh ]; then
      tests/gpu/run-gpu-tools.sh build-gpu 2>&1 | tee "$out/gpu-tools.txt" | tail -30
      [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    fi
    ;;
  esac
done
echo "run-on-device: exit $rc"
exit $rc
