/*  nsq_diskqueue_recover - reconciling a queue's metadata with its files
    when it is opened
    SPDX-License-Identifier: MIT

    The metadata is checked against the segment files that exist: a write
    position before the end of its segment (metadata older than the data)
    starts a new segment, so the reader still finds every record of the
    old one; a write position beyond the end (a torn tail) trusts the file,
    truncating the last incomplete record; a missing metadata file is
    rebuilt from the segments present; segments beyond the metadata's write
    segment (rolled after it was written) are read in full. A read
    position on a segment that is gone moves to the next one, and every
    gap between listed segments is reported once. When anything changed,
    the depth is recounted from the files (headers only) and the queue is
    synced before it is used.

    This is blocking work on a queue nobody else touches yet: synchronous
    mode runs it in the constructor, async mode on the actor thread over a
    private twin of the queue (nsq_diskqueue.c). It leaves no file open.
*/
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

// Offset just past the last complete record of segment fd (size bytes),
// walking from offset start (a record boundary). Reads headers only.
// *count receives the records passed. -1 if out of memory.
static int64_t s_walk(nsq_diskqueue_t *self, int fd, int64_t start, int64_t size, int64_t *count)
{
    int64_t pos = start;
    *count = 0;
    if (dq_ensure_buffer(self) != 0)
        return -1;
    int saved_fd = self->read_fd;
    self->read_fd = fd;
    self->buffer_length = 0;
    const uint8_t *header;
    while (pos + NSQ_DISKQUEUE_HEADER_SIZE <= size
           && dq_fetch(self, pos, NSQ_DISKQUEUE_HEADER_SIZE, size, &header) == 0) {
        uint32_t length = dq_get_u32(header);
        if (length > self->max_msg_size || pos + NSQ_DISKQUEUE_HEADER_SIZE + length > size)
            break;
        pos += NSQ_DISKQUEUE_HEADER_SIZE + length;
        (*count)++;
    }
    self->read_fd = saved_fd;
    self->buffer_length = 0;
    return pos;
}

// Trusts the write segment over metadata that points past its end: keeps
// its complete records and cuts a torn last one.
static int s_repair_tail(nsq_diskqueue_t *self, int64_t size)
{
    int64_t start =
        self->read_file == self->write_file && self->read_pos <= size ? self->read_pos : 0;
    int64_t count;
    int64_t end = s_walk(self, self->write_fd, start, size, &count);
    if (end < 0)
        return -1;
    if (end < size) {
        dq_report(self, self->write_file, end, "torn record at the end of the queue");
        if (ftruncate(self->write_fd, end) != 0)
            return -1;
    }
    self->write_pos = end;
    if (self->read_file == self->write_file && self->read_pos > end)
        self->read_pos = end;
    return 0;
}

// Counts the records from the read position to the write position.
static void s_recount(nsq_diskqueue_t *self)
{
    self->depth = 0;
    for (size_t i = dq_segment_index(self, self->read_file); i < self->segment_count; i++) {
        int64_t file = self->segments[i];
        int fd = dq_open_segment(self, file, O_RDONLY);
        if (fd < 0)
            continue;
        int64_t size = file == self->write_file ? self->write_pos : dq_file_size(fd);
        int64_t count;
        if (s_walk(self, fd, file == self->read_file ? self->read_pos : 0, size, &count) >= 0)
            self->depth += count;
        close(fd);
    }
}

// Reconciles the write position with the write segment's file: a torn
// tail is cut; records written after the metadata are kept for the reader
// and writing goes on in a new segment. Sets *changed if it changed
// anything. Returns 0, or -1 with errno.
static int s_check_writer(nsq_diskqueue_t *self, bool *changed)
{
    self->write_fd = dq_open_segment(self, self->write_file, O_RDWR);
    if (self->write_fd < 0 && errno != ENOENT)
        return -1;
    int64_t size = self->write_fd >= 0 ? dq_file_size(self->write_fd) : 0;
    if (size < 0)
        return -1;
    if (self->write_pos > size) {
        *changed = true;
        if (self->write_fd >= 0)
            return s_repair_tail(self, size);
        dq_report(self, self->write_file, 0, "missing write segment");
        self->write_pos = 0;
        if (self->read_file == self->write_file)
            self->read_pos = 0;
    } else if (self->write_pos < size) {
        *changed = true;
        self->write_pos = size;
        return dq_roll(self);
    }
    return 0;
}

// Puts the read position on a listed segment (segments deleted after the
// metadata was last written are gone), and reports every gap after it
// once: the records of a missing segment are lost, the reader goes on with
// the next one. Sets *changed if it moved or found a gap. Returns 0, or
// -1 with errno.
static int s_find_reader(nsq_diskqueue_t *self, bool *changed)
{
    size_t index = 0;
    while (index + 1 < self->segment_count && self->segments[index] < self->read_file)
        index++;
    if (self->segments[index] != self->read_file) {
        self->read_file = self->segments[index];
        self->read_pos = 0;
        *changed = true;
    }
    if (self->read_file != self->write_file && self->read_pos > 0) {
        int fd = dq_open_segment(self, self->read_file, O_RDONLY);
        if (fd < 0 && errno != ENOENT)
            return -1;
        int64_t size = fd >= 0 ? dq_file_size(fd) : -1;
        if (fd >= 0)
            close(fd);
        if (self->read_pos > size) {
            self->read_file = self->segments[++index];
            self->read_pos = 0;
            *changed = true;
        }
    }
    for (; index + 1 < self->segment_count; index++) {
        int64_t after = self->segments[index], next = self->segments[index + 1];
        if (next == after + 1)
            continue;
        self->corrupt_count++;
        nsq_error("diskqueue %s: segments %06" PRId64 " to %06" PRId64
                  " are missing; their records are lost, reading goes on at %06" PRId64,
                  self->name, after + 1, next - 1, next);
        *changed = true;
    }
    return 0;
}

// Reconciles the metadata with the segment files listed (ascending) and
// leaves no file open.
static int s_open(nsq_diskqueue_t *self, const int64_t *listed, size_t count)
{
    int meta = dq_meta_read(self);
    if (meta < 0)
        return -1;
    bool changed = false;
    if (meta == 1) {
        changed = count > 0;
        self->depth = 0;
        self->read_file = count ? listed[0] : 0;
        self->write_file = count ? listed[count - 1] : 0;
        self->read_pos = 0;
        self->write_pos = count ? INT64_MAX : 0;  // trust the file
    } else if (count > 0 && listed[count - 1] > self->write_file) {
        // Rolled after the metadata was last written: the newest segment
        // is the write segment, the ones in between are read in full.
        nsq_warn("diskqueue %s: segments beyond the metadata, trusting the files", self->name);
        changed = true;
        self->write_file = listed[count - 1];
        self->write_pos = INT64_MAX;
    }
    for (size_t i = 0; i < count && listed[i] < self->write_file; i++)
        if (dq_segment_append(self, listed[i]) != 0)
            return -1;
    if (dq_segment_append(self, self->write_file) != 0 || s_check_writer(self, &changed) != 0
        || s_find_reader(self, &changed) != 0)
        return -1;
    if (changed)
        s_recount(self);
    dq_delete_done(self);  // leftovers of reads finished before the metadata was written
    self->meta_dirty = changed;
    if (changed)
        return nsq_diskqueue_sync(self);
    dq_release(self);
    return 0;
}

// True if the queue's metadata file exists.
static bool s_meta_exists(const nsq_diskqueue_t *self)
{
    char path[DQ_PATH_MAX];
    dq_meta_path(self, path, "");
    return access(path, F_OK) == 0;
}

// Recovers the synchronous-mode queue self from the segment numbers a
// listing gave (dq_listing_take; they are the queue's if verdict says so,
// else the directory is read here). Returns 0, or -1 with errno.
int dq_recover(nsq_diskqueue_t *self, const int64_t *numbers, size_t count,
               dq_listed_verdict_t verdict)
{
    if (verdict == DQ_LISTED || (verdict == DQ_LISTED_UNLESS && !s_meta_exists(self)))
        return s_open(self, numbers, count);
    nsq_diskqueue_listing_t *own = dq_listing_new(self->dir, self->name);
    if (!own)
        return -1;
    int64_t *listed = NULL;
    size_t listed_count;
    dq_listed_verdict_t own_verdict;
    int rc = dq_listing_take(own, self->name, &listed, &listed_count, &own_verdict);
    if (rc == 0)
        rc = s_open(self, listed, listed_count);
    int saved = errno;
    free(listed);
    nsq_diskqueue_listing_destroy(&own);
    errno = saved;
    return rc;
}
