/*  nsq_producer - publish to one broker over ZeroMQ and wait for its answer
    SPDX-License-Identifier: MIT

    One DEALER socket. Every publish is one Pub command numbered with an
    increasing seq; the broker answers each with a Response or an Error that
    echoes the seq. Publishes in flight form a window [oldest, next_seq): a
    ring of "answered" flags indexed by seq, so answers may come in any
    order and stale answers (after a timeout) are ignored. The synchronous
    calls are a window of one followed by a flush.

    When no answer arrives for timeout_ms, every outstanding publish fails
    with E_TIMEOUT and the socket is replaced (linger 0), so publishes that
    were reported failed are not delivered later by a queue nobody watches.

    With an auth secret, an Auth command goes ahead of the first publish on
    each socket (and again after a fatal error, which ends the broker's
    session). It takes a seq in the window like a publish, so its refusal
    (E_AUTH_FAILED, E_UNAUTHORIZED...) is reported by the publish that
    follows it.

    API in call order: nsq_producer_new, nsq_producer_set_timeout,
    nsq_producer_publish / _dpublish / _mpublish or
    nsq_producer_publish_async / _mpublish_async + nsq_producer_flush,
    nsq_producer_error,
    nsq_producer_destroy.
*/
#include "nsq.h"
#include "nsq_endpoint.h"
#include "nsq_fake_broker.h"
#include "nsq_log.h"
#include "nsq_selftest.h"
#include "nsq_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_TIMEOUT_DEFAULT_MS 5000   // how long a publish waits for its answer
#define S_WINDOW_MAX         65536  // largest async window; bounds the send queue
#define S_ERROR_MAX          64     // longest error code kept, NUL included

struct _nsq_producer_t {
    char endpoint[NSQ_ENDPOINT_MAX];  // "tcp://host:port"
    zsock_t *sock;                    // DEALER to the broker
    int timeout_ms;                   // answer timeout
    uint64_t next_seq;                // seq of the next publish
    uint64_t oldest;                  // oldest unanswered seq; next_seq if none
    bool *answered;                   // ring of flags, indexed by seq % ring_size
    size_t ring_size;                 // capacity of the window
    bool failed;                      // a publish failed since the last report
    char error[S_ERROR_MAX];          // last error code, "" if none
    nsq_curve_client_t curve;         // CURVE keys (disabled = plain)
    char *auth_secret;                // sent in an Auth command; NULL: none
    bool auth_due;                    // this socket's session has not sent it yet
};

static int s_socket_open(nsq_producer_t *self)
{
    self->sock =
        nsq_endpoint_dealer(self->endpoint, S_WINDOW_MAX + 16, self->timeout_ms, &self->curve);
    return self->sock ? 0 : -1;
}

// Drops the socket and whatever it still queues; opens a fresh one.
static void s_socket_reset(nsq_producer_t *self)
{
    if (self->sock) {
        zsock_set_linger(self->sock, 0);
        zsock_destroy(&self->sock);
    }
    self->auth_due = self->auth_secret != NULL;  // a new socket is a new session
    s_socket_open(self);
}

static void s_set_error(nsq_producer_t *self, const char *code)
{
    snprintf(self->error, sizeof self->error, "%s", code && *code ? code : "E_UNKNOWN");
    self->failed = true;
}

nsq_producer_t *nsq_producer_new(const char *address)
{
    nsq_producer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->timeout_ms = S_TIMEOUT_DEFAULT_MS;
    self->next_seq = self->oldest = 1;
    self->ring_size = 1;
    self->answered = calloc(1, sizeof(bool));
    if (!self->answered || nsq_endpoint_parse(address, self->endpoint, sizeof self->endpoint)
        || s_socket_open(self)) {
        nsq_producer_destroy(&self);
        return NULL;
    }
    return self;
}

void nsq_producer_destroy(nsq_producer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_producer_t *self = *self_p;
    zsock_destroy(&self->sock);
    free(self->answered);
    nsq_producer_set_auth_secret(self, NULL);
    free(self);
    *self_p = NULL;
}

void nsq_producer_set_auth_secret(nsq_producer_t *self, const char *secret)
{
    if (self->auth_secret) {
        memset(self->auth_secret, 0, strlen(self->auth_secret));
        free(self->auth_secret);
    }
    self->auth_secret = secret && *secret ? strdup(secret) : NULL;
    self->auth_due = self->auth_secret != NULL;
}

void nsq_producer_set_timeout(nsq_producer_t *self, int timeout_ms)
{
    self->timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
    if (self->sock)
        zsock_set_linger(self->sock, self->timeout_ms);
}

int nsq_producer_set_curve(nsq_producer_t *self, const char *key_file, const char *server_key_file)
{
    char error[512];
    if (nsq_curve_client_load(&self->curve, key_file, server_key_file, error, sizeof error)) {
        nsq_error("producer: %s", error);
        errno = EINVAL;
        return -1;
    }
    s_socket_reset(self);  // nothing sent on the old one is waited for
    return self->sock ? 0 : -1;
}

const char *nsq_producer_error(nsq_producer_t *self)
{
    return self->error;
}

// ---- the window ------------------------------------------------------------

// Makes room for window outstanding publishes. Returns 0 or -1.
static int s_ring_reserve(nsq_producer_t *self, size_t window)
{
    if (window <= self->ring_size)
        return 0;
    bool *ring = calloc(window, sizeof(bool));
    if (!ring)
        return -1;
    for (uint64_t seq = self->oldest; seq < self->next_seq; seq++)
        ring[seq % window] = self->answered[seq % self->ring_size];
    free(self->answered);
    self->answered = ring;
    self->ring_size = window;
    return 0;
}

// Records the answer to seq (code NULL = success); ignores stale seqs.
static void s_answer(nsq_producer_t *self, uint64_t seq, const char *code)
{
    if (seq < self->oldest || seq >= self->next_seq || self->answered[seq % self->ring_size])
        return;
    self->answered[seq % self->ring_size] = true;
    if (code)
        s_set_error(self, code);
    while (self->oldest < self->next_seq && self->answered[self->oldest % self->ring_size])
        self->oldest++;
}

// Fails every outstanding publish with E_TIMEOUT.
static void s_time_out(nsq_producer_t *self)
{
    s_set_error(self, "E_TIMEOUT");
    self->oldest = self->next_seq;
    s_socket_reset(self);
}

// Records one answer frame.
static void s_on_frame(nsq_producer_t *self, zmq_msg_t *frame)
{
    Nsq__Frame *decoded = nsq_wire_frame_unpack(zmq_msg_data(frame), zmq_msg_size(frame));
    if (decoded && decoded->frame_case == NSQ__FRAME__FRAME_RESPONSE)
        s_answer(self, decoded->response->seq, NULL);
    else if (decoded && decoded->frame_case == NSQ__FRAME__FRAME_ERROR) {
        s_answer(self, decoded->error->seq, decoded->error->code);
        if (decoded->error->fatal)
            self->auth_due = self->auth_secret != NULL;  // the broker ended the session
    }
    nsq__frame__free_unpacked(decoded, NULL);
}

// Waits up to timeout_ms for one frame and records it. Returns 1 if a frame
// was read, 0 on timeout. A blocking receive with a receive timeout waits
// in libzmq's own poll of the socket's mailbox: half the system calls of a
// zmq_poll (which polls twice when nothing is ready) and a read after it,
// and system calls are most of a single publish's round trip.
static int s_receive(nsq_producer_t *self, int timeout_ms)
{
    if (!self->sock)
        return 0;  // could not reopen after a timeout: fail fast
    void *handle = zsock_resolve(self->sock);
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    int64_t deadline = zclock_mono() + timeout_ms;
    int left = timeout_ms;
    while (zmq_setsockopt(handle, ZMQ_RCVTIMEO, &left, sizeof left) < 0
           || zmq_msg_recv(&frame, handle, 0) < 0) {
        left = (int) (deadline - zclock_mono());
        if (errno != EINTR || left <= 0) {
            zmq_msg_close(&frame);
            return 0;
        }
    }
    s_on_frame(self, &frame);
    zmq_msg_close(&frame);
    return 1;
}

// Waits until at most window publishes are outstanding (0: all answered).
static void s_wait(nsq_producer_t *self, size_t window)
{
    while (self->next_seq - self->oldest > window)
        if (s_receive(self, self->timeout_ms) == 0)
            s_time_out(self);
}

// Returns -1 once per failure since the last report, else 0.
static int s_report(nsq_producer_t *self)
{
    if (!self->failed)
        return 0;
    self->failed = false;
    return -1;
}

// Sends the Auth command as the next seq of the window. Returns 0 or -1.
static int s_send_auth(nsq_producer_t *self)
{
    Nsq__Auth auth = NSQ__AUTH__INIT;
    auth.secret = nsq_wire_bytes(self->auth_secret);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.version = 1;
    command.seq = self->next_seq;
    command.cmd_case = NSQ__COMMAND__CMD_AUTH;
    command.auth = &auth;
    if (!self->sock || nsq_wire_send_command(zsock_resolve(self->sock), &command, ZMQ_DONTWAIT))
        return -1;
    self->answered[self->next_seq % self->ring_size] = false;
    self->next_seq++;
    self->auth_due = false;
    return 0;
}

// Sends one Pub of count bodies. Returns 0, or -1 if it could not be queued.
static int s_send(nsq_producer_t *self, const char *topic, const void *const *bodies,
                  const size_t *sizes, size_t count, uint32_t defer_ms)
{
    s_wait(self, self->ring_size - 1);  // a free slot in the ring
    if (!topic || count == 0) {
        s_set_error(self, "E_INVALID");
        return -1;
    }
    if (self->auth_due && s_send_auth(self) != 0) {
        s_set_error(self, "E_SEND_FAILED");
        return -1;
    }
    s_wait(self, self->ring_size - 1);  // the Auth took a slot
    if (self->failed && self->auth_due)
        return -1;  // the broker refused the secret (and ended the session): keep its answer
    int rc = self->sock ? nsq_wire_send_pub(zsock_resolve(self->sock), self->next_seq, topic,
                                            bodies, sizes, count, defer_ms, ZMQ_DONTWAIT)
                        : -1;
    if (rc) {
        s_set_error(self, "E_SEND_FAILED");
        return -1;
    }
    self->answered[self->next_seq % self->ring_size] = false;
    self->next_seq++;
    return 0;
}

// ---- publishing ------------------------------------------------------------

static int s_publish(nsq_producer_t *self, const char *topic, const void *const *bodies,
                     const size_t *sizes, size_t count, uint32_t defer_ms)
{
    if (count == 0) {
        s_set_error(self, "E_INVALID");
        return s_report(self);
    }
    if (!self->failed)
        self->error[0] = '\0';
    s_send(self, topic, bodies, sizes, count, defer_ms);
    s_wait(self, 0);
    return s_report(self);
}

int nsq_producer_publish(nsq_producer_t *self, const char *topic, const void *body, size_t size)
{
    return s_publish(self, topic, &body, &size, 1, 0);
}

int nsq_producer_dpublish(nsq_producer_t *self, const char *topic, const void *body, size_t size,
                          uint32_t defer_ms)
{
    return s_publish(self, topic, &body, &size, 1, defer_ms);
}

int nsq_producer_mpublish(nsq_producer_t *self, const char *topic, const void *const *bodies,
                          const size_t *sizes, size_t count)
{
    return s_publish(self, topic, bodies, sizes, count, 0);
}

int nsq_producer_mpublish_async(nsq_producer_t *self, const char *topic, const void *const *bodies,
                                const size_t *sizes, size_t count, size_t window)
{
    window = window < 1 ? 1 : window > S_WINDOW_MAX ? S_WINDOW_MAX : window;
    if (s_ring_reserve(self, window)) {
        s_set_error(self, "E_NOMEM");
        return s_report(self);
    }
    s_wait(self, window - 1);
    s_send(self, topic, bodies, sizes, count, 0);
    while (self->oldest < self->next_seq && s_receive(self, 0))
        ;  // collect answers that are already here
    return s_report(self);
}

int nsq_producer_publish_async(nsq_producer_t *self, const char *topic, const void *body,
                               size_t size, size_t window)
{
    return nsq_producer_mpublish_async(self, topic, &body, &size, 1, window);
}

int nsq_producer_flush(nsq_producer_t *self)
{
    s_wait(self, 0);
    return s_report(self);
}

// ---- self-test -------------------------------------------------------------
// A fake broker in an actor thread: answers Pub with OK, topic "bad" with
// E_BAD_TOPIC, and never answers topic "silent". "COUNT" on the pipe returns
// the number of bodies accepted so far.

static void s_fake_broker(zsock_t *pipe, void *arg)
{
    (void) arg;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    int port = nsq_endpoint_bind(router, "127.0.0.1", 9, "0");  // a random port
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    zsock_signal(pipe, 0);
    zstr_sendf(pipe, "%d", port);
    size_t accepted = 0;
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (which == router) {
            nsq_fake_broker_read_pub(router, &accepted);
            continue;
        }
        char *command = which ? zstr_recv(pipe) : NULL;
        bool stop = !command || streq(command, "$TERM");
        if (!stop)
            zstr_sendf(pipe, "%zu", accepted);
        zstr_free(&command);
        if (stop)
            break;
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

static size_t s_fake_accepted(zactor_t *fake)
{
    zstr_send(fake, "COUNT");
    char *text = zstr_recv(fake);
    size_t count = text ? (size_t) atol(text) : 0;
    zstr_free(&text);
    return count;
}

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "nsq_producer_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);     \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int s_test_sync(nsq_producer_t *producer, zactor_t *fake)
{
    S_CHECK(nsq_producer_publish(producer, "orders", "hello", 5) == 0);
    S_CHECK(streq(nsq_producer_error(producer), ""));
    S_CHECK(nsq_producer_publish(producer, "bad", "hello", 5) == -1);
    S_CHECK(streq(nsq_producer_error(producer), "E_BAD_TOPIC"));
    S_CHECK(nsq_producer_dpublish(producer, "orders", "later", 5, 100) == 0);
    S_CHECK(streq(nsq_producer_error(producer), ""));
    const void *bodies[] = {"a", "bb", "ccc"};
    const size_t sizes[] = {1, 2, 3};
    S_CHECK(nsq_producer_mpublish(producer, "orders", bodies, sizes, 3) == 0);
    S_CHECK(nsq_producer_mpublish(producer, "orders", bodies, sizes, 0) == -1);
    S_CHECK(s_fake_accepted(fake) == 5);
    return 0;
}

static int s_test_async(nsq_producer_t *producer, zactor_t *fake)
{
    int failures = 0;
    for (int i = 0; i < 1000; i++)
        if (nsq_producer_publish_async(producer, "orders", "x", 1, 100))
            failures++;
    S_CHECK(nsq_producer_flush(producer) == 0 && failures == 0);
    S_CHECK(s_fake_accepted(fake) == 1005);
    for (int i = 0; i < 50; i++)
        if (nsq_producer_publish_async(producer, i == 10 ? "bad" : "orders", "x", 1, 20))
            failures++;
    if (nsq_producer_flush(producer))
        failures++;
    S_CHECK(failures == 1 && streq(nsq_producer_error(producer), "E_BAD_TOPIC"));
    S_CHECK(nsq_producer_flush(producer) == 0);
    // Batches: 20 MPUBs of 3, at most 4 unanswered.
    const void *bodies[] = {"a", "bb", "ccc"};
    const size_t sizes[] = {1, 2, 3};
    for (int i = 0; i < 20; i++)
        if (nsq_producer_mpublish_async(producer, "orders", bodies, sizes, 3, 4))
            failures++;
    S_CHECK(nsq_producer_flush(producer) == 0 && failures == 1);
    S_CHECK(s_fake_accepted(fake) == 1005 + 49 + 60);
    return 0;
}

static int s_test_timeout(nsq_producer_t *producer)
{
    nsq_producer_set_timeout(producer, 200);
    int64_t start = zclock_mono();
    S_CHECK(nsq_producer_publish(producer, "silent", "x", 1) == -1);
    S_CHECK(streq(nsq_producer_error(producer), "E_TIMEOUT"));
    S_CHECK(zclock_mono() - start >= 190);
    S_CHECK(nsq_producer_publish(producer, "orders", "again", 5) == 0);
    return 0;
}

int nsq_producer_test(void)
{
    S_CHECK(nsq_producer_new("no-port") == NULL);
    nsq_producer_destroy(NULL);
    zactor_t *fake = zactor_new(s_fake_broker, NULL);
    char *port = zstr_recv(fake);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%s", port ? port : "0");
    zstr_free(&port);
    nsq_producer_t *producer = nsq_producer_new(address);
    int rc = producer ? 0 : -1;
    if (rc == 0)
        rc = s_test_sync(producer, fake);
    if (rc == 0)
        rc = s_test_async(producer, fake);
    if (rc == 0)
        rc = s_test_timeout(producer);
    nsq_producer_destroy(&producer);
    zactor_destroy(&fake);

    // Nobody listening: a timeout, and destroy does not linger.
    nsq_producer_t *lonely = nsq_producer_new("127.0.0.1:9");
    S_CHECK(lonely);
    nsq_producer_set_timeout(lonely, 100);
    S_CHECK(nsq_producer_publish(lonely, "orders", "x", 1) == -1);
    S_CHECK(streq(nsq_producer_error(lonely), "E_TIMEOUT"));
    nsq_producer_destroy(&lonely);
    S_CHECK(lonely == NULL);
    return rc;
}
