/*  diskqueue_trace - drives one disk queue through everything that touches
    its files, for tests/diskqueue_strace.sh
    SPDX-License-Identifier: MIT

    Usage: diskqueue_trace sync|async. Prints "owner TID" (the thread that
    owns the queue) and "dir PATH" (its directory), then: a listing at
    start, puts across many rolls with reads, commits and policy syncs
    (sync_every and explicit syncs) between them, a drain, a reopen (the
    recovery), keep, empty, and delete. In async mode the owner turns its
    actor's completions like a loop thread would; the strace script checks
    that no open, fsync, fdatasync, rename or unlink of the queue's files
    comes from the owner then. The same workload in sync mode is the
    script's proof that it would see them. Exits 0 if every record came
    back in order and every commit succeeded.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsq_diskio.h"
#include "nsq_diskqueue.h"

#define RECORDS 5000

typedef struct {
    nsq_diskio_t *diskio;  // async mode's actor, or NULL
    int next_read;         // the record the next get must return
    int commits;           // commits answered
    int failures;          // commits answered with an error
} trace_t;

static void s_committed(void *arg, int error)
{
    trace_t *trace = arg;
    trace->commits++;
    trace->failures += error != 0;
}

// Runs the completions that arrived, as the owner's loop would.
static void s_turn(trace_t *trace)
{
    if (trace->diskio)
        nsq_diskio_dispatch(trace->diskio);
}

// Pops one record if one is ready (wait: let the actor finish first) and
// checks it. Returns 1 if read, 0 if none, -1 on a wrong record.
static int s_read(trace_t *trace, nsq_diskqueue_t *queue, bool wait)
{
    const void *data;
    size_t size;
    int rc;
    while ((rc = nsq_diskqueue_get(queue, &data, &size)) == NSQ_DISKQUEUE_WAIT && wait)
        nsq_diskio_wait(trace->diskio, 10000);
    if (rc != 1)
        return rc == NSQ_DISKQUEUE_WAIT ? 0 : rc;
    char expected[16];
    snprintf(expected, sizeof expected, "%08d", trace->next_read++);
    return size == 100 && memcmp(data, expected, 8) == 0 ? 1 : -1;
}

static nsq_diskqueue_t *s_open(trace_t *trace, const char *dir, nsq_diskqueue_listing_t *listing)
{
    nsq_diskqueue_config_t config = {
        .dir = dir,
        .name = "trace",
        .max_bytes_per_file = 4096,
        .max_msg_size = 1024,
        .sync_every = 100,
        .listing = listing,
        .diskio = trace->diskio,
    };
    return nsq_diskqueue_open(&config);
}

static void s_settle(trace_t *trace)
{
    if (trace->diskio)
        nsq_diskio_wait(trace->diskio, 30000);
}

// Puts, reads, commits and syncs, then drains the queue.
static int s_run(trace_t *trace, nsq_diskqueue_t *queue)
{
    char record[100];
    memset(record, 'x', sizeof record);
    for (int i = 0; i < RECORDS; i++) {
        snprintf(record, sizeof record, "%08d", i);
        if (nsq_diskqueue_put(queue, record, sizeof record) != 0)
            return -1;
        if (i % 3 == 2 && s_read(trace, queue, false) < 0)
            return -1;
        if (i % 250 == 249 && nsq_diskqueue_commit(queue, s_committed, trace) != 0)
            return -1;
        if (i % 1000 == 999 && nsq_diskqueue_sync(queue) != 0)
            return -1;
        s_turn(trace);
    }
    int rc;
    while ((rc = s_read(trace, queue, true)) == 1)
        ;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "sync") && strcmp(argv[1], "async"))) {
        fprintf(stderr, "usage: diskqueue_trace sync|async\n");
        return 2;
    }
    char dir[] = "/tmp/nsq-diskqueue-trace-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    printf("owner %d\ndir %s\n", (int) gettid(), dir);
    fflush(stdout);
    trace_t trace = {0};
    if (!strcmp(argv[1], "async") && !(trace.diskio = nsq_diskio_new()))
        return 1;
    nsq_diskqueue_listing_t *listing = nsq_diskqueue_listing_new(dir);  // at start
    nsq_diskqueue_t *queue = s_open(&trace, dir, listing);
    nsq_diskqueue_listing_destroy(&listing);
    int rc = queue ? s_run(&trace, queue) : -1;
    nsq_diskqueue_destroy(&queue);
    s_settle(&trace);
    // Reopened: the recovery reads the metadata and files again.
    queue = s_open(&trace, dir, NULL);
    char record[100] = "00005000";
    for (int i = 0; rc == 0 && queue && i < 10; i++)
        rc = nsq_diskqueue_put(queue, record, sizeof record);
    if (rc == 0 && queue) {
        nsq_diskqueue_keep_from(queue, NSQ_DISKQUEUE_KEEP_NONE, 0);
        rc = nsq_diskqueue_empty(queue) == 0 && nsq_diskqueue_depth(queue) == 0 ? 0 : -1;
    }
    s_settle(&trace);
    nsq_diskqueue_delete(&queue);
    s_settle(&trace);
    nsq_diskio_destroy(&trace.diskio);
    if (rmdir(dir) != 0)
        rc = -1;
    if (trace.next_read != RECORDS || trace.commits != RECORDS / 250 || trace.failures)
        rc = -1;
    fprintf(stderr, "diskqueue_trace %s: %d records read, %d commits, %d failed: %s\n", argv[1],
            trace.next_read, trace.commits, trace.failures, rc == 0 ? "ok" : "FAILED");
    return rc == 0 ? 0 : 1;
}
