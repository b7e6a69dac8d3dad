/*  bench_report - nsq-bench's clock and result line
    SPDX-License-Identifier: MIT

    Every mode but soak ends with one line on stdout:
        mode=M count=N size=S seconds=X msgs_per_sec=Y mb_per_sec=Z
        [p50_us= p99_us=] [errors=E] [foreign=F]
    and times itself with bench_now_ns (CLOCK_MONOTONIC, the clock the
    send time in each body is read on).

    API: bench_clock_ns, bench_now_ns, bench_report.
*/
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

// clock's time now, in ns.
int64_t bench_clock_ns(clockid_t clock);

// CLOCK_MONOTONIC now, in ns.
int64_t bench_now_ns(void);

// Prints the result line of mode for count messages of size bytes in
// seconds, and flushes stdout. latencies (ns, latency_count of them; NULL
// or 0 for none) are sorted in place for their p50 and p99. errors and
// foreign are printed only when not 0.
void bench_report(const char *mode, size_t size, int64_t count, double seconds, int64_t *latencies,
                  size_t latency_count, int64_t errors, int64_t foreign);

#endif
