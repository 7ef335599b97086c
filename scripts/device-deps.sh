#!/usr/bin/env bash
# The accelerator machine has UCX's, libfabric's, libcurl's and libcrypto's runtime libraries
# but none of their headers, nor cmocka.
#   scripts/device-deps.sh stage   (here)   copy them from this Debian machine into build-devdeps/
#   scripts/device-deps.sh setup   (there)  write pkg-config files for them; prints the folder
#                                           to put in PKG_CONFIG_PATH
#   scripts/device-deps.sh stage-fio (here)  also a static fio (Debian's source, built here) in
#                                           build-devdeps/bin: the disk ceiling of run-gds.sh
# Carry build-devdeps/ with the run. The UCX plugin is built against these (1.13) headers and
# runs on the machine's own libucp.so.0 (it checks the version at run time). The LIBFABRIC
# plugin is built against Debian's libfabric 1.17 headers and runs on the machine's own
# libfabric.so.1 (its fi_getinfo asks for API 1.9, which every 1.x runtime serves). libcurl and
# libcrypto (the OBJ, AZURE_BLOB and auth builds) have stable ABIs (libcurl.so.4,
# libcrypto.so.3): Debian's headers fit the machine's newer runtimes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build-devdeps"

# pc NAME DESCRIPTION VERSION LIBS [FOLDER]: the pkg-config file NAME.pc of build-devdeps/FOLDER
# (default NAME; headers in include/)
pc() {
  cat >"$dir/pc/$1.pc" <<PC
prefix=$dir/${5:-$1}
Name: $1
Description: $2
Version: $3
Cflags: -I\${prefix}/include
Libs: $4
PC
}
case "${1:-}" in
stage)
  rm -rf "$dir"
  mkdir -p "$dir/ucx/include" "$dir/cmocka/include" "$dir/cmocka/lib"
  cp -r /usr/include/ucp /usr/include/ucs /usr/include/uct /usr/include/ucm "$dir/ucx/include/"
  cp /usr/include/cmocka*.h "$dir/cmocka/include/"
  # libfabric's own headers only (/usr/include/rdma also holds rdma-core's)
  [ -f /usr/include/rdma/fabric.h ] || apt-get install -y libfabric-dev >/dev/null
  mkdir -p "$dir/libfabric/include/rdma"
  cp /usr/include/rdma/fabric.h /usr/include/rdma/fi_*.h "$dir/libfabric/include/rdma/"
  cp -r /usr/include/rdma/providers "$dir/libfabric/include/rdma/"
  cp -P /usr/lib/x86_64-linux-gnu/libcmocka.so* "$dir/cmocka/lib/"
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
  pc ucx "UCX headers carried from Debian, runtime of this machine" 1.13.1 \
    "-L\${prefix}/lib -lucp -luct -lucs -lucm -Wl,-rpath,$libdir"
  fabric=$(ldconfig -p | awk '/libfabric.so.1 /{print $NF; exit}')
  if [ -n "$fabric" ] && [ -d "$dir/libfabric/include" ]; then
    mkdir -p "$dir/libfabric/lib"
    ln -sf "$fabric" "$dir/libfabric/lib/libfabric.so"
    pc libfabric "libfabric headers carried from Debian, runtime of this machine" 1.17.0 \
      "-L\${prefix}/lib -lfabric -Wl,-rpath,$(dirname "$fabric")"
  else
    echo "no libfabric.so.1 here (or no staged headers): the LIBFABRIC plugin is not built" >&2
  fi
  pc cmocka "cmocka carried from Debian" 1.1.5 "-L\${prefix}/lib -lcmocka -Wl,-rpath,\${prefix}/lib"
  # libcurl and libcrypto: a pkg-config file only where the machine has the runtime library.
  # runtime_pc NAME FOLDER SONAME LINK VERSION
  runtime_pc() {
    local lib
    lib=$(ldconfig -p | awk -v so="$3" '$1 == so {print $NF; exit}')
    if [ -z "$lib" ] || [ ! -d "$dir/$2/include" ]; then
      echo "no $3 here (or no staged headers): what needs $1 is not built" >&2
      return 0
    fi
    mkdir -p "$dir/$2/lib"
    ln -sf "$lib" "$dir/$2/lib/lib$4.so"
    pc "$1" "$1 headers carried from Debian, runtime of this machine" "$5" \
      "-L\${prefix}/lib -l$4 -Wl,-rpath,$(dirname "$lib")" "$2"
  }
  runtime_pc libcurl curl libcurl.so.4 curl 7.88.1
  runtime_pc libcrypto openssl libcrypto.so.3 crypto 3.0.0
  echo "$dir/pc"
  ;;
*)
  echo "usage: $0 stage|stage-fio|setup" >&2
  exit 2
  ;;
esac
