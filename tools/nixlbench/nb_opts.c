/*
 * nb_opts.c - the option table: every flag of the reference tool, with its default, plus ours
 * (--json, --compare). One table drives parsing, the TOML file, --help and the config block,
 * so a flag cannot be known to one and missing from another.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nb.h"

#define O(field) offsetof(nb_cfg_t, field)
#define BACKENDS                                                                             \
    "UCX|SHM|LIBFABRIC|GDS|GDS_MT|POSIX|GPUNETIO|Mooncake|HF3FS|OBJ|GUSLI|UCCL|AZURE_BLOB|"   \
    "INFINIA"

const nb_opt_t nb_opts[] = {
    {"config_file", NB_STR, O(config_file), "", NULL, NULL,
     "TOML file whose top-level keys are flag names (the command line wins)", 0},
    {"benchmark_group", NB_STR, O(benchmark_group), "default", NULL, NULL,
     "namespace of parallel runs on one etcd", 0},
    {"runtime_type", NB_ENUM, O(runtime_type), "", "ETCD|ASIO|LOCAL", "Runtime",
     "how the processes meet; auto: ETCD with --etcd_endpoints, else LOCAL (a target "
     "process spawned on this host)", 0},
    {"worker_type", NB_ENUM, O(worker_type), "nixl", "nixl|nvshmem", "Worker type",
     "transfer library to measure", 0},
    {"backend", NB_ENUM, O(backend), "", BACKENDS, "Backend",
     "transfer backend; auto (the reference: UCX): SHM with the LOCAL runtime, else UCX if its "
     "plugin loads here, else SHM", 0},
    {"etcd_endpoints", NB_STR, O(etcd_endpoints), "", NULL, NULL,
     "etcd server(s); selects the ETCD runtime", 0},
    {"asio_address", NB_STR, O(asio_address), "127.0.0.1", NULL, NULL,
     "ASIO runtime: address of the first process", 0},
    {"asio_port", NB_U64, O(asio_port), "12345", NULL, NULL, "ASIO runtime: TCP port", 65535},
    {"initiator_seg_type", NB_ENUM, O(initiator_seg_type), "DRAM", "DRAM|VRAM",
     "Initiator seg type", "memory of the initiator", 0},
    {"target_seg_type", NB_ENUM, O(target_seg_type), "DRAM", "DRAM|VRAM", "Target seg type",
     "memory of the target", 0},
    {"scheme", NB_ENUM, O(scheme), "pairwise", "pairwise|manytoone|onetomany|tp", "Scheme",
     "communication pattern", 0},
    {"mode", NB_ENUM, O(mode), "SG", "SG|MG", "Mode", "single or multiple GPUs per process", 0},
    {"op_type", NB_ENUM, O(op_type), "WRITE", "READ|WRITE", "Op type", "transfer direction", 0},
    {"check_consistency", NB_BOOL, O(check_consistency), "false", NULL, "Check consistency",
     "verify the data moved (initiator 0xBB, target 0xAA)", 0},
    {"total_buffer_size", NB_SIZE, O(total_buffer_size), "8589934592", NULL, "Total buffer size",
     "bytes per process; not given: what the sweep needs, at most this", 0},
    {"num_initiator_dev", NB_U64, O(num_initiator_dev), "1", NULL, "Num initiator dev",
     "initiator processes", 0},
    {"num_target_dev", NB_U64, O(num_target_dev), "1", NULL, "Num target dev",
     "target processes", 0},
    {"start_block_size", NB_SIZE, O(start_block_size), "4096", NULL, "Start block size",
     "first block size (doubles up to max)", 0},
    {"max_block_size", NB_SIZE, O(max_block_size), "67108864", NULL, "Max block size",
     "last block size; not given, with the LOCAL runtime and --backend UCX: 16777216", 0},
    {"start_batch_size", NB_U64, O(start_batch_size), "1", NULL, "Start batch size",
     "first descriptors per request (doubles up to max)", 0},
    {"max_batch_size", NB_U64, O(max_batch_size), "1", NULL, "Max batch size",
     "last descriptors per request", 0},
    {"num_iter", NB_U64, O(num_iter), "1000", NULL, "Num iter", "measured iterations", 0},
    {"warmup_iter", NB_U64, O(warmup_iter), "100", NULL, "Warmup iter",
     "iterations before measuring", 0},
    {"large_blk_iter_ftr", NB_U64, O(large_blk_iter_ftr), "16", NULL, "Large block iter factor",
     "iterations are divided by it for blocks above 1 MiB", 0},
    {"num_threads", NB_U64, O(num_threads), "1", NULL, "Num threads",
     "initiator threads, each with its own slice of the buffer", 0},
    {"enable_pt", NB_BOOL, O(enable_pt), "false", NULL, "Enable pt",
     "let backends run a progress thread", 0},
    {"progress_threads", NB_U64, O(progress_threads), "0", NULL, "Progress threads",
     "UCX progress threads", 0},
    {"enable_vmm", NB_BOOL, O(enable_vmm), "false", NULL, NULL, "VRAM: CUDA VMM allocations", 0},
    {"use_hugepages", NB_BOOL, O(use_hugepages), "false", NULL, NULL,
     "DRAM from 2 MiB huge pages (the pool, else transparent ones)", 0},
    {"dram_memfd", NB_BOOL, O(dram_memfd), "false", NULL, NULL,
     "DRAM on a memfd mapped shared (SHM peers then map it; ours only)", 0},
    {"same_block", NB_BOOL, O(same_block), "false", NULL, NULL,
     "every descriptor of a request on one block, as ucx_perftest (ours only)", 0},
    {"recreate_xfer", NB_BOOL, O(recreate_xfer), "false", NULL, "Recreate xfer",
     "create a new request for every iteration", 0},
    {"reregister_mem", NB_BOOL, O(reregister_mem), "false", NULL, "Reregister mem",
     "register the memory again for every iteration (implies recreate_xfer)", 0},
    {"prepared_xfer", NB_BOOL, O(prepared_xfer), "false", NULL, "Prepared xfer",
     "prep_xfer_dlist + make_xfer_req instead of create_xfer_req", 0},
    {"pipeline_depth", NB_U64, O(pipeline_depth), "1", NULL, "Pipeline depth",
     "requests in flight per thread", 0},
    {"device_list", NB_STR, O(device_list), "all", NULL, "Device list",
     "UCX devices; a comma list gives one entry per rank", 0},
    {"use_device_api", NB_BOOL, O(use_device_api), "false", NULL, NULL,
     "GPU-initiated transfers", 0},
    {"filepath", NB_STR, O(filepath), "", NULL, "File path", "storage: directory of the files", 0},
    {"filenames", NB_STR, O(filenames), "", NULL, NULL, "storage: comma-separated file names", 0},
    {"num_files", NB_U64, O(num_files), "1", NULL, "Num files", "storage: number of files", 0},
    {"storage_enable_direct", NB_BOOL, O(storage_enable_direct), "false", NULL, "Storage direct",
     "storage: O_DIRECT", 0},
    {"randomize_location_mode", NB_ENUM, O(randomize_location_mode), "none",
     "none|blockaligned|bytealigned", NULL, "storage: file offsets", 0},
    {"randomize_location_mode_seed", NB_U64, O(randomize_location_mode_seed), "0", NULL, NULL,
     "storage: seed (0: random)", 0},
    {"gds_batch_pool_size", NB_U64, O(gds_batch_pool_size), "32", NULL, NULL, "GDS", 0},
    {"gds_batch_limit", NB_U64, O(gds_batch_limit), "128", NULL, NULL, "GDS", 0},
    {"gds_mt_num_threads", NB_U64, O(gds_mt_num_threads), "1", NULL, NULL, "GDS_MT threads", 0},
    {"posix_api_type", NB_ENUM, O(posix_api_type), "AIO", "AIO|URING|POSIXAIO", NULL, "POSIX", 0},
    {"posix_ios_pool_size", NB_U64, O(posix_ios_pool_size), "65536", NULL, NULL, "POSIX", 0},
    {"posix_kernel_queue_size", NB_U64, O(posix_kernel_queue_size), "256", NULL, NULL, "POSIX",
     0},
    {"gpunetio_device_list", NB_STR, O(gpunetio_device_list), "0", NULL, NULL, "GPUNETIO", 0},
    {"gpunetio_oob_list", NB_STR, O(gpunetio_oob_list), "", NULL, NULL, "GPUNETIO", 0},
    {"hf3fs_iopool_size", NB_U64, O(hf3fs_iopool_size), "64", NULL, NULL, "HF3FS", 0},
    {"obj_access_key", NB_STR, O(obj_access_key), "", NULL, NULL, "OBJ", 0},
    {"obj_secret_key", NB_STR, O(obj_secret_key), "", NULL, NULL, "OBJ", 0},
    {"obj_session_token", NB_STR, O(obj_session_token), "", NULL, NULL, "OBJ", 0},
    {"obj_bucket_name", NB_STR, O(obj_bucket_name), "", NULL, NULL, "OBJ", 0},
    {"obj_scheme", NB_ENUM, O(obj_scheme), "http", "http|https", NULL, "OBJ", 0},
    {"obj_region", NB_STR, O(obj_region), "eu-central-1", NULL, NULL, "OBJ", 0},
    {"obj_use_virtual_addressing", NB_BOOL, O(obj_use_virtual_addressing), "false", NULL, NULL,
     "OBJ", 0},
    {"obj_endpoint_override", NB_STR, O(obj_endpoint_override), "", NULL, NULL, "OBJ", 0},
    {"obj_req_checksum", NB_ENUM, O(obj_req_checksum), "supported", "supported|required", NULL,
     "OBJ", 0},
    {"obj_ca_bundle", NB_STR, O(obj_ca_bundle), "", NULL, NULL, "OBJ", 0},
    {"obj_crt_min_limit", NB_SIZE, O(obj_crt_min_limit), "0", NULL, NULL,
     "OBJ: CRT client from this size (0: off)", 0},
    {"obj_accelerated_enable", NB_BOOL, O(obj_accelerated_enable), "false", NULL, NULL, "OBJ",
     0},
    {"obj_accelerated_type", NB_STR, O(obj_accelerated_type), "", NULL, NULL, "OBJ", 0},
    {"azure_blob_account_url", NB_STR, O(azure_blob_account_url), "", NULL, NULL, "AZURE_BLOB",
     0},
    {"azure_blob_container_name", NB_STR, O(azure_blob_container_name), "", NULL, NULL,
     "AZURE_BLOB", 0},
    {"azure_blob_connection_string", NB_STR, O(azure_blob_connection_string), "", NULL, NULL,
     "AZURE_BLOB", 0},
    {"infinia_config_file", NB_STR, O(infinia_config_file), "", NULL, NULL, "INFINIA", 0},
    {"gusli_client_name", NB_STR, O(gusli_client_name), "NIXLBench", NULL, NULL, "GUSLI", 0},
    {"gusli_max_simultaneous_requests", NB_U64, O(gusli_max_simultaneous_requests), "32", NULL,
     NULL, "GUSLI", 0},
    {"gusli_config_file", NB_STR, O(gusli_config_file), "", NULL, NULL, "GUSLI", 0},
    {"gusli_device_byte_offsets", NB_STR, O(gusli_device_byte_offsets), "", NULL, NULL, "GUSLI",
     0},
    {"gusli_device_security", NB_STR, O(gusli_device_security), "", NULL, NULL, "GUSLI", 0},
    {"gusli_try_use_uring", NB_BOOL, O(gusli_try_use_uring), "false", NULL, NULL, "GUSLI", 0},
    {"json", NB_STR, O(json), "", NULL, NULL,
     "also write every row, with p50/p90/p99/max, to this JSON file", 0},
    {"compare", NB_STR, O(compare), "", NULL, NULL,
     "BACKEND[,BACKEND]: one table, a B/W column per backend, and memcpy", 0},
    {"help", NB_BOOL, O(help), "false", NULL, NULL, "print this list", 0},
    /* Hidden: how a spawned target finds the initiator that spawned it. */
    {"nb_peer", NB_STR, O(peer), "", NULL, NULL, NULL, 0},
};
const size_t nb_num_opts = sizeof(nb_opts) / sizeof(nb_opts[0]);

const nb_opt_t *nb_opt_find(const char *name)
{
    for (size_t i = 0; i < nb_num_opts; i++)
        if (!strcmp(nb_opts[i].name, name))
            return &nb_opts[i];
    return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (tolower((unsigned char)a[i - 1]) !=
                                  tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *nb_opt_suggest(const char *name)
{
    const char *best = NULL;
    size_t best_d = strlen(name) / 3 + 2; /* farther than this is a different word */
    for (size_t i = 0; i < nb_num_opts; i++) {
        if (!nb_opts[i].help)
            continue;
        size_t d = edit_distance(name, nb_opts[i].name);
        if (d < best_d) {
            best_d = d;
            best = nb_opts[i].name;
        }
    }
    return best;
}

/* Sizes: a plain integer as the reference takes, or with K/M/G/T (powers of 1024, optional
 * "iB"/"B"), so that "64M" reads as 64 MiB. */
static bool parse_size(const char *s, bool suffix_ok, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    if (suffix_ok && *end) {
        const char *units = "KMGT";
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u)
            return false;
        shift = 10 * (unsigned)(u - units + 1);
        end++;
        if (!strcasecmp(end, "iB") || !strcasecmp(end, "B"))
            end += strlen(end);
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "1", "yes", "on"}, *no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i]))
            return (*out = true);
        if (!strcasecmp(s, no[i]))
            return !(*out = false);
    }
    return false;
}

/* The choice `s` names (any case), copied as the table writes it. */
static const char *enum_match(const char *choices, const char *s, size_t *len)
{
    for (const char *c = choices; *c;) {
        size_t n = strcspn(c, "|");
        if (n == strlen(s) && !strncasecmp(c, s, n)) {
            *len = n;
            return c;
        }
        c += n + (c[n] == '|');
    }
    return NULL;
}

const char *nb_opt_choice(const nb_opt_t *o, const char *s, size_t *len)
{
    return o->choices ? enum_match(o->choices, s, len) : NULL;
}

bool nb_opt_set(nb_cfg_t *cfg, const nb_opt_t *o, const char *value, char *err, size_t errlen)
{
    void *field = (char *)cfg + o->off;
    switch (o->kind) {
    case NB_STR:
    case NB_ENUM: {
        size_t n = strlen(value);
        const char *src = value;
        if (o->kind == NB_ENUM && *value && !(src = enum_match(o->choices, value, &n))) {
            snprintf(err, errlen, "--%s: '%s' is not one of %s", o->name, value, o->choices);
            return false;
        }
        char *copy = strndup(src, n);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case NB_U64:
    case NB_SIZE: {
        uint64_t v;
        if (!parse_size(value, o->kind == NB_SIZE, &v)) {
            snprintf(err, errlen, "--%s: '%s' is not a%s", o->name, value,
                     o->kind == NB_SIZE ? " size (bytes, or with K/M/G/T)"
                                        : "n unsigned integer");
            return false;
        }
        if (o->max && v > o->max) {
            snprintf(err, errlen, "--%s: %s is above the largest value, %llu", o->name, value,
                     (unsigned long long)o->max);
            return false;
        }
        *(uint64_t *)field = v;
        return true;
    }
    case NB_BOOL:
        if (!parse_bool(value, (bool *)field)) {
            snprintf(err, errlen, "--%s: '%s' is not true or false", o->name, value);
            return false;
        }
        return true;
    }
    return false;
}

const char *nb_opt_value(const nb_cfg_t *cfg, const nb_opt_t *o, char *buf, size_t len)
{
    const void *field = (const char *)cfg + o->off;
    switch (o->kind) {
    case NB_STR:
    case NB_ENUM:
        return *(char *const *)field ? *(char *const *)field : "";
    case NB_U64:
    case NB_SIZE:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
        return buf;
    case NB_BOOL:
        return *(const bool *)field ? "1" : "0";
    }
    return "";
}

void nb_print_help(const char *argv0)
{
    printf("Usage: %s [--flag=value | --flag value | --flag] ...\n\n"
           "Measures transfers between an initiator and a target (by default a target process\n"
           "spawned on this host). Sizes take plain bytes or K/M/G/T suffixes (powers of 1024).\n"
           "Booleans: --flag, --flag=true|false, --noflag.\n\n",
           argv0);
    for (size_t i = 0; i < nb_num_opts; i++) {
        const nb_opt_t *o = &nb_opts[i];
        if (!o->help)
            continue;
        char def[96];
        snprintf(def, sizeof(def), "%s", *o->def ? o->def : o->choices ? "auto" : "\"\"");
        printf("  --%-32s %s", o->name, o->help);
        if (o->choices)
            printf(" [%s]", o->choices);
        printf(" (default: %s)\n", def);
    }
}
