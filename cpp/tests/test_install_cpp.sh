#!/usr/bin/env bash
# Install into a temporary root and build the C++ examples against the installed copy with
# nothing but `pkg-config --cflags --libs nixl-cpp`, as a reference user would after switching;
# a C program in the same install still finds the C header through nixl.pc. Then run them.
set -euo pipefail
build=$1
src=$2
examples=$src/cpp/examples
. "$src/tests/install/installed.sh"
for f in "$inc/nixl-cpp/nixl.h" "$inc/nixl-cpp/utils/serdes/serdes.h" "$inc/nixl_c.h" "$inc/nixl.h" \
         "$lib/pkgconfig/nixl-cpp.pc"; do
  [ -e "$f" ] || { echo "missing after install: $f"; exit 1; }
done
export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$lib/pkgconfig"
echo "pkg-config --cflags --libs nixl-cpp: $(pkg-config --cflags --libs nixl-cpp)"
cxx=${CXX:-c++}
for ex in two_agents mt_loop dead_peer query_mem; do
  echo "+ $cxx -std=c++20 -Wall -Werror $ex.cpp \$(pkg-config --cflags --libs nixl-cpp)"
  "$cxx" -std=c++20 -Wall -Werror "$examples/$ex.cpp" -o "$root/$ex" $(pkg-config --cflags --libs nixl-cpp)
done
# A link line written for the reference (nixlbench's) links too.
"$cxx" -std=c++20 -Wall -Werror "$examples/query_mem.cpp" -o "$root/ref_link" $(pkg-config --cflags nixl-cpp) \
  -L"$lib" -lnixl -lnixl_build -lserdes -lnixl_common
# C users are unaffected: nixl.pc, <nixl.h> is the C API.
printf '#include <nixl.h>\nint main(void) { return nixl_status_str(NIXL_SUCCESS)[0] == 0; }\n' > "$root/c_user.c"
cc -std=c11 -Wall -Werror $(pkg-config --cflags nixl) "$root/c_user.c" -o "$root/c_user" $(pkg-config --libs nixl)
export LD_LIBRARY_PATH="$lib" NIXL_PLUGIN_DIR="$lib/plugins"
"$root/c_user"
for ex in two_agents "mt_loop 2 5" dead_peer query_mem; do
  echo "+ $ex"
  (cd "$root" && ./$ex)
done
