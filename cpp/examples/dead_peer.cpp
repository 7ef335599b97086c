/*
 * dead_peer.cpp - error handling when the peer dies (the reference error_handling test's
 * shape): a target process registers memory and hands over its metadata; the initiator moves
 * data to it once, the target is killed, and the next post must end in
 * NIXL_ERR_REMOTE_DISCONNECT within 5 s, after which the request can still be released and the
 * peer's metadata is gone.
 *
 * Build against an installed copy:  c++ -std=c++20 dead_peer.cpp $(pkg-config --cflags --libs nixl-cpp)
 */
#include <nixl.h>
#include <nixl_types.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = static_cast<const char *>(p);
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w <= 0)
            return false;
        c += w, n -= static_cast<size_t>(w);
    }
    return true;
}

static bool read_all(int fd, void *p, size_t n)
{
    char *c = static_cast<char *>(p);
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r <= 0)
            return false;
        c += r, n -= static_cast<size_t>(r);
    }
    return true;
}

/* The target: register, send (address, metadata) up the pipe, then wait to be killed. */
[[noreturn]] static void target_main(int out)
{
    static std::vector<char> buf(256, 0);
    nixlAgentConfig cfg;
    nixlAgent agent("target", cfg);
    nixlBackendH *shm = nullptr;
    nixl_reg_dlist_t reg(DRAM_SEG);
    reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(buf.data()), buf.size(), 0, ""));
    nixl_blob_t md;
    if (agent.createBackend("SHM", {}, shm) != NIXL_SUCCESS || agent.registerMem(reg) != NIXL_SUCCESS ||
        agent.getLocalMD(md) != NIXL_SUCCESS)
        _exit(1);
    uint64_t addr = reinterpret_cast<uintptr_t>(buf.data()), len = md.size();
    if (!write_all(out, &addr, sizeof(addr)) || !write_all(out, &len, sizeof(len)) ||
        !write_all(out, md.data(), md.size()))
        _exit(1);
    for (;;)
        pause();
}

static nixl_status_t wait_xfer(nixlAgent &agent, nixlXferReqH *req, nixl_status_t st)
{
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (st == NIXL_IN_PROG && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        st = agent.getXferStatus(req);
    }
    return st;
}

int main()
{
    int p[2];
    if (pipe(p) != 0)
        return EXIT_FAILURE;
    pid_t pid = fork();
    if (pid < 0)
        return EXIT_FAILURE;
    if (pid == 0) {
        close(p[0]);
        target_main(p[1]);
    }
    close(p[1]);
    uint64_t addr = 0, len = 0;
    nixl_blob_t md;
    if (!read_all(p[0], &addr, sizeof(addr)) || !read_all(p[0], &len, sizeof(len))) {
        std::cerr << "the target did not start\n";
        return EXIT_FAILURE;
    }
    md.resize(len);
    if (!read_all(p[0], md.data(), len))
        return EXIT_FAILURE;
    close(p[0]);

    int rc = EXIT_FAILURE;
    {
        nixlAgentConfig cfg;
        nixlAgent agent("initiator", cfg);
        nixlBackendH *shm = nullptr;
        std::vector<char> src(256, 'z');
        nixl_reg_dlist_t reg(DRAM_SEG);
        reg.addDesc(nixlBlobDesc(reinterpret_cast<uintptr_t>(src.data()), src.size(), 0, ""));
        std::string name;
        nixl_xfer_dlist_t remote(DRAM_SEG);
        remote.addDesc(nixlBasicDesc(addr, 256, 0));
        nixlXferReqH *req = nullptr;
        nixl_opt_args_t opt;
        opt.notif = "notification";
        nixl_status_t st;
        if (agent.createBackend("SHM", {}, shm) != NIXL_SUCCESS || agent.registerMem(reg) != NIXL_SUCCESS ||
            agent.loadRemoteMD(md, name) != NIXL_SUCCESS || name != "target" ||
            agent.createXferReq(NIXL_WRITE, reg.trim(), remote, name, req, &opt) != NIXL_SUCCESS) {
            std::cerr << "setup failed\n";
        } else if ((st = wait_xfer(agent, req, agent.postXferReq(req))) != NIXL_SUCCESS) {
            std::cerr << "first transfer: " << nixlEnumStrings::statusStr(st) << '\n';
        } else {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
            pid = -1;
            st = wait_xfer(agent, req, agent.postXferReq(req));
            std::cout << "post after the target died: " << nixlEnumStrings::statusStr(st) << '\n';
            if (st != NIXL_ERR_REMOTE_DISCONNECT)
                std::cerr << "expected NIXL_ERR_REMOTE_DISCONNECT\n";
            else if (agent.releaseXferReq(req) != NIXL_SUCCESS)
                std::cerr << "release failed\n";
            else if (agent.checkRemoteMD("target", {DRAM_SEG}) != NIXL_ERR_NOT_FOUND)
                std::cerr << "the dead peer's metadata is still loaded\n";
            else
                rc = EXIT_SUCCESS;
        }
    }
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
    if (rc == EXIT_SUCCESS)
        std::cout << "dead_peer: ok\n";
    return rc;
}
