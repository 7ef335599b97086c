/*
 * sc_auth.c - the side channel with a shared secret (auth.h): commands leave in envelopes,
 * arrive verified, and what cannot be verified is refused, counted, and answered with a DENY
 * that says why, so that an agent of ours on the other side reports a clear error instead of
 * a timeout. Worker thread only (sc_frame_make also runs on callers' threads: it touches only
 * the authenticator, which locks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "error.h"
#include "log.h"
#include "sc_priv.h"

uint8_t *sc_frame_make(nixl_sc_t *sc, const char *verb, const void *payload, size_t len,
                       size_t *out_len)
{
    if (!sc->cfg.auth)
        return sc_frame_build(verb, payload, len, out_len);
    size_t env_len;
    uint8_t *env = nixl_auth_seal(sc->cfg.auth, NIXL_AUTH_SIDECHANNEL, verb, sc->agent_name,
                                  NULL, payload, len, &env_len);
    if (!env)
        return NULL;
    /* sc_frame_build writes "NIXLCOMM:AUTH" itself: the envelope goes in without it */
    uint8_t *frame = sc_frame_build(NIXL_AUTH_VERB, env + NIXL_AUTH_PREFIX_LEN,
                                    env_len - NIXL_AUTH_PREFIX_LEN, out_len);
    free(env);
    return frame;
}

/* Tell an inbound peer why its command was refused. Never on our own outbound connections
 * (two agents would answer each other's refusals), never past the reply queue's bound. */
static void deny(nixl_sc_t *sc, sc_conn_t *c, const char *reason)
{
    if (c->outbound || c->out_bytes >= sc->cfg.max_queued)
        return;
    size_t flen;
    uint8_t *frame = sc_frame_build("DENY", reason, strlen(reason), &flen);
    if (frame)
        sc_conn_queue(c, frame, flen);
}

/* A reply we were waiting for could not be accepted: the fetch fails with the reason. */
static bool fail_fetch(nixl_sc_t *sc, sc_conn_t *c, const char *reason)
{
    if (!c->outbound || !c->fetch_head)
        return false;
    sc_conn_fetch_pop(sc, c, NIXL_ERR_NOT_ALLOWED, NULL, reason);
    return true;
}

void sc_auth_refuse_plain(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd)
{
    nixl_auth_count_refused(sc->cfg.auth);
    NIXL_LOG_LIMITED(NIXL_LOG_WARN, "side channel (agent '%s'): refused an unauthenticated "
                     "%.4s from %s (NIXL_AUTH_SECRET is set; %llu refused so far)",
                     sc->agent_name, cmd->verb_text, c->peer,
                     (unsigned long long)nixl_auth_refused(sc->cfg.auth));
    char why[320];
    snprintf(why, sizeof(why), "agent '%s' accepts only authenticated metadata: set the same "
             "NIXL_AUTH_SECRET (or NIXL_AUTH_SECRET_FILE) on this agent", sc->agent_name);
    if (!fail_fetch(sc, c, why))
        deny(sc, c, why);
}

void sc_auth_cmd(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd)
{
    char why[512];
    if (!sc->cfg.auth) {
        NIXL_LOG_LIMITED(NIXL_LOG_WARN, "side channel (agent '%s'): %s sent authenticated "
                         "metadata, but this agent has no secret (NIXL_AUTH_SECRET); refused",
                         sc->agent_name, c->peer);
        snprintf(why, sizeof(why), "agent '%s' has no auth secret and cannot check "
                 "authenticated metadata: configure the same NIXL_AUTH_SECRET on it",
                 sc->agent_name);
        if (!fail_fetch(sc, c, why))
            deny(sc, c, why);
        return;
    }
    /* the command started at "NIXLCOMM:AUTH", just before its payload */
    const uint8_t *env = cmd->payload - NIXL_AUTH_PREFIX_LEN;
    nixl_auth_msg_t m;
    nixl_status_t st = nixl_auth_open(sc->cfg.auth, NIXL_AUTH_SIDECHANNEL, NULL, env,
                                      cmd->len + NIXL_AUTH_PREFIX_LEN, true, &m);
    if (st != NIXL_SUCCESS) {
        nixl_auth_count_refused(sc->cfg.auth);
        snprintf(why, sizeof(why), "agent '%s' refused an authenticated message: %s",
                 sc->agent_name, nixl_err_text());
        NIXL_LOG_LIMITED(NIXL_LOG_WARN, "side channel: from %s: %s (%llu refused so far)",
                         c->peer, why, (unsigned long long)nixl_auth_refused(sc->cfg.auth));
        if (!fail_fetch(sc, c, why))
            deny(sc, c, why);
        return;
    }
    sc_cmd_t inner = {.verb_text = m.verb, .payload = m.payload, .len = m.len};
    if (strcmp(m.verb, "LOAD") == 0) {
        inner.verb = SC_VERB_LOAD;
        sc_cmd_load(sc, c, &inner, m.sender);
    } else if (strcmp(m.verb, "SEND") == 0) {
        sc_cmd_send(sc, c);
    } else if (strcmp(m.verb, "INVL") == 0) {
        inner.verb = SC_VERB_INVL;
        sc_cmd_invl(sc, c, &inner, m.sender);
    } else {
        NIXL_WARN("side channel: unknown authenticated command \"%s\" from '%s' at %s, "
                  "skipped", m.verb, m.sender, c->peer);
    }
}

void sc_deny_cmd(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd)
{
    char reason[512];
    size_t n = cmd->len < sizeof(reason) - 1 ? cmd->len : sizeof(reason) - 1;
    for (size_t i = 0; i < n; i++) /* a peer's text goes into our logs: printable only */
        reason[i] = cmd->payload[i] >= ' ' && cmd->payload[i] < 0x7f ? (char)cmd->payload[i]
                                                                    : '?';
    reason[n] = '\0';
    if (fail_fetch(sc, c, reason))
        return;
    NIXL_LOG_LIMITED(NIXL_LOG_ERROR, "side channel (agent '%s'): %s refused our message: %s",
                     sc->agent_name, c->peer, reason);
}
