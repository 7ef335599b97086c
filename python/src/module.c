/*
 * module.c - nixl._bindings: module init, enums, constants, the exception per status and the
 * small argument helpers shared by the other files.
 */
#include <string.h>

#include "bind.h"

PyObject *bind_status_exc[BIND_NUM_STATUS - 1];
PyObject *bind_mem_enum, *bind_status_enum;

/* NIXL_STATUS_MAP as data: exported as _status_table, the source of the exceptions and of the
 * nixl_status_t enum. */
static const struct {
    const char *name;
    int value;
    const char *message;
} status_table[] = {
#define STATUS_ROW_(name, value, message) {"NIXL_" #name, (value), (message)},
    NIXL_STATUS_MAP(STATUS_ROW_)
#undef STATUS_ROW_
};
#define STATUS_INDEX_CHECK_(name, value, message)                                               \
    _Static_assert(1 - (value) >= 0 && 1 - (value) < BIND_NUM_STATUS,                          \
                   "statuses must run from 1 down without gaps");
NIXL_STATUS_MAP(STATUS_INDEX_CHECK_)
#undef STATUS_INDEX_CHECK_

/*
 * The exception class of an error status, named as the reference's binding names it:
 * NIXL_ERR_NOT_POSTED -> nixlNotPostedError. The reference spells one of them differently
 * from its status (NIXL_ERR_CANCELED -> nixlCancelledError).
 */
static void exc_name(const char *status, char *out, size_t size)
{
    static const char prefix[] = "NIXL_ERR_";
    size_t n = (size_t)snprintf(out, size, "nixl");
    bool upper = true;
    for (const char *p = status + sizeof(prefix) - 1; *p && n + 1 < size; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        out[n++] = upper ? *p : (char)(*p - 'A' + 'a');
        upper = false;
    }
    out[n] = '\0';
    if (!strcmp(out, "nixlCanceled"))
        snprintf(out, size, "nixlCancelled");
    n = strlen(out);
    snprintf(out + n, size - n, "Error");
}

static int add_statuses(PyObject *m)
{
    size_t n = sizeof(status_table) / sizeof(status_table[0]);
    PyObject *table = PyTuple_New((Py_ssize_t)n);
    if (!table)
        return -1;
    for (size_t i = 0; i < n; i++) {
        PyObject *row = Py_BuildValue("(sis)", status_table[i].name, status_table[i].value,
                                      status_table[i].message);
        if (!row) {
            Py_DECREF(table);
            return -1;
        }
        PyTuple_SET_ITEM(table, (Py_ssize_t)i, row);
    }
    if (PyModule_AddObject(m, "_status_table", table) < 0) {
        Py_DECREF(table);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int v = status_table[i].value;
        if (v >= 0)
            continue;
        char name[64], qual[96];
        exc_name(status_table[i].name, name, sizeof(name));
        snprintf(qual, sizeof(qual), "nixl._bindings.%s", name);
        bind_status_exc[-v] = PyErr_NewException(qual, NULL, NULL);
        if (!bind_status_exc[-v] || PyModule_AddObjectRef(m, name, bind_status_exc[-v]) < 0)
            return -1;
    }
    return 0;
}

PyObject *bind_raise(nixl_status_t st)
{
    const char *why = nixl_last_error();
    if (st >= 0 || -st >= BIND_NUM_STATUS - 1) {
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
    /* From _status_table; the reference's enum ends at NIXL_ERR_NOT_SUPPORTED: the statuses
     * after it surface only as exceptions. */
    "_rows = []\n"
    "for _n, _v, _m in _status_table:\n"
    "    _rows.append((_n, _v))\n"
    "    if _n == 'NIXL_ERR_NOT_SUPPORTED':\n"
    "        break\n"
    "nixl_status_t = _Enum('nixl_status_t', _rows, module='nixl._bindings')\n"
    "del _rows, _n, _v, _m\n"
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
    if (add_statuses(m) < 0 || add_enums(m) < 0 || bind_dlist_init_types(m) < 0 ||
        bind_config_init_type(m) < 0 || bind_agent_init_types(m) < 0)
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
