/*
 * sec_shm.c - attacks on an SHM engine's notification socket (an abstract Unix socket that any
 * local process can find in /proc/net/unix).
 *
 *   sec_shm other-uid    a process of another user (root only: a child turns into nobody)
 *                        connects and notifies: refused, nothing delivered
 *   sec_shm forged       a process of the same user signs notifications with the name of a
 *                        loaded peer that runs elsewhere, and with a name never loaded;
 *                        the real peer's notification is delivered
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sec_util.h"

#define NOBODY 65534

static int other_uid(void)
{
    if (geteuid() != 0) {
        printf("skipped: needs root (a child changes to uid %d)\n", NOBODY);
        return 77;
    }
    nixl_agent_t *a = sec_agent("target");
    char sock[128];
    SEC_CHECK(sec_shm_socket(a, sock, sizeof(sock)), "no SHM socket in the metadata");
    pid_t pid = sec_fork();
    SEC_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(10);
        int fd = sec_unix_connect(sock);
        if (fd < 0)
            _exit(0); /* refused outright is fine too */
        sec_shm_notify(fd, "target-peer", "from nobody", 11);
        /* the engine closes a connection it does not trust */
        _exit(sec_closed_within(fd, 2000) ? 0 : 11);
    }
    int st;
    SEC_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    SEC_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the other user's connection was not closed (child exit %d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    char *got = sec_gather_notifs(a, 300);
    SEC_CHECK(got && !strstr(got, "from nobody"), "a notification of uid %d was delivered: %s",
              NOBODY, got);
    free(got);
    /* the same user still gets through: our own process */
    nixl_agent_t *b = sec_agent("peer");
    void *blob;
    size_t len;
    SEC_ST(nixl_agent_get_local_md(a, &blob, &len));
    SEC_ST(nixl_agent_load_remote_md(b, blob, len, NULL));
    nixl_free(blob);
    SEC_ST(nixl_agent_gen_notif(b, "target", "hello", 5, NULL));
    got = sec_gather_notifs(a, 300);
    SEC_CHECK(got && strstr(got, "peer=hello"), "our own notification was not delivered");
    free(got);
    nixl_agent_destroy(b);
    nixl_agent_destroy(a);
    printf("uid %d refused; same user served\n", NOBODY);
    return 0;
}

/* The honest peer "B", in its own process: loads the targets' metadata, notifies each. */
static void honest_child(int from_parent, int to_parent)
{
    nixl_agent_t *b = sec_agent("B");
    void *blob;
    size_t len;
    SEC_ST(nixl_agent_get_local_md(b, &blob, &len));
    if (!sec_write_msg(to_parent, blob, len))
        _exit(2);
    nixl_free(blob);
    for (int i = 0; i < 2; i++) {
        char *name = NULL;
        void *md = sec_read_msg(from_parent, &len);
        if (!md || nixl_agent_load_remote_md(b, md, len, &name) != NIXL_SUCCESS)
            _exit(3);
        if (nixl_agent_gen_notif(b, name, "hello", 5, NULL) != NIXL_SUCCESS)
            _exit(4);
        nixl_free(name);
        free(md);
    }
    char c;
    if (read(from_parent, &c, 1) < 0) /* until the parent is done */
        _exit(5);
    nixl_agent_destroy(b);
    _exit(0);
}

/* The impostor: a process of the same user, never loaded by anyone. */
static void impostor_child(const char *sock_checked, const char *sock_loaded)
{
    const char *socks[2] = {sock_checked, sock_loaded};
    for (int i = 0; i < 2; i++) {
        int fd = sec_unix_connect(socks[i]);
        if (fd < 0 || !sec_shm_notify(fd, "B", "forged-as-B", 11) ||
            !sec_shm_notify(fd, "C", "unknown-C", 9))
            _exit(2);
        sec_sleep_ms(100);
        close(fd);
    }
    _exit(0);
}

static int forged(void)
{
    int down[2], up[2];
    SEC_CHECK(pipe(down) == 0 && pipe(up) == 0, "pipe");
    pid_t honest = sec_fork();
    SEC_CHECK(honest >= 0, "fork");
    if (honest == 0) {
        close(down[1]);
        close(up[0]);
        honest_child(down[0], up[1]);
    }
    close(down[0]);
    close(up[1]);
    /* Two targets: the default (a loaded peer's name only from its pid) and the strict mode
     * (only loaded peers). */
    nixl_agent_t *checked = sec_agent("target-checked");
    nixl_agent_t *loaded = sec_agent_bare("target-loaded");
    sec_shm(loaded, "notif_senders", "loaded", NULL);
    size_t len;
    void *bmd = sec_read_msg(up[0], &len);
    SEC_CHECK(bmd, "no metadata from B");
    SEC_ST(nixl_agent_load_remote_md(checked, bmd, len, NULL));
    SEC_ST(nixl_agent_load_remote_md(loaded, bmd, len, NULL));
    free(bmd);

    char sock_checked[128], sock_loaded[128];
    SEC_CHECK(sec_shm_socket(checked, sock_checked, sizeof(sock_checked)) &&
                  sec_shm_socket(loaded, sock_loaded, sizeof(sock_loaded)),
              "no SHM socket in the metadata");
    pid_t impostor = sec_fork();
    SEC_CHECK(impostor >= 0, "fork");
    if (impostor == 0)
        impostor_child(sock_checked, sock_loaded);
    int st;
    SEC_CHECK(waitpid(impostor, &st, 0) == impostor && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the impostor could not even connect");

    nixl_agent_t *targets[2] = {checked, loaded};
    for (int i = 0; i < 2; i++) {
        void *md;
        SEC_ST(nixl_agent_get_local_md(targets[i], &md, &len));
        SEC_CHECK(sec_write_msg(down[1], md, len), "pipe");
        nixl_free(md);
    }
    char *got_checked = sec_gather_notifs(checked, 600);
    char *got_loaded = sec_gather_notifs(loaded, 300);
    printf("default target got:\n%sstrict target got:\n%s", got_checked, got_loaded);
    SEC_CHECK(strstr(got_checked, "B=hello") && strstr(got_loaded, "B=hello"),
              "the real peer's notification was not delivered");
    SEC_CHECK(!strstr(got_checked, "forged-as-B") && !strstr(got_loaded, "forged-as-B"),
              "a notification forged in a loaded peer's name was delivered");
    SEC_CHECK(!strstr(got_loaded, "unknown-C"),
              "notif_senders=loaded delivered a notification from an unloaded process");
    /* The default keeps the reference's behaviour for initiators never loaded. */
    SEC_CHECK(strstr(got_checked, "C=unknown-C"),
              "the default no longer delivers notifications of unloaded initiators");
    free(got_checked);
    free(got_loaded);
    SEC_CHECK(write(down[1], "x", 1) == 1, "pipe");
    SEC_CHECK(waitpid(honest, &st, 0) == honest && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the honest peer failed (exit %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    nixl_agent_destroy(checked);
    nixl_agent_destroy(loaded);
    return 0;
}

int main(int argc, char **argv)
{
    static const sec_case_t cases[] = {{"other-uid", other_uid}, {"forged", forged}};
    return sec_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
