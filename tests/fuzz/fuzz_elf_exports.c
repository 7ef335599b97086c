/*
 * fuzz_elf_exports.c - libFuzzer target for the ELF dynamic-symbol reader that the plugin loader
 * runs on every plugin file before loading it (src/util/elf_exports.c).
 *
 * Besides "no crash, no out-of-bounds read", it checks that the answer does not depend on bytes
 * past the end of the image: the same image in a buffer of its exact size answers the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf_exports.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"nixl_c_plugin_entry", "nixl_plugin_init", "", "x"};
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        nixl_elf_result_t a = nixl_elf_exports(data, size, names[i]);
        nixl_elf_result_t b = nixl_elf_exports(copy, size, names[i]);
        if (a != b || a < NIXL_ELF_NOT_ELF || a > NIXL_ELF_EXPORTED) {
            fprintf(stderr, "fuzz_elf_exports: inconsistent answer %d/%d for '%s'\n", (int)a,
                    (int)b, names[i]);
            abort();
        }
    }
    free(copy);
    return 0;
}
