/*
 * nixl_time.h - nixlTime: steady-clock readings in ns, us, ms and s (reference signatures).
 */
#ifndef _NIXL_TIME_H
#define _NIXL_TIME_H

#include <chrono>
#include <cstdint>

namespace nixlTime {
using ns_t = uint64_t;
using us_t = uint64_t;
using ms_t = uint64_t;
using sec_t = uint64_t;

template<class D> static inline uint64_t since_epoch_()
{
    return static_cast<uint64_t>(
        std::chrono::duration_cast<D>(std::chrono::steady_clock::now().time_since_epoch()).count());
}
static inline ns_t getNs() { return since_epoch_<std::chrono::nanoseconds>(); }
static inline us_t getUs() { return since_epoch_<std::chrono::microseconds>(); }
static inline ms_t getMs() { return since_epoch_<std::chrono::milliseconds>(); }
static inline sec_t getSec() { return since_epoch_<std::chrono::seconds>(); }
} // namespace nixlTime

#endif /* _NIXL_TIME_H */
