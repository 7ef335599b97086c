/*
 * fuzz_shm_conn.c - libFuzzer target for the SHM backend's connection info (what a peer's
 * metadata carries for SHM: host, namespaces, pid, socket name).
 *
 * Any bytes: decoded; a blob that decodes must encode back to exactly the same bytes (nothing
 * accepted that we would not have written), and its socket name must be NUL-terminated within
 * bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_shm_conn: %s:%d: check failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shm_conn_info_t info;
    const char *why = NULL;
    if (shm_conn_decode(size ? data : NULL, size, &info, &why) != NIXL_SUCCESS) {
        CHECK(why != NULL);
        return 0;
    }
    CHECK(info.sock_len >= 1 && info.sock_len <= SHM_SOCK_NAME_MAX);
    CHECK(info.sock_name[info.sock_len] == '\0');
    uint8_t out[SHM_CONN_BLOB_MAX];
    size_t len = shm_conn_encode(&info, out);
    if (len == size) {
        CHECK(memcmp(out, data, size) == 0);
    } else {
        /* a blob of an older version (no flags word) comes back with flags 0 appended */
        CHECK(len == size + 4 && info.flags == 0);
        CHECK(memcmp(out, data, 6) == 0 && memcmp(out + 8, data + 8, size - 8) == 0);
    }
    return 0;
}
