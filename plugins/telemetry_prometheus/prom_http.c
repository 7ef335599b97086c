/* prom_http.c - the /metrics endpoint over libmicrohttpd. We bind the socket ourselves so
 * that a port in use is reported with its errno. */
#include "prom_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct prom_http {
    struct MHD_Daemon *daemon;
    int fd;
    prom_render_fn render;
    void *ctx;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state)
{
    (void)version, (void)upload, (void)state;
    prom_http_t *h = cls;
    if (*upload_len)
        *upload_len = 0; /* no bodies taken */
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    unsigned code = MHD_HTTP_OK;
    nixl_buf_t body;
    nixl_buf_init(&body, 16384);
    if (!get) {
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
        nixl_buf_append(&body, "only GET\n", 9);
    } else if (strcmp(url, "/metrics") != 0) {
        code = MHD_HTTP_NOT_FOUND;
        nixl_buf_append(&body, "see /metrics\n", 13);
    } else {
        h->render(&body, h->ctx);
    }
    if (body.oom) {
        nixl_buf_free(&body);
        return MHD_NO; /* the connection is closed: the scrape fails, visibly */
    }
    size_t len;
    uint8_t *data = nixl_buf_take(&body, &len);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, data ? (void *)data : (void *)"",
                                        data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", code == MHD_HTTP_OK
                                                   ? "text/plain; version=0.0.4; charset=utf-8"
                                                   : "text/plain");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

int prom_http_start(const char *addr, uint16_t port, prom_render_fn fn, void *ctx,
                    prom_http_t **out, char *why, size_t why_len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(why, why_len, "'%s' is not an IPv4 address", addr);
        return EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(why, why_len, "socket: %s", strerror(e));
        return e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        snprintf(why, why_len, "cannot listen on %s:%u: %s", addr, (unsigned)port, strerror(e));
        close(fd);
        return e;
    }
    prom_http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        snprintf(why, why_len, "out of memory");
        return ENOMEM;
    }
    h->fd = fd;
    h->render = fn;
    h->ctx = ctx;
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer, h,
                                 MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(why, why_len, "libmicrohttpd could not start serving %s:%u", addr,
                 (unsigned)port);
        close(fd);
        free(h);
        return EIO;
    }
    *out = h;
    return 0;
}

void prom_http_stop(prom_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    close(h->fd);
    free(h);
}
