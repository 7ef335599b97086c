/*
 * agent_md.c - nixlAgent metadata methods: local and partial metadata, loading and checking
 * peers, and the side-channel exchange (send / fetch / invalidate).
 */
#include "agent.h"

static PyObject *ag_getLocalMD(PyObject *self, PyObject *unused)
{
    AGENT(self, NULL);
    void *blob = NULL;
    size_t len = 0;
    nixl_status_t st;
    (void)unused;
    NOGIL_CALL(st, nixl_agent_get_local_md(A, &blob, &len));
    if (st < 0)
        return bind_raise(st);
    PyObject *r = PyBytes_FromStringAndSize(blob, (Py_ssize_t)len);
    nixl_free(blob);
    return r;
}

/* getLocalPartialMD and sendLocalPartialMD: same descriptors and options. */
static PyObject *partial_common(PyObject *self, PyObject *args, PyObject *kw, int send)
{
    AGENT(self, NULL);
    static char *kw_send[] = { "descs", "inc_conn_info", "backends", "ip_addr", "port", "label",
                               NULL };
    static char *kw_get[] = { "descs", "inc_conn_info", "backends", NULL };
    PyObject *descs, *backends = NULL, *ipo = NULL, *labelo = NULL, *r = NULL;
    int inc = 0, port = 0;
    bind_opt_t o;
    void *blob = NULL;
    size_t len = 0;
    nixl_status_t st;
    bind_opt_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kw, send ? "O!|pOOiO" : "O!|pO", send ? kw_send : kw_get,
                                     bind_dlist_types[DL_REG], &descs, &inc, &backends, &ipo,
                                     &port, &labelo) || bind_opt_backends(&o, backends) < 0 ||
        (ipo && bind_cstr(ipo, &o.opt.ip_addr) < 0) ||
        (labelo && bind_cstr(labelo, &o.opt.metadata_label) < 0))
        return NULL;
    if (port > 0)
        o.opt.port = port;
    if (o.opt.metadata_label && !*o.opt.metadata_label)
        o.opt.metadata_label = NULL;
    o.opt.include_conn_info = inc;
    dlist_obj *l = (dlist_obj *)descs;
    nixl_reg_desc_t *rd = bind_reg_descs(l);
    if (!rd)
        return NULL;
    dl_pin(l);
    NOGIL_CALL(st, send ? nixl_agent_send_local_partial_md(A, l->type, rd, l->count, &o.opt)
                   : nixl_agent_get_local_partial_md(A, l->type, rd, l->count, &o.opt, &blob,
                                                     &len));
    dl_unpin(l);
    PyMem_Free(rd);
    if (st < 0)
        return bind_raise(st);
    if (send)
        Py_RETURN_NONE;
    r = PyBytes_FromStringAndSize(blob, (Py_ssize_t)len);
    nixl_free(blob);
    return r;
}

KW_VARIANT(ag_getLocalPartialMD, partial_common, 0)
KW_VARIANT(ag_sendLocalPartialMD, partial_common, 1)
static PyObject *ag_loadRemoteMD(PyObject *self, PyObject *arg)
{
    AGENT(self, NULL);
    const char *p;
    Py_ssize_t n;
    char *name = NULL;
    nixl_status_t st;
    if (bind_strlike(arg, &p, &n) < 0)
        return NULL;
    NOGIL_CALL(st, nixl_agent_load_remote_md(A, p, (size_t)n, &name));
    if (st < 0)
        return bind_raise(st);
    PyObject *r = PyBytes_FromString(name);
    nixl_free(name);
    return r;
}

static PyObject *ag_checkRemoteMD(PyObject *self, PyObject *args)
{
    AGENT(self, NULL);
    PyObject *name, *descs = Py_None;
    const char *n;
    nixl_status_t st;
    nixl_mem_t type = NIXL_DRAM_SEG;
    const nixl_desc_t *d = NULL;
    size_t cnt = 0;
    if (!PyArg_ParseTuple(args, "O|O", &name, &descs) || bind_cstr(name, &n) < 0)
        return NULL;
    if (descs != Py_None) {
        if (!bind_is_dlist(descs, DL_XFER)) {
            PyErr_SetString(PyExc_TypeError, "checkRemoteMD takes a nixlXferDList");
            return NULL;
        }
        type = ((dlist_obj *)descs)->type;
        d = ((dlist_obj *)descs)->d;
        cnt = ((dlist_obj *)descs)->count;
        dl_pin((dlist_obj *)descs);
    }
    NOGIL_CALL(st, nixl_agent_check_remote_md(A, n, type, d, cnt));
    if (descs != Py_None)
        dl_unpin((dlist_obj *)descs);
    return bind_status_obj(st);
}

/* sendLocalMD, fetchRemoteMD, invalidateLocalMD: side-channel addressing. */
static PyObject *md_exchange(PyObject *self, PyObject *args, PyObject *kw, int which)
{
    AGENT(self, NULL);
    static char *kw_addr[] = { "ip_addr", "port", NULL };
    static char *kw_fetch[] = { "remote_agent", "ip_addr", "port", "label", NULL };
    PyObject *nameo = NULL, *ipo = NULL, *labelo = NULL;
    const char *n = NULL;
    int port = 0, ok;
    bind_opt_t o;
    nixl_status_t st;
    bind_opt_init(&o);
    if (which == 1)
        ok = PyArg_ParseTupleAndKeywords(args, kw, "O|OiO", kw_fetch, &nameo, &ipo, &port, &labelo);
    else
        ok = PyArg_ParseTupleAndKeywords(args, kw, "|Oi", kw_addr, &ipo, &port);
    if (!ok || (nameo && bind_cstr(nameo, &n) < 0) || (ipo && bind_cstr(ipo, &o.opt.ip_addr) < 0) ||
        (labelo && bind_cstr(labelo, &o.opt.metadata_label) < 0))
        return NULL;
    if (o.opt.ip_addr && !*o.opt.ip_addr)
        o.opt.ip_addr = NULL;
    if (o.opt.metadata_label && !*o.opt.metadata_label)
        o.opt.metadata_label = NULL;
    if (port > 0) /* the reference binding's default 0 means "the default port" here */
        o.opt.port = port;
    NOGIL_CALL(st, which == 0 ? nixl_agent_send_local_md(A, &o.opt)
                   : which == 1 ? nixl_agent_fetch_remote_md(A, n, &o.opt)
                   : nixl_agent_invalidate_local_md(A, &o.opt));
    if (st < 0)
        return bind_raise(st);
    Py_RETURN_NONE;
}

KW_VARIANT(ag_sendLocalMD, md_exchange, 0)
KW_VARIANT(ag_fetchRemoteMD, md_exchange, 1)
KW_VARIANT(ag_invalidateLocalMD, md_exchange, 2)
static PyObject *ag_getListenPort(PyObject *self, PyObject *unused)
{
    AGENT(self, NULL);
    int port = 0;
    nixl_status_t st;
    (void)unused;
    st = nixl_agent_get_listen_port(A, &port);
    if (st < 0)
        return bind_raise(st);
    return PyLong_FromLong(port);
}

/* invalidateRemoteMD (0) and getFetchStatus (1): a name in, a status out, never raising (as
 * the reference's invalidateRemoteMD). */
static PyObject *name_status(PyObject *self, PyObject *arg, int which)
{
    AGENT(self, NULL);
    const char *n;
    nixl_status_t st;
    if (bind_cstr(arg, &n) < 0)
        return NULL;
    NOGIL_CALL(st, which == 0 ? nixl_agent_invalidate_remote_md(A, n)
                              : nixl_agent_get_fetch_status(A, n));
    return bind_status_obj(st);
}

static PyObject *ag_invalidateRemoteMD(PyObject *self, PyObject *arg)
{
    return name_status(self, arg, 0);
}

static PyObject *ag_getFetchStatus(PyObject *self, PyObject *arg)
{
    return name_status(self, arg, 1);
}

PyMethodDef bind_agent_md_methods[] = {
    { "getLocalMD", ag_getLocalMD, METH_NOARGS, NULL },
    { "getLocalPartialMD", KW ag_getLocalPartialMD, METH_VARARGS | METH_KEYWORDS, NULL },
    { "loadRemoteMD", ag_loadRemoteMD, METH_O, NULL },
    { "invalidateRemoteMD", ag_invalidateRemoteMD, METH_O, NULL },
    { "checkRemoteMD", ag_checkRemoteMD, METH_VARARGS, NULL },
    { "sendLocalMD", KW ag_sendLocalMD, METH_VARARGS | METH_KEYWORDS, NULL },
    { "sendLocalPartialMD", KW ag_sendLocalPartialMD, METH_VARARGS | METH_KEYWORDS, NULL },
    { "fetchRemoteMD", KW ag_fetchRemoteMD, METH_VARARGS | METH_KEYWORDS, NULL },
    { "invalidateLocalMD", KW ag_invalidateLocalMD, METH_VARARGS | METH_KEYWORDS, NULL },
    { "getListenPort", ag_getListenPort, METH_NOARGS, "The side-channel listener's port (ours)." },
    { "getFetchStatus", ag_getFetchStatus, METH_O, "State of the last fetch of a peer (ours)." },
    { NULL, NULL, 0, NULL },
};
