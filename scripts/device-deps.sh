#!/usr/bin/env bash
# The accelerator machine has UCX's runtime libraries but neither UCX's nor cmocka's headers.
#   scripts/device-deps.sh stage   (here)   copy them (and libcurl's and libcrypto's headers)
#                                           from this Debian machine into build-devdeps/
#   scripts/device-deps.sh setup   (there)  write pkg-config files for them; prints the folder
#                                           to put in PKG_CONFIG_PATH
#   scripts/device-deps.sh stage-fio (here)  also a static fio (Debian's source, built here) in
#                                           build-devdeps/bin: the disk ceiling of run-gds.sh
# Carry build-devdeps/ with the run. The UCX plugin is built against these (1.13) headers and
# runs on the machine's own libucp.so.0 (it checks the version at run time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build-devdeps"
case "${1:-}" in
stage)
  rm -rf "$dir"
  mkdir -p "$dir/ucx/include" "$dir/cmocka/include" "$dir/cmocka/lib"
  cp -r /usr/include/ucp /usr/include/ucs /usr/include/uct /usr/include/ucm "$dir/ucx/include/"
  cp /usr/include/cmocka*.h "$dir/cmocka/include/"
  cp -P /usr/lib/x86_64-linux-gnu/libcmocka.so* "$dir/cmocka/lib/"
  # libcurl's and libcrypto's headers (the OBJ, AZURE_BLOB and auth builds); their ABIs are
  # stable (libcurl.so.4, libcrypto.so.3), so Debian's headers fit the machine's newer runtimes.
  mkdir -p "$dir/curl/include" "$dir/openssl/include"
  cp -r /usr/include/x86_64-linux-gnu/curl "$dir/curl/include/"
  cp -r /usr/include/openssl "$dir/openssl/include/"
  cp /usr/include/x86_64-linux-gnu/openssl/*.h "$dir/openssl/include/openssl/"
  echo "$dir"
  ;;
stage-fio)
  # The machine has no fio and no package registry: build Debian's fio statically (libaio and
  # zlib linked in) from the source package, which apt fetches from the configured mirror.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$work/src.sources"
  mkdir -p "$work/lists/partial"
  apt_opts=(-o Dir::Etc::SourceList="$work/src.sources" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$work/lists")
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only fio >/dev/null 2>&1)
  tar -C "$work" -xzf "$work"/fio_*.orig.tar.gz
  (cd "$work"/fio-*/ && ./configure --disable-native --build-static >/dev/null &&
     make -j"$(nproc)" fio >/dev/null)
  mkdir -p "$dir/bin"
  cp "$work"/fio-*/fio "$dir/bin/fio"
  echo "$dir/bin/fio"
  ;;
setup)
  libdir=$(dirname "$(ldconfig -p | awk '/libucp.so.0 /{print $NF; exit}')")
  mkdir -p "$dir/ucx/lib" "$dir/pc"
  for l in ucp uct ucs ucm; do ln -sf "$libdir/lib$l.so.0" "$dir/ucx/lib/lib$l.so"; done
  cat >"$dir/pc/ucx.pc" <<PC
prefix=$dir/ucx
Name: ucx
Description: UCX headers carried from Debian, runtime of this machine
Version: 1.13.1
Cflags: -I\${prefix}/include
Libs: -L\${prefix}/lib -lucp -luct -lucs -lucm -Wl,-rpath,$libdir
PC
  cat >"$dir/pc/cmocka.pc" <<PC
prefix=$dir/cmocka
Name: cmocka
Description: cmocka carried from Debian
Version: 1.1.5
Cflags: -I\${prefix}/include
Libs: -L\${prefix}/lib -lcmocka -Wl,-rpath,\${prefix}/lib
PC
  # libcurl and libcrypto: a pkg-config file only where the machine has the runtime library.
  # Args: name, folder in build-devdeps, soname, link name, version, extra Requires-free libs.
  runtime_pc() {
    local lib
    lib=$(ldconfig -p | awk -v so="$3" '$1 == so {print $NF; exit}')
    [ -n "$lib" ] || { echo "setup: no $3 here: $1 is not offered" >&2; return 0; }
    mkdir -p "$dir/$2/lib"
    ln -sf "$lib" "$dir/$2/lib/lib$4.so"
    cat >"$dir/pc/$1.pc" <<PC
prefix=$dir/$2
Name: $1
Description: headers carried from Debian, runtime of this machine
Version: $5
Cflags: -I\${prefix}/include
Libs: -L\${prefix}/lib -l$4 -Wl,-rpath,$(dirname "$lib")
PC
  }
  [ -d "$dir/curl/include" ] && runtime_pc libcurl curl libcurl.so.4 curl 7.88.1
  [ -d "$dir/openssl/include" ] && runtime_pc libcrypto openssl libcrypto.so.3 crypto 3.0.0
  echo "$dir/pc"
  ;;
*)
  echo "usage: $0 stage|stage-fio|setup" >&2
  exit 2
  ;;
esac
