/*
 * mt_loop.cpp - several threads share one agent (NIXL_THREAD_SYNC_RW, as the reference's
 * multi-threading test configures it): each registers its own buffers, moves data to itself
 * through the agent's loopback (createXferReq naming the agent itself), checks it, releases and
 * deregisters, over and over.
 *
 * Build against an installed copy:  c++ -std=c++20 mt_loop.cpp $(pkg-config --cflags --libs nixl-cpp)
 * Usage: mt_loop [threads] [iterations]
 */
#include <nixl.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

static const std::string agent_name = "mt_agent";

static nixlAgent make_agent()
{
    nixlAgentConfig cfg;
    cfg.syncMode = nixl_thread_sync_t::NIXL_THREAD_SYNC_RW;
    return nixlAgent(agent_name, cfg); /* not movable: returned by guaranteed elision */
}

static bool one_round(nixlAgent &agent, nixlBackendH *backend, int thread, int iter)
{
    const size_t len = 4096 + 64 * static_cast<size_t>(thread);
    std::vector<unsigned char> src(len), dst(len, 0);
    for (size_t i = 0; i < len; i++)
        src[i] = static_cast<unsigned char>(i * 7 + static_cast<size_t>(thread + iter));
    nixl_opt_args_t opt;
    opt.backends = {backend};
    nixlDescList<nixlBlobDesc> reg(DRAM_SEG);
    reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(src.data()), len, 0, ""));
    reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(dst.data()), len, 0, ""));
    if (agent.registerMem(reg, &opt) != NIXL_SUCCESS)
        return false;
    nixlDescList<nixlBasicDesc> from(DRAM_SEG), to(DRAM_SEG);
    from.addDesc(nixlBasicDesc(reinterpret_cast<uintptr_t>(src.data()), len, 0));
    to.addDesc(nixlBasicDesc(reinterpret_cast<uintptr_t>(dst.data()), len, 0));
    nixlXferReqH *req = nullptr;
    bool ok = agent.createXferReq(NIXL_WRITE, from, to, agent_name, req, &opt) == NIXL_SUCCESS;
    nixl_status_t st = ok ? agent.postXferReq(req) : NIXL_ERR_UNKNOWN;
    while (st == NIXL_IN_PROG)
        st = agent.getXferStatus(req);
    ok = ok && st == NIXL_SUCCESS && src == dst;
    if (req)
        ok = agent.releaseXferReq(req) == NIXL_SUCCESS && ok;
    return agent.deregisterMem(reg, &opt) == NIXL_SUCCESS && ok;
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? std::atoi(argv[1]) : 4;
    const int iterations = argc > 2 ? std::atoi(argv[2]) : 50;
    nixlAgent agent = make_agent();
    nixlBackendH *backend = nullptr;
    if (agent.createBackend("SHM", {}, backend) != NIXL_SUCCESS) {
        std::cerr << "createBackend SHM failed\n";
        return EXIT_FAILURE;
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
        pool.emplace_back([&, t] {
            for (int i = 0; i < iterations; i++)
                if (!one_round(agent, backend, t, i))
                    failures++;
        });
    for (auto &th : pool)
        th.join();
    if (failures) {
        std::cerr << "mt_loop: " << failures << " rounds failed\n";
        return EXIT_FAILURE;
    }
    std::cout << "mt_loop: " << threads << " threads x " << iterations << " rounds: ok\n";
    return 0;
}
