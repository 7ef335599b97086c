#!/usr/bin/env bash
# Run every libFuzzer target for a while: scripts/fuzz.sh [SECONDS per target (default 60)]
# (FUZZ_ONLY="name ..." runs just those targets; FUZZ_JOBS targets run at a time, default one
# per CPU: each target is one single-threaded process, so a second core fuzzes a second target
# in the same wall time instead of idling)
# (FUZZ_UCX=1 adds the UCX LOAD target: see tests/fuzz/ucx-crashes/README.md)
# Builds them with clang (ASan and UBSan on) in build-fuzz, then runs each from its seed corpus
# (tests/fuzz/corpus/<name>); what it finds new goes to build-fuzz/fuzz-new/<name> (copy the
# interesting ones into the corpus by hand). A crash or a failed check ends the run with its
# input saved as build-fuzz/fuzz-crash-<name>-*, and a non-zero exit.
# Last line: "fuzz: N targets, N executions, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
dir=build-fuzz
# The Python package is built too (for the descriptor-codec fuzzer), for Debian's interpreter
# as in the Makefile; a build-fuzz configured without it (older fuzz.sh) is switched over.
py=${PYTHON:-$(test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)}
if [ ! -f $dir/build.ninja ]; then
  CC=clang meson setup $dir -Dpython=$py >/dev/null || exit 1
elif meson introspect $dir --buildoptions 2>/dev/null | $py -c 'import json, sys
sys.exit(not any(o["name"] == "python_package" and o["value"] == "disabled"
                 for o in json.load(sys.stdin)))'; then
  meson configure $dir -Dpython_package=auto -Dpython=$py >/dev/null &&
    ninja -C $dir build.ninja >/dev/null || exit 1
fi
# target name -> corpus folder (tests/fuzz/meson.build)
targets="md_decode:md sc_stream:sc elf_exports:elf toml:toml shm_conn:shm posix_spec:posix"
# the LIBFABRIC peer formats (pure code: built wherever, libfabric or not)
targets="$targets lf_wire:libfabric"
# telemetry: the agent's variables, the BUFFER ring as a reader maps it, the Prometheus
# exporters' bucket list and multi-process stores (pure code: built wherever)
targets="$targets telem_settings:telem_settings telem_ring:telem_ring"
targets="$targets prom_buckets:prom_buckets prom_store:prom_store"
# the AZURE_BLOB backend's reading of an Azure AD token endpoint's answer (pure code)
targets="$targets az_token:az_token"
if grep -q "^build tests/fuzz/fuzz_auth:" $dir/build.ninja; then
  targets="$targets auth:auth" # with libcrypto only
fi
if grep -q "^build tests/fuzz/fuzz_etcd:" $dir/build.ninja; then
  targets="$targets etcd:etcd" # with libcurl and json-c only
fi
if grep -q "^build tests/fuzz/fuzz_ucx_notif:" $dir/build.ninja; then
  targets="$targets ucx_notif:ucx_notif" # the UCX notification parser: where UCX is
fi
# The Python descriptor codec (tests/fuzz/fuzz_python_descs.py, a mutation fuzzer of ours:
# no libFuzzer for Python here), where the package builds.
pyext=$(grep -o "^build python/nixl/_bindings[^:]*\.so:" $dir/build.ninja | sed 's/^build //; s/:$//')
if [ -n "$pyext" ]; then
  targets="$targets python_descs:python"
fi
extra=""
# The UCX target finds crashes inside UCX's own transport code that no check of ours can rule
# out (tests/fuzz/ucx-crashes/README.md): run it on request only.
if [ "${FUZZ_UCX:-0}" = 1 ] && grep -q "^build tests/fuzz/fuzz_ucx_load:" $dir/build.ninja; then
  targets="$targets ucx_load:ucx" # the LOAD path into a real UCX engine: needs the plugin
  extra=$(grep -o "^build tests/plugins/[^:]*UCX[^:]*" $dir/build.ninja | sed 's/^build //')
fi
# FUZZ_ONLY="name ...": just these targets (e.g. FUZZ_ONLY="ucx_notif python_descs")
if [ -n "${FUZZ_ONLY:-}" ]; then
  keep=""
  for t in $targets; do
    case " $FUZZ_ONLY " in *" ${t%%:*} "*) keep="$keep $t" ;; esac
  done
  targets=$keep
fi
names="$(for t in $targets; do
  [ "${t%%:*}" = python_descs ] && echo "$pyext" || echo "tests/fuzz/fuzz_${t%%:*}"
done) $extra"
ninja -C $dir $names >/dev/null || { echo "fuzz: build failed"; exit 1; }
njobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$njobs" -ge 1 ] 2>/dev/null || njobs=1
# One target: its log in $dir/fuzz-<name>.log, its exit status in $dir/fuzz-<name>.rc.
fuzz_one() {
  local name=$1 corpus=$2 log=$dir/fuzz-$1.log cmd=$dir/tests/fuzz/fuzz_$1
  mkdir -p $dir/fuzz-new/$name
  # the UCX target loads the plugin from the build and needs its plugin directory; UCX's
  # memory hooks and its never-freed allocations: see tests/meson.build and
  # tests/sanitizers/lsan.supp
  [ $name = python_descs ] && cmd="env NIXL_LOG_LEVEL=WARN $py tests/fuzz/fuzz_python_descs.py"
  UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_MALLOC_HOOKS=no \
  LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0 \
  NIXL_PLUGIN_DIR=$PWD/$dir/tests/plugins NIXL_CONFIG_FILE=$PWD/tests/data/empty.cfg \
  PYTHONPATH=$PWD/$dir/python \
    $cmd -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix=$dir/fuzz-crash-$name- $dir/fuzz-new/$name tests/fuzz/corpus/$corpus \
    >"$log" 2>&1
  echo $? >$dir/fuzz-$name.rc
}
running=0
for t in $targets; do
  rm -f $dir/fuzz-${t%%:*}.rc
  if [ $running -ge $njobs ]; then
    wait -n
    running=$((running - 1))
  fi
  fuzz_one "${t%%:*}" "${t#*:}" &
  running=$((running + 1))
done
wait
# The results in the targets' order, whichever finished first.
total=0 failed=0 n=0
for t in $targets; do
  name=${t%%:*}
  log=$dir/fuzz-$name.log
  rc=$(cat $dir/fuzz-$name.rc 2>/dev/null || echo 1)
  execs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  execs=${execs:-0}
  n=$((n + 1))
  total=$((total + execs))
  if [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
    echo "fuzz: $name FAILED (exit $rc) after $execs executions:"
    grep -v '^#\|^INFO' "$log" | tail -30
  else
    echo "fuzz: $name: $execs executions in ${secs}s, no failure"
  fi
done
echo "fuzz: $n targets, $total executions, $failed failed"
[ $failed -eq 0 ]
