/*
 * nixl_c.h - the C API (nixl.h) under a name no other header has.
 *
 * The reference's C++ umbrella header is also called nixl.h, and the C++ layer (cpp/include,
 * installed as <includedir>/nixl-cpp) ships one of that name so that reference-style C++ code
 * compiles unchanged. Its include directory comes first on a C++ user's include path, so the C++
 * layer reaches the C API through this name instead. The quoted include below is looked up first
 * in this file's own directory, where the C nixl.h lives, whatever the include path says.
 * C users keep including nixl.h. See docs/cpp.md.
 */
#ifndef NIXL_C_H
#define NIXL_C_H
#include "nixl.h"
#endif /* NIXL_C_H */
