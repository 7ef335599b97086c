/*
 * shm_sys.c - facts about this host and process: can we use cross-memory attach, which boot and
 * namespaces we live in, and the connection-info blob that carries them to peers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shm_priv.h"

#define CAP_SYS_PTRACE_BIT 19

void shm_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void shm_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t shm_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

uint64_t shm_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void shm_put_frame32(uint8_t *f, uint32_t magic, uint32_t x, uint64_t a, uint64_t b,
                     uint64_t c)
{
    shm_put_u32(f, magic);
    shm_put_u32(f + 4, x);
    shm_put_u64(f + 8, a);
    shm_put_u64(f + 16, b);
    shm_put_u64(f + 24, c);
}

ssize_t shm_send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } c;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {(void *)(uintptr_t)buf, len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        mh.msg_control = c.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t shm_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned max, unsigned *nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(SHM_RECV_FDS_MAX * sizeof(int))];
    } c;
    struct iovec iov = {buf, len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    *nfds = 0;
    for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (*nfds < max)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    return n;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* Small /proc files only; false when missing. */
static bool read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

static bool has_cap_sys_ptrace(void)
{
    char buf[4096];
    if (!read_small_file("/proc/self/status", buf, sizeof(buf)))
        return false;
    const char *p = strstr(buf, "\nCapEff:");
    if (!p)
        return false;
    unsigned long long caps = strtoull(p + 8, NULL, 16);
    return (caps >> CAP_SYS_PTRACE_BIT) & 1u;
}

/* Fill `why` and return NIXL_ERR_BACKEND: the caller decides whether that is fatal. */
static nixl_status_t cma_off(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nixl_status_t cma_off(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return NIXL_ERR_BACKEND;
}

nixl_status_t shm_sys_check_cma(const nixl_host_t *host, bool ptracer_any, char *why,
                                size_t cap)
{
    char buf[32];

    /* Yama restricts who may attach to whom; cross-memory attach obeys the same rules as
     * ptrace, so a peer could not reach us (or we it) without the right setting. */
    if (read_small_file("/proc/sys/kernel/yama/ptrace_scope", buf, sizeof(buf))) {
        int scope = atoi(buf);
        if (scope == 1 && !ptracer_any) {
            /* ptracer=none: the process keeps Yama's protection; a peer reaches us only with
             * CAP_SYS_PTRACE or as our ancestor (docs/security.md). */
            NIXL_BE_LOG(host, NIXL_LOG_INFO,
                        "kernel.yama.ptrace_scope=1 and ptracer=none: peers need "
                        "CAP_SYS_PTRACE (or to be an ancestor) to copy to and from this "
                        "process");
        } else if (scope == 1) {
            /* Our peers are not our ancestors: allow any process of our user to attach. This
             * gives up Yama's protection for the whole process (ptracer=none keeps it). */
            if (prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0) != 0)
                return cma_off(why, cap,
                               "kernel.yama.ptrace_scope=1 and prctl(PR_SET_PTRACER) failed "
                               "(%s): peers could not attach to this process",
                               strerror(errno));
        } else if (scope == 2) {
            if (!has_cap_sys_ptrace())
                return cma_off(why, cap,
                               "kernel.yama.ptrace_scope=2: cross-memory attach needs "
                               "CAP_SYS_PTRACE, which this process lacks");
        } else if (scope >= 3) {
            return cma_off(why, cap,
                           "kernel.yama.ptrace_scope=%d forbids cross-memory attach until "
                           "reboot",
                           scope);
        }
    }

    /* Container runtimes filter process_vm_* with seccomp unless CAP_SYS_PTRACE is granted. */
    char src[8] = "nixlshm", dst[8] = {0};
    struct iovec l = {dst, sizeof(dst)}, r = {src, sizeof(src)};
    ssize_t n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
    if (n != (ssize_t)sizeof(dst) || memcmp(src, dst, sizeof(dst)) != 0)
        return cma_off(why, cap,
                       "process_vm_readv on this process failed (%s): in a container it is "
                       "usually filtered by seccomp (run with CAP_SYS_PTRACE, docker "
                       "--cap-add SYS_PTRACE, or a profile that allows process_vm_readv/writev)",
                       strerror(n < 0 ? errno : EIO));
    return NIXL_SUCCESS;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void ns_id(const char *path, uint64_t *dev, uint64_t *ino)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        *dev = (uint64_t)st.st_dev;
        *ino = (uint64_t)st.st_ino;
    } else {
        *dev = *ino = 0; /* no /proc: peers without it compare equal, which is all we can do */
    }
}

void shm_sys_identity(shm_conn_info_t *info)
{
    char buf[64];
    memset(info->boot_id, 0, sizeof(info->boot_id));
    if (read_small_file("/proc/sys/kernel/random/boot_id", buf, sizeof(buf))) {
        size_t k = 0;
        int hi = -1;
        for (const char *p = buf; *p && k < sizeof(info->boot_id); p++) {
            int v = hexval(*p);
            if (v < 0)
                continue;
            if (hi < 0) {
                hi = v;
            } else {
                info->boot_id[k++] = (uint8_t)(hi << 4 | v);
                hi = -1;
            }
        }
    }
    ns_id("/proc/self/ns/pid", &info->pidns_dev, &info->pidns_ino);
    ns_id("/proc/self/ns/net", &info->netns_dev, &info->netns_ino);
    info->pid = (uint32_t)getpid();
}

/*
 * Blob layout (little endian): magic "NXSHM1" | u16 total length | boot id[16] |
 * u64 pid-ns dev | u64 pid-ns ino | u64 net-ns dev | u64 net-ns ino | u32 pid |
 * u16 socket-name length | socket name (abstract, without the leading NUL) | u32 flags
 * (SHM_INFO_*; absent in blobs of older versions, which means 0).
 */
#define OFF_LEN 6
#define OFF_BOOT 8
#define OFF_PIDNS 24
#define OFF_NETNS 40
#define OFF_PID 56
#define OFF_SOCKLEN 60
#define OFF_SOCK 62

size_t shm_conn_encode(const shm_conn_info_t *info, uint8_t *out)
{
    size_t len = OFF_SOCK + info->sock_len + 4;
    memcpy(out, SHM_CONN_MAGIC, SHM_CONN_MAGIC_LEN);
    put_u16(out + OFF_LEN, (uint16_t)len);
    memcpy(out + OFF_BOOT, info->boot_id, 16);
    shm_put_u64(out + OFF_PIDNS, info->pidns_dev);
    shm_put_u64(out + OFF_PIDNS + 8, info->pidns_ino);
    shm_put_u64(out + OFF_NETNS, info->netns_dev);
    shm_put_u64(out + OFF_NETNS + 8, info->netns_ino);
    shm_put_u32(out + OFF_PID, info->pid);
    put_u16(out + OFF_SOCKLEN, info->sock_len);
    memcpy(out + OFF_SOCK, info->sock_name, info->sock_len);
    shm_put_u32(out + OFF_SOCK + info->sock_len, info->flags);
    return len;
}

nixl_status_t shm_conn_decode(const void *blob, size_t len, shm_conn_info_t *out,
                              const char **why)
{
    const uint8_t *p = blob;

    if (!blob || len < OFF_SOCK) {
        *why = "shorter than its fixed header";
        return NIXL_ERR_MISMATCH;
    }
    if (memcmp(p, SHM_CONN_MAGIC, SHM_CONN_MAGIC_LEN) != 0) {
        *why = "bad magic (not SHM connection info, or another version)";
        return NIXL_ERR_MISMATCH;
    }
    if (get_u16(p + OFF_LEN) != len) {
        *why = "length field does not match the blob size";
        return NIXL_ERR_MISMATCH;
    }
    uint16_t sock_len = get_u16(p + OFF_SOCKLEN);
    size_t end = OFF_SOCK + (size_t)sock_len;
    if (sock_len == 0 || sock_len > SHM_SOCK_NAME_MAX || (end != len && end + 4 != len)) {
        *why = "bad socket-name length";
        return NIXL_ERR_MISMATCH;
    }
    uint32_t pid = shm_get_u32(p + OFF_PID);
    if (pid == 0 || pid > INT32_MAX) {
        *why = "bad pid";
        return NIXL_ERR_MISMATCH;
    }
    memcpy(out->boot_id, p + OFF_BOOT, 16);
    out->pidns_dev = shm_get_u64(p + OFF_PIDNS);
    out->pidns_ino = shm_get_u64(p + OFF_PIDNS + 8);
    out->netns_dev = shm_get_u64(p + OFF_NETNS);
    out->netns_ino = shm_get_u64(p + OFF_NETNS + 8);
    out->pid = pid;
    out->sock_len = sock_len;
    memcpy(out->sock_name, p + OFF_SOCK, sock_len);
    out->sock_name[sock_len] = '\0';
    out->flags = end + 4 == len ? shm_get_u32(p + end) : 0;
    return NIXL_SUCCESS;
}
