/*  nsq_diskqueue_internal - the disk queue's state, shared by the files
    that make up the class (not installed, not for other classes)
    SPDX-License-Identifier: MIT

    The class is split by job; each file starts with its own design
    comment:
        nsq_diskqueue.c          the queue: construction, recovery hand-off
                                 in async mode, destroy/delete, empty
        nsq_diskqueue_listing.c  file names, directory listings, the list of
                                 segments and position tokens
        nsq_diskqueue_record.c   the record format (header, checksum)
        nsq_diskqueue_meta.c     the metadata file: text, reading, replacing
        nsq_diskqueue_recover.c  reconciling metadata and files at open
        nsq_diskqueue_reader.c   get, the read buffer, finished segments
        nsq_diskqueue_writer.c   put, rolls, the pending buffer
        nsq_diskqueue_sync.c     syncs, commits and their completions
        nsq_diskqueue_files.c    file operations in either mode (direct
                                 system calls, or requests to nsq_diskio)
    Internal functions carry the dq_ prefix.

    Positions: (read_file, read_pos) is the next record to read,
    (write_file, write_pos) where the next record goes; both always sit on
    record boundaries, and read <= write. In async mode records may also
    wait in the pending buffer: they have no position until written.
*/
#ifndef NSQ_DISKQUEUE_INTERNAL_H
#define NSQ_DISKQUEUE_INTERNAL_H

#include <czmq.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsq_diskio.h"
#include "nsq_diskqueue.h"

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
// Default bound of the pending buffer (async mode).
// 16 MiB: about a tenth of a second of 100-byte records at a million a
// second, which a disk I/O thread that a loaded machine schedules late
// must be able to fall behind by without refusing publishes.
#define DQ_PENDING_MAX (16 * 1024 * 1024)

// Async mode: where the queue is in its life.
typedef enum {
    DQ_RECOVERING,  // the actor reconciles the files; puts wait in the pending buffer
    DQ_READY,       // in service
    DQ_FAILED,      // recovery failed: every call fails with open_error
} dq_state_t;

// Async mode: what the owner asked for last.
typedef enum {
    DQ_LIVE,      // in use
    DQ_CLOSING,   // destroyed: sync, close, then free when nothing is outstanding
    DQ_DELETING,  // deleted: close, remove the files, then free
} dq_ending_t;

// Async mode: records handed to one data sync, in submission order.
typedef struct _dq_range_t dq_range_t;
struct _dq_range_t {
    dq_range_t *next;  // the next one submitted
    uint64_t to;       // the sync covers the records put before this count
    bool dup;          // it syncs a duplicate of the open write descriptor
    bool done;         // its completion arrived
    int error;         // then: 0 or its errno
};

// Async mode: a caller waiting for "everything put before is on disk".
typedef struct _dq_waiter_t dq_waiter_t;
struct _dq_waiter_t {
    dq_waiter_t *next;            // the next one registered
    uint64_t from;                // records before this were reported to earlier waiters
    uint64_t target;              // records put before the call
    bool wants_meta;              // it also waits for a metadata replacement covering target
    uint64_t meta_seq;            // that replacement, 0 until submitted
    int meta_error;               // that replacement's result
    nsq_diskqueue_done_fn *done;  // the caller's callback
    void *arg;                    // its argument
};

// Async mode state; NULL in synchronous mode.
typedef struct {
    nsq_diskio_t *diskio;         // the actor doing our blocking calls
    nsq_diskqueue_wake_fn *wake;  // a call that answered "wait" may be retried
    void *wake_arg;               // its argument
    dq_state_t state;             // recovering, ready or failed
    int open_error;               // failed: the recovery's errno
    dq_ending_t ending;           // live, closing or deleting
    bool ending_started;          // the final requests were handed over
    int busy;                     // nesting of calls that may run callbacks (no free inside)
    size_t outstanding;           // requests whose completion has not run
    uint8_t *pending;             // formed records waiting for a write descriptor, or combined
    size_t pending_head;          // offset of the oldest pending record
    size_t pending_length;        // bytes from pending_head
    size_t pending_capacity;      // bytes allocated
    size_t pending_max;           // bound of pending_length
    uint64_t pending_count;       // records in the pending buffer
    bool combining;               // puts gather in the pending buffer until the owner's flush
    bool combine_clean;           // nothing was pending when combining began
    int write_error;              // last failure to open or write for the pending records
    int64_t write_opening;        // segment whose write descriptor is on its way, or -1
    int64_t next_opening;         // segment being created ahead of the roll, or -1
    int next_fd;                  // segment write_file + 1, created ahead, or -1
    int64_t read_opening;         // segment whose read descriptor is on its way, or -1
    int read_error;               // errno of the last read open (reported by the next get)
    int64_t read_error_file;      // its segment
    bool release_wanted;          // a sync asked to close the files while records were pending
    bool empty_wanted;            // emptied while recovering: empty the recovered files too
    bool reader_waiting;          // a get answered NSQ_DISKQUEUE_WAIT
    bool writer_waiting;          // a put answered EAGAIN
    uint64_t submitted;           // records handed to data syncs
    uint64_t durable;             // records whose data syncs completed
    uint64_t failed_to;           // records before this include one whose sync failed
    int failed_error;             // that failure's errno
    int sync_running;             // data syncs of a dup'd write descriptor in flight
    dq_range_t *ranges;           // data syncs in flight, oldest first
    dq_range_t **ranges_tail;     // where the next one goes
    dq_waiter_t *waiters;         // waiting callers, oldest first
    dq_waiter_t **waiters_tail;   // where the next one goes
    uint64_t last_target;         // target of the newest waiter
    size_t meta_unsubmitted;      // waiters that want a metadata replacement not yet submitted
    bool meta_running;            // a metadata replacement is in flight
    bool meta_again;              // positions changed since it was computed
    uint64_t meta_submitted;      // replacements submitted
    uint64_t meta_completed;      // replacements completed
    uint64_t sync_failures;       // data syncs and metadata replacements that failed
    uint64_t seen_puts;           // put_count at the last timed sync (maybe_sync)
    int64_t seen_read_file;       // read_file then
    int64_t seen_read_pos;        // read_pos then
} dq_async_t;

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
    int64_t depth;               // records between read and write positions (and pending)
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
    int64_t unsynced_writes;     // records written since the last data sync (or hand-over)
    uint64_t put_count;          // puts since open (async: pending ones too)
    bool meta_dirty;             // positions changed since the last metadata write
    int64_t last_sync_ms;        // monotonic ms of the last sync
    uint64_t corrupt_count;      // damaged records and missing segments skipped
    dq_async_t *async;           // async mode state, NULL in synchronous mode
};

// How a listing answers for one queue (dq_listing_take).
typedef enum {
    DQ_LISTED,         // these are its segments
    DQ_LISTED_UNLESS,  // none listed: right unless its metadata exists
    DQ_UNLISTED,       // the listing cannot tell: list the directory
} dq_listed_verdict_t;

// ---- nsq_diskqueue_listing.c ----
int64_t dq_now_ms(void);
void dq_segment_path(const nsq_diskqueue_t *self, int64_t number, char *path);
void dq_meta_path(const nsq_diskqueue_t *self, char *path, const char *suffix);
nsq_diskqueue_listing_t *dq_listing_new(const char *dir, const char *only);
size_t dq_listing_count(const nsq_diskqueue_listing_t *self);
int dq_listing_take(nsq_diskqueue_listing_t *listing, const char *name, int64_t **numbers,
                    size_t *count, dq_listed_verdict_t *verdict);
size_t dq_segment_index(const nsq_diskqueue_t *self, int64_t number);
int dq_segment_append(nsq_diskqueue_t *self, int64_t number);
uint64_t dq_position(const nsq_diskqueue_t *self, int64_t file, int64_t pos);
bool dq_position_split(const nsq_diskqueue_t *self, uint64_t position, int64_t *file, int64_t *pos);

// ---- nsq_diskqueue_record.c ----
uint32_t dq_get_u32(const uint8_t *in);
void dq_record_header(uint8_t *header, const struct iovec *iov, int iov_count, size_t size);
bool dq_record_intact(const uint8_t *header, const uint8_t *payload);

// ---- nsq_diskqueue_meta.c ----
int dq_meta_read(nsq_diskqueue_t *self);
int dq_meta_replace(nsq_diskqueue_t *self, bool durable);
uint64_t dq_meta_submit(nsq_diskqueue_t *self, bool durable);
void dq_meta_replaced(nsq_diskqueue_t *self, int error);

// ---- nsq_diskqueue_recover.c ----
int dq_recover(nsq_diskqueue_t *self, const int64_t *numbers, size_t count,
               dq_listed_verdict_t verdict);

// ---- nsq_diskqueue_reader.c ----
void dq_report(nsq_diskqueue_t *self, int64_t file, int64_t pos, const char *what);
int dq_ensure_buffer(nsq_diskqueue_t *self);
int dq_fetch(nsq_diskqueue_t *self, int64_t offset, size_t size, int64_t limit,
             const uint8_t **data);
void dq_close_reader(nsq_diskqueue_t *self);
void dq_delete_done(nsq_diskqueue_t *self);
void dq_reader_opened(nsq_diskqueue_t *self, int64_t number, int fd, int error);
void dq_reader_wake(nsq_diskqueue_t *self);

// ---- nsq_diskqueue_writer.c ----
int dq_open_writer(nsq_diskqueue_t *self);
int dq_roll(nsq_diskqueue_t *self);
int dq_flush_pending(nsq_diskqueue_t *self);
void dq_drop_pending(nsq_diskqueue_t *self, bool lost);
void dq_writer_opened(nsq_diskqueue_t *self, int64_t number, int fd, int error);

// ---- nsq_diskqueue_sync.c ----
int dq_sync(nsq_diskqueue_t *self, bool release);
void dq_release(nsq_diskqueue_t *self);
int dq_submit_data_sync(nsq_diskqueue_t *self, bool close_fd);
void dq_data_synced(nsq_diskqueue_t *self, dq_range_t *range, int error);
void dq_resolve(nsq_diskqueue_t *self);
void dq_fail_waiters(nsq_diskqueue_t *self, uint64_t from, int error);
void dq_commit_kick(nsq_diskqueue_t *self);

// ---- nsq_diskqueue_files.c ----
int dq_open_segment(const nsq_diskqueue_t *self, int64_t number, int flags);
int64_t dq_file_size(int fd);
int dq_request_open(nsq_diskqueue_t *self, bool reader, int64_t number, int flags);
void dq_close(nsq_diskqueue_t *self, int fd);
void dq_unlink_segment(nsq_diskqueue_t *self, int64_t number);
void dq_unlink_meta(nsq_diskqueue_t *self);
int dq_request_data_sync(nsq_diskqueue_t *self, int fd, dq_range_t *range);
int dq_request_meta(nsq_diskqueue_t *self, const char *text, size_t length, bool durable);
int dq_request_recover(nsq_diskqueue_t *self, int (*fn)(void *job), void *job);

// ---- nsq_diskqueue.c ----
void dq_recovered(nsq_diskqueue_t *self, void *job, int error);
void dq_enter(nsq_diskqueue_t *self);
bool dq_leave(nsq_diskqueue_t *self);

// ---- self-test helpers (nsq_diskqueue_test.c) ----
// A test runs in one mode: diskio NULL for synchronous, else async.
typedef struct {
    const char *dir;       // the test's directory
    nsq_diskio_t *diskio;  // async mode's actor, or NULL
} dq_test_t;

#define DQ_TEST_CHECK(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "nsq_diskqueue_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

nsq_diskqueue_t *dq_test_open(const dq_test_t *test, const char *name, int64_t max_bytes,
                              uint32_t max_msg, nsq_diskqueue_listing_t *listing);
void dq_test_settle(const dq_test_t *test);
void dq_test_close(const dq_test_t *test, nsq_diskqueue_t **queue_p);
void dq_test_delete(const dq_test_t *test, nsq_diskqueue_t **queue_p);
int dq_test_fill(nsq_diskqueue_t *queue, int first, int count);
int dq_test_get(const dq_test_t *test, nsq_diskqueue_t *queue, const void **data, size_t *size);
int dq_test_expect(const dq_test_t *test, nsq_diskqueue_t *queue, int expected);
int dq_test_sync(const dq_test_t *test, nsq_diskqueue_t *queue);
int dq_test_segments(const dq_test_t *test, const char *name, const nsq_diskqueue_t *queue);
int64_t dq_test_path_size(const char *dir, const char *name, int64_t number);
void dq_test_segment_path(const char *dir, const char *name, int64_t number, char *path);
bool dq_test_dir_empty(const char *dir);
int nsq_diskqueue_async_cases(void);

#endif
