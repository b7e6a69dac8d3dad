/*  nsq_diskqueue - a FIFO of byte records on disk: append-only segment
    files, checksummed records, an atomically replaced metadata file
    SPDX-License-Identifier: MIT

    Positions: (read_file, read_pos) is the next record to read,
    (write_file, write_pos) where the next record goes; both always sit on
    record boundaries, and read <= write. The caller may hold records it
    has read but not finished with: keep (set by nsq_diskqueue_keep_from)
    is the oldest of them, and the metadata then records keep as the read
    position, so a restart serves them again. Segments before both the
    read segment and keep's segment are deleted. The reader never looks
    past write_pos in the write segment, so its buffer holds only complete,
    committed bytes.

    Segments: the queue keeps the ascending list of its segment numbers
    whose files exist (the write segment last, listed even before its file
    is created), and moves from one entry to the next; nothing loops over
    the numbers between two entries. A position token is (the segment's
    ordinal in that list since open) << 40 | offset, so tokens order
    records whatever the segment numbers are.
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

#include "nsq_crc32c.h"
#include "nsq_log.h"

// Read buffer size: small, and allocated only while a segment is read.
#define DQ_BUFFER_SIZE (32 * 1024)
#define DQ_PATH_MAX    1200
#define DQ_IOV_MAX     16
// Position tokens: segment ordinal above this many offset bits.
#define DQ_POSITION_BITS 40
#define DQ_OFFSET_MAX    ((int64_t) ((1ULL << DQ_POSITION_BITS) - 1))
// Largest segment number taken from a file name or the metadata (18
// digits), so that numbering on from it cannot overflow.
#define DQ_SEGMENT_MAX 999999999999999999LL

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
    int64_t *segments;           // segment numbers present, ascending; write_file last
    size_t segment_count;        // entries used in segments
    size_t segment_capacity;     // entries allocated in segments
    uint64_t first_ordinal;      // position ordinal of segments[0]
    bool keeping;                // the caller manages keep: only keep_from deletes segments
    int write_fd;                // write segment, -1 when not open
    bool dir_unsynced;           // the write segment's file was created since the last dir sync
    int read_fd;                 // read segment, -1 when not open
    int64_t read_end;            // size of the read segment if finished, else -1
    uint8_t *buffer;             // read buffer (DQ_BUFFER_SIZE bytes) while reading, else NULL
    int64_t buffer_offset;       // file offset of buffer[0]
    size_t buffer_length;        // valid bytes in buffer
    uint8_t *scratch;            // records larger than the buffer
    size_t scratch_size;         // bytes allocated in scratch
    uint64_t last_position;      // position of the record get returned last
    int64_t unsynced_writes;     // puts since the last data sync
    uint64_t put_count;          // puts since open
    uint64_t taken_count;        // put_count at the last take_sync_fd (or data sync)
    bool meta_dirty;             // positions changed since the last metadata write
    int64_t last_sync_ms;        // monotonic ms of the last sync
    uint64_t corrupt_count;      // damaged records and missing segments skipped
};

// One segment file of a listing.
typedef struct {
    char *name;      // its queue's name
    int64_t number;  // its segment number
    bool taken;      // handed to a queue already
} dq_listed_t;

struct _nsq_diskqueue_listing_t {
    dq_listed_t *entries;  // sorted by name, then number
    size_t count;          // entries used
};

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

// ---- the segment list --------------------------------------------------------

// Index of segment number in the list, or segment_count if it is absent.
static size_t s_segment_index(const nsq_diskqueue_t *self, int64_t number)
{
    size_t low = 0, high = self->segment_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->segments[middle] < number)
            low = middle + 1;
        else
            high = middle;
    }
    return low < self->segment_count && self->segments[low] == number ? low : self->segment_count;
}

// Appends number (above every listed one). Returns 0, or -1 (ENOMEM).
static int s_segment_append(nsq_diskqueue_t *self, int64_t number)
{
    if (self->segment_count == self->segment_capacity) {
        size_t capacity = self->segment_capacity ? 2 * self->segment_capacity : 4;
        int64_t *segments = realloc(self->segments, capacity * sizeof *segments);
        if (!segments)
            return -1;
        self->segments = segments;
        self->segment_capacity = capacity;
    }
    self->segments[self->segment_count++] = number;
    return 0;
}

// The position token of offset pos in listed segment file.
static uint64_t s_position(const nsq_diskqueue_t *self, int64_t file, int64_t pos)
{
    uint64_t ordinal = self->first_ordinal + s_segment_index(self, file);
    return ordinal << DQ_POSITION_BITS | (uint64_t) pos;
}

// Splits a position token into its segment number and offset. Returns
// false if its segment is no longer listed.
static bool s_position_split(const nsq_diskqueue_t *self, uint64_t position, int64_t *file,
                             int64_t *pos)
{
    uint64_t ordinal = position >> DQ_POSITION_BITS;
    if (ordinal < self->first_ordinal || ordinal - self->first_ordinal >= self->segment_count)
        return false;
    *file = self->segments[ordinal - self->first_ordinal];
    *pos = (int64_t) (position & (uint64_t) DQ_OFFSET_MAX);
    return true;
}

// ---- listings ------------------------------------------------------------------

// Splits "NAME.diskqueue.NUMBER.dat" into the length of NAME and NUMBER.
// Returns false for any other file name.
static bool s_parse_segment_name(const char *file, size_t *name_length, int64_t *number)
{
    static const char infix[] = ".diskqueue.";
    const size_t infix_length = sizeof infix - 1;
    size_t length = strlen(file);
    if (length < 4 || strcmp(file + length - 4, ".dat") != 0)
        return false;
    size_t end = length - 4, start = end;
    while (start > 0 && file[start - 1] >= '0' && file[start - 1] <= '9')
        start--;
    if (start == end || end - start > 18 || start < infix_length + 1
        || strncmp(file + start - infix_length, infix, infix_length) != 0)
        return false;
    int64_t value = 0;
    for (size_t i = start; i < end; i++)
        value = value * 10 + (file[i] - '0');
    *name_length = start - infix_length;
    *number = value;
    return true;
}

static int s_listed_compare(const void *a, const void *b)
{
    const dq_listed_t *left = a, *right = b;
    int order = strcmp(left->name, right->name);
    if (order)
        return order;
    return left->number < right->number ? -1 : left->number > right->number;
}

// Adds one entry. Returns 0, or -1 (ENOMEM).
static int s_listing_add(nsq_diskqueue_listing_t *self, size_t *capacity, const char *file,
                         size_t name_length, int64_t number)
{
    if (self->count == *capacity) {
        size_t grown = *capacity ? 2 * *capacity : 64;
        dq_listed_t *entries = realloc(self->entries, grown * sizeof *entries);
        if (!entries)
            return -1;
        self->entries = entries;
        *capacity = grown;
    }
    char *name = strndup(file, name_length);
    if (!name)
        return -1;
    self->entries[self->count++] = (dq_listed_t){name, number, false};
    return 0;
}

// Lists the segment files in dir: every queue's, or only those of the
// queue called only (when not NULL).
static nsq_diskqueue_listing_t *s_listing_new(const char *dir, const char *only)
{
    nsq_diskqueue_listing_t *self = calloc(1, sizeof *self);
    DIR *handle = self ? opendir(dir) : NULL;
    if (!handle) {
        nsq_diskqueue_listing_destroy(&self);
        return NULL;
    }
    size_t capacity = 0, only_length = only ? strlen(only) : 0;
    struct dirent *entry;
    int error = 0;
    while (!error && (entry = readdir(handle))) {
        size_t name_length;
        int64_t number;
        if (!s_parse_segment_name(entry->d_name, &name_length, &number))
            continue;
        if (only && (name_length != only_length || strncmp(entry->d_name, only, only_length)))
            continue;
        if (s_listing_add(self, &capacity, entry->d_name, name_length, number) != 0)
            error = ENOMEM;
    }
    closedir(handle);
    if (error) {
        nsq_diskqueue_listing_destroy(&self);
        errno = error;
        return NULL;
    }
    if (self->count > 1)  // entries is NULL when the directory holds none
        qsort(self->entries, self->count, sizeof *self->entries, s_listed_compare);
    return self;
}

nsq_diskqueue_listing_t *nsq_diskqueue_listing_new(const char *dir)
{
    return s_listing_new(dir, NULL);
}

void nsq_diskqueue_listing_destroy(nsq_diskqueue_listing_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_listing_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free(self->entries[i].name);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

// Finds the entries of the queue called name: sets *first, returns how
// many (0 if none).
static size_t s_listing_find(const nsq_diskqueue_listing_t *self, const char *name, size_t *first)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (strcmp(self->entries[middle].name, name) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    size_t end = low;
    while (end < self->count && strcmp(self->entries[end].name, name) == 0)
        end++;
    *first = low;
    return end - low;
}

// ---- metadata ----------------------------------------------------------------

// Writes the metadata to a temporary file and renames it over the old one;
// with durable, fsyncs the file before and the directory after.
static int s_replace_meta(nsq_diskqueue_t *self, bool durable)
{
    char path[DQ_PATH_MAX], temp[DQ_PATH_MAX], text[160];
    s_meta_path(self, path, "");
    s_meta_path(self, temp, ".tmp");
    int64_t read_file = self->read_file, read_pos = self->read_pos, depth = self->depth;
    int64_t keep_file, keep_pos;
    if (self->keep != NSQ_DISKQUEUE_KEEP_NONE
        && s_position_split(self, self->keep, &keep_file, &keep_pos)) {
        read_file = keep_file;
        read_pos = keep_pos;
        depth += self->keep_count;
    }
    int length =
        snprintf(text, sizeof text,
                 "nsqdq 1\n%" PRId64 "\n%" PRId64 ",%" PRId64 "\n%" PRId64 ",%" PRId64 "\n", depth,
                 read_file, read_pos, self->write_file, self->write_pos);
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write(fd, text, (size_t) length) != length || (durable && fdatasync(fd) != 0)) {
        int saved = errno ? errno : EIO;
        close(fd);
        unlink(temp);
        errno = saved;
        return -1;
    }
    close(fd);
    if (rename(temp, path) != 0 || (durable && s_sync_dir(self) != 0))
        return -1;
    self->meta_dirty = false;
    if (durable)
        self->dir_unsynced = false;
    return 0;
}

static int s_write_meta(nsq_diskqueue_t *self)
{
    return s_replace_meta(self, true);
}

// Reads the metadata file. Returns 0, 1 if it is absent or damaged (the
// segments decide), or -1 (errno) if it cannot be read (EMFILE...).
static int s_read_meta(nsq_diskqueue_t *self)
{
    char path[DQ_PATH_MAX];
    s_meta_path(self, path, "");
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

// ---- reading -----------------------------------------------------------------

// Closes the read segment and frees the buffers.
static void s_close_reader(nsq_diskqueue_t *self)
{
    if (self->read_fd >= 0)
        close(self->read_fd);
    self->read_fd = -1;
    self->read_end = -1;
    free(self->buffer);
    self->buffer = NULL;
    self->buffer_length = 0;
    free(self->scratch);
    self->scratch = NULL;
    self->scratch_size = 0;
}

// Closes every file and frees the buffers; the next put or get reopens.
static void s_release(nsq_diskqueue_t *self)
{
    s_close_reader(self);
    if (self->write_fd >= 0)
        close(self->write_fd);
    self->write_fd = -1;
}

// Allocates the read buffer if needed. Returns 0, or -1 (ENOMEM).
static int s_ensure_buffer(nsq_diskqueue_t *self)
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
        self->read_end = s_file_size(self->read_fd);
    return self->read_end;
}

// Opens the read segment (and its buffer) if needed. Returns 0, or -1
// with errno (ENOENT: the file is gone).
static int s_open_reader(nsq_diskqueue_t *self)
{
    if (self->read_fd >= 0)
        return 0;
    if (s_ensure_buffer(self) != 0)
        return -1;
    self->read_fd = s_open_segment(self, self->read_file, O_RDONLY);
    self->read_end = -1;
    self->buffer_length = 0;
    return self->read_fd < 0 ? -1 : 0;
}

// Deletes the segments nothing needs any more: before the read segment
// and before the oldest record still kept. The write segment stays.
static void s_delete_done(nsq_diskqueue_t *self)
{
    int64_t below = self->read_file, keep_file, keep_pos;
    if (self->keep != NSQ_DISKQUEUE_KEEP_NONE
        && s_position_split(self, self->keep, &keep_file, &keep_pos) && keep_file < below)
        below = keep_file;
    size_t done = 0;
    for (; done + 1 < self->segment_count && self->segments[done] < below; done++) {
        char path[DQ_PATH_MAX];
        s_segment_path(self, self->segments[done], path);
        if (unlink(path) != 0 && errno != ENOENT)
            nsq_warn("diskqueue %s: cannot delete %s: %s", self->name, path, strerror(errno));
    }
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
    s_close_reader(self);
    size_t index = s_segment_index(self, self->read_file);
    self->read_file =
        index + 1 < self->segment_count ? self->segments[index + 1] : self->write_file;
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
        s_close_reader(self);
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
    if (s_open_reader(self) != 0) {
        if (errno != ENOENT)
            return -1;
        s_report(self, self->read_file, self->read_pos, "segment file missing");
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
        s_report(self, self->read_file, pos, "segment larger than supported");
        s_skip_segment(self);
        return 0;
    }
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
    self->last_position = s_position(self, self->read_file, pos);
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

// Opens the write segment if needed, creating its file (whose directory
// entry the next sync makes durable). Returns 0, or -1 with errno.
static int s_open_writer(nsq_diskqueue_t *self)
{
    if (self->write_fd >= 0)
        return 0;
    self->write_fd = s_open_segment(self, self->write_file, O_RDWR);
    if (self->write_fd < 0 && errno == ENOENT) {
        self->write_fd = s_open_segment(self, self->write_file, O_RDWR | O_CREAT);
        self->dir_unsynced = self->write_fd >= 0;
    }
    return self->write_fd < 0 ? -1 : 0;
}

// Data sync, then the metadata; releases the files when release is set.
static int s_sync(nsq_diskqueue_t *self, bool release)
{
    self->last_sync_ms = s_now_ms();
    if (self->unsynced_writes > 0) {
        if (s_open_writer(self) != 0 || fdatasync(self->write_fd) != 0)
            return -1;
        self->unsynced_writes = 0;
        self->taken_count = self->put_count;
        self->meta_dirty = true;
    }
    if ((self->meta_dirty || self->dir_unsynced) && s_write_meta(self) != 0)
        return -1;
    if (release)
        s_release(self);
    return 0;
}

int nsq_diskqueue_sync(nsq_diskqueue_t *self)
{
    return s_sync(self, true);
}

int nsq_diskqueue_write_meta(nsq_diskqueue_t *self)
{
    self->last_sync_ms = s_now_ms();
    self->unsynced_writes = 0;
    self->taken_count = self->put_count;
    if ((self->meta_dirty || self->dir_unsynced) && s_replace_meta(self, false) != 0)
        return -1;
    self->dir_unsynced = false;
    s_release(self);
    return 0;
}

int nsq_diskqueue_take_sync_fd(nsq_diskqueue_t *self, int *fd)
{
    if (self->put_count == self->taken_count)
        return 0;
    if (s_open_writer(self) != 0)
        return -1;
    if (self->dir_unsynced) {  // a new segment: its name must survive a crash too
        if (s_sync_dir(self) != 0)
            return -1;
        self->dir_unsynced = false;
    }
    // The caller's descriptor syncs the file; the queue reopens it on its
    // next put, so a queue between group commits holds no descriptor.
    *fd = self->write_fd;
    self->write_fd = -1;
    self->taken_count = self->put_count;
    return 1;
}

uint64_t nsq_diskqueue_untaken_puts(const nsq_diskqueue_t *self)
{
    return self->put_count - self->taken_count;
}

bool nsq_diskqueue_dirty(const nsq_diskqueue_t *self)
{
    return self->unsynced_writes > 0 || self->meta_dirty || self->dir_unsynced;
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
    if (self->write_file >= DQ_SEGMENT_MAX)
        return errno = EFBIG, -1;
    if (s_segment_append(self, self->write_file + 1) != 0)
        return -1;
    self->segment_count--;  // listed once the file exists
    int fd = s_open_segment(self, self->write_file + 1, O_RDWR | O_CREAT | O_TRUNC);
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
    if (self->write_pos > 0 && self->write_pos + record > self->max_bytes_per_file) {
        if (s_roll(self) != 0)
            return -1;
    } else if (s_open_writer(self) != 0) {
        return -1;
    }
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
        && s_sync(self, false) != 0)
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
    s_close_reader(self);
    // Start afresh in a new segment; every older one goes.
    if (s_roll(self) != 0)
        return -1;
    self->read_file = self->write_file;
    self->read_pos = 0;
    self->depth = 0;
    self->meta_dirty = true;
    s_delete_done(self);
    return nsq_diskqueue_sync(self);
}

// ---- opening -----------------------------------------------------------------

// Offset just past the last complete record of segment fd (size bytes),
// walking from offset start (a record boundary). Reads headers only.
// *count receives the records passed. -1 if out of memory.
static int64_t s_walk(nsq_diskqueue_t *self, int fd, int64_t start, int64_t size, int64_t *count)
{
    int64_t pos = start;
    *count = 0;
    if (s_ensure_buffer(self) != 0)
        return -1;
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
    if (end < 0)
        return -1;
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
    for (size_t i = s_segment_index(self, self->read_file); i < self->segment_count; i++) {
        int64_t file = self->segments[i];
        int fd = s_open_segment(self, file, O_RDONLY);
        if (fd < 0)
            continue;
        int64_t size = file == self->write_file ? self->write_pos : s_file_size(fd);
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
    self->write_fd = s_open_segment(self, self->write_file, O_RDWR);
    if (self->write_fd < 0 && errno != ENOENT)
        return -1;
    int64_t size = self->write_fd >= 0 ? s_file_size(self->write_fd) : 0;
    if (size < 0)
        return -1;
    if (self->write_pos > size) {
        *changed = true;
        if (self->write_fd >= 0)
            return s_repair_tail(self, size);
        s_report(self, self->write_file, 0, "missing write segment");
        self->write_pos = 0;
        if (self->read_file == self->write_file)
            self->read_pos = 0;
    } else if (self->write_pos < size) {
        *changed = true;
        self->write_pos = size;
        return s_roll(self);
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
        int fd = s_open_segment(self, self->read_file, O_RDONLY);
        if (fd < 0 && errno != ENOENT)
            return -1;
        int64_t size = fd >= 0 ? s_file_size(fd) : -1;
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
    int meta = s_read_meta(self);
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
        if (s_segment_append(self, listed[i]) != 0)
            return -1;
    if (s_segment_append(self, self->write_file) != 0 || s_check_writer(self, &changed) != 0
        || s_find_reader(self, &changed) != 0)
        return -1;
    if (changed)
        s_recount(self);
    s_delete_done(self);  // leftovers of reads finished before the metadata was written
    self->meta_dirty = changed;
    if (changed)
        return nsq_diskqueue_sync(self);
    s_release(self);
    return 0;
}

// True if the queue's metadata file exists.
static bool s_meta_exists(const nsq_diskqueue_t *self)
{
    char path[DQ_PATH_MAX];
    s_meta_path(self, path, "");
    return access(path, F_OK) == 0;
}

// Collects the segment numbers of the queue from listing (taking them),
// or from a listing of its own when listing cannot tell. Caller frees
// *numbers. Returns 0, or -1 with errno.
static int s_segments_of(nsq_diskqueue_t *self, nsq_diskqueue_listing_t *listing, int64_t **numbers,
                         size_t *count)
{
    size_t first = 0, found = listing ? s_listing_find(listing, self->name, &first) : 0;
    bool trusted = listing && !(found > 0 && listing->entries[first].taken)
                   && !(found == 0 && s_meta_exists(self));
    nsq_diskqueue_listing_t *own = NULL;
    if (!trusted) {
        own = s_listing_new(self->dir, self->name);
        if (!own)
            return -1;
        listing = own;
        first = 0;
        found = own->count;
    }
    *numbers = malloc((found ? found : 1) * sizeof **numbers);
    if (!*numbers) {
        nsq_diskqueue_listing_destroy(&own);
        return -1;
    }
    for (size_t i = 0; i < found; i++) {
        (*numbers)[i] = listing->entries[first + i].number;
        listing->entries[first + i].taken = true;
    }
    *count = found;
    nsq_diskqueue_listing_destroy(&own);
    return 0;
}

nsq_diskqueue_t *nsq_diskqueue_new_listed(const char *dir, const char *name,
                                          int64_t max_bytes_per_file, uint32_t max_msg_size,
                                          int64_t sync_every, nsq_diskqueue_listing_t *listing)
{
    nsq_diskqueue_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = strdup(dir);
    self->name = strdup(name);
    self->max_bytes_per_file = max_bytes_per_file;
    self->max_msg_size = max_msg_size;
    self->sync_every = sync_every;
    self->write_fd = -1;
    self->read_fd = -1;
    self->read_end = -1;
    self->keep = NSQ_DISKQUEUE_KEEP_NONE;
    int64_t *listed = NULL;
    size_t count = 0;
    if (!self->dir || !self->name || s_segments_of(self, listing, &listed, &count) != 0
        || s_open(self, listed, count) != 0) {
        int saved = errno;
        if (self->name)
            nsq_error("diskqueue %s: cannot open in %s: %s", name, dir, strerror(saved));
        self->meta_dirty = false;
        self->dir_unsynced = false;
        self->unsynced_writes = 0;
        nsq_diskqueue_destroy(&self);
        errno = saved;
    }
    free(listed);
    return self;
}

nsq_diskqueue_t *nsq_diskqueue_new(const char *dir, const char *name, int64_t max_bytes_per_file,
                                   uint32_t max_msg_size, int64_t sync_every)
{
    return nsq_diskqueue_new_listed(dir, name, max_bytes_per_file, max_msg_size, sync_every, NULL);
}

static void s_free(nsq_diskqueue_t **self_p)
{
    nsq_diskqueue_t *self = *self_p;
    s_release(self);
    free(self->segments);
    free(self->dir);
    free(self->name);
    free(self);
    *self_p = NULL;
}

void nsq_diskqueue_destroy(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    if (nsq_diskqueue_dirty(self) && nsq_diskqueue_sync(self) != 0)
        nsq_error("diskqueue %s: final sync failed: %s", self->name, strerror(errno));
    s_free(self_p);
}

void nsq_diskqueue_delete(nsq_diskqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskqueue_t *self = *self_p;
    char path[DQ_PATH_MAX];
    for (size_t i = 0; i < self->segment_count; i++) {
        s_segment_path(self, self->segments[i], path);
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
    nsq_diskqueue_listing_t *listing = s_listing_new(dir, name);
    int count = listing ? (int) listing->count : -1;
    nsq_diskqueue_listing_destroy(&listing);
    return count;
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

// The path of segment number of queue name in dir.
static void s_test_segment_path(const char *dir, const char *name, int64_t number, char *path)
{
    nsq_diskqueue_t probe = {.dir = (char *) dir, .name = (char *) name};
    s_segment_path(&probe, number, path);
}

// Segments 000000 and 1000000000000 of one queue: opening, reading,
// keeping and reopening work from the two files, never from the numbers
// in between (which once took forever), and the gap is reported once.
static int s_test_sparse(const char *dir)
{
    const int64_t far = 1000000000000LL;
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "donor", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 2, 3) == 0);
    nsq_diskqueue_destroy(&queue);
    queue = nsq_diskqueue_new(dir, "sparse", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 2) == 0);
    nsq_diskqueue_destroy(&queue);
    char from[DQ_PATH_MAX], to[DQ_PATH_MAX];
    s_test_segment_path(dir, "donor", 0, from);
    s_test_segment_path(dir, "sparse", far, to);
    DQ_TEST_CHECK(rename(from, to) == 0);
    nsq_diskqueue_t probe = {.dir = (char *) dir, .name = (char *) "donor"};
    s_meta_path(&probe, from, "");
    DQ_TEST_CHECK(unlink(from) == 0);
    // The metadata still says segment 0 is the write segment: the files win.
    queue = nsq_diskqueue_new(dir, "sparse", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 5);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 1);
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);
    for (int i = 0; i < 3; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    nsq_diskqueue_keep_from(queue, nsq_diskqueue_position(queue), 1);  // rec-0002 unfinished
    DQ_TEST_CHECK(s_test_count_segments(dir, "sparse") == 1);          // segment 0 is done
    nsq_diskqueue_destroy(&queue);
    queue = nsq_diskqueue_new(dir, "sparse", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 3);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0 && s_test_fill(queue, 5, 1) == 0);
    for (int i = 2; i < 6; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(s_test_path_size(dir, "sparse", far) == 4 * 16);
    nsq_diskqueue_delete(&queue);
    // Without metadata the queue is rebuilt from the same two files.
    queue = nsq_diskqueue_new(dir, "rebuilt", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 1) == 0);
    nsq_diskqueue_destroy(&queue);
    s_test_segment_path(dir, "rebuilt", 0, from);
    s_test_segment_path(dir, "rebuilt", far, to);
    DQ_TEST_CHECK(link(from, to) == 0);
    probe.name = (char *) "rebuilt";
    s_meta_path(&probe, from, "");
    DQ_TEST_CHECK(unlink(from) == 0);
    queue = nsq_diskqueue_new(dir, "rebuilt", 1 << 20, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 2);
    DQ_TEST_CHECK(s_test_expect(queue, 0) == 0 && s_test_expect(queue, 0) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 1 && nsq_diskqueue_is_empty(queue));
    nsq_diskqueue_delete(&queue);
    return 0;
}

// A missing middle segment (gone before the open, or while the queue is
// open) is counted once and the records after it are served.
static int s_test_gap(const char *dir)
{
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "gap", 64, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_fill(queue, 0, 16) == 0);  // segments 0 to 3
    nsq_diskqueue_destroy(&queue);
    char path[DQ_PATH_MAX];
    s_test_segment_path(dir, "gap", 1, path);
    DQ_TEST_CHECK(unlink(path) == 0);
    queue = nsq_diskqueue_new(dir, "gap", 64, 1024, 0);
    DQ_TEST_CHECK(queue && nsq_diskqueue_corrupt_count(queue) == 1);
    DQ_TEST_CHECK(nsq_diskqueue_depth(queue) == 12);
    for (int i = 0; i < 4; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    s_test_segment_path(dir, "gap", 2, path);
    DQ_TEST_CHECK(unlink(path) == 0);  // while the queue is open
    for (int i = 12; i < 16; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 2 && nsq_diskqueue_is_empty(queue));
    const void *data;
    size_t size;
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == 0 && nsq_diskqueue_depth(queue) == 0);
    nsq_diskqueue_delete(&queue);
    return 0;
}

// Descriptors this process has open.
static int s_test_open_fds(void)
{
    DIR *listing = opendir("/proc/self/fd");
    int count = -1;  // the listing's own
    struct dirent *entry;
    while (listing && (entry = readdir(listing)))
        count += entry->d_name[0] != '.';
    if (listing)
        closedir(listing);
    return count;
}

// An idle queue holds no descriptor and no buffer: a new one creates no
// file before its first put, and a sync closes what put and get opened.
// Queues opened through one listing find their files.
static int s_test_idle(const char *dir)
{
    int before = s_test_open_fds();
    nsq_diskqueue_t *queue = nsq_diskqueue_new(dir, "idle", 64, 1024, 0);
    DQ_TEST_CHECK(queue && s_test_count_segments(dir, "idle") == 0);
    DQ_TEST_CHECK(s_test_open_fds() == before);
    DQ_TEST_CHECK(s_test_fill(queue, 0, 6) == 0 && s_test_expect(queue, 0) == 0);
    DQ_TEST_CHECK(s_test_open_fds() == before + 2 && queue->buffer);
    DQ_TEST_CHECK(nsq_diskqueue_sync(queue) == 0);
    DQ_TEST_CHECK(s_test_open_fds() == before && !queue->buffer && !queue->scratch);
    DQ_TEST_CHECK(s_test_expect(queue, 1) == 0 && s_test_fill(queue, 6, 1) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_maybe_sync(queue, s_now_ms() + 1000, 1000) == 0);
    DQ_TEST_CHECK(s_test_open_fds() == before && !queue->buffer);
    nsq_diskqueue_destroy(&queue);
    nsq_diskqueue_t *other = nsq_diskqueue_new(dir, "idle2", 64, 1024, 0);
    DQ_TEST_CHECK(other && s_test_fill(other, 100, 1) == 0);
    nsq_diskqueue_destroy(&other);
    nsq_diskqueue_listing_t *listing = nsq_diskqueue_listing_new(dir);
    DQ_TEST_CHECK(listing && s_test_open_fds() == before);
    queue = nsq_diskqueue_new_listed(dir, "idle", 64, 1024, 0, listing);
    other = nsq_diskqueue_new_listed(dir, "idle2", 64, 1024, 0, listing);
    DQ_TEST_CHECK(queue && other && s_test_open_fds() == before);
    DQ_TEST_CHECK(nsq_diskqueue_depth(queue) == 5 && nsq_diskqueue_depth(other) == 1);
    DQ_TEST_CHECK(s_test_expect(other, 100) == 0);
    nsq_diskqueue_delete(&other);
    // Its listed files are gone now: a new queue of that name starts empty.
    other = nsq_diskqueue_new_listed(dir, "idle2", 64, 1024, 0, listing);
    DQ_TEST_CHECK(other && nsq_diskqueue_is_empty(other)
                  && nsq_diskqueue_corrupt_count(other) == 0);
    nsq_diskqueue_delete(&other);
    nsq_diskqueue_listing_destroy(&listing);
    for (int i = 2; i < 7; i++)
        DQ_TEST_CHECK(s_test_expect(queue, i) == 0);
    nsq_diskqueue_delete(&queue);
    DQ_TEST_CHECK(s_test_open_fds() == before);
    return 0;
}

int nsq_diskqueue_test(void)
{
    char dir[] = "/tmp/nsq-diskqueue-test-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    int rc = s_test_roll_and_reopen(dir) || s_test_sizes(dir) || s_test_truncated_tail(dir)
                     || s_test_flipped(dir) || s_test_old_metadata(dir) || s_test_failed_write(dir)
                     || s_test_keep(dir) || s_test_meta_before_roll(dir) || s_test_sparse(dir)
                     || s_test_gap(dir) || s_test_idle(dir)
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
