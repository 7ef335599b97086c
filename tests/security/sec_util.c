/* sec_util.c - helpers of the red-team tests (sec_util.h). */
#include "sec_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int sec_main(int argc, char **argv, const sec_case_t *cases, size_t n)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; argc > 1 && i < n; i++)
        if (strcmp(argv[1], cases[i].name) == 0)
            return cases[i].run();
    fprintf(stderr, "usage: %s", argv[0]);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%s", i ? "|" : " ", cases[i].name);
    fprintf(stderr, "\n");
    return 2;
}

pid_t sec_fork(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A child must not outlive a test that failed (a stopped one would hold the test's
         * output open for ever). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
    }
    return pid;
}

uint64_t sec_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sec_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t sec_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

uint64_t sec_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000u;
}

/* Metadata needs a backend that talks to other agents: every agent here has SHM. */
nixl_agent_t *sec_listener(const char *name, int *port)
{
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = true;
    cfg.listen_port = 0;
    cfg.listen_addr = "127.0.0.1";
    nixl_agent_t *a = NULL;
    SEC_ST(nixl_agent_create(name, &cfg, &a));
    SEC_ST(nixl_agent_get_listen_port(a, port));
    sec_shm(a, NULL);
    return a;
}

nixl_agent_t *sec_agent_bare(const char *name)
{
    nixl_agent_t *a = NULL;
    SEC_ST(nixl_agent_create(name, NULL, &a));
    return a;
}

nixl_agent_t *sec_agent(const char *name)
{
    nixl_agent_t *a = sec_agent_bare(name);
    sec_shm(a, NULL);
    return a;
}

nixl_backend_t *sec_shm(nixl_agent_t *a, ...)
{
    nixl_param_t params[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, a);
    const char *k;
    while (n < 8 && (k = va_arg(ap, const char *)) != NULL) {
        params[n].key = k;
        params[n].value = va_arg(ap, const char *);
        n++;
    }
    va_end(ap);
    nixl_backend_t *be = NULL;
    SEC_ST(nixl_agent_create_backend(a, "SHM", n ? params : NULL, n, &be));
    return be;
}

bool sec_wait_loaded(nixl_agent_t *target, const char *name, unsigned timeout_ms)
{
    uint64_t end = sec_now_ms() + timeout_ms;
    do {
        if (nixl_agent_check_remote_md(target, name, NIXL_DRAM_SEG, NULL, 0) == NIXL_SUCCESS)
            return true;
        sec_sleep_ms(2);
    } while (sec_now_ms() < end);
    return false;
}

bool sec_honest_served(nixl_agent_t *target, int port, const char *name, unsigned timeout_ms,
                       uint64_t *took_ms)
{
    nixl_agent_t *h = sec_agent(name);
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.ip_addr = "127.0.0.1";
    opt.port = port;
    uint64_t t0 = sec_now_ms();
    SEC_ST(nixl_agent_send_local_md(h, &opt));
    bool ok = sec_wait_loaded(target, name, timeout_ms);
    if (took_ms)
        *took_ms = sec_now_ms() - t0;
    nixl_agent_destroy(h);
    return ok;
}

int sec_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool write_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        b += n;
        len -= (size_t)n;
    }
    return true;
}

bool sec_send_frame(int fd, const char *verb, const void *payload, size_t len)
{
    uint64_t body = 9 + 4 + len;
    uint8_t hdr[8 + 13];
    memcpy(hdr, &body, 8);
    memcpy(hdr + 8, "NIXLCOMM:", 9);
    memcpy(hdr + 17, verb, 4);
    return write_all(fd, hdr, sizeof(hdr)) && (!len || write_all(fd, payload, len));
}

bool sec_closed_within(int fd, unsigned timeout_ms)
{
    uint64_t end = sec_now_ms() + timeout_ms;
    char buf[65536];
    for (;;) {
        uint64_t now = sec_now_ms();
        if (now >= end)
            return false;
        struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
}

bool sec_write_msg(int fd, const void *data, size_t len)
{
    uint64_t n = len;
    return write(fd, &n, sizeof(n)) == (ssize_t)sizeof(n) &&
           (!len || write(fd, data, len) == (ssize_t)len);
}

void *sec_read_msg(int fd, size_t *len)
{
    uint64_t n;
    if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n) || n > (64u << 20))
        return NULL;
    uint8_t *b = malloc(n ? n : 1);
    size_t got = 0;
    while (b && got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0) {
            free(b);
            return NULL;
        }
        got += (size_t)r;
    }
    *len = n;
    return b;
}

bool sec_shm_socket(nixl_agent_t *a, char *name, size_t cap)
{
    void *blob;
    size_t len;
    if (nixl_agent_get_local_md(a, &blob, &len) != NIXL_SUCCESS)
        return false;
    const char *p = memmem(blob, len, "nixl-shm-", 9);
    bool ok = false;
    if (p) {
        size_t n = 9;
        while ((size_t)(p - (char *)blob) + n < len && n + 1 < cap &&
               (p[n] == '-' || (p[n] >= '0' && p[n] <= '9') || (p[n] >= 'a' && p[n] <= 'f')))
            n++;
        memcpy(name, p, n);
        name[n] = '\0';
        ok = true;
    }
    nixl_free(blob);
    return ok;
}

int sec_unix_connect(const char *abstract_name)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(abstract_name);
    memcpy(a.sun_path + 1, abstract_name, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 &&
        connect(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                                       1 + n)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

bool sec_shm_notify(int fd, const char *from, const void *msg, size_t len)
{
    size_t nl = strlen(from);
    uint8_t hdr[16];
    put_le(hdr, 0x4e4d4853u, 4); /* "SHMN" */
    put_le(hdr + 4, nl, 4);
    put_le(hdr + 8, len, 8);
    return write_all(fd, hdr, sizeof(hdr)) && write_all(fd, from, nl) &&
           (!len || write_all(fd, msg, len));
}

char *sec_gather_notifs(nixl_agent_t *a, unsigned ms)
{
    size_t cap = 4096, used = 0;
    char *text = calloc(1, cap);
    uint64_t end = sec_now_ms() + ms;
    while (text && sec_now_ms() < end) {
        nixl_notif_list_t *l = NULL;
        if (nixl_agent_get_notifs(a, NULL, &l) == NIXL_SUCCESS && l) {
            for (size_t i = 0; i < l->count; i++) {
                const nixl_notif_t *n = &l->items[i];
                size_t need = strlen(n->agent) + n->msg_len + 3;
                if (used + need >= cap) {
                    cap = (used + need) * 2;
                    text = realloc(text, cap);
                    if (!text)
                        break;
                }
                used += (size_t)sprintf(text + used, "%s=%.*s\n", n->agent, (int)n->msg_len,
                                        (const char *)n->msg);
            }
            nixl_free(l);
        }
        sec_sleep_ms(5);
    }
    return text;
}
