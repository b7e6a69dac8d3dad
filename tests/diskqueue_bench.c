/*  diskqueue_bench - records/s of a disk queue's put/get loop with
    100-byte records, synchronous mode against async mode
    SPDX-License-Identifier: MIT

    Usage: diskqueue_bench [RECORDS [DIR [RUNS]]] (defaults 500000, /tmp, 5).
    For each scenario and mode it times the owner thread's loop (puts and
    gets; in async mode also the completions it dispatches every 64 calls
    and any wait for a descriptor) and prints the median of RUNS runs: the
    records/s, and the owner thread's CPU time per record (user + system,
    less sensitive than the rate to other load on the machine). The
    scenarios: everything put then read back in one segment (the cost of
    the async bookkeeping alone), one put then one get (the reader on the
    write segment), 8 MiB segments (rolls: their fdatasync leaves the owner
    thread in async mode), and a data sync every 1000 records.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "nsq_diskio.h"
#include "nsq_diskqueue.h"

typedef struct {
    const char *name;    // what it measures
    int64_t segment;     // max_bytes_per_file
    int64_t sync_every;  // sync_every
    bool interleaved;    // one put then one get, else all puts then all gets
} scenario_t;

static const scenario_t s_scenarios[] = {
    {"put all, get all, one segment", 1LL << 30, 0, false},
    {"put 1, get 1, one segment", 1LL << 30, 0, true},
    {"put all, get all, 8 MiB segments", 8 << 20, 0, false},
    {"put all, get all, sync every 1000", 1LL << 30, 1000, false},
};

static double s_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

// CPU seconds (user + system) the calling thread has used.
static double s_cpu(void)
{
    struct rusage usage;
    getrusage(RUSAGE_THREAD, &usage);
    return (double) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
           + (double) (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Pops one record, waiting for the actor if it must. Returns 0 or -1.
static int s_get(nsq_diskqueue_t *queue, nsq_diskio_t *diskio)
{
    const void *data;
    size_t size;
    int rc;
    while ((rc = nsq_diskqueue_get(queue, &data, &size)) == NSQ_DISKQUEUE_WAIT)
        nsq_diskio_wait(diskio, 10000);
    return rc == 1 && size == 100 ? 0 : -1;
}

// One timed run: records/s of the owner's loop (or -1), and in *cpu the
// owner thread's CPU microseconds per record.
static double s_run(const scenario_t *scenario, bool async, int records, const char *dir,
                    double *cpu)
{
    nsq_diskio_t *diskio = async ? nsq_diskio_new() : NULL;
    nsq_diskqueue_config_t config = {
        .dir = dir,
        .name = "bench",
        .max_bytes_per_file = scenario->segment,
        .max_msg_size = 1024,
        .sync_every = scenario->sync_every,
        .diskio = diskio,
    };
    nsq_diskqueue_t *queue = nsq_diskqueue_open(&config);
    if (diskio)
        nsq_diskio_wait(diskio, 10000);
    char record[100];
    memset(record, 'r', sizeof record);
    int failed = !queue;
    double start = s_now(), cpu_start = s_cpu();
    for (int i = 0; !failed && i < records; i++) {
        failed = nsq_diskqueue_put(queue, record, sizeof record) != 0
                 || (scenario->interleaved && s_get(queue, diskio) != 0);
        if (diskio && i % 64 == 63)
            nsq_diskio_dispatch(diskio);
    }
    for (int i = 0; !failed && !scenario->interleaved && i < records; i++) {
        failed = s_get(queue, diskio) != 0;
        if (diskio && i % 64 == 63)
            nsq_diskio_dispatch(diskio);
    }
    double elapsed = s_now() - start;
    *cpu = (s_cpu() - cpu_start) * 1e6 / records;
    nsq_diskqueue_delete(&queue);
    nsq_diskio_destroy(&diskio);
    return failed ? -1 : records / elapsed;
}

static int s_compare(const void *a, const void *b)
{
    double left = *(const double *) a, right = *(const double *) b;
    return left < right ? -1 : left > right;
}

int main(int argc, char **argv)
{
    int records = argc > 1 ? atoi(argv[1]) : 500000;
    const char *base = argc > 2 ? argv[2] : "/tmp";
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (records <= 0 || runs <= 0 || runs > 99) {
        fprintf(stderr, "usage: diskqueue_bench [RECORDS [DIR [RUNS]]]\n");
        return 2;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/nsq-diskqueue-bench-XXXXXX", base);
    if (!mkdtemp(dir))
        return 1;
    printf("%d records of 100 bytes, median of %d runs, in %s\n", records, runs, base);
    printf("%-36s %11s %11s %6s %9s %9s\n", "scenario", "sync rec/s", "async rec/s", "async",
           "sync cpu", "async cpu");
    int rc = 0;
    for (size_t s = 0; s < sizeof s_scenarios / sizeof *s_scenarios; s++) {
        double rates[2][99], cpus[2][99];
        for (int run = 0; run < runs; run++)  // alternate, so load drifts hit both modes
            for (int mode = 0; mode < 2; mode++)
                rates[mode][run] =
                    s_run(&s_scenarios[s], mode == 1, records, dir, &cpus[mode][run]);
        double median[2], cpu[2];
        for (int mode = 0; mode < 2; mode++) {
            qsort(rates[mode], (size_t) runs, sizeof(double), s_compare);
            qsort(cpus[mode], (size_t) runs, sizeof(double), s_compare);
            median[mode] = rates[mode][runs / 2];
            cpu[mode] = cpus[mode][runs / 2];
            if (rates[mode][0] < 0)
                rc = 1;
        }
        printf("%-36s %11.0f %11.0f %5.2fx %7.2fus %7.2fus\n", s_scenarios[s].name, median[0],
               median[1], median[1] / median[0], cpu[0], cpu[1]);
        fflush(stdout);
    }
    rmdir(dir);
    return rc;
}
