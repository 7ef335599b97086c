/*
 * bind.h - shared pieces of the nixl._bindings extension module (CPython C API over libnixl).
 *
 * Handles cross into Python as plain ints (the engine / prepared list / request pointers), as in
 * the reference binding, so code that stores or compares them keeps working.
 */
#ifndef NIXL_PY_BIND_H
#define NIXL_PY_BIND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "nixl.h"

/* The three descriptor-list classes share one object layout; `kind` says which one it is. */
enum { DL_XFER = 0, DL_REG = 1, DL_REMOTE = 2 };

typedef struct {
    PyObject_HEAD
    int kind;
    nixl_mem_t type;
    size_t count;
    size_t cap;
    nixl_desc_t *d;    /* the descriptors, reference 24-byte layout */
    PyObject **extra;  /* DL_REG: metaInfo bytes; DL_REMOTE: agent name str; else NULL */
    Py_ssize_t pins;   /* calls running without the GIL that read d / extra: no mutation */
} dlist_obj;

/*
 * A list passed to libnixl is read with the GIL released; pin it for the call so that another
 * thread cannot reallocate or change it meanwhile (it gets BufferError, like a resized
 * bytearray that is exported). Pin and unpin with the GIL held.
 */
static inline void dl_pin(dlist_obj *l)
{
    l->pins++;
}

static inline void dl_unpin(dlist_obj *l)
{
    l->pins--;
}

extern PyTypeObject *bind_dlist_types[3];
/* The enum classes built at module init (IntEnum subclasses). */
extern PyObject *bind_mem_enum, *bind_status_enum;

/* Parse one unsigned 64-bit integer (int, numpy scalar, anything with __index__). */
int bind_u64(PyObject *o, uint64_t *out);

/* The number of statuses in NIXL_STATUS_MAP (nixl.h); they run from NIXL_IN_PROG (1) down
 * without gaps, so 1 - status indexes a table of them (module.c checks it). */
#define BIND_COUNT_STATUS_(name, value, message) +1
enum { BIND_NUM_STATUS = 0 NIXL_STATUS_MAP(BIND_COUNT_STATUS_) };
#undef BIND_COUNT_STATUS_

/* Exceptions per error status (index = -status); NULL at 0. */
extern PyObject *bind_status_exc[BIND_NUM_STATUS - 1];

/* Set the exception for a failing status and return NULL. */
PyObject *bind_raise(nixl_status_t st);
/* Check a status: negative raises (returns -1), otherwise 0. */
int bind_check(nixl_status_t st);

/* Read a str or bytes argument: pointer + length valid while `o` lives. */
int bind_strlike(PyObject *o, const char **p, Py_ssize_t *len);
/* Same, NUL-terminated and without embedded NUL (names, addresses). */
int bind_cstr(PyObject *o, const char **p);

/* Build nixl_reg_desc_t entries from a reg list (caller frees with PyMem_Free). */
nixl_reg_desc_t *bind_reg_descs(dlist_obj *l);
int bind_is_dlist(PyObject *o, int kind);

int bind_dlist_init_types(PyObject *m);
int bind_agent_init_types(PyObject *m);
int bind_config_init_type(PyObject *m);
/* Fill a C config from a nixlAgentConfig object (or defaults for None). */
int bind_config_get(PyObject *o, nixl_agent_config_t *cfg);

#endif
