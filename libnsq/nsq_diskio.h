/*  nsq_diskio - a thread that does blocking file work (open, fdatasync,
    close, unlink, atomic replace, syncfs) for one owner loop thread and
    reports each completion back to it
    SPDX-License-Identifier: MIT

    A loop thread must not wait for the disk: an fdatasync takes 0.2 ms
    on a good day and tens of milliseconds on a bad one, and an open or
    rename can wait as long for the file system journal. The owner submits
    each such operation here instead and carries on; one actor thread
    performs the operations in submission order (so a later request sees
    the effects of every earlier one: an unlink submitted after an open
    removes the file the open created) and the owner's loop runs each
    completion's callback on the owner's own thread.

    Submitting costs one allocation and a mutex; no call waits for the
    disk or for the actor. Requests wait in a list; the actor is woken over
    its pipe only when that list was empty, and it tells the owner over the
    same pipe only when its list of finished requests was empty, so the
    pipe never holds more than one message each way, whatever the number of
    requests.

    The owner adds one reader to its zloop:
        zloop_reader(loop, nsq_diskio_sock(io), nsq_diskio_handle, io);
    or, outside a loop, calls nsq_diskio_dispatch (no waiting) or
    nsq_diskio_wait (blocks until every request is done). Callbacks run on
    the owner's thread, in submission order, and may submit new requests.

    Errors: a failed operation reports errno to its callback; the actor
    never logs and never retries. A submission fails only for want of
    memory (-1, ENOMEM): nothing is done and anything it would have taken
    (a descriptor) stays the caller's.

    Not thread-safe on the owner's side: one owner thread per actor. Every
    actor is independent (no process-global state): a process may run many.

    API in call order: nsq_diskio_new, nsq_diskio_sock + nsq_diskio_handle
    (or nsq_diskio_dispatch / nsq_diskio_wait), the requests
    (nsq_diskio_open, nsq_diskio_datasync, nsq_diskio_close,
    nsq_diskio_unlink, nsq_diskio_replace, nsq_diskio_syncfs,
    nsq_diskio_call), nsq_diskio_cancel, nsq_diskio_destroy. The blocking
    helpers nsq_diskio_replace_file and nsq_diskio_sync_dir do the same
    work on the caller's thread, for synchronous callers.
*/
#ifndef NSQ_DISKIO_H
#define NSQ_DISKIO_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _nsq_diskio_t nsq_diskio_t;

// The kinds of request (for nsq_diskio_fail_next and nsq_diskio_performed).
typedef enum {
    NSQ_DISKIO_OPEN,
    NSQ_DISKIO_DATASYNC,
    NSQ_DISKIO_CLOSE,
    NSQ_DISKIO_UNLINK,
    NSQ_DISKIO_REPLACE,
    NSQ_DISKIO_SYNCFS,
    NSQ_DISKIO_CALL,
    NSQ_DISKIO_KINDS  // how many kinds there are
} nsq_diskio_kind_t;

// A completion, on the owner's thread: result is the new descriptor for
// an open (the callback owns it), the function's return for a call, else
// 0; error is 0 on success, else the errno of the failure (result -1).
typedef void(nsq_diskio_done_fn)(void *arg, int result, int error);

// nsq_diskio_open option: if the file does not exist, create it (flags
// must hold O_CREAT) and fsync its directory, so that its name survives a
// crash before the request completes. A file that exists is opened with
// flags minus O_CREAT.
#define NSQ_DISKIO_CREATE_DURABLE 1u

// Starts the actor thread. Caller owns the result; NULL (errno) if the
// thread cannot start.
nsq_diskio_t *nsq_diskio_new(void);

// Waits for every request submitted (running the callbacks of those not
// cancelled, on the caller's thread, so what they point at must still
// exist), then stops the thread and frees the actor. Nulls *self_p.
void nsq_diskio_destroy(nsq_diskio_t **self_p);

// The socket the owner's loop watches for completions. Borrowed.
zsock_t *nsq_diskio_sock(nsq_diskio_t *self);

// zloop reader for nsq_diskio_sock (arg is the nsq_diskio_t): runs every
// completion that has arrived. Returns 0 (the loop goes on).
int nsq_diskio_handle(zloop_t *loop, zsock_t *reader, void *arg);

// Runs every completion that has arrived, without waiting. Returns how
// many ran.
size_t nsq_diskio_dispatch(nsq_diskio_t *self);

// Runs completions until no request is left (callbacks may submit more),
// or until timeout_ms passed (-1: no limit). Returns 0, or -1 with
// ETIMEDOUT. Blocks: for shutdown, tools and tests, not for a loop.
int nsq_diskio_wait(nsq_diskio_t *self, int timeout_ms);

// Requests submitted whose completion has not run yet.
size_t nsq_diskio_outstanding(const nsq_diskio_t *self);

// Opens path with flags (O_CLOEXEC added; mode 0644 when creating) and
// the options above. The descriptor goes to done, which owns it. Returns
// 0, or -1 (ENOMEM).
int nsq_diskio_open(nsq_diskio_t *self, const char *path, int flags, unsigned options,
                    nsq_diskio_done_fn *done, void *arg);

// fdatasyncs fd, then closes it if close_fd (ownership passes now, also
// when the sync fails). done may be NULL. Returns 0, or -1 (ENOMEM: fd
// stays the caller's).
int nsq_diskio_datasync(nsq_diskio_t *self, int fd, bool close_fd, nsq_diskio_done_fn *done,
                        void *arg);

// Closes fd (ownership passes). done may be NULL. Returns 0, or -1 (ENOMEM:
// fd stays the caller's).
int nsq_diskio_close(nsq_diskio_t *self, int fd, nsq_diskio_done_fn *done, void *arg);

// Unlinks path (ENOENT is reported like any error). done may be NULL.
int nsq_diskio_unlink(nsq_diskio_t *self, const char *path, nsq_diskio_done_fn *done, void *arg);

// Replaces path with the size bytes of data (copied now), atomically: as
// nsq_diskio_replace_file. done may be NULL. Returns 0, or -1 (ENOMEM).
int nsq_diskio_replace(nsq_diskio_t *self, const char *path, const void *data, size_t size,
                       bool durable, nsq_diskio_done_fn *done, void *arg);

// syncfs(2) of the file system holding path (a directory or file): one
// call that syncs many queues' files at shutdown. done may be NULL.
int nsq_diskio_syncfs(nsq_diskio_t *self, const char *path, nsq_diskio_done_fn *done, void *arg);

// Runs fn(job) on the actor thread; its return (or -1 and errno) goes to
// done. fn may block; job must not be touched by the owner until done
// runs. Returns 0, or -1 (ENOMEM).
int nsq_diskio_call(nsq_diskio_t *self, int (*fn)(void *job), void *job, nsq_diskio_done_fn *done,
                    void *arg);

// While deferred, opens submitted with NSQ_DISKIO_CREATE_DURABLE skip the
// directory fsync: for a shutdown that syncs the whole file system
// (nsq_diskio_syncfs) before it relies on the new names. Owner's thread.
void nsq_diskio_defer_dir_syncs(nsq_diskio_t *self, bool deferred);

// The callbacks of every outstanding request submitted with arg will not
// run; the requests still happen (a descriptor a cancelled open returns
// is closed by the actor).
void nsq_diskio_cancel(nsq_diskio_t *self, void *arg);

// Blocking, on the caller's thread: writes data to path + ".tmp", with
// durable fdatasyncs it, renames it over path and fsyncs the directory.
// Returns 0, or -1 with errno (the temporary file is removed).
int nsq_diskio_replace_file(const char *path, const void *data, size_t size, bool durable);

// Blocking: fsyncs the directory holding path (path itself if it is a
// directory). Returns 0, or -1 with errno.
int nsq_diskio_sync_dir(const char *path);

// For tests: the next request of kind fails with error instead of being
// performed (a datasync with close_fd still closes).
void nsq_diskio_fail_next(nsq_diskio_t *self, nsq_diskio_kind_t kind, int error);

// For tests: while held, the actor starts no request (those submitted
// wait), so a test can look at what its owner does in the meantime.
void nsq_diskio_hold(nsq_diskio_t *self, bool held);

// For tests: requests of kind the actor has performed (or failed).
uint64_t nsq_diskio_performed(nsq_diskio_t *self, nsq_diskio_kind_t kind);

// For tests: descriptors this process has open (from /proc/self/fd).
int nsq_diskio_open_fds(void);

// Self-test; returns 0 on success.
int nsq_diskio_test(void);

#endif
