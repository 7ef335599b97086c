/*
 * module.c - nixl._bindings: module init, enums, constants, the exception per status and the
 * small argument helpers shared by the other files.
 */
#include <string.h>

#include "bind.h"

PyObject *bind_status_exc[13];
PyObject *bind_mem_enum, *bind_status_enum;

/* Reference exception names, index = -status (note the reference's "Cancelled"). */
static const char *const exc_names[13] = {
    NULL, "nixlNotPostedError", "nixlInvalidParamError", "nixlBackendError", "nixlNotFoundError",
    "nixlMismatchError", "nixlNotAllowedError", "nixlRepostActiveError", "nixlUnknownError",
    "nixlNotSupportedError", "nixlRemoteDisconnectError", "nixlCancelledError",
    "nixlNoTelemetryError",
};

PyObject *bind_raise(nixl_status_t st)
{
    const char *why = nixl_last_error();
    if (st >= 0 || st < -12) {
        PyErr_SetString(PyExc_RuntimeError, "BAD_STATUS");
        return NULL;
    }
    if (why && *why)
        PyErr_Format(bind_status_exc[-st], "%s: %s", nixl_status_str(st), why);
    else
        PyErr_SetString(bind_status_exc[-st], nixl_status_str(st));
    return NULL;
}

int bind_check(nixl_status_t st)
{
    if (st >= 0)
        return 0;
    bind_raise(st);
    return -1;
}

int bind_strlike(PyObject *o, const char **p, Py_ssize_t *len)
{
    if (PyBytes_Check(o)) {
        *p = PyBytes_AS_STRING(o);
        *len = PyBytes_GET_SIZE(o);
        return 0;
    }
    if (PyUnicode_Check(o)) {
        *p = PyUnicode_AsUTF8AndSize(o, len);
        return *p ? 0 : -1;
    }
    if (PyByteArray_Check(o)) {
        *p = PyByteArray_AS_STRING(o);
        *len = PyByteArray_GET_SIZE(o);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "expected str or bytes, got %.100s", Py_TYPE(o)->tp_name);
    return -1;
}

int bind_cstr(PyObject *o, const char **p)
{
    Py_ssize_t n;
    if (bind_strlike(o, p, &n) < 0)
        return -1;
    if ((Py_ssize_t)strlen(*p) != n) {
        PyErr_SetString(PyExc_ValueError, "embedded NUL character in a name");
        return -1;
    }
    return 0;
}

int bind_u64(PyObject *o, uint64_t *out)
{
    PyObject *v = PyLong_CheckExact(o) ? (Py_INCREF(o), o) : PyNumber_Index(o);
    if (!v)
        return -1;
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        /* Negative values come from int64 arrays of addresses: keep their two's complement. */
        PyErr_Clear();
        long long sx = PyLong_AsLongLong(v);
        x = (unsigned long long)sx;
        if (sx == -1 && PyErr_Occurred()) {
            Py_DECREF(v);
            return -1;
        }
    }
    Py_DECREF(v);
    *out = x;
    return 0;
}

nixl_reg_desc_t *bind_reg_descs(dlist_obj *l)
{
    nixl_reg_desc_t *r = PyMem_Malloc((l->count ? l->count : 1) * sizeof *r);
    if (!r) {
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t i = 0; i < l->count; i++) {
        r[i].addr = l->d[i].addr;
        r[i].len = l->d[i].len;
        r[i].dev_id = l->d[i].dev_id;
        r[i].meta = PyBytes_AS_STRING(l->extra[i]);
        r[i].meta_len = (size_t)PyBytes_GET_SIZE(l->extra[i]);
    }
    return r;
}

/* The enums are IntEnum classes built here (values exported at module level too), printed as
 * pybind11 prints them ("nixl_mem_t.DRAM_SEG"). */
static const char enum_src[] =
    "import enum as _e\n"
    "class _Enum(_e.IntEnum):\n"
    "    def __str__(self):\n"
    "        return type(self).__name__ + '.' + self.name\n"
    "    __format__ = object.__format__\n"
    "class nixl_mem_t(_Enum):\n"
    "    DRAM_SEG = 0\n    VRAM_SEG = 1\n    BLK_SEG = 2\n    OBJ_SEG = 3\n    FILE_SEG = 4\n"
    "class nixl_xfer_op_t(_Enum):\n    NIXL_READ = 0\n    NIXL_WRITE = 1\n"
    "class nixl_status_t(_Enum):\n"
    "    NIXL_IN_PROG = 1\n    NIXL_SUCCESS = 0\n    NIXL_ERR_NOT_POSTED = -1\n"
    "    NIXL_ERR_INVALID_PARAM = -2\n    NIXL_ERR_BACKEND = -3\n    NIXL_ERR_NOT_FOUND = -4\n"
    "    NIXL_ERR_MISMATCH = -5\n    NIXL_ERR_NOT_ALLOWED = -6\n    NIXL_ERR_REPOST_ACTIVE = -7\n"
    "    NIXL_ERR_UNKNOWN = -8\n    NIXL_ERR_NOT_SUPPORTED = -9\n"
    "class nixl_thread_sync_t(_Enum):\n"
    "    NIXL_THREAD_SYNC_NONE = 0\n    NIXL_THREAD_SYNC_STRICT = 1\n    NIXL_THREAD_SYNC_RW = 2\n"
    "    NIXL_THREAD_SYNC_DEFAULT = 0\n"
    "class nixl_cost_t(_Enum):\n    NIXL_COST_ANALYTICAL_BACKEND = 0\n"
    "for _c in (nixl_mem_t, nixl_xfer_op_t, nixl_status_t, nixl_thread_sync_t, nixl_cost_t):\n"
    "    _c.__module__ = 'nixl._bindings'\n"
    "    globals().update(_c.__members__)\n"
    "del _c, _e, _Enum\n";

static int add_enums(PyObject *m)
{
    PyObject *d = PyModule_GetDict(m), *r;
    if (PyDict_GetItemString(d, "__builtins__") == NULL &&
        PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins()) < 0)
        return -1;
    r = PyRun_String(enum_src, Py_file_input, d, d);
    if (!r)
        return -1;
    Py_DECREF(r);
    bind_mem_enum = PyDict_GetItemString(d, "nixl_mem_t");
    bind_status_enum = PyDict_GetItemString(d, "nixl_status_t");
    if (!bind_mem_enum || !bind_status_enum)
        return -1;
    Py_INCREF(bind_mem_enum);
    Py_INCREF(bind_status_enum);
    return 0;
}

static PyObject *m_status_str(PyObject *self, PyObject *arg)
{
    (void)self;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(nixl_status_str((nixl_status_t)v));
}

static PyMethodDef module_methods[] = {
    { "status_str", m_status_str, METH_O, "The reference name of a status value." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "nixl._bindings",
    "Binding of libnixl (the C implementation of NIXL) for the nixl package.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bindings(void);
PyMODINIT_FUNC PyInit__bindings(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    for (int i = 1; i <= 12; i++) {
        char q[64];
        snprintf(q, sizeof q, "nixl._bindings.%s", exc_names[i]);
        bind_status_exc[i] = PyErr_NewException(q, NULL, NULL);
        if (!bind_status_exc[i] || PyModule_AddObjectRef(m, exc_names[i], bind_status_exc[i]) < 0)
            goto fail;
    }
    if (add_enums(m) < 0 || bind_dlist_init_types(m) < 0 || bind_config_init_type(m) < 0 ||
        bind_agent_init_types(m) < 0)
        goto fail;
    if (PyModule_AddStringConstant(m, "NIXL_INIT_AGENT", NIXL_INIT_AGENT) < 0 ||
        PyModule_AddStringConstant(m, "NIXL_NULL_AGENT", NIXL_NULL_AGENT) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_COMM_PORT", NIXL_DEFAULT_COMM_PORT) < 0 ||
        PyModule_AddObjectRef(m, "HAVE_UCX_GPU_DEVICE_API", Py_False) < 0 ||
        PyModule_AddStringConstant(m, "LIBRARY_VERSION", nixl_version()) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
