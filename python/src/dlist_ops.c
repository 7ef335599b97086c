/*
 * dlist_ops.c - the Python side of the descriptor-list classes: sequence protocol (len, bounds-
 * checked indexing, iteration), the reference methods, comparison, repr and pickling, and the
 * type objects.
 */
#include <string.h>

#include "dlist_priv.h"

static Py_ssize_t dl_len(PyObject *self)
{
    return (Py_ssize_t)((dlist_obj *)self)->count;
}

static PyObject *item_tuple(dlist_obj *l, size_t i)
{
    nixl_desc_t *d = &l->d[i];
    if (l->kind == DL_XFER)
        return Py_BuildValue("(KKK)", (unsigned long long)d->addr, (unsigned long long)d->len,
                             (unsigned long long)d->dev_id);
    return Py_BuildValue("(KKKO)", (unsigned long long)d->addr, (unsigned long long)d->len,
                         (unsigned long long)d->dev_id, l->extra[i]);
}

static int norm_index(dlist_obj *l, Py_ssize_t *i)
{
    if (*i < 0)
        *i += (Py_ssize_t)l->count;
    if (*i < 0 || (size_t)*i >= l->count) {
        PyErr_SetString(PyExc_IndexError, "descriptor index out of range");
        return -1;
    }
    return 0;
}

static PyObject *dl_item(PyObject *self, Py_ssize_t i)
{
    dlist_obj *l = (dlist_obj *)self;
    if (i < 0 || (size_t)i >= l->count) { /* negative indices were adjusted by the sq slot */
        PyErr_SetString(PyExc_IndexError, "descriptor index out of range");
        return NULL;
    }
    return item_tuple(l, (size_t)i);
}

static int dl_ass_item(PyObject *self, Py_ssize_t i, PyObject *v)
{
    dlist_obj *l = (dlist_obj *)self;
    nixl_desc_t d;
    const char *x;
    Py_ssize_t xl;
    if (i < 0 || (size_t)i >= l->count) {
        PyErr_SetString(PyExc_IndexError, "descriptor index out of range");
        return -1;
    }
    if (!v) {
        PyErr_SetString(PyExc_TypeError, "use remDesc() to remove a descriptor");
        return -1;
    }
    if (dl_writable(l) < 0)
        return -1;
    if (dl_parse_tuple(l, v, &d, &x, &xl) < 0)
        return -1;
    if (l->kind != DL_XFER) {
        PyObject *e = dl_make_extra(l, x, xl);
        if (!e)
            return -1;
        Py_SETREF(l->extra[i], e);
    }
    l->d[i] = d;
    return 0;
}

static PyObject *dl_getType(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyObject_CallFunction(bind_mem_enum, "i", (int)((dlist_obj *)self)->type);
}

static PyObject *dl_descCount(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(((dlist_obj *)self)->count);
}

static PyObject *dl_isEmpty(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(((dlist_obj *)self)->count == 0);
}

static PyObject *dl_addDesc(PyObject *self, PyObject *t)
{
    if (dl_add_tuple((dlist_obj *)self, t) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *dl_remDesc(PyObject *self, PyObject *arg)
{
    dlist_obj *l = (dlist_obj *)self;
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || norm_index(l, &i) < 0 || dl_writable(l) < 0)
        return NULL;
    if (l->extra)
        Py_DECREF(l->extra[i]);
    size_t tail = l->count - (size_t)i - 1;
    memmove(l->d + i, l->d + i + 1, tail * sizeof *l->d);
    if (l->extra)
        memmove(l->extra + i, l->extra + i + 1, tail * sizeof *l->extra);
    l->count--;
    Py_RETURN_NONE;
}

static PyObject *dl_clear(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (dl_writable((dlist_obj *)self) < 0)
        return NULL;
    dl_clear_items((dlist_obj *)self);
    Py_RETURN_NONE;
}

static PyObject *dl_index(PyObject *self, PyObject *t)
{
    dlist_obj *l = (dlist_obj *)self;
    nixl_desc_t d;
    uint64_t v[3];
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 3) {
        PyErr_SetString(PyExc_TypeError, "index() takes a descriptor tuple");
        return NULL;
    }
    for (int i = 0; i < 3; i++)
        if (bind_u64(PyTuple_GET_ITEM(t, i), &v[i]) < 0)
            return NULL;
    d.addr = (uintptr_t)v[0];
    d.len = (size_t)v[1];
    d.dev_id = v[2];
    for (size_t i = 0; i < l->count; i++)
        if (l->d[i].addr == d.addr && l->d[i].len == d.len && l->d[i].dev_id == d.dev_id)
            return PyLong_FromSize_t(i);
    return bind_raise(NIXL_ERR_NOT_FOUND);
}

static PyObject *dl_trim(PyObject *self, PyObject *unused)
{
    dlist_obj *l = (dlist_obj *)self, *x;
    (void)unused;
    x = (dlist_obj *)dl_new(bind_dlist_types[DL_XFER], NULL, NULL);
    if (!x)
        return NULL;
    x->type = l->type;
    if (dl_reserve(x, l->count) < 0) {
        Py_DECREF(x);
        return NULL;
    }
    if (l->count)
        memcpy(x->d, l->d, l->count * sizeof *l->d);
    x->count = l->count;
    return (PyObject *)x;
}

static PyObject *dl_repr(PyObject *self)
{
    dlist_obj *l = (dlist_obj *)self;
    PyObject *items = PyList_New((Py_ssize_t)l->count), *r;
    if (!items)
        return NULL;
    for (size_t i = 0; i < l->count; i++) {
        PyObject *t = item_tuple(l, i);
        if (!t) {
            Py_DECREF(items);
            return NULL;
        }
        PyList_SET_ITEM(items, (Py_ssize_t)i, t);
    }
    r = PyUnicode_FromFormat("%s(%s, %R)", dl_kind_names[l->kind], nixl_mem_str(l->type), items);
    Py_DECREF(items);
    return r;
}

static PyObject *dl_print(PyObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *r = dl_repr(self);
    if (!r)
        return NULL;
    PySys_FormatStdout("%U\n", r);
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *dl_richcmp(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b))
        Py_RETURN_NOTIMPLEMENTED;
    dlist_obj *x = (dlist_obj *)a, *y = (dlist_obj *)b;
    int eq = x->type == y->type && x->count == y->count &&
             (x->count == 0 || memcmp(x->d, y->d, x->count * sizeof *x->d) == 0);
    for (size_t i = 0; eq && x->extra && i < x->count; i++) {
        int r = PyObject_RichCompareBool(x->extra[i], y->extra[i], Py_EQ);
        if (r < 0)
            return NULL;
        eq = r;
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyObject *dl_getstate(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (((dlist_obj *)self)->kind == DL_REMOTE) {
        PyErr_SetString(PyExc_TypeError, "nixlRemoteDList cannot be pickled");
        return NULL;
    }
    dlist_obj *l = (dlist_obj *)self;
    void *blob = NULL;
    size_t len = 0;
    nixl_status_t st;
    if (l->kind == DL_XFER) {
        st = nixl_xfer_dlist_serialize(l->type, l->d, l->count, &blob, &len);
    } else {
        nixl_reg_desc_t *rd = bind_reg_descs(l);
        if (!rd)
            return NULL;
        st = nixl_reg_dlist_serialize(l->type, rd, l->count, &blob, &len);
        PyMem_Free(rd);
    }
    if (st != NIXL_SUCCESS)
        return bind_raise(st);
    PyObject *res = PyBytes_FromStringAndSize(blob, (Py_ssize_t)len);
    nixl_free(blob);
    return res;
}

/* Refill `l` from the serialized bytes, through the library's codec (the one that is fuzzed). */
static int dl_load(dlist_obj *l, const char *p, size_t n)
{
    nixl_mem_t type;
    size_t count = 0;
    nixl_desc_t *d = NULL;
    nixl_reg_desc_t *rd = NULL;
    nixl_status_t st = l->kind == DL_XFER ? nixl_xfer_dlist_deserialize(p, n, &type, &d, &count)
                                          : nixl_reg_dlist_deserialize(p, n, &type, &rd, &count);
    if (st != NIXL_SUCCESS) {
        bind_raise(st);
        return -1;
    }
    int rc = dl_reserve(l, count);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        if (d) {
            rc = dl_add_raw(l, &d[i], NULL, 0);
        } else {
            nixl_desc_t one = {rd[i].addr, rd[i].len, rd[i].dev_id};
            rc = dl_add_raw(l, &one, rd[i].meta, rd[i].meta_len);
        }
    }
    if (rc == 0)
        l->type = type;
    nixl_free(d);
    nixl_free(rd);
    return rc;
}

static PyObject *dl_setstate(PyObject *self, PyObject *state)
{
    dlist_obj *l = (dlist_obj *)self;
    const char *p;
    Py_ssize_t n;
    if (l->kind == DL_REMOTE || !PyBytes_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "__setstate__ takes the serialized list (bytes)");
        return NULL;
    }
    if (bind_strlike(state, &p, &n) < 0 || dl_writable(l) < 0)
        return NULL;
    dl_clear_items(l);
    if (dl_load(l, p, (size_t)n) < 0) {
        dl_clear_items(l);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef dl_methods[] = {
    { "getType", dl_getType, METH_NOARGS, "The memory type (nixl_mem_t)." },
    { "descCount", dl_descCount, METH_NOARGS, "Number of descriptors." },
    { "isEmpty", dl_isEmpty, METH_NOARGS, "Whether the list is empty." },
    { "addDesc", dl_addDesc, METH_O, "Append a descriptor tuple." },
    { "append", dl_addDesc, METH_O, "Append a descriptor tuple." },
    { "index", dl_index, METH_O, "Index of the first descriptor equal to the tuple." },
    { "remDesc", dl_remDesc, METH_O, "Remove the descriptor at an index." },
    { "clear", dl_clear, METH_NOARGS, "Remove every descriptor." },
    { "print", dl_print, METH_NOARGS, "Print the list." },
    { "trim", dl_trim, METH_NOARGS, "A transfer list without the metaInfo (reg lists)." },
    { "__getstate__", dl_getstate, METH_NOARGS, "Serialized list (reference format)." },
    { "__setstate__", dl_setstate, METH_O, "Load a serialized list." },
    { NULL, NULL, 0, NULL },
};

static PyType_Slot dl_slots[] = {
    { Py_tp_new, dl_new },
    { Py_tp_init, dl_init },
    { Py_tp_dealloc, dl_dealloc },
    { Py_tp_methods, dl_methods },
    { Py_tp_repr, dl_repr },
    { Py_tp_richcompare, dl_richcmp },
    { Py_sq_length, dl_len },
    { Py_sq_item, dl_item },
    { Py_sq_ass_item, dl_ass_item },
    { Py_tp_hash, PyObject_HashNotImplemented },
    { 0, NULL },
};

int bind_dlist_init_types(PyObject *m)
{
    static const char *const qual[3] = { "nixl._bindings.nixlXferDList",
                                         "nixl._bindings.nixlRegDList",
                                         "nixl._bindings.nixlRemoteDList" };
    for (int k = 0; k < 3; k++) {
        PyType_Spec spec = { qual[k], sizeof(dlist_obj), 0, Py_TPFLAGS_DEFAULT, dl_slots };
        PyObject *t = PyType_FromSpec(&spec);
        if (!t)
            return -1;
        bind_dlist_types[k] = (PyTypeObject *)t;
        if (PyModule_AddObjectRef(m, dl_kind_names[k], t) < 0)
            return -1;
    }
    /* trim() is for registration lists and index() not for remote lists, as in the reference. */
    if (PyObject_DelAttrString((PyObject *)bind_dlist_types[DL_XFER], "trim") < 0 ||
        PyObject_DelAttrString((PyObject *)bind_dlist_types[DL_REMOTE], "trim") < 0 ||
        PyObject_DelAttrString((PyObject *)bind_dlist_types[DL_REMOTE], "index") < 0)
        return -1;
    return 0;
}
