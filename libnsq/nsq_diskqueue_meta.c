/*  nsq_diskqueue_meta - the disk queue's metadata file
    SPDX-License-Identifier: MIT

    name.diskqueue.meta.dat holds "nsqdq 1\ndepth\nrfile,rpos\nwfile,wpos\n".
    It is replaced atomically (write a temporary file, fdatasync, rename,
    fsync the directory) and never edited in place, so a crash leaves the
    old or the new one. When the caller keeps records it has read
    (nsq_diskqueue_keep_from), the read position written is the oldest
    kept record, so a restart serves them again.

    The text is computed on the owner's thread in both modes; the
    synchronous mode replaces the file at once, the async mode hands the
    bytes to the actor. At most one replacement per queue is in flight
    there: positions that change meanwhile go into one more replacement
    when it completes, so a busy queue never queues a pile of them.
*/
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

// Writes the metadata text into text (size bytes). Returns its length.
static int s_meta_text(const nsq_diskqueue_t *self, char *text, size_t size)
{
    int64_t read_file = self->read_file, read_pos = self->read_pos, depth = self->depth;
    int64_t keep_file, keep_pos;
    if (self->keep != NSQ_DISKQUEUE_KEEP_NONE
        && dq_position_split(self, self->keep, &keep_file, &keep_pos)) {
        read_file = keep_file;
        read_pos = keep_pos;
        depth += self->keep_count;
    }
    if (self->async)
        depth -= (int64_t) self->async->pending_count;  // not in the files yet
    return snprintf(text, size,
                    "nsqdq 1\n%" PRId64 "\n%" PRId64 ",%" PRId64 "\n%" PRId64 ",%" PRId64 "\n",
                    depth, read_file, read_pos, self->write_file, self->write_pos);
}

// Replaces the metadata file now; with durable, fsyncs the file before and
// the directory after. Returns 0, or -1 with errno.
int dq_meta_replace(nsq_diskqueue_t *self, bool durable)
{
    char path[DQ_PATH_MAX], text[160];
    dq_meta_path(self, path, "");
    int length = s_meta_text(self, text, sizeof text);
    if (nsq_diskio_replace_file(path, text, (size_t) length, durable) != 0)
        return -1;
    self->meta_dirty = false;
    if (durable)
        self->dir_unsynced = false;
    return 0;
}

// Async mode: hands the current positions to the actor, or marks them for
// the replacement after the one in flight. Returns the sequence number of
// the replacement that will carry them, or 0 (errno) if it cannot be
// handed over (logged, counted; the next sync tries again).
uint64_t dq_meta_submit(nsq_diskqueue_t *self, bool durable)
{
    dq_async_t *async = self->async;
    self->meta_dirty = false;
    if (async->meta_running) {
        async->meta_again = true;
        return async->meta_submitted + 1;
    }
    char text[160];
    int length = s_meta_text(self, text, sizeof text);
    if (dq_request_meta(self, text, (size_t) length, durable) != 0) {
        nsq_warn("diskqueue %s: cannot hand the metadata over: %s", self->name, strerror(errno));
        self->meta_dirty = true;
        async->sync_failures++;
        return 0;
    }
    async->meta_running = true;
    return ++async->meta_submitted;
}

// Async mode: a replacement completed with error (0 on success).
void dq_meta_replaced(nsq_diskqueue_t *self, int error)
{
    dq_async_t *async = self->async;
    async->meta_running = false;
    async->meta_completed++;
    if (error) {
        nsq_error("diskqueue %s: cannot replace the metadata: %s", self->name, strerror(error));
        self->meta_dirty = true;  // the next sync tries again
        async->sync_failures++;
    }
    for (dq_waiter_t *waiter = async->waiters; waiter; waiter = waiter->next)
        if (waiter->meta_seq == async->meta_completed)
            waiter->meta_error = error;
    if (async->meta_again) {
        async->meta_again = false;
        dq_meta_submit(self, true);
    }
    dq_resolve(self);
}

// Reads the metadata file. Returns 0, 1 if it is absent or damaged (the
// segments decide), or -1 (errno) if it cannot be read (EMFILE...).
int dq_meta_read(nsq_diskqueue_t *self)
{
    char path[DQ_PATH_MAX];
    dq_meta_path(self, path, "");
    FILE *file = fopen(path, "re");
    if (!file)
        return errno == ENOENT ? 1 : -1;
    int version = 0;
    int fields = fscanf(file, "nsqdq %d %" SCNd64 " %" SCNd64 ",%" SCNd64 " %" SCNd64 ",%" SCNd64,
                        &version, &self->depth, &self->read_file, &self->read_pos,
                        &self->write_file, &self->write_pos);
    fclose(file);
    bool sane = fields == 6 && version == 1 && self->depth >= 0 && self->read_file >= 0
                && self->read_pos >= 0 && self->write_pos >= 0 && self->write_file <= DQ_SEGMENT_MAX
                && (self->read_file < self->write_file
                    || (self->read_file == self->write_file && self->read_pos <= self->write_pos));
    if (sane)
        return 0;
    nsq_warn("diskqueue %s: metadata file is damaged, rebuilding from the segments", self->name);
    return 1;
}
