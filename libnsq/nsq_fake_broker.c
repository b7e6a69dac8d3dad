/*  nsq_fake_broker - a scripted broker for the client self-tests
    SPDX-License-Identifier: MIT
*/
#include "nsq_fake_broker.h"

#include "nsq_endpoint.h"
#include "nsq_log.h"

#include <stdio.h>
#include <stdlib.h>

nsq_fake_broker_t *nsq_fake_broker_new(void)
{
    nsq_fake_broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->router = zsock_new(ZMQ_ROUTER);
    // A random port: tests of other processes may have had a fake broker on
    // the lowest free ones, and their clients may still be reconnecting
    int port = self->router ? nsq_endpoint_bind(self->router, "127.0.0.1", 9, "0") : -1;
    if (port < 0) {
        nsq_fake_broker_destroy(&self);
        return NULL;
    }
    snprintf(self->endpoint, sizeof self->endpoint, "127.0.0.1:%d", port);
    return self;
}

void nsq_fake_broker_destroy(nsq_fake_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zframe_destroy(&(*self_p)->peer);
    zsock_destroy(&(*self_p)->router);
    free(*self_p);
    *self_p = NULL;
}

Nsq__Command *nsq_fake_broker_next(nsq_fake_broker_t *self, nsq_fake_broker_poll_fn *poll,
                                   void *arg, int timeout_ms, bool heartbeats)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    while (zclock_mono() < deadline) {
        zmsg_t *msg = zmsg_recv_nowait(self->router);
        if (!msg) {
            poll(arg, 10);
            continue;
        }
        zframe_destroy(&self->peer);
        self->peer = zmsg_pop(msg);
        zframe_t *body = zmsg_pop(msg);
        Nsq__Command *command =
            body ? nsq_wire_command_unpack(zframe_data(body), zframe_size(body)) : NULL;
        zframe_destroy(&body);
        zmsg_destroy(&msg);
        if (command && (heartbeats || command->cmd_case != NSQ__COMMAND__CMD_HEARTBEAT))
            return command;
        nsq__command__free_unpacked(command, NULL);
    }
    return NULL;
}

Nsq__Command *nsq_fake_broker_expect(nsq_fake_broker_t *self, nsq_fake_broker_poll_fn *poll,
                                     void *arg, int cmd_case)
{
    Nsq__Command *command =
        nsq_fake_broker_next(self, poll, arg, 3000, cmd_case == NSQ__COMMAND__CMD_HEARTBEAT);
    if (command && (int) command->cmd_case != cmd_case) {
        nsq_error("fake broker: expected command %d, got %d", cmd_case, command->cmd_case);
        nsq__command__free_unpacked(command, NULL);
        return NULL;
    }
    return command;
}

void nsq_fake_broker_send(nsq_fake_broker_t *self, Nsq__Frame *frame)
{
    nsq_wire_send_frame(zsock_resolve(self->router), zframe_data(self->peer),
                        zframe_size(self->peer), frame, 0);
}

// Sends Response{seq, text, identify}.
static void s_respond(nsq_fake_broker_t *self, uint64_t seq, const char *text,
                      const Nsq__IdentifyReply *reply)
{
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = seq;
    response.text = (char *) text;
    response.identify = (Nsq__IdentifyReply *) reply;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    nsq_fake_broker_send(self, &frame);
}

void nsq_fake_broker_respond(nsq_fake_broker_t *self, uint64_t seq, const char *text)
{
    s_respond(self, seq, text, NULL);
}

void nsq_fake_broker_identified(nsq_fake_broker_t *self, uint64_t seq,
                                const Nsq__IdentifyReply *reply)
{
    s_respond(self, seq, "OK", reply);
}

void nsq_fake_broker_error(nsq_fake_broker_t *self, uint64_t seq, const char *code, bool fatal)
{
    Nsq__Error error = NSQ__ERROR__INIT;
    error.seq = seq;
    error.code = (char *) code;
    error.fatal = fatal;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_ERROR;
    frame.error = &error;
    nsq_fake_broker_send(self, &frame);
}

void nsq_fake_broker_heartbeat(nsq_fake_broker_t *self)
{
    Nsq__Heartbeat heartbeat = NSQ__HEARTBEAT__INIT;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    nsq_fake_broker_send(self, &frame);
}

void nsq_fake_broker_deliver(nsq_fake_broker_t *self, uint64_t first_id, size_t count)
{
    Nsq__Message messages[NSQ_FAKE_BROKER_BATCH_MAX];
    Nsq__Message *pointers[NSQ_FAKE_BROKER_BATCH_MAX];
    char bodies[NSQ_FAKE_BROKER_BATCH_MAX][32];
    if (count > NSQ_FAKE_BROKER_BATCH_MAX)
        count = NSQ_FAKE_BROKER_BATCH_MAX;
    for (size_t i = 0; i < count; i++) {
        nsq__message__init(&messages[i]);
        messages[i].id = first_id + i;
        messages[i].timestamp = 1000 + (int64_t) i;
        messages[i].attempts = 1;
        int size = snprintf(bodies[i], sizeof bodies[i], "message %llu",
                            (unsigned long long) (first_id + i));
        messages[i].body.data = (uint8_t *) bodies[i];
        messages[i].body.len = (size_t) size;
        pointers[i] = &messages[i];
    }
    Nsq__Messages batch = NSQ__MESSAGES__INIT;
    batch.n_messages = count;
    batch.messages = pointers;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_MESSAGES;
    frame.messages = &batch;
    nsq_fake_broker_send(self, &frame);
}

static void s_fake_answer(zsock_t *router, zframe_t *peer, const Nsq__Command *command,
                          size_t *accepted)
{
    if (command->cmd_case != NSQ__COMMAND__CMD_PUB
        || nsq_wire_bytes_equal(command->pub->topic, "silent"))
        return;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    Nsq__Response response = NSQ__RESPONSE__INIT;
    Nsq__Error error = NSQ__ERROR__INIT;
    if (nsq_wire_bytes_equal(command->pub->topic, "bad")) {
        error.seq = command->seq;
        error.code = "E_BAD_TOPIC";
        frame.frame_case = NSQ__FRAME__FRAME_ERROR;
        frame.error = &error;
    } else {
        *accepted += command->pub->n_bodies;
        response.seq = command->seq;
        response.text = "OK";
        frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
        frame.response = &response;
    }
    nsq_wire_send_frame(zsock_resolve(router), zframe_data(peer), zframe_size(peer), &frame, 0);
}

void nsq_fake_broker_read_pub(zsock_t *router, size_t *accepted)
{
    zmsg_t *msg = zmsg_recv(router);
    zframe_t *peer = msg ? zmsg_pop(msg) : NULL;
    zframe_t *body = msg ? zmsg_pop(msg) : NULL;
    Nsq__Command *command =
        body ? nsq_wire_command_unpack(zframe_data(body), zframe_size(body)) : NULL;
    if (command)
        s_fake_answer(router, peer, command, accepted);
    nsq__command__free_unpacked(command, NULL);
    zframe_destroy(&body);
    zframe_destroy(&peer);
    zmsg_destroy(&msg);
}
