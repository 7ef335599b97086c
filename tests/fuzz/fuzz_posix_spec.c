/*
 * fuzz_posix_spec.c - libFuzzer target for the storage backends' path spec
 * ("<ro|rw>[,direct,sync,noatime,create]:<path>" in a FILE region's metadata; POSIX, GDS and
 * GDS_MT parse it with nixl_be_file_spec_parse).
 *
 * Any bytes: parsed into a buffer of the size the backend uses; a spec that parses has a path
 * inside the buffer, NUL-terminated and non-empty, and flags with the access mode it asked
 * for; one that does not gives a reason.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be_storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_posix_spec: %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[4096], err[256] = "";
    nixl_be_file_spec_t spec;
    bool ok = nixl_be_file_spec_parse(size ? data : NULL, size, buf, sizeof(buf), &spec, err, sizeof(err));
    if (!ok) {
        CHECK(err[0] != '\0');
        return 0;
    }
    if (!spec.is_spec)
        return 0; /* plain metadata: the fd mode */
    CHECK(spec.path > buf && spec.path < buf + sizeof(buf));
    size_t plen = strnlen(spec.path, (size_t)(buf + sizeof(buf) - spec.path));
    CHECK(plen > 0 && spec.path + plen < buf + sizeof(buf));
    int mode = spec.flags & O_ACCMODE;
    CHECK(mode == (data[1] == 'o' ? O_RDONLY : O_RDWR));
    return 0;
}
