/*  nsq_diskio_test - the disk I/O actor's self-test
    SPDX-License-Identifier: MIT

    Every kind of request against real files, completions in submission
    order, cancel, injected failures, the hold used by other tests, many
    requests submitted before any is dispatched (the pipe never fills), a
    zloop reader, and two actors at once (two owner threads, and two actors
    on one thread that never see each other's completions).
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_diskio.h"

#define IO_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "nsq_diskio_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

// What the completions of one test saw.
typedef struct {
    int results[64];  // result of each completion, in arrival order
    int errors[64];   // its error
    int tags[64];     // which request it was
    int count;        // completions seen
} seen_t;

// A request's tag, pointing into its seen_t.
typedef struct {
    seen_t *seen;  // where to record
    int tag;       // what to record
} tag_t;

static void s_record(void *arg, int result, int error)
{
    tag_t *tag = arg;
    seen_t *seen = tag->seen;
    if (seen->count < 64) {
        seen->results[seen->count] = result;
        seen->errors[seen->count] = error;
        seen->tags[seen->count] = tag->tag;
    }
    seen->count++;
}

int nsq_diskio_open_fds(void)
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

static int s_test_job(void *job)
{
    return *(int *) job * 2;
}

// Every kind of request, in order, against files in dir.
static int s_test_kinds(nsq_diskio_t *io, const char *dir)
{
    char path[512], other[512];
    snprintf(path, sizeof path, "%s/file", dir);
    snprintf(other, sizeof other, "%s/state", dir);
    seen_t seen = {0};
    tag_t tags[8];
    for (int i = 0; i < 8; i++)
        tags[i] = (tag_t){&seen, i};
    int job = 21;
    IO_CHECK(
        nsq_diskio_open(io, path, O_RDWR | O_CREAT, NSQ_DISKIO_CREATE_DURABLE, s_record, &tags[0])
        == 0);
    IO_CHECK(nsq_diskio_replace(io, other, "v1\n", 3, true, s_record, &tags[1]) == 0);
    IO_CHECK(nsq_diskio_syncfs(io, dir, s_record, &tags[2]) == 0);
    IO_CHECK(nsq_diskio_call(io, s_test_job, &job, s_record, &tags[3]) == 0);
    IO_CHECK(nsq_diskio_outstanding(io) == 4);
    IO_CHECK(nsq_diskio_wait(io, 10000) == 0 && seen.count == 4);
    for (int i = 0; i < 4; i++)
        IO_CHECK(seen.tags[i] == i && seen.errors[i] == 0);
    IO_CHECK(seen.results[0] >= 0 && seen.results[3] == 42);
    int fd = seen.results[0];
    IO_CHECK(pwrite(fd, "abc", 3, 0) == 3);
    char text[8] = {0};
    int state = open(other, O_RDONLY);
    IO_CHECK(state >= 0 && read(state, text, sizeof text) == 3 && memcmp(text, "v1\n", 3) == 0);
    close(state);
    // Ordered: the unlink sees the file the open made; the next open does not.
    IO_CHECK(nsq_diskio_datasync(io, fd, true, s_record, &tags[4]) == 0);
    IO_CHECK(nsq_diskio_unlink(io, path, s_record, &tags[5]) == 0);
    IO_CHECK(nsq_diskio_open(io, path, O_RDONLY, 0, s_record, &tags[6]) == 0);
    IO_CHECK(nsq_diskio_unlink(io, other, s_record, &tags[7]) == 0);
    IO_CHECK(nsq_diskio_wait(io, 10000) == 0 && seen.count == 8);
    IO_CHECK(seen.tags[4] == 4 && seen.errors[4] == 0 && seen.errors[5] == 0);
    IO_CHECK(seen.results[6] == -1 && seen.errors[6] == ENOENT && seen.errors[7] == 0);
    return 0;
}

// Cancelled callbacks do not run; a cancelled open's descriptor is closed.
// Injected failures are reported; a failed datasync still closes.
static int s_test_cancel_and_faults(nsq_diskio_t *io, const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cancel", dir);
    int before = nsq_diskio_open_fds();
    seen_t seen = {0};
    tag_t kept = {&seen, 1}, cancelled = {&seen, 2};
    int job = 1;  // read by the actor: it must outlive the wait below
    IO_CHECK(nsq_diskio_open(io, path, O_RDWR | O_CREAT, 0, s_record, &cancelled) == 0);
    IO_CHECK(nsq_diskio_call(io, s_test_job, &job, s_record, &kept) == 0);
    nsq_diskio_cancel(io, &cancelled);
    IO_CHECK(nsq_diskio_wait(io, 10000) == 0);
    IO_CHECK(seen.count == 1 && seen.tags[0] == 1 && nsq_diskio_open_fds() == before);
    int fd = open(path, O_RDWR);
    IO_CHECK(fd >= 0);
    nsq_diskio_fail_next(io, NSQ_DISKIO_DATASYNC, EIO);
    IO_CHECK(nsq_diskio_datasync(io, fd, true, s_record, &kept) == 0);
    IO_CHECK(nsq_diskio_unlink(io, path, s_record, &kept) == 0);
    IO_CHECK(nsq_diskio_wait(io, 10000) == 0 && seen.count == 3);
    IO_CHECK(seen.results[1] == -1 && seen.errors[1] == EIO && seen.errors[2] == 0);
    IO_CHECK(nsq_diskio_open_fds() == before);  // closed although the sync failed
    return 0;
}

// While held, the actor performs nothing; many requests submitted without
// any dispatch never block the owner.
static int s_test_hold_and_many(nsq_diskio_t *io)
{
    seen_t seen = {0};
    tag_t tag = {&seen, 0};
    uint64_t calls = nsq_diskio_performed(io, NSQ_DISKIO_CALL);
    nsq_diskio_hold(io, true);
    int job = 1;
    for (int i = 0; i < 5000; i++)
        IO_CHECK(nsq_diskio_call(io, s_test_job, &job, s_record, &tag) == 0);
    IO_CHECK(nsq_diskio_wait(io, 50) == -1 && errno == ETIMEDOUT);
    IO_CHECK(seen.count == 0 && nsq_diskio_performed(io, NSQ_DISKIO_CALL) == calls);
    nsq_diskio_hold(io, false);
    IO_CHECK(nsq_diskio_wait(io, 30000) == 0 && seen.count == 5000);
    IO_CHECK(nsq_diskio_performed(io, NSQ_DISKIO_CALL) == calls + 5000);
    return 0;
}

// The completions of a zloop reader end the loop.
static int s_test_loop_done(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    seen_t *seen = arg;
    return seen->count >= 10 ? -1 : 0;
}

static int s_test_loop(nsq_diskio_t *io)
{
    zloop_t *loop = zloop_new();
    seen_t seen = {0};
    tag_t tag = {&seen, 0};
    IO_CHECK(loop && zloop_reader(loop, nsq_diskio_sock(io), nsq_diskio_handle, io) == 0);
    zloop_timer(loop, 1, 0, s_test_loop_done, &seen);
    int job = 1;
    for (int i = 0; i < 10; i++)
        IO_CHECK(nsq_diskio_call(io, s_test_job, &job, s_record, &tag) == 0);
    int64_t deadline = zclock_mono() + 10000;
    while (seen.count < 10 && zclock_mono() < deadline)
        zloop_start(loop);
    zloop_destroy(&loop);
    IO_CHECK(seen.count == 10 && nsq_diskio_outstanding(io) == 0);
    return 0;
}

// One owner thread's work on its own actor.
static void *s_test_owner(void *arg)
{
    nsq_diskio_t *io = arg;
    seen_t seen = {0};
    tag_t tag = {&seen, 0};
    int job = 5;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 10; i++)
            if (nsq_diskio_call(io, s_test_job, &job, s_record, &tag) != 0)
                return "submit";
        if (nsq_diskio_wait(io, 30000) != 0 || seen.count != 10 * (round + 1))
            return "completions";
    }
    return NULL;
}

// Two actors: two owner threads at once, then two actors on one thread.
static int s_test_two(void)
{
    nsq_diskio_t *ios[2] = {nsq_diskio_new(), nsq_diskio_new()};
    IO_CHECK(ios[0] && ios[1]);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        IO_CHECK(pthread_create(&threads[i], NULL, s_test_owner, ios[i]) == 0);
    void *failed[2];
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], &failed[i]);
    IO_CHECK(!failed[0] && !failed[1]);
    seen_t seen[2];
    memset(seen, 0, sizeof seen);
    tag_t tags[2] = {{&seen[0], 0}, {&seen[1], 1}};
    int job = 1;
    IO_CHECK(nsq_diskio_call(ios[0], s_test_job, &job, s_record, &tags[0]) == 0);
    IO_CHECK(nsq_diskio_call(ios[1], s_test_job, &job, s_record, &tags[1]) == 0);
    IO_CHECK(nsq_diskio_wait(ios[1], 10000) == 0);
    IO_CHECK(seen[1].count == 1 && seen[0].count == 0);
    IO_CHECK(nsq_diskio_outstanding(ios[0]) == 1 && nsq_diskio_wait(ios[0], 10000) == 0);
    IO_CHECK(seen[0].count == 1 && seen[1].count == 1);
    nsq_diskio_destroy(&ios[0]);
    nsq_diskio_destroy(&ios[1]);
    return 0;
}

int nsq_diskio_test(void)
{
    char dir[] = "/tmp/nsq-diskio-test-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    nsq_diskio_t *io = nsq_diskio_new();
    int rc = !io || s_test_kinds(io, dir) || s_test_cancel_and_faults(io, dir)
                     || s_test_hold_and_many(io) || s_test_loop(io) || s_test_two()
                 ? -1
                 : 0;
    // Destroy runs what is left: a last request's callback still comes.
    seen_t seen = {0};
    tag_t tag = {&seen, 0};
    int job = 3;
    if (io && nsq_diskio_call(io, s_test_job, &job, s_record, &tag) != 0)
        rc = -1;
    nsq_diskio_destroy(&io);
    if (seen.count != 1 || seen.results[0] != 6 || io)
        rc = -1;
    if (rmdir(dir) != 0)
        rc = -1;
    return rc;
}
