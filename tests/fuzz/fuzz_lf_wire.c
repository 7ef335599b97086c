/*
 * fuzz_lf_wire.c - libFuzzer target for the three byte formats a LIBFABRIC peer sends
 * (plugins/libfabric/lf_wire.h): connection info, region blob, message. The same bytes go to
 * each parser; what a parser accepts must write back to exactly the same bytes (nothing is
 * accepted that we would not have written) with every field inside its documented bounds, and
 * a refusal must say why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "fuzz_lf_wire: %s:%d: check failed: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                                   \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *in = size ? data : NULL;
    char why[256];
    uint8_t *out = malloc(size ? size : 1);
    CHECK(out);

    lf_conn_info_t ci;
    why[0] = '\0';
    if (lf_conn_parse(in, size, &ci, why, sizeof(why))) {
        CHECK(ci.nrails >= 1 && ci.nrails <= LF_RAILS_MAX);
        for (unsigned r = 0; r < ci.nrails; r++)
            CHECK(ci.addr_len[r] >= 1 && ci.addr_len[r] <= LF_ADDR_MAX &&
                  ci.addr[r] >= data && ci.addr[r] + ci.addr_len[r] <= data + size);
        CHECK(lf_conn_write(&ci, NULL) == size);
        lf_conn_write(&ci, out);
        CHECK(memcmp(out, data, size) == 0);
    } else {
        CHECK(why[0]);
    }

    lf_region_info_t ri;
    why[0] = '\0';
    if (lf_region_parse(in, size, &ri, why, sizeof(why))) {
        CHECK(size == LF_REGION_BLOB_LEN(ri.nrails) && ri.len && ri.base + ri.len > ri.base);
        lf_region_write(&ri, out);
        CHECK(memcmp(out, data, size) == 0);
    } else {
        CHECK(why[0]);
    }

    lf_msg_t m;
    why[0] = '\0';
    if (lf_msg_parse(in, size, &m, why, sizeof(why))) {
        CHECK(m.name_len >= 1 && m.name_len <= LF_NAME_MAX && m.len <= LF_NOTIF_MAX);
        CHECK(!memchr(m.name, '\0', m.name_len));
        CHECK(lf_msg_write(m.type, m.name, m.name_len, m.payload, m.len, out) == size);
        CHECK(memcmp(out, data, size) == 0);
    } else {
        CHECK(why[0]);
    }
    free(out);
    return 0;
}
