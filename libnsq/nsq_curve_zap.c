/*  nsq_curve_zap - the process's one ZAP handler, shared by every CURVE
    server in it
    SPDX-License-Identifier: MIT

    Two mutexes: s_life serializes join and leave (starting and stopping
    the handler, numbering domains); s_data guards the domains and their
    lists, and is the only one the handler's thread takes, so leave may
    stop the thread while holding s_life.
*/
#include "nsq_curve_zap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_log.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"  // RFC 27: one per context
#define S_KEY_TEXT     41                        // a Z85 key of 32 bytes and its NUL

struct _nsq_curve_zap_domain_t {
    char name[32];            // "nsq-N"
    zhashx_t *allowed;        // public keys; NULL = any client (under s_data)
    nsq_curve_limit_t limit;  // refusal lines of this domain (under s_data)
};

static pthread_mutex_t s_life = PTHREAD_MUTEX_INITIALIZER;  // join and leave
static pthread_mutex_t s_data = PTHREAD_MUTEX_INITIALIZER;  // s_domains and their contents
static zactor_t *s_handler;          // the handler's thread while a domain is joined (s_life)
static unsigned s_next;              // domains numbered so far (s_life)
static zhashx_t *s_domains;          // name -> domain (s_data)
static nsq_curve_limit_t s_unknown;  // refusals for no joined domain (s_data)

bool nsq_curve_limit_pass(nsq_curve_limit_t *self, unsigned *suppressed)
{
    int64_t now = zclock_mono();
    if (self->last_ms && now - self->last_ms < NSQ_CURVE_LOG_INTERVAL_MS) {
        self->suppressed++;
        return false;
    }
    *suppressed = self->suppressed;
    self->suppressed = 0;
    self->last_ms = now;
    return true;
}

//  True if a CURVE client of domain name with credentials (its public key)
//  may connect; logs a refusal.
static bool s_curve_allowed(const char *name, zframe_t *credentials, const char *address)
{
    char key[S_KEY_TEXT] = "";
    if (credentials && zframe_size(credentials) == 32)
        zmq_z85_encode(key, zframe_data(credentials), 32);
    pthread_mutex_lock(&s_data);
    nsq_curve_zap_domain_t *domain = s_domains ? zhashx_lookup(s_domains, name) : NULL;
    bool allowed = domain && key[0] && (!domain->allowed || zhashx_lookup(domain->allowed, key));
    unsigned more = 0;
    if (!domain && nsq_curve_limit_pass(&s_unknown, &more))
        nsq_warn("zmq: refused CURVE client %s: its server (ZAP domain %s) is gone (%u more "
                 "refused since the last such line)",
                 address, name, more);
    else if (!allowed && domain && nsq_curve_limit_pass(&domain->limit, &more))
        nsq_warn("zmq: refused CURVE client %s: key %s is not in --zmq-curve-allow-dir "
                 "(%u more refused since the last such line)",
                 address, key[0] ? key : "(none)", more);
    pthread_mutex_unlock(&s_data);
    return allowed;
}

//  Answers one ZAP request: CURVE keys must be on the list of the
//  request's domain when it has one; other mechanisms are not ours to
//  judge.
static void s_answer(zsock_t *handler)
{
    zmsg_t *request = zmsg_recv(handler);
    if (!request)
        return;
    char *version = zmsg_popstr(request), *sequence = zmsg_popstr(request);
    char *domain = zmsg_popstr(request), *address = zmsg_popstr(request);
    char *identity = zmsg_popstr(request), *mechanism = zmsg_popstr(request);
    zframe_t *credentials = zmsg_pop(request);
    bool allowed = !mechanism || !streq(mechanism, "CURVE")
                   || s_curve_allowed(domain ? domain : "", credentials, address ? address : "?");
    zstr_sendm(handler, "1.0");
    zstr_sendm(handler, sequence ? sequence : "");
    zstr_sendm(handler, allowed ? "200" : "400");
    zstr_sendm(handler, allowed ? "OK" : "key not allowed");
    zstr_sendm(handler, "");
    zstr_send(handler, "");
    zstr_free(&version), zstr_free(&sequence), zstr_free(&domain), zstr_free(&address);
    zstr_free(&identity), zstr_free(&mechanism);
    zframe_destroy(&credentials);
    zmsg_destroy(&request);
}

static void s_handler_run(zsock_t *pipe, void *args)
{
    zsock_t *handler = args;  // bound by the starter; ours from now on
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    zsock_signal(pipe, 0);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == handler)
            s_answer(handler);
        else {
            char *command = which ? zstr_recv(pipe) : NULL;
            bool term = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (term)
                break;
        }
    }
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
}

//  Starts the handler's thread (s_life held). Returns 0, or -1 with a line.
static int s_handler_start(char *error, size_t size)
{
    zsock_t *handler = zsock_new(ZMQ_REP);
    if (handler && zsock_bind(handler, S_ZAP_ENDPOINT) == 0)
        s_handler = zactor_new(s_handler_run, handler);  // takes the handler
    else
        zsock_destroy(&handler);
    if (!s_handler) {
        snprintf(error, size, "cannot start the ZAP handler (%s)", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

nsq_curve_zap_domain_t *nsq_curve_zap_join(zhashx_t **allowed_p, char *error, size_t size)
{
    nsq_curve_zap_domain_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&s_life);
    int rc = s_handler ? 0 : s_handler_start(error, size);
    if (rc == 0) {
        snprintf(self->name, sizeof self->name, "nsq-%u", ++s_next);
        self->allowed = *allowed_p;
        *allowed_p = NULL;
        pthread_mutex_lock(&s_data);
        if (!s_domains)
            s_domains = zhashx_new();
        rc = s_domains ? zhashx_insert(s_domains, self->name, self) : -1;
        pthread_mutex_unlock(&s_data);
        if (rc != 0)
            snprintf(error, size, "out of memory");
    }
    pthread_mutex_unlock(&s_life);
    if (rc != 0) {
        nsq_curve_zap_leave(&self);
        return NULL;
    }
    return self;
}

const char *nsq_curve_zap_domain(const nsq_curve_zap_domain_t *self)
{
    return self->name;
}

void nsq_curve_zap_allow(nsq_curve_zap_domain_t *self, zhashx_t **allowed_p)
{
    pthread_mutex_lock(&s_data);
    zhashx_t *old = self->allowed;
    self->allowed = *allowed_p;
    pthread_mutex_unlock(&s_data);
    *allowed_p = NULL;
    zhashx_destroy(&old);
}

void nsq_curve_zap_leave(nsq_curve_zap_domain_t **self_p)
{
    nsq_curve_zap_domain_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    pthread_mutex_lock(&s_life);
    pthread_mutex_lock(&s_data);
    if (s_domains && zhashx_lookup(s_domains, self->name) == self)
        zhashx_delete(s_domains, self->name);
    bool last = !s_domains || zhashx_size(s_domains) == 0;
    if (last)
        zhashx_destroy(&s_domains);
    pthread_mutex_unlock(&s_data);
    if (last)
        zactor_destroy(&s_handler);  // it takes s_data only: no deadlock
    pthread_mutex_unlock(&s_life);
    zhashx_destroy(&self->allowed);
    free(self);
    *self_p = NULL;
}
