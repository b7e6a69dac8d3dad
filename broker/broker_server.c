/*  broker_server - the protocol-neutral core: topics, channels, clients,
    message ids, and the operations every door calls
    SPDX-License-Identifier: MIT

    Topics live in a hash by name, clients in a list (each remembers its
    place). Message ids are ms since BROKER_ID_EPOCH_MS, the node id and a
    sequence; they grow, also across restarts and when the clock steps
    back, because ids are reserved ahead in the state file (ids_reserved
    hook) before they are handed out.

    The operations are spread by job: this file (topics, channels,
    publishing, clients, the loop's work, ids), broker_server_admit.c
    (publishes admitted on the HTTP threads), broker_server_auth.c
    (authorization) and broker_server_each.c (the stats snapshot and the
    iterators); the state they share is in broker_server_internal.h.
*/
#include "broker_server_internal.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "broker_admission.h"
#include "broker_channel.h"
#include "broker_pump.h"
#include "broker_topic.h"
#include "nsq_log.h"
#include "nsq_names.h"

// Message id layout: ms since this epoch (2024-01-01), node id, sequence.
#define BROKER_ID_EPOCH_MS 1704067200000LL
// Ids reserved ahead: about a minute of the clock (ids carry the time in
// ms above bit 22), so publishing rewrites the state file about once a
// minute, not per message.
#define BROKER_ID_BLOCK (60000ULL << 22)
// Shortest heartbeat and message timeout a client may ask for.
#define MIN_HEARTBEAT_MS   100
#define MIN_MSG_TIMEOUT_MS 100

broker_server_t *broker_server_new(const broker_config_t *config,
                                   const broker_server_hooks_t *hooks)
{
    broker_server_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    if (hooks)
        self->hooks = *hooks;
    self->start_time = (int64_t) time(NULL);
    self->topics = zhashx_new();
    self->clients = zlistx_new();
    self->admission = broker_admission_new();
    self->pump = broker_pump_new();
    bool durable = config->durable && config->data_path[0];
    self->dirty = durable ? zhashx_new() : NULL;
    if (!self->topics || !self->clients || !self->admission || !self->pump
        || (durable && !self->dirty))
        broker_server_destroy(&self);
    return self;
}

void broker_server_set_auth(broker_server_t *self, broker_auth_t *auth)
{
    self->auth = auth;
}

broker_auth_t *broker_server_auth_client(const broker_server_t *self)
{
    return self->auth;
}

void broker_server_destroy(broker_server_t **self_p)
{
    broker_server_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (broker_client_t *client = self->clients ? zlistx_first(self->clients) : NULL; client;
         client = zlistx_next(self->clients)) {
        broker_channel_t *channel = broker_client_channel(client);
        if (channel)
            broker_channel_remove_client(channel, client, zclock_mono());
        broker_client_destroy(&client);
    }
    zlistx_destroy(&self->clients);
    for (broker_topic_t *topic = self->topics ? zhashx_first(self->topics) : NULL; topic;
         topic = zhashx_next(self->topics))
        broker_topic_destroy(&topic);
    zhashx_destroy(&self->topics);
    broker_admission_destroy(&self->admission);
    broker_pump_destroy(&self->pump);
    zhashx_destroy(&self->dirty);
    nsq_diskqueue_listing_destroy(&self->config.disk_listing);
    free(self);
    *self_p = NULL;
}

const broker_config_t *broker_server_config(const broker_server_t *self)
{
    return &self->config;
}

broker_counters_t *broker_server_counters(broker_server_t *self)
{
    return &self->counters;
}

// ---- topics and channels ------------------------------------------------------

static void s_state_changed(broker_server_t *self)
{
    if (self->hooks.state_changed)
        self->hooks.state_changed(self->hooks.arg);
}

// If error says the descriptor table is full (EMFILE, ENFILE), logs it for
// topic (at most once a second) and returns BROKER_TOO_MANY_FILES; else
// otherwise.
static broker_result_t s_failure(broker_server_t *self, int error, const char *topic,
                                 broker_result_t otherwise)
{
    if (error != EMFILE && error != ENFILE)
        return otherwise;
    int64_t now = zclock_mono();
    if (now - self->files_logged_ms >= 1000 || self->files_logged_ms == 0) {
        struct rlimit limit = {0, 0};
        getrlimit(RLIMIT_NOFILE, &limit);
        nsq_error("topic %s: out of file descriptors (%s; RLIMIT_NOFILE %llu): refused as too "
                  "many open files; raise the limit (ulimit -n) or close connections",
                  topic, strerror(error), (unsigned long long) limit.rlim_cur);
        self->files_logged_ms = now;
    }
    return BROKER_TOO_MANY_FILES;
}

// The topic called name; created (and announced) when create is set.
// Borrowed; NULL if absent, or if it could not be made (errno).
static broker_topic_t *s_topic(broker_server_t *self, const char *name, bool create, int64_t now)
{
    broker_topic_t *topic = zhashx_lookup(self->topics, name);
    if (topic || !create)
        return topic;
    topic = broker_topic_new(name, &self->config);
    if (!topic)
        return NULL;
    if (zhashx_insert(self->topics, name, topic) != 0) {
        broker_topic_destroy(&topic);
        errno = ENOMEM;
        return NULL;
    }
    s_state_changed(self);
    nsq_info("topic %s: created", name);
    if (self->hooks.topic_created && self->hooks.topic_created(self->hooks.arg, name))
        broker_topic_hold(topic, true, now);
    return topic;
}

// The channel called name of topic, created (and announced) when absent.
// Borrowed; NULL if it could not be made (errno).
static broker_channel_t *s_channel(broker_server_t *self, broker_topic_t *topic, const char *name,
                                   int64_t now)
{
    broker_channel_t *channel = broker_topic_channel(topic, name);
    if (channel)
        return channel;
    channel = broker_topic_add_channel(topic, name, now);
    if (!channel)
        return NULL;
    s_state_changed(self);
    broker_pump_add(self->pump, topic);  // the first channel: what the topic held moves on
    if (self->hooks.channel_created)
        self->hooks.channel_created(self->hooks.arg, broker_topic_name(topic), name);
    return channel;
}

// Takes client out of the server's list and frees it.
static void s_client_free(broker_server_t *self, broker_client_t *client)
{
    zlistx_delete(self->clients, broker_client_handle(client));
    broker_client_destroy(&client);
}

static void s_delete_channel(broker_server_t *self, broker_topic_t *topic,
                             broker_channel_t *channel, int64_t now)
{
    s_state_changed(self);
    const char *name = broker_channel_name(channel);
    broker_client_t *client;
    while ((client = broker_channel_client_at(channel, 0))) {
        broker_client_drop(client, BROKER_DROP_CHANNEL_DELETED, name, now);
        broker_channel_remove_client(channel, client, now);
        s_client_free(self, client);
    }
    nsq_info("topic %s: channel %s deleted", broker_topic_name(topic), name);
    if (self->hooks.channel_deleted)
        self->hooks.channel_deleted(self->hooks.arg, broker_topic_name(topic), name);
    broker_topic_remove_channel(topic, channel);
    broker_channel_delete(&channel);
}

static void s_delete_topic(broker_server_t *self, broker_topic_t *topic, int64_t now)
{
    s_state_changed(self);
    broker_channel_t *channel;
    while ((channel = broker_topic_channel_at(topic, 0)))
        s_delete_channel(self, topic, channel, now);
    char name[NSQ_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", broker_topic_name(topic));
    nsq_info("topic %s: deleted", name);
    if (self->hooks.topic_deleted)
        self->hooks.topic_deleted(self->hooks.arg, name);
    broker_admission_revoke(self->admission, name);
    broker_pump_remove(self->pump, topic);
    broker_topic_delete(&topic);
    zhashx_delete(self->topics, name);
}

// Deletes an ephemeral channel without consumers, and then an ephemeral
// topic without channels.
static void s_collect_ephemeral(broker_server_t *self, broker_channel_t *channel, int64_t now)
{
    if (!broker_channel_is_ephemeral(channel) || broker_channel_client_count(channel) > 0)
        return;
    broker_topic_t *topic;
    for (topic = zhashx_first(self->topics); topic; topic = zhashx_next(self->topics))
        if (broker_topic_channel(topic, broker_channel_name(channel)) == channel)
            break;
    if (!topic)
        return;
    s_delete_channel(self, topic, channel, now);
    if (broker_topic_is_ephemeral(topic) && broker_topic_channel_count(topic) == 0)
        s_delete_topic(self, topic, now);
}

bool broker_server_has(broker_server_t *self, const char *topic, const char *channel)
{
    broker_topic_t *found = zhashx_lookup(self->topics, topic);
    return found && (!channel || broker_topic_channel(found, channel));
}

void broker_server_topic_release(broker_server_t *self, const char *topic, int64_t now)
{
    broker_topic_t *found = zhashx_lookup(self->topics, topic);
    if (found) {
        broker_topic_hold(found, false, now);
        broker_pump_add(self->pump, found);
    }
}

broker_result_t broker_server_topic(broker_server_t *self, broker_admin_t op, const void *topic,
                                    size_t topic_size, int64_t now)
{
    char name[NSQ_NAME_MAX + 1];
    if (nsq_name_copy(name, topic, topic_size))
        return BROKER_BAD_TOPIC;
    broker_topic_t *found = s_topic(self, name, op == BROKER_CREATE, now);
    if (!found)
        return op == BROKER_CREATE ? s_failure(self, errno, name, BROKER_NO_MEMORY)
                                   : BROKER_TOPIC_NOT_FOUND;
    switch (op) {
    case BROKER_CREATE:
        break;
    case BROKER_DELETE:
        s_delete_topic(self, found, now);
        break;
    case BROKER_EMPTY:
        broker_topic_empty(found);
        for (size_t i = 0; i < broker_topic_channel_count(found); i++)
            broker_channel_empty(broker_topic_channel_at(found, i));
        break;
    case BROKER_PAUSE:
        broker_topic_pause(found);
        s_state_changed(self);
        break;
    case BROKER_UNPAUSE:
        broker_topic_unpause(found, now);
        broker_pump_add(self->pump, found);
        s_state_changed(self);
        break;
    }
    return BROKER_OK;
}

broker_result_t broker_server_channel(broker_server_t *self, broker_admin_t op, const void *topic,
                                      size_t topic_size, const void *channel, size_t channel_size,
                                      int64_t now)
{
    char topic_name[NSQ_NAME_MAX + 1], channel_name[NSQ_NAME_MAX + 1];
    if (nsq_name_copy(topic_name, topic, topic_size))
        return BROKER_BAD_TOPIC;
    if (nsq_name_copy(channel_name, channel, channel_size))
        return BROKER_BAD_CHANNEL;
    broker_topic_t *found = s_topic(self, topic_name, op == BROKER_CREATE, now);
    if (!found)
        return op == BROKER_CREATE ? s_failure(self, errno, topic_name, BROKER_NO_MEMORY)
                                   : BROKER_TOPIC_NOT_FOUND;
    if (op == BROKER_CREATE)
        return s_channel(self, found, channel_name, now)
                   ? BROKER_OK
                   : s_failure(self, errno, topic_name, BROKER_NO_MEMORY);
    broker_channel_t *target = broker_topic_channel(found, channel_name);
    if (!target)
        return BROKER_CHANNEL_NOT_FOUND;
    if (op == BROKER_DELETE)
        s_delete_channel(self, found, target, now);
    else if (op == BROKER_EMPTY)
        broker_channel_empty(target);
    else {
        broker_channel_set_paused(target, op == BROKER_PAUSE, now);
        s_state_changed(self);
    }
    return BROKER_OK;
}

// ---- publishing ---------------------------------------------------------------------

void broker_server_stamp(broker_server_t *self, nsq_message_t **messages, size_t count)
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
    if (highest >= self->ids_reserved) {
        self->ids_reserved =
            highest < UINT64_MAX - BROKER_ID_BLOCK ? highest + BROKER_ID_BLOCK : UINT64_MAX;
        if (self->hooks.ids_reserved)
            self->hooks.ids_reserved(self->hooks.arg);
    }
    for (size_t i = 0; i < count; i++) {
        self->last_id = base > self->last_id ? base : self->last_id + 1;
        messages[i]->id = self->last_id;
        messages[i]->timestamp = ns;
    }
}

// Checks a publish before anything is made: the topic's name into name,
// then the messages and defer against the limits.
static broker_result_t s_publish_check(const broker_server_t *self, const void *topic,
                                       size_t topic_size, char *name, nsq_message_t **messages,
                                       size_t count, int64_t defer_ms)
{
    const broker_config_t *config = &self->config;
    if (nsq_name_copy(name, topic, topic_size))
        return BROKER_BAD_TOPIC;
    if (count == 0)
        return BROKER_BAD_MESSAGE;
    if (defer_ms < 0 || defer_ms > config->max_req_timeout_ms)
        return BROKER_OUT_OF_RANGE;
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (messages[i]->size == 0 || messages[i]->size > (uint64_t) config->max_msg_size)
            return BROKER_BAD_MESSAGE;
        total += messages[i]->size;
    }
    if (count > 1 && total > (uint64_t) config->max_body_size)
        return BROKER_BAD_BODY;
    return BROKER_OK;
}

broker_result_t broker_server_publish(broker_server_t *self, const void *topic, size_t topic_size,
                                      nsq_message_t **messages, size_t count, int64_t defer_ms,
                                      int64_t now)
{
    char name[NSQ_NAME_MAX + 1];
    broker_result_t result =
        s_publish_check(self, topic, topic_size, name, messages, count, defer_ms);
    broker_topic_t *found = result == BROKER_OK ? s_topic(self, name, true, now) : NULL;
    if (result == BROKER_OK && !found)
        result = s_failure(self, errno, name, BROKER_NO_MEMORY);
    if (found) {
        broker_server_stamp(self, messages, count);
        // No room (ENOBUFS: memory full without a disk, or a disk's write
        // buffer full while the disk lags), or a disk write failed (ENOSPC...).
        if (broker_topic_publish(found, messages, count, defer_ms, now) != 0)
            result = s_failure(self, errno, name,
                               broker_topic_disk(found) && errno != ENOBUFS ? BROKER_DISK_FAILED
                                                                            : BROKER_QUEUE_FULL);
        else if (self->config.durable && self->config.data_path[0])
            result = BROKER_PENDING;
        broker_pump_add(self->pump, found);  // it may hold some now
        if (self->dirty)
            zhashx_insert(self->dirty, name, found);  // its commit; fails if in already
    }
    for (size_t i = 0; i < count; i++)
        nsq_message_unref(&messages[i]);  // NULL where the topic took them
    return result;
}

void broker_server_wait_durable(broker_server_t *self, broker_durable_fn *fn, void *arg)
{
    if (self->hooks.wait_durable && self->hooks.wait_durable(self->hooks.arg, fn, arg) == 0)
        return;
    nsq_error("durable: a publish cannot wait for its sync; answered with an error");
    fn(arg, BROKER_SYNC_FAILED);
}

// ---- clients ------------------------------------------------------------------------

broker_client_t *broker_server_client_new(broker_server_t *self, const broker_client_sink_t *sink,
                                          void *door, const char *name, int64_t now)
{
    broker_client_t *client = broker_client_new(
        sink, door, name, self->config.heartbeat_interval_ms, self->config.msg_timeout_ms, now);
    void *handle = client ? zlistx_add_end(self->clients, client) : NULL;
    if (!handle) {
        broker_client_destroy(&client);
        return NULL;
    }
    broker_client_set_handle(client, handle);
    return client;
}

void broker_server_client_close(broker_server_t *self, broker_client_t **client_p, int64_t now)
{
    broker_client_t *client = client_p ? *client_p : NULL;
    if (!client)
        return;
    broker_channel_t *channel = broker_client_channel(client);
    if (channel) {
        broker_channel_remove_client(channel, client, now);
        broker_channel_dispatch(channel, now);
        s_collect_ephemeral(self, channel, now);
    }
    s_client_free(self, client);
    *client_p = NULL;
}

broker_result_t broker_server_identify(broker_server_t *self, broker_client_t *client,
                                       const broker_identify_t *request,
                                       broker_identify_reply_t *reply)
{
    const broker_config_t *config = &self->config;
    if (broker_client_state(client) != BROKER_CLIENT_NEW)
        return BROKER_INVALID;
    int64_t heartbeat = request->heartbeat_interval_ms;
    int64_t timeout = request->msg_timeout_ms;
    if ((heartbeat
         && (heartbeat < MIN_HEARTBEAT_MS || heartbeat > config->max_heartbeat_interval_ms))
        || (timeout && (timeout < MIN_MSG_TIMEOUT_MS || timeout > config->max_msg_timeout_ms)))
        return BROKER_BAD_BODY;
    broker_client_set_timeouts(client, heartbeat ? heartbeat : config->heartbeat_interval_ms,
                               timeout ? timeout : config->msg_timeout_ms);
    broker_client_set_identity(client, request->client_id, request->client_id_size,
                               request->hostname, request->hostname_size, request->user_agent,
                               request->user_agent_size);
    broker_client_set_state(client, BROKER_CLIENT_IDENTIFIED);
    reply->heartbeat_interval_ms = broker_client_heartbeat_interval(client);
    reply->msg_timeout_ms = broker_client_msg_timeout(client);
    reply->max_msg_timeout_ms = config->max_msg_timeout_ms;
    reply->max_rdy_count = config->max_rdy_count;
    reply->max_msg_size = config->max_msg_size;
    reply->version = NSQ_VERSION;
    return BROKER_OK;
}

broker_result_t broker_server_subscribe(broker_server_t *self, broker_client_t *client,
                                        const void *topic, size_t topic_size, const void *channel,
                                        size_t channel_size, int64_t now)
{
    if (broker_client_state(client) != BROKER_CLIENT_IDENTIFIED)
        return BROKER_INVALID;
    char topic_name[NSQ_NAME_MAX + 1], channel_name[NSQ_NAME_MAX + 1];
    if (nsq_name_copy(topic_name, topic, topic_size))
        return BROKER_BAD_TOPIC;
    if (nsq_name_copy(channel_name, channel, channel_size))
        return BROKER_BAD_CHANNEL;
    broker_topic_t *found = s_topic(self, topic_name, true, now);
    broker_channel_t *target = found ? s_channel(self, found, channel_name, now) : NULL;
    if (!target || broker_channel_add_client(target, client))
        return s_failure(self, errno, topic_name, BROKER_NO_MEMORY);
    broker_client_set_state(client, BROKER_CLIENT_SUBSCRIBED);
    nsq_info("client %s (%s): subscribed to %s/%s", broker_client_name(client),
             broker_client_id(client), topic_name, channel_name);
    return BROKER_OK;
}

broker_result_t broker_server_ready(broker_server_t *self, broker_client_t *client, uint64_t count,
                                    int64_t now)
{
    broker_client_state_t state = broker_client_state(client);
    if (state != BROKER_CLIENT_SUBSCRIBED && state != BROKER_CLIENT_CLOSING)
        return BROKER_INVALID;
    if (count > (uint64_t) self->config.max_rdy_count)
        return BROKER_OUT_OF_RANGE;
    broker_client_set_rdy(client, self->draining ? 0 : (uint32_t) count);  // stopping: nothing new
    broker_channel_dispatch(broker_client_channel(client), now);
    return BROKER_OK;
}

typedef enum { SETTLE_FIN, SETTLE_REQ, SETTLE_TOUCH } settle_t;

// Applies FIN, REQ or TOUCH to every id; counts the ids not in flight to
// client in *failed.
static broker_result_t s_settle(broker_client_t *client, settle_t kind, const uint64_t *ids,
                                size_t count, int64_t delay_ms, size_t *failed, int64_t now)
{
    broker_channel_t *channel = broker_client_channel(client);
    *failed = 0;
    for (size_t i = 0; i < count; i++) {
        int rc = -1;
        if (channel && kind == SETTLE_FIN)
            rc = broker_channel_fin(channel, client, ids[i]);
        else if (channel && kind == SETTLE_TOUCH)
            rc = broker_channel_touch(channel, client, ids[i], now);
        else if (channel)
            rc = broker_channel_req(channel, client, ids[i], delay_ms, now);
        *failed += rc != 0;
    }
    if (channel && kind != SETTLE_TOUCH)
        broker_channel_dispatch(channel, now);
    return *failed ? BROKER_NOT_IN_FLIGHT : BROKER_OK;
}

broker_result_t broker_server_finish(broker_server_t *self, broker_client_t *client,
                                     const uint64_t *ids, size_t count, size_t *failed, int64_t now)
{
    (void) self;
    return s_settle(client, SETTLE_FIN, ids, count, 0, failed, now);
}

broker_result_t broker_server_requeue(broker_server_t *self, broker_client_t *client,
                                      const uint64_t *ids, size_t count, int64_t delay_ms,
                                      size_t *failed, int64_t now)
{
    int64_t max = self->config.max_req_timeout_ms;
    return s_settle(client, SETTLE_REQ, ids, count, delay_ms < max ? delay_ms : max, failed, now);
}

broker_result_t broker_server_touch(broker_server_t *self, broker_client_t *client,
                                    const uint64_t *ids, size_t count, size_t *failed, int64_t now)
{
    (void) self;
    return s_settle(client, SETTLE_TOUCH, ids, count, 0, failed, now);
}

broker_result_t broker_server_close_wait(broker_server_t *self, broker_client_t *client)
{
    (void) self;
    if (broker_client_state(client) == BROKER_CLIENT_SUBSCRIBED)
        broker_client_set_state(client, BROKER_CLIENT_CLOSING);
    return BROKER_OK;
}

void broker_server_client_ready_again(broker_server_t *self, broker_client_t *client, int64_t now)
{
    (void) self;
    broker_channel_t *channel = broker_client_channel(client);
    if (channel)
        broker_channel_dispatch(channel, now);
}

// ---- the loop's work ------------------------------------------------------------------

void broker_server_pump(broker_server_t *self, int64_t now)
{
    broker_pump_run(self->pump, now);
}

// Also puts every topic that wants a pump into the pump set (a topic
// whose disk backlog became readable again, or one an operation missed).
static void s_scan_channels(broker_server_t *self, int64_t now)
{
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        broker_pump_add(self->pump, topic);
        for (size_t i = 0; i < broker_topic_channel_count(topic); i++) {
            broker_channel_t *channel = broker_topic_channel_at(topic, i);
            if (broker_channel_scan(channel, now) > 0)
                broker_channel_dispatch(channel, now);
        }
    }
}

// True if client should be dropped: unreachable, or silent for two
// heartbeat intervals (plus a little slack for a busy network).
static bool s_client_dead(const broker_client_t *client, int64_t now)
{
    return broker_client_is_gone(client)
           || now - broker_client_last_received(client)
                  > 2 * broker_client_heartbeat_interval(client) + 500;
}

static void s_reap_clients(broker_server_t *self, int64_t now)
{
    zlistx_t *dead = NULL;
    for (broker_client_t *client = zlistx_first(self->clients); client;
         client = zlistx_next(self->clients))
        if (s_client_dead(client, now) && (dead || (dead = zlistx_new())))
            zlistx_add_end(dead, client);
    for (broker_client_t *client = dead ? zlistx_first(dead) : NULL; client;
         client = zlistx_next(dead)) {
        bool gone = broker_client_is_gone(client);
        if (broker_client_state(client) != BROKER_CLIENT_NEW)
            nsq_info("client %s (%s): %s, dropping it", broker_client_name(client),
                     broker_client_id(client), gone ? "unreachable" : "missed heartbeats");
        broker_client_drop(client, gone ? BROKER_DROP_GONE : BROKER_DROP_SILENT, NULL, now);
        broker_server_client_close(self, &client, now);
    }
    zlistx_destroy(&dead);
}

void broker_server_tick(broker_server_t *self, int64_t now)
{
    s_scan_channels(self, now);
    s_reap_clients(self, now);
    broker_server_pump(self, now);
}

uint64_t broker_server_in_flight(const broker_server_t *self)
{
    uint64_t count = 0;
    for (broker_client_t *client = zlistx_first(self->clients); client;
         client = zlistx_next(self->clients))
        count += broker_client_in_flight(client);
    return count;
}

void broker_server_drain(broker_server_t *self)
{
    self->draining = true;
    for (broker_client_t *client = zlistx_first(self->clients); client;
         client = zlistx_next(self->clients))
        broker_client_set_rdy(client, 0);
}

int broker_server_persist(broker_server_t *self, int64_t now)
{
    broker_admission_close(self->admission);  // what was answered 200 is saved too
    broker_server_admit(self);
    if (!self->config.data_path[0])
        return 0;
    size_t failed = 0;
    // Each queue's metadata is written without fsyncs and the caller's one
    // syncfs makes everything durable: three fsyncs per queue took seconds
    // for 10,000 topics.
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        if (broker_topic_persist(topic, now) != 0)
            failed++;
    if (failed)
        nsq_error("%zu topics could not be saved completely", failed);
    else
        nsq_info("saved %zu topics to %s", zhashx_size(self->topics), self->config.data_path);
    return failed ? -1 : 0;
}

// ---- message ids ----------------------------------------------------------------------

void broker_server_restore_ids(broker_server_t *self, uint64_t reserved)
{
    self->ids_reserved = reserved;
    if (reserved > self->last_id)
        self->last_id = reserved;
}

uint64_t broker_server_ids_reserved(const broker_server_t *self)
{
    return self->ids_reserved;
}
