# Sourced by the install tests, with $build set: skips sanitizer builds, installs the build into
# a temporary root ($root, removed on exit) and sets prefix, lib and inc to where the installed
# copy's files are. opt NAME prints a build option.
opt() {
  meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"
}
# A sanitized libnixl needs a sanitized program: these checks are for ordinary builds.
[ "$(opt b_sanitize)" = "none" ] || { echo "sanitizer build: skipped"; exit 77; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --no-rebuild --destdir "$root" --quiet >/dev/null
prefix=$(opt prefix)
lib="$root$prefix/$(opt libdir)"
inc="$root$prefix/$(opt includedir)"
