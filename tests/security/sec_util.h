/*
 * sec_util.h - helpers of the red-team tests (tests/security): real agents on loopback, raw
 * sockets that misbehave as an attacker's would, and the measures the tests assert on (time,
 * resident memory, CPU time). Each test is a small program; exit 0 passed, 1 failed, 77
 * skipped.
 */
#ifndef NIXL_SEC_UTIL_H
#define NIXL_SEC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nixl.h"

#define SEC_FAIL(...)                                                                         \
    do {                                                                                      \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                  \
        fprintf(stderr, __VA_ARGS__);                                                         \
        fprintf(stderr, "\n");                                                                \
        exit(1);                                                                              \
    } while (0)
#define SEC_CHECK(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond))                                                                          \
            SEC_FAIL(__VA_ARGS__);                                                            \
    } while (0)
#define SEC_ST(call)                                                                          \
    do {                                                                                      \
        nixl_status_t st_ = (call);                                                           \
        SEC_CHECK(st_ == NIXL_SUCCESS, "%s: %s (%s)", #call, nixl_status_str(st_),            \
                  nixl_last_error());                                                         \
    } while (0)

/* The attacks of one program, chosen by argv[1]. */
typedef struct sec_case {
    const char *name;
    int (*run)(void);
} sec_case_t;
/* Run the case argv[1] names (2 and the usage when none does). */
int sec_main(int argc, char **argv, const sec_case_t *cases, size_t n);

/* fork(), with the child killed when the test process ends. */
pid_t sec_fork(void);
uint64_t sec_now_ms(void);
void sec_sleep_ms(unsigned ms);
/* VmRSS of this process, in KiB. */
uint64_t sec_rss_kb(void);
/* User + system CPU time of this process, in ms. */
uint64_t sec_cpu_ms(void);

/* An agent listening on 127.0.0.1 (a free port, returned in *port). */
nixl_agent_t *sec_listener(const char *name, int *port);
/* An agent without a listener (its side channel starts at its first send), with SHM. */
nixl_agent_t *sec_agent(const char *name);
/* The same without any backend. */
nixl_agent_t *sec_agent_bare(const char *name);
/* Add an SHM engine with these parameters (key, value, key, value, ..., NULL). */
nixl_backend_t *sec_shm(nixl_agent_t *a, ...);

/* An honest peer: `name` sends its metadata to 127.0.0.1:port; true when the target has it
 * loaded within timeout_ms. *took_ms: how long it took. */
bool sec_honest_served(nixl_agent_t *target, int port, const char *name, unsigned timeout_ms,
                       uint64_t *took_ms);
/* Whether `target` has `name` loaded within timeout_ms. */
bool sec_wait_loaded(nixl_agent_t *target, const char *name, unsigned timeout_ms);

/* A blocking TCP connection to 127.0.0.1:port (-1 on failure). */
int sec_connect(int port);
/* One side-channel frame: 8-byte length, "NIXLCOMM:", verb, payload. */
bool sec_send_frame(int fd, const char *verb, const void *payload, size_t len);
/* Whether the peer closed (or reset) fd within timeout_ms: a read gives 0 or an error, or a
 * write fails. Unread data is discarded. */
bool sec_closed_within(int fd, unsigned timeout_ms);

/* Length-prefixed messages over a pipe (between a test and its children). */
bool sec_write_msg(int fd, const void *data, size_t len);
void *sec_read_msg(int fd, size_t *len);

/* The abstract socket name of an SHM engine, found in its agent's metadata. */
bool sec_shm_socket(nixl_agent_t *a, char *name, size_t cap);
/* Connect to an abstract Unix socket (-1 on failure). */
int sec_unix_connect(const char *abstract_name);
/* An SHM notification frame (SHMN) signed `from`, as a peer of the old format sends it. */
bool sec_shm_notify(int fd, const char *from, const void *msg, size_t len);

/* Notifications of `a` gathered for `ms`, as text lines "<agent>=<payload>\n" (malloc'ed). */
char *sec_gather_notifs(nixl_agent_t *a, unsigned ms);

#endif
