/* prom_http.h - the /metrics endpoint (libmicrohttpd, its own thread). */
#ifndef NIXL_PROM_HTTP_H
#define NIXL_PROM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Writes the exposition into `out`; called on the server's thread for each scrape. */
typedef void (*prom_render_fn)(nixl_buf_t *out, void *ctx);

typedef struct prom_http prom_http_t;

/* Listen on addr:port (addr "0.0.0.0" or "127.0.0.1") and serve GET /metrics. 0, or an errno
 * value with the reason in `why` (EADDRINUSE: the port is taken). */
int prom_http_start(const char *addr, uint16_t port, prom_render_fn fn, void *ctx,
                    prom_http_t **out, char *why, size_t why_len);
/* Stop serving (waits for a scrape in progress) and close the socket. NULL is fine. */
void prom_http_stop(prom_http_t *h);

#endif
