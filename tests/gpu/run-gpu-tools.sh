#!/usr/bin/env bash
# The GPU checks of nixlbench and of the Python package, on a machine with an NVIDIA GPU:
#   - nixlbench, SHM between two processes: VRAM->VRAM, DRAM->VRAM, VRAM->DRAM, READ and WRITE,
#     --check_consistency (and a few shapes: a long list, threads, prepared requests);
#   - nixlbench, UCX with VRAM: VRAM->VRAM must work, or be refused saying that UCX cannot reach
#     the peer's VRAM; VRAM->DRAM must work (staged when UCX lacks CUDA support);
#   - tests/gpu/test_cuda_tensors.py: CUDA torch tensors between two processes;
#   - examples/python/cuda_tensors.py.
# It builds nothing: run it from the source tree after `make build` (or `ninja -C build`).
#
#   tests/gpu/run-gpu-tools.sh [BUILD_DIR]      (default: build; PYTHON=... picks the interpreter
#                                                the package was built for, default /usr/bin/python3)
# Exit 0 when everything ran and passed, 1 on any failure, 77 when there is no GPU here.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${1:-build}
NB=$BUILD/tools/nixlbench/nixlbench
PYTHON=${PYTHON:-$(command -v python3)} # the interpreter meson built the package for
if [ ! -x "$NB" ]; then
  echo "run-gpu-tools: $NB is missing: build first (make build)" >&2
  exit 1
fi
if ! nvidia-smi -L >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
  echo "run-gpu-tools: no NVIDIA driver here (nvidia-smi, libcuda.so.1): nothing to run"
  exit 77
fi
# The build tree's plugins and package, as meson test uses them; no user config file.
export NIXL_PLUGIN_DIR=${NIXL_PLUGIN_DIR:-$PWD/$BUILD/tests/plugins}
export NIXL_CONFIG_FILE=$PWD/tests/data/empty.cfg
export PYTHONPATH=$PWD/$BUILD/python${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=$PWD/$BUILD/python/nixl:$PWD/$BUILD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# check NAME CMD...: run CMD, say PASS / FAIL (with its output) / SKIP (exit 77).
check() {
  local name=$1
  shift
  echo "+ $*"
  local t0=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then
    echo "  PASS  $name ($((SECONDS - t0)) s)"
    passed=$((passed + 1))
  elif [ $rc -eq 77 ]; then
    echo "  SKIP  $name: $(grep -v ' INFO ' "$log" | tail -1)"
    skipped=$((skipped + 1))
  else
    echo "  FAIL  $name (exit $rc):"
    sed 's/^/      /' "$log" | tail -40
    failed=$((failed + 1))
  fi
}

# The reference CI's sizes, fewer iterations: each run takes about a second.
SMALL=(--total_buffer_size 8M --start_block_size 16384 --max_block_size 65536
       --start_batch_size 4 --max_batch_size 16 --num_iter 100 --warmup_iter 10)

echo "== nixlbench, SHM, VRAM"
for pair in VRAM:VRAM DRAM:VRAM VRAM:DRAM; do
  for op in WRITE READ; do
    check "SHM ${pair/:/->} $op" "$NB" --backend SHM --initiator_seg_type "${pair%:*}" \
      --target_seg_type "${pair#*:}" --op_type "$op" --check_consistency "${SMALL[@]}"
  done
done
check "SHM VRAM->VRAM WRITE, 1024 x 4 KiB in one request" "$NB" --backend SHM \
  --initiator_seg_type VRAM --target_seg_type VRAM --check_consistency \
  --start_block_size 4096 --max_block_size 4096 --start_batch_size 1024 --max_batch_size 1024 \
  --num_iter 50 --warmup_iter 5
check "SHM VRAM->VRAM READ, 2 threads, pipeline 4, prepared" "$NB" --backend SHM \
  --initiator_seg_type VRAM --target_seg_type VRAM --op_type READ --check_consistency \
  --num_threads 2 --pipeline_depth 4 --prepared_xfer "${SMALL[@]}"
check "SHM DRAM->VRAM WRITE, --reregister_mem" "$NB" --backend SHM --target_seg_type VRAM \
  --check_consistency --reregister_mem "${SMALL[@]}"

echo "== nixlbench, UCX, VRAM (a UCX without CUDA must say so)"
if [ -e "$NIXL_PLUGIN_DIR/libplugin_UCX.so" ]; then
  echo "+ $NB --backend UCX --initiator_seg_type VRAM --target_seg_type VRAM --check_consistency ..."
  "$NB" --backend UCX --initiator_seg_type VRAM --target_seg_type VRAM --check_consistency \
    "${SMALL[@]}" >"$log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "  PASS  UCX VRAM->VRAM WRITE (this UCX has CUDA support)"
    passed=$((passed + 1))
  elif grep -q "cannot register .* of VRAM (GPU 0) with backend UCX: \|UCX cannot reach" "$log"; then
    # a UCX without CUDA: the peer's VRAM cannot be reached (ours is staged)
    echo "  PASS  UCX refuses the peer's VRAM with a clear reason:"
    grep "cannot register\|cannot reach" "$log" | sed 's/^/      /'
    passed=$((passed + 1))
  else
    echo "  FAIL  UCX VRAM (exit $rc), no clear reason:"
    sed 's/^/      /' "$log" | tail -40
    failed=$((failed + 1))
  fi
  # local VRAM with the peer's DRAM: UCX moves it itself, or it is staged through pinned memory
  for op in WRITE READ; do
    check "UCX VRAM->DRAM $op" "$NB" --backend UCX --initiator_seg_type VRAM \
      --target_seg_type DRAM --op_type "$op" --check_consistency "${SMALL[@]}"
  done
else
  echo "  SKIP  UCX: no libplugin_UCX.so in $NIXL_PLUGIN_DIR"
  skipped=$((skipped + 1))
fi

echo "== Python, CUDA torch tensors ($PYTHON)"
check "test_cuda_tensors.py" "$PYTHON" tests/gpu/test_cuda_tensors.py
check "examples/python/cuda_tensors.py" "$PYTHON" examples/python/cuda_tensors.py

echo "run-gpu-tools: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
