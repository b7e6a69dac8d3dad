/*  broker_zmq_peer - one peer of the ZeroMQ door: its routing id, the
    frames waiting for it, and sending to it
    SPDX-License-Identifier: MIT
*/
#include "broker_zmq_peer.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_log.h"
#include "nsq_peer.h"
#include "nsq_wire_messages.h"

// Messages packed into one frame; credit beyond this takes several frames.
#define PEER_BATCH_MAX NSQ_WIRE_MESSAGES_MAX
// Body bytes packed into one frame beyond its first message (a frame must
// stay far below protobuf's 2 GiB).
#define PEER_BATCH_BYTES (16 << 20)
// Frames a blocked peer may have waiting; past this it is dropped (a peer
// this far behind is not reading).
#define PEER_BACKLOG_MAX 10000
// Shortest time between two warnings about full queues.
#define PEER_WARN_INTERVAL_MS 1000

struct _broker_zmq_peer_t {
    uint8_t identity[BROKER_IDENTITY_MAX];  // ZeroMQ routing id
    size_t identity_size;                   // its length
    char key[BROKER_ZMQ_KEY_SIZE];          // identity in hex, the door's key
    void *router;                           // the door's ROUTER socket (borrowed)
    broker_client_t *client;                // its session in the server (borrowed)
    int64_t last_sent;                      // monotonic ms of our last frame to it
    bool gone;                              // unreachable
    bool blocked;                           // its queue was full: no credit until flushed
    zlistx_t *backlog;                      // packed frames (zmq_msg_t) waiting, or NULL
    broker_zmq_blocked_t *stats;            // the door's full-queue counters (borrowed)
    void *owner;                            // the door (borrowed)
};

broker_zmq_peer_t *broker_zmq_peer_new(void *router, const void *identity, size_t identity_size,
                                       broker_zmq_blocked_t *blocked, void *owner, int64_t now)
{
    if (identity_size == 0 || identity_size > BROKER_IDENTITY_MAX)
        return NULL;
    broker_zmq_peer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    memcpy(self->identity, identity, identity_size);
    self->identity_size = identity_size;
    nsq_peer_key(identity, identity_size, self->key);
    self->router = router;
    self->stats = blocked;
    self->owner = owner;
    self->last_sent = now;
    return self;
}

void broker_zmq_peer_destroy(broker_zmq_peer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zlistx_destroy(&(*self_p)->backlog);
    free(*self_p);
    *self_p = NULL;
}

void *broker_zmq_peer_owner(const broker_zmq_peer_t *self)
{
    return self->owner;
}

const char *broker_zmq_peer_key(const broker_zmq_peer_t *self)
{
    return self->key;
}

broker_client_t *broker_zmq_peer_client(const broker_zmq_peer_t *self)
{
    return self->client;
}

void broker_zmq_peer_set_client(broker_zmq_peer_t *self, broker_client_t *client)
{
    self->client = client;
}

int64_t broker_zmq_peer_last_sent(const broker_zmq_peer_t *self)
{
    return self->last_sent;
}

bool broker_zmq_peer_is_blocked(const broker_zmq_peer_t *self)
{
    return self->blocked;
}

static const char *s_client_id(const broker_zmq_peer_t *self)
{
    return self->client ? broker_client_id(self->client) : "";
}

static void s_set_blocked(broker_zmq_peer_t *self, bool blocked)
{
    self->blocked = blocked;
    if (self->client)
        broker_client_set_blocked(self->client, blocked);
}

static void s_set_gone(broker_zmq_peer_t *self)
{
    self->gone = true;
    if (self->client)
        broker_client_set_gone(self->client);
}

static size_t s_backlog_size(const broker_zmq_peer_t *self)
{
    return self->backlog ? zlistx_size(self->backlog) : 0;
}

// Counts frames held back and warns at most once per interval.
static void s_held_back(broker_zmq_peer_t *self, size_t frames, int64_t now)
{
    s_set_blocked(self, true);
    broker_zmq_blocked_t *stats = self->stats;
    if (!stats)
        return;
    uint64_t count = stats->counters->send_blocked += frames;
    bool first = stats->logged == 0;
    if (first || now - stats->logged_at >= PEER_WARN_INTERVAL_MS) {
        nsq_warn("client %s (%s): its ZeroMQ queue is full; %llu frame(s) held back since the "
                 "last warning (backlogged or requeued, none dropped)",
                 self->key, s_client_id(self), (unsigned long long) (count - stats->logged));
        stats->logged = count;
        stats->logged_at = now;
    }
}

// Tries to send packed now. Returns 0, or -1 with errno (EAGAIN: the queue
// is full and self is blocked; EHOSTUNREACH: self is gone).
static int s_try(broker_zmq_peer_t *self, zmq_msg_t *packed, int64_t now)
{
    if (nsq_wire_send_routed(self->router, self->identity, self->identity_size, packed,
                             ZMQ_DONTWAIT)
        == 0) {
        self->last_sent = now;
        return 0;
    }
    int saved = errno;
    if (saved == EHOSTUNREACH)
        s_set_gone(self);
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
static int s_backlog_push(broker_zmq_peer_t *self, zmq_msg_t *packed)
{
    if (s_backlog_size(self) >= PEER_BACKLOG_MAX) {
        nsq_warn("client %s (%s): %d frames wait for a client that does not read; dropping it",
                 self->key, s_client_id(self), PEER_BACKLOG_MAX);
        if (self->stats)
            self->stats->dropped++;
        s_set_gone(self);
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

int broker_zmq_peer_send_frame(broker_zmq_peer_t *self, Nsq__Frame *frame, int64_t now)
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

bool broker_zmq_peer_flush(broker_zmq_peer_t *self, int64_t now)
{
    if (!self->blocked || self->gone)
        return false;
    zmq_msg_t *frame;
    while ((frame = self->backlog ? zlistx_first(self->backlog) : NULL)) {
        if (nsq_wire_send_routed(self->router, self->identity, self->identity_size, frame,
                                 ZMQ_DONTWAIT)
            != 0) {
            if (errno == EHOSTUNREACH)
                s_set_gone(self);
            return false;
        }
        self->last_sent = now;
        zlistx_delete(self->backlog, zlistx_cursor(self->backlog));
    }
    s_set_blocked(self, false);
    return true;
}

// How many entries from the front go into one frame: at most
// PEER_BATCH_MAX, and PEER_BATCH_BYTES of bodies beyond the first.
static size_t s_batch_size(broker_inflight_entry_t **entries, size_t count)
{
    size_t batch = 1, bytes = entries[0]->message->size;
    while (batch < count && batch < PEER_BATCH_MAX
           && bytes + entries[batch]->message->size <= PEER_BATCH_BYTES)
        bytes += entries[batch++]->message->size;
    return batch;
}

// Packs count (at most PEER_BATCH_MAX) entries as one Messages frame (by
// hand: protobuf-c's packing was a quarter of the core's work per message).
static int s_pack_messages(broker_inflight_entry_t **entries, size_t count, zmq_msg_t *packed)
{
    nsq_wire_message_t messages[PEER_BATCH_MAX];
    for (size_t i = 0; i < count; i++) {
        nsq_message_t *message = entries[i]->message;
        messages[i] = (nsq_wire_message_t){message->id, message->timestamp, entries[i]->attempts,
                                           message->body, message->size};
    }
    return nsq_wire_pack_messages(messages, count, packed);
}

size_t broker_zmq_peer_send_messages(broker_zmq_peer_t *self, broker_inflight_entry_t **entries,
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
            s_set_blocked(self, true);  // retried after the next flush, not in a loop
            break;
        }
        int rc = s_try(self, &packed, now);
        zmq_msg_close(&packed);
        if (rc != 0)
            break;
        sent += batch;
    }
    return sent;
}

int broker_zmq_peer_send_response(broker_zmq_peer_t *self, uint64_t seq, const char *text,
                                  int64_t now)
{
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = seq;
    response.text = (char *) text;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    return broker_zmq_peer_send_frame(self, &frame, now);
}

int broker_zmq_peer_send_error(broker_zmq_peer_t *self, uint64_t seq, const char *code,
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
    return broker_zmq_peer_send_frame(self, &frame, now);
}

int broker_zmq_peer_send_heartbeat(broker_zmq_peer_t *self, int64_t now)
{
    if (self->blocked)
        return 0;
    Nsq__Heartbeat heartbeat = NSQ__HEARTBEAT__INIT;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    return broker_zmq_peer_send_frame(self, &frame, now);
}
