/*  fuzz_diskqueue - a disk queue opened and read over fuzzed segment and
    metadata files
    SPDX-License-Identifier: MIT

    Each run writes the input's files into a scratch directory, opens the
    queue (recovery: metadata checks, torn tails, recounts), reads every
    record, appends a marker, closes, opens again and reads on. Whatever
    the files held, a record written after recovery must come back exactly
    once after a restart, and a queue read to its end must hold nothing
    more: the "loses no data, never serves twice" promise of the disk
    queue, checked on damaged input.

    Input: [u8 flags][u16 LE metadata length][metadata bytes], then
    segments to the end, each [u8 number][u16 LE length][bytes] written as
    t.diskqueue.<number>.dat (numbers may repeat or leave gaps).
    flags bit 0: no metadata file (rebuilt from the segments); bit 1: read
    through broker_disk_get (the broker's message records) instead of
    nsq_diskqueue_get; bits 2-3: max_bytes_per_file 64, 256, 4096 or 1 MiB.
    Seeds: tests/fuzz/corpus/fuzz_diskqueue (made by seeds.py).
*/
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#include "broker_config.h"
#include "broker_disk.h"
#include "fuzz_support.h"
#include "nsq_diskqueue.h"
#include "nsq_message.h"

#define S_NAME         "t"
#define S_MAX_MSG_SIZE 1024
#define S_MARKER       "marker-record"

typedef struct {
    broker_config_t config;  // data path and sizes
    bool broker_records;     // read through broker_disk_get
    size_t file_bytes;       // bytes of all segments written
} s_run_t;

static nsq_diskqueue_t *s_open(s_run_t *run)
{
    if (run->broker_records)
        return broker_disk_open(&run->config, S_NAME, NULL, NULL, NULL);  // synchronous: no wake
    return nsq_diskqueue_new(run->config.data_path, S_NAME, run->config.max_bytes_per_file,
                             S_MAX_MSG_SIZE, 0);
}

// Pops one record: 1 with *is_marker set, 0 when empty, -1 on error.
static int s_get(s_run_t *run, nsq_diskqueue_t *queue, bool *is_marker)
{
    const void *data;
    size_t size;
    nsq_message_t *message = NULL;
    int rc;
    if (run->broker_records) {
        uint32_t attempts;
        int64_t ready_at;
        rc = broker_disk_get(queue, &message, &attempts, &ready_at, zclock_mono(),
                             run->config.max_req_timeout_ms);
        data = message ? message->body : NULL;
        size = message ? message->size : 0;
    } else {
        rc = nsq_diskqueue_get(queue, &data, &size);
    }
    if (rc == 1) {
        FUZZ_ASSERT(size <= S_MAX_MSG_SIZE);
        volatile uint8_t sum = 0;  // every byte must be readable (ASan)
        for (size_t i = 0; i < size; i++)
            sum += ((const uint8_t *) data)[i];
        (void) sum;
        *is_marker = size == strlen(S_MARKER) && memcmp(data, S_MARKER, size) == 0;
    }
    nsq_message_unref(&message);
    return rc;
}

// Reads until the queue is empty or fails. Returns the last get's result;
// *records and *markers count what came back.
static int s_drain(s_run_t *run, nsq_diskqueue_t *queue, size_t *records, size_t *markers)
{
    // Each record takes at least its 8-byte header on disk: more than that
    // means a record was served twice.
    size_t limit = run->file_bytes / NSQ_DISKQUEUE_HEADER_SIZE + 2;
    *records = *markers = 0;
    for (;;) {
        bool is_marker = false;
        int rc = s_get(run, queue, &is_marker);
        if (rc != 1)
            return rc;
        (*records)++;
        *markers += is_marker;
        FUZZ_ASSERT(*records <= limit);
    }
}

static void s_append_marker(s_run_t *run, nsq_diskqueue_t *queue)
{
    if (!run->broker_records) {
        FUZZ_ASSERT(nsq_diskqueue_put(queue, S_MARKER, strlen(S_MARKER)) == 0);
        return;
    }
    nsq_message_t *message = nsq_message_new(S_MARKER, strlen(S_MARKER));
    FUZZ_ASSERT(message != NULL);
    FUZZ_ASSERT(broker_disk_put(queue, message, 1, 0, zclock_mono()) == 0);
    nsq_message_unref(&message);
    run->file_bytes += BROKER_DISK_HEADER_SIZE;
}

static void s_write_files(s_run_t *run, fuzz_input_t *input, bool with_meta)
{
    const char *dir = run->config.data_path;
    size_t size;
    const uint8_t *meta = fuzz_bytes(input, fuzz_u16(input), &size);
    if (with_meta)
        fuzz_write_file(dir, S_NAME ".diskqueue.meta.dat", meta, size);
    while (fuzz_left(input) > 0) {
        char name[64];
        snprintf(name, sizeof name, S_NAME ".diskqueue.%06u.dat", fuzz_u8(input));
        const uint8_t *bytes = fuzz_bytes(input, fuzz_u16(input), &size);
        fuzz_write_file(dir, name, bytes, size);
        run->file_bytes += size;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t segment_sizes[] = {64, 256, 4096, 1 << 20};
    fuzz_setup_once();
    fuzz_input_t input;
    fuzz_input_init(&input, data, size);
    uint8_t flags = fuzz_u8(&input);
    s_run_t run = {.broker_records = flags & 2};
    broker_config_defaults(&run.config);
    snprintf(run.config.data_path, sizeof run.config.data_path, "%s", fuzz_scratch_dir());
    run.config.max_msg_size = S_MAX_MSG_SIZE - BROKER_DISK_HEADER_SIZE;
    run.config.max_bytes_per_file = segment_sizes[(flags >> 2) & 3];
    fuzz_clean_dir(run.config.data_path);
    s_write_files(&run, &input, !(flags & 1));

    nsq_diskqueue_t *queue = s_open(&run);
    if (!queue) {  // refusing to open is allowed (logged); crashing is not
        fuzz_clean_dir(run.config.data_path);
        return 0;
    }
    size_t records, markers;
    int first = s_drain(&run, queue, &records, &markers);
    if (first == 0)
        FUZZ_ASSERT(nsq_diskqueue_is_empty(queue) && nsq_diskqueue_depth(queue) == 0);
    s_append_marker(&run, queue);
    FUZZ_ASSERT(nsq_diskqueue_depth(queue) >= 1);
    nsq_diskqueue_destroy(&queue);

    // After a restart the marker comes back once; after a clean first
    // read, nothing else does.
    queue = s_open(&run);
    FUZZ_ASSERT(queue != NULL);
    int second = s_drain(&run, queue, &records, &markers);
    FUZZ_ASSERT(second == 0);
    FUZZ_ASSERT(markers >= 1);  // more only if the files held one too
    if (first == 0)
        FUZZ_ASSERT(records == 1 && markers == 1);
    FUZZ_ASSERT(nsq_diskqueue_is_empty(queue) && nsq_diskqueue_depth(queue) == 0);
    nsq_diskqueue_delete(&queue);
    fuzz_clean_dir(run.config.data_path);
    return 0;
}
