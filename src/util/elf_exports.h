/*
 * elf_exports.h - what a shared object exports, read from its bytes without loading it.
 *
 * The plugin loader asks this before dlopen(): a file that is a plugin of another ABI (the
 * reference NIXL's C++ plugins) must be refused without running any of its code, and dlopen()
 * runs the file's constructors. The image is hostile input: every offset is bounds-checked.
 */
#ifndef NIXL_UTIL_ELF_EXPORTS_H
#define NIXL_UTIL_ELF_EXPORTS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum nixl_elf_result {
    NIXL_ELF_NOT_ELF = -1,  /* not a 64-bit little-endian ELF shared object we can read */
    NIXL_ELF_ABSENT = 0,    /* readable, and `name` is not exported */
    NIXL_ELF_EXPORTED = 1,  /* a defined global or weak symbol `name` is in .dynsym */
} nixl_elf_result_t;

/* Whether the ELF image [image, image+len) exports the defined symbol `name`. */
nixl_elf_result_t nixl_elf_exports(const void *image, size_t len, const char *name);

/* The same for a file, read once (never mapped executable nor run) and asked for each of the
 * `n` names: exported[i] says whether names[i] is. NIXL_ELF_NOT_ELF when the file cannot be read
 * as such an object (or is over 256 MiB), else NIXL_ELF_ABSENT. */
nixl_elf_result_t nixl_elf_file_exports(const char *path, const char *const *names, size_t n,
                                        bool *exported);

#endif
