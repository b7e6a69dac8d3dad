/*  worker_handler_file - append each body and a newline to a file or stdout
    SPDX-License-Identifier: MIT

    Group commit: start only appends the line to a buffer and queues the
    job; a zero-delay timer on the loop (it runs after the consumer has
    handed out the rest of the current read) writes the whole buffer with
    write(2), fdatasyncs a file once, and only then reports every queued job
    OK, so a message is FINned only after its line is on disk, and one fsync
    covers a whole batch. Lines that could not be written and synced are
    reported RETRY; those before them were, and are reported OK.

    Rotation: before a line that would push a non-empty file past
    max_bytes (the lines before it are synced first), and before a batch
    once the file was opened rotate_interval ago. So a file never grows past
    max_bytes unless one line alone is larger. The file is renamed
    PATH.YYYYMMDDTHHMMSSZ (plus .N if that exists) and reopened; missing
    directories above PATH are created (like mkdir -p).

    start either queues the job completely (line buffered, flush timer
    armed) or leaves nothing behind and returns -1: the runtime then frees
    the job, so nothing may point at it.

    With no path the lines go to stdout (no sync, no rotation); a failed
    write there breaks the handler, and the runtime exits 1.
*/
#include "worker_handler.h"

#include "nsq_log.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    worker_job_t *job;  // queued job
    size_t end;         // where its line ends in the buffer
} s_line_t;

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
    s_line_t *pending;                 // jobs whose lines are in buffer, in order
    size_t pending_count;
    size_t pending_capacity;
    int flush_timer;  // zero-delay timer armed, 0 if none
    bool broken;      // stdout failed
} s_file_t;

// Creates the directories above path that do not exist, like mkdir -p.
// Returns 0, or -1 with errno.
static int s_make_parents(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int rc = 0;
    for (char *slash = strchr(copy + 1, '/'); slash && rc == 0; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(copy, 0777) && errno != EEXIST)
            rc = -1;
        *slash = '/';
    }
    int error = errno;
    free(copy);
    errno = error;
    return rc;
}

static int s_open(s_file_t *self)
{
    if (s_make_parents(self->path)) {
        nsq_error("file handler: cannot create the directory of %s: %s", self->path,
                  strerror(errno));
        return -1;
    }
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

static bool s_interval_due(s_file_t *self, int64_t now)
{
    return self->path && self->size && self->rotate_interval_ms
           && now - self->opened_ms >= self->rotate_interval_ms;
}

// Where line index starts in the buffer.
static size_t s_line_start(s_file_t *self, size_t index)
{
    return index ? self->pending[index - 1].end : 0;
}

// Writes lines [first, last) of the batch, then syncs. Returns 0, or -1
// with errno.
static int s_commit(s_file_t *self, size_t first, size_t last)
{
    size_t at = s_line_start(self, first), end = s_line_start(self, last);
    while (at < end) {
        ssize_t wrote = write(self->fd, self->buffer + at, end - at);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote < 0)
            return -1;
        at += (size_t) wrote;
        self->size += wrote;
    }
    return self->path ? fdatasync(self->fd) : 0;
}

// Whether line index, written after the unwritten lines from first on,
// would take a non-empty file past max_bytes.
static bool s_overflows(s_file_t *self, size_t first, size_t index)
{
    if (!self->path || !self->max_bytes)
        return false;
    int64_t before = self->size + (int64_t) (s_line_start(self, index) - s_line_start(self, first));
    int64_t after = before + (int64_t) (self->pending[index].end - s_line_start(self, index));
    return before > 0 && after > self->max_bytes;
}

// Writes and syncs the batch, rotating where needed. Returns how many
// lines, from the first, are on disk; errno says why if not all.
static size_t s_write_batch(s_file_t *self)
{
    if (s_interval_due(self, zclock_mono()) && s_rotate(self))
        return 0;
    if (self->fd < 0 && (!self->path || s_open(self)))
        return 0;
    size_t first = 0;  // the first line not yet written
    for (size_t index = 0; index < self->pending_count; index++) {
        if (!s_overflows(self, first, index))
            continue;
        if (s_commit(self, first, index))
            return first;
        first = index;
        if (s_rotate(self))
            return first;
    }
    return s_commit(self, first, self->pending_count) ? first : self->pending_count;
}

// Writes, syncs and reports every pending job.
static void s_flush(s_file_t *self)
{
    if (self->pending_count == 0)
        return;
    const char *name = self->path ? self->path : "stdout";
    size_t written = self->broken ? 0 : s_write_batch(self);
    int error = errno;
    if (written < self->pending_count && !self->broken) {
        nsq_error("file handler: cannot write %s: %s", name, strerror(error));
        self->broken = self->path == NULL;
    }
    self->length = 0;
    size_t count = self->pending_count;
    self->pending_count = 0;
    for (size_t i = 0; i < count; i++) {
        worker_job_t *job = self->pending[i].job;
        if (i >= written)
            worker_job_fail(job, NSQ_FAILURE_ERROR, error, "cannot write %s: %s", name,
                            strerror(error));
        self->context.done(self->context.done_arg, job,
                           i < written ? WORKER_RESULT_OK : WORKER_RESULT_RETRY);
    }
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
        s_line_t *grown = realloc(self->pending, capacity * sizeof *grown);
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
    if (s_reserve(self, size + 1)) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, ENOMEM, "file handler: out of memory");
        return -1;
    }
    if (!self->flush_timer) {
        int timer = zloop_timer(self->context.loop, 0, 1, s_flush_timer, self);
        if (timer < 0) {  // nothing is queued yet: the runtime may free job
            worker_job_fail(job, NSQ_FAILURE_ERROR, 0, "file handler: cannot arm its timer");
            return -1;
        }
        self->flush_timer = timer;
    }
    memcpy(self->buffer + self->length, nsq_msg_body(job->msg), size);
    self->length += size;
    self->buffer[self->length++] = '\n';
    self->pending[self->pending_count++] = (s_line_t){job, self->length};
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

// ---- self-test ------------------------------------------------------------------

#include "nsq_msg.h"

#include <dirent.h>

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            nsq_error("worker_handler_file_test: %s:%d: %s", __FILE__, __LINE__, #cond);           \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

typedef struct {
    int ok;     // jobs reported OK
    int retry;  // jobs reported RETRY
} s_test_results_t;

// The runtime's part: count the result, then free the job and its message.
static void s_test_done(void *arg, worker_job_t *job, worker_result_t result)
{
    s_test_results_t *results = arg;
    if (result == WORKER_RESULT_OK && nsq_msg_attempts(job->msg) == 1)
        results->ok++;
    else
        results->retry++;
    free(job->msg);
    free(job);
}

static worker_job_t *s_test_job(const char *body)
{
    worker_job_t *job = calloc(1, sizeof *job);
    if (job && !(job->msg = nsq_msg_new_detached(body, strlen(body)))) {
        free(job);
        job = NULL;
    }
    return job;
}

// Starts a job for body; on -1 frees it as the runtime does.
static int s_test_start(worker_handler_t *handler, const char *body)
{
    worker_job_t *job = s_test_job(body);
    if (!job)
        return -1;
    int rc = worker_handler_start(handler, job);
    if (rc) {
        free(job->msg);
        free(job);
    }
    return rc;
}

static int s_test_stop(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    (void) arg;
    return -1;
}

// Runs the loop until the zero-delay flush has run.
static void s_test_run(zloop_t *loop)
{
    zloop_timer(loop, 50, 1, s_test_stop, NULL);
    zloop_start(loop);
}

// The contents of path ("" if absent), in text (size bytes).
static void s_test_read(const char *path, char *text, size_t size)
{
    FILE *file = fopen(path, "r");
    size_t got = file ? fread(text, 1, size - 1, file) : 0;
    text[got] = '\0';
    if (file)
        fclose(file);
}

// Every file in dir: how many, the largest, and all their bytes.
static int s_test_scan(const char *dir, size_t *largest, size_t *total)
{
    DIR *listing = opendir(dir);
    int files = 0;
    *largest = *total = 0;
    for (struct dirent *entry = listing ? readdir(listing) : NULL; entry;
         entry = readdir(listing)) {
        char path[512];
        struct stat info;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (stat(path, &info) || !S_ISREG(info.st_mode))
            continue;
        files++;
        *total += (size_t) info.st_size;
        if ((size_t) info.st_size > *largest)
            *largest = (size_t) info.st_size;
    }
    if (listing)
        closedir(listing);
    return files;
}

int worker_handler_file_test(void)
{
    char root[] = "/tmp/worker_handler_file_XXXXXX", dir[256], path[300], text[256];
    zloop_t *loop = zloop_new();
    worker_handler_t *handler = NULL;
    s_test_results_t results = {0};
    worker_handler_context_t context = {.loop = loop, .done = s_test_done, .done_arg = &results};
    int rc = -1;
    S_CHECK(loop && mkdtemp(root));
    zloop_timer(loop, 0, 1, s_test_stop, NULL);  // once stopped, zloop_timer_end acts at once
    zloop_start(loop);

    // --file creates its directories; a failed timer leaves nothing queued.
    snprintf(dir, sizeof dir, "%s/a/b", root);
    snprintf(path, sizeof path, "%s/out.log", dir);
    handler = worker_handler_file_new(&context, path, 0, 0);
    S_CHECK(handler);
    zloop_set_max_timers(loop, 1);
    int blocker = zloop_timer(loop, 60000, 1, s_test_stop, NULL);
    S_CHECK(blocker > 0);
    S_CHECK(s_test_start(handler, "lost") == -1);
    zloop_timer_end(loop, blocker);
    zloop_set_max_timers(loop, 0);
    S_CHECK(s_test_start(handler, "kept") == 0);
    s_test_run(loop);
    S_CHECK(results.ok == 1 && results.retry == 0);
    s_test_read(path, text, sizeof text);
    S_CHECK(strcmp(text, "kept\n") == 0);
    worker_handler_destroy(&handler);

    // --file-max-bytes holds per line, within one batch: 5 + 5 bytes fit
    // in 12, the third line starts a new file, and a 21-byte line that
    // alone exceeds the limit gets a file of its own.
    snprintf(path, sizeof path, "%s/a/b/sized.log", root);
    handler = worker_handler_file_new(&context, path, 12, 0);
    S_CHECK(handler);
    results = (s_test_results_t){0};
    const char *bodies[] = {"aaaa", "bbbb", "cccc", "dddddddddddddddddddd"};
    for (size_t i = 0; i < 4; i++)
        S_CHECK(s_test_start(handler, bodies[i]) == 0);
    s_test_run(loop);
    S_CHECK(results.ok == 4);
    s_test_read(path, text, sizeof text);
    S_CHECK(strcmp(text, "dddddddddddddddddddd\n") == 0);
    size_t largest = 0, total = 0;
    S_CHECK(s_test_scan(dir, &largest, &total) == 4);  // out.log, two rotated, sized.log
    S_CHECK(total == 5 + 10 + 5 + 21 && largest == 21);
    S_CHECK(s_test_start(handler, "eeee") == 0);  // 21 + 5 > 12: rotate again
    s_test_run(loop);
    s_test_read(path, text, sizeof text);
    S_CHECK(results.ok == 5 && strcmp(text, "eeee\n") == 0);
    rc = 0;
failed:
    worker_handler_destroy(&handler);
    zloop_destroy(&loop);
    zdir_t *tree = zdir_new(root, NULL);
    if (tree)
        zdir_remove(tree, true);
    zdir_destroy(&tree);
    return rc;
}
