/*
 * etcd_stub.c - the etcd client of a build without libcurl or json-c: configuring
 * NIXL_ETCD_ENDPOINTS then fails agent creation with a reason instead of being ignored.
 */
#include "error.h"
#include "etcd.h"

nixl_status_t nixl_etcd_create(const char *agent_name, uint64_t watch_timeout_us,
                               const nixl_etcd_hooks_t *hooks, nixl_etcd_t **out)
{
    (void)agent_name, (void)watch_timeout_us, (void)hooks, (void)out;
    return nixl_err(NIXL_ERR_NOT_SUPPORTED,
                    "NIXL_ETCD_ENDPOINTS is set but this build of nixl has no etcd client "
                    "(libcurl and json-c development files were missing when it was built)");
}

char *nixl_etcd_key(const nixl_etcd_t *e, const char *name, const char *label)
{
    (void)e, (void)name, (void)label;
    return NULL;
}

nixl_status_t nixl_etcd_publish(nixl_etcd_t *e, const char *label, const void *blob, size_t len)
{
    (void)e, (void)label, (void)blob, (void)len;
    return nixl_err(NIXL_ERR_NOT_SUPPORTED, "no etcd client in this build");
}

nixl_status_t nixl_etcd_fetch(nixl_etcd_t *e, const char *name, const char *label)
{
    (void)e, (void)name, (void)label;
    return nixl_err(NIXL_ERR_NOT_SUPPORTED, "no etcd client in this build");
}

nixl_status_t nixl_etcd_invalidate_local(nixl_etcd_t *e)
{
    (void)e;
    return nixl_err(NIXL_ERR_NOT_SUPPORTED, "no etcd client in this build");
}

void nixl_etcd_destroy(nixl_etcd_t *e)
{
    (void)e;
}
