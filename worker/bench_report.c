/*  bench_report - nsq-bench's clock and result line (see bench_report.h)
    SPDX-License-Identifier: MIT

    The percentiles are read off the sorted latencies: p50 at count / 2,
    p99 at count * 99 / 100.
*/
#include "bench_report.h"

#include <stdio.h>
#include <stdlib.h>

int64_t bench_clock_ns(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

int64_t bench_now_ns(void)
{
    return bench_clock_ns(CLOCK_MONOTONIC);
}

static int s_compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

void bench_report(const char *mode, size_t size, int64_t count, double seconds, int64_t *latencies,
                  size_t latency_count, int64_t errors, int64_t foreign)
{
    double rate = seconds > 0 ? (double) count / seconds : 0;
    printf("mode=%s count=%lld size=%zu seconds=%.3f msgs_per_sec=%.0f mb_per_sec=%.2f", mode,
           (long long) count, size, seconds, rate, rate * (double) size / 1e6);
    if (latencies && latency_count) {
        qsort(latencies, latency_count, sizeof *latencies, s_compare_int64);
        printf(" p50_us=%lld p99_us=%lld", (long long) latencies[latency_count / 2] / 1000,
               (long long) latencies[latency_count * 99 / 100] / 1000);
    }
    if (errors)
        printf(" errors=%lld", (long long) errors);
    if (foreign)
        printf(" foreign=%lld", (long long) foreign);
    printf("\n");
    fflush(stdout);
}
