/*
 * ucx_config.c - what the engine is made of: the UCX version check, the plugin parameters and
 * the UCP context with its configuration (the reference's defaults, device_list,
 * engine_config).
 *
 * UCX 1.13 accepts any key in ucp_config_modify: a key UCP does not know is kept for the
 * transports, and if none reads it UCX prints "invalid configuration" when a worker starts.
 * So a key is only applied when someone will read it: UCP-level keys when ucp_config_print
 * lists them, InfiniBand keys when the host has an InfiniBand device.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ucx_priv.h"
#include "parse.h"

nixl_status_t ucx_status(ucs_status_t s)
{
    switch (s) {
    case UCS_OK:
        return NIXL_SUCCESS;
    case UCS_INPROGRESS:
        return NIXL_IN_PROG;
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_CANCELED:
        return NIXL_ERR_REMOTE_DISCONNECT;
    case UCS_ERR_INVALID_PARAM:
        return NIXL_ERR_INVALID_PARAM;
    default:
        return NIXL_ERR_BACKEND;
    }
}

nixl_status_t ucx_check_version(const nixl_host_t *host)
{
    unsigned major, minor, release;
    ucp_get_version(&major, &minor, &release);
    if (UCP_VERSION(major, minor) < UCP_VERSION(1, 13)) {
        return NIXL_BE_ERR(host, NIXL_ERR_NOT_SUPPORTED,
                           "the UCX library loaded is version %u.%u.%u; the UCX backend needs "
                           "1.13 or later",
                           major, minor, release);
    }
    return NIXL_SUCCESS;
}

/* ---- parameters ---- */

static nixl_status_t param_uint(const nixl_host_t *host, const nixl_param_t *p, uint64_t min,
                                uint64_t max, uint64_t *out)
{
    if (!nixl_parse_u64(p->value, out) || *out < min || *out > max) {
        return NIXL_BE_ERR(
            host, NIXL_ERR_INVALID_PARAM, "%s='%s' must be an integer from %llu to %llu", p->key,
            p->value ? p->value : "(null)", (unsigned long long)min, (unsigned long long)max);
    }
    return NIXL_SUCCESS;
}

nixl_status_t ucx_params_parse(const nixl_be_init_t *init, ucx_params_t *out)
{
    const nixl_host_t *host = init->host;
    const char *devices_alias = NULL;
    uint64_t v;
    *out = (ucx_params_t){.num_workers = 1, .split_batch_size = 1024,
                          .err_mode = UCP_ERR_HANDLING_MODE_PEER, .peer_timeout_ms = 30000,
                          .device_channels = 4};
    for (size_t i = 0; i < init->num_params; i++) {
        const nixl_param_t *p = &init->params[i];
        nixl_status_t st = NIXL_SUCCESS;
        /* Unknown keys are ignored: agents hand the same parameter map to every backend. */
        if (!p->key || !p->value)
            continue;
        if (!strcmp(p->key, "num_workers")) {
            st = param_uint(host, p, 1, UCX_WORKERS_MAX, &v);
            out->num_workers = (unsigned)v;
        } else if (!strcmp(p->key, "num_threads")) {
            st = param_uint(host, p, 0, UCX_THREADS_MAX, &v);
            out->num_threads = (unsigned)v;
        } else if (!strcmp(p->key, "split_batch_size")) {
            st = param_uint(host, p, 1, UINT32_MAX, &out->split_batch_size);
        } else if (!strcmp(p->key, "ucx_num_device_channels")) {
            st = param_uint(host, p, 1, 1024, &v); /* RC_GDA_NUM_CHANNELS on UCX >= 1.21 */
            out->device_channels = (unsigned)v;
        } else if (!strcmp(p->key, "ucx_error_handling_mode")) {
            if (!strcmp(p->value, "peer")) {
                out->err_mode = UCP_ERR_HANDLING_MODE_PEER;
            } else if (!strcmp(p->value, "none")) {
                /* Needed for UCX 1.13's shared-memory transports, which cannot watch a peer.
                 * Over TCP, UCX 1.13 crashes now and then (in the TCP receive path of the
                 * side that accepted the connection) when such a connection closes. */
                out->err_mode = UCP_ERR_HANDLING_MODE_NONE;
                NIXL_BE_LOG(host, NIXL_LOG_INFO,
                            "ucx_error_handling_mode=none: failed peers "
                            "go unnoticed, and over TCP, UCX 1.13 can crash when such a "
                            "connection closes");
            } else {
                st = NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM,
                                 "ucx_error_handling_mode='%s' must be 'peer' (failed "
                                 "peers are detected) or 'none'",
                                 p->value);
            }
        } else if (!strcmp(p->key, "ucx_ep_close_force")) {
            if (!nixl_parse_bool(p->value, &out->ep_close_force)) {
                st = NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM,
                                 "ucx_ep_close_force='%s' is not a boolean (y/n, true/false, "
                                 "1/0, on/off)",
                                 p->value);
            }
        } else if (!strcmp(p->key, "ucx_peer_timeout_ms")) {
            st = param_uint(host, p, 0, 86400000, &out->peer_timeout_ms);
        } else if (!strcmp(p->key, "device_list")) {
            out->device_list = p->value[0] ? p->value : NULL;
        } else if (!strcmp(p->key, "ucx_devices")) {
            /* Advertised by the reference but never read there; we honour it as a synonym. */
            devices_alias = p->value[0] ? p->value : NULL;
        } else if (!strcmp(p->key, "engine_config")) {
            out->engine_config = p->value[0] ? p->value : NULL;
        }
        if (st != NIXL_SUCCESS)
            return st;
    }
    if (!out->device_list)
        out->device_list = devices_alias;
    return NIXL_SUCCESS;
}

/* ---- configuration ---- */

/* Whether `key` (without UCX_) is a UCP-level setting: ucp_config_print lists those. */
static bool ucp_knows(const char *dump, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = dump; p && *p;) {
        if (!strncmp(p, "UCX_", 4) && !strncmp(p + 4, key, klen) && p[4 + klen] == '=')
            return true;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return false;
}

static char *config_dump(ucp_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    ucp_config_print(cfg, f, NULL, UCS_CONFIG_PRINT_CONFIG | UCS_CONFIG_PRINT_HIDDEN);
    fclose(f);
    return buf;
}

static bool host_has_infiniband(void)
{
    DIR *d = opendir("/sys/class/infiniband");
    if (!d)
        return false;
    bool any = false;
    for (struct dirent *e; !any && (e = readdir(d));)
        any = e->d_name[0] != '.';
    closedir(d);
    return any;
}

/*
 * The reference's tuning, by the UCX version found at run time, applied unless the user set the
 * variable in the environment; and ours: USE_MT_MUTEX, because our workers are always shared
 * with the progress thread (thread mode MULTI) and UCX's default spinlock collapses when threads
 * outnumber cores (measured on 2 vCPUs: UCX over shared memory ran at 0.03-0.5 GB/s with the
 * spinlock, 2-12 GB/s with the mutex; docs/BENCHMARKS.md); and KEEPALIVE_INTERVAL=2s: over
 * UCX 1.13's TCP about one transfer in 3,000-20,000 between live agents stops until UCX's
 * keepalive next visits its endpoint (20 s by default; the root cause inside UCX is not known).
 * In the 60-s soak the default gave 13 transfers canceled at their 5-s deadline and releases of
 * up to 14.9 s; 2 s gave none, transfers of at most 1.6 s and releases of at most 18 ms
 * (docs/RELIABILITY.md). A keepalive round costs one small message per endpoint it visits (at
 * most UCX_KEEPALIVE_NUM_EPS per round). The reference's settings for AWS
 * EFA (ADDRESS_VERSION=v2, MAX_COMPONENT_MDS=32) are not applied: ucx_validate.c reads worker
 * addresses of version 1 only, and would refuse every peer's.
 */
static void apply_defaults(nixl_be_engine_t *eng, ucp_config_t *cfg, const char *dump)
{
    char channels[16];
    snprintf(channels, sizeof(channels), "%u", eng->params.device_channels);
    const struct {
        const char *key, *value;
        bool ib;          /* read by the InfiniBand transports, not by UCP */
        unsigned min_ver; /* UCP_VERSION(major, minor) from which the reference sets it */
    } defaults[] = {
        {"RNDV_THRESH", "inf", false, 0},
        {"MAX_RMA_RAILS", "2", false, 0},
        {"IB_PCI_RELAXED_ORDERING", "try", true, 0},
        {"RC_FENCE", "none", true, 0},
        {"USE_MT_MUTEX", "y", false, 0},
        {"KEEPALIVE_INTERVAL", "2s", false, 0}, /* ours, see above */
        {"RC_GDA_NUM_CHANNELS", channels, false, UCP_VERSION(1, 21)},
        {"MAX_HCA_PER_GPU", "auto", false, UCP_VERSION(1, 21)},
        {"RNDV_PIPELINE_ERROR_HANDLING", "y", false, UCP_VERSION(1, 22)},
    };
    unsigned major, minor, release;
    ucp_get_version(&major, &minor, &release);
    unsigned version = UCP_VERSION(major, minor);
    bool ib = host_has_infiniband();
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        const char *key = defaults[i].key;
        char env[64];
        snprintf(env, sizeof(env), "UCX_%s", key);
        if (getenv(env)) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "%s is set in the environment; keeping it", env);
            continue;
        }
        if (version < defaults[i].min_ver) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                        "not setting %s=%s: UCX %u.%u is older than the %u.%u it is meant for",
                        key, defaults[i].value, major, minor, defaults[i].min_ver >> UCP_VERSION_MAJOR_SHIFT,
                        (defaults[i].min_ver >> UCP_VERSION_MINOR_SHIFT) & 0xff);
            continue;
        }
        if (defaults[i].ib ? !ib : !ucp_knows(dump, key)) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "not setting %s=%s: %s", key, defaults[i].value,
                        defaults[i].ib ? "no InfiniBand device here"
                                       : "this UCX version does not know it");
            continue;
        }
        ucs_status_t s = ucp_config_modify(cfg, key, defaults[i].value);
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "%s=%s: %s", key, defaults[i].value,
                    ucs_status_string(s));
    }
}

/* Copy [b, e) without surrounding blanks into out (NUL-terminated, cut at cap). */
static void trimmed(const char *b, const char *e, char *out, size_t cap)
{
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t n = (size_t)(e - b) < cap - 1 ? (size_t)(e - b) : cap - 1;
    memmove(out, b, n); /* out may be b itself */
    out[n] = '\0';
}

/* The next item of a comma-separated list at *p, without blanks around it, into out (empty
 * for an empty item); false at the end of the list. */
static bool next_item(const char **p, char *out, size_t cap)
{
    if (!**p)
        return false;
    const char *end = strchr(*p, ',');
    if (!end)
        end = *p + strlen(*p);
    trimmed(*p, end, out, cap);
    *p = *end ? end + 1 : end;
    return true;
}

/* device_list "mlx5_0, eth0:1" -> NET_DEVICES "mlx5_0:1,eth0:1": a name without a port gets
 * ":1" unless it is a network interface (those have no port). */
static nixl_status_t apply_devices(nixl_be_engine_t *eng, ucp_config_t *cfg, const char *list)
{
    size_t cap = strlen(list) * 2 + 16, len = 0;
    char *out = malloc(cap), name[256], path[320];
    if (!out)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    out[0] = '\0';
    for (const char *p = list; next_item(&p, name, sizeof(name));) {
        if (!*name)
            continue;
        if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
            free(out);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "device_list: '%s' is not a "
                               "device name",
                               name);
        }
        struct stat sb;
        snprintf(path, sizeof(path), "/sys/class/net/%s", name);
        bool port = strchr(name, ':') || stat(path, &sb) == 0;
        len += (size_t)snprintf(out + len, cap - len, "%s%s%s", len ? "," : "", name,
                                port ? "" : ":1");
    }
    nixl_status_t st = NIXL_SUCCESS;
    if (len) {
        ucs_status_t s = ucp_config_modify(cfg, "NET_DEVICES", out);
        if (s != UCS_OK)
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                             "device_list='%s': UCX refused "
                             "NET_DEVICES=%s: %s",
                             list, out, ucs_status_string(s));
        else
            NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "NET_DEVICES=%s", out);
    }
    free(out);
    return st;
}

/* Prefixes of the transports' settings: UCP does not list them, so they are passed on as they
 * are for the transports (UCX warns by itself when none reads one; UCX 1.13 in fact ignores
 * TCP_SNDBUF-style names there). Any other key UCP does not know is taken for a typo. */
static bool transport_key(const char *key)
{
    static const char *const prefixes[] = {"TCP_", "IB_", "RC_", "UD_", "DC_", "MLX5_", "MM_",
                                           "POSIX_", "SYSV_", "XPMEM_", "CMA_", "KNEM_",
                                           "SELF_", "CUDA_", "GDR_COPY_", "ROCM_", "RDMACM_",
                                           "SOCKCM_", "GGA_", "SRD_", "EFA_"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (!strncmp(key, prefixes[i], strlen(prefixes[i])))
            return true;
    return false;
}

/* engine_config "KEY=VAL,KEY=VAL": extra settings, named without UCX_ (tolerated). */
static nixl_status_t apply_engine_config(nixl_be_engine_t *eng, ucp_config_t *cfg,
                                         const char *dump, const char *list)
{
    char entry[512];
    for (const char *p = list; next_item(&p, entry, sizeof(entry));) {
        if (!*entry)
            continue;
        char *eq = strchr(entry, '=');
        if (!eq || eq == entry)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "engine_config entry '%s' is not "
                               "KEY=VALUE",
                               entry);
        *eq = '\0';
        char *key = entry, *val = eq + 1;
        trimmed(key, eq, key, sizeof(entry)); /* "KEY = VAL" */
        while (*val == ' ' || *val == '\t')
            val++;
        if (!strncmp(key, "UCX_", 4))
            key += 4;
        if (!ucp_knows(dump, key) && !transport_key(key))
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "engine_config entry '%s=%s': "
                               "UCX %s has no such UCP or transport setting (UCS-wide ones such as "
                               "LOG_LEVEL go in the environment as UCX_<NAME>)",
                               key, val, ucp_get_version_string());
        ucs_status_t s = ucp_config_modify(cfg, key, val);
        if (s != UCS_OK)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "engine_config entry '%s=%s' "
                               "refused by UCX: %s",
                               key, val, ucs_status_string(s));
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "engine_config %s=%s", key, val);
    }
    return NIXL_SUCCESS;
}

/*
 * Whether every transport of the context is TCP (UCX_TLS=tcp). The loopback endpoint then
 * goes over TCP, and must have peer failure handling: UCX 1.13 crashes now and then in the
 * receive path of a TCP connection without it when the connection closes. Otherwise loopback
 * uses 'self' or shared memory, which refuse failure handling in 1.13. UCX 1.13 shows the
 * transports only in ucp_context_print_info ("resource N : md M dev D flags -- tcp/eth0").
 */
static bool tcp_only(ucp_context_h ctx)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return false;
    ucp_context_print_info(ctx, f);
    fclose(f);
    bool any = false, other = false;
    for (const char *p = buf; p && (p = strstr(p, " resource ")); p++) {
        const char *tl = strstr(p, "-- ");
        const char *eol = strchr(p, '\n');
        if (!tl || (eol && tl > eol))
            continue;
        any = true;
        other = other || strncmp(tl + 3, "tcp/", 4) != 0;
    }
    free(buf);
    return any && !other;
}

/*
 * Ours, for UCX over TCP: 64 KiB send segments (UCX's default is 8 KiB) unless
 * UCX_TCP_TX_SEG_SIZE is set. UCX 1.13 emulates RMA over TCP with active messages of one
 * segment each, so a put of 64 KiB was 8 messages, each a sendto and an acknowledgement, and
 * the system calls bounded nixlbench's WRITE of 128 x 64 KiB at 0.6-0.8 GB/s on 2 vCPUs; with
 * 64 KiB segments it ran at 2.1-2.3 GB/s (READ 1.0 -> 1.5-2.5: the target's replies are its
 * segments). A receiver's buffers are UCX's default 64 KiB (UCX_TCP_RX_SEG_SIZE), which a
 * 64 KiB segment, header included, fits: mixed peers (one with the default, as a reference
 * agent has) moved every byte both ways. UCX 1.13 reads transport settings only from the
 * environment (ucp_config_modify ignores TCP_ names: measured, no effect), so it is set there,
 * once per process, never overwriting a value the user gave.
 */
static bool tcp_segments_ours;

static void tcp_segments_once(void)
{
    tcp_segments_ours = !getenv("UCX_TCP_TX_SEG_SIZE") &&
                        setenv("UCX_TCP_TX_SEG_SIZE", "64k", 0) == 0;
}

nixl_status_t ucx_context_create(nixl_be_engine_t *eng)
{
    static pthread_once_t tcp_once = PTHREAD_ONCE_INIT;
    pthread_once(&tcp_once, tcp_segments_once);
    const char *seg = getenv("UCX_TCP_TX_SEG_SIZE");
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "TCP_TX_SEG_SIZE=%s%s", seg ? seg : "(UCX's default)",
                tcp_segments_ours ? "" : " (the environment's)");
    ucp_config_t *cfg = NULL;
    ucs_status_t s = ucp_config_read(NULL, NULL, &cfg);
    if (s != UCS_OK)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "reading the UCX configuration failed: %s",
                           ucs_status_string(s));
    nixl_status_t st = NIXL_SUCCESS;
    char *dump = config_dump(cfg);
    if (!dump) {
        st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
        goto out;
    }
    apply_defaults(eng, cfg, dump);
    if (eng->params.device_list)
        st = apply_devices(eng, cfg, eng->params.device_list);
    if (st == NIXL_SUCCESS && eng->params.engine_config)
        st = apply_engine_config(eng, cfg, dump, eng->params.engine_config);
    if (st != NIXL_SUCCESS)
        goto out;

    /* Workers are used from several threads at once (callers, the progress thread), and the
     * context is shared by the workers: MULTI everywhere. */
    ucp_params_t p = {
        .field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED,
        .features = UCP_FEATURE_RMA | UCP_FEATURE_AMO32 | UCP_FEATURE_AMO64 | UCP_FEATURE_AM |
                    UCP_FEATURE_WAKEUP,
        .mt_workers_shared = 1,
    };
    s = ucp_init(&p, cfg, &eng->ctx);
    if (s != UCS_OK) {
        eng->ctx = NULL;
        st = NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                         "creating the UCP context failed: %s (check "
                         "UCX_TLS, UCX_NET_DEVICES and device_list)",
                         ucs_status_string(s));
        goto out;
    }
    ucp_context_attr_t attr = {.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES};
    if (ucp_context_query(eng->ctx, &attr) == UCS_OK)
        eng->cuda_ok = attr.memory_types & (UCS_BIT(UCS_MEMORY_TYPE_CUDA) |
                                            UCS_BIT(UCS_MEMORY_TYPE_ROCM));
    eng->self_mode = tcp_only(eng->ctx) ? UCP_ERR_HANDLING_MODE_PEER
                                        : UCP_ERR_HANDLING_MODE_NONE;
out:
    free(dump);
    ucp_config_release(cfg);
    return st;
}
