/*  broker_http - the broker's HTTP door (libmicrohttpd): the server, its
    connections, and the hand-off of requests to the core thread
    SPDX-License-Identifier: MIT

    libmicrohttpd calls the access handler several times per request: when
    the headers are in (refuse ambiguous framing, see nsq_http.h, then
    route and check: broker_http_routes_begin), once per piece of body,
    and once at the end. A refusal found with a body still on the wire is
    answered at once (libmicrohttpd then closes the connection); otherwise
    at the end, so keep-alive survives.

    The hand-off: at the end the HTTP thread puts the connection on the
    queue and suspends it, under the door's lock, and writes the eventfd
    only when the queue was empty, so a busy core is woken once per batch,
    not per request. The core reads the eventfd before it takes the queue
    (a request queued after the take writes it again). Handing back takes
    the lock too, so a connection is never resumed before it is suspended;
    a batch answered at once is handed back under one lock.
    Connections handed over sit on a second list until they are handed
    back, so that destroy can answer those the core never will.

    A publish need not wait for the core at all: where the core gave its
    topic credit (broker_admission.h: non-durable, no auth, no defer, a
    topic with a disk queue), the HTTP thread admits the messages into
    the topic's queue and answers 200 at once, with no suspend, resume or
    wake-up of its own. Without credit it takes the hand-off below, and
    the core grants credit after serving it.

    The per-request state (connection_t, holding the call and the request
    the core reads) lives in the TCP connection's socket context: allocated
    once per connection and reused by every request on it. So a /pub
    allocates only its message; the fixed answers ("OK", empty) are built
    once and shared by all threads.
*/
#include "broker_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "broker_http_answer.h"
#include "broker_http_routes.h"
#include "nsq_address.h"
#include "nsq_http.h"
#include "nsq_http_server.h"
#include "nsq_log.h"

#define S_CONNECTION_TIMEOUT_S 60  // idle connections are closed after this
#define S_ABANDON_WAIT_S       1   // destroy waits this long for its 503s to leave

typedef struct _connection_t connection_t;

struct _broker_http_t {
    broker_config_t config;                   // our copy, read-only
    nsq_http_server_t *server;                // the running server (HTTP and HTTPS)
    struct MHD_Response *ok;                  // 200 "OK", shared by every thread
    struct MHD_Response *empty;               // 200 with an empty body, shared
    char hostname[256];                       // for /info
    int64_t start_time;                       // unix seconds, for /info
    uint16_t port;                            // bound HTTP port
    _Atomic uint16_t zmq_port;                // for /info; set by the core
    _Atomic uint16_t tcp_port;                // for /info; set by the core (0: no TCP door)
    int wakeup;                               // eventfd: readable while requests are queued
    _Atomic(broker_admission_t *) admission;  // publishes admitted here; NULL: none (borrowed)
    pthread_mutex_t lock;                     // guards the fields below
    connection_t *queue_head;  // handed over, not taken by the core yet (oldest first)
    connection_t *queue_tail;  // the newest of them
    connection_t *waiting;     // handed over and not handed back (queued or taken)
    bool exiting;              // hand nothing more over
    size_t abandoned;          // abandoned requests not yet answered
    pthread_cond_t answered;   // signalled as abandoned drops
};

struct _connection_t {
    broker_http_t *server;       // the server this connection belongs to
    broker_http_call_t call;     // the current request
    bool answered;               // a response is queued already
    bool sent;                   // handed to the core; the connection is suspended
    bool abandoned;              // the core will never answer: destroy resumed us
    struct MHD_Connection *mhd;  // to resume it
    connection_t *queued;        // next on server's queue
    connection_t *prev, *next;   // on server->waiting while sent
};

//  --------------------------------------------------------------------------
//  Answers

static enum MHD_Result s_answer_error(connection_t *conn, struct MHD_Connection *mhd,
                                      unsigned status, const char *code)
{
    conn->answered = true;
    return broker_http_answer_error(mhd, status, code);
}

static enum MHD_Result s_answer_fixed(connection_t *conn, struct MHD_Connection *mhd)
{
    broker_http_t *self = conn->server;
    conn->answered = true;
    if (conn->call.action == BROKER_HTTP_PING)
        return broker_http_answer_shared(mhd, self->ok);
    broker_http_info_t info = {self->hostname, self->port, atomic_load(&self->zmq_port),
                               atomic_load(&self->tcp_port), self->start_time};
    return broker_http_answer_info(mhd, &self->config, &info);
}

//  --------------------------------------------------------------------------
//  Hand-off

static void s_waiting_add(broker_http_t *self, connection_t *conn)
{
    conn->prev = NULL;
    conn->next = self->waiting;
    if (self->waiting)
        self->waiting->prev = conn;
    self->waiting = conn;
}

static void s_waiting_remove(broker_http_t *self, connection_t *conn)
{
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        self->waiting = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
}

//  Admits a publish to a topic the core gave credit (see the top): true if
//  the messages are in their topic's queue now, and the answer is "OK".
static bool s_admit(connection_t *conn)
{
    broker_http_request_t *request = &conn->call.request;
    broker_admission_t *admission = atomic_load(&conn->server->admission);
    if (!admission || request->kind != BROKER_HTTP_PUB || request->defer_ms || request->has_secret
        || conn->server->config.durable)
        return false;  // never granted credit: no lock taken for nothing
    if (broker_admission_offer(admission, request->topic, request->messages, request->message_count)
        != 0)
        return false;
    request->message_count = 0;  // moved; the array stays ours
    return true;
}

//  Queues the request for the core and suspends the connection until it is
//  handed back; wakes the core if the queue was empty.
static enum MHD_Result s_hand_over(connection_t *conn, struct MHD_Connection *mhd)
{
    broker_http_t *self = conn->server;
    pthread_mutex_lock(&self->lock);
    bool exiting = self->exiting, wake = false;
    if (!exiting) {
        conn->sent = true;
        conn->mhd = mhd;
        conn->queued = NULL;
        wake = !self->queue_head;
        if (self->queue_tail)
            self->queue_tail->queued = conn;
        else
            self->queue_head = conn;
        self->queue_tail = conn;
        MHD_suspend_connection(mhd);
        s_waiting_add(self, conn);
    }
    pthread_mutex_unlock(&self->lock);
    if (wake) {
        uint64_t one = 1;
        while (write(self->wakeup, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    if (!exiting)
        return MHD_YES;
    broker_http_call_release(&conn->call);  // the messages are still ours
    return s_answer_error(conn, mhd, MHD_HTTP_SERVICE_UNAVAILABLE, "EXITING");
}

int broker_http_handoff_fd(broker_http_t *self)
{
    return self->wakeup;
}

//  Hands back the connections on the done list (linked through queued):
//  off the waiting list under one lock for them all, then resumed. They
//  came off the queue, so they are suspended already.
static void s_hand_back(broker_http_t *self, connection_t *done)
{
    pthread_mutex_lock(&self->lock);
    for (connection_t *conn = done; conn; conn = conn->queued)
        s_waiting_remove(self, conn);
    pthread_mutex_unlock(&self->lock);
    while (done) {
        connection_t *next = done->queued;  // a resumed connection may be queued again
        MHD_resume_connection(done->mhd);
        done = next;
    }
}

size_t broker_http_take(broker_http_t *self, broker_http_handler_fn *handler, void *arg)
{
    uint64_t count;
    if (read(self->wakeup, &count, sizeof count) < 0 && errno != EAGAIN)
        nsq_warn("http: cannot read the hand-off eventfd: %s", strerror(errno));
    pthread_mutex_lock(&self->lock);
    connection_t *conn = self->queue_head;
    self->queue_head = self->queue_tail = NULL;
    pthread_mutex_unlock(&self->lock);
    size_t taken = 0;
    connection_t *done = NULL;  // answered now, handed back together below
    while (conn) {
        connection_t *next = conn->queued;
        if (handler(arg, &conn->call.request)) {
            conn->call.request.message_count = 0;  // the core took them; the array stays ours
            conn->queued = done;
            done = conn;
        }
        conn = next;
        taken++;
    }
    if (done)
        s_hand_back(self, done);
    return taken;
}

void broker_http_request_done(broker_http_request_t *request)
{
    connection_t *conn = (connection_t *) ((char *) request - offsetof(connection_t, call)
                                           - offsetof(broker_http_call_t, request));
    request->message_count = 0;  // the core took them; the array stays ours
    conn->queued = NULL;
    s_hand_back(conn->server, conn);
}

void broker_http_set_exiting(broker_http_t *self, bool exiting)
{
    pthread_mutex_lock(&self->lock);
    self->exiting = exiting;
    pthread_mutex_unlock(&self->lock);
}

//  Answers 503 to every request the core will never hand back (it has
//  stopped), and waits a little for those answers to leave.
static void s_abandon_waiting(broker_http_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->exiting = true;
    self->queue_head = self->queue_tail = NULL;
    while (self->waiting) {
        connection_t *conn = self->waiting;
        s_waiting_remove(self, conn);
        conn->abandoned = true;
        self->abandoned++;
        MHD_resume_connection(conn->mhd);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += S_ABANDON_WAIT_S;
    while (self->abandoned > 0)
        if (pthread_cond_timedwait(&self->answered, &self->lock, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&self->lock);
}

//  --------------------------------------------------------------------------
//  libmicrohttpd callbacks

//  First call, headers complete: route and check before any body is read.
static enum MHD_Result s_begin(connection_t *conn, struct MHD_Connection *mhd, const char *url,
                               const char *method)
{
    if (nsq_http_framing_is_ambiguous(mhd)) {
        conn->answered = true;  // and the connection closes: its next bytes mean nothing
        return nsq_http_refuse(mhd, MHD_HTTP_BAD_REQUEST, BROKER_HTTP_APPLICATION_JSON,
                               "{\"message\":\"BAD_REQUEST\"}");
    }
    broker_http_routes_begin(&conn->call, mhd, url, method, &conn->server->config);
    if (conn->call.error_status && broker_http_routes_body_follows(mhd))
        return s_answer_error(conn, mhd, conn->call.error_status, conn->call.error_code);
    return MHD_YES;
}

//  Last call, the whole request is in: answer here or through the core.
static enum MHD_Result s_finish(connection_t *conn, struct MHD_Connection *mhd)
{
    broker_http_call_t *call = &conn->call;
    if (conn->answered)
        return MHD_YES;
    if (conn->sent && conn->abandoned) {  // resumed by destroy
        broker_http_call_release(call);   // the core never took them
        return s_answer_error(conn, mhd, MHD_HTTP_SERVICE_UNAVAILABLE, "EXITING");
    }
    if (conn->sent) {  // resumed with the core's answer
        conn->answered = true;
        return broker_http_answer_request(mhd, &call->request, conn->server->ok,
                                          conn->server->empty);
    }
    if (!broker_http_routes_finish(call, &conn->server->config))
        return s_answer_error(conn, mhd, call->error_status, call->error_code);
    if (call->action != BROKER_HTTP_TO_CORE)
        return s_answer_fixed(conn, mhd);
    if (s_admit(conn)) {
        conn->answered = true;
        return broker_http_answer_shared(mhd, conn->server->ok);
    }
    return s_hand_over(conn, mhd);
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *mhd, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **request_context)
{
    (void) cls;
    (void) version;
    connection_t *conn = *request_context;
    if (!conn) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        conn = info ? info->socket_context : NULL;
        if (!conn)
            return MHD_NO;  // no memory for it when the connection came
        broker_http_call_reset(&conn->call);
        conn->answered = conn->sent = conn->abandoned = false;
        *request_context = conn;
        return s_begin(conn, mhd, url, method);
    }
    if (*upload_data_size) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        return broker_http_routes_body(&conn->call, upload_data, size);
    }
    return s_finish(conn, mhd);
}

static void s_request_completed(void *cls, struct MHD_Connection *mhd, void **request_context,
                                enum MHD_RequestTerminationCode code)
{
    (void) cls;
    (void) mhd;
    (void) code;
    connection_t *conn = *request_context;
    if (conn && conn->abandoned) {
        broker_http_t *self = conn->server;
        pthread_mutex_lock(&self->lock);
        conn->abandoned = false;
        self->abandoned--;
        pthread_cond_signal(&self->answered);
        pthread_mutex_unlock(&self->lock);
    }
    if (conn)
        broker_http_call_release(&conn->call);
    *request_context = NULL;
}

static void s_connection_notify(void *cls, struct MHD_Connection *mhd, void **socket_context,
                                enum MHD_ConnectionNotificationCode code)
{
    (void) mhd;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        connection_t *conn = calloc(1, sizeof(connection_t));
        if (conn)
            conn->server = cls;
        *socket_context = conn;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        connection_t *conn = *socket_context;
        broker_http_call_release(&conn->call);
        free(conn);
        *socket_context = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Server

//  The port of "host:port", or 0.
static uint16_t s_address_port(const char *text)
{
    const char *colon = strrchr(text, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || end == colon + 1 || *end || port < 0 || port > 65535)
        return 0;
    return (uint16_t) port;
}

static nsq_http_server_t *s_start(broker_http_t *self)
{
    nsq_http_server_config_t server = {0};
    server.http_address = self->config.http_address;
    server.https_address = self->config.https_address;
    server.tls = NSQ_HTTP_TLS_OF(&self->config);
    server.threads = self->config.http_threads > 0 ? (unsigned) self->config.http_threads : 1;
    server.connection_timeout_s = S_CONNECTION_TIMEOUT_S;
    server.turbo = server.suspend_resume = true;
    server.access = s_access;
    server.notify_connection = s_connection_notify;
    server.notify_connection_arg = self;
    server.notify_completed = s_request_completed;
    char error[512];
    nsq_http_server_t *http = nsq_http_server_new(&server, error, sizeof error);
    if (!http)
        nsq_error("http: %s", error);
    return http;
}

//  The lock is held for a few instructions at a time by the HTTP threads and
//  the core: spin briefly rather than sleep at once. The wait for abandoned
//  answers uses the monotonic clock.
static void s_sync_init(broker_http_t *self)
{
    pthread_mutexattr_t lock_attributes;
    pthread_mutexattr_init(&lock_attributes);
    pthread_mutexattr_settype(&lock_attributes, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&self->lock, &lock_attributes);
    pthread_mutexattr_destroy(&lock_attributes);
    pthread_condattr_t cond_attributes;
    pthread_condattr_init(&cond_attributes);
    pthread_condattr_setclock(&cond_attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&self->answered, &cond_attributes);
    pthread_condattr_destroy(&cond_attributes);
}

broker_http_t *broker_http_new(const broker_config_t *config)
{
    broker_http_t *self = calloc(1, sizeof(broker_http_t));
    if (!self)
        return NULL;
    self->config = *config;
    self->config.disk_listing = NULL;  // not ours
    s_sync_init(self);
    self->wakeup = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    self->start_time = (int64_t) time(NULL);
    if (gethostname(self->hostname, sizeof(self->hostname) - 1) != 0)
        snprintf(self->hostname, sizeof(self->hostname), "localhost");
    atomic_store(&self->zmq_port, s_address_port(config->zmq_address));
    self->ok = broker_http_answer_shared_new("OK");
    self->empty = broker_http_answer_shared_new("");
    if (self->wakeup >= 0 && self->ok && self->empty)
        self->server = s_start(self);
    if (!self->server) {
        broker_http_destroy(&self);
        return NULL;
    }
    self->port = nsq_http_server_port(self->server);
    if (nsq_http_server_https_port(self->server))
        nsq_info("http: HTTPS on port %u", nsq_http_server_https_port(self->server));
    return self;
}

uint16_t broker_http_port(broker_http_t *self)
{
    return self->port;
}

uint16_t broker_http_https_port(broker_http_t *self)
{
    return nsq_http_server_https_port(self->server);
}

void broker_http_set_zmq_port(broker_http_t *self, uint16_t port)
{
    atomic_store(&self->zmq_port, port);
}

void broker_http_set_admission(broker_http_t *self, broker_admission_t *admission)
{
    atomic_store(&self->admission, admission);
}

void broker_http_set_tcp_port(broker_http_t *self, uint16_t port)
{
    atomic_store(&self->tcp_port, port);
}

void broker_http_destroy(broker_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_http_t *self = *self_p;
    if (self->server) {
        s_abandon_waiting(self);
        nsq_http_server_destroy(&self->server);
    }
    if (self->ok)
        MHD_destroy_response(self->ok);
    if (self->empty)
        MHD_destroy_response(self->empty);
    if (self->wakeup >= 0)
        close(self->wakeup);
    pthread_cond_destroy(&self->answered);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
