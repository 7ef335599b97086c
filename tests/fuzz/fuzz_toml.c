/*
 * fuzz_toml.c - libFuzzer target for the configuration file reader (NIXL's TOML subset).
 *
 * Any bytes: parsed as a whole file; on success every entry is looked up again by its key
 * (the index must agree with the array) and its value read; on failure the document must be
 * empty. Freed either way (leaks show under ASan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_toml: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nixl_toml_doc_t doc = {0};
    nixl_status_t st = nixl_toml_parse("fuzz", (const char *)data, size, &doc);
    if (st != NIXL_SUCCESS) {
        CHECK(doc.count == 0);
        nixl_toml_free(&doc);
        return 0;
    }
    for (size_t i = 0; i < doc.count; i++) {
        const nixl_toml_entry_t *e = &doc.entries[i];
        CHECK(e->key && strlen(e->key) <= e->key_len);
        if (strlen(e->key) == e->key_len) /* keys with NULs cannot be named by C strings */
            CHECK(nixl_toml_find(&doc, e->key) == e);
        CHECK(nixl_toml_type_name(e->v.type) != NULL);
        if (e->v.type == NIXL_TOML_STRING)
            CHECK(e->v.str && strlen(e->v.str) <= e->v.str_len);
    }
    nixl_toml_free(&doc);
    CHECK(doc.count == 0);
    return 0;
}
