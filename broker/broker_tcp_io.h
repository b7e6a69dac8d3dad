/*  broker_tcp_io - the NSQ TCP door's I/O thread: listener, epoll, every
    client connection, and the hand-off to and from the core
    SPDX-License-Identifier: MIT

    Why a thread of its own, not a ZMQ_STREAM socket in the core's loop:
    the work per byte (TLS records, inflate and deflate, snappy, parsing,
    copying bodies into messages) would otherwise run on the core thread,
    which owns every topic and channel and must never wait; a ZMQ_STREAM
    socket also hides the per-connection socket (no TLS library on it
    without re-implementing its transport in user space, no way to see how
    much a client has not read, no TCP_NODELAY, and its high-water mark
    drops frames instead of telling us). One thread with epoll keeps every
    socket non-blocking, bounds what each client may hold (see
    broker_tcp_connection) and costs the core one eventfd wake-up per batch,
    as the HTTP threads' hand-off does.

    Hand-off, both ways in batches:
    - I/O -> core: events (OPENED, SECURED, RECEIVED with the command,
      BLOCKED, UNBLOCKED, CLOSED) on a mutex-guarded list; an eventfd
      (broker_tcp_io_fd, for zloop) becomes readable when the list is not
      empty; the core takes the whole list (broker_tcp_io_take). A client's
      events arrive in the order it sent its commands.
    - core -> I/O: posts (frame bytes + commands finished + flags) staged by
      broker_tcp_io_post without locking, handed over by one
      broker_tcp_io_commit per batch (one wake-up of the I/O thread).
      A post that accepts an IDENTIFY must carry only the answers to the
      commands before it (the reply and the upgrades follow its bytes);
      start a new post for what comes after.

    No process-global state: two instances in one process work.

    API in call order: broker_tcp_io_new, broker_tcp_io_port,
    broker_tcp_io_fd, broker_tcp_io_take, broker_tcp_io_post,
    broker_tcp_io_commit, broker_tcp_io_destroy.
*/
#ifndef BROKER_TCP_IO_H
#define BROKER_TCP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_buffer.h"
#include "broker_tcp_connection.h"
#include "broker_tcp_identify.h"
#include "broker_tls.h"

typedef struct _broker_tcp_io_t broker_tcp_io_t;

// Binds address ("host:port", "[v6]:port"; port 0 = any free port) and
// starts the I/O thread. settings is copied; tls (may be NULL: no TLS
// offered) is borrowed and must outlive the I/O thread. Caller owns the
// result; NULL with a one-line reason in error (size bytes) if the address
// is bad, cannot be bound, or a thread or descriptor cannot be had.
broker_tcp_io_t *broker_tcp_io_new(const char *address, const broker_tcp_settings_t *settings,
                                   const broker_tls_t *tls, char *error, size_t size);

// Stops the thread, closes every connection (no CLOSED events are taken
// any more: the core is going too) and frees what waits in both
// directions. Nulls *self_p; accepts NULL.
void broker_tcp_io_destroy(broker_tcp_io_t **self_p);

// The bound port.
uint16_t broker_tcp_io_port(const broker_tcp_io_t *self);

// The eventfd that is readable while events wait (for zloop or poll).
int broker_tcp_io_fd(const broker_tcp_io_t *self);

// Core: takes every waiting event, oldest first, linked by ->next (NULL
// if none) and resets the eventfd. Caller destroys each event.
broker_tcp_event_t *broker_tcp_io_take(broker_tcp_io_t *self);

// Core: stages a post for connection: *bytes (whole frames, may be NULL;
// ownership moves, *bytes is nulled), done (its commands finished since
// the last post), flags (BROKER_TCP_POST_*). A post for a connection that
// is gone is dropped. Returns 0, or -1 if out of memory (nothing staged,
// *bytes freed: the caller should drop the session, whose client is now
// out of step).
int broker_tcp_io_post(broker_tcp_io_t *self, uint64_t connection, broker_buffer_t **bytes,
                       unsigned flags, uint32_t done);

// Core: hands the staged posts to the I/O thread and wakes it.
void broker_tcp_io_commit(broker_tcp_io_t *self);

// Connections open now (any thread; for /metrics).
size_t broker_tcp_io_connections(const broker_tcp_io_t *self);

// Self-test; returns 0 on success.
int broker_tcp_io_test(void);

#endif
