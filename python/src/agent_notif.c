/*
 * agent_notif.c - nixlAgent notification methods: genNotif and getNotifs (binary-safe messages,
 * keys decoded as str, a new dict per call as in the reference).
 */
#include <string.h>

#include "agent.h"

/* getNotifs(notif_map, backends=[]): a new dict = a copy of notif_map plus the new messages. */
static PyObject *get_notifs(PyObject *self, PyObject *args, PyObject *kw)
{
    AGENT(self, NULL);
    static char *kwl[] = { "notif_map", "backends", NULL };
    PyObject *in = NULL, *backends = NULL, *out = NULL;
    bind_opt_t o;
    nixl_notif_list_t *nl = NULL;
    nixl_status_t st;
    bind_opt_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O!O:getNotifs", kwl, &PyDict_Type, &in,
                                     &backends) ||
        bind_opt_backends(&o, backends) < 0)
        return NULL;
    NOGIL_CALL(st, nixl_agent_get_notifs(A, &o.opt, &nl));
    if (st < 0)
        return bind_raise(st);
    out = PyDict_New();
    if (!out)
        goto fail;
    if (in) { /* copy the lists too: the caller's map stays as it was */
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(in, &pos, &k, &v)) {
            PyObject *c = PySequence_List(v);
            if (!c || PyDict_SetItem(out, k, c) < 0) {
                Py_XDECREF(c);
                goto fail;
            }
            Py_DECREF(c);
        }
    }
    for (size_t i = 0; i < nl->count; i++) {
        const char *who = nl->items[i].agent;
        PyObject *k = PyUnicode_DecodeUTF8(who, (Py_ssize_t)strlen(who), "surrogateescape");
        PyObject *m = PyBytes_FromStringAndSize(nl->items[i].msg, (Py_ssize_t)nl->items[i].msg_len);
        PyObject *l = k ? PyDict_GetItemWithError(out, k) : NULL;
        int rc = -1;
        if (k && m && !l && !PyErr_Occurred()) {
            l = PyList_New(0);
            if (l && PyDict_SetItem(out, k, l) == 0)
                rc = PyList_Append(l, m);
            Py_XDECREF(l);
        } else if (l && m) {
            rc = PyList_Append(l, m);
        }
        Py_XDECREF(k);
        Py_XDECREF(m);
        if (rc < 0)
            goto fail;
    }
    nixl_free(nl);
    return out;
fail:
    nixl_free(nl);
    Py_XDECREF(out);
    return NULL;
}

static PyObject *gen_notif(PyObject *self, PyObject *args, PyObject *kw)
{
    AGENT(self, NULL);
    static char *kwl[] = { "remote_agent", "msg", "backends", NULL };
    PyObject *nameo, *msgo, *backends = NULL;
    const char *n, *m;
    Py_ssize_t ml;
    bind_opt_t o;
    nixl_status_t st;
    bind_opt_init(&o);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:genNotif", kwl, &nameo, &msgo, &backends) ||
        bind_cstr(nameo, &n) < 0 || bind_strlike(msgo, &m, &ml) < 0 ||
        bind_opt_backends(&o, backends) < 0)
        return NULL;
    NOGIL_CALL(st, nixl_agent_gen_notif(A, n, m, (size_t)ml, &o.opt));
    if (st < 0)
        return bind_raise(st);
    return bind_status_obj(st);
}

PyMethodDef bind_agent_notif_methods[] = {
    { "getNotifs", KW get_notifs, METH_VARARGS | METH_KEYWORDS, NULL },
    { "genNotif", KW gen_notif, METH_VARARGS | METH_KEYWORDS, NULL },
    { NULL, NULL, 0, NULL },
};
