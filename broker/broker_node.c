/*  broker_node - one broker without sockets or loop: the server wired to
    its state file, its syncer and its lookupd links
    SPDX-License-Identifier: MIT
*/
#include "broker_node.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_state.h"
#include "broker_sync.h"
#include "nsq_diskio.h"
#include "nsq_log.h"

struct _broker_node_t {
    broker_config_t config;   // data_path, sync_timeout_ms
    nsq_diskio_t *diskio;     // the disk I/O actor; NULL in memory
    broker_state_t *state;    // the state file and the data path's lock
    broker_server_t *server;  // topics, channels, clients
    broker_sync_t *sync;      // durable acknowledgements; NULL unless durable on disk
    broker_lookup_t *lookup;  // the lookupd links (borrowed), or NULL
    broker_auth_t *auth;      // the auth server client; NULL without --auth-http-address
};

// ---- the server's hooks -------------------------------------------------------

static bool s_topic_created(void *arg, const char *topic)
{
    broker_node_t *self = arg;
    return self->lookup && broker_lookup_topic_created(self->lookup, topic);
}

static void s_topic_deleted(void *arg, const char *topic)
{
    broker_node_t *self = arg;
    if (self->lookup)
        broker_lookup_topic_deleted(self->lookup, topic);
}

static void s_channel_created(void *arg, const char *topic, const char *channel)
{
    broker_node_t *self = arg;
    if (self->lookup)
        broker_lookup_channel_created(self->lookup, topic, channel);
}

static void s_channel_deleted(void *arg, const char *topic, const char *channel)
{
    broker_node_t *self = arg;
    if (self->lookup)
        broker_lookup_channel_deleted(self->lookup, topic, channel);
}

static void s_state_changed(void *arg)
{
    broker_node_t *self = arg;
    broker_state_changed(self->state);
}

static void s_ids_reserved(void *arg)
{
    broker_node_t *self = arg;
    broker_state_save(self->state, NULL, NULL);  // a failure is logged and retried by the tick
}

static int s_wait_durable(void *arg, broker_durable_fn *fn, void *fn_arg)
{
    broker_node_t *self = arg;
    return broker_sync_wait(self->sync, fn, fn_arg);
}

// ---- the state file ------------------------------------------------------------

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
    broker_node_t *self = arg;
    broker_state_entry_t ids = {BROKER_STATE_IDS, broker_server_ids_reserved(self->server), NULL,
                                NULL, false};
    emit(emit_arg, &ids);
    state_listing_t listing = {emit, emit_arg};
    broker_server_each(self->server, s_state_entry, &listing);
}

// Creates a topic (channel NULL) or channel and pauses it if paused;
// returns 0 or -1.
static int s_restore_one(broker_server_t *server, const char *topic, const char *channel,
                         bool paused, int64_t now)
{
    broker_admin_t ops[2] = {BROKER_CREATE, BROKER_PAUSE};
    for (int i = 0; i < (paused ? 2 : 1); i++) {
        broker_result_t result =
            channel ? broker_server_channel(server, ops[i], topic, strlen(topic), channel,
                                            strlen(channel), now)
                    : broker_server_topic(server, ops[i], topic, strlen(topic), now);
        if (result != BROKER_OK)
            return -1;
    }
    return 0;
}

// Restores one entry of the state file into the server (a channel only
// of a topic restored before it).
static int s_state_restore(void *arg, const broker_state_entry_t *entry)
{
    broker_node_t *self = arg;
    if (entry->kind == BROKER_STATE_IDS) {
        broker_server_restore_ids(self->server, entry->ids);
        return 0;
    }
    if (entry->kind == BROKER_STATE_CHANNEL && !broker_server_has(self->server, entry->topic, NULL))
        return -1;
    return s_restore_one(self->server, entry->topic,
                         entry->kind == BROKER_STATE_CHANNEL ? entry->channel : NULL, entry->paused,
                         zclock_mono());
}

// ---- the syncer and the lookupd links -------------------------------------------------

// A group commit syncs the queues published to since the last one began.
static void s_each_disk(void *arg, broker_sync_disk_fn *fn, void *fn_arg)
{
    broker_node_t *self = arg;
    broker_server_each_dirty_disk(self->server, fn, fn_arg);
}

static void s_flush_state(void *arg, broker_sync_report_fn *report, void *report_arg)
{
    broker_node_t *self = arg;
    broker_state_flush(self->state, report, report_arg);  // an acknowledged topic must be listed
}

static void s_each_name(void *arg, broker_lookup_name_fn *fn, void *fn_arg)
{
    broker_node_t *self = arg;
    broker_server_each(self->server, fn, fn_arg);
}

static bool s_channel_known(void *arg, const char *topic, const char *channel)
{
    broker_node_t *self = arg;
    if (!broker_server_has(self->server, topic, NULL)
        || broker_server_has(self->server, topic, channel))
        return false;
    return broker_server_channel(self->server, BROKER_CREATE, topic, strlen(topic), channel,
                                 strlen(channel), zclock_mono())
           == BROKER_OK;
}

static void s_release(void *arg, const char *topic)
{
    broker_node_t *self = arg;
    broker_server_topic_release(self->server, topic, zclock_mono());
}

// ---- life cycle ---------------------------------------------------------------

// Makes the disk I/O actor and the state file (the data path's lock
// taken). Returns 0, or -1 with a reason in error.
static int s_open_disk(broker_node_t *self, char *error, size_t size)
{
    if (self->config.data_path[0] && !(self->diskio = nsq_diskio_new())) {
        snprintf(error, size, "cannot start the disk I/O thread");
        return -1;
    }
    self->config.diskio = self->diskio;
    if (self->diskio && self->config.test_datasync_errno)
        nsq_diskio_fail_next(self->diskio, NSQ_DISKIO_DATASYNC, self->config.test_datasync_errno);
    self->state = broker_state_new(self->config.data_path, self->diskio, s_state_list, self);
    if (!self->state) {
        snprintf(error, size, "out of memory");
        return -1;
    }
    return broker_state_lock(self->state, error, size);
}

broker_node_t *broker_node_new(const broker_config_t *config, char *error, size_t size)
{
    broker_node_t *self = calloc(1, sizeof *self);
    if (!self)
        return snprintf(error, size, "out of memory"), NULL;
    self->config = *config;
    self->config.disk_listing = NULL;  // the server's
    if (s_open_disk(self, error, size) != 0) {
        broker_node_destroy(&self);
        return NULL;
    }
    broker_config_t copy = self->config;
    if (copy.data_path[0] && !(copy.disk_listing = nsq_diskqueue_listing_new(copy.data_path))) {
        snprintf(error, size, "cannot list --data-path %.400s: %s", copy.data_path,
                 strerror(errno));
        broker_node_destroy(&self);
        return NULL;
    }
    broker_server_hooks_t hooks = {self,
                                   s_topic_created,
                                   s_topic_deleted,
                                   s_channel_created,
                                   s_channel_deleted,
                                   s_state_changed,
                                   s_ids_reserved,
                                   s_wait_durable};
    self->server = broker_server_new(&copy, &hooks);  // the listing moves to the server
    if (!self->server) {
        nsq_diskqueue_listing_destroy(&copy.disk_listing);
        snprintf(error, size, "out of memory");
    }
    broker_sync_source_t source = {self, s_each_disk, s_flush_state};
    if (self->server && copy.durable && copy.data_path[0]
        && !(self->sync = broker_sync_new(&source))) {
        snprintf(error, size, "out of memory");
        broker_node_destroy(&self);
        return NULL;
    }
    if (!self->server || broker_state_load(self->state, s_state_restore, self, error, size) != 0) {
        broker_node_destroy(&self);
        return NULL;
    }
    if (self->diskio)
        nsq_diskio_wait(self->diskio, -1);  // start-up: the restored queues have recovered
    return self;
}

int broker_node_start_auth(broker_node_t *self, char *error, size_t size)
{
    const broker_config_t *config = &self->config;
    if (config->auth_http_count == 0)
        return 0;
    const char *addresses[BROKER_AUTHD_MAX];
    for (int i = 0; i < config->auth_http_count; i++)
        addresses[i] = config->auth_http_addresses[i];
    self->auth = broker_auth_new(addresses, config->auth_http_count, config->auth_http_timeout_ms);
    if (!self->auth)
        return snprintf(error, size, "cannot start the auth server client"), -1;
    broker_server_set_auth(self->server, self->auth);
    return 0;
}

zsock_t *broker_node_auth_socket(broker_node_t *self)
{
    return self->auth ? broker_auth_socket(self->auth) : NULL;
}

void broker_node_on_auth(broker_node_t *self, int64_t now)
{
    broker_auth_on_answer(self->auth, now);
    broker_node_after_batch(self, now);  // the requests it let through published
}

void broker_node_destroy(broker_node_t **self_p)
{
    broker_node_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    broker_sync_destroy(&self->sync);
    broker_server_destroy(&self->server);  // the queues hand their last work to the actor
    broker_auth_destroy(&self->auth);
    nsq_diskio_destroy(&self->diskio);   // waits for it: then nothing calls back
    broker_state_destroy(&self->state);  // releases the lock
    free(self);
    *self_p = NULL;
}

broker_server_t *broker_node_server(broker_node_t *self)
{
    return self->server;
}

zsock_t *broker_node_disk_socket(broker_node_t *self)
{
    return self->diskio ? nsq_diskio_sock(self->diskio) : NULL;
}

void broker_node_on_disk(broker_node_t *self)
{
    if (self->diskio)
        nsq_diskio_dispatch(self->diskio);
}

broker_lookup_source_t broker_node_lookup_source(broker_node_t *self)
{
    return (broker_lookup_source_t){self, s_each_name, s_channel_known, s_release};
}

void broker_node_set_lookup(broker_node_t *self, broker_lookup_t *lookup)
{
    self->lookup = lookup;
}

void broker_node_wait_disk(broker_node_t *self)
{
    if (self->diskio)
        nsq_diskio_wait(self->diskio, -1);
}

void broker_node_after_batch(broker_node_t *self, int64_t now)
{
    broker_server_pump(self->server, now);
    broker_state_check(self->state, now);
    broker_sync_kick(self->sync);
}

typedef struct {
    int64_t now;      // monotonic ms
    int64_t timeout;  // --sync-timeout
} timeout_scan_t;

static void s_sync_one(void *arg, nsq_diskqueue_t *disk, const char *name)
{
    timeout_scan_t *scan = arg;
    if (nsq_diskqueue_maybe_sync(disk, scan->now, scan->timeout) != 0)
        nsq_error("queue %s: sync failed: %s", name, strerror(errno));
}

void broker_node_tick(broker_node_t *self, int64_t now)
{
    broker_node_on_disk(self);  // a node driven without a loop (fuzz targets) hears its disk here
    broker_server_tick(self->server, now);
    if (self->auth)
        broker_auth_tick(self->auth, now);
    timeout_scan_t scan = {now, self->config.sync_timeout_ms};
    broker_server_each_disk(self->server, s_sync_one, &scan);
    broker_state_tick(self->state, now);
}

void broker_node_settle(broker_node_t *self)
{
    broker_sync_kick(self->sync);
    if (self->diskio)
        nsq_diskio_wait(self->diskio, -1);  // every group commit ends and answers
    broker_sync_destroy(&self->sync);
}

// What persist waits for: the state file's save and the file system's sync.
typedef struct {
    broker_node_t *node;
    int state_error;  // -1 until the save reports, then its errno (0: saved)
    int sync_error;   // -1 until the sync reports, then its errno (0: synced)
} persist_t;

static void s_state_saved(void *arg, int error)
{
    persist_t *persist = arg;
    persist->state_error = error;
}

static void s_synced_fs(void *arg, int result, int error)
{
    (void) result;
    persist_t *persist = arg;
    persist->sync_error = error;
    if (error)
        nsq_error("cannot sync %s: %s", persist->node->config.data_path, strerror(error));
}

// What the queues could not do, summed over them.
typedef struct {
    uint64_t failures;   // failed writes, syncs and metadata replacements
    uint64_t unwritten;  // records still waiting to be written
} losses_t;

static void s_add_losses(void *arg, nsq_diskqueue_t *disk, const char *name)
{
    (void) name;
    losses_t *losses = arg;
    losses->failures += nsq_diskqueue_sync_failures(disk);
    losses->unwritten += nsq_diskqueue_unwritten(disk);
}

int broker_node_persist(broker_node_t *self, int64_t now)
{
    if (!self->diskio)
        return 0;
    nsq_diskio_wait(self->diskio, -1);  // every queue recovered, every pending record written
    // The syncfs below makes the new segments' names durable: one
    // directory fsync per queue took seconds for thousands of topics.
    nsq_diskio_defer_dir_syncs(self->diskio, true);
    // The queues write in the background: their failures (records that
    // could not be written, metadata not replaced) show in their counters.
    losses_t before = {0, 0}, after = {0, 0};
    broker_server_each_disk(self->server, s_add_losses, &before);
    int queues = broker_server_persist(self->server, now);
    persist_t persist = {self, -1, -1};
    broker_state_save(self->state, s_state_saved, &persist);
    if (nsq_diskio_syncfs(self->diskio, self->config.data_path, s_synced_fs, &persist) != 0)
        nsq_error("cannot sync %s: out of memory", self->config.data_path);
    nsq_diskio_wait(self->diskio, -1);
    broker_server_each_disk(self->server, s_add_losses, &after);
    if (after.unwritten)  // what a write failure left behind goes with the queue
        nsq_error("%llu messages could not be written to disk and are lost",
                  (unsigned long long) after.unwritten);
    bool lost = queues != 0 || after.failures != before.failures || after.unwritten;
    return lost || persist.state_error || persist.sync_error ? -1 : 0;
}

static void s_test_saved(void *arg, int error)
{
    *(int *) arg = error;
}

int broker_node_save_state(broker_node_t *self)
{
    int error = -1;
    broker_state_save(self->state, s_test_saved, &error);
    if (self->diskio)
        nsq_diskio_wait(self->diskio, -1);
    return error == 0 ? 0 : -1;
}
