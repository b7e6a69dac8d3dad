/*  broker - the broker actor: one thread, one zloop, driving the server,
    its doors, the syncer and the lookupd links
    SPDX-License-Identifier: MIT

    Life cycle: s_broker_new takes the data path's lock, restores the
    state file into the server, binds the doors (or reports ERROR), and
    wires the parts together; the loop runs until $TERM (draining first,
    see s_on_pipe); s_broker_destroy answers what the doors handed over,
    stops the HTTP server, writes what is in memory to disk and frees
    everything.

    The parts never call each other in a circle: the doors call the
    server, the server calls the hooks below, and the hooks call the
    lookupd links, the state file and the syncer, which reach back only
    through the callbacks this file gives them.
*/
#include "broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_http.h"
#include "broker_http_serve.h"
#include "broker_lookup.h"
#include "broker_server.h"
#include "broker_state.h"
#include "broker_sync.h"
#include "broker_zmq.h"
#include "nsq_daemon.h"
#include "nsq_log.h"

// How often in-flight timeouts, deferred messages and liveness are checked.
#define BROKER_TICK_MS 100
// Messages read per loop wake-up, so other sockets and timers are not
// starved by a busy peer.
#define BROKER_DRAIN_MAX 1024
// Messages queued per client each way on the ROUTER; credit and publish
// windows bound the real queues, a full queue goes to the peer's backlog.
#define BROKER_ROUTER_HWM 200000

typedef struct {
    broker_config_t config;   // settings, read-only after start
    zsock_t *pipe;            // the actor pipe
    zloop_t *loop;            // the one reactor
    broker_state_t *state;    // the state file and the data path's lock
    broker_server_t *server;  // topics, channels, clients
    broker_sync_t *sync;      // off-thread syncs, durable acknowledgements; NULL in memory
    broker_zmq_t *zmq;        // the ZeroMQ door
    broker_http_t *http;      // the HTTP door (its own threads)
    broker_lookup_t *lookup;  // links to lookupds, NULL if none configured
    uint16_t http_port;       // bound HTTP port
    uint16_t zmq_port;        // bound ZeroMQ port
    bool draining;            // $TERM came: no new deliveries, the loop ends soon
    int64_t drain_deadline;   // monotonic ms when draining gives up
} broker_t;

// ---- the server's hooks -------------------------------------------------------

static bool s_topic_created(void *arg, const char *topic)
{
    broker_t *self = arg;
    return self->lookup && broker_lookup_topic_created(self->lookup, topic);
}

static void s_topic_deleted(void *arg, const char *topic)
{
    broker_t *self = arg;
    if (self->lookup)
        broker_lookup_topic_deleted(self->lookup, topic);
}

static void s_channel_created(void *arg, const char *topic, const char *channel)
{
    broker_t *self = arg;
    if (self->lookup)
        broker_lookup_channel_created(self->lookup, topic, channel);
}

static void s_channel_deleted(void *arg, const char *topic, const char *channel)
{
    broker_t *self = arg;
    if (self->lookup)
        broker_lookup_channel_deleted(self->lookup, topic, channel);
}

static void s_state_changed(void *arg)
{
    broker_t *self = arg;
    broker_state_changed(self->state);
}

static void s_ids_reserved(void *arg)
{
    broker_t *self = arg;
    broker_state_save(self->state);  // a failure is logged and retried by the tick
}

static int s_wait_durable(void *arg, broker_durable_fn *fn, void *fn_arg)
{
    broker_t *self = arg;
    return broker_sync_wait(self->sync, fn, fn_arg);
}

// ---- what the state file, the syncer and the lookupd links see ---------------------

typedef struct {
    broker_state_entry_fn *emit;  // the state file's receiver
    void *emit_arg;               // its argument
} state_listing_t;

static void s_state_entry(void *arg, const char *topic, const char *channel, bool paused)
{
    state_listing_t *listing = arg;
    broker_state_entry_t entry = {channel ? BROKER_STATE_CHANNEL : BROKER_STATE_TOPIC, 0, topic,
                                  channel, paused};
    listing->emit(listing->emit_arg, &entry);
}

// Lists the id reservation and every topic and channel for the state file.
static void s_state_list(void *arg, broker_state_entry_fn *emit, void *emit_arg)
{
    broker_t *self = arg;
    broker_state_entry_t ids = {BROKER_STATE_IDS, broker_server_ids_reserved(self->server), NULL,
                                NULL, false};
    emit(emit_arg, &ids);
    state_listing_t listing = {emit, emit_arg};
    broker_server_each(self->server, s_state_entry, &listing);
}

// Restores one entry of the state file into the server.
static int s_state_restore(void *arg, const broker_state_entry_t *entry)
{
    broker_t *self = arg;
    broker_server_t *server = self->server;
    int64_t now = zclock_mono();
    if (entry->kind == BROKER_STATE_IDS) {
        broker_server_restore_ids(server, entry->ids);
        return 0;
    }
    size_t topic_size = strlen(entry->topic);
    if (entry->kind == BROKER_STATE_TOPIC)
        return broker_server_topic(server, BROKER_CREATE, entry->topic, topic_size, now)
                           == BROKER_OK
                       && (!entry->paused
                           || broker_server_topic(server, BROKER_PAUSE, entry->topic, topic_size,
                                                  now)
                                  == BROKER_OK)
                   ? 0
                   : -1;
    if (!broker_server_has(server, entry->topic, NULL))
        return -1;
    size_t channel_size = strlen(entry->channel);
    return broker_server_channel(server, BROKER_CREATE, entry->topic, topic_size, entry->channel,
                                 channel_size, now)
                       == BROKER_OK
                   && (!entry->paused
                       || broker_server_channel(server, BROKER_PAUSE, entry->topic, topic_size,
                                                entry->channel, channel_size, now)
                              == BROKER_OK)
               ? 0
               : -1;
}

static void s_each_disk(void *arg, broker_sync_disk_fn *fn, void *fn_arg)
{
    broker_t *self = arg;
    broker_server_each_disk(self->server, fn, fn_arg);
}

static void s_before_commit(void *arg)
{
    broker_t *self = arg;
    broker_state_flush(self->state);  // an acknowledged topic must be listed
}

static void s_each_name(void *arg, broker_lookup_name_fn *fn, void *fn_arg)
{
    broker_t *self = arg;
    broker_server_each(self->server, fn, fn_arg);
}

static bool s_channel_known(void *arg, const char *topic, const char *channel)
{
    broker_t *self = arg;
    if (!broker_server_has(self->server, topic, NULL)
        || broker_server_has(self->server, topic, channel))
        return false;
    return broker_server_channel(self->server, BROKER_CREATE, topic, strlen(topic), channel,
                                 strlen(channel), zclock_mono())
           == BROKER_OK;
}

static void s_release(void *arg, const char *topic)
{
    broker_t *self = arg;
    broker_server_topic_release(self->server, topic, zclock_mono());
}

// ---- socket handlers ------------------------------------------------------------

// After each batch of work: held messages move on, the state file and
// the syncer catch up.
static void s_after_batch(broker_t *self)
{
    int64_t now = zclock_mono();
    broker_server_pump(self->server, now);
    broker_state_check(self->state, now);
    broker_sync_kick(self->sync);
}

static int s_on_router(zloop_t *loop, zsock_t *router, void *arg)
{
    (void) loop;
    (void) router;
    broker_t *self = arg;
    broker_zmq_read(self->zmq, BROKER_DRAIN_MAX);
    s_after_batch(self);
    return 0;
}

// The HTTP door's eventfd: requests wait.
static int s_on_request(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    broker_t *self = arg;
    broker_http_take(self->http, broker_http_serve, self->server);
    s_after_batch(self);
    return 0;
}

static int s_on_synced(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    (void) reader;
    broker_t *self = arg;
    broker_sync_on_synced(self->sync);
    return 0;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    broker_t *self = arg;
    int64_t now = zclock_mono();
    broker_zmq_tick(self->zmq, now);
    broker_server_tick(self->server, now);
    broker_sync_tick(self->sync, now);
    broker_state_tick(self->state, now);
    return 0;
}

// ---- stopping -----------------------------------------------------------------

// While draining: ends the loop once consumers settled what they held or
// the drain timeout passed.
static int s_on_drain_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    broker_t *self = arg;
    uint64_t in_flight = broker_server_in_flight(self->server);
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
    broker_t *self = arg;
    char *command = zstr_recv(pipe);
    bool term = command && streq(command, "$TERM");
    zstr_free(&command);
    if (!term)
        return 0;
    uint64_t in_flight = broker_server_in_flight(self->server);
    if (self->draining || in_flight == 0 || self->config.drain_timeout_ms <= 0)
        return -1;
    self->draining = true;
    self->drain_deadline = zclock_mono() + self->config.drain_timeout_ms;
    broker_server_drain(self->server);
    nsq_info("draining: %llu messages in flight, waiting up to %lld ms for consumers",
             (unsigned long long) in_flight, (long long) self->config.drain_timeout_ms);
    zloop_timer(loop, 10, 0, s_on_drain_tick, self);
    return 0;
}

// ---- life cycle ---------------------------------------------------------------

// The largest valid command frame, above which a peer is disconnected
// before its frame is read: a PUB whose bodies total max_body_size, with at
// most two bytes of protobuf framing per body byte (a one-byte body has a
// tag and a length byte), plus a FIN/REQ/TOUCH batch of max_rdy_count ids
// (ten bytes each at most) and room for names.
static int64_t s_max_frame(const broker_config_t *config)
{
    return 3 * config->max_body_size + 10 * config->max_rdy_count + 65536;
}

static void s_broker_destroy(broker_t **self_p);

// The state file and the server: takes the lock, lists the data path once
// (every disk queue opens from that listing) and restores the topics and
// channels. Returns 0, or -1 with a reason.
static int s_restore(broker_t *self, char *error, size_t error_size)
{
    broker_config_t config = self->config;
    self->state = broker_state_new(config.data_path, s_state_list, self);
    if (!self->state || broker_state_lock(self->state, error, error_size) != 0)
        return -1;
    if (config.data_path[0]
        && !(config.disk_listing = nsq_diskqueue_listing_new(config.data_path))) {
        snprintf(error, error_size, "cannot list --data-path %.400s: %s", config.data_path,
                 strerror(errno));
        return -1;
    }
    broker_server_hooks_t hooks = {self,
                                   s_topic_created,
                                   s_topic_deleted,
                                   s_channel_created,
                                   s_channel_deleted,
                                   s_state_changed,
                                   s_ids_reserved,
                                   s_wait_durable};
    self->server = broker_server_new(&config, &hooks);  // the listing moves to the server
    if (!self->server) {
        nsq_diskqueue_listing_destroy(&config.disk_listing);
        return snprintf(error, error_size, "out of memory"), -1;
    }
    return broker_state_load(self->state, s_state_restore, self, error, error_size);
}

// The doors: the ZeroMQ ROUTER and the HTTP server. Returns 0, or -1 with
// a reason.
static int s_open_doors(broker_t *self, char *error, size_t error_size)
{
    const broker_config_t *config = &self->config;
    int port = -1;
    zsock_t *router =
        nsq_daemon_router(config->zmq_address, BROKER_ROUTER_HWM, s_max_frame(config), &port);
    if (!router) {
        snprintf(error, error_size, "cannot bind ZeroMQ on %s: %s", config->zmq_address,
                 zmq_strerror(errno));
        return -1;
    }
    self->zmq_port = (uint16_t) port;
    self->zmq = broker_zmq_new(self->server, &router);
    zsock_destroy(&router);  // still ours if the door could not be made
    self->http = self->zmq ? broker_http_new(config) : NULL;
    if (!self->http) {
        snprintf(error, error_size, "cannot listen for HTTP on %s", config->http_address);
        return -1;
    }
    self->http_port = broker_http_port(self->http);
    broker_http_set_zmq_port(self->http, self->zmq_port);
    return 0;
}

static broker_t *s_broker_new(zsock_t *pipe, const broker_config_t *config, char *error,
                              size_t error_size)
{
    broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->pipe = pipe;
    if (s_restore(self, error, error_size) != 0 || s_open_doors(self, error, error_size) != 0) {
        s_broker_destroy(&self);
        return NULL;
    }
    self->loop = zloop_new();
    zloop_set_nonstop(self->loop, true);
    zloop_reader(self->loop, broker_zmq_socket(self->zmq), s_on_router, self);
    zmq_pollitem_t requests = {NULL, broker_http_handoff_fd(self->http), ZMQ_POLLIN, 0};
    zloop_poller(self->loop, &requests, s_on_request, self);
    zloop_reader(self->loop, pipe, s_on_pipe, self);
    zloop_timer(self->loop, BROKER_TICK_MS, 0, s_on_tick, self);
    broker_sync_source_t source = {self, s_each_disk, s_before_commit};
    if (config->data_path[0] && !(self->sync = broker_sync_new(config, &source))) {
        snprintf(error, error_size, "cannot start the sync thread");
        s_broker_destroy(&self);
        return NULL;
    }
    if (self->sync)
        zloop_reader(self->loop, broker_sync_socket(self->sync), s_on_synced, self);
    broker_lookup_source_t names = {self, s_each_name, s_channel_known, s_release};
    if (config->lookupd_count > 0
        && !(self->lookup =
                 broker_lookup_new(config, self->loop, self->http_port, self->zmq_port, &names))) {
        snprintf(error, error_size, "cannot set up the lookupd links");
        s_broker_destroy(&self);
        return NULL;
    }
    return self;
}

static void s_broker_destroy(broker_t **self_p)
{
    broker_t *self = *self_p;
    if (!self)
        return;
    bool started = self->loop != NULL;  // else the state on disk stays untouched
    if (self->http) {
        // Answer what the HTTP threads already handed over, then refuse the
        // rest: after the flag is set this thread never takes a request again.
        broker_http_set_exiting(self->http, true);
        broker_http_take(self->http, broker_http_serve, self->server);
    }
    broker_sync_destroy(&self->sync);  // answers the publishes still waiting for a sync
    broker_http_destroy(&self->http);
    broker_lookup_destroy(&self->lookup);
    zloop_destroy(&self->loop);
    if (started) {
        broker_server_persist(self->server, zclock_mono());
        broker_state_save(self->state);
    }
    broker_server_destroy(&self->server);
    broker_zmq_destroy(&self->zmq);
    broker_state_destroy(&self->state);  // releases the lock
    free(self);
    *self_p = NULL;
}

void broker_actor(zsock_t *pipe, void *args)
{
    zsock_signal(pipe, 0);
    char error[512] = "";
    broker_t *self = s_broker_new(pipe, args, error, sizeof error);
    if (!self) {
        zstr_sendx(pipe, "ERROR", error, NULL);
        return;
    }
    nsq_daemon_send_ready(pipe, self->http_port, self->zmq_port);
    zloop_start(self->loop);
    nsq_info("broker stopping");
    s_broker_destroy(&self);
}
