/*  broker_state - the broker's data directory: its lock, the list of topics
    and channels, periodic syncs, and what a restart saves and restores
    SPDX-License-Identifier: MIT

    Files in --data-path besides the disk queues:
        nsq-broker.lock   flock'd while a broker runs, so a second broker on
                          the same directory refuses to start
        nsq-broker.dat    "nsq-broker-state 1", "ids N" (every message id
                          handed out so far is below N), then one line per
                          durable topic ("topic NAME PAUSED") and channel
                          ("channel TOPIC NAME PAUSED"), replaced atomically
                          (temp file, fsync, rename, fsync of the directory)
    The list is rewritten when its fingerprint changes (a topic or channel
    created, deleted, paused or unpaused), when the ids reserved run out
    (about once a minute of publishing), and at shutdown. The core sets
    state_changed where those happen, so the check after each batch of
    commands or requests costs nothing unless one did; the fingerprint
    then skips rewrites for ephemeral names. Changes are saved at most
    every STATE_SAVE_MIN_MS (the tick saves what is left), since each save
    writes the whole list: 10,000 topics created one by one would
    otherwise write it 10,000 times. A durable publish is acknowledged
    only after its topic is listed (broker_state_flush before each sync). Ephemeral topics and
   channels are never listed. A save that fails is retried on every tick until one succeeds (logged
   at most every STATE_RETRY_LOG_MS).

    At start the data directory is listed once (nsq_diskqueue_listing_t,
    kept in config.disk_listing for the core's life) and every disk queue
    opens from that listing: a scan of the directory per queue made a
    restart with 10,000 topics take minutes. At shutdown each topic's and
    channel's messages are written, its metadata replaced without fsyncs
    and its files closed, and one syncfs of the data directory then makes
    all of it durable: three fsyncs per queue took seconds for 10,000
    topics, and files stay closed so a low RLIMIT_NOFILE is no obstacle.

    An empty data path (the self-tests) means memory only: none of this runs.
*/
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "broker_core.h"
#include "nsq_log.h"
#include "nsq_names.h"

#define STATE_FILE   "nsq-broker.dat"
#define LOCK_FILE    "nsq-broker.lock"
#define STATE_HEADER "nsq-broker-state 1"
// Ids reserved ahead: about a minute of the clock (ids carry the time in
// ms above bit 22), so publishing rewrites the state file about once a
// minute, not per message.
#define STATE_ID_BLOCK (60000ULL << 22)
// Least time between two log lines about failed saves.
#define STATE_RETRY_LOG_MS 10000
// Least time between two saves for changes (the tick catches up).
#define STATE_SAVE_MIN_MS 100

int broker_state_lock(broker_core_t *self, char *error, size_t size)
{
    self->lock_fd = -1;
    if (!self->config.data_path[0])
        return 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", self->config.data_path, LOCK_FILE);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->lock_fd < 0) {
        snprintf(error, size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(error, size, "--data-path %s is in use by another broker (%s is locked)",
                 self->config.data_path, path);
        close(self->lock_fd);
        self->lock_fd = -1;
        return -1;
    }
    return 0;
}

void broker_state_unlock(broker_core_t *self)
{
    if (self->lock_fd >= 0)
        close(self->lock_fd);  // releases the flock
    self->lock_fd = -1;
}

static uint64_t s_hash(uint64_t hash, const char *text)
{
    for (; *text; text++)
        hash = (hash ^ (uint8_t) *text) * 1099511628211ULL;
    return (hash ^ 0xff) * 1099511628211ULL;
}

// A fingerprint of the durable topics and channels and their paused state,
// independent of iteration order.
static uint64_t s_fingerprint(broker_core_t *self)
{
    uint64_t sum = 1;
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        if (topic->ephemeral)
            continue;
        uint64_t base = s_hash(14695981039346656037ULL, topic->name);
        sum += s_hash(base, topic->paused ? "p" : "r");
        for (size_t i = 0; i < topic->channel_count; i++) {
            broker_channel_t *channel = topic->channels[i];
            if (!channel->ephemeral)
                sum += s_hash(s_hash(base, channel->name), channel->paused ? "p" : "r");
        }
    }
    return sum;
}

static void s_write_lines(broker_core_t *self, FILE *file)
{
    fprintf(file, "%s\nids %" PRIu64 "\n", STATE_HEADER, self->ids_reserved);
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        if (topic->ephemeral)
            continue;
        fprintf(file, "topic %s %d\n", topic->name, topic->paused);
        for (size_t i = 0; i < topic->channel_count; i++) {
            broker_channel_t *channel = topic->channels[i];
            if (!channel->ephemeral)
                fprintf(file, "channel %s %s %d\n", topic->name, channel->name, channel->paused);
        }
    }
}

// Replaces the state file at path. Returns 0, or -1 with errno.
static int s_write_file(broker_core_t *self, const char *path)
{
    char temp[1210];
    snprintf(temp, sizeof temp, "%s.tmp", path);
    FILE *file = fopen(temp, "we");
    if (!file)
        return -1;
    s_write_lines(self, file);
    if (fflush(file) != 0 || fdatasync(fileno(file)) != 0) {
        int saved = errno;
        fclose(file);
        errno = saved;
        return -1;
    }
    fclose(file);
    if (rename(temp, path) != 0)
        return -1;
    int dir = open(self->config.data_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync(dir);
        close(dir);
    }
    return 0;
}

int broker_state_save(broker_core_t *self)
{
    if (!self->config.data_path[0])
        return 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", self->config.data_path, STATE_FILE);
    self->state_saved_ms = zclock_mono();
    self->state_changed = false;
    if (s_write_file(self, path) == 0) {
        if (self->state_failures)
            nsq_info("%s saved after %" PRIu64 " failed attempts", path, self->state_failures);
        self->state_failures = 0;
        self->state_unsaved = false;
        self->state_fingerprint = s_fingerprint(self);
        return 0;
    }
    // Kept for the tick to retry; one line now and then says it still fails.
    self->state_unsaved = true;
    int64_t now = zclock_mono();
    if (self->state_failures++ == 0 || now - self->state_logged_ms >= STATE_RETRY_LOG_MS) {
        nsq_error("cannot write %s: %s (attempt %" PRIu64 "; retrying every tick)", path,
                  strerror(errno), self->state_failures);
        self->state_logged_ms = now;
    }
    return -1;
}

void broker_state_reserve_ids(broker_core_t *self, uint64_t highest)
{
    self->ids_reserved =
        highest < UINT64_MAX - STATE_ID_BLOCK ? highest + STATE_ID_BLOCK : UINT64_MAX;
    broker_state_save(self);  // a failure is logged and retried by the tick
}

// Restores one line of the state file. Returns 0, or -1 if it is bad.
static int s_load_line(broker_core_t *self, const char *line)
{
    char kind[16], first[80], second[80];
    int paused = 0;
    int64_t now = zclock_mono();
    uint64_t ids;
    if (sscanf(line, "ids %" SCNu64, &ids) == 1) {
        self->ids_reserved = ids;
        self->last_id = ids > self->last_id ? ids : self->last_id;
        return 0;
    }
    if (sscanf(line, "topic %79s %d", first, &paused) == 2 && nsq_name_is_valid(first)) {
        broker_topic_t *topic = broker_core_topic(self, first, true);
        if (!topic)
            return -1;
        topic->paused = paused != 0;
        return 0;
    }
    if (sscanf(line, "%15s %79s %79s %d", kind, first, second, &paused) == 4
        && strcmp(kind, "channel") == 0 && nsq_name_is_valid(second)) {
        broker_topic_t *topic = broker_core_topic(self, first, false);
        broker_channel_t *channel = topic ? broker_topic_add_channel(topic, second, now) : NULL;
        if (!channel)
            return -1;
        channel->paused = paused != 0;
        return 0;
    }
    return -1;
}

int broker_state_load(broker_core_t *self, char *error, size_t size)
{
    if (!self->config.data_path[0])
        return 0;
    self->config.disk_listing = nsq_diskqueue_listing_new(self->config.data_path);
    if (!self->config.disk_listing) {
        snprintf(error, size, "cannot list --data-path %s: %s", self->config.data_path,
                 strerror(errno));
        return -1;
    }
    char path[1200], line[256];
    snprintf(path, sizeof path, "%s/%s", self->config.data_path, STATE_FILE);
    FILE *file = fopen(path, "re");
    if (!file && errno == ENOENT)
        return 0;
    if (!file || !fgets(line, sizeof line, file) || strncmp(line, STATE_HEADER, 18) != 0) {
        snprintf(error, size, "cannot read %s: %s", path,
                 file ? "not a broker state file" : strerror(errno));
        if (file)
            fclose(file);
        return -1;
    }
    size_t topics = 0, channels = 0;
    while (fgets(line, sizeof line, file)) {
        if (s_load_line(self, line) != 0)
            nsq_error("%s: cannot restore \"%.*s\"", path, (int) strcspn(line, "\n"), line);
        else if (line[0] == 't')
            topics++;
        else if (line[0] == 'c')
            channels++;
    }
    fclose(file);
    self->state_fingerprint = s_fingerprint(self);
    nsq_info("restored %zu topics and %zu channels from %s", topics, channels, path);
    return 0;
}

// Syncs each disk queue whose --sync-timeout has passed.
static void s_sync_queues(broker_core_t *self, int64_t now)
{
    int64_t timeout = self->config.sync_timeout_ms;
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        if (topic->disk && nsq_diskqueue_maybe_sync(topic->disk, now, timeout) != 0)
            nsq_error("topic %s: sync failed: %s", topic->name, strerror(errno));
        for (size_t i = 0; i < topic->channel_count; i++) {
            broker_channel_t *channel = topic->channels[i];
            if (channel->disk && nsq_diskqueue_maybe_sync(channel->disk, now, timeout) != 0)
                nsq_error("channel %s: sync failed: %s", channel->name, strerror(errno));
        }
    }
}

void broker_state_pump(broker_core_t *self, int64_t now)
{
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        broker_topic_pump(topic, now);
}

void broker_state_tick(broker_core_t *self, int64_t now)
{
    broker_state_pump(self, now);
    if (!self->config.data_path[0])
        return;
    s_sync_queues(self, now);
    if (self->state_unsaved)
        broker_state_save(self);
    broker_state_check(self);
}

void broker_state_check(broker_core_t *self)
{
    if (self->state_changed && zclock_mono() - self->state_saved_ms >= STATE_SAVE_MIN_MS)
        broker_state_flush(self);
}

void broker_state_flush(broker_core_t *self)
{
    if (!self->state_changed)
        return;
    self->state_changed = false;
    if (self->config.data_path[0] && s_fingerprint(self) != self->state_fingerprint)
        broker_state_save(self);
}

// Settles one queue after its messages were written: with syncfs to come,
// its metadata without fsyncs (and its files closed), else a full sync.
static int s_settle(nsq_diskqueue_t *disk, bool syncfs_follows)
{
    if (!disk)
        return 0;
    return syncfs_follows ? nsq_diskqueue_write_meta(disk) : nsq_diskqueue_sync(disk);
}

// Writes a topic's and its channels' messages to disk and settles their
// queues. Returns 0, or -1 if something could not be written.
static int s_persist_topic(broker_topic_t *topic, int64_t now, bool syncfs_follows)
{
    int rc = broker_topic_persist(topic, now);
    if (s_settle(topic->disk, syncfs_follows) != 0)
        rc = -1;
    for (size_t i = 0; i < topic->channel_count; i++)
        if (s_settle(topic->channels[i]->disk, syncfs_follows) != 0)
            rc = -1;
    return rc;
}

void broker_state_persist(broker_core_t *self)
{
    if (!self->config.data_path[0])
        return;
    int64_t now = zclock_mono();
    size_t failed = 0;
    int dir = open(self->config.data_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        if (s_persist_topic(topic, now, dir >= 0) != 0)
            failed++;
    if (dir >= 0 && syncfs(dir) != 0) {
        nsq_error("cannot sync %s: %s", self->config.data_path, strerror(errno));
        failed++;
    }
    if (dir >= 0)
        close(dir);
    broker_state_save(self);
    if (failed)
        nsq_error("%zu topics could not be saved completely", failed);
    else
        nsq_info("saved %zu topics to %s", zhashx_size(self->topics), self->config.data_path);
}
