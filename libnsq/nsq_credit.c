/*  nsq_credit - how a consumer's max_in_flight becomes one RDY per connection
    SPDX-License-Identifier: MIT

    Scarce credit: connection i holds slot (i - rotation) mod count, and
    slots 0 .. max_in_flight-1 get RDY 1. Advancing the rotation by
    max_in_flight hands the credit to the next connections in order, so
    over count rotations each connection holds it max_in_flight times.
*/
#include "nsq_credit.h"

#include <stdio.h>

void nsq_credit_split(uint32_t max_in_flight, size_t rotation, nsq_credit_slot_t *slots,
                      size_t count)
{
    for (size_t index = 0; index < count; index++) {
        uint32_t share;
        if (nsq_credit_is_scarce(max_in_flight, count)) {
            size_t slot = (index + count - rotation % count) % count;
            share = slot < max_in_flight ? 1 : 0;
        } else
            share = (uint32_t) (max_in_flight / count + (index < max_in_flight % count ? 1 : 0));
        slots[index].rdy = share < slots[index].max_rdy ? share : slots[index].max_rdy;
    }
}

bool nsq_credit_is_scarce(uint32_t max_in_flight, size_t count)
{
    return max_in_flight > 0 && max_in_flight < count;
}

size_t nsq_credit_rotate(size_t rotation, uint32_t max_in_flight)
{
    return rotation + max_in_flight;
}

// ---- self-test ---------------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "nsq_credit_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

#define S_COUNT_MAX 8

// Splits over count connections with room for 2500 each; fills rdy.
static void s_split(uint32_t max_in_flight, size_t rotation, size_t count, uint32_t *rdy)
{
    nsq_credit_slot_t slots[S_COUNT_MAX];
    for (size_t i = 0; i < count; i++)
        slots[i] = (nsq_credit_slot_t){.max_rdy = 2500, .rdy = 99};
    nsq_credit_split(max_in_flight, rotation, slots, count);
    for (size_t i = 0; i < count; i++)
        rdy[i] = slots[i].rdy;
}

// Over count rotations of scarce credit, every connection holds RDY 1 the
// same number of times, and never more credit is out than max_in_flight.
static int s_test_rotation(uint32_t max_in_flight, size_t count)
{
    size_t turns[S_COUNT_MAX] = {0};
    size_t rotation = 0;
    S_CHECK(nsq_credit_is_scarce(max_in_flight, count));
    for (size_t round = 0; round < count; round++) {
        uint32_t rdy[S_COUNT_MAX], total = 0;
        s_split(max_in_flight, rotation, count, rdy);
        for (size_t i = 0; i < count; i++) {
            S_CHECK(rdy[i] <= 1);
            turns[i] += rdy[i];
            total += rdy[i];
        }
        S_CHECK(total == max_in_flight);
        rotation = nsq_credit_rotate(rotation, max_in_flight);
    }
    for (size_t i = 0; i < count; i++)
        S_CHECK(turns[i] == max_in_flight);
    return 0;
}

int nsq_credit_test(void)
{
    uint32_t rdy[S_COUNT_MAX];
    // Even shares, the remainder to the first connections.
    s_split(10, 0, 3, rdy);
    S_CHECK(rdy[0] == 4 && rdy[1] == 3 && rdy[2] == 3);
    s_split(10, 0, 2, rdy);
    S_CHECK(rdy[0] == 5 && rdy[1] == 5);
    s_split(10, 7, 1, rdy);  // rotation matters only when scarce
    S_CHECK(rdy[0] == 10);
    // Scarce: RDY 1 on two of three, moving with the rotation.
    s_split(2, 0, 3, rdy);
    S_CHECK(rdy[0] == 1 && rdy[1] == 1 && rdy[2] == 0);
    s_split(2, 2, 3, rdy);
    S_CHECK(rdy[0] == 1 && rdy[1] == 0 && rdy[2] == 1);
    s_split(1, 0, 2, rdy);
    S_CHECK(rdy[0] == 1 && rdy[1] == 0);
    S_CHECK(s_test_rotation(1, 2) == 0 && s_test_rotation(2, 3) == 0 && s_test_rotation(2, 5) == 0
            && s_test_rotation(3, 8) == 0);
    // Paused (0, as while closing): nothing anywhere, and nothing scarce.
    s_split(0, 0, 3, rdy);
    S_CHECK(rdy[0] == 0 && rdy[1] == 0 && rdy[2] == 0);
    S_CHECK(!nsq_credit_is_scarce(0, 3) && !nsq_credit_is_scarce(3, 3));
    // The broker's max_rdy_count caps a share.
    nsq_credit_slot_t slots[2] = {{.max_rdy = 3}, {.max_rdy = 2500}};
    nsq_credit_split(100, 0, slots, 2);
    S_CHECK(slots[0].rdy == 3 && slots[1].rdy == 50);
    nsq_credit_split(5, 0, NULL, 0);  // no connection: nothing to do
    return 0;
}
