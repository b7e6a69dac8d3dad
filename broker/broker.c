/*  broker - the broker actor: one thread owning all topics, channels and
    clients, driven by one zloop
    SPDX-License-Identifier: MIT

    Life cycle: s_core_new binds everything (or reports ERROR), the loop
    runs until $TERM, s_core_destroy drains pending HTTP requests, stops the
    HTTP server and frees all state. Commands and HTTP requests are handled
    in broker_commands.c and broker_admin.c; this file owns the sockets,
    timers and the shared helpers of broker_core.h.
*/
#include "broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "broker_core.h"
#include "broker_lookup.h"
#include "nsq_daemon.h"
#include "nsq_log.h"
#include "nsq_peer.h"

// How often in-flight timeouts, deferred messages and liveness are checked.
#define BROKER_TICK_MS 100
// Frames read from the ROUTER per loop wake-up, so HTTP requests and timers
// are not starved by a busy consumer.
#define BROKER_DRAIN_MAX 1024
// Messages queued per client each way on the ROUTER; credit and publish
// windows bound the real queues, a full queue goes to the client's backlog.
#define BROKER_ROUTER_HWM 200000
// Message id layout: ms since this epoch (2024-01-01), node id, sequence.
#define BROKER_ID_EPOCH_MS 1704067200000LL

// ---- shared helpers (broker_core.h) -----------------------------------------

broker_topic_t *broker_core_topic(broker_core_t *self, const char *name, bool create)
{
    broker_topic_t *topic = zhashx_lookup(self->topics, name);
    if (topic || !create)
        return topic;
    topic = broker_topic_new(name, &self->config);
    if (!topic)
        return NULL;
    zhashx_insert(self->topics, name, topic);
    self->state_changed = true;
    nsq_info("topic %s: created", name);
    if (self->lookup)
        broker_lookup_topic_created(self->lookup, topic);
    return topic;
}

broker_channel_t *broker_core_channel(broker_core_t *self, broker_topic_t *topic, const char *name,
                                      int64_t now)
{
    broker_channel_t *channel = broker_topic_channel(topic, name);
    if (channel)
        return channel;
    channel = broker_topic_add_channel(topic, name, now);
    self->state_changed = true;
    if (channel && self->lookup)
        broker_lookup_channel_created(self->lookup, topic->name, name);
    return channel;
}

void broker_core_stamp(broker_core_t *self, nsq_message_t **messages, size_t count)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ns = (int64_t) now.tv_sec * 1000000000LL + now.tv_nsec
                 + self->config.test_clock_offset_ms * 1000000LL;
    uint64_t base = ((uint64_t) (ns / 1000000 - BROKER_ID_EPOCH_MS) << 22)
                    | ((uint64_t) self->config.node_id << 12);
    // Ids never go below what an earlier run may have handed out, whatever
    // the clock says: reserve the batch's ids in the state file first.
    uint64_t highest = (base > self->last_id ? base - 1 : self->last_id) + count;
    if (highest >= self->ids_reserved)
        broker_state_reserve_ids(self, highest);
    for (size_t i = 0; i < count; i++) {
        self->last_id = base > self->last_id ? base : self->last_id + 1;
        messages[i]->id = self->last_id;
        messages[i]->timestamp = ns;
    }
}

bool broker_core_out_of_files(broker_core_t *self, int error, const char *topic)
{
    if (error != EMFILE && error != ENFILE)
        return false;
    int64_t now = zclock_mono();
    if (now - self->files_logged_ms >= 1000 || self->files_logged_ms == 0) {
        struct rlimit limit = {0, 0};
        getrlimit(RLIMIT_NOFILE, &limit);
        nsq_error("topic %s: out of file descriptors (%s; RLIMIT_NOFILE %llu): answered "
                  "TOO_MANY_OPEN_FILES; raise the limit (ulimit -n) or close connections",
                  topic, strerror(error), (unsigned long long) limit.rlim_cur);
        self->files_logged_ms = now;
    }
    return true;
}

// Deletes an ephemeral channel without consumers, and then an ephemeral
// topic without channels.
static void s_collect_ephemeral(broker_core_t *self, broker_channel_t *channel)
{
    if (!channel->ephemeral || channel->client_count > 0)
        return;
    broker_topic_t *topic = NULL;
    for (topic = zhashx_first(self->topics); topic; topic = zhashx_next(self->topics))
        if (broker_topic_channel(topic, channel->name) == channel)
            break;
    if (!topic)
        return;
    broker_core_delete_channel(self, topic, channel);
    if (topic->ephemeral && topic->channel_count == 0)
        broker_core_delete_topic(self, topic);
}

void broker_core_drop_client(broker_core_t *self, broker_client_t *client)
{
    broker_channel_t *channel = client->channel;
    if (channel) {
        broker_channel_remove_client(channel, client, zclock_mono());
        broker_channel_dispatch(channel, zclock_mono());
        s_collect_ephemeral(self, channel);
    }
    zhashx_delete(self->clients, client->key);  // the destructor frees it
}

void broker_core_delete_channel(broker_core_t *self, broker_topic_t *topic,
                                broker_channel_t *channel)
{
    self->state_changed = true;
    int64_t now = zclock_mono();
    while (channel->client_count > 0) {
        broker_client_t *client = channel->clients[0];
        broker_client_send_error(client, 0, "E_CHANNEL_DELETED", channel->name, true, now);
        broker_channel_remove_client(channel, client, now);
        zhashx_delete(self->clients, client->key);
    }
    nsq_info("topic %s: channel %s deleted", topic->name, channel->name);
    if (self->lookup)
        broker_lookup_channel_deleted(self->lookup, topic->name, channel->name);
    broker_topic_remove_channel(topic, channel);
    broker_channel_delete(&channel);
}

void broker_core_delete_topic(broker_core_t *self, broker_topic_t *topic)
{
    self->state_changed = true;
    while (topic->channel_count > 0)
        broker_core_delete_channel(self, topic, topic->channels[0]);
    nsq_info("topic %s: deleted", topic->name);
    if (self->lookup)
        broker_lookup_topic_deleted(self->lookup, topic->name);
    topic->deleted = true;
    zhashx_delete(self->topics, topic->name);  // the destructor frees it
}

// ---- socket handlers --------------------------------------------------------

// The client with this identity; a new one, addressed from frame's
// connection when frame is not NULL, when unknown. NULL if identity is
// unusable or out of memory.
broker_client_t *broker_core_client(broker_core_t *self, const void *identity, size_t size,
                                    zmq_msg_t *frame, int64_t now)
{
    char key[2 * BROKER_IDENTITY_MAX + 1];
    if (size == 0 || size > BROKER_IDENTITY_MAX)
        return NULL;
    broker_client_key(identity, size, key);
    broker_client_t *client = zhashx_lookup(self->clients, key);
    if (!client) {
        client = broker_client_new(zsock_resolve(self->router), identity, size, now);
        if (client) {
            client->heartbeat_interval_ms = self->config.heartbeat_interval_ms;
            client->msg_timeout_ms = self->config.msg_timeout_ms;
            client->counters = &self->blocked;
            if (frame)
                nsq_peer_address(frame, client->remote_address, sizeof client->remote_address);
            zhashx_insert(self->clients, key, client);
        }
    }
    return client;
}

void broker_core_handle_frame(broker_core_t *self, broker_client_t *client, const void *body,
                              size_t size, int64_t now)
{
    client->last_received = now;
    Nsq__Command *command = body ? nsq_wire_command_unpack(body, size) : NULL;
    if (command) {
        broker_core_handle_command(self, client, command, now);
        nsq__command__free_unpacked(command, NULL);
        return;
    }
    self->bad_commands++;
    nsq_warn("client %s: frame is not a valid command (%zu bytes)", client->key, size);
    broker_client_send_error(client, 0, "E_BAD_COMMAND", "not a valid Command frame", false, now);
}

// Reads one [identity][command] message; returns -1 when nothing is waiting.
static int s_read_command(broker_core_t *self, void *socket)
{
    zmq_msg_t identity, body;
    zmq_msg_init(&identity);
    if (zmq_msg_recv(&identity, socket, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&identity);
        return -1;
    }
    zmq_msg_init(&body);
    int extra_frames = 0;
    if (zmq_msg_more(&identity))
        zmq_msg_recv(&body, socket, 0);
    while (zmq_msg_more(&body)) {  // we speak single-frame commands only
        zmq_msg_t skip;
        zmq_msg_init(&skip);
        zmq_msg_recv(&skip, socket, 0);
        int more = zmq_msg_more(&skip);
        zmq_msg_close(&skip);
        extra_frames++;
        if (!more)
            break;
    }
    int64_t now = zclock_mono();
    broker_client_t *client =
        broker_core_client(self, zmq_msg_data(&identity), zmq_msg_size(&identity), &body, now);
    if (client)
        broker_core_handle_frame(self, client, extra_frames ? NULL : zmq_msg_data(&body),
                                 zmq_msg_size(&body), now);
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
    return 0;
}

static int s_on_router(zloop_t *loop, zsock_t *router, void *arg)
{
    (void) loop;
    broker_core_t *self = arg;
    void *socket = zsock_resolve(router);
    for (int i = 0; i < BROKER_DRAIN_MAX; i++)
        if (s_read_command(self, socket))
            break;
    broker_state_pump(self, zclock_mono());
    broker_state_check(self);
    broker_sync_kick(self);
    return 0;
}

// Reads one [identity][request pointer], handles it and hands it back.
static int s_read_request(broker_core_t *self)
{
    void *socket = zsock_resolve(self->requests);
    zmq_msg_t identity, pointer;
    zmq_msg_init(&identity);
    if (zmq_msg_recv(&identity, socket, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&identity);
        return -1;
    }
    zmq_msg_init(&pointer);
    zmq_msg_recv(&pointer, socket, 0);
    if (zmq_msg_size(&pointer) == sizeof(broker_request_t *)) {
        broker_request_t *request;
        memcpy(&request, zmq_msg_data(&pointer), sizeof request);
        if (broker_core_handle_request(self, request))
            broker_request_done(request);
    }
    zmq_msg_close(&identity);
    zmq_msg_close(&pointer);
    return 0;
}

static int s_on_request(zloop_t *loop, zsock_t *requests, void *arg)
{
    (void) loop;
    (void) requests;
    broker_core_t *self = arg;
    for (int i = 0; i < BROKER_DRAIN_MAX; i++)
        if (s_read_request(self))
            break;
    broker_state_pump(self, zclock_mono());
    broker_state_check(self);
    broker_sync_kick(self);
    return 0;
}

// ---- periodic work ------------------------------------------------------------

static void s_scan_channels(broker_core_t *self, int64_t now)
{
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        for (size_t i = 0; i < topic->channel_count; i++)
            if (broker_channel_scan(topic->channels[i], now) > 0)
                broker_channel_dispatch(topic->channels[i], now);
}

// True if client should be dropped: unreachable, or silent for two
// heartbeat intervals (plus a little slack for a busy network).
static bool s_client_dead(const broker_client_t *client, int64_t now)
{
    return client->gone || now - client->last_received > 2 * client->heartbeat_interval_ms + 500;
}

static void s_check_clients(broker_core_t *self, int64_t now)
{
    zlistx_t *dead = zlistx_new();
    for (broker_client_t *client = zhashx_first(self->clients); client;
         client = zhashx_next(self->clients)) {
        // A client whose queue was full gets what waits for it, then credit.
        if (broker_client_flush(client, now) && client->channel)
            broker_channel_dispatch(client->channel, now);
        if (s_client_dead(client, now))
            zlistx_add_end(dead, client);
        else if (client->state != BROKER_CLIENT_NEW
                 && now - client->last_sent >= client->heartbeat_interval_ms)
            broker_client_send_heartbeat(client, now);
    }
    for (broker_client_t *client = zlistx_first(dead); client; client = zlistx_next(dead)) {
        if (client->state != BROKER_CLIENT_NEW)
            nsq_info("client %s (%s): %s, dropping it", client->key, client->client_id,
                     client->gone ? "unreachable" : "missed heartbeats");
        broker_core_drop_client(self, client);
    }
    zlistx_destroy(&dead);
}

void broker_core_tick(broker_core_t *self, int64_t now)
{
    s_scan_channels(self, now);
    s_check_clients(self, now);
    broker_state_tick(self, now);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    broker_core_tick(arg, zclock_mono());
    return 0;
}

// ---- stopping -----------------------------------------------------------------

// Messages in flight to consumers now.
static uint64_t s_in_flight(broker_core_t *self)
{
    uint64_t count = 0;
    for (broker_client_t *client = zhashx_first(self->clients); client;
         client = zhashx_next(self->clients))
        count += client->in_flight;
    return count;
}

// While draining: ends the loop once consumers settled what they held or
// the drain timeout passed.
static int s_on_drain_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    broker_core_t *self = arg;
    uint64_t in_flight = s_in_flight(self);
    if (in_flight > 0 && zclock_mono() < self->drain_deadline)
        return 0;
    if (in_flight > 0)
        nsq_info("drain timeout: %llu messages still in flight go to disk",
                 (unsigned long long) in_flight);
    return -1;
}

// The actor pipe. $TERM ends the loop, or first drains: no consumer gets a
// new message (credit 0, RDY ignored), FIN/REQ/TOUCH and publishes are
// still served, and the loop ends when nothing is in flight or after
// --drain-timeout. What is still in flight then is written to disk and
// delivered again after the restart; draining first means a consumer that
// finishes quickly does not see its messages twice.
static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    broker_core_t *self = arg;
    char *command = zstr_recv(pipe);
    bool term = command && streq(command, "$TERM");
    zstr_free(&command);
    if (!term)
        return 0;
    uint64_t in_flight = s_in_flight(self);
    if (self->draining || in_flight == 0 || self->config.drain_timeout_ms <= 0)
        return -1;
    self->draining = true;
    self->drain_deadline = zclock_mono() + self->config.drain_timeout_ms;
    for (broker_client_t *client = zhashx_first(self->clients); client;
         client = zhashx_next(self->clients))
        client->rdy = 0;
    nsq_info("draining: %llu messages in flight, waiting up to %lld ms for consumers",
             (unsigned long long) in_flight, (long long) self->config.drain_timeout_ms);
    zloop_timer(loop, 10, 0, s_on_drain_tick, self);
    return 0;
}

// ---- life cycle ---------------------------------------------------------------

static void s_topic_destructor(void **item)
{
    broker_topic_destroy((broker_topic_t **) item);
}

static void s_client_destructor(void **item)
{
    broker_client_destroy((broker_client_t **) item);
}

// The largest valid command frame, above which a peer is disconnected
// before its frame is read: a PUB whose bodies total max_body_size, with at
// most two bytes of protobuf framing per body byte (a one-byte body has a
// tag and a length byte), plus a FIN/REQ/TOUCH batch of max_rdy_count ids
// (ten bytes each at most) and room for names.
static int64_t s_max_frame(const broker_config_t *config)
{
    return 3 * config->max_body_size + 10 * config->max_rdy_count + 65536;
}

broker_core_t *broker_core_new(const broker_config_t *config)
{
    broker_core_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->start_time = (int64_t) time(NULL);
    self->lock_fd = -1;
    self->topics = zhashx_new();
    self->clients = zhashx_new();
    if (!self->topics || !self->clients) {
        broker_core_free(&self);
        return NULL;
    }
    zhashx_set_destructor(self->topics, s_topic_destructor);
    zhashx_set_destructor(self->clients, s_client_destructor);
    return self;
}

void broker_core_free(broker_core_t **self_p)
{
    broker_core_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->clients);
    zhashx_destroy(&self->topics);
    nsq_diskqueue_listing_destroy(&self->config.disk_listing);
    broker_state_unlock(self);
    free(self);
    *self_p = NULL;
}

static void s_core_destroy(broker_core_t **self_p);

static broker_core_t *s_core_new(zsock_t *pipe, const broker_config_t *config, char *error,
                                 size_t error_size)
{
    broker_core_t *self = broker_core_new(config);
    if (!self)
        return NULL;
    self->pipe = pipe;
    if (broker_state_lock(self, error, error_size) != 0
        || broker_state_load(self, error, error_size) != 0) {
        s_core_destroy(&self);
        return NULL;
    }
    int port = -1;
    self->router =
        nsq_daemon_router(config->zmq_address, BROKER_ROUTER_HWM, s_max_frame(config), &port);
    if (!self->router) {
        snprintf(error, error_size, "cannot bind ZeroMQ on %s: %s", config->zmq_address,
                 zmq_strerror(errno));
        s_core_destroy(&self);
        return NULL;
    }
    self->zmq_port = (uint16_t) port;
    snprintf(self->requests_endpoint, sizeof self->requests_endpoint, "inproc://broker-requests-%p",
             (void *) self);
    self->requests = zsock_new_router(self->requests_endpoint);
    broker_request_set_exiting(false);
    self->http = self->requests ? broker_http_new(&self->config, self->requests_endpoint) : NULL;
    if (!self->http) {
        snprintf(error, error_size, "cannot listen for HTTP on %s", config->http_address);
        s_core_destroy(&self);
        return NULL;
    }
    self->http_port = broker_http_port(self->http);
    broker_http_set_zmq_port(self->http, self->zmq_port);
    self->loop = zloop_new();
    zloop_set_nonstop(self->loop, true);
    zloop_reader(self->loop, self->router, s_on_router, self);
    zloop_reader(self->loop, self->requests, s_on_request, self);
    zloop_reader(self->loop, pipe, s_on_pipe, self);
    zloop_timer(self->loop, BROKER_TICK_MS, 0, s_on_tick, self);
    if (broker_sync_start(self) != 0) {
        snprintf(error, error_size, "cannot start the sync thread");
        s_core_destroy(&self);
        return NULL;
    }
    if (self->syncer)
        zloop_reader(self->loop, zactor_sock(self->syncer), broker_sync_on_synced, self);
    if (config->lookupd_count > 0 && !(self->lookup = broker_lookup_new(self))) {
        snprintf(error, error_size, "cannot set up the lookupd links");
        s_core_destroy(&self);
        return NULL;
    }
    return self;
}

static void s_core_destroy(broker_core_t **self_p)
{
    broker_core_t *self = *self_p;
    if (!self)
        return;
    bool started = self->loop != NULL;  // else the state on disk stays untouched
    if (self->http) {
        // Answer what the HTTP threads already sent, then refuse the rest:
        // after the flag is set this thread never reads a request again.
        while (s_read_request(self) == 0)
            ;
        broker_sync_stop(self);  // answers the publishes still waiting for a sync
        broker_request_set_exiting(true);
        broker_http_destroy(&self->http);
        broker_request_shutdown();
    }
    broker_lookup_destroy(&self->lookup);
    zloop_destroy(&self->loop);
    if (started)
        broker_state_persist(self);
    zsock_destroy(&self->requests);
    if (self->router)
        zsock_set_linger(self->router, 1000);  // the last answers still leave
    zsock_destroy(&self->router);
    broker_core_free(self_p);
}

void broker_actor(zsock_t *pipe, void *args)
{
    zsock_signal(pipe, 0);
    char error[512] = "";
    broker_core_t *self = s_core_new(pipe, args, error, sizeof error);
    if (!self) {
        zstr_sendx(pipe, "ERROR", error, NULL);
        return;
    }
    nsq_daemon_send_ready(pipe, self->http_port, self->zmq_port);
    zloop_start(self->loop);
    nsq_info("broker stopping: %zu topics, %zu clients", zhashx_size(self->topics),
             zhashx_size(self->clients));
    s_core_destroy(&self);
}
