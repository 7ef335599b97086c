/*
 * s3_server.h - a real S3 server for the OBJ tests: s3rver (npm, installed into build-npm/ by
 * scripts/install-deps.sh), started on a free loopback port with a fresh data directory and
 * the bucket "bkt", killed and removed at the end. Its credentials are S3RVER / S3RVER. Its
 * log (<dir>.log) has a line per request, with the path and query.
 *
 * s3rver checks the access key of every request (an unknown one is 403 InvalidAccessKeyId) but
 * not the SigV4 signature itself; the boto3 cross-checks of test_obj cover the format.
 */
#ifndef NIXL_TEST_S3_SERVER_H
#define NIXL_TEST_S3_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct s3_server {
    pid_t pid;
    int port;
    char dir[64];
    char endpoint[64]; /* http://127.0.0.1:<port> */
} s3_server_t;

/* The s3rver program, or NULL with the reason printed (the test then skips). */
static inline const char *s3_server_bin(void)
{
    const char *b = getenv("NIXL_S3RVER");
    if (b && *b && access(b, X_OK) == 0)
        return b;
    fprintf(stderr, "s3rver not found (NIXL_S3RVER='%s'): run scripts/install-deps.sh, which "
            "installs it from npm into build-npm/\n", b ? b : "");
    return NULL;
}

static inline int s3_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline bool s3_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static inline void s3_server_stop(s3_server_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* s3_server_stop for a callback taking the server as void *. */
static inline void s3_server_kill(void *s)
{
    s3_server_stop(s);
}

/* Start `argv` (NULL-terminated; "%PORT%" and "%DIR%" are replaced) with `env` ("K=V" or
 * NULL) set, logging to <dir>.log; 0, or -1 with the reason printed. Waits (at most 30 s)
 * until it accepts connections. */
static inline int s3_spawn(s3_server_t *s, const char *const *argv, const char *env)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/nixl-s3-XXXXXX");
    if (!mkdtemp(s->dir) || (s->port = s3_free_port()) < 0) {
        perror("s3 server dir/port");
        return -1;
    }
    snprintf(s->endpoint, sizeof(s->endpoint), "http://127.0.0.1:%d", s->port);
    char port[16], log[96], *args[24];
    size_t n = 0;
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(log, sizeof(log), "%s.log", s->dir);
    for (; argv[n] && n + 1 < sizeof(args) / sizeof(args[0]); n++)
        args[n] = !strcmp(argv[n], "%PORT%") ? port
                  : !strcmp(argv[n], "%DIR%") ? s->dir : (char *)argv[n];
    args[n] = NULL;
    s->pid = fork();
    if (s->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (env)
            putenv((char *)env);
        execvp(args[0], args);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        if (s3_port_open(s->port))
            return 0;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            fprintf(stderr, "%s exited at start (see %s)\n", args[0], log);
            return -1;
        }
        usleep(50000);
    }
    fprintf(stderr, "%s did not listen on port %d within 30 s (see %s)\n", args[0], s->port,
            log);
    s3_server_stop(s);
    return -1;
}

/* Start s3rver with the bucket "bkt"; 0, or -1 with the reason printed. */
static inline int s3_server_start(s3_server_t *s)
{
    const char *bin = s3_server_bin();
    if (!bin)
        return -1;
    const char *const argv[] = {bin, "-d", "%DIR%", "-a", "127.0.0.1", "-p", "%PORT%",
                                "--configure-bucket", "bkt", NULL};
    return s3_spawn(s, argv, NULL);
}

static inline void s3_server_destroy(s3_server_t *s)
{
    char cmd[160];
    s3_server_stop(s);
    if (s->dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.log'", s->dir, s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
    }
}

#endif
