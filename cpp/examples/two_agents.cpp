/*
 * two_agents.cpp - two agents exchanging metadata through the side channel, then a WRITE with a
 * notification and a READ back, written as reference users write it (nixl_example.cpp's shape,
 * with sendLocalMD / fetchRemoteMD instead of passing blobs by hand).
 *
 * Build against an installed copy:  c++ -std=c++20 two_agents.cpp $(pkg-config --cflags --libs nixl-cpp)
 * Usage: two_agents [port]   (the target's listener port; default: a free one)
 */
#include <nixl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

static void check(nixl_status_t status, const std::string &what)
{
    if (status != NIXL_SUCCESS) {
        std::cerr << what << ": " << nixlEnumStrings::statusStr(status) << '\n';
        std::exit(EXIT_FAILURE);
    }
}

static uint16_t free_port()
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
        std::perror("socket");
        std::exit(EXIT_FAILURE);
    }
    close(fd);
    return ntohs(a.sin_port);
}

template<class F> static bool wait_for(F done)
{
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
        if (std::chrono::steady_clock::now() > until)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

static nixl_status_t wait_xfer(nixlAgent &agent, nixlXferReqH *req, nixl_status_t st)
{
    while (st == NIXL_IN_PROG)
        st = agent.getXferStatus(req);
    return st;
}

int main(int argc, char **argv)
{
    const uint16_t port = argc > 1 ? static_cast<uint16_t>(std::atoi(argv[1])) : free_port();
    const std::string initiator_name = "initiator", target_name = "target";

    nixlAgentConfig target_cfg(true, true, port);
    nixlAgent target(target_name, target_cfg);
    nixlAgentConfig cfg;
    cfg.useProgThread = true;
    nixlAgent initiator(initiator_name, cfg);

    std::vector<nixl_backend_t> plugins;
    check(initiator.getAvailPlugins(plugins), "getAvailPlugins");
    std::cout << "plugins:";
    for (const auto &p : plugins)
        std::cout << ' ' << p;
    std::cout << '\n';

    nixlBackendH *tb = nullptr, *ib = nullptr;
    check(target.createBackend("SHM", {}, tb), "target createBackend");
    check(initiator.createBackend("SHM", {}, ib), "initiator createBackend");
    nixl_mem_list_t mems;
    nixl_b_params_t params;
    check(initiator.getBackendParams(ib, mems, params), "getBackendParams");
    for (auto m : mems)
        std::cout << "SHM supports " << nixlEnumStrings::memTypeStr(m) << '\n';

    const size_t len = 1 << 20;
    std::vector<char> src(len, 'a'), dst(len, 0);
    nixl_opt_args_t opt;
    opt.backends.push_back(tb);
    nixlBlobDesc t_desc;
    t_desc.addr = reinterpret_cast<uintptr_t>(dst.data());
    t_desc.len = len;
    t_desc.devId = 0;
    nixl_reg_dlist_t t_reg(DRAM_SEG);
    t_reg.addDesc(t_desc);
    check(target.registerMem(t_reg, &opt), "target registerMem");
    nixl_reg_dlist_t i_reg(DRAM_SEG);
    i_reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(src.data()), len, 0, ""));
    check(initiator.registerMem(i_reg), "initiator registerMem");

    /* The side channel: fetch the target's metadata, and send ours to it. */
    nixl_opt_args_t md;
    md.ipAddr = "127.0.0.1";
    md.port = port;
    check(initiator.fetchRemoteMD(target_name, &md), "fetchRemoteMD");
    check(initiator.sendLocalMD(&md), "sendLocalMD");
    nixl_xfer_dlist_t remote = t_reg.trim();
    if (!wait_for([&] { return initiator.checkRemoteMD(target_name, remote) == NIXL_SUCCESS; }) ||
        !wait_for([&] { return target.checkRemoteMD(initiator_name, {DRAM_SEG}) == NIXL_SUCCESS; })) {
        std::cerr << "metadata did not arrive\n";
        return EXIT_FAILURE;
    }

    nixl_opt_args_t xo;
    xo.notif = "notification";
    nixlXferReqH *req = nullptr;
    check(initiator.createXferReq(NIXL_WRITE, i_reg.trim(), remote, target_name, req, &xo), "createXferReq");
    nixl_status_t st = initiator.postXferReq(req);
    if (st < NIXL_SUCCESS)
        check(st, "postXferReq");
    check(wait_xfer(initiator, req, st), "WRITE");
    check(initiator.releaseXferReq(req), "releaseXferReq");

    nixl_notifs_t notifs;
    if (!wait_for([&] {
            target.getNotifs(notifs);
            return !notifs[initiator_name].empty();
        })) {
        std::cerr << "no notification\n";
        return EXIT_FAILURE;
    }
    if (notifs[initiator_name].front() != "notification" || dst != src) {
        std::cerr << "WRITE: wrong notification or data\n";
        return EXIT_FAILURE;
    }

    std::fill(src.begin(), src.end(), 0);
    check(initiator.createXferReq(NIXL_READ, i_reg.trim(), remote, target_name, req), "createXferReq READ");
    check(wait_xfer(initiator, req, initiator.postXferReq(req)), "READ");
    check(initiator.releaseXferReq(req), "releaseXferReq");
    if (src != dst) {
        std::cerr << "READ: wrong data\n";
        return EXIT_FAILURE;
    }

    check(initiator.invalidateLocalMD(&md), "invalidateLocalMD");
    if (!wait_for([&] { return target.checkRemoteMD(initiator_name, {DRAM_SEG}) == NIXL_ERR_NOT_FOUND; })) {
        std::cerr << "invalidation did not arrive\n";
        return EXIT_FAILURE;
    }
    check(initiator.invalidateRemoteMD(target_name), "invalidateRemoteMD");
    check(initiator.deregisterMem(i_reg), "initiator deregisterMem");
    check(target.deregisterMem(t_reg, &opt), "target deregisterMem");
    std::cout << "two_agents: WRITE and READ of " << len << " bytes through SHM, metadata over the side channel: ok\n";
    return 0;
}
