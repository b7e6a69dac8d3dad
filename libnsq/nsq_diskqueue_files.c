/*  nsq_diskqueue_files - the disk queue's file operations, in either mode
    SPDX-License-Identifier: MIT

    Synchronous mode calls the system directly. Async mode turns each
    operation into a request to the queue's nsq_diskio actor, tagged with
    what it was for, and routes the completion back to the part of the
    queue that asked (writer, reader, sync, metadata, recovery) on the
    owner's thread. Every request is counted in outstanding, and each
    completion runs with the queue held busy, so a queue destroyed meanwhile
    is freed only after its last completion.

    Opens for writing ask the actor to fsync the directory when they
    create the file, so a new segment's name is durable before any commit
    can cover records in it.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsq_diskqueue_internal.h"
#include "nsq_log.h"

// What a request was for.
typedef enum {
    DQ_OPEN_WRITE,  // write segment or the next one
    DQ_OPEN_READ,   // read segment
    DQ_DATA_SYNC,   // fdatasync of a range
    DQ_META,        // metadata replacement
    DQ_CLOSE,       // a descriptor let go
    DQ_UNLINK,      // a finished segment (number) or metadata (-1)
    DQ_RECOVER,     // the recovery at open
} dq_op_t;

typedef struct {
    nsq_diskqueue_t *queue;  // who asked
    dq_op_t op;              // for what
    int64_t number;          // segment number, or -1
    dq_range_t *range;       // data sync: its range
    void *job;               // recovery: its job
} dq_request_t;

int dq_open_segment(const nsq_diskqueue_t *self, int64_t number, int flags)
{
    char path[DQ_PATH_MAX];
    dq_segment_path(self, number, path);
    return open(path, flags | O_CLOEXEC, 0644);
}

int64_t dq_file_size(int fd)
{
    struct stat status;
    return fstat(fd, &status) == 0 ? (int64_t) status.st_size : -1;
}

// An opened descriptor nobody wants any more (the queue is ending).
static void s_unwanted(nsq_diskqueue_t *self, dq_request_t *request, int fd)
{
    dq_close(self, fd);
    if (request->op == DQ_OPEN_WRITE && request->number > self->write_file
        && self->async->ending == DQ_CLOSING)
        dq_unlink_segment(self, request->number);  // created ahead, never written
}

static void s_completed(void *arg, int result, int error)
{
    dq_request_t *request = arg;
    nsq_diskqueue_t *self = request->queue;
    dq_async_t *async = self->async;
    async->outstanding--;
    dq_enter(self);
    bool ending = async->ending_started || async->ending == DQ_DELETING;
    switch (request->op) {
    case DQ_OPEN_WRITE:
    case DQ_OPEN_READ:
        if (ending && !error)
            s_unwanted(self, request, result);
        else if (request->op == DQ_OPEN_WRITE)
            dq_writer_opened(self, request->number, result, error);
        else
            dq_reader_opened(self, request->number, result, error);
        break;
    case DQ_DATA_SYNC:
        dq_data_synced(self, request->range, error);
        break;
    case DQ_META:
        dq_meta_replaced(self, error);
        break;
    case DQ_UNLINK:
        if (error && error != ENOENT && request->number >= 0)
            nsq_warn("diskqueue %s: cannot delete segment %lld: %s", self->name,
                     (long long) request->number, strerror(error));
        break;
    case DQ_RECOVER:
        dq_recovered(self, request->job, error);
        break;
    case DQ_CLOSE:
        break;
    }
    free(request);
    dq_leave(self);
}

// A request of self for op. NULL (ENOMEM) if memory ran out.
static dq_request_t *s_request(nsq_diskqueue_t *self, dq_op_t op, int64_t number)
{
    dq_request_t *request = calloc(1, sizeof *request);
    if (request)
        *request = (dq_request_t){self, op, number, NULL, NULL};
    return request;
}

// Counts a submission that returned rc; frees request if it failed.
static int s_submitted(nsq_diskqueue_t *self, dq_request_t *request, int rc)
{
    if (rc != 0) {
        int saved = errno;
        free(request);
        errno = saved;
        return -1;
    }
    self->async->outstanding++;
    return 0;
}

int dq_request_open(nsq_diskqueue_t *self, bool reader, int64_t number, int flags)
{
    char path[DQ_PATH_MAX];
    dq_segment_path(self, number, path);
    dq_request_t *request = s_request(self, reader ? DQ_OPEN_READ : DQ_OPEN_WRITE, number);
    if (!request)
        return -1;
    unsigned options = reader ? 0 : NSQ_DISKIO_CREATE_DURABLE;
    return s_submitted(
        self, request,
        nsq_diskio_open(self->async->diskio, path, flags, options, s_completed, request));
}

void dq_close(nsq_diskqueue_t *self, int fd)
{
    dq_request_t *request = self->async ? s_request(self, DQ_CLOSE, -1) : NULL;
    if (!request
        || s_submitted(self, request,
                       nsq_diskio_close(self->async->diskio, fd, s_completed, request))
               != 0)
        close(fd);  // synchronous mode, or no memory to hand it over
}

// Unlinks path (segment number, or -1 for the metadata) in either mode.
static void s_unlink(nsq_diskqueue_t *self, const char *path, int64_t number)
{
    if (!self->async) {
        if (unlink(path) != 0 && errno != ENOENT && number >= 0)
            nsq_warn("diskqueue %s: cannot delete %s: %s", self->name, path, strerror(errno));
        return;
    }
    dq_request_t *request = s_request(self, DQ_UNLINK, number);
    if (!request
        || s_submitted(self, request,
                       nsq_diskio_unlink(self->async->diskio, path, s_completed, request))
               != 0)
        nsq_warn("diskqueue %s: cannot hand the deletion of %s over: %s", self->name, path,
                 strerror(errno));
}

void dq_unlink_segment(nsq_diskqueue_t *self, int64_t number)
{
    char path[DQ_PATH_MAX];
    dq_segment_path(self, number, path);
    s_unlink(self, path, number);
}

void dq_unlink_meta(nsq_diskqueue_t *self)
{
    char path[DQ_PATH_MAX];
    dq_meta_path(self, path, "");
    s_unlink(self, path, -1);
    dq_meta_path(self, path, ".tmp");
    s_unlink(self, path, -1);
}

int dq_request_data_sync(nsq_diskqueue_t *self, int fd, dq_range_t *range)
{
    dq_request_t *request = s_request(self, DQ_DATA_SYNC, -1);
    if (!request)
        return -1;
    request->range = range;
    return s_submitted(self, request,
                       nsq_diskio_datasync(self->async->diskio, fd, true, s_completed, request));
}

int dq_request_meta(nsq_diskqueue_t *self, const char *text, size_t length, bool durable)
{
    char path[DQ_PATH_MAX];
    dq_meta_path(self, path, "");
    dq_request_t *request = s_request(self, DQ_META, -1);
    if (!request)
        return -1;
    return s_submitted(
        self, request,
        nsq_diskio_replace(self->async->diskio, path, text, length, durable, s_completed, request));
}

int dq_request_recover(nsq_diskqueue_t *self, int (*fn)(void *job), void *job)
{
    dq_request_t *request = s_request(self, DQ_RECOVER, -1);
    if (!request)
        return -1;
    request->job = job;
    return s_submitted(self, request,
                       nsq_diskio_call(self->async->diskio, fn, job, s_completed, request));
}
