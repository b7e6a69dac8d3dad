/*  nsq_diskqueue_sync - making written records durable: syncs, group
    commits, and (async mode) their completions
    SPDX-License-Identifier: MIT

    Synchronous mode: a sync fdatasyncs the write segment, replaces the
    metadata and closes the files; a commit fdatasyncs only (and the
    directory when the segment is new); both report before they return.

    Async mode: records are counted in the order they were put. "written"
    (put_count minus the pending records) have reached a file, "submitted"
    have been handed to a data sync, "durable" are covered by data syncs
    that completed. A data sync is a range of that count, ending at its
    "to"; ranges complete in submission order (one actor thread), so
    durable moves forward through them, and a range that failed sets
    failed_to. Every written record not yet submitted sits in the open
    write segment (a roll or a release hands the old descriptor over with
    its range), so one fdatasync of a dup'd descriptor covers them all.

    A waiter (commit, sync_then) covers the records put since the previous
    waiter's call ("from" to "target"). It is answered once durable
    reaches its target (and the metadata replacement it asked for, if
    any, completed): with the error of a failed range that ended after its
    "from", else 0. So each failure reaches the earliest waiter covering
    it, and no waiter hears success for records whose sync failed. A write
    of pending records that fails answers the waiters that need them at
    once. One data sync of the open segment is in flight at a time: what is
    written meanwhile goes into the next (group commit).

    Callbacks may call the queue, even destroy it: every path that runs
    them holds the queue busy (dq_enter / dq_leave), and a queue destroyed
    while busy is freed when the outermost call leaves.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

// ---- synchronous mode ------------------------------------------------------------

// Data sync, then the metadata; releases the files when release is set.
static int s_sync_now(nsq_diskqueue_t *self, bool release)
{
    self->last_sync_ms = dq_now_ms();
    if (self->unsynced_writes > 0) {
        if (dq_open_writer(self) != 0 || fdatasync(self->write_fd) != 0)
            return -1;
        self->unsynced_writes = 0;
        self->meta_dirty = true;
    }
    if ((self->meta_dirty || self->dir_unsynced) && dq_meta_replace(self, true) != 0)
        return -1;
    if (release)
        dq_release(self);
    return 0;
}

// fdatasync of what was written (and the directory of a new segment).
// Returns 0 or the errno of the failure.
static int s_commit_now(nsq_diskqueue_t *self)
{
    if (self->unsynced_writes > 0) {
        if (dq_open_writer(self) != 0 || fdatasync(self->write_fd) != 0)
            return errno;
        self->unsynced_writes = 0;
        self->meta_dirty = true;
    }
    if (self->dir_unsynced) {
        if (nsq_diskio_sync_dir(self->dir) != 0)
            return errno;
        self->dir_unsynced = false;
    }
    return 0;
}

// ---- async mode: ranges and waiters ----------------------------------------------

static uint64_t s_written(const nsq_diskqueue_t *self)
{
    return self->put_count - self->async->pending_count;
}

// Answers the waiters whose records are all durable.
void dq_resolve(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    dq_waiter_t *waiter;
    while ((waiter = async->waiters) && waiter->target <= async->durable
           && (!waiter->wants_meta
               || (waiter->meta_seq && waiter->meta_seq <= async->meta_completed))) {
        async->waiters = waiter->next;
        if (!async->waiters)
            async->waiters_tail = &async->waiters;
        int error = async->failed_to > waiter->from ? async->failed_error : waiter->meta_error;
        if (waiter->done)
            waiter->done(waiter->arg, error);
        free(waiter);
    }
}

void dq_fail_waiters(nsq_diskqueue_t *self, uint64_t from, int error)
{
    dq_async_t *async = self->async;
    dq_waiter_t **link = &async->waiters;
    while (*link && (*link)->target <= from)
        link = &(*link)->next;
    dq_waiter_t *failed = *link;
    *link = NULL;
    async->waiters_tail = link;
    while (failed) {
        dq_waiter_t *next = failed->next;
        async->meta_unsubmitted -= failed->wants_meta && !failed->meta_seq;
        if (failed->done)
            failed->done(failed->arg, error);
        free(failed);
        failed = next;
    }
}

void dq_data_synced(nsq_diskqueue_t *self, dq_range_t *range, int error)
{
    dq_async_t *async = self->async;
    range->done = true;
    range->error = error;
    if (range->dup)
        async->sync_running--;
    if (error) {
        nsq_error("diskqueue %s: data sync failed: %s", self->name, strerror(error));
        async->sync_failures++;
    }
    while ((range = async->ranges) && range->done) {
        async->ranges = range->next;
        if (!async->ranges)
            async->ranges_tail = &async->ranges;
        async->durable = range->to;
        if (range->error) {
            async->failed_to = range->to;
            async->failed_error = range->error;
        }
        free(range);
        dq_resolve(self);
    }
    if (!async->ranges)
        async->durable = async->submitted;  // also past records no range could track
    dq_resolve(self);
    dq_commit_kick(self);
}

// Records submitted..written go nowhere: counted as failed with error.
static void s_untracked(nsq_diskqueue_t *self, int error)
{
    dq_async_t *async = self->async;
    nsq_error("diskqueue %s: cannot hand a data sync over: %s", self->name, strerror(error));
    async->sync_failures++;
    async->submitted = s_written(self);
    async->failed_to = async->submitted;
    async->failed_error = error;
    if (!async->ranges)
        async->durable = async->submitted;
}

int dq_submit_data_sync(nsq_diskqueue_t *self, bool close_fd)
{
    dq_async_t *async = self->async;
    uint64_t written = s_written(self);
    int fd = self->write_fd;
    if (fd < 0)
        return 0;  // nothing unsynced: it would be in the open segment
    if (close_fd)
        self->write_fd = -1;
    if (written == async->submitted) {
        if (close_fd)
            dq_close(self, fd);
        return 0;
    }
    self->unsynced_writes = 0;
    if (!close_fd && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        s_untracked(self, errno);
        return -1;
    }
    dq_range_t *range = calloc(1, sizeof *range);
    if (!range) {
        dq_close(self, fd);
        s_untracked(self, ENOMEM);
        return -1;
    }
    range->to = written;
    range->dup = !close_fd;
    *async->ranges_tail = range;
    async->ranges_tail = &range->next;
    async->submitted = written;
    async->sync_running += range->dup;
    if (dq_request_data_sync(self, fd, range) != 0) {
        int error = errno;
        close(fd);  // no memory to hand it over
        dq_data_synced(self, range, error);
        return -1;
    }
    return 0;
}

// Submits a metadata replacement for the waiters that want one and whose
// records are all written (the text covers what is written when it is
// computed).
static void s_meta_for_waiters(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (!async->meta_unsubmitted)
        return;
    uint64_t written = s_written(self), seq = 0;
    bool wanted = false;
    for (dq_waiter_t *waiter = async->waiters; waiter && !wanted; waiter = waiter->next)
        wanted = waiter->wants_meta && !waiter->meta_seq && waiter->target <= written;
    if (!wanted)
        return;
    seq = dq_meta_submit(self, true);
    int error = seq ? 0 : errno;
    for (dq_waiter_t *waiter = async->waiters; waiter; waiter = waiter->next) {
        if (!waiter->wants_meta || waiter->meta_seq || waiter->target > written)
            continue;
        waiter->meta_seq = seq;
        waiter->wants_meta = seq != 0;  // else it hears the error with its data
        waiter->meta_error = error;
        async->meta_unsubmitted--;
    }
}

void dq_commit_kick(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (async->state != DQ_READY)
        return;
    s_meta_for_waiters(self);
    if (async->sync_running || self->write_fd < 0 || s_written(self) == async->submitted)
        return;
    bool policy = self->sync_every > 0 && self->unsynced_writes >= self->sync_every;
    if (!policy && !(async->waiters && async->last_target > async->submitted))
        return;
    dq_submit_data_sync(self, false);
    if (policy)
        dq_meta_submit(self, true);
}

// Registers a waiter for the records put so far (and, with wants_meta, a
// metadata replacement after them). Returns 0, or -1 (ENOMEM).
static int s_wait(nsq_diskqueue_t *self, nsq_diskqueue_done_fn *done, void *arg, bool wants_meta)
{
    dq_async_t *async = self->async;
    dq_waiter_t *waiter = calloc(1, sizeof *waiter);
    if (!waiter)
        return -1;
    waiter->from = async->last_target;
    waiter->target = self->put_count;
    waiter->wants_meta = wants_meta;
    if (wants_meta && !self->meta_dirty && async->pending_count == 0) {
        waiter->wants_meta = async->meta_running;  // nothing new: only the one in flight
        waiter->meta_seq = async->meta_submitted;
    }
    async->meta_unsubmitted += waiter->wants_meta && !waiter->meta_seq;
    waiter->done = done;
    waiter->arg = arg;
    async->last_target = self->put_count;
    *async->waiters_tail = waiter;
    async->waiters_tail = &waiter->next;
    if (async->pending_count > 0 && self->write_fd >= 0 && async->write_error)
        dq_fail_waiters(self, s_written(self), async->write_error);  // the retry just failed
    dq_commit_kick(self);
    dq_resolve(self);
    return 0;
}

// ---- both modes ------------------------------------------------------------------

void dq_release(nsq_diskqueue_t *self)
{
    dq_close_reader(self);
    dq_async_t *async = self->async;
    if (!async) {
        if (self->write_fd >= 0)
            close(self->write_fd);
        self->write_fd = -1;
        return;
    }
    if (async->pending_count == 0)
        dq_submit_data_sync(self, true);  // closes it, with a sync if anything is unsynced
    if (async->next_fd >= 0) {
        dq_close(self, async->next_fd);
        dq_unlink_segment(self, self->write_file + 1);  // created ahead, never written
        async->next_fd = -1;
    }
}

// Async sync: the written data (releasing the descriptors if release),
// then the metadata; done (if any) hears when it is all on disk. Records
// still pending are covered by a waiter, done or not.
static int s_sync_async(nsq_diskqueue_t *self, bool release, nsq_diskqueue_done_fn *done, void *arg)
{
    dq_async_t *async = self->async;
    if (async->state == DQ_FAILED)
        return errno = async->open_error, -1;
    self->last_sync_ms = dq_now_ms();
    if (async->state == DQ_READY) {
        dq_flush_pending(self);  // a retry, if an earlier write failed
        bool data = s_written(self) > async->submitted;
        if (release)
            dq_release(self);
        if (s_written(self) > async->submitted)
            dq_submit_data_sync(self, false);  // the segment stays open for pending records
        async->release_wanted = release && async->pending_count > 0;
        if (data)
            self->meta_dirty = true;
    }
    if (done || async->pending_count > 0 || async->state != DQ_READY)
        return s_wait(self, done, arg, true);
    if (self->meta_dirty && !dq_meta_submit(self, true))
        return -1;
    return 0;
}

int dq_sync(nsq_diskqueue_t *self, bool release)
{
    return self->async ? s_sync_async(self, release, NULL, NULL) : s_sync_now(self, release);
}

int nsq_diskqueue_sync(nsq_diskqueue_t *self)
{
    return nsq_diskqueue_sync_then(self, NULL, NULL);
}

int nsq_diskqueue_sync_then(nsq_diskqueue_t *self, nsq_diskqueue_done_fn *done, void *arg)
{
    if (!self->async) {
        int rc = s_sync_now(self, true);
        if (done)
            done(arg, rc == 0 ? 0 : errno);
        return done ? 0 : rc;
    }
    dq_enter(self);
    int rc = s_sync_async(self, true, done, arg);
    int saved = errno;
    dq_leave(self);
    errno = saved;
    return rc;
}

int nsq_diskqueue_commit(nsq_diskqueue_t *self, nsq_diskqueue_done_fn *done, void *arg)
{
    if (!self->async) {
        int error = s_commit_now(self);
        if (done)
            done(arg, error);
        return 0;
    }
    dq_async_t *async = self->async;
    if (async->state == DQ_FAILED)
        return errno = async->open_error, -1;
    dq_enter(self);
    if (async->state == DQ_READY)
        dq_flush_pending(self);  // a retry, if an earlier write failed
    int rc = s_wait(self, done, arg, false);
    int saved = errno;
    dq_leave(self);
    errno = saved;
    return rc;
}

// Async write_meta: the metadata without fsyncs, the descriptors closed.
static int s_write_meta_async(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (async->state != DQ_READY)
        return errno = async->state == DQ_FAILED ? async->open_error : EAGAIN, -1;
    if (s_written(self) > async->submitted)
        self->meta_dirty = true;  // the write position moved since the last metadata
    if (async->waiters) {
        dq_submit_data_sync(self, true);  // those callers hear the truth from their own sync
    } else {
        async->submitted = s_written(self);  // the caller syncs the file system
        if (!async->ranges)
            async->durable = async->submitted;
    }
    self->unsynced_writes = 0;
    if ((self->meta_dirty || self->dir_unsynced) && !dq_meta_submit(self, false))
        return -1;
    dq_release(self);
    return 0;
}

int nsq_diskqueue_write_meta(nsq_diskqueue_t *self)
{
    self->last_sync_ms = dq_now_ms();
    if (self->async) {
        dq_enter(self);
        int rc = s_write_meta_async(self);
        int saved = errno;
        dq_leave(self);
        errno = saved;
        return rc;
    }
    if (self->unsynced_writes > 0)
        self->meta_dirty = true;  // the write position moved since the last metadata
    self->unsynced_writes = 0;
    if ((self->meta_dirty || self->dir_unsynced) && dq_meta_replace(self, false) != 0)
        return -1;
    self->dir_unsynced = false;
    dq_release(self);
    return 0;
}

bool nsq_diskqueue_dirty(const nsq_diskqueue_t *self)
{
    if (self->async && self->async->pending_count > 0)
        return true;
    return self->unsynced_writes > 0 || self->meta_dirty || self->dir_unsynced;
}

// Async timed sync. A queue put to or read since the last one keeps its
// descriptors (its next put or get would otherwise wait for an open on
// the actor, behind every sync of the tick); one idle since releases
// them, also when nothing is left to sync.
static int s_maybe_sync_async(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    bool busy = self->put_count != async->seen_puts || self->read_file != async->seen_read_file
                || self->read_pos != async->seen_read_pos;
    bool holds = self->write_fd >= 0 || self->read_fd >= 0 || async->next_fd >= 0;
    if (!nsq_diskqueue_dirty(self) && (busy || !holds))
        return 0;
    async->seen_puts = self->put_count;
    async->seen_read_file = self->read_file;
    async->seen_read_pos = self->read_pos;
    dq_enter(self);
    int rc = s_sync_async(self, !busy, NULL, NULL);
    int saved = errno;
    dq_leave(self);
    errno = saved;
    return rc;
}

int nsq_diskqueue_maybe_sync(nsq_diskqueue_t *self, int64_t now_ms, int64_t timeout_ms)
{
    if (now_ms - self->last_sync_ms < timeout_ms)
        return 0;
    if (self->async)
        return s_maybe_sync_async(self);
    return nsq_diskqueue_dirty(self) ? nsq_diskqueue_sync(self) : 0;
}
