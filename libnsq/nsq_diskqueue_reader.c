/*  nsq_diskqueue_reader - get: reading records back, and letting go of the
    segments read to their end
    SPDX-License-Identifier: MIT

    The reader reads through a small buffer (DQ_BUFFER_SIZE, allocated only
    while a segment is open for reading; a record larger than that goes
    into a scratch buffer) and never past write_pos in the write segment,
    so its buffer holds only complete, written bytes. Records the caller
    has read but not finished with are kept (nsq_diskqueue_keep_from):
    keep is the oldest, and segments before both the read segment and
    keep's segment are deleted.

    Damage is counted, logged and skipped: a bad checksum drops one record,
    an impossible length the rest of its segment (the next boundary is
    unknown), a missing segment is skipped whole.

    Async mode: the read descriptor comes from the actor. A get that needs
    one requests it and answers NSQ_DISKQUEUE_WAIT; when it arrives (or its
    open fails: the next get reports that) the wake callback runs. On the
    write segment the reader dup()s the write descriptor instead of
    opening the file again.
*/
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

void dq_report(nsq_diskqueue_t *self, int64_t file, int64_t pos, const char *what)
{
    self->corrupt_count++;
    nsq_error("diskqueue %s: %s at segment %" PRId64 " offset %" PRId64 ", skipped", self->name,
              what, file, pos);
}

// Closes the read segment and frees the buffers.
void dq_close_reader(nsq_diskqueue_t *self)
{
    if (self->read_fd >= 0)
        dq_close(self, self->read_fd);
    self->read_fd = -1;
    self->read_end = -1;
    free(self->buffer);
    self->buffer = NULL;
    self->buffer_length = 0;
    free(self->scratch);
    self->scratch = NULL;
    self->scratch_size = 0;
    if (self->async)
        self->async->read_opening = -1;  // if one is on its way, it is closed on arrival
}

// Allocates the read buffer if needed. Returns 0, or -1 (ENOMEM).
int dq_ensure_buffer(nsq_diskqueue_t *self)
{
    if (!self->buffer && !(self->buffer = malloc(DQ_BUFFER_SIZE)))
        return -1;
    return 0;
}

// The offset reading must stop at in the read segment; -1 on error.
static int64_t s_read_limit(nsq_diskqueue_t *self)
{
    if (self->read_file == self->write_file)
        return self->write_pos;
    if (self->read_end < 0 && self->read_fd >= 0)
        self->read_end = dq_file_size(self->read_fd);
    return self->read_end;
}

// Makes fd the read segment's descriptor. Returns 0, or -1 (ENOMEM; fd
// is closed).
static int s_use_reader(nsq_diskqueue_t *self, int fd)
{
    if (dq_ensure_buffer(self) != 0) {
        dq_close(self, fd);
        return -1;
    }
    self->read_fd = fd;
    self->read_end = -1;
    self->buffer_length = 0;
    return 0;
}

// Async mode: finds or requests the read descriptor. Returns 0 when open,
// NSQ_DISKQUEUE_WAIT when one is on its way, -1 with errno.
static int s_open_reader_async(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (async->read_error && async->read_error_file == self->read_file) {
        errno = async->read_error;
        async->read_error = 0;
        return -1;
    }
    if (self->read_file == self->write_file && self->write_fd >= 0) {
        int fd = fcntl(self->write_fd, F_DUPFD_CLOEXEC, 0);
        return fd < 0 ? -1 : s_use_reader(self, fd);
    }
    if (self->read_file == self->write_file && async->write_opening == self->write_file)
        return NSQ_DISKQUEUE_WAIT;  // dq_writer_opened wakes the reader
    if (async->read_opening == self->read_file)
        return NSQ_DISKQUEUE_WAIT;  // dq_reader_opened wakes the reader
    if (dq_request_open(self, true, self->read_file, O_RDONLY) != 0)
        return -1;
    async->read_opening = self->read_file;
    return NSQ_DISKQUEUE_WAIT;
}

// Opens the read segment (and its buffer) if needed. Returns 0,
// NSQ_DISKQUEUE_WAIT (async), or -1 with errno (ENOENT: the file is gone).
static int s_open_reader(nsq_diskqueue_t *self)
{
    if (self->read_fd >= 0)
        return 0;
    if (self->async)
        return s_open_reader_async(self);
    if (dq_ensure_buffer(self) != 0)
        return -1;
    self->read_fd = dq_open_segment(self, self->read_file, O_RDONLY);
    self->read_end = -1;
    self->buffer_length = 0;
    return self->read_fd < 0 ? -1 : 0;
}

void dq_reader_wake(nsq_diskqueue_t *self)
{
    dq_async_t *async = self->async;
    if (!async->reader_waiting && !async->writer_waiting)
        return;
    async->reader_waiting = false;
    async->writer_waiting = false;
    if (async->wake && async->ending == DQ_LIVE)
        async->wake(self, async->wake_arg);
}

// Async mode: the read open of segment number completed (fd, or error).
void dq_reader_opened(nsq_diskqueue_t *self, int64_t number, int fd, int error)
{
    dq_async_t *async = self->async;
    async->read_opening = -1;
    if (error) {
        async->read_error = error;
        async->read_error_file = number;
    } else if (number != self->read_file || self->read_fd >= 0 || async->ending != DQ_LIVE) {
        dq_close(self, fd);  // the reader moved on meanwhile
    } else if (s_use_reader(self, fd) != 0) {
        async->read_error = ENOMEM;
        async->read_error_file = number;
    }
    dq_reader_wake(self);
}

// Deletes the segments nothing needs any more: before the read segment
// and before the oldest record still kept. The write segment stays.
void dq_delete_done(nsq_diskqueue_t *self)
{
    int64_t below = self->read_file, keep_file, keep_pos;
    if (self->keep != NSQ_DISKQUEUE_KEEP_NONE
        && dq_position_split(self, self->keep, &keep_file, &keep_pos) && keep_file < below)
        below = keep_file;
    size_t done = 0;
    for (; done + 1 < self->segment_count && self->segments[done] < below; done++)
        dq_unlink_segment(self, self->segments[done]);
    if (done == 0)
        return;
    memmove(self->segments, self->segments + done,
            (self->segment_count - done) * sizeof *self->segments);
    self->segment_count -= done;
    self->first_ordinal += done;
}

// Moves to the next listed segment, deleting the finished one unless kept.
static void s_next_segment(nsq_diskqueue_t *self)
{
    dq_close_reader(self);
    size_t index = dq_segment_index(self, self->read_file);
    self->read_file =
        index + 1 < self->segment_count ? self->segments[index + 1] : self->write_file;
    self->read_pos = 0;
    self->meta_dirty = true;
    if (!self->keeping)
        dq_delete_done(self);
}

uint64_t nsq_diskqueue_position(const nsq_diskqueue_t *self)
{
    return self->last_position;
}

void nsq_diskqueue_keep_from(nsq_diskqueue_t *self, uint64_t position, int64_t count)
{
    if (position == NSQ_DISKQUEUE_KEEP_NONE)
        count = 0;
    if (self->keep != position || self->keep_count != count)
        self->meta_dirty = true;
    self->keeping = true;
    self->keep = position;
    self->keep_count = count;
    if (!self->async || self->async->state == DQ_READY)
        dq_delete_done(self);
}

// Points *data at size bytes of the read segment at offset (buffered).
// Returns 0, or -1 (errno; EIO if the file is shorter than expected).
int dq_fetch(nsq_diskqueue_t *self, int64_t offset, size_t size, int64_t limit,
             const uint8_t **data)
{
    if (offset >= self->buffer_offset
        && offset + (int64_t) size <= self->buffer_offset + (int64_t) self->buffer_length) {
        *data = self->buffer + (offset - self->buffer_offset);
        return 0;
    }
    uint8_t *target = self->buffer;
    size_t want = DQ_BUFFER_SIZE;
    if (size > DQ_BUFFER_SIZE) {
        if (self->scratch_size < size) {
            uint8_t *scratch = realloc(self->scratch, size);
            if (!scratch)
                return -1;
            self->scratch = scratch;
            self->scratch_size = size;
        }
        target = self->scratch;
        want = size;
    }
    if ((int64_t) want > limit - offset)
        want = (size_t) (limit - offset);
    self->buffer_length = 0;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(self->read_fd, target + got, want - got, offset + (int64_t) got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t) n;
    }
    if (got < size)
        return errno = EIO, -1;
    if (target == self->buffer) {
        self->buffer_offset = offset;
        self->buffer_length = got;
    }
    *data = target;
    return 0;
}

// Skips the rest of the read segment after damage. In the write segment
// that means catching up with the writer.
static void s_skip_segment(nsq_diskqueue_t *self)
{
    if (self->read_file == self->write_file) {
        dq_close_reader(self);
        self->read_pos = self->write_pos;
        self->meta_dirty = true;
    } else {
        s_next_segment(self);
    }
}

// Reads the record at the read position. Returns 1 with the record, 0 if
// the position was skipped (damage, end of segment), NSQ_DISKQUEUE_WAIT,
// or -1 on I/O error.
static int s_read_record(nsq_diskqueue_t *self, const void **data, size_t *size)
{
    int opened = s_open_reader(self);
    if (opened == NSQ_DISKQUEUE_WAIT)
        return opened;
    if (opened != 0) {
        if (errno != ENOENT)
            return -1;
        dq_report(self, self->read_file, self->read_pos, "segment file missing");
        s_skip_segment(self);
        return 0;
    }
    int64_t limit = s_read_limit(self);
    if (limit < 0)
        return -1;
    int64_t pos = self->read_pos;
    if (pos >= limit) {  // a finished segment: move on
        s_next_segment(self);
        return 0;
    }
    const uint8_t *header;
    if (pos > DQ_OFFSET_MAX) {  // no position token could name it
        dq_report(self, self->read_file, pos, "segment larger than supported");
        s_skip_segment(self);
        return 0;
    }
    if (pos + NSQ_DISKQUEUE_HEADER_SIZE > limit
        || dq_fetch(self, pos, NSQ_DISKQUEUE_HEADER_SIZE, limit, &header)) {
        dq_report(self, self->read_file, pos, "truncated record header");
        s_skip_segment(self);
        return 0;
    }
    uint8_t header_copy[NSQ_DISKQUEUE_HEADER_SIZE];
    memcpy(header_copy, header, sizeof header_copy);  // the payload fetch may move the buffer
    uint32_t length = dq_get_u32(header_copy);
    if (length > self->max_msg_size || pos + NSQ_DISKQUEUE_HEADER_SIZE + length > limit) {
        dq_report(self, self->read_file, pos, "impossible record length");
        s_skip_segment(self);
        return 0;
    }
    const uint8_t *payload = NULL;
    if (length > 0 && dq_fetch(self, pos + NSQ_DISKQUEUE_HEADER_SIZE, length, limit, &payload))
        return -1;
    self->read_pos = pos + NSQ_DISKQUEUE_HEADER_SIZE + length;
    self->meta_dirty = true;
    if (self->depth > 0)
        self->depth--;
    if (!dq_record_intact(header_copy, payload)) {
        dq_report(self, self->read_file, pos, "checksum mismatch");
        return 0;
    }
    *data = payload ? payload : (const void *) self->buffer;
    *size = length;
    self->last_position = dq_position(self, self->read_file, pos);
    return 1;
}

// True if every written record has been read.
static bool s_caught_up(const nsq_diskqueue_t *self)
{
    return self->read_file == self->write_file && self->read_pos >= self->write_pos;
}

int nsq_diskqueue_get(nsq_diskqueue_t *self, const void **data, size_t *size)
{
    dq_async_t *async = self->async;
    if (async && async->state == DQ_FAILED)
        return errno = async->open_error, -1;
    if (async && async->state == DQ_RECOVERING)
        return async->reader_waiting = true, NSQ_DISKQUEUE_WAIT;
    while (!s_caught_up(self)) {
        int rc = s_read_record(self, data, size);
        if (rc == NSQ_DISKQUEUE_WAIT)
            async->reader_waiting = true;
        if (rc != 0)
            return rc;
    }
    if (async && async->pending_count > 0) {
        // Their descriptor is on its way, or a failed write waits for its
        // retry (at the next sync or commit).
        async->reader_waiting = true;
        return NSQ_DISKQUEUE_WAIT;
    }
    self->depth = 0;  // whatever damage skipped, an empty queue is empty
    return 0;
}

bool nsq_diskqueue_is_empty(const nsq_diskqueue_t *self)
{
    if (self->async && (self->async->state == DQ_RECOVERING || self->async->pending_count > 0))
        return false;
    return s_caught_up(self);
}

int64_t nsq_diskqueue_depth(const nsq_diskqueue_t *self)
{
    return self->depth;
}

uint64_t nsq_diskqueue_corrupt_count(const nsq_diskqueue_t *self)
{
    return self->corrupt_count;
}
