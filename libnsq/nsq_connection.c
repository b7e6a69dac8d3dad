/*  nsq_connection - a consumer's session with one broker over a DEALER socket
    SPDX-License-Identifier: MIT

    Handshake: IDENTIFY and SUB leave together; RDY waits for the
    IdentifyReply, which tells the broker's max_rdy_count, this socket's
    heartbeat interval and msg_timeout, and the broker's max_msg_timeout. A
    msg_timeout the broker will not honour is clamped: the broker refuses
    it (E_BAD_BODY) without saying its maximum, so the connection starts
    over asking for the broker's default, learns max_msg_timeout from that
    answer, and starts over once more asking for that maximum (a warning
    says so); the maximum is remembered for the connection's later sockets.

    Liveness: ZeroMQ hides disconnects, so both sides heartbeat. A socket
    monitor reports the DEALER's lost TCP connection (say the broker
    restarted): the connection starts a new session at once, as NSQ
    clients do on a closed connection, instead of waiting for the
    heartbeats. ZeroMQ would reconnect by itself, but a restarted broker
    would not know the old socket.

    Closing a socket drops the FIN and REQ ids still queued: the broker
    requeues those messages anyway.
*/
#include "nsq_connection.h"

#include "nsq.h"
#include "nsq_endpoint.h"
#include "nsq_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_BATCH_MAX            64          // ids per FIN/REQ frame
#define S_HEARTBEAT_DEFAULT_MS 30000       // until the broker says otherwise
#define S_MAX_RDY_DEFAULT      2500        // until the broker says otherwise
#define S_MSG_TIMEOUT_DEFAULT  60000       // NSQ's, for a broker that does not say
#define S_BACKOFF_MIN_MS       1000        // first reconnect delay after a fatal error
#define S_BACKOFF_MAX_MS       30000       // reconnect delay cap
#define S_SILENCE_GRACE_MS     1000        // beyond two heartbeat intervals
#define S_LINGER_MS            100         // time to deliver FINs at close
#define S_HWM                  100000      // frames; credit bounds the real queue
#define S_RDY_NONE             UINT32_MAX  // no RDY sent on this socket yet

typedef struct {
    uint64_t ids[S_BATCH_MAX];  // queued ids
    size_t count;               // how many
    uint32_t delay_ms;          // REQ: the delay all queued ids share
} s_batch_t;

struct _nsq_connection_t {
    const char *endpoint;                       // "tcp://host:port", borrowed
    const nsq_connection_settings_t *settings;  // what to ask for, borrowed
    zloop_t *loop;                              // where its sockets are read
    zloop_reader_fn *reader;                    // the owner's reader for sock
    void *reader_arg;                           //
    zsock_t *sock;                              // DEALER; NULL while waiting to reconnect
    zsock_t *monitor;                           // PAIR getting sock's DISCONNECTED events, or NULL
    uint64_t generation;                        // bumped each time the socket goes away
    uint64_t seq;                               // last command seq sent on this socket
    uint64_t identify_seq;                      // seq of this socket's IDENTIFY
    uint64_t sub_seq;                           // seq of this socket's SUB
    uint64_t cls_seq;                           // seq of this socket's CLS, 0 if none sent
    bool close_waited;                          // the broker answered CLS: it sends nothing more
    bool identified;                            // IDENTIFY answered: RDY may be sent
    uint32_t max_rdy;                           // broker's max_rdy_count
    uint32_t msg_timeout_ms;                    // broker's effective msg_timeout for this socket
    uint32_t timeout_asked;   // msg_timeout asked in this socket's IDENTIFY (0 = default)
    uint32_t max_timeout_ms;  // broker's max_msg_timeout, 0 until known (kept across sockets)
    bool timeout_refused;     // the broker refused our msg_timeout: ask for its default
    int64_t heartbeat_ms;     // negotiated interval
    uint32_t rdy_sent;        // RDY last announced, S_RDY_NONE if none
    int64_t last_send;        // zclock_mono of the last command sent
    int64_t last_recv;        // zclock_mono of the last frame received
    int64_t reconnect_at;     // when to reopen while sock is NULL
    uint32_t backoff_ms;      // next reconnect delay after a fatal error
    s_batch_t fins;           // FIN ids waiting for a flush
    s_batch_t reqs;           // REQ ids waiting for a flush
};

// ---- commands ----------------------------------------------------------------

// Numbers and sends command on the socket. Returns 0 or -1.
static int s_send(nsq_connection_t *self, Nsq__Command *command)
{
    if (!self->sock)
        return -1;
    command->seq = ++self->seq;
    self->last_send = zclock_mono();
    if (nsq_wire_send_command(zsock_resolve(self->sock), command, ZMQ_DONTWAIT)) {
        nsq_warn("consumer %s: cannot send command: %s", self->endpoint, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

// The msg_timeout to ask for: the wanted one, at most the broker's maximum
// once known; its default (0) after it refused ours while its maximum is
// unknown.
static uint32_t s_timeout_to_ask(const nsq_connection_t *self)
{
    uint32_t wanted = self->settings->msg_timeout_ms;
    if (self->max_timeout_ms && wanted > self->max_timeout_ms)
        return self->max_timeout_ms;
    return self->timeout_refused ? 0 : wanted;
}

static void s_send_identify(nsq_connection_t *self)
{
    const nsq_connection_settings_t *settings = self->settings;
    char user_agent[64];
    snprintf(user_agent, sizeof user_agent, "libnsq/%s", nsq_library_version());
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    identify.client_id = (char *) (settings->client_id ? settings->client_id : settings->hostname);
    identify.hostname = (char *) settings->hostname;
    identify.user_agent = user_agent;
    identify.heartbeat_interval_ms = settings->heartbeat_ms;
    self->timeout_asked = s_timeout_to_ask(self);
    self->msg_timeout_ms = self->timeout_asked ? self->timeout_asked : S_MSG_TIMEOUT_DEFAULT;
    identify.msg_timeout_ms = self->timeout_asked;
    if (settings->auth_secret)
        identify.auth_secret = nsq_wire_bytes(settings->auth_secret);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    s_send(self, &command);
    self->identify_seq = command.seq;
}

static void s_send_sub(nsq_connection_t *self)
{
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes(self->settings->topic);
    sub.channel = nsq_wire_bytes(self->settings->channel);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    s_send(self, &command);
    self->sub_seq = command.seq;
}

static void s_send_heartbeat(nsq_connection_t *self)
{
    Nsq__Heartbeat heartbeat = NSQ__HEARTBEAT__INIT;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_HEARTBEAT;
    command.heartbeat = &heartbeat;
    s_send(self, &command);
}

// Sends CLS; disconnect: the socket goes away now (no answer comes).
static int s_send_cls(nsq_connection_t *self, bool disconnect)
{
    Nsq__Cls cls = NSQ__CLS__INIT;
    cls.disconnect = disconnect;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_CLS;
    command.cls = &cls;
    int rc = s_send(self, &command);
    if (rc == 0 && !disconnect)
        self->cls_seq = command.seq;
    return rc;
}

// Sends the ids of batch as command kind (FIN, REQ or TOUCH) and empties it.
static void s_send_ids(nsq_connection_t *self, Nsq__Command__CmdCase kind, s_batch_t *batch)
{
    Nsq__Fin fin = NSQ__FIN__INIT;
    Nsq__Req req = NSQ__REQ__INIT;
    Nsq__Touch touch = NSQ__TOUCH__INIT;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = kind;
    if (kind == NSQ__COMMAND__CMD_FIN) {
        fin.n_ids = batch->count, fin.ids = batch->ids;
        command.fin = &fin;
    } else if (kind == NSQ__COMMAND__CMD_REQ) {
        req.n_ids = batch->count, req.ids = batch->ids, req.delay_ms = batch->delay_ms;
        command.req = &req;
    } else {
        touch.n_ids = batch->count, touch.ids = batch->ids;
        command.touch = &touch;
    }
    s_send(self, &command);
    batch->count = 0;
}

void nsq_connection_flush(nsq_connection_t *self)
{
    if (self->fins.count)
        s_send_ids(self, NSQ__COMMAND__CMD_FIN, &self->fins);
    if (self->reqs.count)
        s_send_ids(self, NSQ__COMMAND__CMD_REQ, &self->reqs);
}

// Queues id in batch; a full batch leaves at once.
static void s_queue(nsq_connection_t *self, s_batch_t *batch, uint64_t id)
{
    batch->ids[batch->count++] = id;
    if (batch->count == S_BATCH_MAX)
        nsq_connection_flush(self);
}

void nsq_connection_fin(nsq_connection_t *self, uint64_t id)
{
    s_queue(self, &self->fins, id);
}

void nsq_connection_req(nsq_connection_t *self, uint64_t id, uint32_t delay_ms)
{
    if (self->reqs.count && self->reqs.delay_ms != delay_ms)
        nsq_connection_flush(self);
    self->reqs.delay_ms = delay_ms;
    s_queue(self, &self->reqs, id);
}

void nsq_connection_touch(nsq_connection_t *self, uint64_t id)
{
    s_batch_t touch = {.ids = {id}, .count = 1};
    s_send_ids(self, NSQ__COMMAND__CMD_TOUCH, &touch);
}

void nsq_connection_rdy(nsq_connection_t *self, uint32_t count)
{
    if (!self->sock || !self->identified || self->rdy_sent == count)
        return;
    Nsq__Rdy rdy = NSQ__RDY__INIT;
    rdy.count = count;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_RDY;
    command.rdy = &rdy;
    if (s_send(self, &command) == 0)
        self->rdy_sent = count;
}

void nsq_connection_cls(nsq_connection_t *self)
{
    s_send_cls(self, false);
}

// ---- the socket ----------------------------------------------------------------

static void s_reset(nsq_connection_t *self, uint32_t delay_ms);
static void s_back_off(nsq_connection_t *self);

bool nsq_connection_read_monitor(nsq_connection_t *self, zsock_t *sock)
{
    if (!sock || sock != self->monitor)
        return false;
    zmsg_t *event = zmsg_recv(sock);
    zframe_t *head = event ? zmsg_first(event) : NULL;
    uint16_t kind = 0;
    if (head && zframe_size(head) >= sizeof kind)
        memcpy(&kind, zframe_data(head), sizeof kind);
    zmsg_destroy(&event);
    if (kind == ZMQ_EVENT_DISCONNECTED && self->identified) {
        nsq_info("consumer %s: connection lost, starting a new session", self->endpoint);
        s_reset(self, 0);
    } else if (kind == ZMQ_EVENT_DISCONNECTED) {
        // Dropped before IDENTIFY was answered: most often a CURVE handshake
        // the broker refused. Starting over at once retried (and logged) ten
        // times a second for as long as the keys were wrong.
        nsq_warn("consumer %s: the broker closed the connection before IDENTIFY was answered "
                 "(does it require other CURVE keys?), retrying in %u ms",
                 self->endpoint, self->backoff_ms);
        s_back_off(self);
    }
    return true;
}

// Watches the socket's disconnects through an inproc PAIR on the loop,
// read by the owner's reader too (nsq_connection_read_monitor), so that a
// monitor closed earlier in a zloop pass is never read through a stale
// pointer. Failing to is not fatal: heartbeats still notice a lost broker,
// later.
static void s_monitor_open(nsq_connection_t *self)
{
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "inproc://nsq-consumer-%p-%llu", (void *) self,
             (unsigned long long) self->generation);
    if (zmq_socket_monitor(zsock_resolve(self->sock), endpoint, ZMQ_EVENT_DISCONNECTED))
        return;
    self->monitor = zsock_new(ZMQ_PAIR);
    if (self->monitor && zsock_connect(self->monitor, "%s", endpoint) == 0
        && zloop_reader(self->loop, self->monitor, self->reader, self->reader_arg) == 0)
        return;
    zmq_socket_monitor(zsock_resolve(self->sock), NULL, 0);
    zsock_destroy(&self->monitor);
}

int nsq_connection_open(nsq_connection_t *self)
{
    int64_t now = zclock_mono();
    zsock_t *sock = nsq_endpoint_dealer(self->endpoint, S_HWM, S_LINGER_MS, &self->settings->curve);
    if (sock && zloop_reader(self->loop, sock, self->reader, self->reader_arg))
        zsock_destroy(&sock);
    if (!sock) {
        nsq_warn("consumer %s: cannot open a socket: %s", self->endpoint, zmq_strerror(errno));
        self->reconnect_at = now + self->backoff_ms;
        return -1;
    }
    zloop_reader_set_tolerant(self->loop, sock);
    self->sock = sock;
    s_monitor_open(self);
    self->seq = 0;
    self->last_recv = self->last_send = now;
    self->heartbeat_ms =
        self->settings->heartbeat_ms ? self->settings->heartbeat_ms : S_HEARTBEAT_DEFAULT_MS;
    self->max_rdy = S_MAX_RDY_DEFAULT;
    s_send_identify(self);
    s_send_sub(self);
    return 0;
}

static void s_close_socket(nsq_connection_t *self)
{
    if (self->monitor) {
        zloop_reader_end(self->loop, self->monitor);
        zmq_socket_monitor(zsock_resolve(self->sock), NULL, 0);
        zsock_destroy(&self->monitor);
    }
    if (self->sock) {
        zloop_reader_end(self->loop, self->sock);
        zsock_destroy(&self->sock);
    }
    self->generation++;
    self->identified = false;
    self->cls_seq = 0;
    self->close_waited = false;
    self->rdy_sent = S_RDY_NONE;
    self->fins.count = self->reqs.count = 0;
}

// Drops the socket and reconnects after delay_ms (at the next check after).
static void s_reset(nsq_connection_t *self, uint32_t delay_ms)
{
    s_close_socket(self);
    self->reconnect_at = zclock_mono() + delay_ms;
}

// Drops the socket and reconnects after the backoff, which doubles.
static void s_back_off(nsq_connection_t *self)
{
    s_reset(self, self->backoff_ms);
    self->backoff_ms =
        self->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : self->backoff_ms * 2;
}

nsq_connection_t *nsq_connection_new(const char *endpoint,
                                     const nsq_connection_settings_t *settings, zloop_t *loop,
                                     zloop_reader_fn *reader, void *reader_arg)
{
    nsq_connection_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoint = endpoint;
    self->settings = settings;
    self->loop = loop;
    self->reader = reader;
    self->reader_arg = reader_arg;
    self->rdy_sent = S_RDY_NONE;
    self->max_rdy = S_MAX_RDY_DEFAULT;
    self->msg_timeout_ms = S_MSG_TIMEOUT_DEFAULT;
    self->backoff_ms = S_BACKOFF_MIN_MS;
    return self;
}

void nsq_connection_destroy(nsq_connection_t **self_p)
{
    nsq_connection_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->sock && self->identified) {
        nsq_connection_flush(self);
        s_send_cls(self, true);
    }
    s_close_socket(self);
    free(self);
    *self_p = NULL;
}

void nsq_connection_check(nsq_connection_t *self, int64_t now, bool reconnect)
{
    if (!self->sock) {
        if (reconnect && now >= self->reconnect_at)
            nsq_connection_open(self);
        return;
    }
    if (self->heartbeat_ms <= 0)
        return;
    if (now - self->last_recv > 2 * self->heartbeat_ms + S_SILENCE_GRACE_MS) {
        nsq_warn("consumer %s: broker silent for %lld ms, reconnecting", self->endpoint,
                 (long long) (now - self->last_recv));
        s_reset(self, 0);
        if (reconnect)
            nsq_connection_open(self);
        return;
    }
    if (self->identified && now - self->last_send >= self->heartbeat_ms)
        s_send_heartbeat(self);
}

// ---- frames ----------------------------------------------------------------------

int nsq_connection_recv(nsq_connection_t *self, ProtobufCAllocator *allocator, Nsq__Frame **frame)
{
    if (!self->sock)
        return -1;
    zmq_msg_t packed;
    zmq_msg_init(&packed);
    if (zmq_msg_recv(&packed, zsock_resolve(self->sock), ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&packed);
        return -1;
    }
    self->last_recv = zclock_mono();
    *frame = nsq__frame__unpack(allocator, zmq_msg_size(&packed), zmq_msg_data(&packed));
    zmq_msg_close(&packed);
    if (!*frame)
        nsq_warn("consumer %s: dropped a frame that does not unpack", self->endpoint);
    return 0;
}

// Takes the broker's limits from its IdentifyReply; what it does not say
// (0, or no reply from a broker older than it) keeps its value.
static void s_read_identify(nsq_connection_t *self, const Nsq__IdentifyReply *reply)
{
    if (!reply)
        return;
    if (reply->max_rdy_count)
        self->max_rdy = reply->max_rdy_count;
    if (reply->heartbeat_interval_ms)
        self->heartbeat_ms = reply->heartbeat_interval_ms;
    if (reply->msg_timeout_ms)
        self->msg_timeout_ms = reply->msg_timeout_ms;
    if (reply->max_msg_timeout_ms)
        self->max_timeout_ms = reply->max_msg_timeout_ms;
}

// After the IdentifyReply: if the broker's maximum is below the msg_timeout
// we want and we did not ask for that maximum, start over asking for it.
// Returns true if the socket was reset.
static bool s_clamp_timeout(nsq_connection_t *self)
{
    uint32_t wanted = self->settings->msg_timeout_ms;
    if (!self->max_timeout_ms || wanted <= self->max_timeout_ms
        || self->timeout_asked == self->max_timeout_ms)
        return false;
    nsq_warn("consumer %s: msg_timeout %u ms is above the broker's max_msg_timeout: using %u ms",
             self->endpoint, wanted, self->max_timeout_ms);
    s_reset(self, 0);
    return true;
}

static nsq_connection_event_t s_on_response(nsq_connection_t *self, const Nsq__Response *response)
{
    if (response->seq == self->identify_seq && !self->identified) {
        s_read_identify(self, response->identify);
        if (s_clamp_timeout(self))
            return NSQ_CONNECTION_RESET;
        self->identified = true;
        nsq_debug("consumer %s: identified, max_rdy_count %u, heartbeat %lld ms, msg_timeout %u ms",
                  self->endpoint, self->max_rdy, (long long) self->heartbeat_ms,
                  self->msg_timeout_ms);
        return NSQ_CONNECTION_IDENTIFIED;
    }
    if (response->seq == self->sub_seq)
        self->backoff_ms = S_BACKOFF_MIN_MS;
    else if (response->seq == self->cls_seq && self->cls_seq) {
        self->close_waited = true;
        return NSQ_CONNECTION_CLOSE_WAIT;
    }
    return NSQ_CONNECTION_NOTHING;
}

// The broker refused IDENTIFY (the SUB sent with it fails too). If we asked
// for a msg_timeout, that is the likely reason: start over asking for the
// broker's default, whose answer tells its maximum. Otherwise back off.
static void s_on_identify_refused(nsq_connection_t *self, const Nsq__Error *error)
{
    if (self->timeout_asked && !self->timeout_refused) {
        nsq_warn("consumer %s: broker refused msg_timeout %u ms (%s: %s), asking for its limits",
                 self->endpoint, self->timeout_asked, error->code, error->text);
        self->timeout_refused = true;
        s_reset(self, 0);
        return;
    }
    nsq_error("consumer %s: broker refused IDENTIFY: %s (%s), retrying in %u ms", self->endpoint,
              error->code, error->text, self->backoff_ms);
    s_back_off(self);
}

static nsq_connection_event_t s_on_error(nsq_connection_t *self, const Nsq__Error *error)
{
    // Authorization refused or not answered (E_AUTH_*, E_UNAUTHORIZED): say
    // so and start over later, the auth server's answer may change.
    if (strncmp(error->code, "E_AUTH", 6) == 0 || strcmp(error->code, "E_UNAUTHORIZED") == 0) {
        nsq_error("consumer %s: %s (%s), retrying in %u ms", self->endpoint, error->code,
                  error->text, self->backoff_ms);
        s_back_off(self);
        return NSQ_CONNECTION_RESET;
    }
    if (!error->fatal && error->seq == self->identify_seq && !self->identified) {
        s_on_identify_refused(self, error);
        return NSQ_CONNECTION_RESET;
    }
    if (!error->fatal) {
        nsq_debug("consumer %s: broker error %s (%s)", self->endpoint, error->code, error->text);
        return NSQ_CONNECTION_NOTHING;
    }
    nsq_warn("consumer %s: broker dropped us: %s (%s), reconnecting in %u ms", self->endpoint,
             error->code, error->text, self->backoff_ms);
    s_back_off(self);
    return NSQ_CONNECTION_RESET;
}

nsq_connection_event_t nsq_connection_handle(nsq_connection_t *self, const Nsq__Frame *frame)
{
    switch (frame->frame_case) {
    case NSQ__FRAME__FRAME_MESSAGES:
        return NSQ_CONNECTION_MESSAGES;
    case NSQ__FRAME__FRAME_RESPONSE:
        return s_on_response(self, frame->response);
    case NSQ__FRAME__FRAME_ERROR:
        return s_on_error(self, frame->error);
    case NSQ__FRAME__FRAME_HEARTBEAT:
        s_send_heartbeat(self);
        return NSQ_CONNECTION_NOTHING;
    default:
        return NSQ_CONNECTION_NOTHING;
    }
}

// ---- accessors -------------------------------------------------------------------

const char *nsq_connection_endpoint(const nsq_connection_t *self)
{
    return self->endpoint;
}

zsock_t *nsq_connection_sock(const nsq_connection_t *self)
{
    return self->sock;
}

uint64_t nsq_connection_generation(const nsq_connection_t *self)
{
    return self->generation;
}

bool nsq_connection_is_ready(const nsq_connection_t *self)
{
    return self->sock && self->identified;
}

bool nsq_connection_close_waited(const nsq_connection_t *self)
{
    return self->close_waited;
}

uint32_t nsq_connection_max_rdy(const nsq_connection_t *self)
{
    return self->max_rdy;
}

uint32_t nsq_connection_msg_timeout(const nsq_connection_t *self)
{
    return self->msg_timeout_ms;
}
