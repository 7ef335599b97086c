#!/usr/bin/env bash
# Install into a temporary root, then build and run programs against the installed library
# through pkg-config, as a user would: a small one, and examples/c/two_process.c with the very
# command docs/getting-started.md gives. The version everywhere is meson.build's.
set -euo pipefail
build=$1
src=$2
. "$src/tests/install/installed.sh"
for f in "$lib/libnixl.so" "$root$prefix/include/nixl.h" "$root$prefix/include/nixl_plugin.h" \
         "$root$prefix/include/nixl_version.h" "$lib/pkgconfig/nixl.pc"; do
  [ -e "$f" ] || { echo "missing after install: $f"; exit 1; }
done
[ -d "$lib/plugins" ] || { echo "missing plugin directory $lib/plugins"; exit 1; }
grep -q '^plugindir=' "$lib/pkgconfig/nixl.pc" || { echo "nixl.pc has no plugindir"; exit 1; }

cat > "$root/use.c" <<'C'
#include <nixl.h>
#include <stdio.h>
int main(void)
{
    nixl_agent_t *a;
    nixl_backend_t *b;
    if (nixl_agent_create("installed", NULL, &a) != NIXL_SUCCESS ||
        nixl_agent_create_backend(a, "SHM", NULL, 0, &b) != NIXL_SUCCESS) {
        fprintf(stderr, "%s\n", nixl_last_error());
        return 1;
    }
    printf("nixl %s %s, backend %s\n", nixl_version(), NIXL_VERSION_STRING, nixl_backend_name(b));
    nixl_agent_destroy(a);
    return 0;
}
C
export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$lib/pkgconfig"
cc -std=c11 -Wall -Werror $(pkg-config --cflags nixl) "$root/use.c" -o "$root/use" $(pkg-config --libs nixl)
out=$(LD_LIBRARY_PATH="$lib" NIXL_PLUGIN_DIR="$lib/plugins" "$root/use")
echo "$out"

want=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
[ "$out" = "nixl $want $want, backend SHM" ] || { echo "version: want $want (meson.build) from nixl_version() and NIXL_VERSION_STRING"; exit 1; }
[ "$(pkg-config --modversion nixl)" = "$want" ] || { echo "nixl.pc: version is not $want"; exit 1; }

# The example, built exactly as the documentation says (in a copy of its folder layout).
cmd=$(grep -m1 '^cc -std=c11 examples/c/two_process.c' "$src/docs/getting-started.md" || true)
[ -n "$cmd" ] || { echo "docs/getting-started.md no longer shows how to build examples/c/two_process.c"; exit 1; }
mkdir -p "$root/user/examples/c"
cp "$src/examples/c/two_process.c" "$root/user/examples/c/"
echo "+ $cmd"
(cd "$root/user" && eval "$cmd")
(cd "$root/user" && LD_LIBRARY_PATH="$lib" NIXL_PLUGIN_DIR="$lib/plugins" ./two_process 4 2)

# The Python package, when this build has it: importable from where it was installed, by the
# interpreter it was built for, with the library's version.
pyinit=$(meson introspect "$build" --installed |
  python3 -c 'import json,sys; print(next((v for v in json.load(sys.stdin).values() if v.endswith("/nixl/__init__.py")), ""))')
if [ -n "$pyinit" ]; then
  site=$root$(dirname "$(dirname "$pyinit")")
  got=$(cd "$root" && PYTHONPATH="$site" LD_LIBRARY_PATH="$lib" NIXL_PLUGIN_DIR="$lib/plugins" NIXL_LOG_LEVEL=WARN \
    "$(opt python)" -c 'import nixl; print(nixl.__version__)')
  [ "$got" = "$want" ] || { echo "installed Python package: version '$got', want $want"; exit 1; }
  echo "python package in $site: nixl $got"
fi
