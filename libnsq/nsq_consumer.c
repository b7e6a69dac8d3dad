/*  nsq_consumer - subscribe to (topic, channel) on brokers, hand out messages
    SPDX-License-Identifier: MIT

    The consumer owns the set: its connections (nsq_connection, one per
    broker, in connect order), the handed-out messages (nsq_msg), the
    credit split (nsq_credit), the lookupd poller (nsq_discovery), and the
    zloop everything runs on, on the thread that owns the consumer.

    RDY is a window (the broker sends while the connection's in-flight
    count is below it), so each connection announces it once and again only
    when its share of max_in_flight changes; with scarce credit the shares
    rotate every few seconds.

    Each delivered message goes on the unsettled list. The handler settles
    it with FIN or REQ, now or later; the ids are batched per connection
    and flushed at the end of each read (or by a zero-delay timer when
    settled outside a read), so a fast consumer sends one frame per batch.
    A message whose connection was dropped, or whose socket was reset since
    (nsq_connection_generation), settles to -1: the broker requeues it.

    Loop safety: zloop may call a reader with a socket that a timer in the
    same pass destroyed, so the reader looks the connection up by socket
    and ignores strangers; a handler may drop the connection being read
    (self->reading is cleared then), so the read loop checks after each
    frame. The zloop is primed once at creation so that zloop_timer_end
    removes timers at once.
*/
#include "nsq.h"
#include "nsq_address.h"
#include "nsq_arena.h"
#include "nsq_connection.h"
#include "nsq_credit.h"
#include "nsq_discovery.h"
#include "nsq_endpoint.h"
#include "nsq_http_client.h"
#include "nsq_log.h"
#include "nsq_msg.h"
#include "nsq_names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_DRAIN_MAX 64    // frames read per reader wake-up
#define S_TICK_MS   100   // heartbeat, liveness and reconnect check
#define S_ROTATE_MS 5000  // RDY rotation when max_in_flight < connections

struct _nsq_consumer_t {
    char *topic;  // subscription
    char *channel;
    char *client_id;                     // announced in IDENTIFY
    char *auth_secret;                   // sent in IDENTIFY, never logged
    char hostname[256];                  // announced in IDENTIFY
    nsq_connection_settings_t settings;  // what every connection asks for
    nsq_handler_fn *handler;             // user's message handler
    void *handler_arg;
    uint32_t max_in_flight;          // total credit
    zloop_t *loop;                   // everything runs on it
    nsq_arena_t *arena;              // where frames are unpacked
    int flush_timer;                 // pending zero-delay flush, 0 if none
    int break_timer;                 // pending stop request, 0 if none
    nsq_connection_t **connections;  // live connections, in connect order
    nsq_credit_slot_t *credit;       // one per connection, same order
    size_t connection_count;         //
    size_t connection_capacity;      // of both arrays
    zlistx_t *addresses;             // interned endpoints, kept until destroy
    nsq_msg_list_t unsettled;        // handed-out messages
    uint64_t received;               // counters since creation
    uint64_t finished;               //
    uint64_t requeued;               //
    size_t rotation;                 // RDY rotation offset
    int64_t rotate_at;               // next rotation
    nsq_connection_t *reading;       // connection being read, NULL if none
    bool break_requested;            // leave the loop after this event
    bool polling;                    // nsq_consumer_poll: break after a delivery
    bool draining;                   // nsq_consumer_close: break once drained
    bool closing;                    // CLS sent: RDY 0, no reconnects
    nsq_discovery_t *discovery;      // lookupd poller, NULL until connect_lookupd
    char *lookupd_tls[3];            // https lookupds: CA file, client cert, key (NULL = unset)
    bool lookupd_answered;           // some lookupd answered a query (even "topic not found")
    uint32_t lookupd_poll_ms;        // poll interval, 0 = the default
};

static void s_request_break(nsq_consumer_t *self);
static void s_check_drained(nsq_consumer_t *self);

// ---- credit ------------------------------------------------------------------

// Announces RDY on every connection whose share changed.
static void s_credit_update(nsq_consumer_t *self)
{
    for (size_t i = 0; i < self->connection_count; i++)
        self->credit[i].max_rdy = nsq_connection_max_rdy(self->connections[i]);
    nsq_credit_split(self->closing ? 0 : self->max_in_flight, self->rotation, self->credit,
                     self->connection_count);
    for (size_t i = 0; i < self->connection_count; i++)
        nsq_connection_rdy(self->connections[i], self->credit[i].rdy);
}

// Moves the RDY 1 slots along when credit is scarcer than connections.
static void s_credit_rotate(nsq_consumer_t *self, int64_t now)
{
    if (!nsq_credit_is_scarce(self->max_in_flight, self->connection_count) || now < self->rotate_at)
        return;
    self->rotate_at = now + S_ROTATE_MS;
    self->rotation = nsq_credit_rotate(self->rotation, self->max_in_flight);
    s_credit_update(self);
}

// ---- connections -------------------------------------------------------------

static void s_flush_all(nsq_consumer_t *self)
{
    for (size_t i = 0; i < self->connection_count; i++)
        nsq_connection_flush(self->connections[i]);
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

// The index of the connection to endpoint, or -1.
static ssize_t s_find(nsq_consumer_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->connection_count; i++)
        if (streq(nsq_connection_endpoint(self->connections[i]), endpoint))
            return (ssize_t) i;
    return -1;
}

static int s_connections_grow(nsq_consumer_t *self)
{
    if (self->connection_count < self->connection_capacity)
        return 0;
    size_t capacity = self->connection_capacity ? self->connection_capacity * 2 : 4;
    nsq_connection_t **connections = realloc(self->connections, capacity * sizeof *connections);
    if (connections)
        self->connections = connections;
    nsq_credit_slot_t *credit = realloc(self->credit, capacity * sizeof *credit);
    if (credit)
        self->credit = credit;
    if (!connections || !credit)
        return -1;
    self->connection_capacity = capacity;
    return 0;
}

static void s_connection_destroy(nsq_consumer_t *self, nsq_connection_t **conn_p)
{
    if (self->reading == *conn_p)
        self->reading = NULL;
    nsq_msg_list_orphan(&self->unsettled, *conn_p);
    nsq_connection_destroy(conn_p);
}

// ---- delivery ------------------------------------------------------------------

// True while the connection being read still holds the socket it had.
static bool s_reading(nsq_consumer_t *self, nsq_connection_t *conn, uint64_t generation)
{
    return self->reading == conn && nsq_connection_generation(conn) == generation;
}

// Hands each message of batch to the handler. Stops if the handler drops
// the connection (the broker requeues the rest).
static void s_deliver(nsq_consumer_t *self, nsq_connection_t *conn, const Nsq__Messages *batch)
{
    uint64_t generation = nsq_connection_generation(conn);
    uint32_t timeout_ms = nsq_connection_msg_timeout(conn);
    const char *broker = nsq_connection_endpoint(conn);
    for (size_t i = 0; i < batch->n_messages && s_reading(self, conn, generation); i++) {
        nsq_msg_t *msg = nsq_msg_new(batch->messages[i], conn, generation, broker, timeout_ms);
        if (!msg) {
            nsq_error("consumer %s: out of memory for a message", broker);
            continue;
        }
        nsq_msg_list_add(&self->unsettled, msg);
        self->received++;
        if (self->handler)
            self->handler(self, msg, self->handler_arg);
    }
    if (self->polling && batch->n_messages)
        self->break_requested = true;
}

static void s_dispatch(nsq_consumer_t *self, nsq_connection_t *conn, const Nsq__Frame *frame)
{
    switch (nsq_connection_handle(conn, frame)) {
    case NSQ_CONNECTION_MESSAGES:
        s_deliver(self, conn, frame->messages);
        break;
    case NSQ_CONNECTION_IDENTIFIED:
        s_credit_update(self);
        break;
    case NSQ_CONNECTION_CLOSE_WAIT:
        s_check_drained(self);
        break;
    default:
        break;
    }
}

// Reads up to S_DRAIN_MAX frames from one connection, then flushes settles
// (or a disconnect event of its monitor).
static int s_reader(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    nsq_consumer_t *self = arg;
    nsq_connection_t *conn = NULL;
    for (size_t i = 0; i < self->connection_count && !conn; i++) {
        if (nsq_connection_read_monitor(self->connections[i], sock))
            return 0;
        if (nsq_connection_sock(self->connections[i]) == sock)
            conn = self->connections[i];
    }
    if (!conn)
        return 0;  // a socket closed earlier in this zloop pass
    self->reading = conn;
    uint64_t generation = nsq_connection_generation(conn);
    ProtobufCAllocator *allocator = nsq_arena_allocator(self->arena);
    for (int i = 0; i < S_DRAIN_MAX && s_reading(self, conn, generation); i++) {
        Nsq__Frame *frame = NULL;
        if (self->break_requested || nsq_connection_recv(conn, allocator, &frame))
            break;
        if (frame)
            s_dispatch(self, conn, frame);
        nsq_arena_reset(self->arena);
    }
    self->reading = NULL;
    s_flush_all(self);
    return self->break_requested ? -1 : 0;
}

// ---- loop ------------------------------------------------------------------------

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    nsq_consumer_t *self = arg;
    int64_t now = zclock_mono();
    for (size_t i = 0; i < self->connection_count; i++)
        nsq_connection_check(self->connections[i], now, !self->closing);
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

// Runs the loop until a break, zsys_interrupted (unless draining), or
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

// ---- consumer --------------------------------------------------------------------

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
    self->arena = nsq_arena_new();
    if (!self->topic || !self->channel || !self->loop || !self->addresses || !self->arena
        || zloop_timer(self->loop, S_TICK_MS, 0, s_tick, self) < 0) {
        nsq_consumer_destroy(&self);
        return NULL;
    }
    zlistx_set_destructor(self->addresses, (zlistx_destructor_fn *) zstr_free);
    s_loop_prime(self->loop, self);
    self->break_requested = false;
    self->max_in_flight = 1;
    nsq_address_hostname(self->hostname, sizeof self->hostname);
    self->settings = (nsq_connection_settings_t){
        .topic = self->topic, .channel = self->channel, .hostname = self->hostname};
    return self;
}

void nsq_consumer_destroy(nsq_consumer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_consumer_t *self = *self_p;
    s_flush_all(self);
    for (size_t i = 0; i < self->connection_count; i++)
        s_connection_destroy(self, &self->connections[i]);
    nsq_msg_list_clear(&self->unsettled);
    free(self->connections);
    free(self->credit);
    if (self->discovery)
        zloop_reader_end(self->loop, nsq_discovery_sock(self->discovery));
    nsq_discovery_destroy(&self->discovery);
    zloop_destroy(&self->loop);
    zlistx_destroy(&self->addresses);
    nsq_arena_destroy(&self->arena);
    free(self->topic);
    free(self->channel);
    free(self->client_id);
    for (int index = 0; index < 3; index++)
        free(self->lookupd_tls[index]);
    nsq_consumer_set_auth_secret(self, NULL);
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
    self->settings.heartbeat_ms = milliseconds;
}

void nsq_consumer_set_msg_timeout(nsq_consumer_t *self, uint32_t milliseconds)
{
    self->settings.msg_timeout_ms = milliseconds;
}

void nsq_consumer_set_client_id(nsq_consumer_t *self, const char *client_id)
{
    free(self->client_id);
    self->client_id = client_id ? strdup(client_id) : NULL;
    self->settings.client_id = self->client_id;
}

int nsq_consumer_set_lookupd_tls(nsq_consumer_t *self, const char *root_ca_file,
                                 const char *cert_file, const char *key_file)
{
    char error[512];
    nsq_http_client_tls_t tls = {root_ca_file, cert_file, key_file};
    if (nsq_http_client_tls_check(&tls, "tls-key", error, sizeof error)) {
        nsq_error("consumer: %s", error);
        errno = EINVAL;
        return -1;
    }
    const char *given[3] = {root_ca_file, cert_file, key_file};
    for (int index = 0; index < 3; index++) {
        free(self->lookupd_tls[index]);
        self->lookupd_tls[index] = given[index] ? strdup(given[index]) : NULL;
    }
    if (self->discovery)
        nsq_discovery_set_tls(self->discovery, root_ca_file, cert_file, key_file);
    return 0;
}

int nsq_consumer_set_curve(nsq_consumer_t *self, const char *key_file, const char *server_key_file)
{
    char error[512];
    if (nsq_curve_client_load(&self->settings.curve, key_file, server_key_file, error,
                              sizeof error)) {
        nsq_error("consumer: %s", error);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

void nsq_consumer_set_auth_secret(nsq_consumer_t *self, const char *secret)
{
    if (self->auth_secret) {  // wiped: freed memory keeps no secret around
        memset(self->auth_secret, 0, strlen(self->auth_secret));
        free(self->auth_secret);
    }
    self->auth_secret = secret && *secret ? strdup(secret) : NULL;
    self->settings.auth_secret = self->auth_secret;
}

int nsq_consumer_connect(nsq_consumer_t *self, const char *address)
{
    char endpoint[NSQ_ENDPOINT_MAX];
    if (nsq_endpoint_parse(address, endpoint, sizeof endpoint))
        return -1;
    if (s_find(self, endpoint) >= 0) {
        errno = EEXIST;
        return -1;
    }
    const char *interned = s_intern(self, endpoint);
    nsq_connection_t *conn =
        interned ? nsq_connection_new(interned, &self->settings, self->loop, s_reader, self) : NULL;
    if (!conn || s_connections_grow(self)) {
        nsq_connection_destroy(&conn);
        errno = ENOMEM;
        return -1;
    }
    self->connections[self->connection_count++] = conn;
    self->rotate_at = zclock_mono() + S_ROTATE_MS;
    nsq_connection_open(conn);
    s_credit_update(self);
    return 0;
}

int nsq_consumer_disconnect(nsq_consumer_t *self, const char *address)
{
    char endpoint[NSQ_ENDPOINT_MAX];
    ssize_t index =
        nsq_endpoint_parse(address, endpoint, sizeof endpoint) ? -1 : s_find(self, endpoint);
    if (index < 0)
        return -1;
    nsq_connection_t *conn = self->connections[index];
    s_connection_destroy(self, &conn);
    size_t after = self->connection_count - (size_t) index - 1;
    memmove(&self->connections[index], &self->connections[index + 1], after * sizeof conn);
    memmove(&self->credit[index], &self->credit[index + 1], after * sizeof *self->credit);
    self->connection_count--;
    s_credit_update(self);
    return 0;
}

// ---- discovery -----------------------------------------------------------------

// A broker a lookupd lists for the first time: connect to it.
static int s_on_found(void *arg, const char *broker)
{
    nsq_consumer_t *self = arg;
    if (nsq_consumer_connect(self, broker) != 0)
        return -1;  // malformed, or connected by hand already
    nsq_info("consumer %s/%s: broker %s found through lookupd", self->topic, self->channel, broker);
    return 0;
}

// A broker found through lookupds that none lists any more: drop it.
static void s_on_lost(void *arg, const char *broker)
{
    nsq_consumer_t *self = arg;
    nsq_info("consumer %s/%s: broker %s no longer listed by any lookupd, dropping it", self->topic,
             self->channel, broker);
    nsq_consumer_disconnect(self, broker);
}

static int s_on_discovery(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    static const nsq_discovery_events_t events = {.found = s_on_found, .lost = s_on_lost};
    nsq_consumer_t *self = arg;
    // Only answered rounds are reported; while closing, nothing changes
    self->lookupd_answered |=
        nsq_discovery_apply(self->discovery, self->closing ? NULL : &events, self);
    return 0;
}

int nsq_consumer_connect_lookupd(nsq_consumer_t *self, const char *http_address)
{
    if (!self->discovery) {
        self->discovery = nsq_discovery_new(self->topic);
        if (self->discovery)
            nsq_discovery_set_tls(self->discovery, self->lookupd_tls[0], self->lookupd_tls[1],
                                  self->lookupd_tls[2]);
        if (!self->discovery) {
            errno = ENOMEM;
            return -1;
        }
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
        count += nsq_connection_is_ready(self->connections[i]);
    return count;
}

// ---- settling ------------------------------------------------------------------

// The connection msg can still be settled on, or NULL: it is gone, or its
// socket was reset since the message arrived.
static nsq_connection_t *s_origin(const nsq_msg_t *msg)
{
    uint64_t generation = 0;
    nsq_connection_t *conn = nsq_msg_origin(msg, &generation);
    return conn && nsq_connection_generation(conn) == generation ? conn : NULL;
}

// FIN (requeue false) or REQ msg: queues its id on its connection and frees it.
static int s_settle(nsq_consumer_t *self, nsq_msg_t *msg, bool requeue, uint32_t delay_ms)
{
    nsq_connection_t *conn = s_origin(msg);
    uint64_t id = nsq_msg_wire_id(msg);
    nsq_msg_list_remove(&self->unsettled, msg);
    free(msg);
    s_check_drained(self);
    if (!conn)
        return -1;
    if (requeue) {
        nsq_connection_req(conn, id, delay_ms);
        self->requeued++;
    } else {
        nsq_connection_fin(conn, id);
        self->finished++;
    }
    s_schedule_flush(self);
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
    nsq_connection_t *conn = s_origin(msg);
    if (!conn)
        return -1;
    nsq_connection_touch(conn, nsq_msg_wire_id(msg));
    return 0;
}

size_t nsq_consumer_in_flight(nsq_consumer_t *self)
{
    return self->unsettled.count;
}

// ---- running and closing ---------------------------------------------------------

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
    if (self->unsettled.count)
        return false;
    for (size_t i = 0; i < self->connection_count; i++) {
        nsq_connection_t *conn = self->connections[i];
        if (nsq_connection_is_ready(conn) && !nsq_connection_close_waited(conn))
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
            nsq_connection_cls(self->connections[i]);
    }
    s_flush_all(self);
    if (!s_drained(self)) {
        self->draining = true;
        zloop_set_nonstop(self->loop, true);
        s_run(self, timeout_ms < 0 ? 0 : timeout_ms);
        zloop_set_nonstop(self->loop, false);
        self->draining = false;
    }
    return self->unsettled.count ? -1 : 0;
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
