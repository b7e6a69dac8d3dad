/*  nsq_diskqueue - a FIFO of byte records on disk: append-only segment
    files, checksummed records, an atomically replaced metadata file
    SPDX-License-Identifier: MIT

    Positions: (read_file, read_pos) is the next record to read,
    (write_file, write_pos) where the next record goes; both always sit on
    record boundaries, and read <= write. The caller may hold records it
    has read but not finished with: keep (set by nsq_diskqueue_keep_from)
    is the oldest of them, and the metadata then records keep as the read
    position, so a restart serves them again. Segments before both the
    read segment and keep's segment are deleted. The reader never looks past write_pos in the write
   segment, so its buffer holds only complete, committed bytes.
*/
#include "nsq_diskqueue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nsq_log.h"

// Read buffer size: small, since every queue has one.
#define DQ_BUFFER_SIZE (32 * 1024)
#define DQ_PATH_MAX    1200
#define DQ_IOV_MAX     16
// Position tokens: segment number above this many offset bits.
#define DQ_POSITION_BITS 40

struct _nsq_diskqueue_t {
    char *dir;                   // directory holding the files
    char *name;                  // queue name, the file name prefix
    int64_t max_bytes_per_file;  // roll when a record would pass this
    uint32_t max_msg_size;       // largest record payload
    int64_t sync_every;          // fsync after this many puts; 0 = caller only
    int64_t read_file;           // segment number of the next record to read
    int64_t read_pos;            // its offset
    int64_t write_file;          // segment being appended
    int64_t write_pos;           // its length (next record's offset)
    int64_t depth;               // records between read and write positions
    uint64_t keep;               // position of the oldest record still held, or NONE
    int64_t keep_count;          // records from keep to the read position
    int64_t oldest_file;         // lowest segment not yet deleted
    bool keeping;                // the caller manages keep: only keep_from deletes segments
    int write_fd;                // write segment, -1 when not open
    int read_fd;                 // read segment, -1 when not open
    int64_t read_end;            // size of the read segment if finished, else -1
    uint8_t *buffer;             // read buffer, DQ_BUFFER_SIZE bytes
    int64_t buffer_offset;       // file offset of buffer[0]
    size_t buffer_length;        // valid bytes in buffer
    uint8_t *scratch;            // records larger than the buffer
    size_t scratch_size;         // bytes allocated in scratch
    uint64_t last_position;      // position of the record get returned last
    int64_t unsynced_writes;     // puts since the last data sync
    uint64_t put_count;          // puts since open
    uint64_t taken_count;        // put_count at the last take_sync_fd
    bool meta_dirty;             // positions changed since the last metadata write
    int64_t last_sync_ms;        // monotonic ms of the last sync
    uint64_t corrupt_count;      // damaged records skipped
};

// ---- CRC32C --------------------------------------------------------------

static uint32_t s_crc_table[256];

static void s_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        s_crc_table[i] = crc;
    }
}

uint32_t nsq_crc32c(uint32_t crc, const void *data, size_t size)
{
    if (s_crc_table[1] == 0)
        s_crc_init();  // idempotent; racing threads write the same values
    const uint8_t *bytes = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++)
        crc = s_crc_table[(crc ^ bytes[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// ---- helpers ---------------------------------------------------------------

static int64_t s_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void s_put_u32(uint8_t *out, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t) (value >> (8 * i));
}

static uint32_t s_get_u32(const uint8_t *in)
{
    return (uint32_t) in[0] | (uint32_t) in[1] << 8 | (uint32_t) in[2] << 16
           | (uint32_t) in[3] << 24;
}

static void s_segment_path(const nsq_diskqueue_t *self, int64_t number, char *path)
{
    snprintf(path, DQ_PATH_MAX, "%s/%s.diskqueue.%06" PRId64 ".dat", self->dir, self->name, number);
}

static void s_meta_path(const nsq_diskqueue_t *self, char *path, const char *suffix)
{
    snprintf(path, DQ_PATH_MAX, "%s/%s.diskqueue.meta.dat%s", self->dir, self->name, suffix);
}

static int64_t s_file_size(int fd)
{
    struct stat status;
    return fstat(fd, &status) == 0 ? (int64_t) status.st_size : -1;
}

static int s_open_segment(const nsq_diskqueue_t *self, int64_t number, int flags)
{
    char path[DQ_PATH_MAX];
    s_segment_path(self, number, path);
    return open(path, flags | O_CLOEXEC, 0644);
}

static int s_sync_dir(const nsq_diskqueue_t *self)
{
    int fd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void s_report(nsq_diskqueue_t *self, int64_t file, int64_t pos, const char *what)
{
    self->corrupt_count++;
    nsq_error("diskqueue %s: %s at segment %" PRId64 " offset %" PRId64 ", skipped", self->name,
              what, file, pos);
}

// ---- metadata ----------------------------------------------------------------

static int s_write_meta(nsq_diskqueue_t *self)
{
    char path[DQ_PATH_MAX], temp[DQ_PATH_MAX], text[160];
    s_meta_path(self, path, "");
    s_meta_path(self, temp, ".tmp");
    int64_t read_file = self->read_file, read_pos = self->read_pos, depth = self->depth;
    if (self->keep != NSQ_DISKQUEUE_KEEP_NONE) {
        read_file = (int64_t) (self->keep >> DQ_POSITION_BITS);
        read_pos = (int64_t) (self->keep & ((1ULL << DQ_POSITION_BITS) - 1));
        depth += self->keep_count;
    }
    int length =
        snprintf(text, sizeof text,
                 "nsqdq 1\n%" PRId64 "\n%" PRId64 ",%" PRId64 "\n%" PRId64 ",%" PRId64 "\n", depth,
                 read_file, read_pos, self->write_file, self->write_pos);
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write(fd, text, (size_t) length) != length || fdatasync(fd) != 0) {
        int saved = errno ? errno : EIO;
        close(fd);
        unlink(temp);
        errno = saved;
        return -1;
    }
    close(fd);
    if (rename(temp, path) != 0 || s_sync_dir(self) != 0)
        return -1;
    self->meta_dirty = false;
    return 0;
}

// Reads the metadata file. Returns 0, or -1 if it is absent or unreadable.
static int s_read_meta(nsq_diskqueue_t *self)
{
    char path[DQ_PATH_MAX];
    s_meta_path(self, path, "");
    FILE *file = fopen(path, "re");
    if (!file)
        return -1;
    int version = 0;
    int fields = fscanf(file, "nsqdq %d %" SCNd64 " %" SCNd64 ",%" SCNd64 " %" SCNd64 ",%" SCNd64,
                        &version, &self->depth, &self->read_file, &self->read_pos,
                        &self->write_file, &self->write_pos);
    fclose(file);
    bool sane = fields == 6 && version == 1 && self->depth >= 0 && self->read_file >= 0
                && self->read_pos >= 0 && self->write_pos >= 0
                && (self->read_file < self->write_file
                    || (self->read_file == self->write_file && self->read_pos <= self->write_pos));
    if (!sane)
        nsq_warn("diskqueue %s: metadata file is damaged, rebuilding from the segments",
                 self->name);
    return sane ? 0 : -1;
}

// Finds the lowest and highest segment numbers present. Returns the count.
static int s_scan_segments(const nsq_diskqueue_t *self, int64_t *lowest, int64_t *highest)
{
    DIR *dir = opendir(self->dir);
    if (!dir)
        return 0;
    char prefix[DQ_PATH_MAX];
    int prefix_length = snprintf(prefix, sizeof prefix, "%s.diskqueue.", self->name);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        const char *rest = entry->d_name;
        if (strncmp(rest, prefix, (size_t) prefix_length) != 0)
            continue;
        rest += prefix_length;
        char *end;
        long long number = strtoll(rest, &end, 10);
        if (end == rest || *rest < '0' || *rest > '9' || strcmp(end, ".dat") != 0)
            continue;
        *lowest = count == 0 || number < *lowest ? number : *lowest;
        *highest = count == 0 || number > *highest ? number : *highest;
        count++;
    }
    closedir(dir);
    return count;
}

// ---- reading -----------------------------------------------------------------

static void s_close_reader(nsq_diskqueue_t *self)
{
    if (self->read_fd >= 0)
        close(self->read_fd);
    self->read_fd = -1;
    self->read_end = -1;
    self->buffer_length = 0;
}

// The offset reading must stop at in the read segment; -1 on error.
static int64_t s_read_limit(nsq_diskqueue_t *self)
{
    if (self->read_file == self->write_file)
        return self->write_pos;
    if (self->read_end < 0 && self->read_fd >= 0)
        self->read_end = s_file_size(self->read_fd);
    return self->read_end;
}

// Opens the read segment if needed. Returns 0, or -1 with errno.
static int s_open_reader(nsq_diskqueue_t *self)
{
    if (self->read_fd >= 0)
        return 0;
    self->read_fd = s_open_segment(self, self->read_file, O_RDONLY);
    self->read_end = -1;
    self->buffer_length = 0;
    return self->read_fd < 0 ? -1 : 0;
}

// Deletes the segments nothing needs any more: before the read segment
// and before the oldest record still kept.
static void s_delete_done(nsq_diskqueue_t *self)
{
    int64_t below = self->read_file;
    if (self->keep != NSQ_DISKQUEUE_KEEP_NONE && (int64_t) (self->keep >> DQ_POSITION_BITS) < below)
        below = (int64_t) (self->keep >> DQ_POSITION_BITS);
    for (; self->oldest_file < below; self->oldest_file++) {
        char path[DQ_PATH_MAX];
        s_segment_path(self, self->oldest_file, path);
        if (unlink(path) != 0 && errno != ENOENT)
            nsq_warn("diskqueue %s: cannot delete %s: %s", self->name, path, strerror(errno));
    }
}

// Moves to the next segment, deleting the finished one unless kept.
static void s_next_segment(nsq_diskqueue_t *self)
{
    s_close_reader(self);
    self->read_file++;
    self->read_pos = 0;
    self->meta_dirty = true;
    if (!self->keeping)
        s_delete_done(self);
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
    s_delete_done(self);
}

// Points *data at size bytes of the read segment at offset (buffered).
// Returns 0, or -1 (errno; EIO if the file is shorter than expected).
static int s_fetch(nsq_diskqueue_t *self, int64_t offset, size_t size, int64_t limit,
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
        self->read_pos = self->write_pos;
        self->meta_dirty = true;
    } else {
        s_next_segment(self);
    }
}

// Reads the record at the read position. Returns 1 with the record, 0 if
// the position was skipped (damage, end of segment), -1 on I/O error.
static int s_read_record(nsq_diskqueue_t *self, const void **data, size_t *size)
{
    if (s_open_reader(self))
        return -1;
    int64_t limit = s_read_limit(self);
    if (limit < 0)
        return -1;
    int64_t pos = self->read_pos;
    if (pos >= limit) {  // a finished segment: move on
        s_next_segment(self);
        return 0;
    }
    const uint8_t *header;
    if (pos + NSQ_DISKQUEUE_HEADER_SIZE > limit
        || s_fetch(self, pos, NSQ_DISKQUEUE_HEADER_SIZE, limit, &header)) {
        s_report(self, self->read_file, pos, "truncated record header");
        s_skip_segment(self);
        return 0;
    }
    uint32_t length = s_get_u32(header);
    uint32_t crc = s_get_u32(header + 4);
    uint8_t length_bytes[4];
    memcpy(length_bytes, header, 4);
    if (length > self->max_msg_size || pos + NSQ_DISKQUEUE_HEADER_SIZE + length > limit) {
        s_report(self, self->read_file, pos, "impossible record length");
        s_skip_segment(self);
        return 0;
    }
    const uint8_t *payload = NULL;
    if (length > 0 && s_fetch(self, pos + NSQ_DISKQUEUE_HEADER_SIZE, length, limit, &payload))
        return -1;
    self->read_pos = pos + NSQ_DISKQUEUE_HEADER_SIZE + length;
    self->meta_dirty = true;
    if (self->depth > 0)
        self->depth--;
    if (nsq_crc32c(nsq_crc32c(0, length_bytes, 4), payload, length) != crc) {
        s_report(self, self->read_file, pos, "checksum mismatch");
        return 0;
    }
    *data = payload ? payload : (const void *) self->buffer;
    *size = length;
    self->last_position = (uint64_t) self->read_file << DQ_POSITION_BITS | (uint64_t) pos;
    return 1;
}

int nsq_diskqueue_get(nsq_diskqueue_t *self, const void **data, size_t *size)
{
    while (!nsq_diskqueue_is_empty(self)) {
        int rc = s_read_record(self, data, size);
        if (rc != 0)
            return rc;
    }
    self->depth = 0;  // whatever damage skipped, an empty queue is empty
    return 0;
}

bool nsq_diskqueue_is_empty(const nsq_diskqueue_t *self)
{
    return self->read_file == self->write_file && self->read_pos >= self->write_pos;
}

int64_t nsq_diskqueue_depth(const nsq_diskqueue_t *self)
{
    return self->depth;
}

uint64_t nsq_diskqueue_corrupt_count(const nsq_diskqueue_t *self)
{
    return self->corrupt_count;
}

// ---- writing -----------------------------------------------------------------

int nsq_diskqueue_sync(nsq_diskqueue_t *self)
{
    self->last_sync_ms = s_now_ms();
    if (self->unsynced_writes > 0) {
        if (fdatasync(self->write_fd) != 0)
            return -1;
        self->unsynced_writes = 0;
        self->meta_dirty = true;
    }
    return self->meta_dirty ? s_write_meta(self) : 0;
}

int nsq_diskqueue_take_sync_fd(nsq_diskqueue_t *self, int *fd)
{
    if (self->put_count == self->taken_count)
        return 0;
    *fd = fcntl(self->write_fd, F_DUPFD_CLOEXEC, 0);
    if (*fd < 0)
        return -1;
    self->taken_count = self->put_count;
    return 1;
}

uint64_t nsq_diskqueue_untaken_puts(const nsq_diskqueue_t *self)
{
    return self->put_count - self->taken_count;
}

bool nsq_diskqueue_dirty(const nsq_diskqueue_t *self)
{
    return self->unsynced_writes > 0 || self->meta_dirty;
}

int nsq_diskqueue_maybe_sync(nsq_diskqueue_t *self, int64_t now_ms, int64_t timeout_ms)
{
    if (!nsq_diskqueue_dirty(self) || now_ms - self->last_sync_ms < timeout_ms)
        return 0;
    return nsq_diskqueue_sync(self);
}

// Closes the full write segment (synced) and starts the next one.
static int s_roll(nsq_diskqueue_t *self)
{
    int fd = s_open_segment(self, self->write_file + 1, O_RDWR | O_CREAT | O_TRUNC);
    if (fd < 0)
        return -1;
    if (fdatasync(self->write_fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    close(self->write_fd);
    self->write_fd = fd;
    self->write_file++;
    self->write_pos = 0;
    self->unsynced_writes = 0;
    if (s_write_meta(self) != 0)
        nsq_warn("diskqueue %s: cannot write metadata: %s", self->name, strerror(errno));
    return 0;
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

int nsq_diskqueue_putv(nsq_diskqueue_t *self, const struct iovec *iov, int iov_count)
{
    size_t size = 0;
    for (int i = 0; i < iov_count; i++)
        size += iov[i].iov_len;
    if (size > self->max_msg_size || iov_count >= DQ_IOV_MAX)
        return errno = EINVAL, -1;
    int64_t record = NSQ_DISKQUEUE_HEADER_SIZE + (int64_t) size;
    if (self->write_pos > 0 && self->write_pos + record > self->max_bytes_per_file
        && s_roll(self) != 0)
        return -1;
    uint8_t header[NSQ_DISKQUEUE_HEADER_SIZE];
    s_put_u32(header, (uint32_t) size);
    uint32_t crc = nsq_crc32c(0, header, 4);
    struct iovec pieces[DQ_IOV_MAX];
    pieces[0] = (struct iovec){header, sizeof header};
    for (int i = 0; i < iov_count; i++) {
        crc = nsq_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
        pieces[i + 1] = iov[i];
    }
    s_put_u32(header + 4, crc);
    if (s_write_all(self, pieces, iov_count + 1, (size_t) record) != 0) {
        int saved = errno;
        if (ftruncate(self->write_fd, self->write_pos) != 0)
            nsq_error("diskqueue %s: cannot cut a failed write: %s", self->name, strerror(errno));
        errno = saved;
        return -1;
    }
    self->write_pos += record;
    self->depth++;
    self->unsynced_writes++;
    self->put_count++;
    if (self->sync_every > 0 && self->unsynced_writes >= self->sync_every
        && nsq_diskqueue_sync(self) != 0)
        nsq_warn("diskqueue %s: sync failed: %s", self->name, strerror(errno));
    return 0;
}

int nsq_diskqueue_put(nsq_diskqueue_t *self, const void *data, size_t size)
{
    struct iovec iov = {(void *) data, size};
    return nsq_diskqueue_putv(self, &iov, size ? 1 : 0);
}

int nsq_diskqueue_empty(nsq_diskqueue_t *self)
{
    self->keep = NSQ_DISKQUEUE_KEEP_NONE;
    self->keep_count = 0;
    while (self->read_file < self->write_file)
        s_next_segment(self);
    s_close_reader(self);
    // Start afresh in a new segment; the old write segment goes.
    if (s_roll(self) != 0)
        return -1;
    s_next_segment(self);
    self->depth = 0;
    return s_write_meta(self);
}

// ---- opening -----------------------------------------------------------------

// Offset just past the last complete record of segment fd (size bytes),
// walking from offset start (a record boundary). Reads headers only.
// *count receives the records passed.
static int64_t s_walk(nsq_diskqueue_t *self, int fd, int64_t start, int64_t size, int64_t *count)
{
    int64_t pos = start;
    *count = 0;
    int saved_fd = self->read_fd;
    self->read_fd = fd;
    self->buffer_length = 0;
    const uint8_t *header;
    while (pos + NSQ_DISKQUEUE_HEADER_SIZE <= size
           && s_fetch(self, pos, NSQ_DISKQUEUE_HEADER_SIZE, size, &header) == 0) {
        uint32_t length = s_get_u32(header);
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
    if (end < size) {
        s_report(self, self->write_file, end, "torn record at the end of the queue");
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
    for (int64_t file = self->read_file; file <= self->write_file; file++) {
        int fd = s_open_segment(self, file, O_RDONLY);
        if (fd < 0)
            continue;
        int64_t size = file == self->write_file ? self->write_pos : s_file_size(fd);
        int64_t count;
        s_walk(self, fd, file == self->read_file ? self->read_pos : 0, size, &count);
        self->depth += count;
        close(fd);
    }
}

// Moves the read position to an existing segment (segments deleted after
// the metadata was last written are gone).
static void s_find_reader(nsq_diskqueue_t *self)
{
    while (self->read_file < self->write_file) {
        int fd = s_open_segment(self, self->read_file, O_RDONLY);
        if (fd >= 0) {
            bool past_end = self->read_pos > s_file_size(fd);
            close(fd);
            if (!past_end)
                return;
        }
        self->read_file++;
        self->read_pos = 0;
    }
}

// Reconciles metadata with the files and opens the write segment.
static int s_open(nsq_diskqueue_t *self)
{
    bool recount = false;
    int64_t lowest = 0, highest = 0;
    int segments = s_scan_segments(self, &lowest, &highest);
    if (s_read_meta(self) != 0) {
        recount = segments > 0;
        self->read_file = lowest;
        self->write_file = highest;
        self->read_pos = 0;
        self->write_pos = INT64_MAX;  // trust the file
    } else if (segments > 0 && highest > self->write_file) {
        // Rolled after the metadata was last written: the newest segment
        // is the write segment, the ones in between are read in full.
        nsq_warn("diskqueue %s: segments beyond the metadata, trusting the files", self->name);
        recount = true;
        self->write_file = highest;
        self->write_pos = INT64_MAX;
    }
    self->write_fd = s_open_segment(self, self->write_file, O_RDWR | O_CREAT);
    int64_t size = self->write_fd >= 0 ? s_file_size(self->write_fd) : -1;
    if (size < 0)
        return -1;
    if (self->write_pos > size) {
        recount = true;
        if (s_repair_tail(self, size) != 0)
            return -1;
    } else if (self->write_pos < size) {
        // Records written after the metadata: keep them all for the reader
        // in this segment and append to a fresh one.
        recount = true;
        self->write_pos = size;
        if (s_roll(self) != 0)
            return -1;
    }
    s_find_reader(self);
    self->oldest_file = self->read_file;
    if (recount)
        s_recount(self);
    self->meta_dirty = true;
    return nsq_diskqueue_sync(self);
}

nsq_diskqueue_t *nsq_diskqueue_new(const char *dir, const char *name, int64_t max_bytes_per_file,
                                   uint32_t max_msg_size, int64_t sync_every)
{
    nsq_diskqueue_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = strdup(dir);
    self->name = strdup(name);
    self->buffer = malloc(DQ_BUFFER_SIZE);
    self->max_bytes_per_file = max_bytes_per_file;
    self->max_msg_size = max_msg_size;
    self->sync_every = sync_every;
    self->write_fd = -1;
    self->read_fd = -1;
    self->read_end = -1;
    self->keep = NSQ_DISKQUEUE_KEEP_NONE;
    if (!self->dir || !self->name || !self->buffer || s_open(self) != 0) {
        int saved = errno;
        if (self->name)
            nsq_error("diskqueue %s: cannot open in %s: %s", name, dir, strerror(saved));
        self->meta_dirty = false;
        self->unsynced_writes = 0;
        nsq_diskqueue_destroy(&self);
        errno = saved;
    }
    return self;
}

static void s_free(nsq_diskqueue_t **self_p)
{
    nsq_diskqueue_t *self = *self_p;
    s_close_reader(self);
    if (self->write_fd >= 0)
        close(self->write_fd);
    free(self->dir);
    free(self->name);
    free(self->buffer);
    free(self->scratch);
    free(self);
    *self_p = NULL;
}

void nsq_diskqueue_destroy(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    if (self->write_fd >= 0 && nsq_diskqueue_sync(self) != 0)
        nsq_error("diskqueue %s: final sync failed: %s", self->name, strerror(errno));
    s_free(self_p);
}

void nsq_diskqueue_delete(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    char path[DQ_PATH_MAX];
    for (int64_t file = self->oldest_file; file <= self->write_file; file++) {
        s_segment_path(self, file, path);
        unlink(path);
    }
    s_meta_path(self, path, "");
    unlink(path);
    s_meta_path(self, path, ".tmp");
    unlink(path);
    s_free(self_p);
}

// ---- self-test -----------------------------------------------------------------

#include <signal.h>
#include <sys/resource.h>

#define DQ_TEST_CHECK(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "nsq_diskqueue_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

// Appends records "rec-<first>" .. "rec-<first+count-1>".
static int s_test_fill(nsq_diskqueue_t *queue, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        char text[32];
        int length = snprintf(text, sizeof text, "rec-%04d", i);
        if (nsq_diskqueue_put(queue, text, (size_t) length) != 0)
            return -1;
    }
    return 0;
}

// Pops one record and checks it is "rec-<expected>".
static int s_test_expect(nsq_diskqueue_t *queue, int expected)
{
    const void *data;
    size_t size;
    char text[32];
    int length = snprintf(text, sizeof text, "rec-%04d", expected);
    if (nsq_diskqueue_get(queue, &data, &size) != 1) {
        fprintf(stderr, "nsq_diskqueue_test: expected rec-%04d, got nothing\n", expected);
        return -1;
    }
    if (size != (size_t) length || memcmp(data, text, size) != 0) {
        fprintf(stderr, "nsq_diskqueue_test: expected rec-%04d, got %.*s\n", expected, (int) size,
                (const char *) data);
        return -1;
    }
    return 0;
}

static int s_test_count_segments(const char *dir, const char *name)
{
    nsq_diskqueue_t probe = {.dir = (char *) dir, .name = (char *) name};
    int64_t lowest, highest;
    return s_scan_segments(&probe, &lowest, &highest);
}

static int64_t s_test_path_size(const char *dir, const char *name, int64_t number)
{
    nsq_diskqueue_t probe = {.dir = (char *) dir, .name = (char *) name};
    char path[DQ_PATH_MAX];
    s_segment_path(&probe, number, path);
    struct stat status;
    return stat(path, &status) == 0 ? (int64_t) status.st_size : -1;
}

// Applies fn to segment number of queue name: truncate by or flip at offset.
static int s_test_damage(const char *dir, const char *name, int64_t number, int64_t offset,
                         bool truncate)
{
    nsq_diskqueue_t probe = {.dir = (char *) dir, .name = (char *) name};
    char path[DQ_PATH_MAX];
    s_segment_path(&probe, number, path);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (truncate) {
        rc = ftruncate(fd, s_file_size(fd) - offset);
    } else {
        uint8_t byte;
        rc = pread(fd, &byte, 1, offset) == 1 ? 0 : -1;
        byte ^= 0x20;
        if (rc == 0 && pwrite(fd, &byte, 1, offset) != 1)
            rc = -1;
    }
    close(fd);
    return rc;
}

// Roll-over, deletion of read segments, reopen at the saved positions.
static int s_test_roll_and_reopen(const char *dir)
{
    // Records are 16 bytes on disk: 4 per 64-byte segment.
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "roll", 64, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_is_empty(queue));
    DQ_TEST_CHECK(s_test_fill(queue, 0, 10) == 0 && nsq_diskqueue_depth(queue) == 10);
    DQ_TEST_CHECK(s_test_count_segments(dir, "roll") == 3);
    for (int i = 0; i < 5; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(s_test_count_segments(dir, "roll") == 2);  // segment 0 was read and deleted
    nsq_diskqueue_destroy(&queue);
    queue = nsq_diskqueue_new(dir, "roll", 64, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 5);
    DQ_TEST_CHECK(s_test_fill(queue, 10, 2) == 0);
    for (int i = 5; i < 12; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    const void *data;
    size_t size;
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == 0 && nsq_diskqueue_depth(queue) == 0);
    DQ_TEST_CHECK(s_test_count_segments(dir, "roll") == 1);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0);
    nsq_diskqueue_delete(&queue);
    DQ_TEST_CHECK(s_test_count_segments(dir, "roll") == 0);
    return 0;
}

// Zero-length and maximum-size records (larger than the read buffer).
static int s_test_sizes(const char *dir)
{
    uint32_t max = 3 * DQ_BUFFER_SIZE + 7;
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "sizes", 1 << 20, max, 0);
    uint8_t *big = malloc(max + 1);
    DQ_TEST_CHECK(queue && big);
    for (uint32_t i = 0; i <= max; i++)
        big[i] = (uint8_t) (i * 7);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, "", 0) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, big, max) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, big, max + 1) == -1 && errno == EINVAL);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, "x", 1) == 0 && nsq_diskqueue_depth(queue) == 3);
    nsq_diskqueue_destroy(&queue);
    queue = nsq_diskqueue_new(dir, "sizes", 1 << 20, max, 0);
    const void *data;
    size_t size;
    DQ_TEST_CHECK(queue && nsq_diskqueue_get(queue, &data, &size) == 1 && size == 0);
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == 1 && size == max);
    DQ_TEST_CHECK(memcmp(data, big, max) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == 1 && size == 1);
    DQ_TEST_CHECK(memcmp(data, "x", 1) == 0 && nsq_diskqueue_corrupt_count(queue) == 0);
    free(big);
    nsq_diskqueue_delete(&queue);
    return 0;
}

// A torn last record (metadata newer than the segment) is cut; the rest
// and later writes are served.
static int s_test_truncated_tail(const char *dir)
{
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "torn", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 5) == 0);
    nsq_diskqueue_destroy(&queue);
    DQ_TEST_CHECK(s_test_damage(dir, "torn", 0, 3, true) == 0);
    queue = nsq_diskqueue_new(dir, "torn", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 4);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 1);
    DQ_TEST_CHECK(s_test_path_size(dir, "torn", 0) == 4 * 16);
    DQ_TEST_CHECK(s_test_fill(queue, 5, 1) == 0);
    for (int i = 0; i < 4; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(s_test_expect(queue, 5) == 0 && nsq_diskqueue_is_empty(queue));
    nsq_diskqueue_delete(&queue);
    return 0;
}

// A flipped payload byte drops one record; a flipped length byte drops the
// rest of its segment; everything else is served.
static int s_test_flipped(const char *dir)
{
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "flip", 64, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 12) == 0);  // segments 0, 1, 2
    nsq_diskqueue_destroy(&queue);
    DQ_TEST_CHECK(s_test_damage(dir, "flip", 0, 1 * 16 + 10, false) == 0);  // rec-0001 payload
    DQ_TEST_CHECK(s_test_damage(dir, "flip", 1, 1 * 16 + 2, false) == 0);   // rec-0005 length
    queue = nsq_diskqueue_new(dir, "flip", 64, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 12);
    DQ_TEST_CHECK(s_test_expect(queue, 0) == 0 && s_test_expect(queue, 2) == 0);
    DQ_TEST_CHECK(s_test_expect(queue, 3) == 0 && s_test_expect(queue, 4) == 0);
    for (int i = 8; i < 12; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 2);
    const void *data;
    size_t size;
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == 0 && nsq_diskqueue_depth(queue) == 0);
    nsq_diskqueue_delete(&queue);
    return 0;
}

// Copies file from to file to (small files only).
static int s_test_copy(const char *from, const char *to)
{
    char data[256];
    int in = open(from, O_RDONLY);
    ssize_t n = in >= 0 ? read(in, data, sizeof data) : -1;
    if (in >= 0)
        close(in);
    int out = n >= 0 ? open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    if (out < 0)
        return -1;
    int rc = write(out, data, (size_t) n) == n ? 0 : -1;
    close(out);
    return rc;
}

// Metadata older than the segments (records written after the last sync),
// and metadata missing: every record is found, writing goes on.
static int s_test_old_metadata(const char *dir)
{
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "old", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 3) == 0 && nsq_diskqueue_sync(queue) == 0);
    char meta[DQ_PATH_MAX], saved[DQ_PATH_MAX];
    s_meta_path(queue, meta, "");
    s_meta_path(queue, saved, ".saved");
    DQ_TEST_CHECK(s_test_copy(meta, saved) == 0);
    DQ_TEST_CHECK(s_test_expect(queue, 0) == 0 && s_test_fill(queue, 3, 2) == 0);
    nsq_diskqueue_destroy(&queue);
    DQ_TEST_CHECK(rename(saved, meta) == 0);
    queue = nsq_diskqueue_new(dir, "old", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 5);  // rec-0000 again: at least once
    DQ_TEST_CHECK(s_test_fill(queue, 5, 1) == 0);
    for (int i = 0; i < 6; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(s_test_fill(queue, 6, 2) == 0);
    nsq_diskqueue_destroy(&queue);
    DQ_TEST_CHECK(unlink(meta) == 0);
    queue = nsq_diskqueue_new(dir, "old", 1 << 20, 1024, 0);
    // Without metadata the read position is lost: the segment is read again.
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 3);
    for (int i = 5; i < 8; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0);
    nsq_diskqueue_delete(&queue);
    return 0;
}

// Metadata from before a roll: the segments written after it are found.
static int s_test_meta_before_roll(const char *dir)
{
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "rolled", 64, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 2) == 0 && nsq_diskqueue_sync(queue) == 0);
    char meta[DQ_PATH_MAX], saved[DQ_PATH_MAX];
    s_meta_path(queue, meta, "");
    s_meta_path(queue, saved, ".saved");
    DQ_TEST_CHECK(s_test_copy(meta, saved) == 0);
    DQ_TEST_CHECK(s_test_fill(queue, 2, 8) == 0);  // segments 0, 1, 2
    nsq_diskqueue_destroy(&queue);
    DQ_TEST_CHECK(rename(saved, meta) == 0);
    queue = nsq_diskqueue_new(dir, "rolled", 64, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 10);
    DQ_TEST_CHECK(s_test_fill(queue, 10, 1) == 0);
    for (int i = 0; i < 11; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0 && nsq_diskqueue_is_empty(queue));
    nsq_diskqueue_delete(&queue);
    return 0;
}

// A write that fails (file size limit: EFBIG, as ENOSPC would) leaves no
// partial record and the queue usable; empty drops everything.
static int s_test_failed_write(const char *dir)
{
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "full", 1 << 20, 4096, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 2) == 0);
    struct rlimit old_limit, limit;
    getrlimit(RLIMIT_FSIZE, &old_limit);
    limit = old_limit;
    limit.rlim_cur = 40;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    DQ_TEST_CHECK(setrlimit(RLIMIT_FSIZE, &limit) == 0);
    char big[100] = {0};
    int rc = nsq_diskqueue_put(queue, big, sizeof big);
    int error = errno;
    setrlimit(RLIMIT_FSIZE, &old_limit);
    signal(SIGXFSZ, old_handler);
    DQ_TEST_CHECK(rc == -1 && error == EFBIG);
    DQ_TEST_CHECK(s_test_path_size(dir, "full", 0) == 32 && nsq_diskqueue_depth(queue) == 2);
    DQ_TEST_CHECK(s_test_fill(queue, 2, 1) == 0);
    for (int i = 0; i < 3; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(s_test_fill(queue, 3, 5) == 0 && nsq_diskqueue_empty(queue) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_depth(queue) == 0 && nsq_diskqueue_is_empty(queue));
    DQ_TEST_CHECK(s_test_count_segments(dir, "full") == 1);
    DQ_TEST_CHECK(s_test_fill(queue, 8, 1) == 0 && s_test_expect(queue, 8) == 0);
    nsq_diskqueue_delete(&queue);
    return 0;
}

// Records read but kept (not finished by the consumer) survive a reopen,
// and so do their segments; releasing them deletes the segments.
static int s_test_keep(const char *dir)
{
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "keep", 64, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 8) == 0);       // segments 0 and 1
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);  // the caller manages it
    DQ_TEST_CHECK(s_test_expect(queue, 0) == 0 && s_test_expect(queue, 1) == 0);
    uint64_t kept = nsq_diskqueue_position(queue);  // rec-0001 is not finished
    for (int i = 2; i < 6; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    nsq_diskqueue_keep_from(queue, kept, 5);
    DQ_TEST_CHECK(s_test_count_segments(dir, "keep") == 2);  // segment 0 stays
    nsq_diskqueue_destroy(&queue);
    queue = nsq_diskqueue_new(dir, "keep", 64, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 7);
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);
    for (int i = 1; i < 8; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(s_test_count_segments(dir, "keep") == 2);
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);
    DQ_TEST_CHECK(s_test_count_segments(dir, "keep") == 1);
    nsq_diskqueue_destroy(&queue);
    queue = nsq_diskqueue_new(dir, "keep", 64, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 0 && nsq_diskqueue_is_empty(queue));
    nsq_diskqueue_delete(&queue);
    return 0;
}

int nsq_diskqueue_test(void)
{
    // Known answer: CRC32C("123456789") is 0xE3069283.
    if (nsq_crc32c(0, "123456789", 9) != 0xE3069283u)
        return -1;
    char dir[] = "/tmp/nsq-diskqueue-test-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    int rc = s_test_roll_and_reopen(dir) || s_test_sizes(dir) || s_test_truncated_tail(dir)
                     || s_test_flipped(dir) || s_test_old_metadata(dir) || s_test_failed_write(dir)
                     || s_test_keep(dir) || s_test_meta_before_roll(dir)
                 ? -1
                 : 0;
    if (rc == 0) {
        DIR *listing = opendir(dir);
        struct dirent *entry;
        while (listing && (entry = readdir(listing)))
            if (entry->d_name[0] != '.')
                rc = -1;  // every queue was deleted, so nothing may remain
        if (listing)
            closedir(listing);
        rmdir(dir);
    } else {
        fprintf(stderr, "nsq_diskqueue_test: files kept in %s\n", dir);
    }
    return rc;
}
