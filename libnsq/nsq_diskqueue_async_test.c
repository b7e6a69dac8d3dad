/*  nsq_diskqueue_async_test - self-test cases only the async mode has
    SPDX-License-Identifier: MIT

    The actor's hold (nsq_diskio_hold) lets a case look at the queue while
    no file operation can complete: records wait in the pending buffer in
    order, a roll finds its next segment ready without the actor, a get
    waits for its descriptor and is woken, a commit does not report before
    its fdatasync ran. Failures are real (ENOSPC from /dev/full behind the
    segment's name) or injected (nsq_diskio_fail_next), and must reach the
    callers as failures. Queues ended while work is pending still finish
    it, and two actors run side by side in two owner threads.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsq_diskqueue_internal.h"

// What a queue's callbacks saw.
typedef struct {
    int wakes;                 // wake callbacks
    nsq_diskqueue_t **ending;  // destroy this queue from the wake, if set
} seen_t;

static void s_wake(nsq_diskqueue_t *queue, void *arg)
{
    (void) queue;
    seen_t *seen = arg;
    seen->wakes++;
    if (seen->ending)
        nsq_diskqueue_destroy(seen->ending);
}

static void s_done(void *arg, int error)
{
    *(int *) arg = error;
}

// An async queue whose callbacks record into seen; not settled.
static nsq_diskqueue_t *s_open(const dq_test_t *t, const char *name, int64_t max_bytes,
                               size_t pending_max, seen_t *seen)
{
    nsq_diskqueue_config_t config = {
        .dir = t->dir,
        .name = name,
        .max_bytes_per_file = max_bytes,
        .max_msg_size = 64,
        .diskio = t->diskio,
        .wake = s_wake,
        .wake_arg = seen,
        .pending_max = pending_max,
    };
    return nsq_diskqueue_open(&config);
}

// Puts wait in the pending buffer, in order, while the queue recovers and
// its descriptors are on their way (across many rolls); a commit covering
// them reports only after they are written and synced.
static int s_test_pending_in_order(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskio_hold(t->diskio, true);
    nsq_diskqueue_t *queue = s_open(t, "pending", 64, 0, &seen);
    DQ_TEST_CHECK(queue && !nsq_diskqueue_ready(queue) && !nsq_diskqueue_is_empty(queue));
    const void *data;
    size_t size;
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == NSQ_DISKQUEUE_WAIT);
    DQ_TEST_CHECK(dq_test_fill(queue, 0, 100) == 0 && nsq_diskqueue_depth(queue) == 100);
    int committed = -1;
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_done, &committed) == 0);
    DQ_TEST_CHECK(nsq_diskio_dispatch(t->diskio) == 0 && committed == -1 && seen.wakes == 0);
    nsq_diskqueue_listing_t *listing = dq_listing_new(t->dir, "pending");
    DQ_TEST_CHECK(listing && dq_listing_count(listing) == 0);  // nothing written yet
    nsq_diskqueue_listing_destroy(&listing);
    nsq_diskio_hold(t->diskio, false);
    dq_test_settle(t);
    DQ_TEST_CHECK(committed == 0 && seen.wakes == 1 && queue->async->pending_count == 0);
    DQ_TEST_CHECK(dq_test_segments(t, "pending", queue) == 25);  // 4 records of 16 bytes each
    for (int i = 0; i < 100; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(dq_test_get(t, queue, &data, &size) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// The pending buffer is bounded: a put that does not fit fails with
// EAGAIN, and the wake callback says when to try again.
static int s_test_pending_bound(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskio_hold(t->diskio, true);
    nsq_diskqueue_t *queue = s_open(t, "bound", 1 << 20, 256, &seen);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 16) == 0);  // 16 records of 16 bytes
    DQ_TEST_CHECK(dq_test_fill(queue, 16, 1) == -1 && errno == EAGAIN);
    DQ_TEST_CHECK(nsq_diskqueue_depth(queue) == 16);
    nsq_diskio_hold(t->diskio, false);
    dq_test_settle(t);
    DQ_TEST_CHECK(seen.wakes == 1 && dq_test_fill(queue, 16, 1) == 0);
    for (int i = 0; i < 17; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// Once a segment is half full its successor is created ahead, so the roll
// writes on without the actor (held) and nothing waits.
static int s_test_preopened_roll(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "ahead", 1024, 0, &seen);  // 64 records per segment
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 40) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(queue->async->next_fd >= 0 && queue->write_file == 0);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "ahead", 1) == 0);
    nsq_diskio_hold(t->diskio, true);
    DQ_TEST_CHECK(dq_test_fill(queue, 40, 34) == 0);
    DQ_TEST_CHECK(queue->write_file == 1 && queue->write_pos == 10 * 16);
    DQ_TEST_CHECK(queue->async->pending_count == 0 && queue->write_fd >= 0);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "ahead", 1) == 10 * 16);  // written while held
    nsq_diskio_hold(t->diskio, false);
    for (int i = 0; i < 74; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// Combined puts: nothing reaches the file until the flush, which writes
// them in order across a roll and makes them readable; a combined buffer
// past 256 KiB is written on the way; without combining a put writes at
// once again.
static int s_test_combined(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "combined", 1024, 0, &seen);  // 64 records per segment
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 1) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(queue->write_fd >= 0 && dq_test_path_size(t->dir, "combined", 0) == 16);
    nsq_diskqueue_combine(queue);
    DQ_TEST_CHECK(dq_test_fill(queue, 1, 100) == 0 && nsq_diskqueue_depth(queue) == 101);
    DQ_TEST_CHECK(queue->async->pending_count == 100);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "combined", 0) == 16);  // nothing written yet
    DQ_TEST_CHECK(dq_test_expect(t, queue, 0) == 0);
    const void *data;
    size_t size;
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == NSQ_DISKQUEUE_WAIT);
    DQ_TEST_CHECK(nsq_diskqueue_flush(queue, NULL) == 0);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "combined", 0) == 64 * 16);  // one segment filled
    dq_test_settle(t);  // the next segment's descriptor comes, the rest is written
    DQ_TEST_CHECK(queue->async->pending_count == 0);
    for (int i = 1; i < 101; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_flush(queue, NULL) == 0);  // nothing combined: nothing to do
    DQ_TEST_CHECK(dq_test_fill(queue, 101, 1) == 0 && queue->async->pending_count == 0);
    dq_test_delete(t, &queue);
    // A long batch is written in pieces of at most 256 KiB.
    queue = s_open(t, "long", 1 << 24, 1 << 24, &seen);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 1) == 0);
    dq_test_settle(t);
    nsq_diskqueue_combine(queue);
    DQ_TEST_CHECK(dq_test_fill(queue, 1, 20000) == 0);  // 330,000 bytes
    DQ_TEST_CHECK(queue->async->pending_length <= 256 * 1024);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "long", 0) >= 330000 - 256 * 1024);
    DQ_TEST_CHECK(nsq_diskqueue_flush(queue, NULL) == 0 && queue->async->pending_count == 0);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "long", 0) == 10000 * 16 + 10001 * 17);
    for (int i = 0; i < 20001; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// A get that needs a segment not open yet waits and is woken; a wake may
// destroy the queue.
static int s_test_read_not_open(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "reader", 64, 0, &seen);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 10) == 0);  // segments 0, 1, 2
    dq_test_close(t, &queue);
    queue = s_open(t, "reader", 64, 0, &seen);
    dq_test_settle(t);
    seen.wakes = 0;
    nsq_diskio_hold(t->diskio, true);
    uint64_t opens = nsq_diskio_performed(t->diskio, NSQ_DISKIO_OPEN);
    const void *data;
    size_t size;
    for (int i = 0; i < 3; i++)  // asked again and again, requested once
        DQ_TEST_CHECK(queue && nsq_diskqueue_get(queue, &data, &size) == NSQ_DISKQUEUE_WAIT);
    DQ_TEST_CHECK(nsq_diskio_dispatch(t->diskio) == 0 && seen.wakes == 0);
    nsq_diskio_hold(t->diskio, false);
    dq_test_settle(t);
    DQ_TEST_CHECK(nsq_diskio_performed(t->diskio, NSQ_DISKIO_OPEN) == opens + 1);
    DQ_TEST_CHECK(seen.wakes == 1 && nsq_diskqueue_get(queue, &data, &size) == 1);
    DQ_TEST_CHECK(size == 8 && memcmp(data, "rec-0000", 8) == 0);
    for (int i = 1; i < 4; i++)
        DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == 1);
    DQ_TEST_CHECK(nsq_diskqueue_get(queue, &data, &size) == NSQ_DISKQUEUE_WAIT);  // segment 1
    seen.ending = &queue;
    dq_test_settle(t);
    DQ_TEST_CHECK(seen.wakes == 2 && !queue);
    queue = dq_test_open(&(dq_test_t){t->dir, NULL}, "reader", 64, 64, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 6);
    nsq_diskqueue_delete(&queue);
    return 0;
}

// What a commit's callback saw of the disk when it ran.
typedef struct {
    nsq_diskio_t *diskio;  // the actor
    const char *dir;       // the queue's directory
    int error;             // the commit's result, -1 before
    uint64_t datasyncs;    // the actor's fdatasyncs by then
    uint64_t replaces;     // its metadata replacements by then
    int64_t size;          // segment 0's size by then
} synced_t;

static void s_synced(void *arg, int error)
{
    synced_t *synced = arg;
    synced->error = error;
    synced->datasyncs = nsq_diskio_performed(synced->diskio, NSQ_DISKIO_DATASYNC);
    synced->replaces = nsq_diskio_performed(synced->diskio, NSQ_DISKIO_REPLACE);
    synced->size = dq_test_path_size(synced->dir, "durable", 0);
}

// A commit reports after the fdatasync covering its records ran (never
// while the actor is held); sync_then also after the metadata.
static int s_test_commit_after_sync(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "durable", 1 << 20, 0, &seen);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 5) == 0);
    dq_test_settle(t);
    nsq_diskio_hold(t->diskio, true);
    DQ_TEST_CHECK(dq_test_fill(queue, 5, 5) == 0);  // written at once: the descriptor is open
    uint64_t datasyncs = nsq_diskio_performed(t->diskio, NSQ_DISKIO_DATASYNC);
    uint64_t replaces = nsq_diskio_performed(t->diskio, NSQ_DISKIO_REPLACE);
    synced_t committed = {t->diskio, t->dir, -1, 0, 0, 0};
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_synced, &committed) == 0);
    DQ_TEST_CHECK(nsq_diskio_wait(t->diskio, 20) == -1 && committed.error == -1);
    nsq_diskio_hold(t->diskio, false);
    dq_test_settle(t);
    DQ_TEST_CHECK(committed.error == 0 && committed.datasyncs == datasyncs + 1);
    DQ_TEST_CHECK(committed.size == 10 * 16 && committed.replaces == replaces);
    synced_t synced = {t->diskio, t->dir, -1, 0, 0, 0};
    DQ_TEST_CHECK(dq_test_fill(queue, 10, 1) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_sync_then(queue, s_synced, &synced) == 0 && synced.error == -1);
    dq_test_settle(t);
    DQ_TEST_CHECK(synced.error == 0 && synced.datasyncs == datasyncs + 2);
    DQ_TEST_CHECK(synced.replaces == replaces + 1 && synced.size == 11 * 16);
    // Nothing put since: a commit has nothing to wait for.
    int again = -1;
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_done, &again) == 0 && again == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// A write that fails for want of space (the segment's name leads to
// /dev/full) fails the commit covering it; the records stay for a retry.
static int s_test_enospc(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "nospace", 1 << 20, 0, &seen);
    dq_test_settle(t);
    char path[DQ_PATH_MAX];
    dq_test_segment_path(t->dir, "nospace", 0, path);
    DQ_TEST_CHECK(queue && symlink("/dev/full", path) == 0);
    DQ_TEST_CHECK(dq_test_fill(queue, 0, 3) == 0);  // pending: the descriptor is on its way
    int first = -1, second = -1;
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_done, &first) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(first == ENOSPC && nsq_diskqueue_depth(queue) == 3);
    DQ_TEST_CHECK(nsq_diskqueue_sync_failures(queue) >= 1);
    DQ_TEST_CHECK(dq_test_fill(queue, 3, 1) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_done, &second) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(second == ENOSPC && nsq_diskqueue_depth(queue) == 4);
    dq_test_delete(t, &queue);  // removes the link too
    return 0;
}

// A combined write that fails (a file size limit, EFBIG): a caller that
// reports the failure gets its records back unstored, as failed puts,
// and the queue writes on; without that, they stay pending for a retry.
static int s_test_combined_fails(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "fullbatch", 1 << 20, 0, &seen);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 1) == 0);
    dq_test_settle(t);
    struct rlimit saved, small;
    DQ_TEST_CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    small = (struct rlimit){64, saved.rlim_max};
    void (*handler)(int) = signal(SIGXFSZ, SIG_IGN);
    DQ_TEST_CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    nsq_diskqueue_combine(queue);
    uint64_t unstored = 0;
    int rc = dq_test_fill(queue, 1, 10);
    rc = rc || nsq_diskqueue_flush(queue, &unstored) != -1 || errno != EFBIG;
    setrlimit(RLIMIT_FSIZE, &saved);
    DQ_TEST_CHECK(rc == 0 && unstored == 10 && nsq_diskqueue_depth(queue) == 1);
    DQ_TEST_CHECK(queue->async->pending_count == 0 && queue->async->write_error == 0);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "fullbatch", 0) == 16);  // cut back
    DQ_TEST_CHECK(dq_test_fill(queue, 11, 1) == 0 && nsq_diskqueue_depth(queue) == 2);
    // Without a count asked for, the records wait for the next sync.
    DQ_TEST_CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    nsq_diskqueue_combine(queue);
    rc = dq_test_fill(queue, 20, 3);
    rc = rc || nsq_diskqueue_flush(queue, NULL) != -1;
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, handler);
    DQ_TEST_CHECK(rc == 0 && queue->async->pending_count == 3 && nsq_diskqueue_depth(queue) == 5);
    DQ_TEST_CHECK(dq_test_sync(t, queue) == 0 && queue->async->pending_count == 0);
    int expected[] = {0, 11, 20, 21, 22};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, expected[i]) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// An fdatasync that fails (injected) reaches the commit covering its
// records, once; a failed roll sync and a failed metadata replacement too.
static int s_test_failed_datasync(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "eio", 64, 0, &seen);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 2) == 0);
    dq_test_settle(t);
    int results[4] = {-1, -1, -1, -1};
    nsq_diskio_fail_next(t->diskio, NSQ_DISKIO_DATASYNC, EIO);
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_done, &results[0]) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(results[0] == EIO && nsq_diskqueue_sync_failures(queue) == 1);
    DQ_TEST_CHECK(dq_test_fill(queue, 2, 1) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_done, &results[1]) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(results[1] == 0);  // reported once
    nsq_diskio_fail_next(t->diskio, NSQ_DISKIO_DATASYNC, EIO);
    DQ_TEST_CHECK(dq_test_fill(queue, 3, 2) == 0);  // the roll hands segment 0 over
    DQ_TEST_CHECK(nsq_diskqueue_commit(queue, s_done, &results[2]) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(results[2] == EIO && nsq_diskqueue_sync_failures(queue) == 2);
    DQ_TEST_CHECK(dq_test_expect(t, queue, 0) == 0);  // the read position changes
    nsq_diskio_fail_next(t->diskio, NSQ_DISKIO_REPLACE, EIO);
    DQ_TEST_CHECK(nsq_diskqueue_sync_then(queue, s_done, &results[3]) == 0);
    dq_test_settle(t);
    DQ_TEST_CHECK(results[3] == EIO && dq_test_sync(t, queue) == 0);
    for (int i = 1; i < 5; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// Queues destroyed or deleted while they recover and hold pending records
// finish their work: what was put is on disk, or gone with the queue.
static int s_test_end_while_pending(const dq_test_t *t)
{
    seen_t seen = {0};
    nsq_diskio_hold(t->diskio, true);
    nsq_diskqueue_t *kept = s_open(t, "kept", 64, 0, &seen);
    nsq_diskqueue_t *gone = s_open(t, "gone", 64, 0, &seen);
    DQ_TEST_CHECK(kept && gone && dq_test_fill(kept, 0, 10) == 0 && dq_test_fill(gone, 0, 3) == 0);
    int cancelled = -1;
    DQ_TEST_CHECK(nsq_diskqueue_commit(gone, s_done, &cancelled) == 0);
    nsq_diskqueue_destroy(&kept);
    nsq_diskqueue_delete(&gone);
    nsq_diskio_hold(t->diskio, false);
    dq_test_settle(t);
    DQ_TEST_CHECK(cancelled == ECANCELED && seen.wakes == 0);
    DQ_TEST_CHECK(dq_test_segments(t, "gone", NULL) == 0);
    dq_test_t synchronous = {t->dir, NULL};
    kept = dq_test_open(&synchronous, "kept", 64, 64, NULL);
    DQ_TEST_CHECK(kept && nsq_diskqueue_depth(kept) == 10);
    for (int i = 0; i < 10; i++)
        DQ_TEST_CHECK(dq_test_expect(&synchronous, kept, i) == 0);
    nsq_diskqueue_delete(&kept);
    return 0;
}

// One owner thread with its own actor: rolls, reads and commits.
static void *s_test_owner(void *arg)
{
    dq_test_t *t = arg;
    seen_t seen = {0};
    nsq_diskqueue_t *queue = s_open(t, "owner", 4096, 0, &seen);
    int next = 0;  // the next record to read
    for (int round = 0; queue && round < 20; round++) {
        int committed = -1;
        if (dq_test_fill(queue, round * 100, 100) != 0
            || nsq_diskqueue_commit(queue, s_done, &committed) != 0)
            return "put";
        for (int i = 0; i < 50; i++)
            if (dq_test_expect(t, queue, next++) != 0)
                return "get";
        dq_test_settle(t);
        if (committed != 0)
            return "commit";
    }
    while (queue && next < 2000)
        if (dq_test_expect(t, queue, next++) != 0)
            return "drain";
    dq_test_delete(t, &queue);
    return NULL;
}

// Two actors in one process, each serving its own owner thread.
static int s_test_two_actors(const char *dir)
{
    char dirs[2][DQ_PATH_MAX];
    dq_test_t tests[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/owner%d", dir, i);
        DQ_TEST_CHECK(mkdir(dirs[i], 0755) == 0);
        tests[i] = (dq_test_t){dirs[i], nsq_diskio_new()};
        DQ_TEST_CHECK(tests[i].diskio);
    }
    for (int i = 0; i < 2; i++)
        DQ_TEST_CHECK(pthread_create(&threads[i], NULL, s_test_owner, &tests[i]) == 0);
    void *failed[2];
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], &failed[i]);
    for (int i = 0; i < 2; i++) {
        nsq_diskio_destroy(&tests[i].diskio);
        if (failed[i])
            fprintf(stderr, "nsq_diskqueue_test: owner %d failed at %s\n", i,
                    (const char *) failed[i]);
        DQ_TEST_CHECK(!failed[i] && dq_test_dir_empty(dirs[i]) && rmdir(dirs[i]) == 0);
    }
    return 0;
}

int nsq_diskqueue_async_cases(void)
{
    char dir[] = "/tmp/nsq-diskqueue-async-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    dq_test_t test = {dir, nsq_diskio_new()};
    const dq_test_t *t = &test;
    int rc = !test.diskio || s_test_pending_in_order(t) || s_test_pending_bound(t)
                     || s_test_preopened_roll(t) || s_test_combined(t) || s_test_read_not_open(t)
                     || s_test_commit_after_sync(t) || s_test_enospc(t) || s_test_combined_fails(t)
                     || s_test_failed_datasync(t) || s_test_end_while_pending(t)
                     || s_test_two_actors(dir)
                 ? -1
                 : 0;
    if (test.diskio)
        nsq_diskio_hold(test.diskio, false);
    nsq_diskio_destroy(&test.diskio);
    if (rc == 0 && !dq_test_dir_empty(dir))
        rc = -1;
    if (rc == 0)
        rmdir(dir);
    else
        fprintf(stderr, "nsq_diskqueue_test: async cases failed, files kept in %s\n", dir);
    return rc;
}
