/*  nsq_consumer_run - running the consumer's zloop: run, poll, stop, close
    SPDX-License-Identifier: MIT

    Everything the consumer does happens in callbacks of its zloop
    (nsq_consumer_loop), run on the caller's thread by nsq_consumer_run
    (until stopped or zsys_interrupted), nsq_consumer_poll (until a
    delivery or the timeout) or nsq_consumer_close (until drained or the
    timeout). A stop request sets break_requested, which the reader checks
    between frames; outside a read a zero-delay timer ends the loop at the
    next pass. Settles made outside a read are flushed by another
    zero-delay timer, so a fast consumer still sends one frame per batch.

    Closing: credit 0 (RDY 0) and CLS on every connection, no more
    reconnects; then the loop runs (also after SIGINT) until every
    handed-out message is settled and every broker answered CLS, or the
    timeout passes.

    The zloop is primed once at creation (consumer_loop_prime) so that
    zloop_timer_end removes timers at once.
*/
#include "nsq_consumer_internal.h"

#include <stdint.h>

// ---- the loop ----------------------------------------------------------------------

static int s_flush_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    nsq_consumer_t *self = arg;
    self->flush_timer = 0;
    consumer_flush_all(self);
    return 0;
}

static int s_break_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    nsq_consumer_t *self = arg;
    self->break_requested = true;
    return -1;
}

void consumer_schedule_flush(nsq_consumer_t *self)
{
    if (!self->reading && !self->flush_timer)
        self->flush_timer = zloop_timer(self->loop, 0, 1, s_flush_timer, self);
    if (self->flush_timer < 0)
        self->flush_timer = 0;
}

// Makes the running loop return after the current event.
static void s_request_break(nsq_consumer_t *self)
{
    self->break_requested = true;
    if (!self->reading && !self->break_timer)
        self->break_timer = zloop_timer(self->loop, 0, 1, s_break_timer, self);
    if (self->break_timer < 0)
        self->break_timer = 0;
}

static void s_loop_enter(nsq_consumer_t *self)
{
    if (self->break_timer)
        zloop_timer_end(self->loop, self->break_timer);
    self->break_timer = 0;
    self->break_requested = false;
}

static void s_loop_leave(nsq_consumer_t *self)
{
    s_loop_enter(self);
    consumer_flush_all(self);
}

// Runs the loop until a break, zsys_interrupted (unless draining), or
// timeout_ms (< 0: no timeout).
static void s_run(nsq_consumer_t *self, int64_t timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    s_loop_enter(self);
    while (!self->break_requested) {
        int64_t left = deadline - zclock_mono();
        if (left < 0 || (zsys_interrupted && !self->draining))
            break;
        int timer = 0;
        if (deadline != INT64_MAX)
            timer = zloop_timer(self->loop, (size_t) left, 1, s_break_timer, self);
        int rc = zloop_start(self->loop);
        if (timer > 0)
            zloop_timer_end(self->loop, timer);
        if (rc == -1)
            break;  // a handler, ours or the caller's, ended the loop
    }
    s_loop_leave(self);
}

void consumer_loop_prime(nsq_consumer_t *self)
{
    int timer = zloop_timer(self->loop, 0, 1, s_break_timer, self);
    zloop_start(self->loop);
    zloop_timer_end(self->loop, timer);
}

// ---- running ---------------------------------------------------------------------

zloop_t *nsq_consumer_loop(nsq_consumer_t *self)
{
    return self->loop;
}

int nsq_consumer_run(nsq_consumer_t *self)
{
    s_run(self, -1);
    return 0;
}

int nsq_consumer_poll(nsq_consumer_t *self, int timeout_ms)
{
    self->polling = true;
    s_run(self, timeout_ms);
    self->polling = false;
    return 0;
}

void nsq_consumer_stop(nsq_consumer_t *self)
{
    s_request_break(self);
}

// ---- closing ---------------------------------------------------------------------

// True once nothing handed out is unsettled and no broker will send more:
// each connection answered CLS, or has no socket or no subscription yet.
static bool s_drained(nsq_consumer_t *self)
{
    if (self->unsettled.count)
        return false;
    for (size_t i = 0; i < self->connection_count; i++) {
        nsq_connection_t *conn = self->connections[i];
        if (nsq_connection_is_ready(conn) && !nsq_connection_close_waited(conn))
            return false;
    }
    return true;
}

void consumer_check_drained(nsq_consumer_t *self)
{
    if (self->draining && !self->break_requested && s_drained(self))
        s_request_break(self);
}

int nsq_consumer_close(nsq_consumer_t *self, int timeout_ms)
{
    if (!self->closing) {
        self->closing = true;
        consumer_credit_update(self);
        for (size_t i = 0; i < self->connection_count; i++)
            nsq_connection_cls(self->connections[i]);
    }
    consumer_flush_all(self);
    if (!s_drained(self)) {
        self->draining = true;
        zloop_set_nonstop(self->loop, true);
        s_run(self, timeout_ms < 0 ? 0 : timeout_ms);
        zloop_set_nonstop(self->loop, false);
        self->draining = false;
    }
    return self->unsettled.count ? -1 : 0;
}
