/*  harness_raw - a bare ZeroMQ DEALER that speaks the protobuf protocol
    SPDX-License-Identifier: MIT

    For cases that must send exact frames (bad input, credit, ordering)
    without the client API in between: commands are packed with nsq_wire,
    frames received are unpacked and unexpected kinds are noted and skipped
    while waiting for the one expected.
*/
#include "harness.h"
#include "harness_internal.h"

#include <stdlib.h>
#include <zmq.h>

// ---- raw protocol client ----------------------------------------------

struct _it_raw_t {
    zsock_t *dealer;  // connected to the broker's ROUTER
    void *handle;     // its libzmq socket
};

it_raw_t *it_raw_new(it_broker_t *broker)
{
    it_raw_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    self->dealer = zsock_new(ZMQ_DEALER);
    IT_ASSERT(self->dealer, "zsock_new(DEALER) failed");
    const char *address = it_broker_zmq(broker);
    if (address[0] == '[')
        zsock_set_ipv6(self->dealer, 1);  // "[::1]:PORT"
    IT_ASSERT(zsock_connect(self->dealer, "tcp://%s", address) == 0, "connect %s failed", address);
    self->handle = zsock_resolve(self->dealer);
    return self;
}

void it_raw_destroy(it_raw_t **self_p)
{
    it_raw_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    zsock_destroy(&self->dealer);
    free(self);
}

void it_raw_send_bytes(it_raw_t *self, const void *data, size_t size)
{
    IT_ASSERT(zmq_send(self->handle, data, size, 0) == (int) size, "zmq_send: %s",
              zmq_strerror(zmq_errno()));
}

void it_raw_send(it_raw_t *self, Nsq__Command *command, uint64_t seq)
{
    command->seq = seq;
    IT_ASSERT(nsq_wire_send_command(self->handle, command, 0) == 0, "send command: %s",
              zmq_strerror(zmq_errno()));
}

void it_raw_identify(it_raw_t *self, uint64_t seq)
{
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    identify.client_id = "it-raw";
    identify.hostname = "localhost";
    identify.user_agent = "it-harness/1";
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    it_raw_send(self, &command, seq);
}

void it_raw_sub(it_raw_t *self, uint64_t seq, const char *topic, const char *channel)
{
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes(topic);
    sub.channel = nsq_wire_bytes(channel);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    it_raw_send(self, &command, seq);
}

void it_raw_rdy(it_raw_t *self, uint64_t seq, uint32_t count)
{
    Nsq__Rdy rdy = NSQ__RDY__INIT;
    rdy.count = count;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_RDY;
    command.rdy = &rdy;
    it_raw_send(self, &command, seq);
}

void it_raw_fin(it_raw_t *self, uint64_t seq, uint64_t id)
{
    Nsq__Fin fin = NSQ__FIN__INIT;
    fin.n_ids = 1;
    fin.ids = &id;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_FIN;
    command.fin = &fin;
    it_raw_send(self, &command, seq);
}

static void s_note_skipped(const Nsq__Frame *frame)
{
    if (frame->frame_case == NSQ__FRAME__FRAME_RESPONSE)
        it_note("raw: skipped response seq %llu \"%s\"", (unsigned long long) frame->response->seq,
                frame->response->text);
    else if (frame->frame_case == NSQ__FRAME__FRAME_ERROR)
        it_note("raw: skipped error seq %llu %s %s", (unsigned long long) frame->error->seq,
                frame->error->code, frame->error->text);
    else
        it_note("raw: skipped frame of kind %d", (int) frame->frame_case);
}

// Receives one ZeroMQ message (extra parts dropped); NULL after timeout_ms.
static Nsq__Frame *s_raw_receive(it_raw_t *self, int timeout_ms)
{
    zmq_pollitem_t item = {self->handle, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t part;
    zmq_msg_init(&part);
    IT_ASSERT(zmq_msg_recv(&part, self->handle, 0) >= 0, "zmq_msg_recv failed");
    Nsq__Frame *frame = nsq_wire_frame_unpack(zmq_msg_data(&part), zmq_msg_size(&part));
    size_t size = zmq_msg_size(&part);
    while (zmq_msg_more(&part)) {
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        zmq_msg_recv(&part, self->handle, 0);
    }
    zmq_msg_close(&part);
    IT_ASSERT(frame, "the broker sent %zu bytes that are not a valid Frame", size);
    return frame;
}

Nsq__Frame *it_raw_next(it_raw_t *self, int timeout_ms)
{
    return s_raw_receive(self, timeout_ms);
}

Nsq__Frame *it_raw_expect(it_raw_t *self, Nsq__Frame__FrameCase kind, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (true) {
        int64_t remaining = deadline - it_now_ms();
        if (remaining <= 0)
            return NULL;
        Nsq__Frame *frame = s_raw_receive(self, (int) remaining);
        if (!frame)
            return NULL;
        if (frame->frame_case == kind)
            return frame;
        s_note_skipped(frame);
        nsq__frame__free_unpacked(frame, NULL);
    }
}
