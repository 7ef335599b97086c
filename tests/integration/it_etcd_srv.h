/*
 * it_etcd_srv.h - a real etcd server for the tests: started on free loopback ports with a
 * temporary data directory, stopped (and restarted on the same ports and data) on demand,
 * removed at the end; plus a tiny v3 JSON client to look at keys.
 */
#ifndef NIXL_IT_ETCD_SRV_H
#define NIXL_IT_ETCD_SRV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "nixl.h"

typedef struct it_etcd {
    pid_t pid; /* 0 when stopped */
    int client_port, peer_port;
    char dir[128];
    char url[64];   /* http://<host>:<client_port> */
    char host[32];  /* listen address; 127.0.0.1 unless set before it_etcd_start */
    char netns[32]; /* run in this network namespace (/var/run/netns) when set */
    /* When set (before it_etcd_start): clients are served over https only, with the server
     * certificate server.pem/server.key of this folder, and must present a certificate signed
     * by its ca.pem (--client-cert-auth); our own client uses client.pem/client.key. */
    char tls_dir[128];
} it_etcd_t;

/* Whether an etcd binary is on PATH (else the program should exit 77). */
bool it_etcd_available(void);
/* First start: pick ports, make the data directory, start, wait until healthy. 0 or -1.
 * `host`, `netns` and `tls_dir` are kept; the rest of *s is reset. */
int it_etcd_start(it_etcd_t *s);
/* Start again on the same ports and data. 0 or -1. */
int it_etcd_restart(it_etcd_t *s);
/* Stop (SIGTERM, then SIGKILL after 5 s); keeps the data. */
void it_etcd_stop(it_etcd_t *s);
/* Stop and remove the data directory. */
void it_etcd_destroy(it_etcd_t *s);
/* An agent of this process with an SHM engine and the given etcd watch timeout (the etcd
 * options come from the environment). NULL on failure (reported). */
nixl_agent_t *it_etcd_agent(const char *name, uint64_t watch_timeout_us);
/* Whether `key` exists: 1 yes, 0 no, -1 etcd did not answer. */
int it_etcd_has_key(const it_etcd_t *s, const char *key);

#endif
