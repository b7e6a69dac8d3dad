/*  broker_disk - a broker message as a disk queue record, and where each
    topic's and channel's disk queue lives
    SPDX-License-Identifier: MIT

    Record: [u64 id][i64 timestamp ns][u32 attempts][i64 defer_until unix ms,
    0 = ready][body], integers little-endian. The defer deadline is stored
    as wall-clock time so that it survives a restart; in memory the broker
    keeps monotonic deadlines, and these functions convert.

    Files: the topic's queue is named after the topic, a channel's after
    "topic:channel" (names cannot contain ':'), in --data-path.

    With config.diskio set the queues run in async mode (nsq_diskqueue.h):
    the core thread only writes and reads the page cache, the disk I/O
    actor opens, syncs and removes the files. A queue still recovering
    holds, as far as the broker can tell, only what was put since it
    opened (broker_disk_holds_some): a topic created at run time then
    starts in memory instead of waiting on its first open.

    API: broker_disk_open, broker_disk_put, broker_disk_combine,
    broker_disk_get, broker_disk_holds_some.
*/
#ifndef BROKER_DISK_H
#define BROKER_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "broker_config.h"
#include "nsq_diskqueue.h"
#include "nsq_message.h"

// Bytes a record adds to the body.
#define BROKER_DISK_HEADER_SIZE 28

// Opens (or creates) the disk queue of topic, or of its channel when
// channel is not NULL, from config's disk_listing when there is one, in
// async mode over config->diskio when it is set; wake(queue, arg) then
// runs when a get that answered NSQ_DISKQUEUE_WAIT may be retried. Caller
// owns the result; NULL (errno: EMFILE...) on failure. Async mode opens
// files later, so it checks first that the two descriptors creating a
// segment takes are left (EMFILE): a queue that could not open its files
// would only gather records in memory.
nsq_diskqueue_t *broker_disk_open(const broker_config_t *config, const char *topic,
                                  const char *channel, nsq_diskqueue_wake_fn *wake, void *arg);

// True if the queue holds records (async: while it recovers, only those
// put since it opened count).
bool broker_disk_holds_some(const nsq_diskqueue_t *queue);

// Appends message with its attempts and monotonic ready_at (0 = now; now is
// monotonic ms). Returns 0, or -1 with errno (the queue is unchanged).
int broker_disk_put(nsq_diskqueue_t *queue, const nsq_message_t *message, uint32_t attempts,
                    int64_t ready_at, int64_t now);

// Between start and end, the puts to queue gather in one write
// (nsq_diskqueue_combine; nothing if queue is NULL or diskio is, as in
// sync mode). End with report set (a publish that answers its publisher):
// a failed write leaves what it could not write unstored, as failed puts
// would, and takes it off *put_count; without report (a pump of
// acknowledged messages) it waits for the next sync's retry. Returns 0, or
// -1 with errno if the write failed.
int broker_disk_combine(nsq_diskqueue_t *queue, nsq_diskio_t *diskio, bool start, bool report,
                        uint64_t *put_count);

// True if count messages of bytes body bytes in all would be taken by
// broker_disk_put now (async mode: the write buffer has room for them and
// the last write did not fail; false with errno that write's error then).
bool broker_disk_has_room(const nsq_diskqueue_t *queue, size_t count, uint64_t bytes);

// broker_disk_put for shutdown: in async mode a full pending buffer
// (EAGAIN) is drained first by waiting on diskio (blocks), then the put
// is tried again, so persisting a backlog larger than the buffer loses
// nothing. diskio may be NULL (sync mode). Returns as broker_disk_put.
int broker_disk_put_waiting(nsq_diskqueue_t *queue, nsq_diskio_t *diskio,
                            const nsq_message_t *message, uint32_t attempts, int64_t ready_at,
                            int64_t now);

// Pops the oldest message: returns 1 with *message (caller owns it),
// *attempts and *ready_at (monotonic, 0 = now), 0 if the queue is empty, -1
// on a read error, NSQ_DISKQUEUE_WAIT if nothing is readable yet (async). Records too short to be
// messages are skipped (logged). A record deferred further than max_wait_ms from now (a clock
// stepped back, a damaged record) waits max_wait_ms; nothing read is trusted before it is bounded.
int broker_disk_get(nsq_diskqueue_t *queue, nsq_message_t **message, uint32_t *attempts,
                    int64_t *ready_at, int64_t now, int64_t max_wait_ms);

// Self-test; returns 0 on success.
int broker_disk_test(void);

#endif
