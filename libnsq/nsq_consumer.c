/*  nsq_consumer - subscribe to (topic, channel) on brokers, hand out messages
    SPDX-License-Identifier: MIT

    The consumer owns the set: its connections (nsq_connection, one per
    broker, in connect order), the handed-out messages (nsq_msg), the
    credit split (nsq_credit), the lookupd poller (nsq_discovery, wired in
    nsq_consumer_lookupd.c), and the zloop everything runs on, on the
    thread that owns the consumer (run, poll, stop and close are in
    nsq_consumer_run.c; the state all three files share is in
    nsq_consumer_internal.h). This file makes and destroys the consumer,
    keeps its settings (but the lookupd ones), connects and drops brokers,
    reads and delivers messages, settles them and ticks.

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
    frame.

    The tick (S_TICK_MS) checks each connection's liveness (heartbeats,
    reconnects), rotates scarce credit, flushes settles, and, while
    closing, sees whether the consumer drained.
*/
#include "nsq.h"
#include "nsq_address.h"
#include "nsq_arena.h"
#include "nsq_connection.h"
#include "nsq_consumer_internal.h"
#include "nsq_credit.h"
#include "nsq_endpoint.h"
#include "nsq_log.h"
#include "nsq_msg.h"
#include "nsq_names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_DRAIN_MAX 64    // frames read per reader wake-up
#define S_TICK_MS   100   // heartbeat, liveness and reconnect check
#define S_ROTATE_MS 5000  // RDY rotation when max_in_flight < connections

// ---- credit ------------------------------------------------------------------

// Announces RDY on every connection whose share changed.
void consumer_credit_update(nsq_consumer_t *self)
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
    consumer_credit_update(self);
}

// ---- connections -------------------------------------------------------------

void consumer_flush_all(nsq_consumer_t *self)
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
        consumer_credit_update(self);
        break;
    case NSQ_CONNECTION_CLOSE_WAIT:
        consumer_check_drained(self);
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
    consumer_flush_all(self);
    return self->break_requested ? -1 : 0;
}

// ---- tick ------------------------------------------------------------------------

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    nsq_consumer_t *self = arg;
    int64_t now = zclock_mono();
    for (size_t i = 0; i < self->connection_count; i++)
        nsq_connection_check(self->connections[i], now, !self->closing);
    s_credit_rotate(self, now);
    consumer_flush_all(self);
    consumer_check_drained(self);
    return 0;
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
    consumer_loop_prime(self);
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
    consumer_flush_all(self);
    for (size_t i = 0; i < self->connection_count; i++)
        s_connection_destroy(self, &self->connections[i]);
    nsq_msg_list_clear(&self->unsettled);
    free(self->connections);
    free(self->credit);
    consumer_lookupd_destroy(self);
    zloop_destroy(&self->loop);
    zlistx_destroy(&self->addresses);
    nsq_arena_destroy(&self->arena);
    free(self->topic);
    free(self->channel);
    free(self->client_id);
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
    consumer_credit_update(self);
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
    consumer_credit_update(self);
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
    consumer_credit_update(self);
    return 0;
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
    consumer_check_drained(self);
    if (!conn)
        return -1;
    if (requeue) {
        nsq_connection_req(conn, id, delay_ms);
        self->requeued++;
    } else {
        nsq_connection_fin(conn, id);
        self->finished++;
    }
    consumer_schedule_flush(self);
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
