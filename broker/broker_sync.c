/*  broker_sync - fdatasync of the disk queues off the core thread, and
    durable mode: a publish is acknowledged only after its data is on disk,
    concurrent publishes sharing one fsync (group commit)
    SPDX-License-Identifier: MIT

    In durable mode every message of a disk-backed topic or channel is
    written to its disk queue (memory holds only what is read back for
    delivery), and the acknowledgement of a publish waits in a list. The
    kick after the batch hands the written queues to the syncer; meanwhile
    the core keeps serving, and publishes arriving during the sync wait
    for the next one. When the syncer reports back over its pipe, every
    acknowledgement the sync covered is called with its result.

    Only the data is synced per commit; the queues' metadata follows the
    --sync-timeout timer, and opening a queue finds records written after
    its metadata (nsq_diskqueue.h), so nothing acknowledged is lost.

    No publish is acknowledged unless its sync succeeded, and none waits
    for ever: a sync that cannot be handed to the syncer is answered with
    an error at once, and at shutdown the running sync's own answer is
    awaited (destroying the actor would discard it) before the rest is
    synced here. The tests inject both failures through
    config.test_sync_fault.
*/
#include "broker_sync.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_log.h"

struct _broker_sync_t {
    broker_config_t config;       // durable, sync_every, test_sync_fault
    broker_sync_source_t source;  // the queues, and the state flush
    zactor_t *syncer;             // fdatasyncs batches off the core's thread
    zlistx_t *waiting;            // durable: waits for the next sync
    zlistx_t *syncing;            // durable: waits the running sync covers
    bool running;                 // the syncer is busy
};

// A durable publish waiting for its sync.
typedef struct {
    broker_sync_done_fn *fn;  // its answer
    void *arg;                // fn's argument
} durable_wait_t;

// fdatasync, or the failure a test asked for (after a pause long enough
// for a shutdown to find the sync still running).
static int s_fdatasync(int fd, broker_sync_fault_t fault)
{
    if (fault != BROKER_SYNC_FAULT_FDATASYNC)
        return fdatasync(fd);
    zclock_sleep(100);
    errno = EIO;
    return -1;
}

// The syncer thread: "SYNC" + an array of descriptors in, errno out. args
// is the test fault (broker_sync_fault_t), cast to a pointer.
static void s_syncer(zsock_t *pipe, void *args)
{
    broker_sync_fault_t fault = (broker_sync_fault_t) (intptr_t) args;
    zsock_signal(pipe, 0);
    while (true) {
        zmsg_t *message = zmsg_recv(pipe);
        char *command = message ? zmsg_popstr(message) : NULL;
        if (!command || streq(command, "$TERM")) {
            zstr_free(&command);
            zmsg_destroy(&message);
            break;
        }
        zframe_t *frame = zmsg_pop(message);
        int error = 0;
        size_t count = frame ? zframe_size(frame) / sizeof(int) : 0;
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, zframe_data(frame) + i * sizeof fd, sizeof fd);
            if (s_fdatasync(fd, fault) != 0 && !error)
                error = errno;
            close(fd);
        }
        zframe_destroy(&frame);
        zstr_free(&command);
        zmsg_destroy(&message);
        if (zsock_send(pipe, "i", error) != 0)
            break;  // the core is gone
    }
}

// Answers every wait in list: BROKER_OK, or BROKER_SYNC_FAILED if error.
static void s_answer_all(zlistx_t *list, int error)
{
    if (error)
        nsq_error("durable sync failed: %s; %zu publishes answered with an error", strerror(error),
                  zlistx_size(list));
    durable_wait_t *wait;
    while ((wait = zlistx_detach(list, NULL))) {
        wait->fn(wait->arg, error ? BROKER_SYNC_FAILED : BROKER_OK);
        free(wait);
    }
}

typedef struct {
    uint64_t every;  // --sync-every
    bool due;        // some queue holds that many
} due_scan_t;

static void s_due_one(void *arg, nsq_diskqueue_t *disk, const char *name)
{
    (void) name;
    due_scan_t *scan = arg;
    if (nsq_diskqueue_untaken_puts(disk) >= scan->every)
        scan->due = true;
}

// True if some queue holds sync_every records not yet handed over.
static bool s_sync_due(broker_sync_t *self)
{
    due_scan_t scan = {(uint64_t) self->config.sync_every, false};
    self->source.each_disk(self->source.arg, s_due_one, &scan);
    return scan.due;
}

typedef struct {
    int *fds;         // descriptors collected
    size_t count;     // used
    size_t capacity;  // allocated
    int error;        // the first failure
} fd_collection_t;

static void s_collect_one(void *arg, nsq_diskqueue_t *disk, const char *name)
{
    (void) name;
    fd_collection_t *collection = arg;
    int fd, rc = nsq_diskqueue_take_sync_fd(disk, &fd);
    if (rc < 0)
        collection->error = errno;
    if (rc != 1)
        return;
    if (collection->count == collection->capacity) {
        size_t capacity = collection->capacity ? 2 * collection->capacity : 8;
        int *grown = realloc(collection->fds, capacity * sizeof *grown);
        if (!grown) {
            close(fd);
            collection->error = ENOMEM;
            return;
        }
        collection->fds = grown;
        collection->capacity = capacity;
    }
    collection->fds[collection->count++] = fd;
}

// Collects a descriptor of every queue written since the last collection.
static fd_collection_t s_collect(broker_sync_t *self)
{
    fd_collection_t collection = {NULL, 0, 0, 0};
    self->source.each_disk(self->source.arg, s_collect_one, &collection);
    return collection;
}

broker_sync_t *broker_sync_new(const broker_config_t *config, const broker_sync_source_t *source)
{
    broker_sync_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->config.disk_listing = NULL;  // not ours
    self->source = *source;
    self->waiting = zlistx_new();
    self->syncing = zlistx_new();
    self->syncer = zactor_new(s_syncer, (void *) (intptr_t) config->test_sync_fault);
    if (!self->waiting || !self->syncing || !self->syncer)
        broker_sync_destroy(&self);
    return self;
}

zsock_t *broker_sync_socket(broker_sync_t *self)
{
    return self ? zactor_sock(self->syncer) : NULL;
}

bool broker_sync_is_running(const broker_sync_t *self)
{
    return self && self->running;
}

void broker_sync_kick(broker_sync_t *self)
{
    if (!self || self->running)
        return;
    bool due = self->config.durable ? zlistx_size(self->waiting) > 0 : s_sync_due(self);
    if (!due)
        return;
    if (self->config.durable && self->source.before_commit)
        self->source.before_commit(self->source.arg);  // an acknowledged topic must be listed
    fd_collection_t collection = s_collect(self);
    int error = collection.error;
    zlistx_t *swap = self->syncing;
    self->syncing = self->waiting;
    self->waiting = swap;
    if (collection.count > 0 && !error) {
        if (self->config.test_sync_fault != BROKER_SYNC_FAULT_HANDOFF
            && zsock_send(self->syncer, "sb", "SYNC", collection.fds,
                          collection.count * sizeof *collection.fds)
                   == 0) {
            free(collection.fds);
            self->running = true;
            return;
        }
        // Nobody will sync these or answer: answer now, never "OK".
        error = errno && self->config.test_sync_fault != BROKER_SYNC_FAULT_HANDOFF ? errno : EIO;
        nsq_error("durable: cannot hand a sync to the syncer thread: %s", strerror(error));
    }
    for (size_t i = 0; i < collection.count; i++)
        close(collection.fds[i]);
    free(collection.fds);
    s_answer_all(self->syncing, error);
}

void broker_sync_on_synced(broker_sync_t *self)
{
    int error = 0;
    if (!self || zsock_recv(zactor_sock(self->syncer), "i", &error) != 0)
        return;
    self->running = false;
    s_answer_all(self->syncing, error);
    broker_sync_kick(self);
}

int broker_sync_wait(broker_sync_t *self, broker_sync_done_fn *fn, void *arg)
{
    durable_wait_t *wait = self ? malloc(sizeof *wait) : NULL;
    if (!wait)
        return -1;
    wait->fn = fn;
    wait->arg = arg;
    if (zlistx_add_end(self->waiting, wait))
        return 0;
    free(wait);
    return -1;
}

void broker_sync_destroy(broker_sync_t **self_p)
{
    broker_sync_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    // The running sync's answer decides for the publishes it covers.
    int running_error = 0;
    if (self->running && zsock_recv(zactor_sock(self->syncer), "i", &running_error) != 0)
        running_error = EIO;  // its answer is lost: do not claim success
    zactor_destroy(&self->syncer);
    if (self->waiting && self->syncing) {
        fd_collection_t collection = s_collect(self);
        int error = collection.error;
        for (size_t i = 0; i < collection.count; i++) {
            if (fdatasync(collection.fds[i]) != 0 && !error)
                error = errno;
            close(collection.fds[i]);
        }
        free(collection.fds);
        s_answer_all(self->syncing, running_error);
        s_answer_all(self->waiting, error);
    }
    zlistx_destroy(&self->syncing);
    zlistx_destroy(&self->waiting);
    free(self);
    *self_p = NULL;
}
