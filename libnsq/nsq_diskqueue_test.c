/*  nsq_diskqueue_test - the disk queue's self-test: every case in both
    modes (synchronous, then async through an nsq_diskio actor), and the
    helpers the async-only cases (nsq_diskqueue_async_test.c) share
    SPDX-License-Identifier: MIT

    The helpers hide the one difference a case sees between the modes: in
    async mode work finishes later, so they let the actor finish
    (dq_test_settle) before looking at files, and a get that answers
    NSQ_DISKQUEUE_WAIT is retried once the actor is done. The async
    queue's next segment, created ahead of the roll and empty, is not
    counted among its segments.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsq_diskqueue_internal.h"

// ---- helpers ---------------------------------------------------------------------

nsq_diskqueue_t *dq_test_open(const dq_test_t *test, const char *name, int64_t max_bytes,
                              uint32_t max_msg, nsq_diskqueue_listing_t *listing)
{
    nsq_diskqueue_config_t config = {
        .dir = test->dir,
        .name = name,
        .max_bytes_per_file = max_bytes,
        .max_msg_size = max_msg,
        .listing = listing,
        .diskio = test->diskio,
    };
    nsq_diskqueue_t *queue = nsq_diskqueue_open(&config);
    dq_test_settle(test);
    return queue;
}

void dq_test_settle(const dq_test_t *test)
{
    if (test->diskio && nsq_diskio_wait(test->diskio, 30000) != 0)
        fprintf(stderr, "nsq_diskqueue_test: the actor did not finish in 30 s\n");
}

void dq_test_close(const dq_test_t *test, nsq_diskqueue_t **queue_p)
{
    nsq_diskqueue_destroy(queue_p);
    dq_test_settle(test);
}

void dq_test_delete(const dq_test_t *test, nsq_diskqueue_t **queue_p)
{
    nsq_diskqueue_delete(queue_p);
    dq_test_settle(test);
}

// Appends records "rec-<first>" .. "rec-<first+count-1>".
int dq_test_fill(nsq_diskqueue_t *queue, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        char text[32];
        int length = snprintf(text, sizeof text, "rec-%04d", i);
        if (nsq_diskqueue_put(queue, text, (size_t) length) != 0)
            return -1;
    }
    return 0;
}

// nsq_diskqueue_get, retried after the actor finished when it waits.
int dq_test_get(const dq_test_t *test, nsq_diskqueue_t *queue, const void **data, size_t *size)
{
    int rc;
    for (int tries = 0; (rc = nsq_diskqueue_get(queue, data, size)) == NSQ_DISKQUEUE_WAIT;
         tries++) {
        if (tries == 100)
            return -1;
        dq_test_settle(test);
    }
    return rc;
}

// Pops one record and checks it is "rec-<expected>".
int dq_test_expect(const dq_test_t *test, nsq_diskqueue_t *queue, int expected)
{
    const void *data;
    size_t size;
    char text[32];
    int length = snprintf(text, sizeof text, "rec-%04d", expected);
    if (dq_test_get(test, queue, &data, &size) != 1) {
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

static void s_test_done(void *arg, int error)
{
    *(int *) arg = error;
}

// A sync whose completion has arrived: 0, or its errno.
int dq_test_sync(const dq_test_t *test, nsq_diskqueue_t *queue)
{
    int error = -1;
    if (nsq_diskqueue_sync_then(queue, s_test_done, &error) != 0)
        return errno;
    dq_test_settle(test);
    return error;
}

// Segment files of queue name (queue, if open, tells the one created ahead).
int dq_test_segments(const dq_test_t *test, const char *name, const nsq_diskqueue_t *queue)
{
    dq_test_settle(test);
    nsq_diskqueue_listing_t *listing = dq_listing_new(test->dir, name);
    int count = listing ? (int) dq_listing_count(listing) : -1;
    nsq_diskqueue_listing_destroy(&listing);
    if (queue && queue->async && queue->async->next_fd >= 0)
        count--;
    return count;
}

void dq_test_segment_path(const char *dir, const char *name, int64_t number, char *path)
{
    nsq_diskqueue_t probe = {.dir = (char *) dir, .name = (char *) name};
    dq_segment_path(&probe, number, path);
}

int64_t dq_test_path_size(const char *dir, const char *name, int64_t number)
{
    char path[DQ_PATH_MAX];
    dq_test_segment_path(dir, name, number, path);
    struct stat status;
    return stat(path, &status) == 0 ? (int64_t) status.st_size : -1;
}

bool dq_test_dir_empty(const char *dir)
{
    DIR *listing = opendir(dir);
    struct dirent *entry;
    bool empty = listing != NULL;
    while (listing && (entry = readdir(listing)))
        if (entry->d_name[0] != '.')
            empty = false;
    if (listing)
        closedir(listing);
    return empty;
}

// The metadata path of queue name in dir, with suffix.
static void s_test_meta_path(const char *dir, const char *name, const char *suffix, char *path)
{
    nsq_diskqueue_t probe = {.dir = (char *) dir, .name = (char *) name};
    dq_meta_path(&probe, path, suffix);
}

// Truncates segment number of queue name by offset bytes, or flips a bit
// of the byte at offset.
static int s_test_damage(const char *dir, const char *name, int64_t number, int64_t offset,
                         bool truncate)
{
    char path[DQ_PATH_MAX];
    dq_test_segment_path(dir, name, number, path);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (truncate) {
        rc = ftruncate(fd, dq_file_size(fd) - offset);
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

// ---- cases (both modes) -------------------------------------------------------------

// Roll-over, deletion of read segments, reopen at the saved positions.
static int s_test_roll_and_reopen(const dq_test_t *t)
{
    // Records are 16 bytes on disk: 4 per 64-byte segment.
    nsq_diskqueue_t *queue = dq_test_open(t, "roll", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_is_empty(queue));
    DQ_TEST_CHECK(dq_test_fill(queue, 0, 10) == 0 && nsq_diskqueue_depth(queue) == 10);
    DQ_TEST_CHECK(dq_test_segments(t, "roll", queue) == 3);
    for (int i = 0; i < 5; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(dq_test_segments(t, "roll", queue) == 2);  // segment 0 was read and deleted
    dq_test_close(t, &queue);
    queue = dq_test_open(t, "roll", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 5);
    DQ_TEST_CHECK(dq_test_fill(queue, 10, 2) == 0);
    for (int i = 5; i < 12; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    const void *data;
    size_t size;
    DQ_TEST_CHECK(dq_test_get(t, queue, &data, &size) == 0 && nsq_diskqueue_depth(queue) == 0);
    DQ_TEST_CHECK(dq_test_segments(t, "roll", queue) == 1);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0);
    dq_test_delete(t, &queue);
    DQ_TEST_CHECK(dq_test_segments(t, "roll", NULL) == 0);
    return 0;
}

// Zero-length and maximum-size records (larger than the read buffer).
static int s_test_sizes(const dq_test_t *t)
{
    uint32_t max = 3 * DQ_BUFFER_SIZE + 7;
    nsq_diskqueue_t *queue = dq_test_open(t, "sizes", 1 << 20, max, NULL);
    uint8_t *big = malloc(max + 1);
    DQ_TEST_CHECK(queue && big);
    for (uint32_t i = 0; i <= max; i++)
        big[i] = (uint8_t) (i * 7);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, "", 0) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, big, max) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, big, max + 1) == -1 && errno == EINVAL);
    DQ_TEST_CHECK(nsq_diskqueue_put(queue, "x", 1) == 0 && nsq_diskqueue_depth(queue) == 3);
    dq_test_close(t, &queue);
    queue = dq_test_open(t, "sizes", 1 << 20, max, NULL);
    const void *data;
    size_t size;
    DQ_TEST_CHECK(queue && dq_test_get(t, queue, &data, &size) == 1 && size == 0);
    DQ_TEST_CHECK(dq_test_get(t, queue, &data, &size) == 1 && size == max);
    DQ_TEST_CHECK(memcmp(data, big, max) == 0);
    DQ_TEST_CHECK(dq_test_get(t, queue, &data, &size) == 1 && size == 1);
    DQ_TEST_CHECK(memcmp(data, "x", 1) == 0 && nsq_diskqueue_corrupt_count(queue) == 0);
    free(big);
    dq_test_delete(t, &queue);
    return 0;
}

// A torn last record (metadata newer than the segment) is cut; the rest
// and later writes are served.
static int s_test_truncated_tail(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "torn", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 5) == 0);
    dq_test_close(t, &queue);
    DQ_TEST_CHECK(s_test_damage(t->dir, "torn", 0, 3, true) == 0);
    queue = dq_test_open(t, "torn", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 4);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 1);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "torn", 0) == 4 * 16);
    DQ_TEST_CHECK(dq_test_fill(queue, 5, 1) == 0);
    for (int i = 0; i < 4; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(dq_test_expect(t, queue, 5) == 0 && nsq_diskqueue_is_empty(queue));
    dq_test_delete(t, &queue);
    return 0;
}

// A flipped payload byte drops one record; a flipped length byte drops the
// rest of its segment; everything else is served.
static int s_test_flipped(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "flip", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 12) == 0);  // segments 0, 1, 2
    dq_test_close(t, &queue);
    DQ_TEST_CHECK(s_test_damage(t->dir, "flip", 0, 1 * 16 + 10, false) == 0);  // rec-0001 payload
    DQ_TEST_CHECK(s_test_damage(t->dir, "flip", 1, 1 * 16 + 2, false) == 0);   // rec-0005 length
    queue = dq_test_open(t, "flip", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 12);
    DQ_TEST_CHECK(dq_test_expect(t, queue, 0) == 0 && dq_test_expect(t, queue, 2) == 0);
    DQ_TEST_CHECK(dq_test_expect(t, queue, 3) == 0 && dq_test_expect(t, queue, 4) == 0);
    for (int i = 8; i < 12; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 2);
    const void *data;
    size_t size;
    DQ_TEST_CHECK(dq_test_get(t, queue, &data, &size) == 0 && nsq_diskqueue_depth(queue) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// Metadata older than the segments (records written after the last sync),
// and metadata missing: every record is found, writing goes on.
static int s_test_old_metadata(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "old", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 3) == 0 && dq_test_sync(t, queue) == 0);
    char meta[DQ_PATH_MAX], saved[DQ_PATH_MAX];
    s_test_meta_path(t->dir, "old", "", meta);
    s_test_meta_path(t->dir, "old", ".saved", saved);
    DQ_TEST_CHECK(s_test_copy(meta, saved) == 0);
    DQ_TEST_CHECK(dq_test_expect(t, queue, 0) == 0 && dq_test_fill(queue, 3, 2) == 0);
    dq_test_close(t, &queue);
    DQ_TEST_CHECK(rename(saved, meta) == 0);
    queue = dq_test_open(t, "old", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 5);  // rec-0000 again: at least once
    DQ_TEST_CHECK(dq_test_fill(queue, 5, 1) == 0);
    for (int i = 0; i < 6; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(dq_test_fill(queue, 6, 2) == 0);
    dq_test_close(t, &queue);
    DQ_TEST_CHECK(unlink(meta) == 0);
    queue = dq_test_open(t, "old", 1 << 20, 1024, NULL);
    // Without metadata the read position is lost: the segment is read again.
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 3);
    for (int i = 5; i < 8; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// Metadata from before a roll: the segments written after it are found.
static int s_test_meta_before_roll(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "rolled", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 2) == 0 && dq_test_sync(t, queue) == 0);
    char meta[DQ_PATH_MAX], saved[DQ_PATH_MAX];
    s_test_meta_path(t->dir, "rolled", "", meta);
    s_test_meta_path(t->dir, "rolled", ".saved", saved);
    DQ_TEST_CHECK(s_test_copy(meta, saved) == 0);
    DQ_TEST_CHECK(dq_test_fill(queue, 2, 8) == 0);  // segments 0, 1, 2
    dq_test_close(t, &queue);
    DQ_TEST_CHECK(rename(saved, meta) == 0);
    queue = dq_test_open(t, "rolled", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 10);
    DQ_TEST_CHECK(dq_test_fill(queue, 10, 1) == 0);
    for (int i = 0; i < 11; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0 && nsq_diskqueue_is_empty(queue));
    dq_test_delete(t, &queue);
    return 0;
}

// A write that fails (file size limit: EFBIG, as ENOSPC would) leaves no
// partial record and the queue usable; empty drops everything.
static int s_test_failed_write(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "full", 1 << 20, 4096, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 2) == 0);
    dq_test_settle(t);  // async: the descriptor is open and the records written
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
    dq_test_settle(t);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "full", 0) == 32 && nsq_diskqueue_depth(queue) == 2);
    DQ_TEST_CHECK(dq_test_fill(queue, 2, 1) == 0);
    for (int i = 0; i < 3; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(dq_test_fill(queue, 3, 5) == 0 && nsq_diskqueue_empty(queue) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_depth(queue) == 0 && nsq_diskqueue_is_empty(queue));
    DQ_TEST_CHECK(dq_test_segments(t, "full", queue) == 1);
    DQ_TEST_CHECK(dq_test_fill(queue, 8, 1) == 0 && dq_test_expect(t, queue, 8) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// Records read but kept (not finished by the consumer) survive a reopen,
// and so do their segments; releasing them deletes the segments.
static int s_test_keep(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "keep", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 8) == 0);      // segments 0 and 1
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);  // the caller manages it
    DQ_TEST_CHECK(dq_test_expect(t, queue, 0) == 0 && dq_test_expect(t, queue, 1) == 0);
    uint64_t kept = nsq_diskqueue_position(queue);  // rec-0001 is not finished
    for (int i = 2; i < 6; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    nsq_diskqueue_keep_from(queue, kept, 5);
    DQ_TEST_CHECK(dq_test_segments(t, "keep", queue) == 2);  // segment 0 stays
    dq_test_close(t, &queue);
    queue = dq_test_open(t, "keep", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 7);
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);
    for (int i = 1; i < 8; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(dq_test_segments(t, "keep", queue) == 2);
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);
    DQ_TEST_CHECK(dq_test_segments(t, "keep", queue) == 1);
    dq_test_close(t, &queue);
    queue = dq_test_open(t, "keep", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 0 && nsq_diskqueue_is_empty(queue));
    dq_test_delete(t, &queue);
    return 0;
}

// Segments 000000 and 1000000000000 of one queue: opening, reading,
// keeping and reopening work from the two files, never from the numbers
// in between (which once took forever), and the gap is reported once.
static int s_test_sparse(const dq_test_t *t)
{
    const int64_t far = 1000000000000LL;
    nsq_diskqueue_t *queue = dq_test_open(t, "donor", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 2, 3) == 0);
    dq_test_close(t, &queue);
    queue = dq_test_open(t, "sparse", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 2) == 0);
    dq_test_close(t, &queue);
    char from[DQ_PATH_MAX], to[DQ_PATH_MAX];
    dq_test_segment_path(t->dir, "donor", 0, from);
    dq_test_segment_path(t->dir, "sparse", far, to);
    DQ_TEST_CHECK(rename(from, to) == 0);
    s_test_meta_path(t->dir, "donor", "", from);
    DQ_TEST_CHECK(unlink(from) == 0);
    // The metadata still says segment 0 is the write segment: the files win.
    queue = dq_test_open(t, "sparse", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 5);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 1);
    nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);
    for (int i = 0; i < 3; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    nsq_diskqueue_keep_from(queue, nsq_diskqueue_position(queue), 1);  // rec-0002 unfinished
    DQ_TEST_CHECK(dq_test_segments(t, "sparse", queue) == 1);          // segment 0 is done
    dq_test_close(t, &queue);
    queue = dq_test_open(t, "sparse", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 3);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 0 && dq_test_fill(queue, 5, 1) == 0);
    for (int i = 2; i < 6; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(dq_test_path_size(t->dir, "sparse", far) == 4 * 16);
    dq_test_delete(t, &queue);
    // Without metadata the queue is rebuilt from the same two files.
    queue = dq_test_open(t, "rebuilt", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 1) == 0);
    dq_test_close(t, &queue);
    dq_test_segment_path(t->dir, "rebuilt", 0, from);
    dq_test_segment_path(t->dir, "rebuilt", far, to);
    DQ_TEST_CHECK(link(from, to) == 0);
    s_test_meta_path(t->dir, "rebuilt", "", from);
    DQ_TEST_CHECK(unlink(from) == 0);
    queue = dq_test_open(t, "rebuilt", 1 << 20, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_depth(queue) == 2);
    DQ_TEST_CHECK(dq_test_expect(t, queue, 0) == 0 && dq_test_expect(t, queue, 0) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 1 && nsq_diskqueue_is_empty(queue));
    dq_test_delete(t, &queue);
    return 0;
}

// A missing middle segment (gone before the open, or while the queue is
// open) is counted once and the records after it are served.
static int s_test_gap(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "gap", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 16) == 0);  // segments 0 to 3
    dq_test_close(t, &queue);
    char path[DQ_PATH_MAX];
    dq_test_segment_path(t->dir, "gap", 1, path);
    DQ_TEST_CHECK(unlink(path) == 0);
    queue = dq_test_open(t, "gap", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && nsq_diskqueue_corrupt_count(queue) == 1);
    DQ_TEST_CHECK(nsq_diskqueue_depth(queue) == 12);
    for (int i = 0; i < 4; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    dq_test_segment_path(t->dir, "gap", 2, path);
    DQ_TEST_CHECK(unlink(path) == 0);  // while the queue is open
    for (int i = 12; i < 16; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_corrupt_count(queue) == 2 && nsq_diskqueue_is_empty(queue));
    const void *data;
    size_t size;
    DQ_TEST_CHECK(dq_test_get(t, queue, &data, &size) == 0 && nsq_diskqueue_depth(queue) == 0);
    dq_test_delete(t, &queue);
    return 0;
}

// An idle queue holds no descriptor and no buffer: a new one creates no
// file before its first put, and a sync closes what put and get opened
// (async: and the next segment created ahead; a timed sync only once the
// queue was idle since the previous one). Queues opened through one
// listing find their files.
static int s_test_idle(const dq_test_t *t)
{
    int before = nsq_diskio_open_fds();
    nsq_diskqueue_t *queue = dq_test_open(t, "idle", 64, 1024, NULL);
    DQ_TEST_CHECK(queue && dq_test_segments(t, "idle", NULL) == 0);
    DQ_TEST_CHECK(nsq_diskio_open_fds() == before);
    DQ_TEST_CHECK(dq_test_fill(queue, 0, 6) == 0 && dq_test_expect(t, queue, 0) == 0);
    dq_test_settle(t);
    int ahead = queue->async && queue->async->next_fd >= 0;
    DQ_TEST_CHECK(nsq_diskio_open_fds() == before + 2 + ahead && queue->buffer);
    DQ_TEST_CHECK(dq_test_sync(t, queue) == 0);
    DQ_TEST_CHECK(nsq_diskio_open_fds() == before && !queue->buffer && !queue->scratch);
    DQ_TEST_CHECK(dq_test_expect(t, queue, 1) == 0 && dq_test_fill(queue, 6, 1) == 0);
    DQ_TEST_CHECK(nsq_diskqueue_maybe_sync(queue, dq_now_ms() + 1000, 1000) == 0);
    dq_test_settle(t);
    if (queue->async) {
        // Used since the last timed sync, it keeps its descriptors; idle
        // until the next, it lets them go.
        DQ_TEST_CHECK(queue->write_fd >= 0 && !nsq_diskqueue_dirty(queue));
        DQ_TEST_CHECK(nsq_diskqueue_maybe_sync(queue, dq_now_ms() + 1000, 1000) == 0);
        dq_test_settle(t);
    }
    DQ_TEST_CHECK(nsq_diskio_open_fds() == before && !queue->buffer);
    dq_test_close(t, &queue);
    nsq_diskqueue_t *other = dq_test_open(t, "idle2", 64, 1024, NULL);
    DQ_TEST_CHECK(other && dq_test_fill(other, 100, 1) == 0);
    dq_test_close(t, &other);
    nsq_diskqueue_listing_t *listing = nsq_diskqueue_listing_new(t->dir);
    DQ_TEST_CHECK(listing && nsq_diskio_open_fds() == before);
    queue = dq_test_open(t, "idle", 64, 1024, listing);
    other = dq_test_open(t, "idle2", 64, 1024, listing);
    DQ_TEST_CHECK(queue && other && nsq_diskio_open_fds() == before);
    DQ_TEST_CHECK(nsq_diskqueue_depth(queue) == 5 && nsq_diskqueue_depth(other) == 1);
    DQ_TEST_CHECK(dq_test_expect(t, other, 100) == 0);
    dq_test_delete(t, &other);
    // Its listed files are gone now: a new queue of that name starts empty.
    other = dq_test_open(t, "idle2", 64, 1024, listing);
    DQ_TEST_CHECK(other && nsq_diskqueue_is_empty(other)
                  && nsq_diskqueue_corrupt_count(other) == 0);
    dq_test_delete(t, &other);
    nsq_diskqueue_listing_destroy(&listing);
    for (int i = 2; i < 7; i++)
        DQ_TEST_CHECK(dq_test_expect(t, queue, i) == 0);
    dq_test_delete(t, &queue);
    DQ_TEST_CHECK(nsq_diskio_open_fds() == before);
    return 0;
}

// write_meta (a shutdown, before one syncfs) records where the records
// written since the last sync end, so a restart finds the metadata right
// instead of recovering (and rewriting it durably) queue by queue.
static int s_test_write_meta(const dq_test_t *t)
{
    nsq_diskqueue_t *queue = dq_test_open(t, "wmeta", 1024, 64, NULL);
    DQ_TEST_CHECK(queue && dq_test_fill(queue, 0, 3) == 0);
    dq_test_settle(t);
    int64_t end = queue->write_pos;
    DQ_TEST_CHECK(end > 0 && nsq_diskqueue_write_meta(queue) == 0);
    dq_test_settle(t);
    char path[DQ_PATH_MAX], text[160], expected[32];
    dq_meta_path(queue, path, "");
    FILE *file = fopen(path, "r");
    size_t size = file ? fread(text, 1, sizeof text - 1, file) : 0;
    if (file)
        fclose(file);
    text[size] = '\0';
    snprintf(expected, sizeof expected, "\n0,%lld", (long long) end);
    DQ_TEST_CHECK(strstr(text, expected) != NULL);
    dq_test_delete(t, &queue);
    return 0;
}

// Runs every case in one mode, in a directory of its own.
static int s_test_mode(bool async)
{
    char dir[] = "/tmp/nsq-diskqueue-test-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    dq_test_t test = {dir, async ? nsq_diskio_new() : NULL};
    if (async && !test.diskio)
        return -1;
    const dq_test_t *t = &test;
    int rc = s_test_roll_and_reopen(t) || s_test_sizes(t) || s_test_truncated_tail(t)
                     || s_test_flipped(t) || s_test_old_metadata(t) || s_test_failed_write(t)
                     || s_test_keep(t) || s_test_meta_before_roll(t) || s_test_sparse(t)
                     || s_test_gap(t) || s_test_idle(t) || s_test_write_meta(t)
                 ? -1
                 : 0;
    nsq_diskio_destroy(&test.diskio);
    if (rc == 0 && !dq_test_dir_empty(dir))
        rc = -1;  // every queue was deleted, so nothing may remain
    if (rc == 0)
        rmdir(dir);
    else
        fprintf(stderr, "nsq_diskqueue_test: %s mode failed, files kept in %s\n",
                async ? "async" : "synchronous", dir);
    return rc;
}

int nsq_diskqueue_test(void)
{
    if (s_test_mode(false) != 0 || s_test_mode(true) != 0)
        return -1;
    return nsq_diskqueue_async_cases();
}
