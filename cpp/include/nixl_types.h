/*
 * nixl_types.h - the types, enums, aliases and constants of the reference's C++ API, over
 * libnixl's C API. Everything is in the global namespace, as in the reference; the C API itself is
 * in namespace nixl_capi (nixl_cpp_capi.h). docs/cpp.md lists the differences.
 */
#ifndef _NIXL_TYPES_H
#define _NIXL_TYPES_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nixl_cpp_capi.h"

class nixlSerDes;
class nixlDlistH;
class nixlBackendH;
class nixlXferReqH;
class nixlAgentData;

/* Same enumerators and values as the C API's (and the reference's); FILE_SEG stays last. */
enum nixl_mem_t { DRAM_SEG = 0, VRAM_SEG = 1, BLK_SEG = 2, OBJ_SEG = 3, FILE_SEG = 4 };

enum nixl_xfer_op_t { NIXL_READ = 0, NIXL_WRITE = 1 };

/* One table with the C API: the enumerators come from NIXL_STATUS_MAP. */
enum nixl_status_t {
#define NIXL_CPP_STATUS_ENUM_(name, value, message) NIXL_##name = (value),
    NIXL_STATUS_MAP(NIXL_CPP_STATUS_ENUM_)
#undef NIXL_CPP_STATUS_ENUM_
};

enum class nixl_thread_sync_t : int {
    NIXL_THREAD_SYNC_NONE = 0,
    NIXL_THREAD_SYNC_STRICT = 1,
    NIXL_THREAD_SYNC_RW = 2,
    NIXL_THREAD_SYNC_DEFAULT = NIXL_THREAD_SYNC_NONE,
};

enum class nixl_cost_t : int { ANALYTICAL_BACKEND = 0 };

static_assert(int(NIXL_ERR_NO_TELEMETRY) == int(nixl_capi::NIXL_ERR_NO_TELEMETRY) &&
                  int(NIXL_IN_PROG) == int(nixl_capi::NIXL_IN_PROG),
              "status values are the C API's");
static_assert(int(FILE_SEG) == int(nixl_capi::NIXL_FILE_SEG) && int(NIXL_WRITE) == int(nixl_capi::NIXL_WRITE),
              "memory types and operations are the C API's");

/* The names the C library gives (static strings there). */
namespace nixlEnumStrings {
inline std::string memTypeStr(const nixl_mem_t &mem)
{
    return nixl_capi::nixl_mem_str(static_cast<nixl_capi::nixl_mem_t>(mem));
}
inline std::string xferOpStr(const nixl_xfer_op_t &op)
{
    return nixl_capi::nixl_op_str(static_cast<nixl_capi::nixl_xfer_op_t>(op));
}
inline std::string statusStr(const nixl_status_t &status)
{
    return nixl_capi::nixl_status_str(static_cast<nixl_capi::nixl_status_t>(status));
}
} // namespace nixlEnumStrings

using nixl_backend_t = std::string;
using nixl_telemetry_plugin_t = std::string;
/* Binary-safe bytes. */
using nixl_blob_t = std::string;
using nixl_mem_list_t = std::vector<nixl_mem_t>;
using nixl_b_params_t = std::unordered_map<std::string, std::string>;
using nixl_notifs_t = std::unordered_map<std::string, std::vector<nixl_blob_t>>;
using nixl_query_resp_t = std::optional<nixl_b_params_t>;
using nixlMemViewH = void *;
using chrono_point_t = std::chrono::steady_clock::time_point;
using chrono_period_us_t = std::chrono::microseconds;

inline constexpr uint16_t default_comm_port = NIXL_DEFAULT_COMM_PORT;
inline const std::string default_metadata_label = NIXL_DEFAULT_METADATA_LABEL;
/* Declared and defined nowhere, as in the reference: nothing uses it. */
extern const std::string default_partial_metadata_label;
/* The placeholder agent of remote memory-view lists. */
inline const std::string nixl_null_agent = NIXL_NULL_AGENT;

#ifndef NIXL_INIT_AGENT
#define NIXL_INIT_AGENT ""
#endif

/* Optional arguments: an aggregate whose members keep the reference's order (C++20 designated
 * initialisers name them in that order). */
struct nixlAgentOptionalArgs {
    std::vector<nixlBackendH *> backends{};
    std::optional<nixl_blob_t> notif{};
    nixl_blob_t notifMsg{};     /* legacy: used when notif is empty and hasNotif is set */
    bool hasNotif = false;
    bool skipDescMerge = false;
    bool includeConnInfo = false;
    std::string ipAddr{};
    int port = default_comm_port;
    std::string metadataLabel{};
    nixl_blob_t customParam{};
};
using nixl_opt_args_t = nixlAgentOptionalArgs;

struct nixlXferTelemetry {
    chrono_point_t startTime;
    chrono_period_us_t postDuration;
    chrono_period_us_t xferDuration;
    size_t totalBytes;
    size_t descCount;
};
using nixl_xfer_telem_t = nixlXferTelemetry;

#endif /* _NIXL_TYPES_H */
