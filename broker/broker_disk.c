/*  broker_disk - a broker message as a disk queue record, and where each
    topic's and channel's disk queue lives
    SPDX-License-Identifier: MIT
*/
#include "broker_disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "nsq_log.h"

// True if two more descriptors can be had now: the disk I/O thread
// creates the queue's first segment with both it and its directory open
// (the directory is fsynced, so the name survives a crash). Probed with
// eventfds, which touch no file system.
static bool s_descriptors_left(void)
{
    int first = eventfd(0, EFD_CLOEXEC);
    int second = first >= 0 ? eventfd(0, EFD_CLOEXEC) : -1;
    if (first >= 0)
        close(first);
    if (second < 0)
        return false;
    close(second);
    return true;
}

nsq_diskqueue_t *broker_disk_open(const broker_config_t *config, const char *topic,
                                  const char *channel, nsq_diskqueue_wake_fn *wake, void *arg)
{
    char name[2 * 65 + 2];
    snprintf(name, sizeof name, "%s%s%s", topic, channel ? ":" : "", channel ? channel : "");
    if (config->diskio && !s_descriptors_left())
        return NULL;
    nsq_diskqueue_config_t queue = {
        .dir = config->data_path,
        .name = name,
        .max_bytes_per_file = config->max_bytes_per_file,
        .max_msg_size = (uint32_t) config->max_msg_size + BROKER_DISK_HEADER_SIZE,
        // Durable: the group commit syncs (broker_sync); synchronous: never in put.
        .sync_every = config->diskio && !config->durable ? config->sync_every : 0,
        .listing = config->disk_listing,
        .diskio = config->diskio,
        .pending_max = config->test_disk_pending_max,
        .wake = wake,
        .wake_arg = arg,
    };
    return nsq_diskqueue_open(&queue);
}

int broker_disk_combine(nsq_diskqueue_t *queue, nsq_diskio_t *diskio, bool start, bool report,
                        uint64_t *put_count)
{
    if (!queue || !diskio)
        return 0;
    if (start) {
        nsq_diskqueue_combine(queue);
        return 0;
    }
    uint64_t unstored = 0;
    int rc = nsq_diskqueue_flush(queue, report ? &unstored : NULL);
    *put_count -= unstored < *put_count ? unstored : *put_count;
    return rc;
}

bool broker_disk_holds_some(const nsq_diskqueue_t *queue)
{
    return nsq_diskqueue_ready(queue) ? !nsq_diskqueue_is_empty(queue)
                                      : nsq_diskqueue_depth(queue) > 0;
}

static int64_t s_unix_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void s_put(uint8_t *out, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = (uint8_t) (value >> (8 * i));
}

static uint64_t s_get(const uint8_t *in, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value |= (uint64_t) in[i] << (8 * i);
    return value;
}

int broker_disk_put(nsq_diskqueue_t *queue, const nsq_message_t *message, uint32_t attempts,
                    int64_t ready_at, int64_t now)
{
    uint8_t header[BROKER_DISK_HEADER_SIZE];
    int64_t defer_until = ready_at > now ? s_unix_ms() + (ready_at - now) : 0;
    s_put(header, message->id, 8);
    s_put(header + 8, (uint64_t) message->timestamp, 8);
    s_put(header + 16, attempts, 4);
    s_put(header + 20, (uint64_t) defer_until, 8);
    struct iovec iov[2] = {{header, sizeof header}, {(void *) message->body, message->size}};
    return nsq_diskqueue_putv(queue, iov, message->size ? 2 : 1);
}

bool broker_disk_has_room(const nsq_diskqueue_t *queue, size_t count, uint64_t bytes)
{
    return nsq_diskqueue_has_room(queue, count, count * BROKER_DISK_HEADER_SIZE + (size_t) bytes);
}

int broker_disk_put_waiting(nsq_diskqueue_t *queue, nsq_diskio_t *diskio,
                            const nsq_message_t *message, uint32_t attempts, int64_t ready_at,
                            int64_t now)
{
    int rc = broker_disk_put(queue, message, attempts, ready_at, now);
    // EAGAIN: the pending buffer is full, and the writes that drain it are
    // running on the actor; once they are done the buffer has room, unless
    // a write failed (then the put answers that error).
    while (rc != 0 && errno == EAGAIN && diskio && nsq_diskio_outstanding(diskio) > 0) {
        if (nsq_diskio_wait(diskio, -1) != 0)
            return -1;
        rc = broker_disk_put(queue, message, attempts, ready_at, now);
    }
    return rc;
}

int broker_disk_get(nsq_diskqueue_t *queue, nsq_message_t **message, uint32_t *attempts,
                    int64_t *ready_at, int64_t now, int64_t max_wait_ms)
{
    const void *data;
    size_t size;
    int rc;
    while ((rc = nsq_diskqueue_get(queue, &data, &size)) == 1) {
        if (size >= BROKER_DISK_HEADER_SIZE)
            break;
        nsq_error("disk record of %zu bytes is too short for a message, skipped", size);
    }
    if (rc != 1)
        return rc;
    const uint8_t *bytes = data;
    *message = nsq_message_new(bytes + BROKER_DISK_HEADER_SIZE, size - BROKER_DISK_HEADER_SIZE);
    if (!*message)
        return errno = ENOMEM, -1;
    (*message)->id = s_get(bytes, 8);
    (*message)->timestamp = (int64_t) s_get(bytes + 8, 8);
    *attempts = (uint32_t) s_get(bytes + 16, 4);
    if (*attempts == UINT32_MAX)
        (*attempts)--;  // the next delivery's count must not wrap to 0
    int64_t defer_until = (int64_t) s_get(bytes + 20, 8), unix_now = s_unix_ms();
    // Compared before subtracting: any value is safe, the past is "now".
    int64_t wait = defer_until > unix_now ? defer_until - unix_now : 0;
    if (wait > max_wait_ms)
        wait = max_wait_ms > 0 ? max_wait_ms : 0;
    *ready_at = wait > 0 ? now + wait : 0;
    return 1;
}

// Appends a raw record: the header fields as given and a body "x".
static int s_test_put_raw(nsq_diskqueue_t *queue, uint32_t attempts, int64_t defer_until)
{
    uint8_t record[BROKER_DISK_HEADER_SIZE + 1];
    s_put(record, 7, 8);
    s_put(record + 8, (uint64_t) INT64_MIN, 8);
    s_put(record + 16, attempts, 4);
    s_put(record + 20, (uint64_t) defer_until, 8);
    record[BROKER_DISK_HEADER_SIZE] = 'x';
    return nsq_diskqueue_put(queue, record, sizeof record);
}

// Pops one message and returns its ready_at (-1 if none came).
static int64_t s_test_ready_at(nsq_diskqueue_t *queue, int64_t now, uint32_t *attempts)
{
    nsq_message_t *message = NULL;
    int64_t ready_at = -1;
    if (broker_disk_get(queue, &message, attempts, &ready_at, now, 3600000) != 1)
        return -1;
    nsq_message_unref(&message);
    return ready_at;
}

// Records whose header holds the extremes of every field (a damaged or
// crafted file): no overflow (UBSan), a deferral beyond the maximum waits
// the maximum, one in the past is due, attempts never wrap.
static int s_test_extremes(nsq_diskqueue_t *queue)
{
    const int64_t now = INT64_MAX / 4;
    const int64_t values[] = {INT64_MAX, INT64_MIN, INT64_MAX - 1, -1, 1};
    const int64_t expected[] = {now + 3600000, 0, now + 3600000, 0, 0};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++)
        if (s_test_put_raw(queue, UINT32_MAX, values[i]) != 0)
            return -1;
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        uint32_t attempts = 0;
        if (s_test_ready_at(queue, now, &attempts) != expected[i] || attempts + 1 == 0)
            return -1;
    }
    return 0;
}

int broker_disk_test(void)
{
    char dir[] = "/tmp/broker-disk-test-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    broker_config_t config;
    broker_config_for_test(&config, dir, 0, 0);
    nsq_diskqueue_t *queue = broker_disk_open(&config, "orders", "billing", NULL, NULL);
    nsq_message_t *message = nsq_message_new("hello", 5);
    int rc = -1;
    if (!queue || !message)
        goto done;
    message->id = 0x1122334455667788ULL;
    message->timestamp = 1700000000123456789LL;
    if (broker_disk_put(queue, message, 3, 1000 + 60000, 1000) != 0)
        goto done;
    nsq_message_t *back = NULL;
    uint32_t attempts = 0;
    int64_t ready_at = 0;
    if (broker_disk_get(queue, &back, &attempts, &ready_at, 5000, 3600000) != 1)
        goto done;
    // The defer survives as wall-clock time: about 60 s from the new "now".
    bool same = back->id == message->id && back->timestamp == message->timestamp && back->size == 5
                && memcmp(back->body, "hello", 5) == 0 && attempts == 3 && ready_at > 5000 + 59000
                && ready_at <= 5000 + 60000;
    nsq_message_unref(&back);
    if (same && broker_disk_get(queue, &back, &attempts, &ready_at, 5000, 3600000) == 0
        && s_test_extremes(queue) == 0)
        rc = 0;
done:
    nsq_message_unref(&message);
    nsq_diskqueue_delete(&queue);
    rmdir(dir);
    return rc;
}
