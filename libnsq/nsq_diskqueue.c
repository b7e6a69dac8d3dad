/*  nsq_diskqueue - the disk queue itself: construction, the hand-off of
    the recovery in async mode, destroy and delete, empty
    SPDX-License-Identifier: MIT

    The class's parts are listed in nsq_diskqueue_internal.h. This file
    builds a queue and ends it.

    Synchronous mode recovers in the constructor. Async mode builds a
    private twin of the queue (synchronous, same directory and name) and
    hands it to the actor, which runs the same recovery over it; the queue
    itself is usable at once (puts wait in the pending buffer, gets answer
    NSQ_DISKQUEUE_WAIT). When the recovery completes, the twin's positions,
    segment list and counts move into the queue on the owner's thread and
    the twin is freed: the two never share memory while both threads run.

    Ending in async mode: destroy and delete mark the queue and forget the
    caller's pointer; the final work (write out pending records, then the
    last data sync, metadata and closes; or, for delete, closes and
    unlinks) goes to the actor, and the queue's memory is freed when its
    last completion has run. A queue never frees itself inside one of its
    own callbacks (dq_enter / dq_leave).
*/
#include "nsq_diskqueue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

// ---- construction ----------------------------------------------------------------

// Async mode: what the actor needs to recover a twin of the queue.
typedef struct {
    nsq_diskqueue_t *twin;        // synchronous copy the recovery works on
    int64_t *numbers;             // the listing's segment numbers, or NULL
    size_t count;                 // how many
    dq_listed_verdict_t verdict;  // whether they are the queue's
} dq_recovery_t;

static void s_free(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (!async)
        dq_release(self);
    if (async) {
        free(async->pending);
        while (async->ranges) {
            dq_range_t *next = async->ranges->next;
            free(async->ranges);
            async->ranges = next;
        }
        free(async);
    }
    free(self->segments);
    free(self->dir);
    free(self->name);
    free(self);
}

static nsq_diskqueue_t *s_alloc(const nsq_diskqueue_config_t *config)
{
    nsq_diskqueue_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = strdup(config->dir);
    self->name = strdup(config->name);
    self->max_bytes_per_file = config->max_bytes_per_file;
    self->max_msg_size = config->max_msg_size;
    self->sync_every = config->sync_every;
    self->write_fd = -1;
    self->read_fd = -1;
    self->read_end = -1;
    self->keep = NSQ_DISKQUEUE_KEEP_NONE;
    if (!self->dir || !self->name) {
        s_free(self);
        return NULL;
    }
    return self;
}

static void s_recovery_free(dq_recovery_t *job)
{
    if (job->twin)
        s_free(job->twin);
    free(job->numbers);
    free(job);
}

static int s_empty(nsq_diskqueue_t *self);

// On the actor thread: recovers the twin.
static int s_recover(void *job_arg)
{
    dq_recovery_t *job = job_arg;
    return dq_recover(job->twin, job->numbers, job->count, job->verdict);
}

void dq_recovered(nsq_diskqueue_t *self, void *job_arg, int error)
{
    dq_recovery_t *job = job_arg;
    nsq_diskqueue_t *twin = job->twin;
    dq_async_t *async = self->async;
    if (error) {
        nsq_error("diskqueue %s: cannot open in %s: %s", self->name, self->dir, strerror(error));
        async->state = DQ_FAILED;
        async->open_error = error;
        dq_fail_waiters(self, 0, error);
        dq_drop_pending(self, true);
    } else {
        self->read_file = twin->read_file;
        self->read_pos = twin->read_pos;
        self->write_file = twin->write_file;
        self->write_pos = twin->write_pos;
        self->depth += twin->depth;  // the pending records are counted already
        free(self->segments);
        self->segments = twin->segments;
        self->segment_count = twin->segment_count;
        self->segment_capacity = twin->segment_capacity;
        twin->segments = NULL;
        self->first_ordinal = twin->first_ordinal;
        self->corrupt_count += twin->corrupt_count;
        self->last_sync_ms = dq_now_ms();
        async->state = DQ_READY;
        if (self->keeping)
            dq_delete_done(self);
        if (async->empty_wanted && async->ending != DQ_DELETING && s_empty(self) != 0)
            nsq_error("diskqueue %s: cannot empty: %s", self->name, strerror(errno));
        async->empty_wanted = false;
        if (async->ending != DQ_DELETING)
            dq_flush_pending(self);  // asks for the write descriptor
        dq_resolve(self);
    }
    s_recovery_free(job);
    dq_reader_wake(self);
}

// Async mode: a queue that recovers on the actor thread.
static nsq_diskqueue_t *s_open_async(const nsq_diskqueue_config_t *config)
{
    nsq_diskqueue_t *self = s_alloc(config);
    dq_recovery_t *job = calloc(1, sizeof *job);
    dq_async_t *async = calloc(1, sizeof *async);
    if (self)
        self->async = async;
    if (!self || !job || !async || !(job->twin = s_alloc(config))
        || dq_listing_take(config->listing, config->name, &job->numbers, &job->count, &job->verdict)
               != 0) {
        if (job)
            s_recovery_free(job);
        if (self)
            s_free(self);
        else
            free(async);
        return NULL;
    }
    size_t record_max = NSQ_DISKQUEUE_HEADER_SIZE + (size_t) config->max_msg_size;
    async->diskio = config->diskio;
    async->wake = config->wake;
    async->wake_arg = config->wake_arg;
    async->state = DQ_RECOVERING;
    async->pending_max = config->pending_max ? config->pending_max : DQ_PENDING_MAX;
    if (async->pending_max < record_max)
        async->pending_max = record_max;
    async->write_opening = async->next_opening = async->read_opening = -1;
    async->next_fd = -1;
    async->ranges_tail = &async->ranges;
    async->waiters_tail = &async->waiters;
    if (dq_request_recover(self, s_recover, job) != 0) {
        s_recovery_free(job);
        s_free(self);
        return NULL;
    }
    return self;
}

nsq_diskqueue_t *nsq_diskqueue_open(const nsq_diskqueue_config_t *config)
{
    if (config->diskio)
        return s_open_async(config);
    nsq_diskqueue_t *self = s_alloc(config);
    if (!self)
        return NULL;
    int64_t *numbers = NULL;
    size_t count = 0;
    dq_listed_verdict_t verdict;
    if (dq_listing_take(config->listing, self->name, &numbers, &count, &verdict) != 0
        || dq_recover(self, numbers, count, verdict) != 0) {
        int saved = errno;
        nsq_error("diskqueue %s: cannot open in %s: %s", self->name, self->dir, strerror(saved));
        self->meta_dirty = false;
        self->dir_unsynced = false;
        self->unsynced_writes = 0;
        nsq_diskqueue_destroy(&self);
        errno = saved;
    }
    free(numbers);
    return self;
}

nsq_diskqueue_t *nsq_diskqueue_new_listed(const char *dir, const char *name,
                                          int64_t max_bytes_per_file, uint32_t max_msg_size,
                                          int64_t sync_every, nsq_diskqueue_listing_t *listing)
{
    nsq_diskqueue_config_t config = {
        .dir = dir,
        .name = name,
        .max_bytes_per_file = max_bytes_per_file,
        .max_msg_size = max_msg_size,
        .sync_every = sync_every,
        .listing = listing,
    };
    return nsq_diskqueue_open(&config);
}

nsq_diskqueue_t *nsq_diskqueue_new(const char *dir, const char *name, int64_t max_bytes_per_file,
                                   uint32_t max_msg_size, int64_t sync_every)
{
    return nsq_diskqueue_new_listed(dir, name, max_bytes_per_file, max_msg_size, sync_every, NULL);
}

// ---- ending ----------------------------------------------------------------------

// Async delete: closes the descriptors and removes every file.
static void s_remove_files(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    dq_close_reader(self);
    if (self->write_fd >= 0)
        dq_close(self, self->write_fd);
    self->write_fd = -1;
    if (async->next_fd >= 0 || async->next_opening >= 0)
        dq_unlink_segment(self, self->write_file + 1);
    if (async->next_fd >= 0)
        dq_close(self, async->next_fd);
    async->next_fd = -1;
    if (async->state != DQ_READY)
        nsq_warn("diskqueue %s: never opened, its segments stay in %s", self->name, self->dir);
    for (size_t i = 0; async->state == DQ_READY && i < self->segment_count; i++)
        dq_unlink_segment(self, self->segments[i]);
    dq_unlink_meta(self);
}

// Hands the final work of an ended async queue to the actor once it can,
// and frees the queue when nothing is outstanding. Returns true if freed.
static bool s_finish(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (async->state == DQ_RECOVERING)
        return false;  // its completion comes back here
    async->busy++;
    if (!async->ending_started && async->ending == DQ_CLOSING && async->state == DQ_READY) {
        dq_flush_pending(self);  // may wait for the write descriptor
        if (async->pending_count > 0 && self->write_fd < 0 && async->write_opening < 0)
            dq_drop_pending(self, true);  // it could not even be asked for
        if (async->pending_count == 0) {
            async->ending_started = true;
            dq_sync(self, true);
        }
    } else if (!async->ending_started) {
        async->ending_started = true;
        int error = async->ending == DQ_DELETING ? ECANCELED : async->open_error;
        dq_fail_waiters(self, 0, error);
        dq_drop_pending(self, async->ending != DQ_DELETING);
        if (async->ending == DQ_DELETING)
            s_remove_files(self);
    }
    async->busy--;
    if (!async->ending_started || async->outstanding > 0)
        return false;
    async->busy++;
    dq_fail_waiters(self, 0, ECANCELED);  // none normally: the final sync answered them
    s_free(self);
    return true;
}

void dq_enter(nsq_diskqueue_t *self)
{
    self->async->busy++;
}

bool dq_leave(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (--async->busy > 0 || async->ending == DQ_LIVE)
        return false;
    return s_finish(self);
}

// Async mode: ends the queue the way ending says.
static void s_end(nsq_diskqueue_t *self, dq_ending_t ending)
{
    self->async->ending = ending;
    self->async->wake = NULL;
    dq_enter(self);
    dq_leave(self);
}

void nsq_diskqueue_destroy(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    *self_p = NULL;
    if (self->async) {
        s_end(self, DQ_CLOSING);
        return;
    }
    if (nsq_diskqueue_dirty(self) && nsq_diskqueue_sync(self) != 0)
        nsq_error("diskqueue %s: final sync failed: %s", self->name, strerror(errno));
    s_free(self);
}

void nsq_diskqueue_delete(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    *self_p = NULL;
    if (self->async) {
        s_end(self, DQ_DELETING);
        return;
    }
    for (size_t i = 0; i < self->segment_count; i++)
        dq_unlink_segment(self, self->segments[i]);
    dq_unlink_meta(self);
    s_free(self);
}

// ---- empty and the async accessors -------------------------------------------------

// Drops every record: a new segment, every older one deleted.
static int s_empty(nsq_diskqueue_t *self)
{
    self->keep = NSQ_DISKQUEUE_KEEP_NONE;
    self->keep_count = 0;
    dq_close_reader(self);
    if (self->async)
        dq_drop_pending(self, false);
    if (dq_roll(self) != 0)
        return -1;
    self->read_file = self->write_file;
    self->read_pos = 0;
    self->depth = 0;
    self->meta_dirty = true;
    dq_delete_done(self);
    return dq_sync(self, true);
}

int nsq_diskqueue_empty(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (!async)
        return s_empty(self);
    if (async->state == DQ_FAILED)
        return errno = async->open_error, -1;
    if (async->state == DQ_RECOVERING) {
        dq_drop_pending(self, false);  // the recovered files follow when they are known
        self->depth = 0;
        async->empty_wanted = true;
        return 0;
    }
    dq_enter(self);
    int rc = s_empty(self);
    int saved = errno;
    dq_leave(self);
    errno = saved;
    return rc;
}

int nsq_diskqueue_error(const nsq_diskqueue_t *self)
{
    return self->async && self->async->state == DQ_FAILED ? self->async->open_error : 0;
}

bool nsq_diskqueue_has_room(const nsq_diskqueue_t *self, size_t records, size_t bytes)
{
    if (!self->async)
        return true;
    if (self->async->write_error)  // a full disk: refused until a retry succeeds
        return errno = self->async->write_error, false;
    size_t need = records * NSQ_DISKQUEUE_HEADER_SIZE + bytes;
    return self->async->pending_length + need <= self->async->pending_max;
}

bool nsq_diskqueue_ready(const nsq_diskqueue_t *self)
{
    return !self->async || self->async->state == DQ_READY;
}

uint64_t nsq_diskqueue_unwritten(const nsq_diskqueue_t *self)
{
    return self->async ? self->async->pending_count : 0;
}

uint64_t nsq_diskqueue_sync_failures(const nsq_diskqueue_t *self)
{
    return self->async ? self->async->sync_failures : 0;
}
