/*  worker_publisher - publish handlers' output without blocking the loop
    SPDX-License-Identifier: MIT

    See worker_publisher.h. Links (one per broker endpoint) live in a hash
    that owns them. A link's unanswered publishes form a list in send
    order; a broker answers in order, so an answer is found at the head,
    and the head is also the oldest, the one the timeout looks at. A
    callback may send again (it goes to the tail), but the link it came
    from stays, since links are only replaced by the tick.
*/
#include "worker_publisher.h"

#include "nsq_endpoint.h"
#include "nsq_fake_broker.h"
#include "nsq_wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_SEND_HWM 100000  // publishes queued towards one broker before EAGAIN

typedef struct _s_pending_t s_pending_t;
struct _s_pending_t {
    uint64_t seq;             // echoed by the answer
    int64_t sent_ms;          // zclock_mono at send
    worker_published_fn *fn;  // the callback
    void *arg;                // its argument
    s_pending_t *next;        // younger publish on the same link
};

typedef struct {
    worker_publisher_t *owner;        // for the loop
    char endpoint[NSQ_ENDPOINT_MAX];  // "tcp://host:port"
    zsock_t *sock;                    // DEALER, NULL if it could not be opened
    uint64_t next_seq;                // of the next publish
    s_pending_t *head;                // oldest unanswered
    s_pending_t *tail;                // youngest
    size_t count;                     // unanswered
} s_link_t;

struct _worker_publisher_t {
    zloop_t *loop;             // where answers are read
    int64_t timeout_ms;        // per publish
    zhashx_t *links;           // endpoint -> s_link_t
    size_t pending;            // over all links
    nsq_curve_client_t curve;  // CURVE keys for new links (disabled = plain)
    char *auth_secret;         // sent in an Auth command on each new session; NULL: none
};

static int s_on_answer(zloop_t *loop, zsock_t *sock, void *arg);

// Starts the link's session with an Auth command (seq 0: its answer is
// matched to no publish; a refusal shows in the publishes that follow).
static void s_send_auth(s_link_t *link)
{
    const char *secret = link->owner->auth_secret;
    if (!secret || !link->sock)
        return;
    Nsq__Auth auth = NSQ__AUTH__INIT;
    auth.secret = nsq_wire_bytes(secret);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.version = 1;
    command.cmd_case = NSQ__COMMAND__CMD_AUTH;
    command.auth = &auth;
    nsq_wire_send_command(zsock_resolve(link->sock), &command, ZMQ_DONTWAIT);
}

void worker_publisher_set_auth_secret(worker_publisher_t *self, const char *secret)
{
    if (self->auth_secret) {
        memset(self->auth_secret, 0, strlen(self->auth_secret));
        free(self->auth_secret);
    }
    self->auth_secret = secret && *secret ? strdup(secret) : NULL;
}

static void s_socket_close(s_link_t *link)
{
    if (!link->sock)
        return;
    zloop_reader_end(link->owner->loop, link->sock);
    zsock_set_linger(link->sock, 0);
    zsock_destroy(&link->sock);
}

static int s_socket_open(s_link_t *link)
{
    link->sock = zsock_new(ZMQ_DEALER);
    if (!link->sock)
        return -1;
    zsock_set_sndhwm(link->sock, S_SEND_HWM);
    zsock_set_rcvhwm(link->sock, S_SEND_HWM);
    zsock_set_ipv6(link->sock, strchr(link->endpoint, '[') != NULL);
    nsq_curve_client_apply(&link->owner->curve, link->sock);
    if (zsock_connect(link->sock, "%s", link->endpoint)
        || zloop_reader(link->owner->loop, link->sock, s_on_answer, link)) {
        zsock_destroy(&link->sock);
        return -1;
    }
    zloop_reader_set_tolerant(link->owner->loop, link->sock);
    s_send_auth(link);
    return 0;
}

static void s_link_destroy(s_link_t **link_p)
{
    if (!link_p || !*link_p)
        return;
    s_link_t *link = *link_p;
    s_socket_close(link);
    while (link->head) {
        s_pending_t *pending = link->head;
        link->head = pending->next;
        free(pending);
    }
    link->owner->pending -= link->count;
    free(link);
    *link_p = NULL;
}

void worker_publisher_set_curve(worker_publisher_t *self, const nsq_curve_client_t *curve)
{
    self->curve = *curve;
}

worker_publisher_t *worker_publisher_new(zloop_t *loop, int64_t timeout_ms)
{
    worker_publisher_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->timeout_ms = timeout_ms;
    self->links = zhashx_new();
    if (!self->links) {
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->links, (zhashx_destructor_fn *) s_link_destroy);
    return self;
}

void worker_publisher_destroy(worker_publisher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->links);
    worker_publisher_set_auth_secret(*self_p, NULL);
    free(*self_p);
    *self_p = NULL;
}

size_t worker_publisher_pending(worker_publisher_t *self)
{
    return self->pending;
}

static s_link_t *s_link(worker_publisher_t *self, const char *broker)
{
    char endpoint[NSQ_ENDPOINT_MAX];
    if (nsq_endpoint_parse(broker, endpoint, sizeof endpoint))
        return NULL;
    s_link_t *link = zhashx_lookup(self->links, endpoint);
    if (link)
        return link;
    link = calloc(1, sizeof *link);
    if (!link) {
        errno = ENOMEM;
        return NULL;
    }
    link->owner = self;
    link->next_seq = 1;
    snprintf(link->endpoint, sizeof link->endpoint, "%s", endpoint);
    if (s_socket_open(link)) {
        free(link);
        errno = ENOMEM;
        return NULL;
    }
    zhashx_insert(self->links, endpoint, link);
    return link;
}

int worker_publisher_send(worker_publisher_t *self, const char *broker, const char *topic,
                          const void *body, size_t size, worker_published_fn *done, void *arg)
{
    s_link_t *link = s_link(self, broker);
    s_pending_t *pending = link ? calloc(1, sizeof *pending) : NULL;
    if (!pending) {
        if (link)
            errno = ENOMEM;
        return -1;
    }
    if (!link->sock && s_socket_open(link)) {
        free(pending);
        errno = ENOMEM;
        return -1;
    }
    if (nsq_wire_send_pub(zsock_resolve(link->sock), link->next_seq, topic, &body, &size, 1, 0,
                          ZMQ_DONTWAIT)) {
        free(pending);
        return -1;  // errno from libzmq: EAGAIN when the broker does not read
    }
    *pending = (s_pending_t){link->next_seq++, zclock_mono(), done, arg, NULL};
    if (link->tail)
        link->tail->next = pending;
    else
        link->head = pending;
    link->tail = pending;
    link->count++;
    self->pending++;
    return 0;
}

// Takes the publish with seq off the link; NULL if it is not there (an
// answer to a publish that already timed out).
static s_pending_t *s_take(s_link_t *link, uint64_t seq)
{
    s_pending_t *previous = NULL;
    for (s_pending_t *pending = link->head; pending; previous = pending, pending = pending->next)
        if (pending->seq == seq) {
            if (previous)
                previous->next = pending->next;
            else
                link->head = pending->next;
            if (link->tail == pending)
                link->tail = previous;
            link->count--;
            link->owner->pending--;
            return pending;
        }
    return NULL;
}

static void s_on_frame(s_link_t *link, const void *data, size_t size)
{
    Nsq__Frame *frame = nsq_wire_frame_unpack(data, size);
    uint64_t seq = 0;
    const char *error = NULL;
    if (frame && frame->frame_case == NSQ__FRAME__FRAME_RESPONSE)
        seq = frame->response->seq;
    else if (frame && frame->frame_case == NSQ__FRAME__FRAME_ERROR) {
        seq = frame->error->seq;
        error = frame->error->code && *frame->error->code ? frame->error->code : "E_UNKNOWN";
        if (frame->error->fatal)
            s_send_auth(link);  // the broker ended the session: the next one starts with it
    }
    s_pending_t *pending = seq ? s_take(link, seq) : NULL;
    if (pending)
        pending->fn(pending->arg, error);
    free(pending);
    nsq__frame__free_unpacked(frame, NULL);
}

static int s_on_answer(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_link_t *link = arg;
    void *handle = zsock_resolve(sock);
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    while (link->sock == sock && zmq_msg_recv(&frame, handle, ZMQ_DONTWAIT) >= 0)
        s_on_frame(link, zmq_msg_data(&frame), zmq_msg_size(&frame));
    zmq_msg_close(&frame);
    return 0;
}

// Fails every publish of link with E_TIMEOUT and opens a fresh socket, so
// that nothing still queued in the old one is delivered later.
static void s_time_out(s_link_t *link)
{
    s_socket_close(link);
    s_socket_open(link);  // on failure the next send tries again
    while (link->head) {
        s_pending_t *pending = link->head;
        link->head = pending->next;
        if (!link->head)
            link->tail = NULL;
        link->count--;
        link->owner->pending--;
        pending->fn(pending->arg, "E_TIMEOUT");
        free(pending);
    }
}

void worker_publisher_tick(worker_publisher_t *self, int64_t now)
{
    for (s_link_t *link = zhashx_first(self->links); link; link = zhashx_next(self->links))
        if (link->head && now - link->head->sent_ms >= self->timeout_ms)
            s_time_out(link);
}

// ---- self-test --------------------------------------------------------------
// A fake broker (ROUTER, nsq_fake_broker_read_pub) on the same
// loop: answers Pub with OK, topic "bad" with E_BAD_TOPIC, and never
// answers topic "silent".

typedef struct {
    int answered;   // callbacks run
    int failed;     // of which with an error
    char last[32];  // last error code
    size_t bodies;  // bodies the fake broker accepted
    int expected;   // stop the loop at this many callbacks
} s_test_t;

static void s_test_done(void *arg, const char *error)
{
    s_test_t *test = arg;
    test->answered++;
    test->failed += error != NULL;
    snprintf(test->last, sizeof test->last, "%s", error ? error : "");
}

static int s_fake_read(zloop_t *loop, zsock_t *router, void *arg)
{
    (void) loop;
    s_test_t *test = arg;
    nsq_fake_broker_read_pub(router, &test->bodies);
    return 0;
}

static int s_test_check(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_test_t *test = arg;
    return test->answered >= test->expected ? -1 : 0;
}

static int s_test_break(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    (void) arg;
    return -1;
}

// Runs loop until test->expected callbacks ran, or 5 s; ticks every 50 ms.
static void s_test_run(zloop_t *loop, s_test_t *test, worker_publisher_t *publisher)
{
    int64_t deadline = zclock_mono() + 5000;
    int timer = zloop_timer(loop, 10, 0, s_test_check, test);
    while (test->answered < test->expected && zclock_mono() < deadline) {
        int once = zloop_timer(loop, 50, 1, s_test_break, NULL);
        zloop_start(loop);
        zloop_timer_end(loop, once);
        worker_publisher_tick(publisher, zclock_mono());
    }
    zloop_timer_end(loop, timer);
}

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "worker_publisher_test: %s:%d: %s\n", __FILE__, __LINE__, #condition); \
            rc = -1;                                                                               \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

int worker_publisher_test(void)
{
    int rc = 0;
    s_test_t test = {0};
    zloop_t *loop = zloop_new();
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    int port = router ? zsock_bind(router, "tcp://127.0.0.1:*") : -1;
    worker_publisher_t *publisher = worker_publisher_new(loop, 300);
    char broker[64];
    snprintf(broker, sizeof broker, "tcp://127.0.0.1:%d", port);
    S_CHECK(loop && port > 0 && publisher);
    zloop_reader(loop, router, s_fake_read, &test);
    S_CHECK(worker_publisher_send(publisher, "no-port", "t", "x", 1, s_test_done, &test) == -1);
    static char big[100000];
    for (int i = 0; i < 100; i++)
        S_CHECK(worker_publisher_send(publisher, broker, i == 7 ? "bad" : "out",
                                      i == 99 ? big : "x", i == 99 ? sizeof big : 1, s_test_done,
                                      &test)
                == 0);
    S_CHECK(test.answered == 0 && worker_publisher_pending(publisher) == 100);
    test.expected = 100;
    s_test_run(loop, &test, publisher);
    S_CHECK(test.answered == 100 && test.failed == 1 && test.bodies == 99);
    S_CHECK(worker_publisher_pending(publisher) == 0);

    // No answer: E_TIMEOUT after 300 ms, and the link works again afterwards.
    int64_t start = zclock_mono();
    S_CHECK(worker_publisher_send(publisher, broker, "silent", "x", 1, s_test_done, &test) == 0);
    test.expected = 101;
    s_test_run(loop, &test, publisher);
    S_CHECK(test.answered == 101 && strcmp(test.last, "E_TIMEOUT") == 0);
    S_CHECK(zclock_mono() - start >= 290);
    S_CHECK(worker_publisher_send(publisher, broker, "out", "y", 1, s_test_done, &test) == 0);
    test.expected = 102;
    s_test_run(loop, &test, publisher);
    S_CHECK(test.answered == 102 && strcmp(test.last, "") == 0 && test.bodies == 100);

    // Destroyed with a publish outstanding: no callback.
    S_CHECK(worker_publisher_send(publisher, broker, "silent", "x", 1, s_test_done, &test) == 0);
done:
    worker_publisher_destroy(&publisher);
    worker_publisher_destroy(&publisher);
    if (rc == 0 && test.answered != 102)
        rc = -1;
    zsock_destroy(&router);
    zloop_destroy(&loop);
    return rc;
}
