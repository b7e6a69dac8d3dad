/*  worker_handler_file - append each body and a newline to a file or stdout
    SPDX-License-Identifier: MIT

    Group commit: start only appends the line to a buffer and queues the
    job; a zero-delay timer on the loop (it runs after the consumer has
    handed out the rest of the current read) writes the whole buffer with
    write(2), fdatasyncs a file once, and only then reports every queued job
    OK, so a message is FINned only after its line is on disk, and one fsync
    covers a whole batch. A failed write or sync reports the batch RETRY.

    Rotation happens between batches: when the next batch would push the
    file past max_bytes, or when it was opened rotate_interval ago, the file
    is renamed PATH.YYYYMMDDTHHMMSSZ (plus .N if that exists) and reopened.

    With no path the lines go to stdout (no sync, no rotation); a failed
    write there breaks the handler, and the runtime exits 1.
*/
#include "worker_handler.h"

#include "nsq_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    worker_handler_t base;             // first: the runtime's view
    worker_handler_context_t context;  // loop and done callback
    char *path;                        // NULL = stdout
    int fd;                            // the open file, or 1
    int64_t size;                      // bytes in the current file
    int64_t opened_ms;                 // zclock_mono when the current file was opened
    int64_t max_bytes;                 // rotate beyond this, 0 = never
    int64_t rotate_interval_ms;        // rotate after this, 0 = never
    char *buffer;                      // lines not yet written
    size_t length;                     // bytes in buffer
    size_t capacity;                   // bytes allocated
    worker_job_t **pending;            // jobs whose lines are in buffer
    size_t pending_count;
    size_t pending_capacity;
    int flush_timer;  // zero-delay timer armed, 0 if none
    bool broken;      // stdout failed
} s_file_t;

static int s_open(s_file_t *self)
{
    self->fd = open(self->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        nsq_error("file handler: cannot open %s: %s", self->path, strerror(errno));
        return -1;
    }
    struct stat info;
    self->size = fstat(self->fd, &info) == 0 ? (int64_t) info.st_size : 0;
    self->opened_ms = zclock_mono();
    return 0;
}

// Renames the current file aside and opens a fresh one. Returns 0 or -1.
static int s_rotate(s_file_t *self)
{
    char stamp[32], target[4096];
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    snprintf(target, sizeof target, "%s.%s", self->path, stamp);
    for (int n = 1; access(target, F_OK) == 0 && n < 1000; n++)
        snprintf(target, sizeof target, "%s.%s.%d", self->path, stamp, n);
    close(self->fd);
    self->fd = -1;
    if (rename(self->path, target))
        nsq_warn("file handler: cannot rotate %s: %s", self->path, strerror(errno));
    else
        nsq_info("file handler: rotated %s to %s", self->path, target);
    return s_open(self);
}

static bool s_rotation_due(s_file_t *self, int64_t now)
{
    if (!self->path || self->size == 0)
        return false;
    if (self->max_bytes && self->size + (int64_t) self->length > self->max_bytes)
        return true;
    return self->rotate_interval_ms && now - self->opened_ms >= self->rotate_interval_ms;
}

// Writes the buffer and syncs. Returns 0, or -1 with errno.
static int s_write_all(s_file_t *self)
{
    if (s_rotation_due(self, zclock_mono()) && s_rotate(self))
        return -1;
    if (self->fd < 0 && (!self->path || s_open(self)))
        return -1;
    size_t written = 0;
    while (written < self->length) {
        ssize_t wrote = write(self->fd, self->buffer + written, self->length - written);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote < 0)
            return -1;
        written += (size_t) wrote;
    }
    self->size += (int64_t) written;
    return self->path ? fdatasync(self->fd) : 0;
}

// Writes, syncs and reports every pending job.
static void s_flush(s_file_t *self)
{
    if (self->pending_count == 0)
        return;
    worker_result_t result = WORKER_RESULT_OK;
    if (self->broken || s_write_all(self)) {
        if (!self->broken)
            nsq_error("file handler: cannot write %s: %s", self->path ? self->path : "stdout",
                      strerror(errno));
        self->broken = self->path == NULL;
        result = WORKER_RESULT_RETRY;
    }
    self->length = 0;
    size_t count = self->pending_count;
    self->pending_count = 0;
    for (size_t i = 0; i < count; i++)
        self->context.done(self->context.done_arg, self->pending[i], result);
}

static int s_flush_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_file_t *self = arg;
    self->flush_timer = 0;
    s_flush(self);
    return 0;
}

static int s_reserve(s_file_t *self, size_t more)
{
    if (self->length + more > self->capacity) {
        size_t capacity = (self->length + more) * 2;
        char *grown = realloc(self->buffer, capacity);
        if (!grown)
            return -1;
        self->buffer = grown;
        self->capacity = capacity;
    }
    if (self->pending_count == self->pending_capacity) {
        size_t capacity = self->pending_capacity ? self->pending_capacity * 2 : 64;
        worker_job_t **grown = realloc(self->pending, capacity * sizeof *grown);
        if (!grown)
            return -1;
        self->pending = grown;
        self->pending_capacity = capacity;
    }
    return 0;
}

static int s_start(worker_handler_t *base, worker_job_t *job)
{
    s_file_t *self = (s_file_t *) base;
    size_t size = nsq_msg_size(job->msg);
    if (s_reserve(self, size + 1))
        return -1;
    memcpy(self->buffer + self->length, nsq_msg_body(job->msg), size);
    self->length += size;
    self->buffer[self->length++] = '\n';
    self->pending[self->pending_count++] = job;
    if (!self->flush_timer) {
        self->flush_timer = zloop_timer(self->context.loop, 0, 1, s_flush_timer, self);
        if (self->flush_timer < 0) {
            self->flush_timer = 0;
            return -1;  // the line stays buffered; written with the next batch
        }
    }
    return 0;
}

static void s_abort_all(worker_handler_t *base)
{
    s_flush((s_file_t *) base);  // writing is quick: finish rather than abort
}

static bool s_broken(worker_handler_t *base)
{
    return ((s_file_t *) base)->broken;
}

static void s_destroy(worker_handler_t *base)
{
    s_file_t *self = (s_file_t *) base;
    if (self->flush_timer)
        zloop_timer_end(self->context.loop, self->flush_timer);
    if (self->path && self->fd >= 0)
        close(self->fd);
    free(self->path);
    free(self->buffer);
    free(self->pending);
    free(self);
}

static const worker_handler_ops_t s_ops = {
    .start = s_start,
    .abort_all = s_abort_all,
    .broken = s_broken,
    .destroy = s_destroy,
};

worker_handler_t *worker_handler_file_new(const worker_handler_context_t *context, const char *path,
                                          int64_t max_bytes, int64_t rotate_interval_ms)
{
    s_file_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &s_ops;
    self->base.name = path ? "file" : "stdout";
    self->context = *context;
    self->fd = STDOUT_FILENO;
    self->max_bytes = max_bytes;
    self->rotate_interval_ms = rotate_interval_ms;
    if (path && (!(self->path = strdup(path)) || s_open(self))) {
        s_destroy(&self->base);
        return NULL;
    }
    return &self->base;
}
