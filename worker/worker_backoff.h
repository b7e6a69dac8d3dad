/*  worker_backoff - exponential backoff with jitter after handler failures
    SPDX-License-Identifier: MIT

    A pure state machine (time is passed in), so it is tested without a
    broker. Level 0 is normal: full credit. A failure raises the level and
    pauses delivery (credit 0) for min(max, base * 2^(level-1)), shortened by
    a random jitter of up to half; then one probe message is let in (credit
    1). A probe that succeeds lowers the level (back to full credit at 0); a
    probe that fails raises it and pauses again. Results that arrive during a
    pause came from messages already in flight and change nothing, so a burst
    of failures costs one level, not max-in-flight levels.

    API in call order: worker_backoff_new, then per result
    worker_backoff_failure / worker_backoff_success, and whenever credit
    may change worker_backoff_credit; worker_backoff_destroy.
*/
#ifndef WORKER_BACKOFF_H
#define WORKER_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

typedef struct _worker_backoff_t worker_backoff_t;

// Creates a backoff with base_ms (0 disables backoff) and a cap of max_ms.
// NULL if out of memory. Caller owns the result.
worker_backoff_t *worker_backoff_new(int64_t base_ms, int64_t max_ms);

// Destroys and nulls *self_p; accepts NULL.
void worker_backoff_destroy(worker_backoff_t **self_p);

// Records a handler failure at now (ms). Returns true if it started a new
// pause.
bool worker_backoff_failure(worker_backoff_t *self, int64_t now);

// Records a handler success at now (ms).
void worker_backoff_success(worker_backoff_t *self, int64_t now);

// The credit to announce at now: full at level 0, 0 while paused, 1 while
// probing.
uint32_t worker_backoff_credit(worker_backoff_t *self, uint32_t full, int64_t now);

// The current level (0 = normal).
int worker_backoff_level(worker_backoff_t *self);

// When the current pause ends (ms), or 0 if not paused.
int64_t worker_backoff_until(worker_backoff_t *self);

// Self-test; returns 0 on success.
int worker_backoff_test(void);

#endif
