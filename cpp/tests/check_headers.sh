#!/usr/bin/env bash
# Every public C++ header compiles on its own, as C++17 and as C++20, with -Wall -Wextra -Werror
# (the reference's clients build with warnings as errors).
set -euo pipefail
cxx=$1
cppinc=$2
shift 2
incs=("$@")
flags=(-I"$cppinc")
for i in "${incs[@]}"; do flags+=(-I"$i"); done
fail=0
for h in nixl.h nixl_types.h nixl_params.h nixl_descriptors.h utils/serdes/serdes.h utils/common/nixl_time.h; do
  for std in c++17 c++20; do
    if ! echo "#include <$h>" | "$cxx" -x c++ -std=$std -Wall -Wextra -Wpedantic -Werror -fsyntax-only "${flags[@]}" -; then
      echo "FAIL: $h as $std"; fail=1
    fi
  done
done
[ $fail = 0 ] && echo "all headers compile alone as C++17 and C++20"
exit $fail
