/* dlist_codec.h - serdes encoding of descriptor lists (pickle state), see dlist_codec.c. */
#ifndef NIXL_PY_DLIST_CODEC_H
#define NIXL_PY_DLIST_CODEC_H

#include "bind.h"

/* The list's serdes bytes (a new bytes object), or NULL with an exception. */
PyObject *dlist_encode(dlist_obj *l);
/* Parse `data` into the (empty) list `l` through `add`; -1 with nixlMismatchError if malformed. */
int dlist_decode(dlist_obj *l, const void *data, size_t len,
                 int (*add)(dlist_obj *, const nixl_desc_t *, const char *, size_t));

#endif
