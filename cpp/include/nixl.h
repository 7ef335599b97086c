/*
 * nixl.h - the reference's C++ API (class nixlAgent), over libnixl's C API.
 *
 * Header-only: every method is a thin inline wrapper that converts its arguments, calls the
 * matching nixl_agent_* function once for the whole list and converts the results. There is no
 * second implementation of anything here. Installed as <includedir>/nixl-cpp/nixl.h; C programs
 * include the C API's nixl.h from <includedir> (docs/cpp.md says how the two are told apart).
 */
#ifndef NIXL_SRC_API_CPP_NIXL_H
#define NIXL_SRC_API_CPP_NIXL_H

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nixl_descriptors.h"
#include "nixl_params.h"
#include "nixl_types.h"

namespace nixl_cpp {

inline nixl_status_t st(nixl_capi::nixl_status_t s) { return static_cast<nixl_status_t>(s); }

/* A reference nixl_opt_args_t as the C API's optional arguments; the pointers borrow from `o`,
 * which outlives the call. Null stays null. */
class opt_args {
public:
    explicit opt_args(const nixl_opt_args_t *o) : set_(o != nullptr)
    {
        if (!o)
            return;
        nixl_capi::nixl_opt_args_init(&c_);
        static_assert(sizeof(nixlBackendH *) == sizeof(nixl_capi::nixl_backend_t *), "handles");
        c_.backends = reinterpret_cast<nixl_capi::nixl_backend_t *const *>(o->backends.data());
        c_.num_backends = o->backends.size();
        const nixl_blob_t *notif = o->notif ? &*o->notif : (o->hasNotif ? &o->notifMsg : nullptr);
        if (notif) {
            c_.has_notif = true;
            c_.notif = notif->data();
            c_.notif_len = notif->size();
        }
        c_.skip_desc_merge = o->skipDescMerge;
        c_.include_conn_info = o->includeConnInfo;
        c_.ip_addr = o->ipAddr.empty() ? nullptr : o->ipAddr.c_str();
        c_.port = o->port;
        c_.metadata_label = o->metadataLabel.empty() ? nullptr : o->metadataLabel.c_str();
        if (!o->customParam.empty()) {
            c_.custom_param = o->customParam.data();
            c_.custom_param_len = o->customParam.size();
        }
    }
    const nixl_capi::nixl_opt_args_t *get() const { return set_ ? &c_ : nullptr; }

private:
    bool set_;
    nixl_capi::nixl_opt_args_t c_{};
};

inline const nixl_capi::nixl_desc_t *descs_of(const nixl_xfer_dlist_t &l)
{
    return l.isEmpty() ? nullptr : reinterpret_cast<const nixl_capi::nixl_desc_t *>(&l[0]);
}

inline nixl_capi::nixl_mem_t mem_of(nixl_mem_t m) { return static_cast<nixl_capi::nixl_mem_t>(m); }

inline nixl_capi::nixl_backend_t *backend_of(const nixlBackendH *b)
{
    return reinterpret_cast<nixl_capi::nixl_backend_t *>(const_cast<nixlBackendH *>(b));
}

inline void params_from(const nixl_capi::nixl_param_list_t *p, nixl_b_params_t &out)
{
    out.clear();
    for (size_t i = 0; p && i < p->count; i++)
        out[p->items[i].key] = p->items[i].value;
}

inline void mems_from(nixl_capi::nixl_mem_mask_t mask, nixl_mem_list_t &out)
{
    out.clear();
    for (unsigned m = 0; m < NIXL_MEM_COUNT; m++)
        if (mask & NIXL_MEM_BIT(m))
            out.push_back(static_cast<nixl_mem_t>(m));
}

/* What nixl_agent_get_plugin_params / _get_backend_params (`call`) give, as the reference's
 * containers (both overwritten). */
template<class Call> nixl_status_t mems_and_params(nixl_mem_list_t &mems, nixl_b_params_t &params, Call call)
{
    nixl_capi::nixl_mem_mask_t mask = 0;
    nixl_capi::nixl_param_list_t *p = nullptr;
    nixl_capi::nixl_status_t s = call(&mask, &p);
    if (s != nixl_capi::NIXL_SUCCESS)
        return st(s);
    c_ptr<nixl_capi::nixl_param_list_t> hold(p);
    mems_from(mask, mems);
    params_from(p, params);
    return NIXL_SUCCESS;
}

inline nixl_capi::nixl_agent_t *create_agent(const std::string &name, const nixlAgentConfig &cfg)
{
    if (name.empty())
        throw std::invalid_argument("Agent needs a non-empty name");
    nixl_capi::nixl_agent_config_t c;
    nixl_capi::nixl_agent_config_init(&c);
    c.use_prog_thread = cfg.useProgThread;
    c.use_listen_thread = cfg.useListenThread;
    c.listen_port = cfg.listenPort;
    c.sync_mode = static_cast<nixl_capi::nixl_thread_sync_t>(cfg.syncMode);
    c.capture_telemetry = cfg.captureTelemetry;
    c.pthr_delay_us = cfg.pthrDelay;
    c.lthr_delay_us = cfg.lthrDelay;
    c.etcd_watch_timeout_us = static_cast<uint64_t>(cfg.etcdWatchTimeout.count());
    nixl_capi::nixl_agent_t *agent = nullptr;
    nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_create(name.c_str(), &c, &agent);
    if (s == nixl_capi::NIXL_ERR_INVALID_PARAM)
        throw std::invalid_argument(last_error());
    if (s != nixl_capi::NIXL_SUCCESS)
        throw std::runtime_error(last_error());
    return agent;
}

} // namespace nixl_cpp

class nixlAgent {
public:
    /* Throws std::invalid_argument (empty or bad name, bad configuration) or std::runtime_error
     * (the listener cannot bind, a malformed configuration file or variable, ...), with the
     * C library's reason as what(). */
    nixlAgent(const std::string &name, const nixlAgentConfig &cfg)
        : agent_(nixl_cpp::create_agent(name, cfg))
    {
    }
    /* Also releases the requests and prepared lists still held (docs/cpp.md). */
    ~nixlAgent() { nixl_capi::nixl_agent_destroy(agent_); }
    nixlAgent(nixlAgent &&) noexcept = delete;
    nixlAgent &operator=(nixlAgent &&) noexcept = delete;

    /* ---- plugins and backends ---- */

    nixl_status_t getAvailPlugins(std::vector<nixl_backend_t> &plugins)
    {
        char **names = nullptr;
        size_t n = 0;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_get_avail_plugins(agent_, &names, &n);
        if (s != nixl_capi::NIXL_SUCCESS)
            return nixl_cpp::st(s);
        nixl_cpp::c_ptr<char *> hold(names);
        plugins.assign(names, names + n);
        return NIXL_SUCCESS;
    }

    nixl_status_t getPluginParams(const nixl_backend_t &type, nixl_mem_list_t &mems,
                                  nixl_b_params_t &params) const
    {
        return nixl_cpp::mems_and_params(mems, params, [&](auto *mask, auto **p) {
            return nixl_capi::nixl_agent_get_plugin_params(agent_, type.c_str(), mask, p);
        });
    }

    nixl_status_t getBackendParams(const nixlBackendH *backend, nixl_mem_list_t &mems,
                                   nixl_b_params_t &params) const
    {
        if (!backend)
            return NIXL_ERR_INVALID_PARAM;
        return nixl_cpp::mems_and_params(mems, params, [&](auto *mask, auto **p) {
            return nixl_capi::nixl_agent_get_backend_params(agent_, nixl_cpp::backend_of(backend), mask, p);
        });
    }

    nixl_status_t createBackend(const nixl_backend_t &type, const nixl_b_params_t &params,
                                nixlBackendH *&backend)
    {
        std::vector<nixl_capi::nixl_param_t> c;
        c.reserve(params.size());
        for (const auto &[k, v] : params)
            c.push_back({k.c_str(), v.c_str()});
        nixl_capi::nixl_backend_t *b = nullptr;
        nixl_capi::nixl_status_t s =
            nixl_capi::nixl_agent_create_backend(agent_, type.c_str(), c.data(), c.size(), &b);
        if (s == nixl_capi::NIXL_SUCCESS)
            backend = reinterpret_cast<nixlBackendH *>(b);
        return nixl_cpp::st(s);
    }

    /* ---- memory ---- */

    nixl_status_t registerMem(const nixl_reg_dlist_t &descs, const nixl_opt_args_t *extra_params = nullptr)
    {
        auto c = nixl_cpp::reg_descs(descs);
        return nixl_cpp::st(nixl_capi::nixl_agent_register_mem(
            agent_, nixl_cpp::mem_of(descs.getType()), c.data(), c.size(),
            nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t deregisterMem(const nixl_reg_dlist_t &descs, const nixl_opt_args_t *extra_params = nullptr)
    {
        auto c = nixl_cpp::reg_descs(descs);
        return nixl_cpp::st(nixl_capi::nixl_agent_deregister_mem(
            agent_, nixl_cpp::mem_of(descs.getType()), c.data(), c.size(),
            nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t queryMem(const nixl_reg_dlist_t &descs, std::vector<nixl_query_resp_t> &resp,
                           const nixl_opt_args_t *extra_params) const
    {
        auto c = nixl_cpp::reg_descs(descs);
        nixl_capi::nixl_query_resp_t *r = nullptr;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_query_mem(
            agent_, nixl_cpp::mem_of(descs.getType()), c.data(), c.size(),
            nixl_cpp::opt_args(extra_params).get(), &r);
        if (s != nixl_capi::NIXL_SUCCESS)
            return nixl_cpp::st(s);
        nixl_cpp::c_ptr<nixl_capi::nixl_query_resp_t> hold(r);
        resp.clear();
        resp.resize(c.size());
        for (size_t i = 0; i < c.size(); i++)
            if (r[i].has_value)
                nixl_cpp::params_from(&r[i].params, resp[i].emplace());
        return NIXL_SUCCESS;
    }

    /* ---- connections and transfers ---- */

    nixl_status_t makeConnection(const std::string &remote_agent, const nixl_opt_args_t *extra_params = nullptr)
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_make_connection(
            agent_, remote_agent.c_str(), nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t prepXferDlist(const std::string &agent_name, const nixl_xfer_dlist_t &descs,
                                nixlDlistH *&dlist_hndl, const nixl_opt_args_t *extra_params = nullptr) const
    {
        nixl_capi::nixl_dlist_t *d = nullptr;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_prep_xfer_dlist(
            agent_, agent_name.c_str(), nixl_cpp::mem_of(descs.getType()), nixl_cpp::descs_of(descs),
            static_cast<size_t>(descs.descCount()), nixl_cpp::opt_args(extra_params).get(), &d);
        if (s == nixl_capi::NIXL_SUCCESS)
            dlist_hndl = reinterpret_cast<nixlDlistH *>(d);
        return nixl_cpp::st(s);
    }

    nixl_status_t prepXferDlist(const nixl_xfer_dlist_t &descs, nixlDlistH *&dlist_hndl,
                                const nixl_opt_args_t *extra_params = nullptr) const
    {
        return prepXferDlist(NIXL_INIT_AGENT, descs, dlist_hndl, extra_params);
    }

    nixl_status_t makeXferReq(const nixl_xfer_op_t &operation, const nixlDlistH *local_side,
                              const std::vector<int> &local_indices, const nixlDlistH *remote_side,
                              const std::vector<int> &remote_indices, nixlXferReqH *&req_hndl,
                              const nixl_opt_args_t *extra_params = nullptr) const
    {
        req_hndl = nullptr;
        if (!local_side || !remote_side)
            return NIXL_ERR_INVALID_PARAM;
        nixl_capi::nixl_xfer_req_t *r = nullptr;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_make_xfer_req(
            agent_, static_cast<nixl_capi::nixl_xfer_op_t>(operation),
            reinterpret_cast<const nixl_capi::nixl_dlist_t *>(local_side), local_indices.data(),
            local_indices.size(), reinterpret_cast<const nixl_capi::nixl_dlist_t *>(remote_side),
            remote_indices.data(), remote_indices.size(), nixl_cpp::opt_args(extra_params).get(), &r);
        if (s == nixl_capi::NIXL_SUCCESS)
            req_hndl = reinterpret_cast<nixlXferReqH *>(r);
        return nixl_cpp::st(s);
    }

    nixl_status_t createXferReq(const nixl_xfer_op_t &operation, const nixl_xfer_dlist_t &local_descs,
                                const nixl_xfer_dlist_t &remote_descs, const std::string &remote_agent,
                                nixlXferReqH *&req_hndl, const nixl_opt_args_t *extra_params = nullptr) const
    {
        req_hndl = nullptr;
        nixl_capi::nixl_xfer_req_t *r = nullptr;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_create_xfer_req(
            agent_, static_cast<nixl_capi::nixl_xfer_op_t>(operation),
            nixl_cpp::mem_of(local_descs.getType()), nixl_cpp::descs_of(local_descs),
            static_cast<size_t>(local_descs.descCount()), nixl_cpp::mem_of(remote_descs.getType()),
            nixl_cpp::descs_of(remote_descs), static_cast<size_t>(remote_descs.descCount()),
            remote_agent.c_str(), nixl_cpp::opt_args(extra_params).get(), &r);
        if (s == nixl_capi::NIXL_SUCCESS)
            req_hndl = reinterpret_cast<nixlXferReqH *>(r);
        return nixl_cpp::st(s);
    }

    /* extra_params is accepted and not used: the C API's estimate takes none. */
    nixl_status_t estimateXferCost(const nixlXferReqH *req_hndl, std::chrono::microseconds &duration,
                                   std::chrono::microseconds &err_margin, nixl_cost_t &method,
                                   const nixl_opt_args_t *extra_params = nullptr) const
    {
        (void)extra_params;
        int64_t d = 0, e = 0;
        nixl_capi::nixl_cost_t m = nixl_capi::NIXL_COST_ANALYTICAL_BACKEND;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_estimate_xfer_cost(agent_, req(req_hndl), &d, &e, &m);
        if (s == nixl_capi::NIXL_SUCCESS) {
            duration = std::chrono::microseconds(d);
            err_margin = std::chrono::microseconds(e);
            method = static_cast<nixl_cost_t>(m);
        }
        return nixl_cpp::st(s);
    }

    nixl_status_t postXferReq(nixlXferReqH *req_hndl, const nixl_opt_args_t *extra_params = nullptr) const
    {
        if (!req_hndl)
            return NIXL_ERR_INVALID_PARAM;
        return nixl_cpp::st(nixl_capi::nixl_agent_post_xfer_req(agent_, req(req_hndl),
                                                                nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t getXferStatus(nixlXferReqH *req_hndl) const
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_get_xfer_status(agent_, req(req_hndl)));
    }

    nixl_status_t getXferTelemetry(const nixlXferReqH *req_hndl, nixl_xfer_telem_t &telemetry) const
    {
        nixl_capi::nixl_xfer_telem_t t;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_get_xfer_telemetry(agent_, req(req_hndl), &t);
        if (s != nixl_capi::NIXL_SUCCESS)
            return nixl_cpp::st(s);
        /* CLOCK_MONOTONIC, which is std::chrono::steady_clock's clock on Linux */
        telemetry.startTime = chrono_point_t(std::chrono::duration_cast<chrono_point_t::duration>(
            std::chrono::microseconds(t.start_time_us)));
        telemetry.postDuration = chrono_period_us_t(t.post_duration_us);
        telemetry.xferDuration = chrono_period_us_t(t.xfer_duration_us);
        telemetry.totalBytes = static_cast<size_t>(t.total_bytes);
        telemetry.descCount = static_cast<size_t>(t.desc_count);
        return NIXL_SUCCESS;
    }

    nixl_status_t queryXferBackend(const nixlXferReqH *req_hndl, nixlBackendH *&backend) const
    {
        nixl_capi::nixl_backend_t *b = nullptr;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_query_xfer_backend(agent_, req(req_hndl), &b);
        if (s == nixl_capi::NIXL_SUCCESS)
            backend = reinterpret_cast<nixlBackendH *>(b);
        return nixl_cpp::st(s);
    }

    nixl_status_t releaseXferReq(nixlXferReqH *req_hndl) const
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_release_xfer_req(agent_, req(req_hndl)));
    }

    /* Memory views (the GPU-initiated API) are not in the C API: NIXL_ERR_NOT_SUPPORTED, the
     * reference's answer for an engine without them. */
    nixl_status_t prepMemView(const nixl_remote_dlist_t &dlist, nixlMemViewH &mvh,
                              const nixl_opt_args_t *extra_params = nullptr) const
    {
        (void)dlist, (void)mvh, (void)extra_params;
        return NIXL_ERR_NOT_SUPPORTED;
    }
    nixl_status_t prepMemView(const nixl_local_dlist_t &dlist, nixlMemViewH &mvh,
                              const nixl_opt_args_t *extra_params = nullptr) const
    {
        (void)dlist, (void)mvh, (void)extra_params;
        return NIXL_ERR_NOT_SUPPORTED;
    }
    void releaseMemView(nixlMemViewH mvh) const { (void)mvh; }

    /* The reference's spelling. */
    nixl_status_t releasedDlistH(nixlDlistH *dlist_hndl) const
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_release_dlist(
            agent_, reinterpret_cast<nixl_capi::nixl_dlist_t *>(dlist_hndl)));
    }

    /* ---- notifications ---- */

    /* Appends what arrived to notif_map, keyed by sender. */
    nixl_status_t getNotifs(nixl_notifs_t &notif_map, const nixl_opt_args_t *extra_params = nullptr)
    {
        nixl_capi::nixl_notif_list_t *l = nullptr;
        nixl_capi::nixl_status_t s =
            nixl_capi::nixl_agent_get_notifs(agent_, nixl_cpp::opt_args(extra_params).get(), &l);
        if (s != nixl_capi::NIXL_SUCCESS)
            return nixl_cpp::st(s);
        nixl_cpp::c_ptr<nixl_capi::nixl_notif_list_t> hold(l);
        for (size_t i = 0; i < l->count; i++)
            notif_map[l->items[i].agent].emplace_back(static_cast<const char *>(l->items[i].msg),
                                                       l->items[i].msg_len);
        return NIXL_SUCCESS;
    }

    nixl_status_t genNotif(const std::string &remote_agent, const nixl_blob_t &msg,
                           const nixl_opt_args_t *extra_params = nullptr) const
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_gen_notif(agent_, remote_agent.c_str(), msg.data(),
                                                            msg.size(),
                                                            nixl_cpp::opt_args(extra_params).get()));
    }

    /* ---- metadata ---- */

    nixl_status_t getLocalMD(nixl_blob_t &str) const
    {
        void *blob = nullptr;
        size_t len = 0;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_get_local_md(agent_, &blob, &len);
        if (s != nixl_capi::NIXL_SUCCESS)
            return nixl_cpp::st(s);
        nixl_cpp::c_ptr<void> hold(blob);
        str.assign(static_cast<const char *>(blob), len);
        return NIXL_SUCCESS;
    }

    nixl_status_t getLocalPartialMD(const nixl_reg_dlist_t &descs, nixl_blob_t &str,
                                    const nixl_opt_args_t *extra_params = nullptr) const
    {
        auto c = nixl_cpp::reg_descs(descs);
        void *blob = nullptr;
        size_t len = 0;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_get_local_partial_md(
            agent_, nixl_cpp::mem_of(descs.getType()), c.data(), c.size(),
            nixl_cpp::opt_args(extra_params).get(), &blob, &len);
        if (s != nixl_capi::NIXL_SUCCESS)
            return nixl_cpp::st(s);
        nixl_cpp::c_ptr<void> hold(blob);
        str.assign(static_cast<const char *>(blob), len);
        return NIXL_SUCCESS;
    }

    nixl_status_t loadRemoteMD(const nixl_blob_t &remote_metadata, std::string &agent_name)
    {
        char *name = nullptr;
        nixl_capi::nixl_status_t s = nixl_capi::nixl_agent_load_remote_md(
            agent_, remote_metadata.data(), remote_metadata.size(), &name);
        if (s != nixl_capi::NIXL_SUCCESS)
            return nixl_cpp::st(s);
        nixl_cpp::c_ptr<char> hold(name);
        agent_name = name;
        return NIXL_SUCCESS;
    }

    nixl_status_t invalidateRemoteMD(const std::string &remote_agent)
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_invalidate_remote_md(agent_, remote_agent.c_str()));
    }

    nixl_status_t sendLocalMD(const nixl_opt_args_t *extra_params = nullptr) const
    {
        return nixl_cpp::st(
            nixl_capi::nixl_agent_send_local_md(agent_, nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t sendLocalPartialMD(const nixl_reg_dlist_t &descs,
                                     const nixl_opt_args_t *extra_params = nullptr) const
    {
        auto c = nixl_cpp::reg_descs(descs);
        return nixl_cpp::st(nixl_capi::nixl_agent_send_local_partial_md(
            agent_, nixl_cpp::mem_of(descs.getType()), c.data(), c.size(),
            nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t fetchRemoteMD(const std::string remote_name, const nixl_opt_args_t *extra_params = nullptr)
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_fetch_remote_md(agent_, remote_name.c_str(),
                                                                  nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t invalidateLocalMD(const nixl_opt_args_t *extra_params = nullptr) const
    {
        return nixl_cpp::st(
            nixl_capi::nixl_agent_invalidate_local_md(agent_, nixl_cpp::opt_args(extra_params).get()));
    }

    nixl_status_t checkRemoteMD(const std::string remote_name, const nixl_xfer_dlist_t &descs) const
    {
        return nixl_cpp::st(nixl_capi::nixl_agent_check_remote_md(
            agent_, remote_name.c_str(), nixl_cpp::mem_of(descs.getType()), nixl_cpp::descs_of(descs),
            static_cast<size_t>(descs.descCount())));
    }

private:
    static nixl_capi::nixl_xfer_req_t *req(const nixlXferReqH *r)
    {
        return reinterpret_cast<nixl_capi::nixl_xfer_req_t *>(const_cast<nixlXferReqH *>(r));
    }

    nixl_capi::nixl_agent_t *const agent_;
};

#endif /* NIXL_SRC_API_CPP_NIXL_H */
