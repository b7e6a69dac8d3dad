/*  nsq_diskqueue - a FIFO of byte records on disk: append-only segment
    files, checksummed records, an atomically replaced metadata file
    SPDX-License-Identifier: MIT

    Files in dir, for a queue called name:
        name.diskqueue.000042.dat   segments, rolled at max_bytes_per_file
        name.diskqueue.meta.dat     "nsqdq 1\ndepth\nrfile,rpos\nwfile,wpos\n"
    A record is [u32 LE length][u32 LE crc32c(length bytes + data)][data].
    The checksum covers the length so that a zero-filled tail (a crash
    before the page cache reached the disk) never reads as valid records.

    Writes append with one pwritev per record (async mode: records from the
    pending buffer with one pwrite per run of them); a failed write (ENOSPC,
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

    Two modes, chosen at construction:
    - Synchronous (no nsq_diskio_t): every call does its own file work and
      returns when it is done, as described above. For tools and tests.
    - Asynchronous (nsq_diskqueue_open with config.diskio): the owner
      thread never calls open, fsync, fdatasync, rename or unlink on the
      queue's files; it only pwritev()s and pread()s (the page cache) and
      dup()s. Everything else is a request to the nsq_diskio actor, whose
      completions run on the owner's thread (its zloop reader):
      * construction returns at once; the recovery above (metadata against
        files, torn tails, gaps, sparse numbers) runs on the actor thread,
        unchanged, and hands its result back. Meanwhile puts wait in the
        pending buffer and gets answer NSQ_DISKQUEUE_WAIT. Reading the
        directory listing (nsq_diskqueue_listing_new) stays synchronous: it
        runs once at start-up, before the loop does.
      * a put that needs a write descriptor the queue does not hold (a new
        queue, one whose file was closed while idle, a roll whose next
        segment is not open yet) requests it and keeps the record in a
        bounded pending buffer (config.pending_max bytes), written out in
        order when the descriptor arrives. The next segment is created
        ahead, once the current one is half full, so a roll normally finds
        it open. A full segment's descriptor goes to the actor to be
        fdatasynced and closed.
      * a get that needs a read descriptor for a segment not open yet
        requests it and answers NSQ_DISKQUEUE_WAIT (also while the only
        records left wait in the pending buffer); config.wake runs when a
        retry may succeed. On the write segment the reader dup()s the
        write descriptor instead.
      * syncs hand a descriptor (dup'd unless the queue lets it go) and the
        metadata bytes, computed on the owner thread, to the actor;
        nsq_diskqueue_commit and nsq_diskqueue_sync_then report when the
        records put before the call are on disk.
      * finished segments are unlinked, and descriptors closed, by the
        actor; destroy and delete hand the remaining work over too, and
        the queue's memory is freed when its last completion has run.

    How a daemon maps its policy onto the async API:
    - --sync-every N: config.sync_every = N; after N written records the
      queue starts a data sync and a metadata replacement by itself (at
      most one data sync in flight; more records wait for the next).
    - --sync-timeout T: call nsq_diskqueue_maybe_sync(q, now, T) from a
      timer; a due queue hands its data and metadata to the actor. A
      queue put to or read since the previous timed sync keeps its
      descriptors (its next put or get needs no open); one idle since
      releases them (an idle queue holds none).
    - durable acknowledgements with group commit: put every message of a
      batch, then call nsq_diskqueue_commit(q, done, batch) once per queue
      written; acknowledge the batch when every queue's done reported 0,
      and fail it (503, E_PUB_FAILED) on any error. A queue keeps one data
      sync in flight and the records that arrive meanwhile join the next
      one, so commits group by themselves. Never acknowledge on put: a put
      that returned 0 may still wait in the pending buffer.
    - shutdown: destroy every queue (each hands its final data sync,
      metadata and closes to the actor), then nsq_diskio_destroy, which
      returns once every request is done and every completion has run (so
      everything is synced before exit). To learn each result first, call
      nsq_diskqueue_sync_then on each queue and nsq_diskio_wait.
    - errors the actor reports: a failed fdatasync or write fails every
      waiting commit or sync_then that covers the records concerned (never
      reported as success; each failure is reported once, to the earliest
      call covering it), is logged and counted (nsq_diskqueue_sync_failures).
      A failed open of the write segment keeps the pending records for a
      retry at the next put or sync, a failed write of them for a retry at
      the next sync or commit, and both fail the callers waiting for them;
      a full pending buffer makes put return -1 with that errno (EAGAIN if
      the descriptor is merely slow). A failed read open is returned by the
      next get (ENOENT: the segment is counted missing and skipped). A
      failed metadata replacement is logged and retried at the next sync. A
      failed recovery makes every later call fail with its errno
      (nsq_diskqueue_error): destroy the queue and open it again.

    API in call order: nsq_diskqueue_listing_new (optional),
    nsq_diskqueue_new, nsq_diskqueue_new_listed or nsq_diskqueue_open,
    nsq_diskqueue_listing_destroy, nsq_diskqueue_put / putv,
    nsq_diskqueue_get, nsq_diskqueue_position, nsq_diskqueue_keep_from,
    nsq_diskqueue_depth, nsq_diskqueue_sync, nsq_diskqueue_maybe_sync,
    nsq_diskqueue_commit, nsq_diskqueue_sync_then, nsq_diskqueue_write_meta
    (many queues, one syncfs), nsq_diskqueue_empty,
    nsq_diskqueue_corrupt_count,
    nsq_diskqueue_destroy (keeps the files) or nsq_diskqueue_delete
    (removes them).
*/
#ifndef NSQ_DISKQUEUE_H
#define NSQ_DISKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nsq_diskio.h"

// Bytes of a record header: length and checksum.
#define NSQ_DISKQUEUE_HEADER_SIZE 8

// nsq_diskqueue_get in async mode: no record can be read yet, although the
// queue is not known to be empty; config.wake runs when a retry may succeed.
#define NSQ_DISKQUEUE_WAIT 2

typedef struct _nsq_diskqueue_t nsq_diskqueue_t;
typedef struct _nsq_diskqueue_listing_t nsq_diskqueue_listing_t;

// Reports, on the owner's thread, the result of a commit or sync_then: 0,
// or the errno of a write or sync that failed.
typedef void(nsq_diskqueue_done_fn)(void *arg, int error);

// Async mode: a get that answered NSQ_DISKQUEUE_WAIT, or a put that
// failed with EAGAIN, may succeed now. Runs on the owner's thread, from a
// completion; it may call the queue (even destroy it).
typedef void(nsq_diskqueue_wake_fn)(nsq_diskqueue_t *queue, void *arg);

// What nsq_diskqueue_open needs. Zero what you do not use.
typedef struct {
    const char *dir;                   // directory of the files (must exist)
    const char *name;                  // queue name, the file name prefix
    int64_t max_bytes_per_file;        // segment size
    uint32_t max_msg_size;             // largest record
    int64_t sync_every;                // data sync after this many puts; 0 = caller only
    nsq_diskqueue_listing_t *listing;  // the directory's files at start, or NULL
    nsq_diskio_t *diskio;              // async mode's actor; NULL = synchronous mode
    nsq_diskqueue_wake_fn *wake;       // async: a waiting get or put may be retried
    void *wake_arg;                    // its argument
    size_t pending_max;                // async: pending buffer bound; 0 = 16 MiB
} nsq_diskqueue_config_t;

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

// Opens the queue described by config: as nsq_diskqueue_new_listed, in
// async mode when config->diskio is set. In async mode it returns at once
// (NULL only for want of memory) and recovers on the actor thread; the
// queue works meanwhile (module comment). Caller owns the result. An async
// queue must be destroyed before its actor.
nsq_diskqueue_t *nsq_diskqueue_open(const nsq_diskqueue_config_t *config);

// Syncs, closes and frees the queue; the files stay. Nulls *self_p. Async
// mode: hands the final sync and the closes to the actor and frees the
// queue when they have completed (no callback runs any more; waiting
// commits still report).
void nsq_diskqueue_destroy(nsq_diskqueue_t **self_p);

// Closes the queue and removes all its files. Nulls *self_p. Async mode:
// through the actor, as destroy; waiting commits report ECANCELED.
void nsq_diskqueue_delete(nsq_diskqueue_t **self_p);

// Appends one record of size bytes (0 allowed). Returns 0, or -1 with errno:
// EINVAL if size > max_msg_size, else the write's error (ENOSPC...); the
// queue is unchanged then. Async mode: 0 may mean the record waits in the
// pending buffer (learn that it is on disk with nsq_diskqueue_commit); -1
// with EAGAIN (or the failure that keeps the buffer from draining) if the
// buffer is full.
int nsq_diskqueue_put(nsq_diskqueue_t *self, const void *data, size_t size);

// Appends one record made of the iov_count pieces (no copy into one buffer).
int nsq_diskqueue_putv(nsq_diskqueue_t *self, const struct iovec *iov, int iov_count);

// Async mode: the puts that follow gather in the pending buffer instead of
// being written one by one, until nsq_diskqueue_flush writes them (one
// pwrite per segment; a buffer past 256 KiB is written on the way). The
// records count as put at once (depth), and become readable at the flush.
// Synchronous mode: nothing.
void nsq_diskqueue_combine(nsq_diskqueue_t *self);

// Ends combining and writes what gathered. Returns 0, or -1 with errno if
// the write failed. With unstored (a caller that reports the failure) and
// nothing pending before combining began, the records not written are then
// not stored at all, as if their puts had failed, and *unstored gets their
// count (0 otherwise). Else (unstored NULL, or older records pending) they
// stay pending for the next sync's retry, and puts report the failure
// until then (as nsq_diskqueue_has_room does).
int nsq_diskqueue_flush(nsq_diskqueue_t *self, uint64_t *unstored);

// Pops the oldest record: returns 1 with *data (borrowed, valid until the
// next call on self) and *size, 0 if the queue is empty, -1 on a read error
// (errno; the record stays and a later call retries). Async mode also
// NSQ_DISKQUEUE_WAIT: nothing readable yet (a descriptor is on its way,
// the queue is recovering, or the records left wait to be written); the
// wake callback runs when a retry may succeed.
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

// Records waiting to be read (exact unless damaged records were skipped;
// async: also those in the pending buffer, and while the queue recovers,
// only those put since it was opened).
int64_t nsq_diskqueue_depth(const nsq_diskqueue_t *self);

// True if nothing is waiting to be read (async: false while recovering).
bool nsq_diskqueue_is_empty(const nsq_diskqueue_t *self);

// fdatasyncs the written data, replaces the metadata file and closes the
// queue's files (the next put or get opens them again). Returns 0, or -1
// with errno. Async mode: hands that work to the actor and returns 0 (a
// failure is logged and counted; use nsq_diskqueue_sync_then to see it).
int nsq_diskqueue_sync(nsq_diskqueue_t *self);

// As nsq_diskqueue_sync; done(arg, error) reports when the records put
// before the call and the metadata are on disk (0), or the first failure
// (errno). done may be NULL. done may run before this returns: always in
// synchronous mode, in async mode when nothing is left to wait for. Returns 0, or -1 with errno if
// the sync could not start (then done does not run).
int nsq_diskqueue_sync_then(nsq_diskqueue_t *self, nsq_diskqueue_done_fn *done, void *arg);

// Group commit: done(arg, error) reports when every record put before the
// call is on disk (0), or the errno of a write or fdatasync that failed for
// one of them (each failure is reported once, to the earliest call that
// covers it; callbacks may run out of order after a failed write). Data
// only: the metadata follows the sync policy (an open finds records
// written after it). Keeps the descriptors open. done may run before this
// returns: always in synchronous mode, in async mode when nothing put
// before the call is still on its way to disk (or a retried write failed). Returns 0, or -1 with
// errno if the commit could not start (then done does not run).
int nsq_diskqueue_commit(nsq_diskqueue_t *self, nsq_diskqueue_done_fn *done, void *arg);

// For a caller that syncs a whole file system at once (syncfs: a shutdown
// of many queues): replaces the metadata file without any fsync and
// closes the queue's files, treating the written data as synced. The
// caller must have synced the data before, and syncs the new metadata
// after. Returns 0, or -1 with errno. Async mode: the replacement and the
// closes go to the actor (nsq_diskio_syncfs after them syncs them); it
// covers written records only, so wait (nsq_diskio_wait) until no put
// waits for a descriptor first.
int nsq_diskqueue_write_meta(nsq_diskqueue_t *self);

// Syncs if there is anything to sync and timeout_ms passed since the last
// sync (monotonic now_ms). Returns as nsq_diskqueue_sync (0 if nothing done).
// Async mode: the descriptors stay open if the queue was put to or read
// since the previous call that synced, and are released (also with
// nothing to sync) once it was not.
int nsq_diskqueue_maybe_sync(nsq_diskqueue_t *self, int64_t now_ms, int64_t timeout_ms);

// True if writes or reads happened since the last sync.
bool nsq_diskqueue_dirty(const nsq_diskqueue_t *self);

// Drops every record (deletes the segments). Returns 0, or -1 with errno.
int nsq_diskqueue_empty(nsq_diskqueue_t *self);

// Damaged records (and missing segments) found and skipped since the
// queue was opened.
uint64_t nsq_diskqueue_corrupt_count(const nsq_diskqueue_t *self);

// Async mode: 0, or the errno that made the recovery at open fail (every
// call fails with it then).
int nsq_diskqueue_error(const nsq_diskqueue_t *self);

// Async mode: true once the recovery at open has completed.
bool nsq_diskqueue_ready(const nsq_diskqueue_t *self);

// True if records more records of bytes bytes in all would be taken by
// puts now: always in sync mode; in async mode if the pending buffer has
// room for them and the last write did not fail (else false with errno
// that write's error; a sync retries it). A caller that must store all
// or none checks first.
bool nsq_diskqueue_has_room(const nsq_diskqueue_t *self, size_t records, size_t bytes);

// Data syncs, writes of pending records and metadata replacements that
// failed since the queue was opened.
uint64_t nsq_diskqueue_sync_failures(const nsq_diskqueue_t *self);

// Async mode: records put and not written to a file yet (the pending
// buffer); 0 in synchronous mode. Those left when the queue is destroyed
// are lost.
uint64_t nsq_diskqueue_unwritten(const nsq_diskqueue_t *self);

// Self-test; returns 0 on success.
int nsq_diskqueue_test(void);

#endif
