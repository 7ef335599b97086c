/*
 * it_etcd_srv.h - a real etcd server for the tests: started on free loopback ports with a
 * temporary data directory, stopped (and restarted on the same ports and data) on demand,
 * removed at the end; plus a tiny v3 JSON client to look at keys.
 */
#ifndef NIXL_IT_ETCD_SRV_H
#define NIXL_IT_ETCD_SRV_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct it_etcd {
    pid_t pid; /* 0 when stopped */
    int client_port, peer_port;
    char dir[128];
    char url[64];   /* http://<host>:<client_port> */
    char host[32];  /* listen address; 127.0.0.1 unless set before it_etcd_start */
    char netns[32]; /* run in this network namespace (/var/run/netns) when set */
} it_etcd_t;

/* Whether an etcd binary is on PATH (else the program should exit 77). */
bool it_etcd_available(void);
/* First start: pick ports, make the data directory, start, wait until healthy. 0 or -1.
 * `host` and `netns` are kept; the rest of *s is reset. */
int it_etcd_start(it_etcd_t *s);
/* Start again on the same ports and data. 0 or -1. */
int it_etcd_restart(it_etcd_t *s);
/* Stop (SIGTERM, then SIGKILL after 5 s); keeps the data. */
void it_etcd_stop(it_etcd_t *s);
/* Stop and remove the data directory. */
void it_etcd_destroy(it_etcd_t *s);
/* Whether `key` exists: 1 yes, 0 no, -1 etcd did not answer. */
int it_etcd_has_key(const it_etcd_t *s, const char *key);

#endif
