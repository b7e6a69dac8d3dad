/*  worker_backoff - exponential backoff with jitter after handler failures
    SPDX-License-Identifier: MIT

    See worker_backoff.h. The jitter comes from a xorshift generator seeded
    per instance, so workers started together do not probe in lockstep.
*/
#include "worker_backoff.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define S_LEVEL_MAX 30  // 2^30 * base is beyond any sane cap

struct _worker_backoff_t {
    int64_t base_ms;  // first pause before jitter, 0 = disabled
    int64_t max_ms;   // longest pause
    int level;        // 0 = normal
    int64_t until;    // end of the current pause (ms), 0 if none started
    uint64_t random;  // xorshift state, never 0
};

worker_backoff_t *worker_backoff_new(int64_t base_ms, int64_t max_ms)
{
    worker_backoff_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base_ms = base_ms < 0 ? 0 : base_ms;
    self->max_ms = max_ms < self->base_ms ? self->base_ms : max_ms;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    self->random = ((uint64_t) now.tv_nsec << 20) ^ (uint64_t) getpid() ^ 0x9e3779b97f4a7c15ull;
    return self;
}

void worker_backoff_destroy(worker_backoff_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static uint64_t s_next_random(worker_backoff_t *self)
{
    uint64_t x = self->random;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self->random = x;
    return x;
}

// The pause for the current level: the capped exponential, minus up to half.
static int64_t s_pause_ms(worker_backoff_t *self)
{
    int64_t pause = self->base_ms;
    for (int i = 1; i < self->level && pause < self->max_ms; i++)
        pause *= 2;
    if (pause > self->max_ms)
        pause = self->max_ms;
    int64_t jitter = pause / 2 ? (int64_t) (s_next_random(self) % (uint64_t) (pause / 2 + 1)) : 0;
    return pause - jitter;
}

bool worker_backoff_failure(worker_backoff_t *self, int64_t now)
{
    if (self->base_ms == 0 || (self->level > 0 && now < self->until))
        return false;
    if (self->level < S_LEVEL_MAX)
        self->level++;
    self->until = now + s_pause_ms(self);
    return true;
}

void worker_backoff_success(worker_backoff_t *self, int64_t now)
{
    if (self->level > 0 && now >= self->until)
        self->level--;
    if (self->level == 0)
        self->until = 0;
}

uint32_t worker_backoff_credit(worker_backoff_t *self, uint32_t full, int64_t now)
{
    if (self->level == 0)
        return full;
    if (now < self->until)
        return 0;
    return full ? 1 : 0;
}

int worker_backoff_level(worker_backoff_t *self)
{
    return self->level;
}

int64_t worker_backoff_until(worker_backoff_t *self)
{
    return self->level ? self->until : 0;
}

int worker_backoff_test(void)
{
    worker_backoff_t *self = worker_backoff_new(100, 1000);
    if (!self)
        return -1;
    int failed = 0;
    failed |= worker_backoff_credit(self, 50, 0) != 50;
    failed |= !worker_backoff_failure(self, 1000);  // level 1: pause 50..100 ms
    failed |= worker_backoff_credit(self, 50, 1000) != 0;
    failed |= worker_backoff_until(self) < 1050 || worker_backoff_until(self) > 1100;
    failed |= worker_backoff_failure(self, 1001);  // in flight before the pause: ignored
    failed |= worker_backoff_level(self) != 1;
    failed |= worker_backoff_credit(self, 50, 1100) != 1;  // probing
    failed |= !worker_backoff_failure(self, 1100);         // probe failed: level 2
    failed |= worker_backoff_until(self) < 1200 || worker_backoff_until(self) > 1300;
    for (int i = 0; i < 10; i++)  // the cap holds: at most 1000 ms
        worker_backoff_failure(self, worker_backoff_until(self));
    int64_t start = worker_backoff_until(self);
    worker_backoff_failure(self, start);
    failed |= worker_backoff_until(self) - start > 1000 || worker_backoff_until(self) - start < 500;
    int level = worker_backoff_level(self);
    worker_backoff_success(self, worker_backoff_until(self));
    failed |= worker_backoff_level(self) != level - 1;
    while (worker_backoff_level(self) > 0)
        worker_backoff_success(self, INT64_MAX / 2);
    failed |= worker_backoff_credit(self, 50, INT64_MAX / 2) != 50;
    worker_backoff_destroy(&self);
    worker_backoff_t *off = worker_backoff_new(0, 0);  // disabled
    failed |= !off || worker_backoff_failure(off, 5) || worker_backoff_credit(off, 9, 5) != 9;
    worker_backoff_destroy(&off);
    worker_backoff_destroy(&off);
    return failed ? -1 : 0;
}
