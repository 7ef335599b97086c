/*
 * dlist.c - storage and construction of nixlXferDList, nixlRegDList and nixlRemoteDList:
 * descriptors are held as a plain nixl_desc_t array, so that handing a list to libnixl costs no
 * conversion, and an N x 3 array becomes one with one memcpy.
 */
#include <string.h>

#include "bind.h"
#include "array.h"
#include "dlist_priv.h"

PyTypeObject *bind_dlist_types[3];
const char *const dl_kind_names[3] = { "nixlXferDList", "nixlRegDList", "nixlRemoteDList" };

int bind_is_dlist(PyObject *o, int kind)
{
    return Py_IS_TYPE(o, bind_dlist_types[kind]) ||
           PyObject_TypeCheck(o, bind_dlist_types[kind]);
}

/* -1 with BufferError while a call without the GIL reads the list. */
int dl_writable(dlist_obj *l)
{
    if (l->pins == 0)
        return 0;
    PyErr_SetString(PyExc_BufferError, "descriptor list is in use by a running call");
    return -1;
}

int dl_reserve(dlist_obj *l, size_t n)
{
    if (dl_writable(l) < 0)
        return -1;
    if (n <= l->cap)
        return 0;
    size_t nc = nixl_array_grow_cap(l->cap, n, sizeof *l->d);
    nixl_desc_t *d = nixl_array_realloc(l->d, nc, sizeof *d);
    if (!d)
        goto oom;
    l->d = d;
    if (l->kind != DL_XFER) {
        PyObject **e = nixl_array_realloc(l->extra, nc, sizeof *e);
        if (!e)
            goto oom;
        l->extra = e;
    }
    l->cap = nc;
    return 0;
oom:
    PyErr_NoMemory();
    return -1;
}

/* The per-descriptor extra of reg (metaInfo bytes) and remote (agent name) lists. */
PyObject *dl_make_extra(dlist_obj *l, const char *x, Py_ssize_t xl)
{
    if (l->kind == DL_REG)
        return PyBytes_FromStringAndSize(x, xl);
    return PyUnicode_DecodeUTF8(x, xl, "surrogateescape");
}

/* Append one descriptor; for reg lists `x`/`xl` is the metaInfo, for remote lists the agent. */
int dl_add_raw(dlist_obj *l, const nixl_desc_t *d, const char *x, size_t xl)
{
    if (dl_reserve(l, l->count + 1) < 0)
        return -1;
    if (l->kind != DL_XFER) {
        PyObject *e = dl_make_extra(l, x, (Py_ssize_t)xl);
        if (!e)
            return -1;
        l->extra[l->count] = e;
    }
    l->d[l->count++] = *d;
    return 0;
}

/* Parse a descriptor tuple of the list's arity into *d, *x, *xl. */
int dl_parse_tuple(dlist_obj *l, PyObject *t, nixl_desc_t *d, const char **x, Py_ssize_t *xl)
{
    Py_ssize_t want = l->kind == DL_XFER ? 3 : 4;
    uint64_t v[3];
    if (!PyTuple_Check(t)) {
        PyErr_Format(PyExc_TypeError, "%s: descriptors must be tuples, got %.100s",
                     dl_kind_names[l->kind], Py_TYPE(t)->tp_name);
        return -1;
    }
    if (PyTuple_GET_SIZE(t) != want) {
        PyErr_Format(PyExc_ValueError, "%s: descriptor tuples must have %zd elements, got %zd",
                     dl_kind_names[l->kind], want, PyTuple_GET_SIZE(t));
        return -1;
    }
    for (int i = 0; i < 3; i++)
        if (bind_u64(PyTuple_GET_ITEM(t, i), &v[i]) < 0)
            return -1;
    d->addr = (uintptr_t)v[0];
    d->len = (size_t)v[1];
    d->dev_id = v[2];
    *x = NULL;
    *xl = 0;
    if (want == 4 && bind_strlike(PyTuple_GET_ITEM(t, 3), x, xl) < 0)
        return -1;
    return 0;
}

int dl_add_tuple(dlist_obj *l, PyObject *t)
{
    nixl_desc_t d;
    const char *x;
    Py_ssize_t xl;
    if (dl_parse_tuple(l, t, &d, &x, &xl) < 0)
        return -1;
    return dl_add_raw(l, &d, x, (size_t)xl);
}

/* An N x 3 array of 8-byte integers: one memcpy, no per-element work. */
static int add_buffer(dlist_obj *l, PyObject *o)
{
    Py_buffer v;
    int rc = -1;
    if (PyObject_GetBuffer(o, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *f = v.format ? v.format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (v.ndim != 2 || v.shape[1] != 3 || v.itemsize != 8 || strlen(f) != 1 ||
        !strchr("qQlL", *f)) {
        PyErr_Format(PyExc_TypeError, "%s: expected an N x 3 array of int64 or uint64 (C order)",
                     dl_kind_names[l->kind]);
        goto done;
    }
    size_t n = (size_t)v.shape[0];
    if (dl_reserve(l, l->count + n) < 0)
        goto done;
    if (n)
        memcpy(l->d + l->count, v.buf, n * sizeof(nixl_desc_t));
    if (l->kind != DL_XFER) {
        for (size_t i = 0; i < n; i++) {
            l->extra[l->count + i] = l->kind == DL_REG ? PyBytes_FromStringAndSize("", 0)
                                                       : PyUnicode_FromString("");
            if (!l->extra[l->count + i]) {
                l->count += i;
                goto done;
            }
        }
    }
    l->count += n;
    rc = 0;
done:
    PyBuffer_Release(&v);
    return rc;
}

int dl_init(PyObject *self, PyObject *args, PyObject *kw)
{
    dlist_obj *l = (dlist_obj *)self;
    static char *kwl[] = { "type", "descs", "sorted", NULL };
    PyObject *type = NULL, *descs = NULL, *sorted = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOO:DList", kwl, &type, &descs, &sorted))
        return -1;
    if (!type)
        return 0; /* the pickle path: state comes through __setstate__ */
    long t = PyLong_AsLong(type);
    if (t == -1 && PyErr_Occurred())
        return -1;
    if (t < 0 || t >= NIXL_MEM_COUNT) {
        PyErr_SetString(PyExc_ValueError, "invalid memory type");
        return -1;
    }
    l->type = (nixl_mem_t)t;
    if (!descs)
        return 0;
    if (PyLong_Check(descs)) { /* init_size: zero-filled (the reference leaves garbage) */
        Py_ssize_t n = PyLong_AsSsize_t(descs);
        nixl_desc_t z = { 0, 0, 0 };
        if (n < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "init_size must be >= 0");
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            if (dl_add_raw(l, &z, "", 0) < 0)
                return -1;
        return 0;
    }
    if (PyList_Check(descs) || PyTuple_Check(descs)) {
        PyObject *seq = descs;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (dl_reserve(l, (size_t)n) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (dl_add_tuple(l, PySequence_Fast_GET_ITEM(seq, i)) < 0)
                return -1;
        return 0;
    }
    if (PyObject_CheckBuffer(descs) && l->kind != DL_REMOTE)
        return add_buffer(l, descs);
    PyErr_Format(PyExc_TypeError, "%s: descriptors must be a list of tuples or an N x 3 array",
                 dl_kind_names[l->kind]);
    return -1;
}

void dl_clear_items(dlist_obj *l)
{
    if (l->extra)
        for (size_t i = 0; i < l->count; i++)
            Py_CLEAR(l->extra[i]);
    l->count = 0;
}

void dl_dealloc(PyObject *self)
{
    dlist_obj *l = (dlist_obj *)self;
    dl_clear_items(l);
    free(l->d); /* nixl_array_realloc'ed */
    free(l->extra);
    Py_TYPE(self)->tp_free(self);
}

PyObject *dl_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    dlist_obj *l = (dlist_obj *)tp->tp_alloc(tp, 0);
    if (!l)
        return NULL;
    for (int k = 0; k < 3; k++)
        if (PyType_IsSubtype(tp, bind_dlist_types[k]))
            l->kind = k;
    l->type = NIXL_DRAM_SEG;
    return (PyObject *)l;
}
