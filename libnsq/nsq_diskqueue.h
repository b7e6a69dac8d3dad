/*  nsq_diskqueue - a FIFO of byte records on disk: append-only segment
    files, checksummed records, an atomically replaced metadata file
    SPDX-License-Identifier: MIT

    Files in dir, for a queue called name:
        name.diskqueue.000042.dat   segments, rolled at max_bytes_per_file
        name.diskqueue.meta.dat     "nsqdq 1\ndepth\nrfile,rpos\nwfile,wpos\n"
    A record is [u32 LE length][u32 LE crc32c(length bytes + data)][data].
    The checksum covers the length so that a zero-filled tail (a crash
    before the page cache reached the disk) never reads as valid records.

    Writes append with one pwritev per record; a failed write (ENOSPC,
    EFBIG, EIO) truncates the segment back to the last good record and
    returns -1 with errno, so no half record is ever left behind. Reads go
    through a small buffer (never a whole segment) and only up to the write
    position. A segment is deleted once it has been read to its end.

    Damage found while reading is counted, logged once per record and
    skipped: a record with a bad checksum is dropped; a length that cannot
    be right (beyond max_msg_size or the segment's end) makes the reader skip
    the rest of that segment, since the next record boundary is unknown. A
    missing segment is counted once and the reader goes on with the next
    file that exists.

    On open, the metadata is checked against the files: a write position
    before the end of its segment (metadata older than the data) starts a
    new segment, so the reader still finds every record of the old one; a
    write position beyond the end (a torn tail) trusts the file, truncating
    the last incomplete record; a missing metadata file is rebuilt from the
    segments present. In those cases the depth is recounted from the files.
    The queue works from the segment files that exist, never from the
    numbers between them, so a gap costs nothing however wide. Opening many
    queues of one directory takes one listing of it
    (nsq_diskqueue_listing_new) instead of a scan per queue.

    Files are opened on demand: put opens the write segment, get the read
    segment and its buffer, and a sync closes them again, so an idle queue
    holds no descriptor and no buffer. A new queue creates no file before
    its first put.

    Sync policy is the caller's: put() fsyncs by itself after sync_every
    writes (0 = never by itself) and on every roll; the caller drives the
    time bound with nsq_diskqueue_maybe_sync and can force one with
    nsq_diskqueue_sync. Not thread-safe: one thread owns a queue.

    API in call order: nsq_diskqueue_listing_new (optional),
    nsq_diskqueue_new or nsq_diskqueue_new_listed,
    nsq_diskqueue_listing_destroy, nsq_diskqueue_put / putv,
    nsq_diskqueue_get, nsq_diskqueue_position, nsq_diskqueue_keep_from,
    nsq_diskqueue_depth, nsq_diskqueue_sync, nsq_diskqueue_maybe_sync,
    nsq_diskqueue_take_sync_fd, nsq_diskqueue_write_meta (many queues, one
    syncfs), nsq_diskqueue_empty, nsq_diskqueue_corrupt_count,
    nsq_diskqueue_destroy (keeps the files) or nsq_diskqueue_delete
    (removes them).
*/
#ifndef NSQ_DISKQUEUE_H
#define NSQ_DISKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

// Bytes of a record header: length and checksum.
#define NSQ_DISKQUEUE_HEADER_SIZE 8

typedef struct _nsq_diskqueue_t nsq_diskqueue_t;
typedef struct _nsq_diskqueue_listing_t nsq_diskqueue_listing_t;

// Lists the segment files of every queue in dir, in one pass over the
// directory, for nsq_diskqueue_new_listed. Caller owns the result; NULL
// (errno) if dir cannot be read or memory ran out.
nsq_diskqueue_listing_t *nsq_diskqueue_listing_new(const char *dir);

// Frees the listing and nulls *self_p.
void nsq_diskqueue_listing_destroy(nsq_diskqueue_listing_t **self_p);

// Opens the queue called name in dir (which must exist), or creates it,
// restoring the read and write positions. Caller owns the result; NULL
// (errno set) if the directory cannot be used, a file cannot be opened
// (EMFILE...) or memory ran out.
nsq_diskqueue_t *nsq_diskqueue_new(const char *dir, const char *name, int64_t max_bytes_per_file,
                                   uint32_t max_msg_size, int64_t sync_every);

// As nsq_diskqueue_new, taking the queue's segment files from listing (made
// of the same dir) instead of reading the directory. The queue takes its
// entries: a later open of the same name through the listing, or one
// whose metadata exists without listed segments, reads the directory
// itself. Files made after the listing by anything but queues opened
// through it are not seen. listing may be NULL (read the directory).
nsq_diskqueue_t *nsq_diskqueue_new_listed(const char *dir, const char *name,
                                          int64_t max_bytes_per_file, uint32_t max_msg_size,
                                          int64_t sync_every, nsq_diskqueue_listing_t *listing);

// Syncs, closes and frees the queue; the files stay. Nulls *self_p.
void nsq_diskqueue_destroy(nsq_diskqueue_t **self_p);

// Closes the queue and removes all its files. Nulls *self_p.
void nsq_diskqueue_delete(nsq_diskqueue_t **self_p);

// Appends one record of size bytes (0 allowed). Returns 0, or -1 with errno:
// EINVAL if size > max_msg_size, else the write's error (ENOSPC...); the
// queue is unchanged then.
int nsq_diskqueue_put(nsq_diskqueue_t *self, const void *data, size_t size);

// Appends one record made of the iov_count pieces (no copy into one buffer).
int nsq_diskqueue_putv(nsq_diskqueue_t *self, const struct iovec *iov, int iov_count);

// Pops the oldest record: returns 1 with *data (borrowed, valid until the
// next call on self) and *size, 0 if the queue is empty, -1 on a read error
// (errno; the record stays and a later call retries).
int nsq_diskqueue_get(nsq_diskqueue_t *self, const void **data, size_t *size);

// No record kept (nsq_diskqueue_keep_from).
#define NSQ_DISKQUEUE_KEEP_NONE UINT64_MAX

// The position of the record the last successful get returned (a token
// that orders records: a later record has a larger position).
uint64_t nsq_diskqueue_position(const nsq_diskqueue_t *self);

// Declares that the records from position on (count of them already read)
// are still needed although read: the metadata keeps them as unread, so a
// restart serves them again, and their segments stay. NSQ_DISKQUEUE_KEEP_NONE
// releases them all. For consumers that finish records out of order; after
// the first call, finished segments are deleted only by this call (so that
// records read before the call are not lost with their segment).
void nsq_diskqueue_keep_from(nsq_diskqueue_t *self, uint64_t position, int64_t count);

// Records waiting to be read (exact unless damaged records were skipped).
int64_t nsq_diskqueue_depth(const nsq_diskqueue_t *self);

// True if nothing is waiting to be read.
bool nsq_diskqueue_is_empty(const nsq_diskqueue_t *self);

// fdatasyncs the written data, replaces the metadata file and closes the
// queue's files (the next put or get opens them again). Returns 0, or -1
// with errno.
int nsq_diskqueue_sync(nsq_diskqueue_t *self);

// For a caller that syncs a whole file system at once (syncfs: a shutdown
// of many queues): replaces the metadata file without any fsync and
// closes the queue's files, treating the written data as synced. The
// caller must have synced the data before, and syncs the new metadata
// after. Returns 0, or -1 with errno.
int nsq_diskqueue_write_meta(nsq_diskqueue_t *self);

// Syncs if there is anything to sync and timeout_ms passed since the last
// sync (monotonic now_ms). Returns as nsq_diskqueue_sync (0 if nothing done).
int nsq_diskqueue_maybe_sync(nsq_diskqueue_t *self, int64_t now_ms, int64_t timeout_ms);

// For group commit off the owner's thread: if records were appended since
// the last call (and not synced since by nsq_diskqueue_sync), returns 1
// and hands over the write segment's descriptor in *fd (the caller
// fdatasyncs and closes it, on any thread; the queue opens the segment
// again on its next put; records before a roll were synced by the roll; a
// new segment's directory entry is synced here). Returns 0 if nothing was
// written since, -1 (errno) if the segment cannot be opened.
int nsq_diskqueue_take_sync_fd(nsq_diskqueue_t *self, int *fd);

// Records appended since the last nsq_diskqueue_take_sync_fd.
uint64_t nsq_diskqueue_untaken_puts(const nsq_diskqueue_t *self);

// True if writes or reads happened since the last sync.
bool nsq_diskqueue_dirty(const nsq_diskqueue_t *self);

// Drops every record (deletes the segments). Returns 0, or -1 with errno.
int nsq_diskqueue_empty(nsq_diskqueue_t *self);

// Damaged records (and missing segments) found and skipped since the
// queue was opened.
uint64_t nsq_diskqueue_corrupt_count(const nsq_diskqueue_t *self);

// Self-test; returns 0 on success.
int nsq_diskqueue_test(void);

#endif
