/*  broker_tcp_session - one NSQ TCP connection as the core sees it
    SPDX-License-Identifier: MIT

    Segments form a singly linked list, oldest first; the last one takes
    what is written now unless it is a waiting publish, in which case a
    fresh one is appended behind it. A waiting segment outlives its session
    when the session goes first (orphaned: its callback frees it).
*/
#include "broker_tcp_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_log.h"

#define SAMPLED_START 64  // first size of the sampled-out id list

// One post to be: bytes, commands finished, flags.
typedef struct _segment_t {
    struct _segment_t *next;        // the one behind it
    broker_buffer_t *bytes;         // frames, NULL until written
    uint32_t done;                  // commands it finishes
    unsigned flags;                 // BROKER_TCP_POST_*
    bool waiting;                   // a durable publish whose sync is not settled
    bool closed;                    // ended: nothing more goes into it
    broker_tcp_kind_t kind;         // waiting: the publish's command
    broker_tcp_session_t *session;  // waiting: its session, NULL once orphaned
} segment_t;

struct _broker_tcp_wait_t {
    segment_t segment;  // a wait is a waiting segment
};

struct _broker_tcp_session_t {
    uint64_t connection;            // the I/O thread's id
    void *door;                     // the owner (borrowed)
    char name[96];                  // "tcp-N@IP:port" for logs
    broker_client_t *client;        // its server client (borrowed), or NULL
    bool closing;                   // a fatal answer went out, or the client was dropped
    int sample_rate;                // percent of messages sent, 0 = all
    bool listed;                    // in the door's list for the next flush
    segment_t *head, *tail;         // what waits to be posted, oldest first
    uint64_t *sampled;              // ids left out by the sample rate, to finish
    size_t sampled_count;           // used
    size_t sampled_size;            // allocated
    broker_tcp_event_t *held;       // commands waiting for the auth server, oldest first, owned
    broker_tcp_event_t *held_tail;  // the newest of them
    size_t held_bytes;              // what they hold (bodies, secrets, events)
};

broker_tcp_session_t *broker_tcp_session_new(uint64_t connection, void *door, uint64_t number,
                                             const char *remote_address)
{
    broker_tcp_session_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->connection = connection;
    self->door = door;
    snprintf(self->name, sizeof self->name, "tcp-%llu@%s", (unsigned long long) number,
             remote_address ? remote_address : "");
    return self;
}

static void s_segment_free(segment_t *segment)
{
    broker_buffer_destroy(&segment->bytes);
    free(segment);
}

void broker_tcp_session_destroy(broker_tcp_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_tcp_session_t *self = *self_p;
    segment_t *segment = self->head;
    while (segment) {
        segment_t *next = segment->next;
        if (segment->waiting) {  // its sync callback frees it
            segment->session = NULL;
            segment->next = NULL;
            broker_buffer_destroy(&segment->bytes);
        } else {
            s_segment_free(segment);
        }
        segment = next;
    }
    broker_tcp_event_t *event = broker_tcp_session_take_held(self);
    while (event) {
        broker_tcp_event_t *next = event->next;
        broker_tcp_event_destroy(&event);
        event = next;
    }
    free(self->sampled);
    free(self);
    *self_p = NULL;
}

uint64_t broker_tcp_session_connection(const broker_tcp_session_t *self)
{
    return self->connection;
}

void *broker_tcp_session_door(const broker_tcp_session_t *self)
{
    return self->door;
}

const char *broker_tcp_session_name(const broker_tcp_session_t *self)
{
    return self->name;
}

broker_client_t *broker_tcp_session_client(const broker_tcp_session_t *self)
{
    return self->client;
}

void broker_tcp_session_set_client(broker_tcp_session_t *self, broker_client_t *client)
{
    self->client = client;
}

bool broker_tcp_session_closing(const broker_tcp_session_t *self)
{
    return self->closing;
}

void broker_tcp_session_set_sample_rate(broker_tcp_session_t *self, int sample_rate)
{
    self->sample_rate = sample_rate;
}

// ---- segments -------------------------------------------------------------------

// Appends a segment (waiting or not). NULL if out of memory.
static segment_t *s_append(broker_tcp_session_t *self, size_t size)
{
    segment_t *segment = calloc(1, size);
    if (!segment)
        return NULL;
    if (self->tail)
        self->tail->next = segment;
    else
        self->head = segment;
    self->tail = segment;
    return segment;
}

// The segment that takes what is written now, with a buffer. NULL if out
// of memory.
static segment_t *s_open(broker_tcp_session_t *self)
{
    segment_t *segment = self->tail;
    if (!segment || segment->waiting || segment->closed)
        segment = s_append(self, sizeof(segment_t));
    if (segment && !segment->bytes)
        segment->bytes = broker_buffer_new();
    return segment && segment->bytes ? segment : NULL;
}

// Out of memory while answering: the client is out of step; close it.
static int s_failed(broker_tcp_session_t *self)
{
    nsq_error("client %s: out of memory queueing an answer; closing it", self->name);
    self->closing = true;
    if (self->client)
        broker_client_set_gone(self->client);
    segment_t *segment = self->tail ? self->tail : s_append(self, sizeof(segment_t));
    if (segment)
        segment->flags |= BROKER_TCP_POST_CLOSE, segment->done++;
    return -1;
}

int broker_tcp_session_respond(broker_tcp_session_t *self, const char *text)
{
    segment_t *segment = s_open(self);
    if (!segment || broker_tcp_write_response(segment->bytes, text, strlen(text)) != 0)
        return s_failed(self);
    segment->flags |= BROKER_TCP_POST_FLUSH;
    segment->done++;
    return 0;
}

int broker_tcp_session_error(broker_tcp_session_t *self, const char *text)
{
    segment_t *segment = s_open(self);
    if (!segment || broker_tcp_write_error(segment->bytes, text) != 0)
        return s_failed(self);
    segment->flags |= BROKER_TCP_POST_FLUSH;
    segment->done++;
    char code[32];
    snprintf(code, sizeof code, "%.*s", (int) strcspn(text, " "), text);
    if (broker_tcp_error_is_fatal(code)) {
        segment->flags |= BROKER_TCP_POST_CLOSE;
        segment->closed = true;
        self->closing = true;
        if (self->client)
            broker_client_set_gone(self->client);  // no credit: nothing more is delivered
    }
    return 0;
}

void broker_tcp_session_finished(broker_tcp_session_t *self, unsigned flags)
{
    segment_t *segment = self->tail;
    if (!segment || segment->waiting || segment->closed)
        segment = s_append(self, sizeof(segment_t));
    if (!segment) {
        s_failed(self);
        return;
    }
    segment->done++;
    segment->flags |= flags;
    if (flags & BROKER_TCP_POST_IDENTIFIED)
        segment->closed = true;  // what follows goes in a post of its own
}

void broker_tcp_session_close(broker_tcp_session_t *self)
{
    self->closing = true;
    self->client = NULL;
    segment_t *segment = self->tail;
    if (!segment || segment->waiting || segment->closed)
        segment = s_append(self, sizeof(segment_t));
    if (segment)
        segment->flags |= BROKER_TCP_POST_CLOSE;
}

// ---- messages -------------------------------------------------------------------

// Keeps a sampled-out id for the door to finish. Returns 0, or -1.
static int s_sample_out(broker_tcp_session_t *self, uint64_t id)
{
    if (self->sampled_count == self->sampled_size) {
        size_t size = self->sampled_size ? 2 * self->sampled_size : SAMPLED_START;
        uint64_t *grown = realloc(self->sampled, size * sizeof *grown);
        if (!grown)
            return -1;
        self->sampled = grown;
        self->sampled_size = size;
    }
    self->sampled[self->sampled_count++] = id;
    return 0;
}

size_t broker_tcp_session_deliver(broker_tcp_session_t *self, broker_inflight_entry_t **entries,
                                  size_t count)
{
    segment_t *segment = s_open(self);
    for (size_t i = 0; i < count && segment; i++) {
        const nsq_message_t *message = entries[i]->message;
        // As nsqd: a client with a sample rate gets about that percentage;
        // the rest count as finished for it.
        if (self->sample_rate > 0 && random() % 100 > self->sample_rate
            && s_sample_out(self, message->id) == 0)
            continue;
        if (broker_tcp_write_message(segment->bytes, message->timestamp, entries[i]->attempts,
                                     message->id, message->body, message->size)
            != 0)
            segment = NULL;
    }
    if (!segment)
        s_failed(self);  // what was not written times out and goes to another client
    return count;
}

void broker_tcp_session_take_sampled(broker_tcp_session_t *self, uint64_t **ids, size_t *count)
{
    *ids = self->sampled;
    *count = self->sampled_count;
    self->sampled = NULL;
    self->sampled_count = self->sampled_size = 0;
}

// ---- durable publishes ----------------------------------------------------------

broker_tcp_wait_t *broker_tcp_session_wait(broker_tcp_session_t *self, broker_tcp_kind_t kind)
{
    broker_tcp_wait_t *wait = (broker_tcp_wait_t *) s_append(self, sizeof(broker_tcp_wait_t));
    if (!wait)
        return NULL;
    wait->segment.waiting = true;
    wait->segment.kind = kind;
    wait->segment.session = self;
    return wait;
}

broker_tcp_session_t *broker_tcp_session_settle(broker_tcp_wait_t *wait, broker_result_t result)
{
    segment_t *segment = &wait->segment;
    broker_tcp_session_t *self = segment->session;
    if (!self) {
        s_segment_free(segment);
        return NULL;
    }
    segment->waiting = false;
    segment->closed = true;
    segment->done++;
    segment->flags |= BROKER_TCP_POST_FLUSH;
    segment->bytes = broker_buffer_new();
    const char *name = segment->kind == BROKER_TCP_MPUB   ? "MPUB"
                       : segment->kind == BROKER_TCP_DPUB ? "DPUB"
                                                          : "PUB";
    char text[96] = "OK";
    if (result != BROKER_OK)
        snprintf(text, sizeof text, "E_%s_FAILED %s failed disk sync failed", name, name);
    int rc = !segment->bytes       ? -1
             : result == BROKER_OK ? broker_tcp_write_response(segment->bytes, text, strlen(text))
                                   : broker_tcp_write_error(segment->bytes, text);
    if (rc != 0 || result != BROKER_OK) {
        segment->flags |= BROKER_TCP_POST_CLOSE;
        self->closing = true;
        if (self->client)
            broker_client_set_gone(self->client);
    }
    return self;
}

// ---- commands waiting for the auth server ------------------------------------------

bool broker_tcp_session_holding(const broker_tcp_session_t *self)
{
    return self->held != NULL;
}

// What a held event keeps in memory.
static size_t s_event_bytes(const broker_tcp_event_t *event)
{
    size_t bytes = sizeof *event + event->secret_size;
    for (size_t i = 0; i < event->message_count; i++)
        bytes += event->messages[i]->size;
    return bytes;
}

int broker_tcp_session_hold(broker_tcp_session_t *self, broker_tcp_event_t **event_p)
{
    broker_tcp_event_t *event = *event_p;
    size_t bytes = s_event_bytes(event);
    // The first one always: a single command is bounded by --max-body-size.
    if (self->held && self->held_bytes + bytes > BROKER_TCP_HELD_MAX)
        return -1;
    event->next = NULL;
    if (self->held_tail)
        self->held_tail->next = event;
    else
        self->held = event;
    self->held_tail = event;
    self->held_bytes += bytes;
    *event_p = NULL;
    return 0;
}

broker_tcp_event_t *broker_tcp_session_take_held(broker_tcp_session_t *self)
{
    broker_tcp_event_t *held = self->held;
    self->held = self->held_tail = NULL;
    self->held_bytes = 0;
    return held;
}

// ---- posting --------------------------------------------------------------------

bool broker_tcp_session_list(broker_tcp_session_t *self)
{
    bool listed = self->listed;
    self->listed = true;
    return !listed;
}

// After a closing post nothing reaches the client: the segments behind it
// go (a waiting one is orphaned, its callback frees it).
static void s_drop_behind(broker_tcp_session_t *self)
{
    segment_t *segment = self->head;
    self->head = self->tail = NULL;
    while (segment) {
        segment_t *next = segment->next;
        segment->next = NULL;
        if (segment->waiting)
            segment->session = NULL;
        else
            s_segment_free(segment);
        segment = next;
    }
}

int broker_tcp_session_post(broker_tcp_session_t *self, broker_tcp_io_t *io)
{
    self->listed = false;
    while (self->head && !self->head->waiting) {
        segment_t *segment = self->head;
        bool closing = segment->flags & BROKER_TCP_POST_CLOSE;
        if (segment->done || segment->flags
            || (segment->bytes && broker_buffer_size(segment->bytes) > 0)) {
            broker_buffer_t *bytes = segment->bytes;
            segment->bytes = NULL;
            if (bytes && broker_buffer_size(bytes) == 0)
                broker_buffer_destroy(&bytes);
            if (broker_tcp_io_post(io, self->connection, &bytes, segment->flags, segment->done)
                != 0)
                return -1;
        }
        self->head = segment->next;
        if (!self->head)
            self->tail = NULL;
        s_segment_free(segment);
        if (closing)
            s_drop_behind(self);  // as nsqd: nothing after a fatal answer
    }
    return 0;
}
