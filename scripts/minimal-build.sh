#!/usr/bin/env bash
# Configure and build (no tests run) with every optional dependency turned off, as on a host
# that lacks them: -Dauto_features=disabled switches off the feature options of
# meson_options.txt (ucx, libfabric, etcd = libcurl + json-c, obj = libcurl, liburing, libaio, python_package). Then
# check that the result really does without them. Usage: minimal-build.sh [BUILD_DIR]
set -euo pipefail
dir=${1:-build-minimal}
opts=(-Dauto_features=disabled -Dpython="${PYTHON:-python3}")
if [ -f "$dir/build.ninja" ]; then
  meson configure "$dir" "${opts[@]}" >/dev/null
else
  meson setup "$dir" "${opts[@]}" >/dev/null
fi
ninja -C "$dir" >/dev/null || { ninja -C "$dir"; exit 1; }

bad=0
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
refuse() { echo "minimal build: $*"; bad=1; }
[ -e "$dir/libnixl.so" ] || refuse "no libnixl.so"
[ -e "$dir/plugins/libplugin_POSIX.so" ] || refuse "no POSIX plugin (it needs only libc)"
[ ! -e "$dir/plugins/libplugin_UCX.so" ] || refuse "the UCX plugin was built"
[ ! -e "$dir/plugins/libplugin_LIBFABRIC.so" ] || refuse "the LIBFABRIC plugin was built"
[ ! -e "$dir/plugins/libplugin_OBJ.so" ] || refuse "the OBJ plugin was built (it needs libcurl)"
for lib in "$dir/libnixl.so" "$dir/plugins/libplugin_POSIX.so" "$dir/tools/nixlbench/nixlbench"; do
  [ -e "$lib" ] || continue
  for n in $(needed "$lib"); do
    case $n in
      libucp*|libucs*|libuct*|libfabric*|libcurl*|libjson-c*|liburing*|libaio*|libpython*)
        refuse "$(basename "$lib") links $n" ;;
    esac
  done
done
! ls "$dir"/python/nixl/_bindings*.so >/dev/null 2>&1 || refuse "the Python extension was built"
grep -q "NB_HAVE_ETCD" "$dir/compile_commands.json" && refuse "nixlbench was built with etcd"
[ $bad -eq 0 ] && echo "minimal build: OK (no UCX, etcd, liburing, libaio or Python in $dir)"
exit $bad
