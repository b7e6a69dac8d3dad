/*  nsq_diskqueue_writer - put: appending records, rolling segments, and
    (async mode) the pending buffer
    SPDX-License-Identifier: MIT

    A record goes to the write position with one pwritev (header and the
    caller's pieces, no copy). A failed write truncates the segment back to
    the last good record, so no half record is ever left behind. A record
    that would pass max_bytes_per_file rolls to a new segment first (an
    empty segment takes any record).

    Synchronous mode: the write segment is opened (created) on demand, and a
    roll creates the next file, fdatasyncs the full one and replaces the
    metadata before the put returns.

    Async mode: the owner thread never opens or syncs. A put that finds no
    write descriptor (a new queue, one closed while idle, a roll whose next
    segment is not open yet, the recovery still running) copies the formed
    record into the pending buffer (bounded by pending_max bytes) and
    requests the descriptor; when it arrives the buffer is written out in
    order, in runs that fill each segment with one pwrite. Once a segment
    is half full its successor is created ahead (next_fd), so a roll
    normally swaps descriptors without waiting; the full segment's
    descriptor goes to the actor to be fdatasynced and closed. A write of
    pending records that fails keeps them for a retry (at the next sync or
    commit) and fails the commits waiting for them.

    Combining (async mode, nsq_diskqueue_combine until nsq_diskqueue_flush):
    puts that would write at once gather in the pending buffer instead, and
    the flush writes them with one pwrite per segment. The owner brackets a
    batch of puts (one MPUB's messages) with the two calls: a write per
    record was most of the core thread's time while a backlog spilled to
    disk. A buffer past S_COMBINE_MAX is written before it grows further.
    An owner that can report a failure (a publish: its answer is not sent
    yet) asks the flush to count what was not stored: when nothing was
    pending before the batch (each put would have written at once), a
    failed write then ends as a direct write's failure would, with what
    was not written not stored, and the publish answered with the error
    instead of records acknowledged for a retry that may never succeed.
    Other owners (a pump of messages already acknowledged) keep them
    pending for the next sync's retry, as any pending record.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

#define S_COMBINE_MAX (256 * 1024)  // a combined buffer is written past this many bytes

// Opens the write segment if needed, creating its file (whose directory
// entry the next sync makes durable). Synchronous mode. Returns 0, or -1
// with errno.
int dq_open_writer(nsq_diskqueue_t *self)
{
    if (self->write_fd >= 0)
        return 0;
    self->write_fd = dq_open_segment(self, self->write_file, O_RDWR);
    if (self->write_fd < 0 && errno == ENOENT) {
        self->write_fd = dq_open_segment(self, self->write_file, O_RDWR | O_CREAT);
        self->dir_unsynced = self->write_fd >= 0;
    }
    return self->write_fd < 0 ? -1 : 0;
}

// Closes the full write segment (synced) and starts the next one.
// Synchronous mode.
static int s_roll_now(nsq_diskqueue_t *self)
{
    if (dq_segment_append(self, self->write_file + 1) != 0)
        return -1;
    self->segment_count--;  // listed once the file exists
    int fd = dq_open_segment(self, self->write_file + 1, O_RDWR | O_CREAT | O_TRUNC);
    if (fd < 0)
        return -1;
    if (self->write_fd >= 0 && fdatasync(self->write_fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (self->write_fd >= 0)
        close(self->write_fd);
    self->write_fd = fd;
    self->write_file++;
    self->segment_count++;
    self->write_pos = 0;
    self->unsynced_writes = 0;
    if (dq_meta_replace(self, true) != 0)
        nsq_warn("diskqueue %s: cannot write metadata: %s", self->name, strerror(errno));
    return 0;
}

// Async mode: requests the write segment's descriptor unless it is open or
// on its way; fresh truncates the file (a segment just rolled to).
static void s_want_writer(nsq_diskqueue_t *self, bool fresh)
{
    dq_async_t *async = self->async;
    if (self->write_fd >= 0 || async->write_opening == self->write_file)
        return;
    int flags = O_RDWR | O_CREAT | (fresh ? O_TRUNC : 0);
    if (dq_request_open(self, false, self->write_file, flags) == 0)
        async->write_opening = self->write_file;
    else
        async->write_error = errno;  // the next put asks again
}

// Async mode: hands the full write segment to the actor (fdatasync and
// close) and moves to the next one, whose descriptor is open, on its way
// or requested now.
static int s_roll_async(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (dq_segment_append(self, self->write_file + 1) != 0)
        return -1;
    if (self->write_fd >= 0)
        dq_submit_data_sync(self, true);
    self->write_file++;
    self->write_pos = 0;
    self->unsynced_writes = 0;
    if (async->next_fd >= 0) {
        self->write_fd = async->next_fd;
        async->next_fd = -1;
    } else if (async->next_opening == self->write_file) {
        async->write_opening = self->write_file;
        async->next_opening = -1;
    } else {
        s_want_writer(self, true);
    }
    dq_meta_submit(self, true);
    return 0;
}

int dq_roll(nsq_diskqueue_t *self)
{
    if (self->write_file >= DQ_SEGMENT_MAX)
        return errno = EFBIG, -1;
    return self->async ? s_roll_async(self) : s_roll_now(self);
}

// Writes all of iov at the write position, retrying short writes.
static int s_write_all(nsq_diskqueue_t *self, struct iovec *iov, int count, size_t total)
{
    int64_t offset = self->write_pos;
    while (total > 0) {
        ssize_t n = pwritev(self->write_fd, iov, count, offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? (errno = ENOSPC, -1) : -1;
        offset += n;
        total -= (size_t) n;
        while (count > 0 && (size_t) n >= iov->iov_len) {
            n -= (ssize_t) iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (uint8_t *) iov->iov_base + n;
            iov->iov_len -= (size_t) n;
        }
    }
    return 0;
}

// Writes total bytes of iov at the write position and moves it on; a
// failure cuts the segment back and returns -1 with errno.
static int s_write(nsq_diskqueue_t *self, struct iovec *iov, int count, size_t total)
{
    if (s_write_all(self, iov, count, total) != 0) {
        int saved = errno;
        if (ftruncate(self->write_fd, self->write_pos) != 0)
            nsq_error("diskqueue %s: cannot cut a failed write: %s", self->name, strerror(errno));
        errno = saved;
        return -1;
    }
    self->write_pos += (int64_t) total;
    return 0;
}

// Async mode: bookkeeping after count records were written: create the
// next segment ahead once this one is half full, and start the syncs due.
static void s_written(nsq_diskqueue_t *self, int64_t count)
{
    dq_async_t *async = self->async;
    self->unsynced_writes += count;
    if (async->next_fd < 0 && async->next_opening < 0 && !async->release_wanted
        && self->write_file < DQ_SEGMENT_MAX && self->write_pos >= self->max_bytes_per_file / 2) {
        if (dq_request_open(self, false, self->write_file + 1, O_RDWR | O_CREAT | O_TRUNC) == 0)
            async->next_opening = self->write_file + 1;
    }
    dq_commit_kick(self);
}

// Bytes of the pending record at offset in the pending buffer.
static size_t s_pending_record(const dq_async_t *async, size_t offset)
{
    return NSQ_DISKQUEUE_HEADER_SIZE + dq_get_u32(async->pending + offset);
}

// Async mode: a write of pending records failed with error.
static void s_pending_failed(nsq_diskqueue_t *self, int error)
{
    dq_async_t *async = self->async;
    if (async->write_error != error)
        nsq_error("diskqueue %s: cannot write %llu waiting records: %s", self->name,
                  (unsigned long long) async->pending_count, strerror(error));
    async->write_error = error;
    async->sync_failures++;
    dq_fail_waiters(self, self->put_count - async->pending_count, error);
    if (async->ending != DQ_LIVE)
        dq_drop_pending(self, true);  // nobody will retry
}

int dq_flush_pending(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (async->pending_count == 0)
        return 0;
    while (async->pending_count > 0) {
        if (self->write_fd < 0) {
            s_want_writer(self, false);
            return 0;
        }
        size_t first = s_pending_record(async, async->pending_head);
        if (self->write_pos > 0 && self->write_pos + (int64_t) first > self->max_bytes_per_file) {
            if (dq_roll(self) != 0) {
                s_pending_failed(self, errno);
                return -1;
            }
            continue;
        }
        size_t run = 0, records = 0;  // the records that fit this segment
        while (run < async->pending_length) {
            size_t next = s_pending_record(async, async->pending_head + run);
            if (run > 0 && self->write_pos + (int64_t) (run + next) > self->max_bytes_per_file)
                break;
            run += next;
            records++;
        }
        struct iovec iov = {async->pending + async->pending_head, run};
        if (s_write(self, &iov, 1, run) != 0) {
            s_pending_failed(self, errno);
            return -1;
        }
        async->pending_head += run;
        async->pending_length -= run;
        async->pending_count -= records;
        s_written(self, (int64_t) records);
    }
    async->write_error = 0;
    free(async->pending);
    async->pending = NULL;
    async->pending_head = async->pending_length = async->pending_capacity = 0;
    if (async->release_wanted) {
        async->release_wanted = false;
        dq_release(self);  // what a sync asked for while the records waited
    }
    dq_reader_wake(self);
    return 0;
}

// Async mode: forgets the pending records (lost: a failure, logged; else
// the caller empties or deletes the queue). Nothing will sync them, so
// when no segment is open they count as handed over.
void dq_drop_pending(nsq_diskqueue_t *self, bool lost)
{
    dq_async_t *async = self->async;
    if (async->pending_count > 0 && lost)
        nsq_error("diskqueue %s: %llu records that waited to be written are lost", self->name,
                  (unsigned long long) async->pending_count);
    self->depth -= (int64_t) async->pending_count;
    async->pending_count = 0;
    free(async->pending);
    async->pending = NULL;
    async->pending_head = async->pending_length = async->pending_capacity = 0;
    if (self->write_fd < 0) {
        async->submitted = self->put_count;
        if (!async->ranges)
            async->durable = async->submitted;
        dq_resolve(self);
    }
}

// Async mode: copies the record (header, then the pieces of iov) into the
// pending buffer. Returns 0, or -1 with errno.
static int s_pend(nsq_diskqueue_t *self, const uint8_t *header, const struct iovec *iov,
                  int iov_count, size_t record)
{
    dq_async_t *async = self->async;
    if (async->pending_length + record > async->pending_max) {
        async->writer_waiting = true;
        return errno = async->write_error ? async->write_error : EAGAIN, -1;
    }
    if (async->pending_head > 0
        && async->pending_head + async->pending_length + record > async->pending_capacity) {
        memmove(async->pending, async->pending + async->pending_head, async->pending_length);
        async->pending_head = 0;
    }
    if (async->pending_length + record > async->pending_capacity) {
        size_t capacity = async->pending_capacity ? 2 * async->pending_capacity : 64 * 1024;
        while (capacity < async->pending_length + record)
            capacity *= 2;
        if (capacity > async->pending_max)
            capacity = async->pending_max;
        uint8_t *grown = realloc(async->pending, capacity);
        if (!grown)
            return -1;
        async->pending = grown;
        async->pending_capacity = capacity;
    }
    uint8_t *out = async->pending + async->pending_head + async->pending_length;
    memcpy(out, header, NSQ_DISKQUEUE_HEADER_SIZE);
    out += NSQ_DISKQUEUE_HEADER_SIZE;
    for (int i = 0; i < iov_count; i++) {
        memcpy(out, iov[i].iov_base, iov[i].iov_len);
        out += iov[i].iov_len;
    }
    async->pending_length += record;
    async->pending_count++;
    self->put_count++;
    self->depth++;
    if (async->state == DQ_READY)
        s_want_writer(self, false);
    return 0;
}

// Async mode put: straight to the write segment when its descriptor is
// open and nothing waits before the record, else into the pending buffer.
static int s_put_async(nsq_diskqueue_t *self, struct iovec *pieces, int count, size_t record)
{
    dq_async_t *async = self->async;
    if (async->state == DQ_FAILED)
        return errno = async->open_error, -1;
    if (async->combining && async->state == DQ_READY && async->pending_count > 0
        && !async->write_error && async->pending_length + record > S_COMBINE_MAX)
        dq_flush_pending(self);  // a failure stays with the records, as below
    if (async->state == DQ_READY && async->pending_count == 0 && !async->combining) {
        if (self->write_pos > 0 && self->write_pos + (int64_t) record > self->max_bytes_per_file) {
            if (dq_roll(self) != 0)
                return -1;
        } else {
            s_want_writer(self, false);
        }
        if (self->write_fd >= 0) {
            if (s_write(self, pieces, count, record) != 0)
                return -1;
            self->depth++;
            self->put_count++;
            s_written(self, 1);
            return 0;
        }
    }
    return s_pend(self, pieces[0].iov_base, pieces + 1, count - 1, record);
}

void nsq_diskqueue_combine(nsq_diskqueue_t *self)
{
    if (!self->async)
        return;
    self->async->combining = true;
    self->async->combine_clean = self->async->pending_count == 0;
}

//  Forgets the pending records, all of the combined batch whose write
//  failed: never stored, as with a direct write's failure (no retry).
static uint64_t s_unput_pending(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    uint64_t count = async->pending_count;
    self->depth -= (int64_t) count;
    self->put_count -= count;
    async->pending_count = 0;
    async->pending_head = async->pending_length = 0;
    async->write_error = 0;
    return count;
}

int nsq_diskqueue_flush(nsq_diskqueue_t *self, uint64_t *unstored)
{
    dq_async_t *async = self->async;
    if (unstored)
        *unstored = 0;
    if (!async || !async->combining)
        return 0;
    async->combining = false;
    if (async->pending_count == 0 || async->state != DQ_READY)
        return 0;                                  // a recovery writes what is pending at its end
    bool drop = unstored && async->combine_clean;  // the caller reports a failure
    if (async->write_error && !drop)
        return 0;  // they wait for a sync's retry, with the older records if any
    dq_enter(self);
    int rc = async->write_error ? (errno = async->write_error, -1) : dq_flush_pending(self);
    int saved = rc != 0 && async->write_error ? async->write_error : errno;  // the write's
    if (rc != 0 && drop && async->pending_count > 0)
        *unstored = s_unput_pending(self);
    dq_leave(self);
    errno = saved;
    return rc;
}

int nsq_diskqueue_putv(nsq_diskqueue_t *self, const struct iovec *iov, int iov_count)
{
    size_t size = 0;
    for (int i = 0; i < iov_count; i++)
        size += iov[i].iov_len;
    if (size > self->max_msg_size || iov_count >= DQ_IOV_MAX)
        return errno = EINVAL, -1;
    size_t record = NSQ_DISKQUEUE_HEADER_SIZE + size;
    uint8_t header[NSQ_DISKQUEUE_HEADER_SIZE];
    dq_record_header(header, iov, iov_count, size);
    struct iovec pieces[DQ_IOV_MAX];
    pieces[0] = (struct iovec){header, sizeof header};
    memcpy(pieces + 1, iov, (size_t) iov_count * sizeof *iov);
    if (self->async) {
        dq_enter(self);  // a failed hand-over answers waiting commits
        int rc = s_put_async(self, pieces, iov_count + 1, record);
        int saved = errno;
        dq_leave(self);
        errno = saved;
        return rc;
    }
    if (self->write_pos > 0 && self->write_pos + (int64_t) record > self->max_bytes_per_file) {
        if (dq_roll(self) != 0)
            return -1;
    } else if (dq_open_writer(self) != 0) {
        return -1;
    }
    if (s_write(self, pieces, iov_count + 1, record) != 0)
        return -1;
    self->depth++;
    self->unsynced_writes++;
    self->put_count++;
    if (self->sync_every > 0 && self->unsynced_writes >= self->sync_every
        && dq_sync(self, false) != 0)
        nsq_warn("diskqueue %s: sync failed: %s", self->name, strerror(errno));
    return 0;
}

int nsq_diskqueue_put(nsq_diskqueue_t *self, const void *data, size_t size)
{
    struct iovec iov = {(void *) data, size};
    return nsq_diskqueue_putv(self, &iov, size ? 1 : 0);
}

// Async mode: a write-side open of segment number completed (fd, or
// error): the write segment's, or the next one's created ahead.
void dq_writer_opened(nsq_diskqueue_t *self, int64_t number, int fd, int error)
{
    dq_async_t *async = self->async;
    if (number == async->write_opening) {
        async->write_opening = -1;
        if (error) {
            async->write_error = error;
            if (async->pending_count > 0)
                s_pending_failed(self, error);
            dq_reader_wake(self);  // a reader waiting for this descriptor opens its own
        } else if (number != self->write_file || self->write_fd >= 0) {
            dq_close(self, fd);
        } else {
            self->write_fd = fd;
            dq_flush_pending(self);
            dq_reader_wake(self);
        }
        return;
    }
    if (number == async->next_opening)
        async->next_opening = -1;
    if (error)
        return;  // the roll asks for it again
    if (number == self->write_file + 1 && async->next_fd < 0 && async->ending == DQ_LIVE) {
        async->next_fd = fd;
        return;
    }
    dq_close(self, fd);
    if (number > self->write_file)
        dq_unlink_segment(self, number);  // created ahead, never written
}
