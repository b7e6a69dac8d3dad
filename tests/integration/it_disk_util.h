/*  it_disk_util - what the it_disk* cases share: data dirs, brokers on them,
    numbered bodies
    SPDX-License-Identifier: MIT

    The disk tests (it_disk, it_disk_durable, it_disk_limits) start brokers
    on data directories they make in the case's temporary directory, and
    publish bodies "m-NNNNNN" whose numbers tell what arrived. Each helper
    fails the case (IT_ASSERT) when it cannot do its job.
*/
#ifndef IT_DISK_UTIL_H
#define IT_DISK_UTIL_H

#include <stddef.h>

#include "harness.h"

// Makes a data directory in the case's temporary directory.
void disk_data_dir(char *dir, size_t size, const char *name);

// A broker on the data directory dir (--log-level=info) with up to two
// more flags (NULL for none).
it_broker_t *disk_start(const char *dir, const char *extra1, const char *extra2);

// Publishes bodies "m-NNNNNN" for numbers [first, first + count) with
// newline-separated /mpub in batches of 1000.
void disk_publish(it_broker_t *broker, const char *topic, int first, int count);

// The number in a "m-NNNNNN" body, or -1.
int disk_number(const it_delivery_t *delivery);

#endif
