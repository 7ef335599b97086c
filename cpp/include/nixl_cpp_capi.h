/*
 * nixl_cpp_capi.h - how the C++ layer reaches the C API (internal to the C++ headers).
 *
 * The C header declares types whose names the C++ API gives other meanings (nixl_status_t,
 * nixl_opt_args_t, nixl_backend_t, ...), so it is included inside namespace nixl_capi: its
 * functions keep their C linkage (an extern "C" function is the same function in any namespace),
 * its types become nixl_capi::nixl_status_t and so on, and the global namespace is left to the
 * reference's names. The standard headers it uses are included first, at global scope, so that
 * their include guards keep them out of the namespace.
 */
#ifndef NIXL_CPP_CAPI_H
#define NIXL_CPP_CAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace nixl_capi {
#include <nixl_c.h>
}

/* Details of the C++ layer; not part of the reference API. */
namespace nixl_cpp {

/* Releases what the C library handed out (nixl_free). */
struct c_free {
    void operator()(void *p) const noexcept { nixl_capi::nixl_free(p); }
};
template<class T> using c_ptr = std::unique_ptr<T, c_free>;

/* The reason the C library gave for the last failure on this thread. */
inline std::string last_error() { return nixl_capi::nixl_last_error(); }

/* Where the reference logs an error through its logger (the C++ layer's own checks), this layer
 * writes one line to stderr, as that logger does by default for errors. */
inline void log_error(const std::string &what)
{
    std::fprintf(stderr, "nixl error: %s\n", what.c_str());
}

} // namespace nixl_cpp

#endif /* NIXL_CPP_CAPI_H */
