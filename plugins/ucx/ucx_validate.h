/*
 * ucx_validate.h - structural checks of a peer's worker address and packed remote keys before
 * UCX parses them (ucx_validate.c says which formats and fields). Pure functions of the bytes:
 * no UCX state, so the fuzz target runs them directly too.
 */
#ifndef NIXL_UCX_VALIDATE_H
#define NIXL_UCX_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes a packed remote key may carry after its transport keys (UCX's system-device
 * information for GPU memory), unchecked. */
#define UCX_RKEY_TRAILER_MAX 256u
/* Zeros after the copy of a remote key handed to UCX, so whatever it reads of such a trailer
 * stays inside our buffer. */
#define UCX_RKEY_PAD 512u

/* true: the blob has the documented structure; false: `why` (may be NULL) says where not. */
bool ucx_addr_check(const void *blob, size_t len, char *why, size_t why_len);
bool ucx_rkey_check(const void *blob, size_t len, char *why, size_t why_len);

#endif
