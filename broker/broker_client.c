/*  broker_client - one consumer or producer connected to the ROUTER socket
    SPDX-License-Identifier: MIT
*/
#include "broker_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "nsq_wire.h"

// Messages packed into one frame; credit beyond this takes several frames.
#define CLIENT_BATCH_MAX 256

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
    if (self->state != BROKER_CLIENT_SUBSCRIBED || self->gone || self->in_flight >= self->rdy)
        return 0;
    return self->rdy - self->in_flight;
}

static int s_send(broker_client_t *self, Nsq__Frame *frame, int64_t now)
{
    if (self->gone)
        return -1;
    if (nsq_wire_send_frame(self->router, self->identity, self->identity_size, frame,
                            ZMQ_DONTWAIT)) {
        if (errno == EHOSTUNREACH)
            self->gone = true;
        return -1;
    }
    self->last_sent = now;
    return 0;
}

int broker_client_send_messages(broker_client_t *self, broker_inflight_entry_t **entries,
                                size_t count, int64_t now)
{
    Nsq__Message messages[CLIENT_BATCH_MAX];
    Nsq__Message *pointers[CLIENT_BATCH_MAX];
    while (count > 0) {
        size_t batch = count < CLIENT_BATCH_MAX ? count : CLIENT_BATCH_MAX;
        for (size_t i = 0; i < batch; i++) {
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
        list.n_messages = batch;
        list.messages = pointers;
        Nsq__Frame frame = NSQ__FRAME__INIT;
        frame.frame_case = NSQ__FRAME__FRAME_MESSAGES;
        frame.messages = &list;
        if (s_send(self, &frame, now))
            return -1;
        self->message_count += batch;
        entries += batch;
        count -= batch;
    }
    return 0;
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
    Nsq__Heartbeat heartbeat = NSQ__HEARTBEAT__INIT;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    return s_send(self, &frame, now);
}
