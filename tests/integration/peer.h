/*
 * peer.h - the harness of the integration tests: real peer processes, pipes between them,
 * deadlines everywhere.
 *
 * Every integration program is both the initiator and its peers: it_main() runs the scenarios,
 * and it_peer_spawn() starts the same binary again (fork + exec of /proc/self/exe) in a named
 * role. A freshly exec'ed peer shares nothing with the initiator (no threads, no locks, no
 * library state), which a bare fork of a process that already runs SHM threads could not
 * promise. The two ends talk through a pair of pipes carrying length-prefixed messages; text
 * commands are messages too.
 *
 * Nothing may hang: every receive has a deadline (IT_TIMEOUT_S, default 10 s), a peer is
 * killed (SIGKILL) and reaped when a scenario fails, peers die with the initiator
 * (PR_SET_PDEATHSIG) and a watchdog alarm ends a program that overruns (IT_WATCHDOG_S, default
 * 120 s, below the meson timeout of 180 s; raise both under valgrind). Peers are spawned from
 * the main thread only: the death signal follows the thread that forked.
 */
#ifndef NIXL_IT_PEER_H
#define NIXL_IT_PEER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Default deadline of one receive or one wait, in milliseconds: IT_TIMEOUT_S (default 10 s;
 * raise it under valgrind). */
#define IT_TIMEOUT_MS it_timeout_ms()
int it_timeout_ms(void);

/* After the notifications a check expects have arrived, how long it waits for any extra one
 * before it counts (a duplicate comes right behind the original: SHM delivers in microseconds,
 * UCX over loopback TCP in well under a millisecond). Scenarios ask after every transfer, so
 * this wait is most of their time: 300 ms made it-shmmap 75 s. */
#define IT_EXTRA_NOTIF_MS 100

#define IT_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- failures ---- */

/* Report a failure (thread-safe; counted). Always returns -1 for `return it_fail(...)`. */
int it_fail(const char *file, int line, const char *fmt, ...) IT_PRINTF(3, 4);
/* Failures reported so far in this process. */
int it_failures(void);
/* Progress message on stderr, prefixed with the role (thread-safe). */
void it_log(const char *fmt, ...) IT_PRINTF(1, 2);

/* In a function with a `fail:` label: report and jump there. */
#define IT_CHECK(cond, ...)                                                                    \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            it_fail(__FILE__, __LINE__, __VA_ARGS__);                                          \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* ---- channels: a pair of pipes, length-prefixed messages ---- */

typedef struct it_chan {
    int rd, wr;
} it_chan_t;

/* Send one message (8-byte length, then the bytes). 0, or -1 if the other end is gone. */
int it_send(it_chan_t *ch, const void *msg, size_t len);
/* Send a text message. */
int it_sendf(it_chan_t *ch, const char *fmt, ...) IT_PRINTF(2, 3);
/* Receive one message within timeout_ms. *msg is malloc'ed with a NUL after the bytes (free
 * it with free()). 0, or -1 on timeout, EOF or error (reported unless `quiet`). */
int it_recv(it_chan_t *ch, void **msg, size_t *len, int timeout_ms, bool quiet);
/* Receive a text message (NULL on failure, reported). Free with free(). */
char *it_recv_str(it_chan_t *ch, int timeout_ms);
/* Receive a text message and require it to equal `want` (else report what came). 0 or -1. */
int it_expect(it_chan_t *ch, const char *want, int timeout_ms);
/* Whether a message (or EOF) is waiting, after at most timeout_ms. */
bool it_readable(it_chan_t *ch, int timeout_ms);
/* Send a command and require the answer "ok". 0 or -1 (the answer is reported). */
int it_cmd(it_chan_t *ch, const char *fmt, ...) IT_PRINTF(2, 3);

/* ---- peer processes ---- */

typedef struct it_peer {
    pid_t pid; /* 0 once reaped */
    it_chan_t ch;
    char role[48];
    int status; /* wait status once reaped */
} it_peer_t;

/* Start this program again as `role` with one free-form argument. The peer's stderr is
 * ours; its stdout is redirected to stderr so test output stays readable. 0 or -1. */
int it_peer_spawn(it_peer_t *p, const char *role, const char *arg);
/* SIGKILL the peer and reap it (bounded: a killed process is reaped within the deadline). */
void it_peer_kill(it_peer_t *p);
/* Wait for the peer to exit on its own within timeout_ms; killed if it does not. Returns its
 * exit code (0..255), or -1 if it was killed, died of a signal or overran. Closes the pipes. */
int it_peer_wait(it_peer_t *p, int timeout_ms);
/* Send "quit" and wait for exit code 0; kills on failure. 0 or -1. */
int it_peer_quit(it_peer_t *p);
/* Kill and reap a peer that is still running (no-op otherwise); closes the pipes. */
void it_peer_cleanup(it_peer_t *p);

/* ---- the program ---- */

/* A role: runs in the peer process with its channel and argument; returns the exit code. */
typedef struct it_role {
    const char *name;
    int (*fn)(it_chan_t *ch, const char *arg);
} it_role_t;

/* A scenario of the initiator: 0 on success. */
typedef struct it_scenario {
    const char *name;
    int (*fn)(const void *arg);
    const void *arg;
} it_scenario_t;

/*
 * main() of every program: in a peer (argv[1] == "--it-peer") runs the role; otherwise runs
 * every scenario whose name contains one of argv[1..] (all without arguments), prints
 * "ok"/"FAIL" per scenario, and returns 0 only if all passed. Peers of a scenario that
 * returns are expected to be reaped by it; any left are killed.
 */
int it_main(int argc, char **argv, const it_role_t *roles, size_t num_roles,
            const it_scenario_t *scenarios, size_t num_scenarios);

/* ---- time ---- */

uint64_t it_now_ms(void);
void it_sleep_ms(unsigned ms);

#endif
