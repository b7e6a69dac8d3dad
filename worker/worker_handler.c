/*  worker_handler - what every handler does to a job: say why it failed,
    and hang its output on it
    SPDX-License-Identifier: MIT

    The handler interface itself is in worker_handler.h; the runtime
    (worker.c) and each handler call these.
*/
#include "worker_handler.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void worker_job_fail(worker_job_t *job, nsq_failure_kind_t kind, int64_t code, const char *format,
                     ...)
{
    job->failure.kind = kind;
    job->failure.code = code;
    va_list args;
    va_start(args, format);
    vsnprintf(job->failure.detail, sizeof job->failure.detail, format, args);
    va_end(args);
}

int worker_job_output_add(worker_job_t *job, const void *data, size_t size, size_t max)
{
    if (size > max || job->output_size > max - size) {
        errno = EFBIG;
        return -1;
    }
    if (size == 0)
        return 0;
    uint8_t *grown = realloc(job->output, job->output_size + size);
    if (!grown)
        return -1;
    memcpy(grown + job->output_size, data, size);
    job->output = grown;
    job->output_size += size;
    return 0;
}
