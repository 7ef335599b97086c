/* agent.h - the nixlAgent binding object and helpers shared by the agent*.c files. */
#ifndef NIXL_PY_AGENT_H
#define NIXL_PY_AGENT_H

#include "bind.h"

typedef struct {
    PyObject_HEAD
    nixl_agent_t *a;
} agent_obj;

/* Bind `A` to the agent of `self`, or fail with `ret`. */
#define AGENT(self, ret)                                                    \
    nixl_agent_t *A = ((agent_obj *)(self))->a;                            \
    if (!A) {                                                               \
        PyErr_SetString(PyExc_RuntimeError, "nixlAgent is not initialised"); \
        return ret;                                                         \
    }

/* One-line methods that call a shared implementation with a selector. */
#define KW_VARIANT(name, impl, which)                                  \
    static PyObject *name(PyObject *self, PyObject *args, PyObject *kw) \
    {                                                                   \
        return impl(self, args, kw, which);                             \
    }

/* st = call, with the GIL released around the call. */
#define NOGIL_CALL(st, call)      \
    do {                          \
        Py_BEGIN_ALLOW_THREADS    \
        (st) = (call);            \
        Py_END_ALLOW_THREADS      \
    } while (0)

/* Cast for METH_VARARGS | METH_KEYWORDS and METH_FASTCALL functions in method tables. */
#define KW (PyCFunction)(void (*)(void))

#define MAX_HINTS 16

/* Optional arguments with their backend-hint storage. */
typedef struct {
    nixl_opt_args_t opt;
    nixl_backend_t *hints[MAX_HINTS];
} bind_opt_t;

void bind_opt_init(bind_opt_t *o);
/* A list of backend handles (ints), or one int, or None / empty: sets opt.backends. */
int bind_opt_backends(bind_opt_t *o, PyObject *list);
/* A notification message: non-empty str/bytes sets it (empty keeps none). */
int bind_opt_notif(bind_opt_t *o, PyObject *msg);
/* A handle int as a pointer (0 is refused). */
void *bind_handle(PyObject *o);
/* The cached nixl_status_t member for st (new reference). */
PyObject *bind_status_obj(nixl_status_t st);
/* Dict + list of *_SEG names from a param list and a memory mask. */
PyObject *bind_params_pair(nixl_param_list_t *params, nixl_mem_mask_t mems);

extern PyMethodDef bind_agent_xfer_methods[];
extern PyMethodDef bind_agent_md_methods[];
extern PyMethodDef bind_agent_notif_methods[];
int bind_agent_xfer_init(PyObject *m);

#endif
