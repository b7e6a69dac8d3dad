/*  broker_config - the broker's settings, filled once from the options table
    SPDX-License-Identifier: MIT

    Only the defaults live here; parsing and bounds belong to the options
    table in main.c. Defaults follow nsqd's where nsqd has one.
*/
#include "broker_config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void broker_config_defaults(broker_config_t *self)
{
    memset(self, 0, sizeof(*self));
    snprintf(self->http_address, sizeof(self->http_address), "0.0.0.0:4151");
    snprintf(self->zmq_address, sizeof(self->zmq_address), "0.0.0.0:4152");
    // What others dial defaults to our hostname, as in nsqd
    if (gethostname(self->broadcast_address, sizeof(self->broadcast_address) - 1) != 0
        || !self->broadcast_address[0])
        snprintf(self->broadcast_address, sizeof(self->broadcast_address), "localhost");
    snprintf(self->data_path, sizeof(self->data_path), ".");
    self->mem_queue_size = 10000;
    // 16 MiB: the count binds first for bodies up to ~1.6 KB (NSQ's
    // behaviour is kept for small messages), a queue of 1 MiB bodies holds
    // 16 of them instead of 10000, and a whole --max-body-size /mpub fits
    // in an empty memory-only queue.
    self->mem_queue_bytes = 16 * 1024 * 1024;
    self->max_bytes_per_file = 104857600;
    self->sync_every = 2500;
    self->sync_timeout_ms = 2000;
    self->msg_timeout_ms = 60000;
    self->max_msg_timeout_ms = 900000;
    self->max_req_timeout_ms = 3600000;
    self->max_msg_size = 1048576;
    self->max_body_size = 5242880;
    self->max_rdy_count = 2500;
    self->heartbeat_interval_ms = 30000;
    self->max_heartbeat_interval_ms = 60000;
    self->drain_timeout_ms = 2000;
    self->node_id = 0;
    self->http_threads = 2;
    self->lookupd_heartbeat_ms = 15000;
}

void broker_config_for_test(broker_config_t *self, const char *data_path, int64_t mem_queue_size,
                            int64_t mem_queue_bytes)
{
    broker_config_defaults(self);
    snprintf(self->data_path, sizeof(self->data_path), "%s", data_path);
    if (mem_queue_size)
        self->mem_queue_size = mem_queue_size;
    if (mem_queue_bytes)
        self->mem_queue_bytes = mem_queue_bytes;
}
