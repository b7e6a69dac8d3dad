/*  worker_drain - the worker's shutdown (see worker_drain.h)
    SPDX-License-Identifier: MIT

    Drain: the metrics say draining (/readyz 503), nsq_consumer_close
    sends RDY 0 and CLS and keeps the loop running so the handlers can
    finish. At the shutdown timeout the handler stops what is left and
    those messages are requeued with no delay, so another worker gets them
    at once; a last close (S_FINAL_FLUSH_MS) sends those REQs.

    After the drain the handler winds down (worker_handler_finish: the
    processes of --process read EOF and exit) while the loop runs, until
    it is finished or the shutdown deadline passes; destroy stops the rest.
    The loop is run with zloop_set_nonstop, as after SIGTERM zloop would
    not start otherwise.
*/
#include "worker_drain.h"

#include "nsq_log.h"

#include <czmq.h>

#define S_FINAL_FLUSH_MS 1000  // after the drain, to send the last REQs

static int s_on_wind_down(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    worker_drain_t *self = arg;
    return worker_handler_finished(self->handler) || zclock_mono() >= self->wind_down_until ? -1
                                                                                            : 0;
}

// After the drain: the handler winds down (processes read EOF and exit)
// while the loop runs, until it is finished or deadline passes, but at
// least S_FINAL_FLUSH_MS.
static void s_wind_down(worker_drain_t *self, int64_t deadline)
{
    worker_handler_finish(self->handler);
    if (worker_handler_finished(self->handler))
        return;
    int64_t least = zclock_mono() + S_FINAL_FLUSH_MS;
    self->wind_down_until = deadline > least ? deadline : least;
    zloop_t *loop = nsq_consumer_loop(self->consumer);
    int timer = zloop_timer(loop, 10, 0, s_on_wind_down, self);
    if (timer < 0)
        return;
    zloop_set_nonstop(loop, true);  // SIGTERM was seen: zloop would not start otherwise
    zloop_start(loop);
    zloop_set_nonstop(loop, false);
    zloop_timer_end(loop, timer);
}

void worker_drain(worker_drain_t *self)
{
    int64_t deadline = zclock_mono() + self->timeout_ms;
    self->draining = true;
    worker_metrics_set(self->metrics, WORKER_METRIC_DRAINING, 1);
    worker_metrics_set(self->metrics, WORKER_METRIC_CREDIT, 0);
    size_t running = nsq_consumer_in_flight(self->consumer);
    nsq_info("draining: %zu message(s) in flight, waiting up to %lld ms", running,
             (long long) self->timeout_ms);
    if (nsq_consumer_close(self->consumer, (int) self->timeout_ms)) {
        nsq_warn("shutdown timeout: stopping %zu handler(s) and requeueing their messages",
                 nsq_consumer_in_flight(self->consumer));
        self->aborting = true;
        worker_handler_abort_all(self->handler);
        if (nsq_consumer_close(self->consumer, S_FINAL_FLUSH_MS))
            nsq_warn("%zu message(s) still unsettled, the broker will requeue them",
                     nsq_consumer_in_flight(self->consumer));
    }
    s_wind_down(self, deadline);
}
