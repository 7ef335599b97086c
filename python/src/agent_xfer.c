/*
 * agent_xfer.c - nixlAgent transfer methods. postXferReq and getXferStatus are
 * the hot path (a Python loop of transfer() + check_xfer_state()): they use the vectorcall
 * convention and cached status objects so that the binding adds little to the C call.
 */
#include <string.h>

#include "agent.h"

static PyTypeObject *telem_type;

static PyStructSequence_Field telem_fields[] = {
    { "startTime", "monotonic time of the last post, microseconds" },
    { "postDuration", "time spent in the post call, microseconds" },
    { "xferDuration", "post to observed completion, microseconds" },
    { "totalBytes", "bytes moved" },
    { "descCount", "descriptors after merging" },
    { NULL, NULL },
};

static PyStructSequence_Desc telem_desc = {
    "nixl._bindings.nixlXferTelemetry", "Telemetry of one transfer request.", telem_fields, 5,
};

static PyObject *prep(PyObject *self, PyObject *args, PyObject *kw)
{
    AGENT(self, NULL);
    static char *kw2[] = { "agent_name", "descs", "backend", NULL };
    static char *kw1[] = { "descs", "backend", NULL };
    PyObject *nameo = NULL, *descs, *backends = NULL;
    const char *n = NIXL_INIT_AGENT;
    bind_opt_t o;
    nixl_dlist_t *out = NULL;
    nixl_status_t st;
    bind_opt_init(&o);
    /* Two overloads: (agent_name, descs, backends=[]) and (descs, backends=[]). */
    Py_ssize_t na = PyTuple_GET_SIZE(args);
    int first_is_list = na > 0 && bind_is_dlist(PyTuple_GET_ITEM(args, 0), DL_XFER);
    if (first_is_list || (na == 0 && kw && !PyDict_GetItemString(kw, "agent_name"))) {
        if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|O:prepXferDlist", kw1,
                                         bind_dlist_types[DL_XFER], &descs, &backends))
            return NULL;
    } else if (!PyArg_ParseTupleAndKeywords(args, kw, "OO!|O:prepXferDlist", kw2, &nameo,
                                            bind_dlist_types[DL_XFER], &descs, &backends)) {
        return NULL;
    }
    if ((nameo && bind_cstr(nameo, &n) < 0) || bind_opt_backends(&o, backends) < 0)
        return NULL;
    if (strcmp(n, "NIXL_INIT_AGENT") == 0)
        n = NIXL_INIT_AGENT;
    dlist_obj *l = (dlist_obj *)descs;
    dl_pin(l);
    NOGIL_CALL(st, nixl_agent_prep_xfer_dlist(A, n, l->type, l->d, l->count, &o.opt, &out));
    dl_unpin(l);
    if (st < 0)
        return bind_raise(st);
    return PyLong_FromVoidPtr(out);
}

static int op_from(PyObject *o, nixl_xfer_op_t *op)
{
    if (PyUnicode_Check(o)) {
        const char *s = PyUnicode_AsUTF8(o);
        if (!s)
            return -1;
        if (strcmp(s, "READ") == 0 || strcmp(s, "NIXL_READ") == 0)
            *op = NIXL_READ;
        else if (strcmp(s, "WRITE") == 0 || strcmp(s, "NIXL_WRITE") == 0)
            *op = NIXL_WRITE;
        else {
            PyErr_SetObject(PyExc_KeyError, o);
            return -1;
        }
        return 0;
    }
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v != NIXL_READ && v != NIXL_WRITE) {
        PyErr_SetString(PyExc_ValueError, "operation must be NIXL_READ or NIXL_WRITE");
        return -1;
    }
    *op = (nixl_xfer_op_t)v;
    return 0;
}

/* Index arrays: a contiguous int32 buffer is used as is; anything else is converted. */
static int *indices_from(PyObject *o, size_t *n, Py_buffer *view, int *owned)
{
    *owned = 0;
    if (PyObject_CheckBuffer(o) &&
        PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        const char *f = view->format ? view->format : "B";
        if (*f == '<' || *f == '=' || *f == '@')
            f++;
        if (view->ndim == 1 && view->itemsize == 4 && (*f == 'i' || *f == 'I') && !f[1]) {
            *n = (size_t)view->shape[0];
            return view->buf;
        }
        PyBuffer_Release(view);
    }
    PyErr_Clear();
    PyObject *seq = PySequence_Fast(o, "indices must be a list of ints or a 1-D array");
    if (!seq)
        return NULL;
    Py_ssize_t cnt = PySequence_Fast_GET_SIZE(seq);
    int *v = PyMem_Malloc(((size_t)cnt + 1) * sizeof *v);
    if (!v) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < cnt; i++) {
        long x = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (x == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            PyMem_Free(v);
            return NULL;
        }
        v[i] = (int)x;
    }
    Py_DECREF(seq);
    *n = (size_t)cnt;
    *owned = 1;
    return v;
}

static PyObject *make_req(PyObject *self, PyObject *args, PyObject *kw)
{
    AGENT(self, NULL);
    static char *kwl[] = { "operation", "local_side", "local_indices", "remote_side",
                           "remote_indices", "notif_msg", "backend", "skip_desc_merg", NULL };
    PyObject *opo, *lso, *lio, *rso, *rio, *msg = NULL, *backends = NULL, *r = NULL;
    int skip = 0, lown = 0, rown = 0;
    nixl_xfer_op_t op;
    Py_buffer lv, rv;
    size_t ln = 0, rn = 0;
    int *li = NULL, *ri = NULL;
    bind_opt_t o;
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st;
    bind_opt_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|OOp:makeXferReq", kwl, &opo, &lso, &lio,
                                     &rso, &rio, &msg, &backends, &skip) ||
        op_from(opo, &op) < 0 || bind_opt_notif(&o, msg) < 0 || bind_opt_backends(&o, backends) < 0)
        return NULL;
    nixl_dlist_t *ls = bind_handle(lso), *rs = ls ? bind_handle(rso) : NULL;
    if (!rs)
        return NULL;
    li = indices_from(lio, &ln, &lv, &lown);
    if (!li)
        return NULL;
    ri = indices_from(rio, &rn, &rv, &rown);
    if (!ri)
        goto done;
    o.opt.skip_desc_merge = skip;
    NOGIL_CALL(st, nixl_agent_make_xfer_req(A, op, ls, li, ln, rs, ri, rn, &o.opt, &req));
    if (st < 0)
        bind_raise(st);
    else
        r = PyLong_FromVoidPtr(req);
done:
    if (li)
        lown ? PyMem_Free(li) : PyBuffer_Release(&lv);
    if (ri)
        rown ? PyMem_Free(ri) : PyBuffer_Release(&rv);
    return r;
}

static PyObject *create_req(PyObject *self, PyObject *args, PyObject *kw)
{
    AGENT(self, NULL);
    static char *kwl[] = { "operation", "local_descs", "remote_descs", "remote_agent",
                           "notif_msg", "backend", NULL };
    PyObject *opo, *lo, *ro, *nameo, *msg = NULL, *backends = NULL;
    const char *n;
    nixl_xfer_op_t op;
    bind_opt_t o;
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st;
    bind_opt_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO!O!O|OO:createXferReq", kwl, &opo,
                                     bind_dlist_types[DL_XFER], &lo, bind_dlist_types[DL_XFER], &ro,
                                     &nameo, &msg, &backends) ||
        op_from(opo, &op) < 0 || bind_cstr(nameo, &n) < 0 || bind_opt_notif(&o, msg) < 0 ||
        bind_opt_backends(&o, backends) < 0)
        return NULL;
    dlist_obj *l = (dlist_obj *)lo, *r = (dlist_obj *)ro;
    dl_pin(l);
    dl_pin(r);
    NOGIL_CALL(st, nixl_agent_create_xfer_req(A, op, l->type, l->d, l->count, r->type, r->d,
                                              r->count, n, &o.opt, &req));
    dl_unpin(r);
    dl_unpin(l);
    if (st < 0)
        return bind_raise(st);
    return PyLong_FromVoidPtr(req);
}

/* postXferReq(reqh, notif_msg=""): a non-empty message replaces the stored one (it persists). */
static PyObject *post(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwn)
{
    AGENT(self, NULL);
    PyObject *msg = NULL;
    bind_opt_t o;
    const nixl_opt_args_t *optp = NULL;
    nixl_status_t st;
    Py_ssize_t nkw = kwn ? PyTuple_GET_SIZE(kwn) : 0;
    if (nargs < 1 || nargs + nkw > 2 ||
        (nkw == 1 &&
         PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwn, 0), "notif_msg") != 0)) {
        PyErr_SetString(PyExc_TypeError, "postXferReq(reqh, notif_msg=\"\")");
        return NULL;
    }
    nixl_xfer_req_t *req = bind_handle(args[0]);
    if (!req)
        return NULL;
    if (nargs + nkw == 2) {
        msg = args[1];
        bind_opt_init(&o);
        if (bind_opt_notif(&o, msg) < 0)
            return NULL;
        if (o.opt.has_notif)
            optp = &o.opt; /* an empty message keeps the stored one */
    }
    NOGIL_CALL(st, nixl_agent_post_xfer_req(A, req, optp));
    if (st < 0)
        return bind_raise(st);
    return bind_status_obj(st);
}

/* Calls that take one handle and return a status. */
typedef nixl_status_t (*handle_fn)(nixl_agent_t *, void *);

static nixl_status_t get_status(nixl_agent_t *a, void *h)
{
    return nixl_agent_get_xfer_status(a, h);
}

static nixl_status_t rel_req(nixl_agent_t *a, void *h)
{
    return nixl_agent_release_xfer_req(a, h);
}

static nixl_status_t rel_dlist(nixl_agent_t *a, void *h)
{
    return nixl_agent_release_dlist(a, h);
}

static PyObject *handle_call(PyObject *self, PyObject *arg, handle_fn fn)
{
    AGENT(self, NULL);
    nixl_status_t st;
    void *h = bind_handle(arg);
    if (!h)
        return NULL;
    NOGIL_CALL(st, fn(A, h));
    if (st < 0)
        return bind_raise(st);
    return bind_status_obj(st);
}

static PyObject *status(PyObject *self, PyObject *arg)
{
    return handle_call(self, arg, get_status);
}

static PyObject *release_req(PyObject *self, PyObject *arg)
{
    return handle_call(self, arg, rel_req);
}

static PyObject *release_dlist(PyObject *self, PyObject *arg)
{
    return handle_call(self, arg, rel_dlist);
}

static PyObject *estimate(PyObject *self, PyObject *arg)
{
    AGENT(self, NULL);
    int64_t dur = 0, err = 0;
    nixl_cost_t method = NIXL_COST_ANALYTICAL_BACKEND;
    nixl_status_t st;
    nixl_xfer_req_t *req = bind_handle(arg);
    if (!req)
        return NULL;
    NOGIL_CALL(st, nixl_agent_estimate_xfer_cost(A, req, &dur, &err, &method));
    if (st < 0)
        return bind_raise(st);
    return Py_BuildValue("(LLi)", (long long)dur, (long long)err, (int)method);
}

static PyObject *telemetry(PyObject *self, PyObject *arg)
{
    AGENT(self, NULL);
    nixl_xfer_telem_t t;
    nixl_status_t st;
    nixl_xfer_req_t *req = bind_handle(arg);
    if (!req)
        return NULL;
    st = nixl_agent_get_xfer_telemetry(A, req, &t);
    if (st == NIXL_IN_PROG) {
        PyErr_SetString(bind_status_exc[-NIXL_ERR_NO_TELEMETRY],
                        "NIXL_IN_PROG: no telemetry before the transfer completes");
        return NULL;
    }
    if (st != NIXL_SUCCESS)
        return bind_raise(st);
    PyObject *r = PyStructSequence_New(telem_type);
    if (!r)
        return NULL;
    unsigned long long v[5] = { t.start_time_us, t.post_duration_us, t.xfer_duration_us,
                                t.total_bytes, t.desc_count };
    for (int i = 0; i < 5; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(v[i]);
        if (!x) {
            Py_DECREF(r);
            return NULL;
        }
        PyStructSequence_SET_ITEM(r, i, x);
    }
    return r;
}

static PyObject *query_backend(PyObject *self, PyObject *arg)
{
    AGENT(self, NULL);
    nixl_backend_t *b = NULL;
    nixl_status_t st;
    nixl_xfer_req_t *req = bind_handle(arg);
    if (!req)
        return NULL;
    NOGIL_CALL(st, nixl_agent_query_xfer_backend(A, req, &b));
    if (st < 0)
        return bind_raise(st);
    return PyLong_FromVoidPtr(b);
}

static PyObject *backend_name(PyObject *self, PyObject *arg)
{
    (void)self;
    nixl_backend_t *b = bind_handle(arg);
    return b ? PyUnicode_FromString(nixl_backend_name(b)) : NULL;
}

PyMethodDef bind_agent_xfer_methods[] = {
    { "prepXferDlist", KW prep, METH_VARARGS | METH_KEYWORDS, NULL },
    { "makeXferReq", KW make_req, METH_VARARGS | METH_KEYWORDS, NULL },
    { "createXferReq", KW create_req, METH_VARARGS | METH_KEYWORDS, NULL },
    { "postXferReq", KW post, METH_FASTCALL | METH_KEYWORDS, NULL },
    { "getXferStatus", status, METH_O, NULL },
    { "releaseXferReq", release_req, METH_O, NULL },
    { "releasedDlistH", release_dlist, METH_O, NULL },
    { "estimateXferCost", estimate, METH_O, NULL },
    { "getXferTelemetry", telemetry, METH_O, NULL },
    { "queryXferBackend", query_backend, METH_O, NULL },
    { "getBackendName", backend_name, METH_O, "The type name of a backend handle (ours)." },
    { NULL, NULL, 0, NULL },
};

int bind_agent_xfer_init(PyObject *m)
{
    telem_type = PyStructSequence_NewType(&telem_desc);
    if (!telem_type)
        return -1;
    return PyModule_AddObjectRef(m, "nixlXferTelemetry", (PyObject *)telem_type);
}
