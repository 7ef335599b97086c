/*
 * test_agent_errors.c - the rule of nixl_last_error(): a failing call sets the reason, a
 * successful call leaves it alone (docs/errors.md). The status table is checked in
 * test_agent_basics.c.
 *
 * The rule is checked on a typical life of two agents of one process (SHM between them, POSIX
 * to a file, a side-channel listener): after every successful call the reason must read as it
 * did before the call. The sequence runs twice: on a thread where nothing failed yet (the
 * reason must stay "") and after a failure (its reason must survive every success).
 */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "agent_test.h"

#define BUFLEN 4096

/* ------------------------------------------------------------------------------------------ */
/* Successful calls leave the reason alone                                                     */
/* ------------------------------------------------------------------------------------------ */

/* What nixl_last_error() must read after each successful call of the sequence. */
static _Thread_local const char *kept;
static _Thread_local int failures;

static void check_kept(nixl_status_t st, bool in_prog_ok, const char *expr, int line)
{
    const char *now = nixl_last_error();
    if (st != NIXL_SUCCESS && !(in_prog_ok && st == NIXL_IN_PROG)) {
        fprintf(stderr, "line %d: %s returned %s: %s\n", line, expr, nixl_status_str(st), now);
        failures++;
        return;
    }
    if (strcmp(now, kept) != 0) {
        fprintf(stderr, "line %d: %s succeeded but left the reason '%s' (expected '%s')\n", line,
                expr, now, kept);
        failures++;
    }
}

/* `expr` succeeds and leaves the reason as it was. Runs on any thread: counts failures. */
#define OK(expr) check_kept((expr), false, #expr, __LINE__)
#define OK_OR_IN_PROG(expr) check_kept((expr), true, #expr, __LINE__)

static nixl_status_t wait_notifs(nixl_agent_t *a, size_t want)
{
    uint64_t end = t_now_ns() + 10000000000ull;
    size_t got = 0;
    nixl_status_t st;
    do {
        nixl_notif_list_t *l = NULL;
        st = nixl_agent_get_notifs(a, NULL, &l);
        if (st != NIXL_SUCCESS)
            return st;
        got += l->count;
        nixl_free(l);
        if (got < want)
            t_sleep_us(500);
    } while (got < want && t_now_ns() < end);
    return got >= want ? NIXL_SUCCESS : NIXL_ERR_NOT_FOUND;
}

/* The life of two agents; `tag` keeps the names of two runs apart. */
static void *sequence(void *arg)
{
    const char *tag = arg;
    char na[32], nb[32];
    snprintf(na, sizeof(na), "errs-a-%s", tag);
    snprintf(nb, sizeof(nb), "errs-b-%s", tag);
    uint8_t *abuf = t_alloc(BUFLEN), *bbuf = t_alloc(BUFLEN);
    char path[] = "/tmp/nixl-errs-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, BUFLEN) != 0)
        abort();
    unlink(path);

    /* Names, versions, parsing. */
    nixl_mem_t mem;
    OK(nixl_mem_from_str("DRAM", &mem));
    (void)nixl_version();
    (void)nixl_status_str(NIXL_ERR_BACKEND);

    /* Agents: A listens on the side channel (any port). */
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = true;
    cfg.listen_port = 0;
    nixl_agent_t *a = NULL, *b = NULL;
    OK(nixl_agent_create(na, &cfg, &a));
    OK(nixl_agent_create(nb, NULL, &b));
    if (!a || !b)
        abort();
    int port = 0;
    OK(nixl_agent_get_listen_port(a, &port));

    /* Plugins and backends. */
    char **names = NULL;
    size_t nnames = 0;
    OK(nixl_agent_get_avail_plugins(a, &names, &nnames));
    nixl_free(names);
    nixl_mem_mask_t mems;
    nixl_param_list_t *params = NULL;
    OK(nixl_agent_get_plugin_params(a, "SHM", &mems, &params));
    nixl_free(params);
    OK(nixl_agent_get_plugin_params(a, "POSIX", &mems, &params));
    nixl_free(params);
    nixl_backend_t *ashm = NULL, *bshm = NULL, *aposix = NULL;
    OK(nixl_agent_create_backend(a, "SHM", NULL, 0, &ashm));
    OK(nixl_agent_create_backend(b, "SHM", NULL, 0, &bshm));
    OK(nixl_agent_create_backend(a, "POSIX", NULL, 0, &aposix));
    OK(nixl_agent_get_backend_params(a, ashm, &mems, &params));
    nixl_free(params);

    /* Registration (A's buffer goes to SHM and POSIX, both take DRAM). */
    nixl_reg_desc_t ar = t_rdesc(abuf, BUFLEN), br = t_rdesc(bbuf, BUFLEN);
    nixl_reg_desc_t fr = {.addr = 0, .len = 0, .dev_id = (uint64_t)fd};
    OK(nixl_agent_register_mem(a, NIXL_DRAM_SEG, &ar, 1, NULL));
    OK(nixl_agent_register_mem(b, NIXL_DRAM_SEG, &br, 1, NULL));
    /* SHM refuses FILE, POSIX takes it: the call succeeds and SHM's refusal leaves nothing. */
    nixl_backend_t *both[] = {ashm, aposix};
    nixl_opt_args_t hint;
    nixl_opt_args_init(&hint);
    hint.backends = both;
    hint.num_backends = 2;
    OK(nixl_agent_register_mem(a, NIXL_FILE_SEG, &fr, 1, &hint));
    nixl_opt_args_t only_posix;
    nixl_opt_args_init(&only_posix);
    only_posix.backends = &aposix;
    only_posix.num_backends = 1;
    nixl_query_resp_t *resp = NULL;
    OK(nixl_agent_query_mem(a, NIXL_FILE_SEG, &fr, 1, &only_posix, &resp));
    nixl_free(resp);

    /* Metadata: full, partial, checks, connections. */
    void *blob = NULL;
    size_t len = 0;
    char *name = NULL;
    OK(nixl_agent_get_local_md(b, &blob, &len));
    OK(nixl_agent_load_remote_md(a, blob, len, &name));
    OK(nixl_agent_load_remote_md(a, blob, len, NULL)); /* again: idempotent */
    nixl_free(name);
    nixl_free(blob);
    OK(nixl_agent_get_local_partial_md(b, NIXL_DRAM_SEG, &br, 1, NULL, &blob, &len));
    OK(nixl_agent_load_remote_md(a, blob, len, NULL));
    nixl_free(blob);
    nixl_desc_t ad = t_desc(abuf, BUFLEN), bd = t_desc(bbuf, BUFLEN);
    nixl_desc_t fd_desc = {.addr = 0, .len = BUFLEN, .dev_id = (uint64_t)fd};
    OK(nixl_agent_check_remote_md(a, nb, NIXL_DRAM_SEG, &bd, 1));
    OK(nixl_agent_make_connection(a, nb, NULL));

    /* Side channel: B sends, fetches, invalidates (A's thread does the loading). */
    nixl_opt_args_t sc;
    nixl_opt_args_init(&sc);
    sc.ip_addr = "127.0.0.1";
    sc.port = port;
    OK(nixl_agent_fetch_remote_md(b, na, &sc));
    OK(t_wait_fetch(b, na, 10000));
    OK(nixl_agent_send_local_md(b, &sc));
    OK(nixl_agent_check_remote_md(b, na, NIXL_DRAM_SEG, &ad, 1));

    /* Prepared transfers A -> B with a notification. */
    nixl_dlist_t *ld = NULL, *rd = NULL;
    OK(nixl_agent_prep_xfer_dlist(a, NIXL_INIT_AGENT, NIXL_DRAM_SEG, &ad, 1, NULL, &ld));
    OK(nixl_agent_prep_xfer_dlist(a, nb, NIXL_DRAM_SEG, &bd, 1, NULL, &rd));
    int idx = 0;
    nixl_xfer_req_t *r1 = NULL, *r2 = NULL, *r3 = NULL;
    nixl_opt_args_t notif = t_notif_opt("done");
    OK(nixl_agent_make_xfer_req(a, NIXL_WRITE, ld, &idx, 1, rd, &idx, 1, &notif, &r1));
    OK_OR_IN_PROG(nixl_agent_post_xfer_req(a, r1, NULL));
    OK(t_wait(a, r1, 10000));
    OK(nixl_agent_get_xfer_status(a, r1));
    OK(wait_notifs(b, 1));
    nixl_backend_t *used = NULL;
    OK(nixl_agent_query_xfer_backend(a, r1, &used));
    OK_OR_IN_PROG(nixl_agent_post_xfer_req(a, r1, &notif)); /* repost */
    OK(t_wait(a, r1, 10000));
    OK(wait_notifs(b, 1));

    /* Direct requests: to B, loopback DRAM and to the file (POSIX). */
    OK(nixl_agent_create_xfer_req(a, NIXL_READ, NIXL_DRAM_SEG, &ad, 1, NIXL_DRAM_SEG, &bd, 1, nb,
                                  NULL, &r2));
    OK_OR_IN_PROG(nixl_agent_post_xfer_req(a, r2, NULL));
    OK(t_wait(a, r2, 10000));
    OK(nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &ad, 1, NIXL_FILE_SEG, &fd_desc,
                                  1, na, NULL, &r3));
    OK_OR_IN_PROG(nixl_agent_post_xfer_req(a, r3, NULL));
    OK(t_wait(a, r3, 10000));

    /* Notifications on their own. */
    OK(nixl_agent_gen_notif(a, nb, "hi", 2, NULL));
    OK(wait_notifs(b, 1));
    OK(nixl_agent_gen_notif(a, na, "self", 4, NULL));
    OK(wait_notifs(a, 1));

    /* Teardown, in order. */
    OK(nixl_agent_release_xfer_req(a, r1));
    OK(nixl_agent_release_xfer_req(a, r2));
    OK(nixl_agent_release_xfer_req(a, r3));
    OK(nixl_agent_release_dlist(a, ld));
    OK(nixl_agent_release_dlist(a, rd));
    OK(nixl_agent_invalidate_remote_md(a, nb));
    OK(nixl_agent_invalidate_local_md(b, &sc));
    OK(nixl_agent_deregister_mem(a, NIXL_FILE_SEG, &fr, 1, NULL));
    OK(nixl_agent_deregister_mem(a, NIXL_DRAM_SEG, &ar, 1, NULL));
    OK(nixl_agent_deregister_mem(b, NIXL_DRAM_SEG, &br, 1, NULL));
    nixl_agent_destroy(b);
    nixl_agent_destroy(a);
    if (strcmp(nixl_last_error(), kept) != 0) {
        fprintf(stderr, "nixl_agent_destroy left the reason '%s'\n", nixl_last_error());
        failures++;
    }
    close(fd);
    free(abuf);
    free(bbuf);
    return NULL;
}

static void *fresh_thread(void *arg)
{
    kept = "";
    failures = 0;
    sequence(arg);
    return (void *)(intptr_t)failures;
}

/* On a thread where nothing failed, the reason stays empty. */
static void test_success_leaves_no_reason(void **state)
{
    (void)state;
    pthread_t t;
    void *ret = NULL;
    assert_int_equal(pthread_create(&t, NULL, fresh_thread, (void *)"fresh"), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, 0);
}

/* After a failure, its reason survives every successful call. */
static void test_success_keeps_the_last_failure(void **state)
{
    (void)state;
    nixl_agent_t *none = NULL;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "agent name", nixl_agent_create("", NULL, &none));
    char before[1024];
    snprintf(before, sizeof(before), "%s", nixl_last_error());
    kept = before;
    failures = 0;
    sequence((void *)"after");
    assert_int_equal(failures, 0);
    assert_string_equal(nixl_last_error(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_leaves_no_reason),
        cmocka_unit_test(test_success_keeps_the_last_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
