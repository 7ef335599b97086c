/*
 * test_obj_vram.c - GPU memory to and from objects through the OBJ (S3) and AZURE_BLOB
 * backends, which stage it through pinned host memory (plugins/obj/obj_vram.c).
 *
 * The server is tests/gpu/obj_store.py (the accelerator machine has no node for s3rver or
 * Azurite; the protocols are tested against those in tests/unit). It keeps each object as a
 * file, so what we wrote is read back without the library, and objects the test writes there
 * itself are what a READ must bring. For each backend, with odd sizes at odd GPU offsets, one
 * object large enough for a multipart upload / staged blocks, every byte checked (the gaps
 * between the pieces too):
 *   - WRITE VRAM -> objects, reposted after the GPU's bytes changed;
 *   - READ objects -> VRAM, and a READ at an offset inside an object;
 *   - a list mixing DRAM and VRAM descriptors;
 *   - a READ of a missing object: an error with the server's reason, the GPU untouched;
 *   - refusals: host memory registered as VRAM, a request above vram_stage_max.
 * Without a GPU the same cases run on DRAM (they check the server and the test) and the test
 * then exits 77. Usage: test_obj_vram OBJ_STORE_PY
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu_test.h"

#define NOBJ 40u
#define BIG (21u << 20) /* above the 8 MiB multipart threshold: 5 parts of 5 MiB */
#define SPAN (48u << 20)
#define DEV0 1000u
#define GAP 4099u

static bool have_gpu;
static char store[64];
static int port;
static pid_t server;

typedef struct piece {
    size_t off, len; /* in the buffer */
} piece_t;

static piece_t pieces[NOBJ + 1]; /* the last is the big one */

static void layout(void)
{
    size_t off = 3;
    for (unsigned i = 0; i < NOBJ; i++) {
        size_t len = (size_t)(40000 + 7919 * i + (i % 3) * 65536);
        pieces[i] = (piece_t){off, len};
        off += len + GAP;
    }
    pieces[NOBJ] = (piece_t){off, BIG};
    if (off + BIG > SPAN)
        abort();
}

/* The memory under test: GPU memory, or host memory when there is no GPU. */
typedef struct buf {
    nixl_mem_t type;
    uintptr_t addr;
    uint8_t *host; /* DRAM: the memory itself */
} buf_t;

static buf_t buf_new(nixl_mem_t type)
{
    buf_t b = {.type = type};
    if (type == NIXL_VRAM_SEG) {
        b.addr = (uintptr_t)gt_alloc(SPAN);
    } else {
        b.host = malloc(SPAN);
        if (!b.host)
            abort();
        b.addr = (uintptr_t)b.host;
    }
    return b;
}

static void buf_free(buf_t *b)
{
    if (b->type == NIXL_VRAM_SEG)
        gt_free(b->addr);
    else
        free(b->host);
}

static void buf_set(const buf_t *b, const uint8_t *img)
{
    if (b->type == NIXL_VRAM_SEG)
        gt_htod(b->addr, img, SPAN);
    else
        memcpy(b->host, img, SPAN);
}

static void buf_get(const buf_t *b, uint8_t *img)
{
    if (b->type == NIXL_VRAM_SEG)
        gt_dtoh(img, b->addr, SPAN);
    else
        memcpy(img, b->host, SPAN);
}

/* ---- the server ---- */

static bool server_start(const char *script)
{
    snprintf(store, sizeof(store), "/tmp/nixl-objvram.XXXXXX");
    if (!mkdtemp(store))
        return false;
    int fd[2];
    if (pipe(fd))
        return false;
    server = fork();
    if (server == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execlp("python3", "python3", script, store, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    bool ok = f && fscanf(f, "%d", &port) == 1 && port > 0;
    if (f)
        fclose(f);
    return ok;
}

static void server_stop(void)
{
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", store);
    if (store[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", store);
}

/* The file of object devId `dev` of the backend (the URL's path, '/' as %2F). */
static void obj_path(const char *backend, unsigned dev, char *out, size_t n)
{
    snprintf(out, n, "%s/%s%u", store,
             strcmp(backend, "OBJ") ? "%2Fdevstoreaccount1%2Fctr%2F" : "%2Fbkt%2F", dev);
}

static uint8_t *obj_read(const char *backend, unsigned dev, size_t *len)
{
    char p[256];
    obj_path(backend, dev, p, sizeof(p));
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(*len ? *len : 1);
    if (d && fread(d, 1, *len, f) != *len) {
        free(d);
        d = NULL;
    }
    fclose(f);
    return d;
}

static void obj_write(const char *backend, unsigned dev, const uint8_t *d, size_t len)
{
    char p[256];
    obj_path(backend, dev, p, sizeof(p));
    FILE *f = fopen(p, "wb");
    GT_CHECK(f && fwrite(d, 1, len, f) == len, "cannot write %s", p);
    if (f)
        fclose(f);
}

/* ---- the agent ---- */

static nixl_agent_t *agent_of(const char *backend, const char *stage_max, nixl_status_t *st)
{
    char url[96];
    nixl_param_t p[10];
    size_t n = 0;
    if (!strcmp(backend, "OBJ")) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
        p[n++] = (nixl_param_t){"bucket", "bkt"};
        p[n++] = (nixl_param_t){"endpoint_override", url};
        p[n++] = (nixl_param_t){"access_key", "ak"};
        p[n++] = (nixl_param_t){"secret_key", "sk"};
        p[n++] = (nixl_param_t){"scheme", "http"};
        p[n++] = (nixl_param_t){"region", "us-east-1"};
        p[n++] = (nixl_param_t){"multipart_threshold", "8388608"};
        p[n++] = (nixl_param_t){"multipart_part_size", "5242880"};
    } else {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/devstoreaccount1", port);
        p[n++] = (nixl_param_t){"account_url", url};
        p[n++] = (nixl_param_t){"container_name", "ctr"};
        p[n++] = (nixl_param_t){"account_key", "a2V5"};
        p[n++] = (nixl_param_t){"max_single_put_size", "8388608"};
        p[n++] = (nixl_param_t){"block_size", "5242880"};
    }
    if (stage_max)
        p[n++] = (nixl_param_t){"vram_stage_max", stage_max};
    nixl_agent_t *a = NULL;
    if (nixl_agent_create("self", NULL, &a) != NIXL_SUCCESS)
        abort();
    nixl_backend_t *be;
    *st = nixl_agent_create_backend(a, backend, p, n, &be);
    if (*st != NIXL_SUCCESS) {
        nixl_agent_destroy(a);
        return NULL;
    }
    nixl_reg_desc_t objs[NOBJ + 1];
    for (unsigned i = 0; i <= NOBJ; i++)
        objs[i] = (nixl_reg_desc_t){.dev_id = DEV0 + i};
    nixl_status_t r = nixl_agent_register_mem(a, NIXL_OBJ_SEG, objs, NOBJ + 1, NULL);
    GT_CHECK(r == NIXL_SUCCESS, "%s: register objects: %s", backend, nixl_status_str(r));
    return a;
}

/* A request of the pieces [first, last) of b <-> objects DEV0 + i, at object offset obj_off,
 * each at most len_cap bytes (0: whole); posted and waited for; kept in *keep (not released)
 * when keep is given and it succeeded. */
static nixl_status_t move(nixl_agent_t *a, nixl_xfer_op_t op, const buf_t *b, unsigned first,
                          unsigned last, size_t obj_off, size_t len_cap, nixl_xfer_req_t **keep)
{
    nixl_desc_t l[NOBJ + 1], r[NOBJ + 1];
    unsigned n = 0;
    for (unsigned i = first; i < last; i++, n++) {
        size_t len = len_cap && pieces[i].len > len_cap ? len_cap : pieces[i].len;
        l[n] = (nixl_desc_t){b->addr + pieces[i].off, len, 0};
        r[n] = (nixl_desc_t){obj_off, len, DEV0 + i};
    }
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true;
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st = nixl_agent_create_xfer_req(a, op, b->type, l, n, NIXL_OBJ_SEG, r, n, "self",
                                                  &opt, &req);
    if (st != NIXL_SUCCESS)
        return st;
    st = gt_wait(a, req, nixl_agent_post_xfer_req(a, req, NULL));
    if (keep && st == NIXL_SUCCESS) {
        *keep = req;
        return st;
    }
    nixl_status_t rs = nixl_agent_release_xfer_req(a, req);
    return st != NIXL_SUCCESS ? st : rs;
}

/* Every object [first, last) holds the bytes of its piece of img. */
static void check_objects(const char *be, const char *what, const uint8_t *img, unsigned first,
                          unsigned last)
{
    for (unsigned i = first; i < last; i++) {
        size_t len = 0;
        uint8_t *d = obj_read(be, DEV0 + i, &len);
        GT_CHECK(d && len == pieces[i].len && !memcmp(d, img + pieces[i].off, len),
                 "%s %s: object %u (%zu bytes) is not the piece of %zu bytes", be, what, DEV0 + i,
                 d ? len : 0, pieces[i].len);
        free(d);
    }
}

/* The cases of one backend on memory of type `type`. */
static void run_cases(const char *be, nixl_mem_t type, uint8_t *img, uint8_t *want, uint8_t *got)
{
    const char *tn = type == NIXL_VRAM_SEG ? "VRAM" : "DRAM";
    nixl_status_t st;
    nixl_agent_t *a = agent_of(be, NULL, &st);
    if (!a) {
        GT_CHECK(0, "%s: create backend: %s", be, nixl_status_str(st));
        return;
    }
    buf_t b = buf_new(type);
    nixl_reg_desc_t rd = {.addr = b.addr, .len = SPAN};
    st = nixl_agent_register_mem(a, type, &rd, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "%s: register %s: %s", be, tn, nixl_status_str(st));

    /* WRITE every piece (the big one as a multipart upload), then again after a change. */
    nixl_xfer_req_t *w = NULL;
    gt_fill(img, SPAN, 1);
    buf_set(&b, img);
    double t0 = gt_now();
    st = move(a, NIXL_WRITE, &b, 0, NOBJ + 1, 0, 0, &w);
    GT_CHECK(st == NIXL_SUCCESS, "%s: WRITE %s -> objects: %s", be, tn, nixl_status_str(st));
    printf("%s: WRITE %s -> %u objects (%.1f MiB): %.3f s\n", be, tn, NOBJ + 1,
           (double)(pieces[NOBJ].off + BIG) / (1 << 20), gt_now() - t0);
    check_objects(be, "WRITE", img, 0, NOBJ + 1);
    if (w) {
        gt_fill(img, SPAN, 2);
        buf_set(&b, img);
        st = gt_wait(a, w, nixl_agent_post_xfer_req(a, w, NULL));
        GT_CHECK(st == NIXL_SUCCESS, "%s: WRITE %s reposted: %s", be, tn, nixl_status_str(st));
        check_objects(be, "WRITE reposted", img, 0, NOBJ + 1);
        nixl_agent_release_xfer_req(a, w);
    }

    /* READ: objects the test wrote itself (pattern 3) into a buffer of pattern 4. */
    gt_fill(want, SPAN, 3);
    for (unsigned i = 0; i <= NOBJ; i++)
        obj_write(be, DEV0 + i, want + pieces[i].off, pieces[i].len);
    gt_fill(img, SPAN, 4);
    buf_set(&b, img);
    memcpy(got, img, SPAN);
    for (unsigned i = 0; i <= NOBJ; i++)
        memcpy(got + pieces[i].off, want + pieces[i].off, pieces[i].len);
    t0 = gt_now();
    st = move(a, NIXL_READ, &b, 0, NOBJ + 1, 0, 0, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "%s: READ objects -> %s: %s", be, tn, nixl_status_str(st));
    printf("%s: READ %u objects -> %s: %.3f s\n", be, NOBJ + 1, tn, gt_now() - t0);
    buf_get(&b, img);
    GT_CHECK(!memcmp(img, got, SPAN), "%s: READ objects -> %s: the buffer is not as expected", be,
             tn);

    /* READ at an offset: bytes [1000, 1000 + 5000) of objects 0..9. */
    gt_fill(img, SPAN, 5);
    buf_set(&b, img);
    memcpy(got, img, SPAN);
    for (unsigned i = 0; i < 10; i++)
        memcpy(got + pieces[i].off, want + pieces[i].off + 1000, 5000);
    st = move(a, NIXL_READ, &b, 0, 10, 1000, 5000, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "%s: READ at offset -> %s: %s", be, tn, nixl_status_str(st));
    buf_get(&b, img);
    GT_CHECK(!memcmp(img, got, SPAN), "%s: READ at offset -> %s: the buffer is not as expected", be,
             tn);

    /* A missing object: an error with the server's reason, the buffer untouched. */
    char p[256];
    obj_path(be, DEV0 + 3, p, sizeof(p));
    unlink(p);
    gt_fill(img, SPAN, 6);
    buf_set(&b, img);
    st = move(a, NIXL_READ, &b, 0, 5, 0, 0, NULL);
    GT_CHECK(st == NIXL_ERR_BACKEND && strstr(nixl_last_error(), "404"),
             "%s: READ of a missing object -> %s: %s", be, tn, nixl_status_str(st));
    buf_get(&b, got);
    GT_CHECK(type == NIXL_DRAM_SEG || !memcmp(img, got, SPAN),
             "%s: a failed READ changed the GPU's bytes", be);

    nixl_agent_deregister_mem(a, type, &rd, 1, NULL);
    nixl_agent_destroy(a);
    buf_free(&b);
}

/* What is refused, with its reason. */
static void refusals(const char *be)
{
    nixl_status_t st;
    nixl_agent_t *a = agent_of(be, "1048576", &st);
    if (!a) {
        GT_CHECK(0, "%s: create backend: %s", be, nixl_status_str(st));
        return;
    }
    void *host = malloc(1 << 20);
    nixl_reg_desc_t hr = {.addr = (uintptr_t)host, .len = 1 << 20};
    st = nixl_agent_register_mem(a, NIXL_VRAM_SEG, &hr, 1, NULL);
    GT_CHECK(st == NIXL_ERR_INVALID_PARAM && strstr(nixl_last_error(), "host memory"),
             "%s: host memory registered as VRAM: %s", be, nixl_status_str(st));
    buf_t b = buf_new(NIXL_VRAM_SEG);
    nixl_reg_desc_t rd = {.addr = b.addr, .len = SPAN};
    st = nixl_agent_register_mem(a, NIXL_VRAM_SEG, &rd, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "%s: register VRAM: %s", be, nixl_status_str(st));
    st = move(a, NIXL_WRITE, &b, NOBJ - 10, NOBJ, 0, 0, NULL); /* over 1 MiB */
    GT_CHECK(st == NIXL_ERR_INVALID_PARAM && strstr(nixl_last_error(), "vram_stage_max"),
             "%s: a request above vram_stage_max: %s", be, nixl_status_str(st));
    st = move(a, NIXL_WRITE, &b, 0, 2, 0, 0, NULL); /* under it */
    GT_CHECK(st == NIXL_SUCCESS, "%s: a request under vram_stage_max: %s", be, nixl_status_str(st));
    nixl_agent_deregister_mem(a, NIXL_VRAM_SEG, &rd, 1, NULL);
    nixl_agent_destroy(a);
    buf_free(&b);
    free(host);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_obj_vram OBJ_STORE_PY\n");
        return 2;
    }
    have_gpu = gt_init() == 0;
    layout();
    if (!server_start(argv[1])) {
        printf("SKIP: cannot start %s with python3\n", argv[1]);
        server_stop();
        return GT_SKIP;
    }
    uint8_t *img = malloc(SPAN), *want = malloc(SPAN), *got = malloc(SPAN);
    if (!img || !want || !got)
        abort();
    const char *backends[] = {"OBJ", "AZURE_BLOB"};
    int ran = 0;
    for (int k = 0; k < 2; k++) {
        nixl_status_t st;
        nixl_agent_t *probe = agent_of(backends[k], NULL, &st);
        if (!probe) {
            printf("%s: not available here (%s): %s\n", backends[k], nixl_status_str(st),
                   nixl_last_error());
            continue;
        }
        nixl_agent_destroy(probe);
        run_cases(backends[k], NIXL_DRAM_SEG, img, want, got);
        if (have_gpu) {
            run_cases(backends[k], NIXL_VRAM_SEG, img, want, got);
            refusals(backends[k]);
            ran++;
        }
    }
    server_stop();
    free(img);
    free(want);
    free(got);
    printf("test_obj_vram: %d failure(s)%s\n", gt_failures,
           have_gpu ? "" : " (DRAM only: no GPU here)");
    if (gt_failures)
        return 1;
    return ran ? 0 : GT_SKIP;
}
