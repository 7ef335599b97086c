/*
 * config.c - nixlAgentConfig: the reference C++ config as a Python object, with its positional
 * constructor order (use_prog_thread, use_listen_thread, port, sync_mode, num_workers,
 * pthr_delay_us, lthr_delay_us, capture_telemetry, etcd_watch_timeout).
 */
#include "bind.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    char use_prog, use_listen, telemetry;
    int port, sync_mode;
    unsigned long long pthr_delay, lthr_delay, etcd_timeout_us;
    PyObject *auth_secret; /* str or None (authSecret: our addition, docs/security.md) */
} config_obj;

static PyTypeObject *config_type;

static PyObject *cfg_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    config_obj *c = (config_obj *)tp->tp_alloc(tp, 0);
    nixl_agent_config_t d;
    if (!c)
        return NULL;
    nixl_agent_config_init(&d);
    c->use_prog = d.use_prog_thread;
    c->use_listen = d.use_listen_thread;
    c->telemetry = d.capture_telemetry;
    c->port = d.listen_port;
    c->sync_mode = (int)d.sync_mode;
    c->pthr_delay = d.pthr_delay_us;
    c->lthr_delay = d.lthr_delay_us;
    c->etcd_timeout_us = d.etcd_watch_timeout_us;
    return (PyObject *)c;
}

/* A timedelta or a number of microseconds. */
static int timeout_from(PyObject *o, unsigned long long *us)
{
    PyObject *tot;
    if (PyLong_Check(o)) {
        *us = PyLong_AsUnsignedLongLong(o);
        return PyErr_Occurred() ? -1 : 0;
    }
    tot = PyObject_CallMethod(o, "total_seconds", NULL);
    if (!tot)
        return -1;
    double s = PyFloat_AsDouble(tot);
    Py_DECREF(tot);
    if (s < 0 || PyErr_Occurred()) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "etcd_watch_timeout must not be negative");
        return -1;
    }
    *us = (unsigned long long)(s * 1e6 + 0.5);
    return 0;
}

static int cfg_init(PyObject *self, PyObject *args, PyObject *kw)
{
    config_obj *c = (config_obj *)self;
    static char *kwl[] = { "use_prog_thread", "use_listen_thread", "port", "sync_mode",
                           "num_workers", "pthr_delay_us", "lthr_delay_us", "capture_telemetry",
                           "etcd_watch_timeout", NULL };
    int prog = c->use_prog, listen = c->use_listen, tel = c->telemetry;
    unsigned int workers = 1;
    PyObject *sync = NULL, *etcd = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|ppiOIKKpO:nixlAgentConfig", kwl, &prog, &listen,
                                     &c->port, &sync, &workers, &c->pthr_delay, &c->lthr_delay,
                                     &tel, &etcd))
        return -1;
    (void)workers; /* accepted and ignored, as in the reference */
    c->use_prog = (char)prog;
    c->use_listen = (char)listen;
    c->telemetry = (char)tel;
    if (sync) {
        long v = PyLong_AsLong(sync);
        if (v == -1 && PyErr_Occurred())
            return -1;
        c->sync_mode = (int)v;
    }
    if (etcd && timeout_from(etcd, &c->etcd_timeout_us) < 0)
        return -1;
    return 0;
}

static PyObject *get_etcd(PyObject *self, void *unused)
{
    (void)unused;
    PyObject *dt = PyImport_ImportModule("datetime"), *r;
    if (!dt)
        return NULL;
    r = PyObject_CallMethod(dt, "timedelta", "iiK", 0, 0, ((config_obj *)self)->etcd_timeout_us);
    Py_DECREF(dt);
    return r;
}

static int set_etcd(PyObject *self, PyObject *v, void *unused)
{
    (void)unused;
    if (!v) {
        PyErr_SetString(PyExc_TypeError, "cannot delete etcdWatchTimeout");
        return -1;
    }
    return timeout_from(v, &((config_obj *)self)->etcd_timeout_us);
}

static PyObject *get_sync(PyObject *self, void *unused)
{
    (void)unused;
    PyObject *m = PyImport_ImportModule("nixl._bindings"), *r = NULL;
    if (!m)
        return NULL;
    PyObject *e = PyObject_GetAttrString(m, "nixl_thread_sync_t");
    if (e)
        r = PyObject_CallFunction(e, "i", ((config_obj *)self)->sync_mode);
    Py_XDECREF(e);
    Py_DECREF(m);
    return r;
}

static int set_sync(PyObject *self, PyObject *v, void *unused)
{
    (void)unused;
    long x = v ? PyLong_AsLong(v) : -1;
    if (!v || (x == -1 && PyErr_Occurred())) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "cannot delete syncMode");
        return -1;
    }
    ((config_obj *)self)->sync_mode = (int)x;
    return 0;
}

static void cfg_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(((config_obj *)self)->auth_secret);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMemberDef cfg_members[] = {
    { "authSecret", T_OBJECT, offsetof(config_obj, auth_secret), 0, NULL },
    { "useProgThread", T_BOOL, offsetof(config_obj, use_prog), 0, NULL },
    { "useListenThread", T_BOOL, offsetof(config_obj, use_listen), 0, NULL },
    { "captureTelemetry", T_BOOL, offsetof(config_obj, telemetry), 0, NULL },
    { "listenPort", T_INT, offsetof(config_obj, port), 0, NULL },
    { "pthrDelay", T_ULONGLONG, offsetof(config_obj, pthr_delay), 0, NULL },
    { "lthrDelay", T_ULONGLONG, offsetof(config_obj, lthr_delay), 0, NULL },
    { NULL, 0, 0, 0, NULL },
};

static PyGetSetDef cfg_getset[] = {
    { "etcdWatchTimeout", get_etcd, set_etcd, NULL, NULL },
    { "syncMode", get_sync, set_sync, NULL, NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot cfg_slots[] = {
    { Py_tp_new, cfg_new },
    { Py_tp_init, cfg_init },
    { Py_tp_dealloc, cfg_dealloc },
    { Py_tp_members, cfg_members },
    { Py_tp_getset, cfg_getset },
    { 0, NULL },
};

int bind_config_get(PyObject *o, nixl_agent_config_t *cfg)
{
    nixl_agent_config_init(cfg);
    if (o == NULL || o == Py_None)
        return 0;
    if (!PyObject_TypeCheck(o, config_type)) {
        PyErr_SetString(PyExc_TypeError, "expected a nixlAgentConfig");
        return -1;
    }
    config_obj *c = (config_obj *)o;
    cfg->use_prog_thread = c->use_prog;
    cfg->use_listen_thread = c->use_listen;
    cfg->listen_port = c->port;
    cfg->sync_mode = (nixl_thread_sync_t)c->sync_mode;
    cfg->capture_telemetry = c->telemetry;
    cfg->pthr_delay_us = c->pthr_delay;
    cfg->lthr_delay_us = c->lthr_delay;
    cfg->etcd_watch_timeout_us = c->etcd_timeout_us;
    if (c->auth_secret && c->auth_secret != Py_None) {
        /* borrowed from the config object, which the caller holds through agent creation */
        cfg->auth_secret = PyUnicode_AsUTF8(c->auth_secret);
        if (!cfg->auth_secret)
            return -1;
    }
    return 0;
}

int bind_config_init_type(PyObject *m)
{
    static PyType_Spec spec = { "nixl._bindings.nixlAgentConfig", sizeof(config_obj), 0,
                                Py_TPFLAGS_DEFAULT, cfg_slots };
    config_type = (PyTypeObject *)PyType_FromSpec(&spec);
    if (!config_type)
        return -1;
    return PyModule_AddObjectRef(m, "nixlAgentConfig", (PyObject *)config_type);
}
