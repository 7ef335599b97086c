/*
 * test_agent.cpp - every nixlAgent method over the C library: backends and their parameters,
 * registration, metadata (local, remote, partial, side channel), prepared lists and requests,
 * post/status/release, notifications, telemetry, query_mem over POSIX, and the errors.
 * Backends: SHM (built in) and POSIX (NIXL_PLUGIN_DIR).
 */
#include <gtest/gtest.h>

#include "nixl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

template<class F> bool eventually(F done)
{
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
        if (std::chrono::steady_clock::now() > until)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

uint16_t free_port()
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
    EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

nixl_status_t wait_done(const nixlAgent &agent, nixlXferReqH *req, nixl_status_t st)
{
    while (st == NIXL_IN_PROG)
        st = agent.getXferStatus(req);
    return st;
}

/* An agent with an SHM engine and two registered buffers. */
struct Side {
    std::unique_ptr<nixlAgent> agent;
    nixlBackendH *shm = nullptr;
    std::vector<char> a, b;
    nixl_reg_dlist_t reg{DRAM_SEG};

    explicit Side(const std::string &name, const nixlAgentConfig &cfg = nixlAgentConfig(), size_t len = 4096)
        : agent(std::make_unique<nixlAgent>(name, cfg)), a(len, 'a'), b(len, 'b')
    {
        EXPECT_EQ(agent->createBackend("SHM", {}, shm), NIXL_SUCCESS);
        reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(a.data()), len, 0, ""));
        reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(b.data()), len, 0, ""));
        EXPECT_EQ(agent->registerMem(reg), NIXL_SUCCESS);
    }
    nixl_xfer_dlist_t one(const std::vector<char> &v, size_t off, size_t len) const
    {
        nixl_xfer_dlist_t l(DRAM_SEG);
        l.addDesc(nixlBasicDesc(reinterpret_cast<uintptr_t>(v.data()) + off, len, 0));
        return l;
    }
};

} // namespace

TEST(Agent, Construction)
{
    nixlAgentConfig cfg;
    EXPECT_THROW(nixlAgent("", cfg), std::invalid_argument);
    EXPECT_THROW(nixlAgent(std::string(300, 'n'), cfg), std::invalid_argument);
    uint16_t port = free_port();
    nixlAgent listening("listener", nixlAgentConfig(false, true, port));
    EXPECT_THROW(nixlAgent("second", nixlAgentConfig(false, true, port)), std::runtime_error);
    auto heap = std::make_unique<nixlAgent>("heap", cfg);
    nixlAgent *raw = new nixlAgent(std::string("raw"), nixlAgentConfig());
    delete raw;
}

TEST(Agent, PluginsAndBackends)
{
    nixlAgent agent("backends", nixlAgentConfig());
    std::vector<nixl_backend_t> plugins{"stale"};
    ASSERT_EQ(agent.getAvailPlugins(plugins), NIXL_SUCCESS);
    EXPECT_NE(std::find(plugins.begin(), plugins.end(), "SHM"), plugins.end());
    EXPECT_NE(std::find(plugins.begin(), plugins.end(), "POSIX"), plugins.end());
    EXPECT_EQ(std::find(plugins.begin(), plugins.end(), "stale"), plugins.end());

    nixl_mem_list_t mems;
    nixl_b_params_t params;
    ASSERT_EQ(agent.getPluginParams("SHM", mems, params), NIXL_SUCCESS);
    EXPECT_NE(std::find(mems.begin(), mems.end(), DRAM_SEG), mems.end());
    EXPECT_EQ(agent.getPluginParams("NO_SUCH_PLUGIN", mems, params), NIXL_ERR_NOT_FOUND);

    nixlBackendH *shm = nullptr, *again = nullptr, *posix = nullptr;
    EXPECT_EQ(agent.createBackend("NO_SUCH_PLUGIN", {}, again), NIXL_ERR_NOT_FOUND);
    EXPECT_EQ(again, nullptr);
    ASSERT_EQ(agent.createBackend("SHM", {}, shm), NIXL_SUCCESS);
    ASSERT_NE(shm, nullptr);
    EXPECT_EQ(agent.createBackend("SHM", {}, again), NIXL_ERR_INVALID_PARAM);
    ASSERT_EQ(agent.createBackend("POSIX", nixl_b_params_t{}, posix), NIXL_SUCCESS);
    EXPECT_NE(posix, shm);

    mems.clear();
    params.clear();
    ASSERT_EQ(agent.getBackendParams(posix, mems, params), NIXL_SUCCESS);
    EXPECT_NE(std::find(mems.begin(), mems.end(), FILE_SEG), mems.end());
    EXPECT_EQ(agent.getBackendParams(nullptr, mems, params), NIXL_ERR_INVALID_PARAM);
}

TEST(Agent, RegisterDeregister)
{
    nixlAgent agent("reg", nixlAgentConfig());
    std::vector<char> buf(8192);
    nixl_reg_dlist_t reg(DRAM_SEG);
    reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(buf.data()), buf.size(), 0, ""));
    EXPECT_EQ(agent.registerMem(reg), NIXL_ERR_NOT_FOUND); /* no backend yet */
    nixlBackendH *shm = nullptr;
    ASSERT_EQ(agent.createBackend("SHM", {}, shm), NIXL_SUCCESS);
    nixl_opt_args_t opt;
    opt.backends.push_back(shm);
    EXPECT_EQ(agent.registerMem(reg, &opt), NIXL_SUCCESS);
    EXPECT_EQ(agent.deregisterMem(reg, &opt), NIXL_SUCCESS);
    EXPECT_EQ(agent.deregisterMem(reg), NIXL_ERR_NOT_FOUND);
    nixl_reg_dlist_t file(FILE_SEG); /* no engine of this agent takes files */
    file.addDesc(nixlBlobDesc(0, 0, 0, "rw:/tmp/nowhere"));
    EXPECT_EQ(agent.registerMem(file), NIXL_ERR_NOT_FOUND);
}

TEST(Agent, LoopbackCreatePostStatusRelease)
{
    nixlAgentConfig cfg;
    cfg.captureTelemetry = true;
    Side s("loop", cfg);
    nixlXferReqH *req = reinterpret_cast<nixlXferReqH *>(&s);
    nixl_opt_args_t opt;
    opt.notif = "done";
    ASSERT_EQ(s.agent->createXferReq(NIXL_WRITE, s.one(s.a, 0, 4096), s.one(s.b, 0, 4096), "loop", req, &opt),
              NIXL_SUCCESS);
    EXPECT_EQ(s.agent->getXferStatus(req), NIXL_ERR_NOT_POSTED);
    nixl_xfer_telem_t telem;
    EXPECT_EQ(s.agent->getXferTelemetry(req, telem), NIXL_ERR_NOT_POSTED);
    EXPECT_EQ(wait_done(*s.agent, req, s.agent->postXferReq(req)), NIXL_SUCCESS);
    EXPECT_EQ(s.b, s.a);
    ASSERT_EQ(s.agent->getXferTelemetry(req, telem), NIXL_SUCCESS);
    EXPECT_EQ(telem.totalBytes, 4096u);
    EXPECT_EQ(telem.descCount, 1u);
    EXPECT_LE(telem.startTime, std::chrono::steady_clock::now());
    nixlBackendH *chosen = nullptr;
    EXPECT_EQ(s.agent->queryXferBackend(req, chosen), NIXL_SUCCESS);
    EXPECT_EQ(chosen, s.shm);
    std::chrono::microseconds dur{-1}, margin{-1};
    nixl_cost_t method;
    nixl_status_t cost = s.agent->estimateXferCost(req, dur, margin, method);
    EXPECT_TRUE(cost == NIXL_SUCCESS || cost == NIXL_ERR_NOT_SUPPORTED) << nixlEnumStrings::statusStr(cost);

    nixl_notifs_t notifs;
    notifs["earlier"].push_back("kept");
    ASSERT_TRUE(eventually([&] {
        EXPECT_EQ(s.agent->getNotifs(notifs), NIXL_SUCCESS);
        return !notifs["loop"].empty();
    }));
    EXPECT_EQ(notifs["loop"].front(), "done");
    EXPECT_EQ(notifs["earlier"].size(), 1u); /* getNotifs appends */
    EXPECT_EQ(s.agent->releaseXferReq(req), NIXL_SUCCESS);

    nixlAgent quiet("quiet", nixlAgentConfig());
    (void)quiet;
}

TEST(Agent, TelemetryOff)
{
    Side s("notelem");
    nixlXferReqH *req = nullptr;
    ASSERT_EQ(s.agent->createXferReq(NIXL_WRITE, s.one(s.a, 0, 64), s.one(s.b, 0, 64), "notelem", req),
              NIXL_SUCCESS);
    EXPECT_EQ(wait_done(*s.agent, req, s.agent->postXferReq(req)), NIXL_SUCCESS);
    nixl_xfer_telem_t telem;
    EXPECT_EQ(s.agent->getXferTelemetry(req, telem), NIXL_ERR_NO_TELEMETRY);
    EXPECT_EQ(s.agent->releaseXferReq(req), NIXL_SUCCESS);
}

TEST(Agent, PrepMakeAndMerge)
{
    nixlAgentConfig cfg;
    cfg.captureTelemetry = true;
    Side s("prep", cfg);
    nixl_xfer_dlist_t local(DRAM_SEG), remote(DRAM_SEG);
    for (size_t i = 0; i < 4; i++) {
        local.addDesc(nixlBasicDesc(reinterpret_cast<uintptr_t>(s.a.data()) + 1024 * i, 1024, 0));
        remote.addDesc(nixlBasicDesc(reinterpret_cast<uintptr_t>(s.b.data()) + 1024 * i, 1024, 0));
    }
    std::fill(s.a.begin(), s.a.end(), 'x');
    nixlDlistH *lh = nullptr, *rh = nullptr;
    ASSERT_EQ(s.agent->prepXferDlist(NIXL_INIT_AGENT, local, lh), NIXL_SUCCESS);
    nixl_opt_args_t only_shm;
    only_shm.backends = {s.shm};
    ASSERT_EQ(s.agent->prepXferDlist("prep", remote, rh, &only_shm), NIXL_SUCCESS);
    nixlDlistH *lh2 = nullptr;
    ASSERT_EQ(s.agent->prepXferDlist(local, lh2), NIXL_SUCCESS);
    EXPECT_EQ(s.agent->releasedDlistH(lh2), NIXL_SUCCESS);
    EXPECT_EQ(s.agent->releasedDlistH(nullptr), NIXL_SUCCESS);

    /* consecutive indices merge into one descriptor, unless told not to */
    nixlXferReqH *merged = nullptr, *separate = nullptr;
    std::vector<int> idx = {0, 1, 2, 3};
    ASSERT_EQ(s.agent->makeXferReq(NIXL_WRITE, lh, idx, rh, idx, merged), NIXL_SUCCESS);
    nixl_opt_args_t no_merge;
    no_merge.skipDescMerge = true;
    ASSERT_EQ(s.agent->makeXferReq(NIXL_WRITE, lh, idx, rh, {3, 2, 1, 0}, separate, &no_merge), NIXL_SUCCESS);
    nixl_xfer_telem_t t;
    EXPECT_EQ(wait_done(*s.agent, merged, s.agent->postXferReq(merged)), NIXL_SUCCESS);
    ASSERT_EQ(s.agent->getXferTelemetry(merged, t), NIXL_SUCCESS);
    EXPECT_EQ(t.descCount, 1u);
    EXPECT_EQ(t.totalBytes, 4096u);
    EXPECT_EQ(s.b, s.a);
    EXPECT_EQ(wait_done(*s.agent, separate, s.agent->postXferReq(separate, &no_merge)), NIXL_SUCCESS);
    ASSERT_EQ(s.agent->getXferTelemetry(separate, t), NIXL_SUCCESS);
    EXPECT_EQ(t.descCount, 4u);

    nixlXferReqH *bad = reinterpret_cast<nixlXferReqH *>(&s);
    EXPECT_EQ(s.agent->makeXferReq(NIXL_WRITE, nullptr, idx, rh, idx, bad), NIXL_ERR_INVALID_PARAM);
    EXPECT_EQ(bad, nullptr);
    EXPECT_EQ(s.agent->makeXferReq(NIXL_WRITE, lh, idx, rh, {0, 1}, bad), NIXL_ERR_INVALID_PARAM);
    EXPECT_EQ(s.agent->makeXferReq(NIXL_WRITE, lh, {9}, rh, {0}, bad), NIXL_ERR_INVALID_PARAM);
    EXPECT_EQ(s.agent->releaseXferReq(merged), NIXL_SUCCESS);
    EXPECT_EQ(s.agent->releaseXferReq(separate), NIXL_SUCCESS);
    EXPECT_EQ(s.agent->releasedDlistH(lh), NIXL_SUCCESS);
    EXPECT_EQ(s.agent->releasedDlistH(rh), NIXL_SUCCESS);

    nixl_remote_dlist_t views(DRAM_SEG);
    nixlMemViewH mvh = nullptr;
    EXPECT_EQ(s.agent->prepMemView(views, mvh), NIXL_ERR_NOT_SUPPORTED);
    EXPECT_EQ(s.agent->prepMemView(local, mvh), NIXL_ERR_NOT_SUPPORTED);
    s.agent->releaseMemView(mvh);
}

TEST(Agent, TransferErrors)
{
    Side s("errs");
    nixlXferReqH *req = reinterpret_cast<nixlXferReqH *>(&s);
    EXPECT_EQ(s.agent->postXferReq(nullptr), NIXL_ERR_INVALID_PARAM);
    nixl_xfer_dlist_t two = s.one(s.a, 0, 64);
    two.addDesc(two[0]);
    EXPECT_EQ(s.agent->createXferReq(NIXL_WRITE, two, s.one(s.b, 0, 64), "errs", req), NIXL_ERR_INVALID_PARAM);
    EXPECT_EQ(req, nullptr);
    EXPECT_EQ(s.agent->createXferReq(NIXL_WRITE, s.one(s.a, 0, 64), s.one(s.b, 0, 64), "nobody", req),
              NIXL_ERR_NOT_FOUND);
    std::vector<char> unregistered(64);
    EXPECT_EQ(s.agent->createXferReq(NIXL_READ, s.one(unregistered, 0, 64), s.one(s.b, 0, 64), "errs", req),
              NIXL_ERR_NOT_FOUND);
    nixlDlistH *h = nullptr;
    EXPECT_EQ(s.agent->prepXferDlist("nobody", s.one(s.b, 0, 64), h), NIXL_ERR_NOT_FOUND);
    EXPECT_EQ(s.agent->genNotif("nobody", "x"), NIXL_ERR_NOT_FOUND);
}

TEST(Agent, MetadataByBlob)
{
    Side target("target"), init("initiator");
    nixl_blob_t md;
    ASSERT_EQ(target.agent->getLocalMD(md), NIXL_SUCCESS);
    std::string name;
    EXPECT_EQ(init.agent->checkRemoteMD("target", {DRAM_SEG}), NIXL_ERR_NOT_FOUND);
    ASSERT_EQ(init.agent->loadRemoteMD(md, name), NIXL_SUCCESS);
    EXPECT_EQ(name, "target");
    EXPECT_EQ(init.agent->checkRemoteMD("target", {DRAM_SEG}), NIXL_SUCCESS);
    EXPECT_EQ(init.agent->checkRemoteMD("target", target.reg.trim()), NIXL_SUCCESS);
    EXPECT_EQ(init.agent->checkRemoteMD("target", init.reg.trim()), NIXL_ERR_NOT_FOUND);
    EXPECT_EQ(init.agent->makeConnection("target"), NIXL_SUCCESS);
    EXPECT_EQ(init.agent->makeConnection("nobody"), NIXL_ERR_NOT_FOUND);

    nixl_blob_t garbage = md;
    garbage[0] ^= 0x55;
    EXPECT_EQ(init.agent->loadRemoteMD(garbage, name), NIXL_ERR_MISMATCH);
    EXPECT_EQ(init.agent->loadRemoteMD("invalid", name), NIXL_ERR_MISMATCH);
    nixl_blob_t own;
    ASSERT_EQ(init.agent->getLocalMD(own), NIXL_SUCCESS);
    EXPECT_EQ(init.agent->loadRemoteMD(own, name), NIXL_ERR_INVALID_PARAM);

    /* a READ from the target, then a standalone notification to it */
    std::fill(target.a.begin(), target.a.end(), 'T');
    nixlXferReqH *req = nullptr;
    ASSERT_EQ(init.agent->createXferReq(NIXL_READ, init.one(init.b, 0, 4096), target.one(target.a, 0, 4096),
                                        "target", req),
              NIXL_SUCCESS);
    EXPECT_EQ(wait_done(*init.agent, req, init.agent->postXferReq(req)), NIXL_SUCCESS);
    EXPECT_EQ(init.b, target.a);
    EXPECT_EQ(init.agent->releaseXferReq(req), NIXL_SUCCESS);
    ASSERT_EQ(init.agent->genNotif("target", std::string("bin\0ary", 7)), NIXL_SUCCESS);
    nixl_notifs_t notifs;
    ASSERT_TRUE(eventually([&] {
        target.agent->getNotifs(notifs);
        return notifs.count("initiator") > 0;
    }));
    EXPECT_EQ(notifs["initiator"].front(), std::string("bin\0ary", 7));

    EXPECT_EQ(init.agent->invalidateRemoteMD("target"), NIXL_SUCCESS);
    EXPECT_EQ(init.agent->checkRemoteMD("target", {DRAM_SEG}), NIXL_ERR_NOT_FOUND);
    EXPECT_EQ(init.agent->invalidateRemoteMD("target"), NIXL_ERR_NOT_FOUND);
}

TEST(Agent, PartialMetadata)
{
    Side target("ptarget"), init("pinit");
    nixl_reg_dlist_t first(DRAM_SEG);
    first.addDesc(target.reg[0]);
    nixl_blob_t conn_only, part;
    ASSERT_EQ(target.agent->getLocalPartialMD({DRAM_SEG}, conn_only, nullptr), NIXL_SUCCESS);
    nixl_opt_args_t with_conn;
    with_conn.includeConnInfo = true;
    ASSERT_EQ(target.agent->getLocalPartialMD(first, part, &with_conn), NIXL_SUCCESS);
    nixl_blob_t untouched = "untouched";
    nixl_reg_dlist_t unknown(DRAM_SEG);
    unknown.addDesc(nixlBlobDesc(0x10, 10, 0, ""));
    EXPECT_NE(target.agent->getLocalPartialMD(unknown, untouched), NIXL_SUCCESS);
    EXPECT_EQ(untouched, "untouched");

    std::string name;
    ASSERT_EQ(init.agent->loadRemoteMD(part, name), NIXL_SUCCESS);
    EXPECT_EQ(init.agent->checkRemoteMD("ptarget", first.trim()), NIXL_SUCCESS);
    EXPECT_EQ(init.agent->checkRemoteMD("ptarget", target.reg.trim()), NIXL_ERR_NOT_FOUND);
    ASSERT_EQ(init.agent->loadRemoteMD(conn_only, name), NIXL_SUCCESS);
}

TEST(Agent, SideChannel)
{
    uint16_t port = free_port();
    Side target("sc_target", nixlAgentConfig(true, true, port)), init("sc_init");
    nixl_opt_args_t md;
    md.ipAddr = "127.0.0.1";
    md.port = port;
    EXPECT_EQ(init.agent->sendLocalMD(), NIXL_ERR_INVALID_PARAM); /* no peer, no etcd */
    ASSERT_EQ(init.agent->fetchRemoteMD("sc_target", &md), NIXL_SUCCESS);
    ASSERT_TRUE(eventually([&] { return init.agent->checkRemoteMD("sc_target", target.reg.trim()) == NIXL_SUCCESS; }));

    nixl_reg_dlist_t half(DRAM_SEG);
    half.addDesc(init.reg[1]);
    nixl_opt_args_t partial = md;
    partial.includeConnInfo = true;
    ASSERT_EQ(init.agent->sendLocalPartialMD(half, &partial), NIXL_SUCCESS);
    ASSERT_TRUE(eventually([&] { return target.agent->checkRemoteMD("sc_init", half.trim()) == NIXL_SUCCESS; }));
    EXPECT_EQ(target.agent->checkRemoteMD("sc_init", init.reg.trim()), NIXL_ERR_NOT_FOUND);
    ASSERT_EQ(init.agent->sendLocalMD(&md), NIXL_SUCCESS);
    ASSERT_TRUE(eventually([&] { return target.agent->checkRemoteMD("sc_init", init.reg.trim()) == NIXL_SUCCESS; }));
    ASSERT_EQ(init.agent->invalidateLocalMD(&md), NIXL_SUCCESS);
    ASSERT_TRUE(eventually([&] { return target.agent->checkRemoteMD("sc_init", {DRAM_SEG}) == NIXL_ERR_NOT_FOUND; }));
}

TEST(Agent, QueryMemPosix)
{
    char dir[] = "/tmp/nixl_cpp_qmXXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string file = std::string(dir) + "/f";
    std::ofstream(file) << std::string(100, 'q');
    nixlAgent agent("test_agent", nixlAgentConfig());
    nixlBackendH *posix = nullptr;
    ASSERT_EQ(agent.createBackend("POSIX", {}, posix), NIXL_SUCCESS);
    nixlDescList<nixlBlobDesc> descs(FILE_SEG);
    descs.addDesc(nixlBlobDesc(0, 0, 0, file));
    descs.addDesc(nixlBlobDesc(0, 0, 0, file + ".missing"));
    std::vector<nixl_query_resp_t> resp;
    nixl_opt_args_t extra_params;
    EXPECT_EQ(agent.queryMem(descs, resp, &extra_params), NIXL_ERR_INVALID_PARAM); /* no backend named */
    extra_params.backends = {posix};
    ASSERT_EQ(agent.queryMem(descs, resp, &extra_params), NIXL_SUCCESS);
    ASSERT_EQ(resp.size(), 2u);
    ASSERT_TRUE(resp[0].has_value());
    EXPECT_NE(resp[0].value().find("size"), resp[0].value().end());
    EXPECT_EQ(resp[0].value()["size"], "100");
    EXPECT_FALSE(resp[1].has_value());

    /* and a FILE registration through the same backend, by path */
    nixl_reg_dlist_t reg(FILE_SEG);
    reg.addDesc(nixlBlobDesc(0, 0, 0, "rw:" + file));
    nixl_opt_args_t opt;
    opt.backends = {posix};
    EXPECT_EQ(agent.registerMem(reg, &opt), NIXL_SUCCESS);
    EXPECT_EQ(agent.deregisterMem(reg, &opt), NIXL_SUCCESS);
    std::remove(file.c_str());
    rmdir(dir);
}
