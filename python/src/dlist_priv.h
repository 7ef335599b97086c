/* dlist_priv.h - internals shared by dlist.c (storage, construction) and dlist_ops.c. */
#ifndef NIXL_PY_DLIST_PRIV_H
#define NIXL_PY_DLIST_PRIV_H

#include "bind.h"

extern const char *const dl_kind_names[3];

/* -1 with BufferError while a call without the GIL reads the list (see dl_pin()). */
int dl_writable(dlist_obj *l);
/* Room for n descriptors (checks dl_writable()). */
int dl_reserve(dlist_obj *l, size_t n);
/* The per-descriptor extra: metaInfo bytes (reg lists) or agent name str (remote lists). */
PyObject *dl_make_extra(dlist_obj *l, const char *x, Py_ssize_t xl);
/* Append one descriptor with its extra. */
int dl_add_raw(dlist_obj *l, const nixl_desc_t *d, const char *x, size_t xl);
/* Parse a descriptor tuple of the list's arity. */
int dl_parse_tuple(dlist_obj *l, PyObject *t, nixl_desc_t *d, const char **x, Py_ssize_t *xl);
/* Parse and append a descriptor tuple. */
int dl_add_tuple(dlist_obj *l, PyObject *t);
void dl_clear_items(dlist_obj *l);

/* Type slots implemented in dlist.c. */
int dl_init(PyObject *self, PyObject *args, PyObject *kw);
void dl_dealloc(PyObject *self);
PyObject *dl_new(PyTypeObject *tp, PyObject *args, PyObject *kw);

#endif
