/*  nsq_consumer - subscribe to (topic, channel) on brokers, hand out messages
    SPDX-License-Identifier: MIT

    One DEALER socket per broker connection, all read by one zloop on the
    thread that owns the consumer. A connection sends IDENTIFY and SUB at
    once, then RDY when the IDENTIFY answer has told it the broker's
    max_rdy_count. RDY is a window (the broker sends while the connection's
    in-flight count is below it), so it is sent once per connection and again
    only when the connection's share of max_in_flight changes (s_credit_*).

    Each delivered message is one allocation (header and body) on the
    consumer's unsettled list, pointing back to its connection. The handler
    settles it with FIN or REQ, now or later; the ids are batched per
    connection and flushed at the end of each read (or by a zero-delay timer
    when settled outside a read), so a fast consumer sends one frame per
    batch. When a connection is dropped or reset, its unsettled messages
    become orphans: still valid for the handler, settling one frees it and
    returns -1 (the broker requeues it anyway).

    The IDENTIFY answer (JSON, read with jansson) also gives the
    connection's effective msg_timeout, which each message carries
    (nsq_msg_timeout_ms) so that a handler can TOUCH in time. A msg_timeout
    the broker will not honour is clamped: the broker refuses it (E_BAD_BODY)
    without saying its maximum, so the connection starts over asking for the
    broker's default, learns max_msg_timeout from that answer, and starts
    over once more asking for that maximum (a warning says so); the maximum
    is remembered for the connection's later sockets.

    Liveness: a periodic tick sends a Heartbeat on a connection that has sent
    nothing for an interval, and resets a connection whose broker has sent
    nothing for two intervals plus a second (new socket, so a new identity,
    then the handshake again). A fatal broker error resets the connection
    after a backoff.

    Loop safety: zloop may call a reader with a socket that a timer in the
    same pass destroyed, so readers look the connection up by socket pointer
    and ignore strangers; the zloop is primed once at creation so that
    zloop_timer_end removes timers at once.
*/
#include "nsq.h"
#include "nsq_client_test.h"
#include "nsq_discovery.h"
#include "nsq_log.h"
#include "nsq_message.h"
#include "nsq_names.h"
#include "nsq_wire.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_BATCH_MAX            64          // ids per FIN/REQ frame
#define S_DRAIN_MAX            64          // frames read per reader wake-up
#define S_TICK_MS              100         // heartbeat, liveness and reconnect check
#define S_HEARTBEAT_DEFAULT_MS 30000       // until the broker says otherwise
#define S_MAX_RDY_DEFAULT      2500        // until the broker says otherwise
#define S_MSG_TIMEOUT_DEFAULT  60000       // NSQ's, for a broker that does not say
#define S_BACKOFF_MIN_MS       1000        // first reconnect delay after a fatal error
#define S_BACKOFF_MAX_MS       30000       // reconnect delay cap
#define S_ROTATE_MS            5000        // RDY rotation when max_in_flight < connections
#define S_LINGER_MS            100         // time to deliver FINs at close
#define S_HWM                  100000      // frames; credit bounds the real queue
#define S_RDY_NONE             UINT32_MAX  // no RDY sent on this socket yet

typedef struct _s_connection_t s_connection_t;

struct _nsq_msg_t {
    nsq_msg_t *prev;  // neighbours on the consumer's unsettled list
    nsq_msg_t *next;
    s_connection_t *connection;  // where to settle it; NULL once that is gone
    const char *broker;          // endpoint, interned by the consumer
    uint64_t id;                 // wire id
    int64_t timestamp;           // ns since the epoch
    uint32_t attempts;           // delivery attempts, 1 first
    uint32_t timeout_ms;         // its connection's msg_timeout when it arrived
    uint32_t size;               // body bytes
    char id_hex[NSQ_MESSAGE_ID_HEX_SIZE + 1];
    uint8_t body[];  // size bytes then a NUL
};

typedef struct {
    uint64_t ids[S_BATCH_MAX];  // queued ids
    size_t count;               // how many
    uint32_t delay_ms;          // REQ: the delay all queued ids share
} s_batch_t;

struct _s_connection_t {
    nsq_consumer_t *consumer;  // owner
    const char *address;       // "tcp://host:port", interned by the consumer
    zsock_t *sock;             // DEALER; NULL while waiting to reconnect
    zsock_t *monitor;          // PAIR getting sock's DISCONNECTED events, or NULL
    uint64_t generation;       // bumped each time the socket goes away
    uint64_t seq;              // last command seq sent on this socket
    uint64_t identify_seq;     // seq of this socket's IDENTIFY
    uint64_t sub_seq;          // seq of this socket's SUB
    uint64_t cls_seq;          // seq of this socket's CLS, 0 if none sent
    bool close_waited;         // the broker answered CLS: it sends nothing more
    bool identified;           // IDENTIFY answered: RDY may be sent
    uint32_t max_rdy;          // broker's max_rdy_count
    uint32_t msg_timeout_ms;   // broker's effective msg_timeout for this socket
    uint32_t timeout_asked;    // msg_timeout asked in this socket's IDENTIFY (0 = default)
    uint32_t max_timeout_ms;   // broker's max_msg_timeout, 0 until known (kept across sockets)
    bool timeout_refused;      // the broker refused our msg_timeout: ask for its default
    int64_t heartbeat_ms;      // negotiated interval; <= 0 disables liveness
    uint32_t rdy_sent;         // RDY last announced, S_RDY_NONE if none
    int64_t last_send;         // zclock_mono of the last command sent
    int64_t last_recv;         // zclock_mono of the last frame received
    int64_t reconnect_at;      // when to reopen while sock is NULL
    uint32_t backoff_ms;       // next reconnect delay after a fatal error
    s_batch_t fins;            // FIN ids waiting for a flush
    s_batch_t reqs;            // REQ ids waiting for a flush
};

// Frames are unpacked into a bump arena that is reset after each frame:
// protobuf-c allocates a struct per message plus each body, and malloc/free
// of those was a fifth of the consumer's time.
typedef struct _s_chunk_t s_chunk_t;
struct _s_chunk_t {
    s_chunk_t *next;     // older chunk
    size_t size;         // bytes in data
    size_t used;         // bytes handed out
    max_align_t data[];  // the memory
};

typedef struct {
    ProtobufCAllocator allocator;  // what protobuf-c calls
    s_chunk_t *chunks;             // newest first
} s_arena_t;

struct _nsq_consumer_t {
    char *topic;  // subscription
    char *channel;
    char *client_id;          // announced in IDENTIFY
    char hostname[256];       // announced in IDENTIFY
    nsq_handler_fn *handler;  // user's message handler
    void *handler_arg;
    uint32_t max_in_flight;        // total credit
    uint32_t heartbeat_ms;         // asked of brokers, 0 = broker default
    uint32_t msg_timeout_ms;       // asked of brokers, 0 = broker default
    zloop_t *loop;                 // everything runs on it
    s_arena_t arena;               // where frames are unpacked
    int flush_timer;               // pending zero-delay flush, 0 if none
    int break_timer;               // pending stop request, 0 if none
    s_connection_t **connections;  // live connections, in connect order
    size_t connection_count;
    size_t connection_capacity;
    zlistx_t *addresses;   // interned endpoints, kept until destroy
    nsq_msg_t *unsettled;  // head of the list of handed-out messages
    size_t in_flight;      // length of that list
    uint64_t received;     // counters since creation
    uint64_t finished;
    uint64_t requeued;
    size_t rotation;             // RDY rotation offset
    int64_t rotate_at;           // next rotation
    s_connection_t *reading;     // connection being read, NULL if none
    bool break_requested;        // leave the loop after this event
    bool polling;                // nsq_consumer_poll: break after a delivery
    bool draining;               // nsq_consumer_close: break once drained
    bool closing;                // CLS sent: RDY 0, no reconnects
    nsq_discovery_t *discovery;  // lookupd poller, NULL until connect_lookupd
    zlistx_t *discovered;        // "host:port" of brokers connected through lookupds
    bool lookupd_answered;       // some lookupd answered a query (even "topic not found")
    uint32_t lookupd_poll_ms;    // poll interval, 0 = the default
};

static void s_credit_update(nsq_consumer_t *self);
static void s_request_break(nsq_consumer_t *self);
static void s_check_drained(nsq_consumer_t *self);

// ---- library and messages ----------------------------------------------

const char *nsq_library_version(void)
{
    return NSQ_VERSION;
}

const char *nsq_msg_id(const nsq_msg_t *msg)
{
    return msg->id_hex;
}

const void *nsq_msg_body(const nsq_msg_t *msg)
{
    return msg->body;
}

size_t nsq_msg_size(const nsq_msg_t *msg)
{
    return msg->size;
}

uint32_t nsq_msg_attempts(const nsq_msg_t *msg)
{
    return msg->attempts;
}

int64_t nsq_msg_timestamp(const nsq_msg_t *msg)
{
    return msg->timestamp;
}

const char *nsq_msg_broker(const nsq_msg_t *msg)
{
    return msg->broker;
}

uint32_t nsq_msg_timeout_ms(const nsq_msg_t *msg)
{
    return msg->timeout_ms;
}

// Copies one wire message into a new nsq_msg_t. NULL if out of memory.
static nsq_msg_t *s_msg_new(s_connection_t *conn, const Nsq__Message *wire)
{
    size_t size = wire->body.len;
    nsq_msg_t *msg = malloc(sizeof(nsq_msg_t) + size + 1);
    if (!msg)
        return NULL;
    msg->prev = msg->next = NULL;
    msg->connection = conn;
    msg->broker = conn->address;
    msg->id = wire->id;
    msg->timestamp = wire->timestamp;
    msg->attempts = wire->attempts;
    msg->timeout_ms = conn->msg_timeout_ms;
    msg->size = (uint32_t) size;
    nsq_message_id_format(wire->id, msg->id_hex);
    if (size)
        memcpy(msg->body, wire->body.data, size);
    msg->body[size] = '\0';
    return msg;
}

nsq_msg_t *nsq_client_test_msg_new(const void *body, size_t size)
{
    s_connection_t test_connection = {.address = "tcp://127.0.0.1:1",  // a static string
                                      .msg_timeout_ms = S_MSG_TIMEOUT_DEFAULT};
    Nsq__Message wire = NSQ__MESSAGE__INIT;
    wire.id = 1;
    wire.attempts = 1;
    wire.body.data = (uint8_t *) body;
    wire.body.len = size;
    nsq_msg_t *msg = s_msg_new(&test_connection, &wire);
    if (msg)
        msg->connection = NULL;  // settling it through a consumer fails
    return msg;
}

static void s_msg_link(nsq_consumer_t *self, nsq_msg_t *msg)
{
    msg->next = self->unsettled;
    if (self->unsettled)
        self->unsettled->prev = msg;
    self->unsettled = msg;
    self->in_flight++;
}

// Unlinks and frees msg.
static void s_msg_free(nsq_consumer_t *self, nsq_msg_t *msg)
{
    if (msg->prev)
        msg->prev->next = msg->next;
    else
        self->unsettled = msg->next;
    if (msg->next)
        msg->next->prev = msg->prev;
    self->in_flight--;
    free(msg);
}

// Detaches conn's unsettled messages: settling them now returns -1.
static void s_msg_orphan_all(nsq_consumer_t *self, s_connection_t *conn)
{
    for (nsq_msg_t *msg = self->unsettled; msg; msg = msg->next)
        if (msg->connection == conn)
            msg->connection = NULL;
}

// ---- frame arena -------------------------------------------------------------

#define S_CHUNK_MIN  (64 * 1024)        // first chunk size
#define S_CHUNK_KEEP (4 * 1024 * 1024)  // largest chunk kept between frames

static void *s_arena_alloc(void *data, size_t size)
{
    s_arena_t *arena = data;
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    s_chunk_t *chunk = arena->chunks;
    if (!chunk || chunk->size - chunk->used < size) {
        size_t chunk_size = chunk ? chunk->size * 2 : S_CHUNK_MIN;
        if (chunk_size < size)
            chunk_size = size;
        chunk = malloc(sizeof(s_chunk_t) + chunk_size);
        if (!chunk)
            return NULL;
        chunk->size = chunk_size;
        chunk->used = 0;
        chunk->next = arena->chunks;
        arena->chunks = chunk;
    }
    void *memory = (char *) chunk->data + chunk->used;
    chunk->used += size;
    return memory;
}

static void s_arena_free(void *data, void *memory)
{
    (void) data;
    (void) memory;  // released all at once by s_arena_reset
}

// Forgets everything allocated; keeps the newest (largest) chunk for reuse
// unless it is oversized.
static void s_arena_reset(s_arena_t *arena)
{
    s_chunk_t *chunk = arena->chunks;
    if (!chunk)
        return;
    while (chunk->next) {
        s_chunk_t *older = chunk->next;
        chunk->next = older->next;
        free(older);
    }
    chunk->used = 0;
    if (chunk->size > S_CHUNK_KEEP) {
        free(chunk);
        arena->chunks = NULL;
    }
}

// ---- endpoints -----------------------------------------------------------

int nsq_client_endpoint(const char *address, char *endpoint, size_t size)
{
    if (!address || !endpoint) {
        errno = EINVAL;
        return -1;
    }
    if (strncmp(address, "tcp://", 6) == 0)
        address += 6;
    const char *colon = strrchr(address, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    bool bad_host = !colon || colon == address || strpbrk(address, " \t\r\n") != NULL;
    bool bad_port = !colon || end == colon + 1 || *end != '\0' || port < 1 || port > 65535;
    if (bad_host || bad_port || colon[1] == '+' || colon[1] == '-') {
        errno = EINVAL;
        return -1;
    }
    int length = snprintf(endpoint, size, "tcp://%s", address);
    if (length < 0 || (size_t) length >= size) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

// Returns the consumer's copy of endpoint, made on first use.
static const char *s_intern(nsq_consumer_t *self, const char *endpoint)
{
    for (char *known = zlistx_first(self->addresses); known; known = zlistx_next(self->addresses))
        if (streq(known, endpoint))
            return known;
    char *copy = strdup(endpoint);
    if (copy && !zlistx_add_end(self->addresses, copy)) {
        free(copy);
        copy = NULL;
    }
    return copy;
}

// ---- commands --------------------------------------------------------------

// Numbers and sends command on conn's socket. Returns 0 or -1.
static int s_send(s_connection_t *conn, Nsq__Command *command)
{
    if (!conn->sock)
        return -1;
    command->seq = ++conn->seq;
    conn->last_send = zclock_mono();
    if (nsq_wire_send_command(zsock_resolve(conn->sock), command, ZMQ_DONTWAIT)) {
        nsq_warn("consumer %s: cannot send command: %s", conn->address, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

// The msg_timeout to ask conn's broker for: ours, at most its maximum once
// known; its default (0) after it refused ours while its maximum is unknown.
static uint32_t s_timeout_to_ask(s_connection_t *conn)
{
    uint32_t wanted = conn->consumer->msg_timeout_ms;
    if (conn->max_timeout_ms && wanted > conn->max_timeout_ms)
        return conn->max_timeout_ms;
    return conn->timeout_refused ? 0 : wanted;
}

static void s_send_identify(s_connection_t *conn)
{
    nsq_consumer_t *self = conn->consumer;
    char user_agent[64];
    snprintf(user_agent, sizeof user_agent, "libnsq/%s", nsq_library_version());
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    identify.client_id = self->client_id ? self->client_id : self->hostname;
    identify.hostname = self->hostname;
    identify.user_agent = user_agent;
    identify.heartbeat_interval_ms = self->heartbeat_ms;
    conn->timeout_asked = s_timeout_to_ask(conn);
    conn->msg_timeout_ms = conn->timeout_asked ? conn->timeout_asked : S_MSG_TIMEOUT_DEFAULT;
    identify.msg_timeout_ms = conn->timeout_asked;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    s_send(conn, &command);
    conn->identify_seq = command.seq;
}

static void s_send_sub(s_connection_t *conn)
{
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes(conn->consumer->topic);
    sub.channel = nsq_wire_bytes(conn->consumer->channel);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    s_send(conn, &command);
    conn->sub_seq = command.seq;
}

static void s_send_rdy(s_connection_t *conn, uint32_t count)
{
    Nsq__Rdy rdy = NSQ__RDY__INIT;
    rdy.count = count;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_RDY;
    command.rdy = &rdy;
    if (s_send(conn, &command) == 0)
        conn->rdy_sent = count;
}

static void s_send_heartbeat(s_connection_t *conn)
{
    Nsq__Heartbeat heartbeat = NSQ__HEARTBEAT__INIT;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_HEARTBEAT;
    command.heartbeat = &heartbeat;
    s_send(conn, &command);
}

static void s_send_cls(s_connection_t *conn)
{
    Nsq__Cls cls = NSQ__CLS__INIT;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_CLS;
    command.cls = &cls;
    if (s_send(conn, &command) == 0)
        conn->cls_seq = command.seq;
}

static void s_send_touch(s_connection_t *conn, uint64_t id)
{
    Nsq__Touch touch = NSQ__TOUCH__INIT;
    touch.n_ids = 1;
    touch.ids = &id;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_TOUCH;
    command.touch = &touch;
    s_send(conn, &command);
}

// Sends the queued FIN and REQ ids of conn, one frame each.
static void s_connection_flush(s_connection_t *conn)
{
    if (conn->fins.count) {
        Nsq__Fin fin = NSQ__FIN__INIT;
        fin.n_ids = conn->fins.count;
        fin.ids = conn->fins.ids;
        Nsq__Command command = NSQ__COMMAND__INIT;
        command.cmd_case = NSQ__COMMAND__CMD_FIN;
        command.fin = &fin;
        s_send(conn, &command);
        conn->fins.count = 0;
    }
    if (conn->reqs.count) {
        Nsq__Req req = NSQ__REQ__INIT;
        req.n_ids = conn->reqs.count;
        req.ids = conn->reqs.ids;
        req.delay_ms = conn->reqs.delay_ms;
        Nsq__Command command = NSQ__COMMAND__INIT;
        command.cmd_case = NSQ__COMMAND__CMD_REQ;
        command.req = &req;
        s_send(conn, &command);
        conn->reqs.count = 0;
    }
}

static void s_flush_all(nsq_consumer_t *self)
{
    for (size_t i = 0; i < self->connection_count; i++)
        s_connection_flush(self->connections[i]);
}

// ---- connections -----------------------------------------------------------

static int s_reader(zloop_t *loop, zsock_t *sock, void *arg);

// Opens a fresh socket to conn's broker and starts the handshake. On
// failure the tick retries after the backoff. Returns 0 or -1.
static void s_connection_reset(s_connection_t *conn, uint32_t delay_ms);

// The TCP connection under the DEALER dropped (say the broker restarted):
// like NSQ clients on a closed connection, start a new session at once
// instead of waiting for the heartbeats to notice. ZeroMQ would reconnect
// by itself, but a restarted broker would not know this socket.
static int s_on_monitor(zloop_t *loop, zsock_t *monitor, void *arg)
{
    (void) loop;
    s_connection_t *conn = arg;
    zmsg_t *event = zmsg_recv(monitor);
    zframe_t *head = event ? zmsg_first(event) : NULL;
    uint16_t kind = 0;
    if (head && zframe_size(head) >= sizeof kind)
        memcpy(&kind, zframe_data(head), sizeof kind);
    zmsg_destroy(&event);
    if (kind == ZMQ_EVENT_DISCONNECTED) {
        nsq_info("consumer %s: connection lost, starting a new session", conn->address);
        s_connection_reset(conn, 0);
    }
    return 0;
}

// Watches sock's disconnects through an inproc PAIR on the loop. Failing to
// is not fatal: heartbeats still notice a lost broker, only later.
static void s_monitor_open(s_connection_t *conn)
{
    nsq_consumer_t *self = conn->consumer;
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "inproc://nsq-consumer-%p-%llu", (void *) conn,
             (unsigned long long) conn->generation);
    if (zmq_socket_monitor(zsock_resolve(conn->sock), endpoint, ZMQ_EVENT_DISCONNECTED))
        return;
    conn->monitor = zsock_new(ZMQ_PAIR);
    if (conn->monitor && zsock_connect(conn->monitor, "%s", endpoint) == 0
        && zloop_reader(self->loop, conn->monitor, s_on_monitor, conn) == 0)
        return;
    zmq_socket_monitor(zsock_resolve(conn->sock), NULL, 0);
    zsock_destroy(&conn->monitor);
}

static int s_connection_open(s_connection_t *conn)
{
    nsq_consumer_t *self = conn->consumer;
    int64_t now = zclock_mono();
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (sock) {
        zsock_set_linger(sock, S_LINGER_MS);
        zsock_set_sndhwm(sock, S_HWM);
        zsock_set_rcvhwm(sock, S_HWM);
        zsock_set_ipv6(sock, strchr(conn->address, '[') != NULL);  // "tcp://[::1]:4152"
        if (zsock_connect(sock, "%s", conn->address)
            || zloop_reader(self->loop, sock, s_reader, self))
            zsock_destroy(&sock);
    }
    if (!sock) {
        nsq_warn("consumer %s: cannot open a socket: %s", conn->address, zmq_strerror(errno));
        conn->reconnect_at = now + conn->backoff_ms;
        return -1;
    }
    zloop_reader_set_tolerant(self->loop, sock);
    conn->sock = sock;
    s_monitor_open(conn);
    conn->seq = 0;
    conn->last_recv = conn->last_send = now;
    conn->heartbeat_ms = self->heartbeat_ms ? self->heartbeat_ms : S_HEARTBEAT_DEFAULT_MS;
    conn->max_rdy = S_MAX_RDY_DEFAULT;
    s_send_identify(conn);
    s_send_sub(conn);
    return 0;
}

// Closes conn's socket; its unsettled messages become orphans and its
// queued settles are dropped (the broker requeues those messages).
static void s_connection_close_socket(s_connection_t *conn)
{
    nsq_consumer_t *self = conn->consumer;
    s_msg_orphan_all(self, conn);
    if (conn->monitor) {
        zloop_reader_end(self->loop, conn->monitor);
        zmq_socket_monitor(zsock_resolve(conn->sock), NULL, 0);
        zsock_destroy(&conn->monitor);
    }
    if (conn->sock) {
        zloop_reader_end(self->loop, conn->sock);
        zsock_destroy(&conn->sock);
    }
    conn->generation++;
    conn->identified = false;
    conn->cls_seq = 0;
    conn->close_waited = false;
    conn->rdy_sent = S_RDY_NONE;
    conn->fins.count = conn->reqs.count = 0;
}

// Drops the socket and reconnects after delay_ms (at the next tick after).
static void s_connection_reset(s_connection_t *conn, uint32_t delay_ms)
{
    s_connection_close_socket(conn);
    conn->reconnect_at = zclock_mono() + delay_ms;
}

static s_connection_t *s_connection_new(nsq_consumer_t *self, const char *address)
{
    s_connection_t *conn = calloc(1, sizeof *conn);
    if (!conn)
        return NULL;
    conn->consumer = self;
    conn->address = address;
    conn->rdy_sent = S_RDY_NONE;
    conn->backoff_ms = S_BACKOFF_MIN_MS;
    return conn;
}

// Tells the broker this socket goes away, so it requeues what we still
// hold at once instead of after two missed heartbeats (ZeroMQ hides the
// disconnect). Settlements still queued go out first.
static void s_send_goodbye(s_connection_t *conn)
{
    if (!conn->sock || !conn->identified)
        return;
    s_connection_flush(conn);
    Nsq__Cls cls = NSQ__CLS__INIT;
    cls.disconnect = true;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_CLS;
    command.cls = &cls;
    s_send(conn, &command);
}

static void s_connection_destroy(s_connection_t **conn_p)
{
    s_connection_t *conn = *conn_p;
    if (!conn)
        return;
    if (conn->consumer->reading == conn)
        conn->consumer->reading = NULL;
    s_send_goodbye(conn);
    s_connection_close_socket(conn);
    free(conn);
    *conn_p = NULL;
}

static s_connection_t *s_connection_find(nsq_consumer_t *self, const char *endpoint, size_t *index)
{
    for (size_t i = 0; i < self->connection_count; i++)
        if (streq(self->connections[i]->address, endpoint)) {
            if (index)
                *index = i;
            return self->connections[i];
        }
    return NULL;
}

// Heartbeat, liveness and reconnection for one connection.
static void s_connection_check(s_connection_t *conn, int64_t now)
{
    nsq_consumer_t *self = conn->consumer;
    if (!conn->sock) {
        if (!self->closing && now >= conn->reconnect_at)
            s_connection_open(conn);
        return;
    }
    if (conn->heartbeat_ms <= 0)
        return;
    if (now - conn->last_recv > 2 * conn->heartbeat_ms + 1000) {
        nsq_warn("consumer %s: broker silent for %lld ms, reconnecting", conn->address,
                 (long long) (now - conn->last_recv));
        s_connection_reset(conn, 0);
        if (!self->closing)
            s_connection_open(conn);
        return;
    }
    if (conn->identified && now - conn->last_send >= conn->heartbeat_ms)
        s_send_heartbeat(conn);
}

// ---- credit ----------------------------------------------------------------

// The RDY connection number index should announce.
static uint32_t s_credit_share(nsq_consumer_t *self, size_t index)
{
    size_t count = self->connection_count;
    uint32_t total = self->max_in_flight;
    if (self->closing || count == 0)
        return 0;
    if (total < count) {
        // Not enough credit for all: RDY 1 on total connections, rotating.
        size_t slot = (index + count - self->rotation % count) % count;
        return slot < total ? 1 : 0;
    }
    // Even shares; the remainder goes to the first connections.
    return (uint32_t) (total / count + (index < total % count ? 1 : 0));
}

// Announces RDY on every identified connection whose share changed.
static void s_credit_update(nsq_consumer_t *self)
{
    for (size_t i = 0; i < self->connection_count; i++) {
        s_connection_t *conn = self->connections[i];
        uint32_t target = s_credit_share(self, i);
        if (target > conn->max_rdy)
            target = conn->max_rdy;
        if (conn->sock && conn->identified && conn->rdy_sent != target)
            s_send_rdy(conn, target);
    }
}

// Moves the RDY 1 slots along when credit is scarcer than connections.
static void s_credit_rotate(nsq_consumer_t *self, int64_t now)
{
    if (self->max_in_flight == 0 || self->max_in_flight >= self->connection_count)
        return;
    if (now < self->rotate_at)
        return;
    self->rotate_at = now + S_ROTATE_MS;
    self->rotation += self->max_in_flight;
    s_credit_update(self);
}

// ---- frames ----------------------------------------------------------------

// The integer "key" of a JSON object within [low, high], or fallback if it
// is absent, not an integer or out of range.
static int64_t s_json_int(const json_t *object, const char *key, int64_t low, int64_t high,
                          int64_t fallback)
{
    const json_t *value = json_object_get(object, key);
    if (!json_is_integer(value))
        return fallback;
    json_int_t number = json_integer_value(value);
    return number < low || number > high ? fallback : (int64_t) number;
}

// Reads the broker's limits from its IDENTIFY answer (nsqd's identify
// response fields); what is missing or malformed keeps its value.
static void s_read_identify(s_connection_t *conn, const char *text)
{
    json_t *answer = text ? json_loads(text, 0, NULL) : NULL;
    conn->max_rdy = (uint32_t) s_json_int(answer, "max_rdy_count", 0, UINT32_MAX, conn->max_rdy);
    conn->heartbeat_ms =
        s_json_int(answer, "heartbeat_interval", INT64_MIN, INT64_MAX, conn->heartbeat_ms);
    conn->msg_timeout_ms =
        (uint32_t) s_json_int(answer, "msg_timeout", 1, UINT32_MAX, conn->msg_timeout_ms);
    conn->max_timeout_ms =
        (uint32_t) s_json_int(answer, "max_msg_timeout", 1, UINT32_MAX, conn->max_timeout_ms);
    json_decref(answer);
}

// After the IDENTIFY answer: if the broker's maximum is below the
// msg_timeout we want and we did not ask for that maximum, start over
// asking for it. Returns true if the connection was reset.
static bool s_clamp_timeout(s_connection_t *conn)
{
    uint32_t wanted = conn->consumer->msg_timeout_ms;
    if (!conn->max_timeout_ms || wanted <= conn->max_timeout_ms
        || conn->timeout_asked == conn->max_timeout_ms)
        return false;
    nsq_warn("consumer %s: msg_timeout %u ms is above the broker's max_msg_timeout: using %u ms",
             conn->address, wanted, conn->max_timeout_ms);
    s_connection_reset(conn, 0);
    return true;
}

static void s_on_response(s_connection_t *conn, const Nsq__Response *response)
{
    if (response->seq == conn->identify_seq && !conn->identified) {
        s_read_identify(conn, response->text);
        if (s_clamp_timeout(conn))
            return;
        conn->identified = true;
        nsq_debug("consumer %s: identified, max_rdy_count %u, heartbeat %lld ms, msg_timeout %u ms",
                  conn->address, conn->max_rdy, (long long) conn->heartbeat_ms,
                  conn->msg_timeout_ms);
        s_credit_update(conn->consumer);
    } else if (response->seq == conn->sub_seq)
        conn->backoff_ms = S_BACKOFF_MIN_MS;
    else if (response->seq == conn->cls_seq && conn->cls_seq) {
        conn->close_waited = true;
        s_check_drained(conn->consumer);
    }
}

// Drops the socket and reconnects after the backoff, which doubles.
static void s_connection_back_off(s_connection_t *conn)
{
    s_connection_reset(conn, conn->backoff_ms);
    conn->backoff_ms =
        conn->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : conn->backoff_ms * 2;
}

// The broker refused IDENTIFY (the SUB sent with it fails too). If we asked
// for a msg_timeout, that is the likely reason: start over asking for the
// broker's default, whose answer tells its maximum. Otherwise back off.
static void s_on_identify_refused(s_connection_t *conn, const Nsq__Error *error)
{
    if (conn->timeout_asked && !conn->timeout_refused) {
        nsq_warn("consumer %s: broker refused msg_timeout %u ms (%s: %s), asking for its limits",
                 conn->address, conn->timeout_asked, error->code, error->text);
        conn->timeout_refused = true;
        s_connection_reset(conn, 0);
        return;
    }
    nsq_error("consumer %s: broker refused IDENTIFY: %s (%s), retrying in %u ms", conn->address,
              error->code, error->text, conn->backoff_ms);
    s_connection_back_off(conn);
}

static void s_on_error(s_connection_t *conn, const Nsq__Error *error)
{
    if (!error->fatal && error->seq == conn->identify_seq && !conn->identified) {
        s_on_identify_refused(conn, error);
        return;
    }
    if (!error->fatal) {
        nsq_debug("consumer %s: broker error %s (%s)", conn->address, error->code, error->text);
        return;
    }
    nsq_warn("consumer %s: broker dropped us: %s (%s), reconnecting in %u ms", conn->address,
             error->code, error->text, conn->backoff_ms);
    s_connection_back_off(conn);
}

// True while the connection being read still holds the socket it had.
static bool s_reading(nsq_consumer_t *self, s_connection_t *conn, uint64_t generation)
{
    return self->reading == conn && conn->generation == generation;
}

// Hands each message of batch to the handler. Stops if the handler drops
// the connection (the broker requeues the rest).
static void s_deliver(s_connection_t *conn, const Nsq__Messages *batch)
{
    nsq_consumer_t *self = conn->consumer;
    uint64_t generation = conn->generation;
    for (size_t i = 0; i < batch->n_messages && s_reading(self, conn, generation); i++) {
        nsq_msg_t *msg = s_msg_new(conn, batch->messages[i]);
        if (!msg) {
            nsq_error("consumer %s: out of memory for a message", conn->address);
            continue;
        }
        s_msg_link(self, msg);
        self->received++;
        if (self->handler)
            self->handler(self, msg, self->handler_arg);
    }
    if (self->polling && batch->n_messages)
        self->break_requested = true;
}

static void s_dispatch(s_connection_t *conn, const Nsq__Frame *frame)
{
    switch (frame->frame_case) {
    case NSQ__FRAME__FRAME_MESSAGES:
        s_deliver(conn, frame->messages);
        break;
    case NSQ__FRAME__FRAME_RESPONSE:
        s_on_response(conn, frame->response);
        break;
    case NSQ__FRAME__FRAME_ERROR:
        s_on_error(conn, frame->error);
        break;
    case NSQ__FRAME__FRAME_HEARTBEAT:
        s_send_heartbeat(conn);
        break;
    default:
        break;
    }
}

// Reads up to S_DRAIN_MAX frames from one connection, then flushes settles.
static int s_reader(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    nsq_consumer_t *self = arg;
    s_connection_t *conn = NULL;
    for (size_t i = 0; i < self->connection_count && !conn; i++)
        if (self->connections[i]->sock == sock)
            conn = self->connections[i];
    if (!conn)
        return 0;  // a socket closed earlier in this zloop pass
    self->reading = conn;
    uint64_t generation = conn->generation;
    for (int i = 0; i < S_DRAIN_MAX && s_reading(self, conn, generation); i++) {
        if (self->break_requested)
            break;
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, zsock_resolve(sock), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            break;
        }
        conn->last_recv = zclock_mono();
        Nsq__Frame *decoded =
            nsq__frame__unpack(&self->arena.allocator, zmq_msg_size(&frame), zmq_msg_data(&frame));
        zmq_msg_close(&frame);
        if (decoded)
            s_dispatch(conn, decoded);
        else
            nsq_warn("consumer %s: dropped a frame that does not unpack", conn->address);
        s_arena_reset(&self->arena);
    }
    self->reading = NULL;
    s_flush_all(self);
    return self->break_requested ? -1 : 0;
}

// ---- loop ------------------------------------------------------------------

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    nsq_consumer_t *self = arg;
    int64_t now = zclock_mono();
    for (size_t i = 0; i < self->connection_count; i++)
        s_connection_check(self->connections[i], now);
    s_credit_rotate(self, now);
    s_flush_all(self);
    s_check_drained(self);
    return 0;
}

static int s_flush_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    nsq_consumer_t *self = arg;
    self->flush_timer = 0;
    s_flush_all(self);
    return 0;
}

static int s_break_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    nsq_consumer_t *self = arg;
    self->break_requested = true;
    return -1;
}

// Settles made outside a read are flushed at the start of the next pass.
static void s_schedule_flush(nsq_consumer_t *self)
{
    if (!self->reading && !self->flush_timer)
        self->flush_timer = zloop_timer(self->loop, 0, 1, s_flush_timer, self);
    if (self->flush_timer < 0)
        self->flush_timer = 0;
}

// Makes the running loop return after the current event.
static void s_request_break(nsq_consumer_t *self)
{
    self->break_requested = true;
    if (!self->reading && !self->break_timer)
        self->break_timer = zloop_timer(self->loop, 0, 1, s_break_timer, self);
    if (self->break_timer < 0)
        self->break_timer = 0;
}

static void s_loop_enter(nsq_consumer_t *self)
{
    if (self->break_timer)
        zloop_timer_end(self->loop, self->break_timer);
    self->break_timer = 0;
    self->break_requested = false;
}

static void s_loop_leave(nsq_consumer_t *self)
{
    s_loop_enter(self);
    s_flush_all(self);
}

// Runs the loop until a break, zsys_interrupted (unless nonstop), or
// timeout_ms (< 0: no timeout).
static void s_run(nsq_consumer_t *self, int64_t timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    s_loop_enter(self);
    while (!self->break_requested) {
        int64_t left = deadline - zclock_mono();
        if (left < 0 || (zsys_interrupted && !self->draining))
            break;
        int timer = 0;
        if (deadline != INT64_MAX)
            timer = zloop_timer(self->loop, (size_t) left, 1, s_break_timer, self);
        int rc = zloop_start(self->loop);
        if (timer > 0)
            zloop_timer_end(self->loop, timer);
        if (rc == -1)
            break;  // a handler, ours or the caller's, ended the loop
    }
    s_loop_leave(self);
}

// zloop_timer_end defers removal until a zloop has stopped once; stop it
// once now so that later calls remove timers at once.
static void s_loop_prime(zloop_t *loop, void *arg)
{
    int timer = zloop_timer(loop, 0, 1, s_break_timer, arg);
    zloop_start(loop);
    zloop_timer_end(loop, timer);
}

// ---- consumer ----------------------------------------------------------------

nsq_consumer_t *nsq_consumer_new(const char *topic, const char *channel)
{
    if (!nsq_name_is_valid(topic) || !nsq_name_is_valid(channel)) {
        errno = EINVAL;
        return NULL;
    }
    nsq_consumer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->topic = strdup(topic);
    self->channel = strdup(channel);
    self->loop = zloop_new();
    self->addresses = zlistx_new();
    if (!self->topic || !self->channel || !self->loop || !self->addresses
        || zloop_timer(self->loop, S_TICK_MS, 0, s_tick, self) < 0) {
        nsq_consumer_destroy(&self);
        return NULL;
    }
    zlistx_set_destructor(self->addresses, (zlistx_destructor_fn *) zstr_free);
    s_loop_prime(self->loop, self);
    self->break_requested = false;
    self->max_in_flight = 1;
    self->arena.allocator.alloc = s_arena_alloc;
    self->arena.allocator.free = s_arena_free;
    self->arena.allocator.allocator_data = &self->arena;
    if (gethostname(self->hostname, sizeof self->hostname - 1))
        strcpy(self->hostname, "localhost");
    return self;
}

void nsq_consumer_destroy(nsq_consumer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_consumer_t *self = *self_p;
    s_flush_all(self);
    for (size_t i = 0; i < self->connection_count; i++)
        s_connection_destroy(&self->connections[i]);
    while (self->unsettled)
        s_msg_free(self, self->unsettled);
    free(self->connections);
    if (self->discovery)
        zloop_reader_end(self->loop, nsq_discovery_sock(self->discovery));
    nsq_discovery_destroy(&self->discovery);
    zlistx_destroy(&self->discovered);
    zloop_destroy(&self->loop);
    zlistx_destroy(&self->addresses);
    s_arena_reset(&self->arena);
    free(self->arena.chunks);
    free(self->topic);
    free(self->channel);
    free(self->client_id);
    free(self);
    *self_p = NULL;
}

void nsq_consumer_set_handler(nsq_consumer_t *self, nsq_handler_fn *handler, void *arg)
{
    self->handler = handler;
    self->handler_arg = arg;
}

void nsq_consumer_set_max_in_flight(nsq_consumer_t *self, uint32_t max_in_flight)
{
    self->max_in_flight = max_in_flight;
    self->rotate_at = zclock_mono() + S_ROTATE_MS;  // the first slots get a full turn
    s_credit_update(self);
}

void nsq_consumer_set_heartbeat_interval(nsq_consumer_t *self, uint32_t milliseconds)
{
    self->heartbeat_ms = milliseconds;
}

void nsq_consumer_set_msg_timeout(nsq_consumer_t *self, uint32_t milliseconds)
{
    self->msg_timeout_ms = milliseconds;
}

void nsq_consumer_set_client_id(nsq_consumer_t *self, const char *client_id)
{
    free(self->client_id);
    self->client_id = client_id ? strdup(client_id) : NULL;
}

static int s_connections_grow(nsq_consumer_t *self)
{
    if (self->connection_count < self->connection_capacity)
        return 0;
    size_t capacity = self->connection_capacity ? self->connection_capacity * 2 : 4;
    s_connection_t **grown = realloc(self->connections, capacity * sizeof *grown);
    if (!grown)
        return -1;
    self->connections = grown;
    self->connection_capacity = capacity;
    return 0;
}

int nsq_consumer_connect(nsq_consumer_t *self, const char *address)
{
    char endpoint[NSQ_CLIENT_ENDPOINT_MAX];
    if (nsq_client_endpoint(address, endpoint, sizeof endpoint))
        return -1;
    if (s_connection_find(self, endpoint, NULL)) {
        errno = EEXIST;
        return -1;
    }
    const char *interned = s_intern(self, endpoint);
    s_connection_t *conn = interned ? s_connection_new(self, interned) : NULL;
    if (!conn || s_connections_grow(self)) {
        free(conn);
        errno = ENOMEM;
        return -1;
    }
    self->connections[self->connection_count++] = conn;
    self->rotate_at = zclock_mono() + S_ROTATE_MS;
    s_connection_open(conn);
    s_credit_update(self);
    return 0;
}

int nsq_consumer_disconnect(nsq_consumer_t *self, const char *address)
{
    char endpoint[NSQ_CLIENT_ENDPOINT_MAX];
    size_t index = 0;
    if (nsq_client_endpoint(address, endpoint, sizeof endpoint)
        || !s_connection_find(self, endpoint, &index))
        return -1;
    s_connection_t *conn = self->connections[index];
    s_connection_flush(conn);
    s_connection_destroy(&conn);
    memmove(&self->connections[index], &self->connections[index + 1],
            (self->connection_count - index - 1) * sizeof conn);
    self->connection_count--;
    s_credit_update(self);
    return 0;
}

// ---- discovery ----------------------------------------------------------------

static bool s_listed(zlistx_t *list, const char *text)
{
    for (const char *item = zlistx_first(list); item; item = zlistx_next(list))
        if (streq(item, text))
            return true;
    return false;
}

// Applies one discovery result: connects to new brokers, drops those no
// lookupd lists any more (brokers connected by hand are left alone).
static void s_apply_discovery(nsq_consumer_t *self, zlistx_t *brokers)
{
    for (const char *broker = zlistx_first(brokers); broker; broker = zlistx_next(brokers)) {
        if (s_listed(self->discovered, broker) || nsq_consumer_connect(self, broker) != 0)
            continue;
        nsq_info("consumer %s/%s: broker %s found through lookupd", self->topic, self->channel,
                 broker);
        zlistx_add_end(self->discovered, strdup(broker));
    }
    zlistx_t *vanished = zlistx_new();
    for (const char *broker = zlistx_first(self->discovered); vanished && broker;
         broker = zlistx_next(self->discovered))
        if (!s_listed(brokers, broker))
            zlistx_add_end(vanished, (void *) broker);
    for (const char *broker = vanished ? zlistx_first(vanished) : NULL; broker;
         broker = zlistx_next(vanished)) {
        nsq_info("consumer %s/%s: broker %s no longer listed by any lookupd, dropping it",
                 self->topic, self->channel, broker);
        nsq_consumer_disconnect(self, broker);
        zlistx_delete(self->discovered, zlistx_find(self->discovered, (void *) broker));
    }
    zlistx_destroy(&vanished);
}

static int s_on_discovery(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    nsq_consumer_t *self = arg;
    zlistx_t *brokers = nsq_discovery_recv(self->discovery);
    self->lookupd_answered |= brokers != NULL;  // only answered rounds are reported
    if (brokers && !self->closing)
        s_apply_discovery(self, brokers);
    zlistx_destroy(&brokers);
    return 0;
}

int nsq_consumer_connect_lookupd(nsq_consumer_t *self, const char *http_address)
{
    if (!self->discovery) {
        self->discovered = zlistx_new();
        self->discovery = self->discovered ? nsq_discovery_new(self->topic) : NULL;
        if (!self->discovery) {
            zlistx_destroy(&self->discovered);
            errno = ENOMEM;
            return -1;
        }
        zlistx_set_destructor(self->discovered, (zlistx_destructor_fn *) zstr_free);
        zlistx_set_comparator(self->discovered, (zlistx_comparator_fn *) strcmp);
        if (self->lookupd_poll_ms)
            nsq_discovery_set_interval(self->discovery, self->lookupd_poll_ms);
        zloop_reader(self->loop, nsq_discovery_sock(self->discovery), s_on_discovery, self);
    }
    return nsq_discovery_add(self->discovery, http_address);
}

void nsq_consumer_set_lookupd_poll_interval(nsq_consumer_t *self, uint32_t milliseconds)
{
    self->lookupd_poll_ms = milliseconds;
    if (self->discovery)
        nsq_discovery_set_interval(self->discovery, milliseconds);
}

bool nsq_consumer_lookupd_answered(nsq_consumer_t *self)
{
    return self->lookupd_answered;
}

size_t nsq_consumer_connection_count(nsq_consumer_t *self)
{
    return self->connection_count;
}

size_t nsq_consumer_connected_count(nsq_consumer_t *self)
{
    size_t count = 0;
    for (size_t i = 0; i < self->connection_count; i++)
        if (self->connections[i]->sock && self->connections[i]->identified)
            count++;
    return count;
}

// FIN (requeue false) or REQ msg: queues its id on its connection and frees it.
static int s_settle(nsq_consumer_t *self, nsq_msg_t *msg, bool requeue, uint32_t delay_ms)
{
    s_connection_t *conn = msg->connection;
    uint64_t id = msg->id;
    s_msg_free(self, msg);
    s_check_drained(self);
    if (!conn)
        return -1;
    s_batch_t *batch = requeue ? &conn->reqs : &conn->fins;
    if (requeue && batch->count && batch->delay_ms != delay_ms)
        s_connection_flush(conn);
    batch->delay_ms = delay_ms;
    batch->ids[batch->count++] = id;
    if (batch->count == S_BATCH_MAX)
        s_connection_flush(conn);
    else
        s_schedule_flush(self);
    if (requeue)
        self->requeued++;
    else
        self->finished++;
    return 0;
}

int nsq_consumer_fin(nsq_consumer_t *self, nsq_msg_t *msg)
{
    return s_settle(self, msg, false, 0);
}

int nsq_consumer_req(nsq_consumer_t *self, nsq_msg_t *msg, uint32_t delay_ms)
{
    return s_settle(self, msg, true, delay_ms);
}

int nsq_consumer_touch(nsq_consumer_t *self, nsq_msg_t *msg)
{
    (void) self;
    if (!msg->connection)
        return -1;
    s_send_touch(msg->connection, msg->id);
    return 0;
}

size_t nsq_consumer_in_flight(nsq_consumer_t *self)
{
    return self->in_flight;
}

zloop_t *nsq_consumer_loop(nsq_consumer_t *self)
{
    return self->loop;
}

int nsq_consumer_run(nsq_consumer_t *self)
{
    s_run(self, -1);
    return 0;
}

int nsq_consumer_poll(nsq_consumer_t *self, int timeout_ms)
{
    self->polling = true;
    s_run(self, timeout_ms);
    self->polling = false;
    return 0;
}

void nsq_consumer_stop(nsq_consumer_t *self)
{
    s_request_break(self);
}

// True once nothing handed out is unsettled and no broker will send more:
// each connection answered CLS, or has no socket or no subscription yet.
static bool s_drained(nsq_consumer_t *self)
{
    if (self->in_flight)
        return false;
    for (size_t i = 0; i < self->connection_count; i++) {
        s_connection_t *conn = self->connections[i];
        if (conn->sock && conn->identified && !conn->close_waited)
            return false;
    }
    return true;
}

// During nsq_consumer_close, leaves the loop once drained.
static void s_check_drained(nsq_consumer_t *self)
{
    if (self->draining && !self->break_requested && s_drained(self))
        s_request_break(self);
}

int nsq_consumer_close(nsq_consumer_t *self, int timeout_ms)
{
    if (!self->closing) {
        self->closing = true;
        s_credit_update(self);
        for (size_t i = 0; i < self->connection_count; i++)
            s_send_cls(self->connections[i]);
    }
    s_flush_all(self);
    if (!s_drained(self)) {
        self->draining = true;
        zloop_set_nonstop(self->loop, true);
        s_run(self, timeout_ms < 0 ? 0 : timeout_ms);
        zloop_set_nonstop(self->loop, false);
        self->draining = false;
    }
    return self->in_flight ? -1 : 0;
}

uint64_t nsq_consumer_received(nsq_consumer_t *self)
{
    return self->received;
}

uint64_t nsq_consumer_finished(nsq_consumer_t *self)
{
    return self->finished;
}

uint64_t nsq_consumer_requeued(nsq_consumer_t *self)
{
    return self->requeued;
}

// ---- self-test -------------------------------------------------------------
// A fake broker (ROUTER on tcp://127.0.0.1:*) in the test's own thread: the
// test polls the consumer between reads, so no second thread is needed.

typedef struct {
    zsock_t *router;    // the fake broker's socket
    char endpoint[64];  // where it listens
    zframe_t *peer;     // identity of the last command's sender
} s_fake_t;

static s_fake_t *s_fake_new(void)
{
    s_fake_t *fake = calloc(1, sizeof *fake);
    fake->router = zsock_new(ZMQ_ROUTER);
    int port = zsock_bind(fake->router, "tcp://127.0.0.1:*");
    snprintf(fake->endpoint, sizeof fake->endpoint, "127.0.0.1:%d", port);
    return fake;
}

static void s_fake_destroy(s_fake_t **fake_p)
{
    zframe_destroy(&(*fake_p)->peer);
    zsock_destroy(&(*fake_p)->router);
    free(*fake_p);
    *fake_p = NULL;
}

// Polls consumer while waiting up to timeout_ms for the next command (skipping
// Heartbeats unless heartbeats is set). NULL on timeout. Caller frees.
static Nsq__Command *s_fake_next(s_fake_t *fake, nsq_consumer_t *consumer, int timeout_ms,
                                 bool heartbeats)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    while (zclock_mono() < deadline) {
        zmsg_t *msg = zmsg_recv_nowait(fake->router);
        if (!msg) {
            nsq_consumer_poll(consumer, 10);
            continue;
        }
        zframe_destroy(&fake->peer);
        fake->peer = zmsg_pop(msg);
        zframe_t *body = zmsg_pop(msg);
        Nsq__Command *command = nsq_wire_command_unpack(zframe_data(body), zframe_size(body));
        zframe_destroy(&body);
        zmsg_destroy(&msg);
        if (command && (heartbeats || command->cmd_case != NSQ__COMMAND__CMD_HEARTBEAT))
            return command;
        nsq__command__free_unpacked(command, NULL);
    }
    return NULL;
}

// Returns the next command if it is of kind cmd_case, else NULL. Caller frees.
static Nsq__Command *s_fake_expect(s_fake_t *fake, nsq_consumer_t *consumer, int cmd_case)
{
    Nsq__Command *command =
        s_fake_next(fake, consumer, 3000, cmd_case == NSQ__COMMAND__CMD_HEARTBEAT);
    if (command && (int) command->cmd_case != cmd_case) {
        nsq_error("fake broker: expected command %d, got %d", cmd_case, command->cmd_case);
        nsq__command__free_unpacked(command, NULL);
        return NULL;
    }
    return command;
}

static void s_fake_send(s_fake_t *fake, Nsq__Frame *frame)
{
    nsq_wire_send_frame(zsock_resolve(fake->router), zframe_data(fake->peer),
                        zframe_size(fake->peer), frame, 0);
}

static void s_fake_respond(s_fake_t *fake, uint64_t seq, const char *text)
{
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = seq;
    response.text = (char *) text;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    s_fake_send(fake, &frame);
}

static void s_fake_error(s_fake_t *fake, uint64_t seq, const char *code, bool fatal)
{
    Nsq__Error error = NSQ__ERROR__INIT;
    error.seq = seq;
    error.code = (char *) code;
    error.fatal = fatal;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_ERROR;
    frame.error = &error;
    s_fake_send(fake, &frame);
}

static void s_fake_heartbeat(s_fake_t *fake)
{
    Nsq__Heartbeat heartbeat = NSQ__HEARTBEAT__INIT;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    s_fake_send(fake, &frame);
}

// Sends count messages with ids first_id.. and bodies "message <id>".
static void s_fake_deliver(s_fake_t *fake, uint64_t first_id, size_t count)
{
    Nsq__Message messages[S_BATCH_MAX];
    Nsq__Message *pointers[S_BATCH_MAX];
    char bodies[S_BATCH_MAX][32];
    for (size_t i = 0; i < count && i < S_BATCH_MAX; i++) {
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
    s_fake_send(fake, &frame);
}

// Answers IDENTIFY and SUB; returns the RDY count then announced, or -1.
static int64_t s_fake_handshake(s_fake_t *fake, nsq_consumer_t *consumer, int heartbeat_ms)
{
    Nsq__Command *identify = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_IDENTIFY);
    if (!identify || strncmp(identify->identify->user_agent, "libnsq/", 7)
        || !*identify->identify->hostname) {
        nsq__command__free_unpacked(identify, NULL);
        return -1;
    }
    char json[128];
    snprintf(json, sizeof json, "{\"max_rdy_count\": 2500, \"heartbeat_interval\": %d}",
             heartbeat_ms);
    s_fake_respond(fake, identify->seq, json);
    nsq__command__free_unpacked(identify, NULL);
    Nsq__Command *sub = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_SUB);
    if (!sub || !nsq_wire_bytes_equal(sub->sub->topic, "orders")
        || !nsq_wire_bytes_equal(sub->sub->channel, "billing")) {
        nsq__command__free_unpacked(sub, NULL);
        return -1;
    }
    s_fake_respond(fake, sub->seq, "OK");
    nsq__command__free_unpacked(sub, NULL);
    Nsq__Command *rdy = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_RDY);
    int64_t count = rdy ? (int64_t) rdy->rdy->count : -1;
    nsq__command__free_unpacked(rdy, NULL);
    return count;
}

// The next RDY count, or -1.
static int64_t s_fake_rdy(s_fake_t *fake, nsq_consumer_t *consumer)
{
    Nsq__Command *rdy = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_RDY);
    int64_t count = rdy ? (int64_t) rdy->rdy->count : -1;
    nsq__command__free_unpacked(rdy, NULL);
    return count;
}

typedef struct {
    bool keep;            // keep messages instead of FINning them
    nsq_msg_t *kept[16];  // messages kept for later
    size_t kept_count;
    size_t seen;     // messages handed to the handler
    bool bodies_ok;  // every body read "message <id>"
    bool stop;       // call nsq_consumer_stop from the handler
} s_test_state_t;

static void s_test_handler(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_test_state_t *state = arg;
    uint64_t id = 0;
    char expected[32];
    nsq_message_id_parse(nsq_msg_id(msg), &id);
    snprintf(expected, sizeof expected, "message %llu", (unsigned long long) id);
    if (nsq_msg_size(msg) != strlen(expected) || strcmp(nsq_msg_body(msg), expected)
        || nsq_msg_attempts(msg) != 1 || nsq_msg_timestamp(msg) < 1000
        || strncmp(nsq_msg_broker(msg), "tcp://127.0.0.1:", 16) || nsq_msg_timeout_ms(msg) == 0)
        state->bodies_ok = false;
    state->seen++;
    if (state->keep && state->kept_count < 16)
        state->kept[state->kept_count++] = msg;
    else
        nsq_consumer_fin(consumer, msg);
    if (state->stop)
        nsq_consumer_stop(consumer);
}

// Expects a FIN (or REQ) frame holding exactly count ids, the first first_id.
static int s_expect_settle(s_fake_t *fake, nsq_consumer_t *consumer, int cmd_case, size_t count,
                           uint64_t first_id)
{
    Nsq__Command *command = s_fake_expect(fake, consumer, cmd_case);
    if (!command)
        return -1;
    size_t n = cmd_case == NSQ__COMMAND__CMD_FIN   ? command->fin->n_ids
               : cmd_case == NSQ__COMMAND__CMD_REQ ? command->req->n_ids
                                                   : command->touch->n_ids;
    uint64_t *ids = cmd_case == NSQ__COMMAND__CMD_FIN   ? command->fin->ids
                    : cmd_case == NSQ__COMMAND__CMD_REQ ? command->req->ids
                                                        : command->touch->ids;
    int rc = n == count && ids[0] == first_id ? 0 : -1;
    if (rc)
        nsq_error("fake broker: %zu ids (first %llu), expected %zu (first %llu)", n,
                  (unsigned long long) (n ? ids[0] : 0), count, (unsigned long long) first_id);
    nsq__command__free_unpacked(command, NULL);
    return rc;
}

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            nsq_error("nsq_consumer_test: %s:%d: %s", __FILE__, __LINE__, #condition);             \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int s_test_names_and_endpoints(void)
{
    char endpoint[NSQ_CLIENT_ENDPOINT_MAX];
    S_CHECK(nsq_client_endpoint("localhost:4152", endpoint, sizeof endpoint) == 0);
    S_CHECK(streq(endpoint, "tcp://localhost:4152"));
    S_CHECK(nsq_client_endpoint("tcp://10.0.0.1:1", endpoint, sizeof endpoint) == 0);
    S_CHECK(streq(endpoint, "tcp://10.0.0.1:1"));
    const char *bad[] = {"",         "host",    ":4152",   "host:",  "host:0", "host:65536",
                         "host:12x", "ho st:1", "host:-1", "tcp://", NULL};
    for (int i = 0; bad[i]; i++)
        S_CHECK(nsq_client_endpoint(bad[i], endpoint, sizeof endpoint) == -1);
    S_CHECK(nsq_consumer_new("bad topic", "billing") == NULL);
    S_CHECK(nsq_consumer_new("orders", "") == NULL);
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing#ephemeral");
    S_CHECK(consumer);
    S_CHECK(nsq_consumer_connect(consumer, "nonsense") == -1);
    S_CHECK(nsq_consumer_disconnect(consumer, "127.0.0.1:9") == -1);
    S_CHECK(nsq_consumer_connection_count(consumer) == 0);
    S_CHECK(strlen(nsq_library_version()) > 0);
    nsq_consumer_destroy(&consumer);
    nsq_consumer_destroy(&consumer);
    S_CHECK(consumer == NULL);
    return 0;
}

// Polls until the handler has seen count messages (or 3 s pass).
static void s_poll_until_seen(nsq_consumer_t *consumer, s_test_state_t *state, size_t count)
{
    int64_t deadline = zclock_mono() + 3000;
    while (state->seen < count && zclock_mono() < deadline)
        nsq_consumer_poll(consumer, 50);
}

// One broker: RDY = max_in_flight, a batch of 5 is FINned in one frame.
static int s_test_single(nsq_consumer_t *consumer, s_fake_t *fake, s_test_state_t *state)
{
    S_CHECK(nsq_consumer_connect(consumer, fake->endpoint) == 0);
    S_CHECK(nsq_consumer_connect(consumer, fake->endpoint) == -1);
    S_CHECK(nsq_consumer_connection_count(consumer) == 1);
    S_CHECK(nsq_consumer_connected_count(consumer) == 0);  // IDENTIFY not answered yet
    S_CHECK(s_fake_handshake(fake, consumer, 60000) == 10);
    S_CHECK(nsq_consumer_connected_count(consumer) == 1);
    s_fake_deliver(fake, 1, 5);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 5, 1) == 0);
    S_CHECK(state->seen == 5 && state->bodies_ok);
    S_CHECK(nsq_consumer_received(consumer) == 5 && nsq_consumer_finished(consumer) == 5);
    S_CHECK(nsq_consumer_in_flight(consumer) == 0);
    s_fake_heartbeat(fake);
    Nsq__Command *answer = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_HEARTBEAT);
    S_CHECK(answer);
    nsq__command__free_unpacked(answer, NULL);
    return 0;
}

// Two brokers share the credit; scarce credit goes to one at a time.
static int s_test_credit(nsq_consumer_t *consumer, s_fake_t *first, s_fake_t *second)
{
    S_CHECK(nsq_consumer_connect(consumer, second->endpoint) == 0);
    S_CHECK(s_fake_rdy(first, consumer) == 5);
    S_CHECK(s_fake_handshake(second, consumer, 60000) == 5);
    nsq_consumer_set_max_in_flight(consumer, 1);
    S_CHECK(s_fake_rdy(first, consumer) == 1);
    S_CHECK(s_fake_rdy(second, consumer) == 0);
    nsq_consumer_set_max_in_flight(consumer, 10);
    S_CHECK(s_fake_rdy(first, consumer) == 5);
    S_CHECK(s_fake_rdy(second, consumer) == 5);
    return 0;
}

// Messages settled outside the handler, REQ batches, TOUCH.
static int s_test_async_settle(nsq_consumer_t *consumer, s_fake_t *fake, s_test_state_t *state)
{
    state->keep = true;
    state->seen = state->kept_count = 0;
    s_fake_deliver(fake, 100, 5);
    s_poll_until_seen(consumer, state, 5);
    S_CHECK(state->kept_count == 5 && nsq_consumer_in_flight(consumer) == 5);
    S_CHECK(streq(nsq_msg_id(state->kept[0]), "0000000000000064"));
    S_CHECK(nsq_consumer_fin(consumer, state->kept[0]) == 0);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[1]) == 0);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 2, 100) == 0);
    S_CHECK(nsq_consumer_req(consumer, state->kept[2], 250) == 0);
    S_CHECK(nsq_consumer_req(consumer, state->kept[3], 250) == 0);
    Nsq__Command *req = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_REQ);
    S_CHECK(req && req->req->n_ids == 2 && req->req->ids[1] == 103 && req->req->delay_ms == 250);
    nsq__command__free_unpacked(req, NULL);
    S_CHECK(nsq_consumer_touch(consumer, state->kept[4]) == 0);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_TOUCH, 1, 104) == 0);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[4]) == 0);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 1, 104) == 0);
    S_CHECK(nsq_consumer_requeued(consumer) == 2 && nsq_consumer_in_flight(consumer) == 0);
    state->kept_count = 0;
    return 0;
}

// A fatal error drops the connection: its messages become orphans, and the
// consumer comes back with a new socket after the backoff.
static int s_test_fatal(nsq_consumer_t *consumer, s_fake_t *fake, s_test_state_t *state)
{
    state->seen = 0;
    s_fake_deliver(fake, 200, 1);
    s_poll_until_seen(consumer, state, 1);
    S_CHECK(state->kept_count == 1);
    zframe_t *old_peer = zframe_dup(fake->peer);
    s_fake_error(fake, 0, "E_INVALID", true);
    int64_t deadline = zclock_mono() + 500;
    while (zclock_mono() < deadline)
        nsq_consumer_poll(consumer, 50);
    S_CHECK(nsq_consumer_in_flight(consumer) == 1);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[0]) == -1);
    S_CHECK(nsq_consumer_in_flight(consumer) == 0);
    state->kept_count = 0;
    S_CHECK(s_fake_handshake(fake, consumer, 60000) == 5);
    bool new_identity = !zframe_eq(old_peer, fake->peer);
    zframe_destroy(&old_peer);
    S_CHECK(new_identity);
    return 0;
}

// Graceful close: RDY 0 and CLS, then waits for the kept message.
static int s_test_close(nsq_consumer_t *consumer, s_fake_t *fake, s_test_state_t *state)
{
    state->keep = true;
    state->seen = 0;
    s_fake_deliver(fake, 300, 1);
    s_poll_until_seen(consumer, state, 1);
    S_CHECK(state->kept_count == 1);
    S_CHECK(nsq_consumer_close(consumer, 100) == -1);
    S_CHECK(s_fake_rdy(fake, consumer) == 0);
    Nsq__Command *cls = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_CLS);
    S_CHECK(cls);
    s_fake_respond(fake, cls->seq, "CLOSE_WAIT");
    nsq__command__free_unpacked(cls, NULL);
    S_CHECK(nsq_consumer_fin(consumer, state->kept[0]) == 0);
    state->kept_count = 0;
    int64_t start = zclock_mono();
    S_CHECK(nsq_consumer_close(consumer, 2000) == 0);
    S_CHECK(zclock_mono() - start < 1500);  // returned on CLOSE_WAIT, not the timeout
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 1, 300) == 0);
    return 0;
}

static int s_test_timer_fail(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    *(bool *) arg = true;
    return -1;
}

// nsq_consumer_run returns when the handler calls nsq_consumer_stop.
static int s_test_run(nsq_consumer_t *consumer, s_fake_t *fake, s_test_state_t *state)
{
    state->keep = false;
    state->stop = true;
    state->seen = 0;
    bool timed_out = false;
    int timer = zloop_timer(nsq_consumer_loop(consumer), 3000, 1, s_test_timer_fail, &timed_out);
    s_fake_deliver(fake, 400, 2);
    nsq_consumer_run(consumer);
    zloop_timer_end(nsq_consumer_loop(consumer), timer);
    state->stop = false;
    S_CHECK(!timed_out && state->seen == 2);
    S_CHECK(s_expect_settle(fake, consumer, NSQ__COMMAND__CMD_FIN, 2, 400) == 0);
    return 0;
}

// A silent broker is given up on after two intervals plus a second; the
// consumer sends its own heartbeats meanwhile.
static int s_test_liveness(void)
{
    s_fake_t *fake = s_fake_new();
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing");
    S_CHECK(consumer && nsq_consumer_connect(consumer, fake->endpoint) == 0);
    S_CHECK(s_fake_handshake(fake, consumer, 200) == 1);
    Nsq__Command *heartbeat = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_HEARTBEAT);
    S_CHECK(heartbeat);
    nsq__command__free_unpacked(heartbeat, NULL);
    int64_t start = zclock_mono();
    S_CHECK(s_fake_handshake(fake, consumer, 60000) == 1);
    S_CHECK(zclock_mono() - start >= 1000);
    nsq_consumer_destroy(&consumer);
    s_fake_destroy(&fake);
    return 0;
}

// Expects IDENTIFY asking for msg_timeout asked, then the SUB sent with it.
// Returns the IDENTIFY's seq, or 0.
static uint64_t s_fake_identify_sub(s_fake_t *fake, nsq_consumer_t *consumer, uint32_t asked)
{
    Nsq__Command *identify = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_IDENTIFY);
    uint64_t seq = identify && identify->identify->msg_timeout_ms == asked ? identify->seq : 0;
    if (identify && !seq)
        nsq_error("fake broker: msg_timeout %u asked, expected %u",
                  identify->identify->msg_timeout_ms, asked);
    nsq__command__free_unpacked(identify, NULL);
    Nsq__Command *sub = s_fake_expect(fake, consumer, NSQ__COMMAND__CMD_SUB);
    nsq__command__free_unpacked(sub, NULL);
    return sub ? seq : 0;
}

// A msg_timeout above the broker's maximum is clamped: the broker refuses
// it, the consumer asks for the default (and learns the maximum), then for
// the maximum. Each message carries its connection's msg_timeout.
static int s_test_msg_timeout(void)
{
    s_fake_t *fake = s_fake_new();
    s_test_state_t state = {.bodies_ok = true, .keep = true};
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing");
    S_CHECK(consumer);
    nsq_consumer_set_handler(consumer, s_test_handler, &state);
    nsq_consumer_set_msg_timeout(consumer, 5000);
    S_CHECK(nsq_consumer_connect(consumer, fake->endpoint) == 0);
    uint64_t seq = s_fake_identify_sub(fake, consumer, 5000);
    S_CHECK(seq);
    s_fake_error(fake, seq, "E_BAD_BODY", false);
    seq = s_fake_identify_sub(fake, consumer, 0);
    S_CHECK(seq);
    s_fake_respond(fake, seq,
                   "{\"max_rdy_count\":2500,\"msg_timeout\":1000,\"max_msg_timeout\":2000}");
    seq = s_fake_identify_sub(fake, consumer, 2000);
    S_CHECK(seq);
    s_fake_respond(fake, seq, "{\"msg_timeout\":2000,\"max_msg_timeout\":2000,\"x\":[1,{}]}");
    S_CHECK(s_fake_rdy(fake, consumer) == 1);
    S_CHECK(nsq_consumer_connected_count(consumer) == 1);
    s_fake_deliver(fake, 1, 1);
    s_poll_until_seen(consumer, &state, 1);
    S_CHECK(state.kept_count == 1 && state.bodies_ok);
    S_CHECK(nsq_msg_timeout_ms(state.kept[0]) == 2000);
    nsq_consumer_destroy(&consumer);
    s_fake_destroy(&fake);
    return 0;
}

static int s_test_scenario(void)
{
    s_fake_t *first = s_fake_new();
    s_fake_t *second = s_fake_new();
    s_test_state_t state = {.bodies_ok = true};
    nsq_consumer_t *consumer = nsq_consumer_new("orders", "billing");
    S_CHECK(consumer);
    nsq_consumer_set_handler(consumer, s_test_handler, &state);
    nsq_consumer_set_max_in_flight(consumer, 10);
    nsq_consumer_set_client_id(consumer, "test-client");
    int rc = s_test_single(consumer, first, &state);
    if (rc == 0)
        rc = s_test_credit(consumer, first, second);
    if (rc == 0)
        rc = s_test_async_settle(consumer, first, &state);
    if (rc == 0)
        rc = s_test_fatal(consumer, second, &state);
    if (rc == 0 && nsq_consumer_disconnect(consumer, second->endpoint) == 0)
        rc = s_fake_rdy(first, consumer) == 10 ? 0 : -1;
    if (rc == 0)
        rc = s_test_run(consumer, first, &state);
    if (rc == 0)
        rc = s_test_close(consumer, first, &state);
    nsq_consumer_destroy(&consumer);
    s_fake_destroy(&first);
    s_fake_destroy(&second);
    return rc;
}

// The split of credit across connections, without sockets.
static int s_test_shares(void)
{
    nsq_consumer_t self = {.connection_count = 3, .max_in_flight = 10};
    S_CHECK(s_credit_share(&self, 0) == 4 && s_credit_share(&self, 1) == 3
            && s_credit_share(&self, 2) == 3);
    self.max_in_flight = 2;  // scarce: RDY 1 on two connections, rotating
    S_CHECK(s_credit_share(&self, 0) == 1 && s_credit_share(&self, 1) == 1
            && s_credit_share(&self, 2) == 0);
    self.rotation = 2;
    S_CHECK(s_credit_share(&self, 0) == 1 && s_credit_share(&self, 1) == 0
            && s_credit_share(&self, 2) == 1);
    self.closing = true;
    S_CHECK(s_credit_share(&self, 0) == 0);
    return 0;
}

int nsq_consumer_test(void)
{
    if (s_test_shares() || s_test_names_and_endpoints() || s_test_scenario() || s_test_liveness()
        || s_test_msg_timeout())
        return -1;
    return 0;
}
