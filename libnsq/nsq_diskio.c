/*  nsq_diskio - a thread that does blocking file work for one owner loop
    thread and reports each completion back to it
    SPDX-License-Identifier: MIT

    A request lives in two lists at once:
    - the owner's list of outstanding requests (owner_prev/owner_next),
      touched only by the owner's thread: cancel walks it, a completion
      leaves it;
    - the shared FIFO (next): submitted -> the actor takes the whole list
      -> performs each -> finished -> the owner takes the whole list. Both
      shared lists and the two "a message is on its way" flags sit under
      one mutex.
    The actor reads a request's input fields and writes result and error;
    the owner reads those only after taking the request from the finished
    list (the mutex orders the two) and alone writes done and arg.
*/
#include "nsq_diskio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct _request_t request_t;

struct _request_t {
    request_t *next;           // shared FIFO (submitted or finished), under the mutex
    request_t *owner_prev;     // owner's outstanding list
    request_t *owner_next;     // owner's outstanding list
    nsq_diskio_kind_t kind;    // what to do
    nsq_diskio_done_fn *done;  // completion, NULL once cancelled (owner only)
    void *arg;                 // its argument (owner only)
    int fd;                    // datasync, close: the descriptor
    int flags;                 // open: flags; datasync: close after; replace: durable
    unsigned options;          // open: NSQ_DISKIO_* options
    int (*fn)(void *job);      // call: the function
    void *job;                 // call: its argument
    size_t size;               // replace: bytes of data
    int result;                // descriptor, function return or 0; -1 on failure
    int error;                 // errno of the failure, else 0
    char *path;                // open, unlink, replace, syncfs (points into text)
    uint8_t *data;             // replace: the bytes (points into text)
    char text[];               // path, NUL, then data
};

// The state both threads share, under mutex.
typedef struct {
    pthread_mutex_t mutex;                 // guards everything below
    pthread_cond_t resumed;                // signalled when held goes false
    request_t *submitted;                  // waiting for the actor, oldest first
    request_t **submitted_tail;            // where the next one goes
    request_t *finished;                   // waiting for the owner, oldest first
    request_t **finished_tail;             // where the next one goes
    bool actor_woken;                      // a wake-up is on its way to the actor
    bool owner_told;                       // a "finished" message is on its way to the owner
    bool held;                             // tests: the actor starts nothing
    int fail_next[NSQ_DISKIO_KINDS];       // tests: errno for the next request of a kind
    uint64_t performed[NSQ_DISKIO_KINDS];  // tests: requests done per kind
} shared_t;

struct _nsq_diskio_t {
    zactor_t *actor;          // the thread; its pipe carries the wake-ups
    shared_t shared;          // lists shared with the thread
    request_t *outstanding;   // owner's list, any order
    size_t count;             // entries in outstanding
    bool dir_syncs_deferred;  // creates skip their directory fsync (a syncfs follows)
};

// ---- blocking helpers ----------------------------------------------------------

int nsq_diskio_sync_dir(const char *path)
{
    struct stat status;
    char dir[4096];
    if (stat(path, &status) == 0 && S_ISDIR(status.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
    } else {
        const char *slash = strrchr(path, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else
            snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int) (slash - path), path);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int nsq_diskio_replace_file(const char *path, const void *data, size_t size, bool durable)
{
    char temp[4096];
    if (snprintf(temp, sizeof temp, "%s.tmp", path) >= (int) sizeof temp)
        return errno = ENAMETOOLONG, -1;
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    errno = 0;
    if (write(fd, data, size) != (ssize_t) size || (durable && fdatasync(fd) != 0)) {
        int saved = errno ? errno : EIO;
        close(fd);
        unlink(temp);
        errno = saved;
        return -1;
    }
    close(fd);
    if (rename(temp, path) != 0 || (durable && nsq_diskio_sync_dir(path) != 0))
        return -1;
    return 0;
}

// ---- the actor thread ------------------------------------------------------------

static int s_open(request_t *request)
{
    int flags = request->flags | O_CLOEXEC;
    if (!(request->options & NSQ_DISKIO_CREATE_DURABLE))
        return open(request->path, flags, 0644);
    int fd = open(request->path, flags & ~O_CREAT, 0644);
    if (fd >= 0 || errno != ENOENT || !(flags & O_CREAT))
        return fd;
    fd = open(request->path, flags, 0644);
    if (fd >= 0 && nsq_diskio_sync_dir(request->path) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int s_syncfs(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = syncfs(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

// Performs one request, or the failure a test asked for.
static void s_perform(request_t *request, int injected)
{
    errno = 0;
    int rc = -1;
    if (injected) {
        errno = injected;
    } else {
        switch (request->kind) {
        case NSQ_DISKIO_OPEN:
            rc = s_open(request);
            break;
        case NSQ_DISKIO_DATASYNC:
            rc = fdatasync(request->fd);
            break;
        case NSQ_DISKIO_CLOSE:
            rc = close(request->fd);
            request->fd = -1;
            break;
        case NSQ_DISKIO_UNLINK:
            rc = unlink(request->path);
            break;
        case NSQ_DISKIO_REPLACE:
            rc = nsq_diskio_replace_file(request->path, request->data, request->size,
                                         request->flags);
            break;
        case NSQ_DISKIO_SYNCFS:
            rc = s_syncfs(request->path);
            break;
        default:  // NSQ_DISKIO_CALL
            rc = request->fn(request->job);
            break;
        }
    }
    request->error = rc < 0 ? (errno ? errno : EIO) : 0;
    request->result = rc < 0 ? -1 : rc;
    if (request->kind == NSQ_DISKIO_DATASYNC && request->flags)
        close(request->fd);
    if (request->kind == NSQ_DISKIO_CLOSE && request->fd >= 0)
        close(request->fd);  // an injected close failure still closes
}

// Performs every submitted request, telling the owner as they finish.
static void s_work(shared_t *shared, zsock_t *pipe)
{
    pthread_mutex_lock(&shared->mutex);
    request_t *batch = shared->submitted;
    shared->submitted = NULL;
    shared->submitted_tail = &shared->submitted;
    shared->actor_woken = false;
    pthread_mutex_unlock(&shared->mutex);
    while (batch) {
        request_t *request = batch;
        batch = request->next;
        request->next = NULL;
        pthread_mutex_lock(&shared->mutex);
        while (shared->held)
            pthread_cond_wait(&shared->resumed, &shared->mutex);
        int injected = shared->fail_next[request->kind];
        shared->fail_next[request->kind] = 0;
        pthread_mutex_unlock(&shared->mutex);
        s_perform(request, injected);
        pthread_mutex_lock(&shared->mutex);
        shared->performed[request->kind]++;
        *shared->finished_tail = request;
        shared->finished_tail = &request->next;
        bool tell = !shared->owner_told;
        shared->owner_told = true;
        pthread_mutex_unlock(&shared->mutex);
        if (tell)
            zmq_send(zsock_resolve(pipe), "", 0, 0);
    }
}

static void s_actor(zsock_t *pipe, void *args)
{
    shared_t *shared = args;
    zsock_signal(pipe, 0);
    while (true) {
        char *command = zstr_recv(pipe);
        bool stop = !command || streq(command, "$TERM");
        zstr_free(&command);
        if (stop)
            break;
        s_work(shared, pipe);
    }
}

// ---- the owner's side ------------------------------------------------------------

nsq_diskio_t *nsq_diskio_new(void)
{
    nsq_diskio_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init(&self->shared.mutex, NULL);
    pthread_cond_init(&self->shared.resumed, NULL);
    self->shared.submitted_tail = &self->shared.submitted;
    self->shared.finished_tail = &self->shared.finished;
    self->actor = zactor_new(s_actor, &self->shared);
    if (!self->actor) {
        pthread_cond_destroy(&self->shared.resumed);
        pthread_mutex_destroy(&self->shared.mutex);
        free(self);
        return NULL;
    }
    return self;
}

void nsq_diskio_destroy(nsq_diskio_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_diskio_t *self = *self_p;
    nsq_diskio_hold(self, false);
    nsq_diskio_wait(self, -1);
    zactor_destroy(&self->actor);
    pthread_cond_destroy(&self->shared.resumed);
    pthread_mutex_destroy(&self->shared.mutex);
    free(self);
    *self_p = NULL;
}

zsock_t *nsq_diskio_sock(nsq_diskio_t *self)
{
    return zactor_sock(self->actor);
}

size_t nsq_diskio_outstanding(const nsq_diskio_t *self)
{
    return self->count;
}

static void s_owner_unlink(nsq_diskio_t *self, request_t *request)
{
    if (request->owner_prev)
        request->owner_prev->owner_next = request->owner_next;
    else
        self->outstanding = request->owner_next;
    if (request->owner_next)
        request->owner_next->owner_prev = request->owner_prev;
    self->count--;
}

// Queues request for the actor and wakes it if it may be asleep. Returns
// 0, or -1 (the request is freed).
static int s_submit(nsq_diskio_t *self, request_t *request, nsq_diskio_done_fn *done, void *arg)
{
    request->done = done;
    request->arg = arg;
    shared_t *shared = &self->shared;
    pthread_mutex_lock(&shared->mutex);
    *shared->submitted_tail = request;
    shared->submitted_tail = &request->next;
    bool wake = !shared->actor_woken;
    shared->actor_woken = true;
    pthread_mutex_unlock(&shared->mutex);
    if (wake && zstr_send(self->actor, "W") != 0) {
        // The actor never saw the flag set: the list holds this request only.
        pthread_mutex_lock(&shared->mutex);
        shared->submitted = NULL;
        shared->submitted_tail = &shared->submitted;
        shared->actor_woken = false;
        pthread_mutex_unlock(&shared->mutex);
        free(request);
        return errno = ENOMEM, -1;
    }
    request->owner_next = self->outstanding;
    if (self->outstanding)
        self->outstanding->owner_prev = request;
    self->outstanding = request;
    self->count++;
    return 0;
}

// A new request of kind with room for path (may be NULL) and size bytes.
static request_t *s_request_new(nsq_diskio_kind_t kind, const char *path, const void *data,
                                size_t size)
{
    size_t path_size = path ? strlen(path) + 1 : 0;
    request_t *request = calloc(1, sizeof *request + path_size + size);
    if (!request)
        return NULL;
    request->kind = kind;
    request->fd = -1;
    if (path) {
        request->path = request->text;
        memcpy(request->path, path, path_size);
    }
    if (size) {
        request->data = (uint8_t *) request->text + path_size;
        memcpy(request->data, data, size);
        request->size = size;
    }
    return request;
}

int nsq_diskio_open(nsq_diskio_t *self, const char *path, int flags, unsigned options,
                    nsq_diskio_done_fn *done, void *arg)
{
    request_t *request = s_request_new(NSQ_DISKIO_OPEN, path, NULL, 0);
    if (!request)
        return -1;
    request->flags = flags;
    request->options = options;
    if (self->dir_syncs_deferred)
        request->options &= ~NSQ_DISKIO_CREATE_DURABLE;
    return s_submit(self, request, done, arg);
}

void nsq_diskio_defer_dir_syncs(nsq_diskio_t *self, bool deferred)
{
    self->dir_syncs_deferred = deferred;
}

int nsq_diskio_datasync(nsq_diskio_t *self, int fd, bool close_fd, nsq_diskio_done_fn *done,
                        void *arg)
{
    request_t *request = s_request_new(NSQ_DISKIO_DATASYNC, NULL, NULL, 0);
    if (!request)
        return -1;
    request->fd = fd;
    request->flags = close_fd;
    return s_submit(self, request, done, arg);
}

int nsq_diskio_close(nsq_diskio_t *self, int fd, nsq_diskio_done_fn *done, void *arg)
{
    request_t *request = s_request_new(NSQ_DISKIO_CLOSE, NULL, NULL, 0);
    if (!request)
        return -1;
    request->fd = fd;
    return s_submit(self, request, done, arg);
}

int nsq_diskio_unlink(nsq_diskio_t *self, const char *path, nsq_diskio_done_fn *done, void *arg)
{
    request_t *request = s_request_new(NSQ_DISKIO_UNLINK, path, NULL, 0);
    return request ? s_submit(self, request, done, arg) : -1;
}

int nsq_diskio_replace(nsq_diskio_t *self, const char *path, const void *data, size_t size,
                       bool durable, nsq_diskio_done_fn *done, void *arg)
{
    request_t *request = s_request_new(NSQ_DISKIO_REPLACE, path, data, size);
    if (!request)
        return -1;
    request->flags = durable;
    return s_submit(self, request, done, arg);
}

int nsq_diskio_syncfs(nsq_diskio_t *self, const char *path, nsq_diskio_done_fn *done, void *arg)
{
    request_t *request = s_request_new(NSQ_DISKIO_SYNCFS, path, NULL, 0);
    return request ? s_submit(self, request, done, arg) : -1;
}

int nsq_diskio_call(nsq_diskio_t *self, int (*fn)(void *job), void *job, nsq_diskio_done_fn *done,
                    void *arg)
{
    request_t *request = s_request_new(NSQ_DISKIO_CALL, NULL, NULL, 0);
    if (!request)
        return -1;
    request->fn = fn;
    request->job = job;
    return s_submit(self, request, done, arg);
}

void nsq_diskio_cancel(nsq_diskio_t *self, void *arg)
{
    for (request_t *request = self->outstanding; request; request = request->owner_next)
        if (request->arg == arg)
            request->done = NULL;
}

size_t nsq_diskio_dispatch(nsq_diskio_t *self)
{
    void *socket = zsock_resolve(nsq_diskio_sock(self));
    char byte;
    while (zmq_recv(socket, &byte, sizeof byte, ZMQ_DONTWAIT) >= 0)
        ;  // the wake-ups: the list below holds what they announced
    shared_t *shared = &self->shared;
    pthread_mutex_lock(&shared->mutex);
    request_t *batch = shared->finished;
    shared->finished = NULL;
    shared->finished_tail = &shared->finished;
    shared->owner_told = false;
    pthread_mutex_unlock(&shared->mutex);
    size_t ran = 0;
    while (batch) {
        request_t *request = batch;
        batch = request->next;
        s_owner_unlink(self, request);
        if (request->done) {
            request->done(request->arg, request->result, request->error);
        } else if (request->kind == NSQ_DISKIO_OPEN && request->result >= 0
                   && nsq_diskio_close(self, request->result, NULL, NULL) != 0) {
            close(request->result);  // no memory to hand it over
        }
        free(request);
        ran++;
    }
    return ran;
}

int nsq_diskio_handle(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    (void) reader;
    nsq_diskio_dispatch(arg);
    return 0;
}

int nsq_diskio_wait(nsq_diskio_t *self, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono() + timeout_ms;
    zmq_pollitem_t item = {zsock_resolve(nsq_diskio_sock(self)), 0, ZMQ_POLLIN, 0};
    while (true) {
        nsq_diskio_dispatch(self);
        if (self->count == 0)
            return 0;
        long wait = deadline < 0 ? -1 : (long) (deadline - zclock_mono());
        if (deadline >= 0 && wait <= 0)
            return errno = ETIMEDOUT, -1;
        if (zmq_poll(&item, 1, wait) < 0 && errno != EINTR)
            return -1;
    }
}

// ---- test hooks ------------------------------------------------------------------

void nsq_diskio_fail_next(nsq_diskio_t *self, nsq_diskio_kind_t kind, int error)
{
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.fail_next[kind] = error;
    pthread_mutex_unlock(&self->shared.mutex);
}

void nsq_diskio_hold(nsq_diskio_t *self, bool held)
{
    pthread_mutex_lock(&self->shared.mutex);
    self->shared.held = held;
    pthread_cond_broadcast(&self->shared.resumed);
    pthread_mutex_unlock(&self->shared.mutex);
}

uint64_t nsq_diskio_performed(nsq_diskio_t *self, nsq_diskio_kind_t kind)
{
    pthread_mutex_lock(&self->shared.mutex);
    uint64_t count = self->shared.performed[kind];
    pthread_mutex_unlock(&self->shared.mutex);
    return count;
}
