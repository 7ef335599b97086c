/*
 * be_storage.h - what the local storage backends (POSIX, GDS, GDS_MT) do the same way:
 * all-or-nothing registration, the loopback metadata, the checks of a descriptor pair and of
 * a post, and how a request's failure is reported. Every bad input is refused with a status
 * and a reason given through the host (NIXL_BE_ERR), as the plugins' own checks are.
 *
 * The plugin's md, engine and request stay its own (opaque here): the helpers see only the
 * descriptors, and what the caller reads out of its metadata.
 */
#ifndef NIXL_UTIL_BE_STORAGE_H
#define NIXL_UTIL_BE_STORAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "nixl_plugin.h"

/* ---- registration ---- */

/* Fill `md` (md_size zeroed bytes) for descriptor i. On failure: the status, the reason given
 * through the host, and nothing kept in md (the helper frees it with free()). */
typedef nixl_status_t (*nixl_be_reg_one_fn)(nixl_be_engine_t *eng, nixl_mem_t type, size_t i,
                                            const nixl_reg_desc_t *d, nixl_be_md_t *md);
/* Undo one registration that nixl_be_reg_one_fn completed, and free its md. */
typedef void (*nixl_be_md_free_fn)(nixl_be_engine_t *eng, nixl_be_md_t *md);

/* Register `count` regions, one md of md_size bytes each, into out[0..count): all or nothing.
 * On the first failure the regions done are undone (md_free, last first) and that failure's
 * status is returned; out of memory is NIXL_ERR_UNKNOWN with its reason. */
nixl_status_t nixl_be_register_each(nixl_be_engine_t *eng, const nixl_host_t *host,
                                    nixl_mem_t type, const nixl_reg_desc_t *descs, size_t count,
                                    size_t md_size, nixl_be_reg_one_fn reg_one,
                                    nixl_be_md_free_fn md_free, nixl_be_md_t **out);

/* load_local_md of a backend whose loopback target is the registration itself: out[i] is the
 * i-th md, nothing is allocated (so the core's default unload_md fits). Never fails. */
nixl_status_t nixl_be_load_self(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                nixl_be_md_t **out);

/* ---- preparing ---- */

/* What the caller's metadata makes of one side of a descriptor pair. */
typedef enum nixl_be_side {
    NIXL_BE_SIDE_OTHER = 0, /* no md, or a memory type the backend cannot move */
    NIXL_BE_SIDE_MEM,       /* memory the backend moves from or to */
    NIXL_BE_SIDE_STORAGE,   /* a file or a block device */
} nixl_be_side_t;

/* Storage transfers carry no notification: NIXL_ERR_NOT_SUPPORTED when opts asks for one. */
nixl_status_t nixl_be_storage_no_notif(const nixl_host_t *host, const nixl_be_xfer_opts_t *opts);

/* Order pair i as memory <-> storage into *mem and *file (the storage may be given as the
 * local side) and check it: one side memory and the other storage (else INVALID_PARAM,
 * "transfers go between <types>"), equal lengths, a file offset that fits off_t. */
nixl_status_t nixl_be_storage_pair(const nixl_host_t *host, size_t i,
                                   const nixl_be_desc_t *local, nixl_be_side_t local_side,
                                   const nixl_be_desc_t *remote, nixl_be_side_t remote_side,
                                   const char *types, const nixl_be_desc_t **mem,
                                   const nixl_be_desc_t **file);

/* O_DIRECT of pair i (after nixl_be_storage_pair): buffer address, length and file offset
 * must be multiples of `align` (0: the file is not open with O_DIRECT, nothing to check);
 * `fd` names the file in the message. */
nixl_status_t nixl_be_storage_direct(const nixl_host_t *host, size_t i,
                                     const nixl_be_desc_t *mem, const nixl_be_desc_t *file,
                                     int fd, unsigned align);

/* ---- posting and checking ---- */

/* The start of every post of a storage request whose state is `state` and which holds `nios`
 * I/Os: no notification, not in flight already (REPOST_ACTIVE), and a request of no I/O is
 * SUCCESS at once. NIXL_IN_PROG: the caller starts the I/Os; anything else is the answer. */
nixl_status_t nixl_be_storage_post_begin(const nixl_host_t *host, const nixl_be_xfer_opts_t *opts,
                                         _Atomic int *state, size_t nios);

/* A request's status as post and check return it: a failure (not NOT_POSTED) gives `errmsg`,
 * the request's description of it, as the reason. Returns st. */
nixl_status_t nixl_be_storage_status(const nixl_host_t *host, nixl_status_t st,
                                     const char *errmsg);

/* Path-mode FILE registration (POSIX, GDS, GDS_MT, as the reference): metaInfo
 * "<ro|rw>[,direct][,sync][,noatime][,create]:<path>" names a file the backend opens at
 * registration and closes at deregistration. Metadata that does not begin with "ro" or "rw"
 * followed by ',' or ':' is not a spec: devId is then the caller's fd. One that begins like a
 * spec but has an unknown flag, no ':' or an empty path is refused. */
typedef struct nixl_be_file_spec {
    bool is_spec;  /* false: plain metaInfo (fd mode) */
    int flags;     /* open(2) flags */
    const char *path; /* into the parsed buffer */
} nixl_be_file_spec_t;
/* Parse meta (not NUL-terminated) into buf (NUL-terminated copy). False, with a reason in err,
 * when it starts like a spec but is not a valid one. */
bool nixl_be_file_spec_parse(const void *meta, size_t len, char *buf, size_t buflen,
                             nixl_be_file_spec_t *out, char *err, size_t errlen);

#endif
