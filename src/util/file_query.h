/*
 * file_query.h - what the file backends answer to queryMem for one path: its size (of the
 * device, for a block device), mode and mtime, as the reference's POSIX and GDS backends do.
 */
#ifndef NIXL_UTIL_FILE_QUERY_H
#define NIXL_UTIL_FILE_QUERY_H

#include <stdbool.h>

#include "nixl.h"

/* Fill `out` (zeroed by the caller) for `path`; a path that does not exist leaves has_value
 * false. False only when out of memory (what was filled stays for the caller to free). */
bool nixl_file_query(const char *path, nixl_query_resp_t *out);

#endif
