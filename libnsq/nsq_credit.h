/*  nsq_credit - how a consumer's max_in_flight becomes one RDY per connection
    SPDX-License-Identifier: MIT

    A pure function, so the policy can be tested without sockets:
    - even shares, the remainder to the first connections (10 over 3
      brokers: 4, 3, 3), each capped by its broker's max_rdy_count;
    - scarce credit (fewer credits than connections): RDY 1 on
      max_in_flight of them, RDY 0 on the rest. The caller advances a
      rotation now and then (nsq_credit_rotate) so that every connection
      gets its turn, as go-nsq does; otherwise a broker could hold
      messages nobody asks for.
    Every connection counts, connected or not: a broker that comes back
    finds its share waiting.

    API: nsq_credit_split, nsq_credit_is_scarce, nsq_credit_rotate.
*/
#ifndef NSQ_CREDIT_H
#define NSQ_CREDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// One connection as the split sees it.
typedef struct {
    uint32_t max_rdy;  // in: the broker's max_rdy_count; no RDY goes above it
    uint32_t rdy;      // out: what the connection should announce
} nsq_credit_slot_t;

// Sets slots[i].rdy for count connections sharing max_in_flight (0 pauses
// every connection). rotation picks which connections get RDY 1 when
// credit is scarce; it is ignored otherwise.
void nsq_credit_split(uint32_t max_in_flight, size_t rotation, nsq_credit_slot_t *slots,
                      size_t count);

// True if max_in_flight cannot give every one of count connections a
// credit (so RDY 1 rotates). False for 0 (paused).
bool nsq_credit_is_scarce(uint32_t max_in_flight, size_t count);

// The rotation after rotation: the next max_in_flight connections get the
// credit.
size_t nsq_credit_rotate(size_t rotation, uint32_t max_in_flight);

// Self-test; returns 0 on success.
int nsq_credit_test(void);

#endif
