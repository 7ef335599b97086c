/*
 * agent.c - nixlAgent: lifecycle, plugins and backends, registration and metadata. Every call
 * that can block (locks, plugin loading, I/O) runs with the GIL released.
 */
#include <string.h>

#include "agent.h"

/* The nixl_status_t members by 1 - status; NULL for statuses that are not members. */
static PyObject *status_members[BIND_NUM_STATUS];

void bind_opt_init(bind_opt_t *o)
{
    nixl_opt_args_init(&o->opt);
}

int bind_opt_backends(bind_opt_t *o, PyObject *list)
{
    if (!list || list == Py_None)
        return 0;
    if (PyLong_Check(list)) { /* the reference wrapper passes one int in send_notif(backend=) */
        o->hints[0] = bind_handle(list);
        if (!o->hints[0])
            return -1;
        o->opt.backends = o->hints;
        o->opt.num_backends = 1;
        return 0;
    }
    PyObject *seq = PySequence_Fast(list, "backends must be a list of backend handles");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_HINTS) {
        PyErr_SetString(PyExc_ValueError, "too many backends");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        o->hints[i] = bind_handle(PySequence_Fast_GET_ITEM(seq, i));
        if (!o->hints[i])
            goto fail;
    }
    if (n > 0) {
        o->opt.backends = o->hints;
        o->opt.num_backends = (size_t)n;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

int bind_opt_notif(bind_opt_t *o, PyObject *msg)
{
    const char *p;
    Py_ssize_t n;
    if (!msg || msg == Py_None)
        return 0;
    if (bind_strlike(msg, &p, &n) < 0)
        return -1;
    if (n > 0) {
        o->opt.has_notif = true;
        o->opt.notif = p;
        o->opt.notif_len = (size_t)n;
    }
    return 0;
}

void *bind_handle(PyObject *o)
{
    void *p;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "expected a handle (int), got %.100s", Py_TYPE(o)->tp_name);
        return NULL;
    }
    p = PyLong_AsVoidPtr(o);
    if (!p && !PyErr_Occurred())
        bind_raise(NIXL_ERR_INVALID_PARAM);
    return p;
}

PyObject *bind_status_obj(nixl_status_t st)
{
    if (st > 1 || 1 - st >= BIND_NUM_STATUS || !status_members[1 - st])
        return PyLong_FromLong(st);
    Py_INCREF(status_members[1 - st]);
    return status_members[1 - st];
}

PyObject *bind_params_pair(nixl_param_list_t *params, nixl_mem_mask_t mems)
{
    PyObject *d = PyDict_New(), *l = PyList_New(0), *r = NULL;
    if (!d || !l)
        goto done;
    for (size_t i = 0; params && i < params->count; i++) {
        PyObject *v = PyUnicode_FromString(params->items[i].value);
        if (!v || PyDict_SetItemString(d, params->items[i].key, v) < 0) {
            Py_XDECREF(v);
            goto done;
        }
        Py_DECREF(v);
    }
    for (int t = 0; t < NIXL_MEM_COUNT; t++) {
        if (!(mems & NIXL_MEM_BIT(t)))
            continue;
        PyObject *s = PyUnicode_FromString(nixl_mem_str((nixl_mem_t)t));
        if (!s || PyList_Append(l, s) < 0) {
            Py_XDECREF(s);
            goto done;
        }
        Py_DECREF(s);
    }
    r = PyTuple_Pack(2, d, l);
done:
    Py_XDECREF(d);
    Py_XDECREF(l);
    return r;
}

static int ag_init(PyObject *self, PyObject *args, PyObject *kw)
{
    agent_obj *ag = (agent_obj *)self;
    static char *kwl[] = { "name", "cfg", NULL };
    PyObject *name, *cfgo = NULL;
    const char *n;
    nixl_agent_config_t cfg;
    nixl_status_t st;
    if (ag->a) {
        PyErr_SetString(PyExc_RuntimeError, "nixlAgent already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:nixlAgent", kwl, &name, &cfgo) ||
        bind_cstr(name, &n) < 0 || bind_config_get(cfgo, &cfg) < 0)
        return -1;
    if (!*n) {
        PyErr_SetString(PyExc_ValueError, "agent name must not be empty");
        return -1;
    }
    NOGIL_CALL(st, nixl_agent_create(n, &cfg, &ag->a));
    return bind_check(st);
}

static void ag_dealloc(PyObject *self)
{
    agent_obj *ag = (agent_obj *)self;
    if (ag->a) {
        Py_BEGIN_ALLOW_THREADS
        nixl_agent_destroy(ag->a);
        Py_END_ALLOW_THREADS
        ag->a = NULL;
    }
    Py_TYPE(self)->tp_free(self);
}

static PyObject *ag_getAvailPlugins(PyObject *self, PyObject *unused)
{
    AGENT(self, NULL);
    char **names = NULL;
    size_t n = 0;
    nixl_status_t st;
    (void)unused;
    NOGIL_CALL(st, nixl_agent_get_avail_plugins(A, &names, &n));
    if (st < 0)
        return bind_raise(st);
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, s);
    }
    nixl_free(names);
    return l;
}

/* getPluginParams (by plugin name) and getBackendParams (by handle): (dict, [mem types]). */
static PyObject *params_common(PyObject *self, PyObject *arg, int backend)
{
    AGENT(self, NULL);
    const char *type = NULL;
    nixl_backend_t *b = NULL;
    nixl_mem_mask_t mems = 0;
    nixl_param_list_t *params = NULL;
    nixl_status_t st;
    if (backend ? !(b = bind_handle(arg)) : bind_cstr(arg, &type) < 0)
        return NULL;
    NOGIL_CALL(st, backend ? nixl_agent_get_backend_params(A, b, &mems, &params)
                   : nixl_agent_get_plugin_params(A, type, &mems, &params));
    if (st < 0)
        return bind_raise(st);
    PyObject *r = bind_params_pair(params, mems);
    nixl_free(params);
    return r;
}

static PyObject *ag_getPluginParams(PyObject *self, PyObject *arg)
{
    return params_common(self, arg, 0);
}

static PyObject *ag_getBackendParams(PyObject *self, PyObject *arg)
{
    return params_common(self, arg, 1);
}

static PyObject *ag_createBackend(PyObject *self, PyObject *args, PyObject *kw)
{
    AGENT(self, NULL);
    static char *kwl[] = { "type", "params", NULL };
    PyObject *typeo, *params = NULL, *items = NULL, *r = NULL;
    const char *type;
    nixl_param_t *pv = NULL;
    Py_ssize_t n = 0;
    nixl_backend_t *b = NULL;
    nixl_status_t st;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O!:createBackend", kwl, &typeo, &PyDict_Type,
                                     &params) || bind_cstr(typeo, &type) < 0)
        return NULL;
    if (params) {
        items = PyDict_Items(params);
        if (!items)
            return NULL;
        n = PyList_GET_SIZE(items);
        pv = PyMem_Calloc((size_t)n + 1, sizeof *pv);
        if (!pv) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *kv = PyList_GET_ITEM(items, i);
            if (bind_cstr(PyTuple_GET_ITEM(kv, 0), &pv[i].key) < 0 ||
                bind_cstr(PyTuple_GET_ITEM(kv, 1), &pv[i].value) < 0)
                goto done;
        }
    }
    NOGIL_CALL(st, nixl_agent_create_backend(A, type, pv, (size_t)n, &b));
    if (st < 0)
        bind_raise(st);
    else
        r = PyLong_FromVoidPtr(b);
done:
    PyMem_Free(pv);
    Py_XDECREF(items);
    return r;
}

static PyObject *query_result(nixl_query_resp_t *resp, size_t count)
{
    PyObject *r = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; r && i < count; i++) {
        PyObject *d = Py_None;
        if (resp[i].has_value) {
            PyObject *pair = bind_params_pair(&resp[i].params, 0);
            if (!pair) {
                Py_CLEAR(r);
                break;
            }
            d = PyTuple_GET_ITEM(pair, 0);
            Py_INCREF(d);
            Py_DECREF(pair);
        } else {
            Py_INCREF(d);
        }
        PyList_SET_ITEM(r, (Py_ssize_t)i, d);
    }
    return r;
}

/* registerMem (0), deregisterMem (1) and queryMem (2) share everything but the call. */
static PyObject *reg_common(PyObject *self, PyObject *args, PyObject *kw, int which)
{
    AGENT(self, NULL);
    static char *kw_reg[] = { "descs", "backends", NULL };
    static char *kw_query[] = { "descs", "backend", NULL };
    PyObject *descs, *backends = NULL, *r = NULL;
    bind_opt_t o;
    nixl_query_resp_t *resp = NULL;
    nixl_status_t st;
    bind_opt_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kw, which == 2 ? "O!O" : "O!|O",
                                     which == 2 ? kw_query : kw_reg, bind_dlist_types[DL_REG],
                                     &descs, &backends) || bind_opt_backends(&o, backends) < 0)
        return NULL;
    dlist_obj *l = (dlist_obj *)descs;
    nixl_reg_desc_t *rd = bind_reg_descs(l);
    if (!rd)
        return NULL;
    dl_pin(l);
    NOGIL_CALL(st, which == 0 ? nixl_agent_register_mem(A, l->type, rd, l->count, &o.opt)
                   : which == 1 ? nixl_agent_deregister_mem(A, l->type, rd, l->count, &o.opt)
                   : nixl_agent_query_mem(A, l->type, rd, l->count, &o.opt, &resp));
    dl_unpin(l);
    PyMem_Free(rd);
    if (st < 0)
        return bind_raise(st);
    if (which != 2)
        return bind_status_obj(st);
    r = query_result(resp, l->count);
    nixl_free(resp);
    return r;
}

KW_VARIANT(ag_registerMem, reg_common, 0)
KW_VARIANT(ag_deregisterMem, reg_common, 1)
KW_VARIANT(ag_queryMem, reg_common, 2)

static PyObject *ag_makeConnection(PyObject *self, PyObject *args, PyObject *kw)
{
    AGENT(self, NULL);
    static char *kwl[] = { "remote", "backends", NULL };
    PyObject *name, *backends = NULL;
    const char *n;
    bind_opt_t o;
    nixl_status_t st;
    bind_opt_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O", kwl, &name, &backends) ||
        bind_cstr(name, &n) < 0 || bind_opt_backends(&o, backends) < 0)
        return NULL;
    NOGIL_CALL(st, nixl_agent_make_connection(A, n, &o.opt));
    if (st < 0)
        return bind_raise(st);
    return bind_status_obj(st);
}

static PyObject *ag_memview(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    (void)args;
    (void)kw;
    PyErr_SetString(bind_status_exc[-NIXL_ERR_NOT_SUPPORTED],
                    "NIXL_ERR_NOT_SUPPORTED: memory views are not implemented");
    return NULL;
}

static PyMethodDef ag_methods[] = {
    { "getAvailPlugins", ag_getAvailPlugins, METH_NOARGS, NULL },
    { "getPluginParams", ag_getPluginParams, METH_O, NULL },
    { "getBackendParams", ag_getBackendParams, METH_O, NULL },
    { "createBackend", KW ag_createBackend, METH_VARARGS | METH_KEYWORDS, NULL },
    { "registerMem", KW ag_registerMem, METH_VARARGS | METH_KEYWORDS, NULL },
    { "deregisterMem", KW ag_deregisterMem, METH_VARARGS | METH_KEYWORDS, NULL },
    { "queryMem", KW ag_queryMem, METH_VARARGS | METH_KEYWORDS, NULL },
    { "makeConnection", KW ag_makeConnection, METH_VARARGS | METH_KEYWORDS, NULL },
    { "prepMemView", KW ag_memview, METH_VARARGS | METH_KEYWORDS, NULL },
    { "releaseMemView", KW ag_memview, METH_VARARGS | METH_KEYWORDS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyType_Slot ag_slots[] = {
    { Py_tp_new, PyType_GenericNew },
    { Py_tp_init, ag_init },
    { Py_tp_dealloc, ag_dealloc },
    { Py_tp_methods, ag_methods },
    { 0, NULL },
};

int bind_agent_init_types(PyObject *m)
{
    static PyType_Spec spec = { "nixl._bindings.nixlAgent", sizeof(agent_obj), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, ag_slots };
    PyObject *t = PyType_FromSpec(&spec);
    if (!t)
        return -1;
    /* The other methods live in agent_md.c, agent_xfer.c and agent_notif.c. */
    PyMethodDef *more[] = { bind_agent_md_methods, bind_agent_xfer_methods,
                            bind_agent_notif_methods };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        for (PyMethodDef *d = more[i]; d->ml_name; d++) {
            PyObject *f = PyDescr_NewMethod((PyTypeObject *)t, d);
            if (!f || PyObject_SetAttrString(t, d->ml_name, f) < 0) {
                Py_XDECREF(f);
                Py_DECREF(t);
                return -1;
            }
            Py_DECREF(f);
        }
    }
    for (int i = 0; i < BIND_NUM_STATUS; i++) {
        status_members[i] = PyObject_CallFunction(bind_status_enum, "i", 1 - i);
        if (!status_members[i]) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError))
                return -1;
            PyErr_Clear(); /* not a member of the reference's enum */
        }
    }
    if (PyModule_AddObjectRef(m, "nixlAgent", t) < 0 || bind_agent_xfer_init(m) < 0) {
        Py_DECREF(t);
        return -1;
    }
    Py_DECREF(t);
    return 0;
}
