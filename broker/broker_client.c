/*  broker_client - one consumer or producer connected to the ROUTER socket
    SPDX-License-Identifier: MIT
*/
#include "broker_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "nsq_log.h"
#include "nsq_wire.h"

// Messages packed into one frame; credit beyond this takes several frames.
#define CLIENT_BATCH_MAX 256
// Body bytes packed into one frame beyond its first message (a frame must
// stay far below protobuf's 2 GiB).
#define CLIENT_BATCH_BYTES (16 << 20)
// Frames a blocked client may have waiting; past this it is dropped (a
// client this far behind is not reading).
#define CLIENT_BACKLOG_MAX 10000
// Shortest time between two warnings about full queues.
#define CLIENT_WARN_INTERVAL_MS 1000

broker_client_t *broker_client_new(void *router, const void *identity, size_t identity_size,
                                   int64_t now)
{
    if (identity_size == 0 || identity_size > BROKER_IDENTITY_MAX)
        return NULL;
    broker_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    memcpy(self->identity, identity, identity_size);
    self->identity_size = identity_size;
    broker_client_key(identity, identity_size, self->key);
    self->router = router;
    self->state = BROKER_CLIENT_NEW;
    self->last_received = now;
    self->last_sent = now;
    self->connect_ts = (int64_t) time(NULL);
    return self;
}

void broker_client_destroy(broker_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zlistx_destroy(&(*self_p)->backlog);
    free(*self_p);
    *self_p = NULL;
}

void broker_client_key(const void *identity, size_t identity_size, char *key)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *bytes = identity;
    for (size_t i = 0; i < identity_size; i++) {
        key[2 * i] = digits[bytes[i] >> 4];
        key[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    key[2 * identity_size] = '\0';
}

uint32_t broker_client_credit(const broker_client_t *self)
{
    if (self->state != BROKER_CLIENT_SUBSCRIBED || self->gone || self->blocked
        || self->in_flight >= self->rdy)
        return 0;
    return self->rdy - self->in_flight;
}

static size_t s_backlog_size(const broker_client_t *self)
{
    return self->backlog ? zlistx_size(self->backlog) : 0;
}

// Counts frames held back and warns at most once per interval.
static void s_held_back(broker_client_t *self, size_t frames, int64_t now)
{
    self->blocked = true;
    broker_client_blocked_t *stats = self->counters;
    if (!stats)
        return;
    stats->count += frames;
    bool first = stats->logged == 0;
    if (first || now - stats->logged_at >= CLIENT_WARN_INTERVAL_MS) {
        nsq_warn("client %s (%s): its ZeroMQ queue is full; %llu frame(s) held back since the "
                 "last warning (backlogged or requeued, none dropped)",
                 self->key, self->client_id, (unsigned long long) (stats->count - stats->logged));
        stats->logged = stats->count;
        stats->logged_at = now;
    }
}

// Tries to send packed now. Returns 0, or -1 with errno (EAGAIN: the queue
// is full and self is blocked; EHOSTUNREACH: self is gone).
static int s_try(broker_client_t *self, zmq_msg_t *packed, int64_t now)
{
    if (nsq_wire_send_routed(self->router, self->identity, self->identity_size, packed,
                             ZMQ_DONTWAIT)
        == 0) {
        self->last_sent = now;
        return 0;
    }
    int saved = errno;
    if (saved == EHOSTUNREACH)
        self->gone = true;
    else if (saved == EAGAIN)
        s_held_back(self, 1, now);
    errno = saved;  // the warning may have changed it
    return -1;
}

static void s_frame_destructor(void **item)
{
    zmq_msg_t *frame = *item;
    zmq_msg_close(frame);
    free(frame);
    *item = NULL;
}

// Appends *packed to the backlog (it is moved). Returns 0, or -1 if the
// backlog is full (self is then gone) or memory ran out.
static int s_backlog_push(broker_client_t *self, zmq_msg_t *packed)
{
    if (s_backlog_size(self) >= CLIENT_BACKLOG_MAX) {
        nsq_warn("client %s (%s): %d frames wait for a client that does not read; dropping it",
                 self->key, self->client_id, CLIENT_BACKLOG_MAX);
        if (self->counters)
            self->counters->dropped++;
        self->gone = true;
        return -1;
    }
    if (!self->backlog) {
        self->backlog = zlistx_new();
        if (!self->backlog)
            return -1;
        zlistx_set_destructor(self->backlog, s_frame_destructor);
    }
    zmq_msg_t *kept = malloc(sizeof *kept);
    if (!kept)
        return -1;
    zmq_msg_init(kept);
    zmq_msg_move(kept, packed);
    if (!zlistx_add_end(self->backlog, kept)) {
        zmq_msg_close(kept);
        free(kept);
        return -1;
    }
    return 0;
}

// Sends a response, error or heartbeat: now if nothing waits before it,
// else (or if the queue is full) into the backlog.
static int s_send(broker_client_t *self, Nsq__Frame *frame, int64_t now)
{
    if (self->gone)
        return -1;
    zmq_msg_t packed;
    if (nsq_wire_pack_frame(frame, &packed)) {
        nsq_error("client %s: cannot pack a frame: %s", self->key, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (s_backlog_size(self) > 0) {
        s_held_back(self, 1, now);
        rc = s_backlog_push(self, &packed);
    } else if (s_try(self, &packed, now) != 0)
        rc = errno == EAGAIN ? s_backlog_push(self, &packed) : -1;
    zmq_msg_close(&packed);
    return rc;
}

bool broker_client_flush(broker_client_t *self, int64_t now)
{
    if (!self->blocked || self->gone)
        return false;
    zmq_msg_t *frame;
    while ((frame = self->backlog ? zlistx_first(self->backlog) : NULL)) {
        if (nsq_wire_send_routed(self->router, self->identity, self->identity_size, frame,
                                 ZMQ_DONTWAIT)
            != 0) {
            if (errno == EHOSTUNREACH)
                self->gone = true;
            return false;
        }
        self->last_sent = now;
        zlistx_delete(self->backlog, zlistx_cursor(self->backlog));
    }
    self->blocked = false;
    return true;
}

// How many entries from the front go into one frame: at most
// CLIENT_BATCH_MAX, and CLIENT_BATCH_BYTES of bodies beyond the first.
static size_t s_batch_size(broker_inflight_entry_t **entries, size_t count)
{
    size_t batch = 1, bytes = entries[0]->message->size;
    while (batch < count && batch < CLIENT_BATCH_MAX
           && bytes + entries[batch]->message->size <= CLIENT_BATCH_BYTES)
        bytes += entries[batch++]->message->size;
    return batch;
}

// Packs count (at most CLIENT_BATCH_MAX) entries as one Messages frame.
static int s_pack_messages(broker_inflight_entry_t **entries, size_t count, zmq_msg_t *packed)
{
    Nsq__Message messages[CLIENT_BATCH_MAX];
    Nsq__Message *pointers[CLIENT_BATCH_MAX];
    for (size_t i = 0; i < count; i++) {
        nsq_message_t *message = entries[i]->message;
        nsq__message__init(&messages[i]);
        messages[i].id = message->id;
        messages[i].timestamp = message->timestamp;
        messages[i].attempts = entries[i]->attempts;
        messages[i].body.data = message->body;
        messages[i].body.len = message->size;
        pointers[i] = &messages[i];
    }
    Nsq__Messages list = NSQ__MESSAGES__INIT;
    list.n_messages = count;
    list.messages = pointers;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_MESSAGES;
    frame.messages = &list;
    return nsq_wire_pack_frame(&frame, packed);
}

size_t broker_client_send_messages(broker_client_t *self, broker_inflight_entry_t **entries,
                                   size_t count, int64_t now)
{
    size_t sent = 0;
    while (sent < count && !self->gone) {
        if (s_backlog_size(self) > 0) {  // messages would overtake what waits
            s_held_back(self, 1, now);
            break;
        }
        size_t batch = s_batch_size(entries + sent, count - sent);
        zmq_msg_t packed;
        if (s_pack_messages(entries + sent, batch, &packed)) {
            nsq_error("client %s: cannot pack %zu messages: %s", self->key, batch, strerror(errno));
            self->blocked = true;  // retried after the next flush, not in a loop
            break;
        }
        int rc = s_try(self, &packed, now);
        zmq_msg_close(&packed);
        if (rc != 0)
            break;
        self->message_count += batch;
        sent += batch;
    }
    return sent;
}

int broker_client_send_response(broker_client_t *self, uint64_t seq, const char *text, int64_t now)
{
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = seq;
    response.text = (char *) text;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    return s_send(self, &frame, now);
}

int broker_client_send_frame(broker_client_t *self, Nsq__Frame *frame, int64_t now)
{
    return s_send(self, frame, now);
}

int broker_client_send_error(broker_client_t *self, uint64_t seq, const char *code,
                             const char *text, bool fatal, int64_t now)
{
    Nsq__Error error = NSQ__ERROR__INIT;
    error.seq = seq;
    error.code = (char *) code;
    error.text = (char *) text;
    error.fatal = fatal;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_ERROR;
    frame.error = &error;
    return s_send(self, &frame, now);
}

int broker_client_send_heartbeat(broker_client_t *self, int64_t now)
{
    if (self->blocked)
        return 0;
    Nsq__Heartbeat heartbeat = NSQ__HEARTBEAT__INIT;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    return s_send(self, &frame, now);
}

// ---- self-test -----------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_client_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);    \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// Reads one frame within timeout_ms; returns the seq of its Response, or -1.
static int64_t s_test_response(zsock_t *dealer, int timeout_ms)
{
    zpoller_t *poller = zpoller_new(dealer, NULL);
    void *ready = zpoller_wait(poller, timeout_ms);
    zpoller_destroy(&poller);
    zframe_t *frame = ready ? zframe_recv(dealer) : NULL;
    Nsq__Frame *decoded =
        frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
    zframe_destroy(&frame);
    int64_t seq = decoded && decoded->frame_case == NSQ__FRAME__FRAME_RESPONSE
                      ? (int64_t) decoded->response->seq
                      : -1;
    nsq__frame__free_unpacked(decoded, NULL);
    return seq;
}

// A ROUTER and a DEALER "C" on inproc whose queue holds about hwm frames.
static zsock_t *s_test_pair(const char *endpoint, int hwm, zsock_t **dealer)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_router_mandatory(router, 1);
    zsock_set_sndhwm(router, hwm);  // before bind and connect, so they apply
    zsock_bind(router, "%s", endpoint);
    *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_identity(*dealer, "C");
    zsock_set_rcvhwm(*dealer, hwm);
    zsock_connect(*dealer, "%s", endpoint);
    return router;
}

int broker_client_test(void)
{
    zsock_t *dealer = NULL;
    zsock_t *router = s_test_pair("inproc://broker-client-test", 2, &dealer);
    broker_client_blocked_t stats = {0, 0, 0, 0};
    broker_client_t *client = broker_client_new(zsock_resolve(router), "C", 1, 0);
    int rc = -1;
    S_CHECK(client);
    client->counters = &stats;
    client->state = BROKER_CLIENT_SUBSCRIBED;
    client->rdy = 10;
    // The client does not read: every answer is still accepted, in order.
    for (uint64_t seq = 0; seq < 20; seq++)
        S_CHECK(broker_client_send_response(client, seq, "OK", 0) == 0);
    S_CHECK(client->blocked && s_backlog_size(client) > 0 && stats.count > 0);
    S_CHECK(broker_client_credit(client) == 0);
    S_CHECK(broker_client_send_heartbeat(client, 0) == 0);  // nothing to add while blocked
    int64_t next = 0, deadline = zclock_mono() + 5000;
    while (next < 20 && zclock_mono() < deadline) {
        zsock_events(router);  // lets the router see what the dealer read
        broker_client_flush(client, 0);
        int64_t seq = s_test_response(dealer, 10);
        if (seq >= 0)
            S_CHECK(seq == next++);
    }
    S_CHECK(next == 20 && s_test_response(dealer, 50) == -1);
    S_CHECK(!client->blocked && s_backlog_size(client) == 0 && broker_client_credit(client) == 10);
    // A client that never reads is dropped once its backlog is full.
    int refused = 0;
    for (uint64_t seq = 0; seq < CLIENT_BACKLOG_MAX + 10 && !refused; seq++)
        refused = broker_client_send_response(client, seq, "OK", 0) != 0;
    S_CHECK(refused && client->gone && stats.dropped == 1);
    rc = 0;
done:
    broker_client_destroy(&client);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
    return rc;
}
