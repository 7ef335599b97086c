#!/usr/bin/env bash
# Install into a temporary root, then build and run a program against the installed library
# through pkg-config, as a user would.
set -euo pipefail
build=$1
opt() {
  meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"
}
# A sanitized libnixl needs a sanitized program: this check is for ordinary builds.
[ "$(opt b_sanitize)" = "none" ] || { echo "sanitizer build: skipped"; exit 77; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --no-rebuild --destdir "$root" --quiet >/dev/null
prefix=$(opt prefix)
libdir=$(opt libdir)
lib="$root$prefix/$libdir"
for f in "$lib/libnixl.so" "$root$prefix/include/nixl.h" "$root$prefix/include/nixl_plugin.h" "$lib/pkgconfig/nixl.pc"; do
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
    printf("nixl %s, backend %s\n", nixl_version(), nixl_backend_name(b));
    nixl_agent_destroy(a);
    return 0;
}
C
export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$lib/pkgconfig"
cc -std=c11 -Wall -Werror $(pkg-config --cflags nixl) "$root/use.c" -o "$root/use" $(pkg-config --libs nixl)
LD_LIBRARY_PATH="$lib" NIXL_PLUGIN_DIR="$lib/plugins" "$root/use"
