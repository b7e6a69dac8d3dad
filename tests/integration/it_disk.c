/*  it_disk - disk spill-over and restarts with the real broker
    SPDX-License-Identifier: MIT

    What users rely on when a broker holds more than its memory or goes
    down: a backlog beyond --mem-queue-size survives SIGTERM (queued, in
    flight and deferred messages) and is delivered exactly once after a
    restart, and so does a memory backlog larger than the disk queue's
    write buffer; kill -9 loses nothing the page cache kept and the queue opens
    cleanly; a full disk answers 503 while consumers drain, and publishing
    recovers once space returns; a second broker cannot share a data path;
    a damaged record is skipped and the rest served; --mem-queue-bytes
    bounds the bodies a queue keeps in memory; an HTTP publish answered 200
    survives a SIGTERM that comes while publishing.
*/
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// Makes a data directory in the case's temporary directory.
static void s_data_dir(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "%s/%s", it_tmp_dir(), name);
    IT_ASSERT(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
}

static it_broker_t *s_start(const char *dir, const char *extra1, const char *extra2)
{
    char data_flag[1100];
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *flags[] = {data_flag, "--log-level=info", extra1, extra2, NULL};
    return it_broker_start(flags);
}

// Publishes bodies "m-NNNNNN" for numbers [first, first + count) with
// newline-separated /mpub in batches of 1000.
static void s_publish(it_broker_t *broker, const char *topic, int first, int count)
{
    char path[128];
    snprintf(path, sizeof path, "/mpub?topic=%s", topic);
    char *body = malloc(1000 * 9 + 1);  // sprintf adds a NUL
    IT_ASSERT(body, "out of memory");
    for (int start = first; start < first + count; start += 1000) {
        int batch = first + count - start < 1000 ? first + count - start : 1000;
        size_t size = 0;
        for (int i = 0; i < batch; i++)
            size += (size_t) sprintf(body + size, "m-%06d\n", start + i);
        it_http_expect(broker, "POST", path, body, size - 1, 200, NULL);
    }
    free(body);
}

// The number in a "m-NNNNNN" body, or -1.
static int s_number(const it_delivery_t *delivery)
{
    int number;
    if (delivery->size != 8 || sscanf(delivery->body, "m-%06d", &number) != 1)
        return -1;
    return number;
}

// (a) 200,000 messages with --mem-queue-size=100, some in flight and one
// deferred at SIGTERM: after a restart every message not finished arrives
// exactly once, the deferred one after its remaining delay.
static void s_restart(void)
{
    enum { TOTAL = 200000, HELD = 50, FINISHED = 20 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--mem-queue-size=100", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    s_publish(broker, "orders", 0, TOTAL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, TOTAL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "backend_depth"), ==, TOTAL - 100);
    // Memory is full, so the deferred message waits on disk (counted in depth there).
    it_http_expect(broker, "POST", "/pub?topic=orders&defer=1500", "deferred", 8, 200, NULL);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", HELD, false);
    IT_ASSERT(it_sink_wait(sink, HELD, 5000), "the first messages were not delivered");
    int finished[FINISHED];
    for (int i = 0; i < FINISHED; i++) {
        finished[i] = s_number(it_sink_get(sink, (size_t) i));
        it_sink_fin(sink, (size_t) i);
    }
    // Each FIN frees credit, which the broker fills with a new message.
    IT_ASSERT(it_sink_wait(sink, HELD + FINISHED, 5000), "the FINs did not arrive");
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "in_flight_count"), ==, HELD);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);  // with HELD messages in flight
    it_sink_destroy(&sink);

    broker = s_start(dir, "--mem-queue-size=100", NULL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, TOTAL - FINISHED + 1);
    sink = it_sink_new(broker, "orders", "billing", 2500, true);
    IT_ASSERT(it_sink_wait(sink, TOTAL - FINISHED + 1, 60000), "only %zu of %d arrived",
              it_sink_count(sink), TOTAL - FINISHED + 1);
    char *seen = calloc(TOTAL, 1);
    for (int i = 0; i < FINISHED; i++)
        seen[finished[i]] = 1;
    size_t deferred = 0;
    for (size_t i = 0; i < it_sink_count(sink); i++) {
        it_delivery_t *delivery = it_sink_get(sink, i);
        int number = s_number(delivery);
        if (number < 0) {
            IT_ASSERT_STR(delivery->body, "deferred");
            deferred++;
            continue;
        }
        IT_ASSERT(number < TOTAL && !seen[number], "m-%06d arrived twice (or was finished)",
                  number);
        seen[number] = 1;
    }
    free(seen);
    IT_ASSERT_INT(deferred, ==, 1);
    it_sink_pump(&sink, 1, 200);
    IT_ASSERT_INT(it_sink_count(sink), ==, TOTAL - FINISHED + 1);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, 0);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// (c) kill -9 in default mode: the queue opens cleanly and, since the page
// cache survives, nothing published is lost (consumed ones may come again).
static void s_kill9(void)
{
    enum { TOTAL = 20000, CONSUMED = 5000 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--mem-queue-size=0", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    s_publish(broker, "orders", 0, TOTAL);
    char *seen = calloc(TOTAL, 1);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", 100, true);
    IT_ASSERT(it_sink_wait(sink, CONSUMED, 10000), "consuming before the kill failed");
    for (size_t i = 0; i < it_sink_count(sink); i++)
        seen[s_number(it_sink_get(sink, i))] = 1;
    kill(it_broker_pid(broker), SIGKILL);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 128 + SIGKILL);
    it_sink_destroy(&sink);

    broker = s_start(dir, "--mem-queue-size=0", NULL);
    int64_t depth = it_channel_stat(broker, "orders", "billing", "depth");
    it_note("after kill -9: depth %lld (%d published, %zu consumed before)", (long long) depth,
            TOTAL, (size_t) CONSUMED);
    IT_ASSERT(depth >= TOTAL - CONSUMED - 100 && depth <= TOTAL, "depth %lld", (long long) depth);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "corrupt_count"), ==, 0);
    sink = it_sink_new(broker, "orders", "billing", 500, true);
    IT_ASSERT(it_sink_wait(sink, (size_t) depth, 20000), "the restored queue was not served");
    for (size_t i = 0; i < it_sink_count(sink); i++)
        seen[s_number(it_sink_get(sink, i))] = 1;
    for (int i = 0; i < TOTAL; i++)
        IT_ASSERT(seen[i], "m-%06d was lost", i);
    free(seen);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// (d) A full disk: publishes fail with 503, the broker stays up, consumers
// drain, publishing works again once reading freed space. Needs root (a
// 2 MiB tmpfs in a private mount namespace, gone with the case).
static void s_disk_full(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0
        || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("SKIP disk_full: needs root to mount a small tmpfs\n");
        return;
    }
    char dir[1024];
    s_data_dir(dir, sizeof dir, "small");
    IT_ASSERT(mount("tmpfs", dir, "tmpfs", 0, "size=2m") == 0, "mount: %s", strerror(errno));
    it_broker_t *broker = s_start(dir, "--mem-queue-size=0", "--max-bytes-per-file=262144");
    it_post_ok(broker, "/channel/create?topic=big&channel=c");
    static char body[10000];
    memset(body, 'x', sizeof body);
    int accepted = 0, status = 200;
    while (status == 200 && accepted < 1000) {
        status = it_http(broker, "POST", "/pub?topic=big", body, sizeof body, NULL);
        accepted += status == 200;
    }
    it_note("disk full after %d messages of 10 kB", accepted);
    IT_ASSERT_INT(status, ==, 503);
    IT_ASSERT(accepted > 50, "only %d fitted", accepted);
    it_http_expect(broker, "POST", "/pub?topic=big", body, sizeof body, 503, "DISK_WRITE_FAILED");
    IT_ASSERT_INT(it_http_status(broker, "GET", "/ping", NULL), ==, 200);
    it_sink_t *sink = it_sink_new(broker, "big", "c", 50, true);
    IT_ASSERT(it_sink_wait(sink, (size_t) accepted, 20000), "only %zu of %d drained",
              it_sink_count(sink), accepted);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "big", "c", "depth") == 0, 5000,
                     "depth did not reach 0");
    it_http_expect(broker, "POST", "/pub?topic=big", "again", 5, 200, NULL);
    IT_ASSERT(it_sink_wait(sink, (size_t) accepted + 1, 5000), "the new message did not arrive");
    IT_ASSERT_STR(it_sink_get(sink, (size_t) accepted)->body, "again");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    umount(dir);
}

// A second broker on the same data path refuses to start.
static void s_locked(void)
{
    char dir[1024], data_flag[1100], line[512];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, NULL, NULL);
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *flags[] = {data_flag, NULL};
    IT_ASSERT_INT(it_broker_refuses(flags, line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "in use by another broker"), "last line: %s", line);
    it_pub(broker, "still", "serving");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    // Once the first one is gone the directory can be used again.
    broker = s_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "still", "depth"), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A damaged record (one flipped byte) is skipped and counted; the rest of
// the queue is served.
static void s_corrupt(void)
{
    enum { TOTAL = 10, DAMAGED = 4, RECORD = 8 + 28 + 8 };
    char dir[1024], path[1200];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--mem-queue-size=0", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    s_publish(broker, "orders", 0, TOTAL);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    snprintf(path, sizeof path, "%s/orders:billing.diskqueue.000000.dat", dir);
    int fd = open(path, O_RDWR);
    IT_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
    char byte;
    off_t offset = DAMAGED * RECORD + 8 + 28 + 7;  // the last digit of m-000004
    IT_ASSERT(pread(fd, &byte, 1, offset) == 1 && byte == '0' + DAMAGED, "unexpected layout");
    byte = '9';
    IT_ASSERT(pwrite(fd, &byte, 1, offset) == 1, "pwrite: %s", strerror(errno));
    close(fd);

    broker = s_start(dir, "--mem-queue-size=0", NULL);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", 100, true);
    IT_ASSERT(it_sink_wait(sink, TOTAL - 1, 5000), "the undamaged messages were not served");
    it_sink_pump(&sink, 1, 200);
    IT_ASSERT_INT(it_sink_count(sink), ==, TOTAL - 1);
    for (size_t i = 0; i < it_sink_count(sink); i++)
        IT_ASSERT(s_number(it_sink_get(sink, i)) != DAMAGED, "the damaged record was delivered");
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "corrupt_count"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, 0);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Deleting a topic removes its files; paused state survives a restart.
static void s_delete_and_pause(void)
{
    char dir[1024], path[1200];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--mem-queue-size=0", NULL);
    it_post_ok(broker, "/channel/create?topic=gone&channel=c");
    it_post_ok(broker, "/channel/create?topic=kept&channel=c");
    it_post_ok(broker, "/channel/pause?topic=kept&channel=c");
    s_publish(broker, "gone", 0, 10);
    s_publish(broker, "kept", 0, 10);
    snprintf(path, sizeof path, "%s/gone:c.diskqueue.000000.dat", dir);
    // The disk I/O thread opens and removes files soon after the answer.
    IT_ASSERT_EVENTUALLY(access(path, F_OK) == 0, 5000, "%s does not exist", path);
    it_post_ok(broker, "/topic/delete?topic=gone");
    IT_ASSERT_EVENTUALLY(access(path, F_OK) != 0, 5000, "%s was not removed", path);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    broker = s_start(dir, "--mem-queue-size=0", NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "gone", "depth"), ==, -1);
    IT_ASSERT_INT(it_channel_stat(broker, "kept", "c", "paused"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "kept", "c", "depth"), ==, 10);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Publishes "d-NNNNNN" one by one from number first until a publish fails
// (the broker was killed); marks each acknowledged number in acked.
// Returns the next number.
static int s_publish_until_killed(it_broker_t *broker, int first, char *acked, int limit)
{
    int number = first;
    for (; number < limit; number++) {
        char body[16];
        snprintf(body, sizeof body, "d-%06d", number);
        if (it_http(broker, "POST", "/pub?topic=orders", body, 8, NULL) != 200)
            break;
        acked[number] = 1;
    }
    return number + 1;
}

// (b) Durable mode, kill -9 at random moments while publishing, 5 cycles:
// every publish that was acknowledged is delivered after the restarts.
static void s_durable_kill9(void)
{
    enum { LIMIT = 1000000, CYCLES = 5 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    char *acked = calloc(LIMIT, 1), *seen = calloc(LIMIT, 1);
    IT_ASSERT(acked && seen, "out of memory");
    srand((unsigned) getpid());
    int next = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        it_broker_t *broker = s_start(dir, "--durable", NULL);
        if (cycle == 0)
            it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
        pid_t killer = fork();
        IT_ASSERT(killer >= 0, "fork: %s", strerror(errno));
        if (killer == 0) {
            usleep((useconds_t) (50000 + rand() % 250000));
            kill(it_broker_pid(broker), SIGKILL);
            _exit(0);
        }
        int first = next;
        next = s_publish_until_killed(broker, next, acked, LIMIT);
        waitpid(killer, NULL, 0);
        it_note("cycle %d: publishes %d..%d, killed", cycle, first, next - 2);
        IT_ASSERT_INT(it_broker_stop(&broker), ==, 128 + SIGKILL);
    }
    it_broker_t *broker = s_start(dir, "--durable", NULL);
    int64_t depth = it_channel_stat(broker, "orders", "billing", "depth");
    size_t expected = 0;
    for (int i = 0; i < next; i++)
        expected += acked[i];
    IT_ASSERT(depth >= (int64_t) expected, "depth %lld < %zu acknowledged", (long long) depth,
              expected);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", 500, true);
    IT_ASSERT(it_sink_wait(sink, (size_t) depth, 20000), "only %zu of %lld delivered",
              it_sink_count(sink), (long long) depth);
    for (size_t i = 0; i < it_sink_count(sink); i++) {
        int number;
        if (sscanf(it_sink_get(sink, i)->body, "d-%06d", &number) == 1 && number < LIMIT)
            seen[number] = 1;
    }
    for (int i = 0; i < next; i++)
        IT_ASSERT(!acked[i] || seen[i], "acknowledged d-%06d was lost", i);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "corrupt_count"), ==, 0);
    free(acked);
    free(seen);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Messages read from disk and in flight when the broker is killed (after
// its metadata was synced past them) are delivered again after a restart;
// only finished ones may be gone.
static void s_inflight_kill9(void)
{
    enum { TOTAL = 3000, HELD = 200, FINISHED = 100 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--durable", "--sync-timeout=50ms");
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    s_publish(broker, "orders", 0, TOTAL);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", HELD, false);
    IT_ASSERT(it_sink_wait(sink, HELD, 5000), "the first messages were not delivered");
    char *finished = calloc(TOTAL, 1);
    for (int i = 0; i < FINISHED; i++) {
        finished[s_number(it_sink_get(sink, (size_t) i))] = 1;
        it_sink_fin(sink, (size_t) i);
    }
    IT_ASSERT(it_sink_wait(sink, HELD + FINISHED, 5000), "the FINs did not arrive");
    // Let the --sync-timeout pass a few times: the read position is saved.
    int64_t until = it_now_ms() + 300;
    while (it_now_ms() < until)
        it_sink_pump(&sink, 1, 20);
    kill(it_broker_pid(broker), SIGKILL);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 128 + SIGKILL);
    it_sink_destroy(&sink);

    broker = s_start(dir, "--durable", NULL);
    int64_t depth = it_channel_stat(broker, "orders", "billing", "depth");
    IT_ASSERT(depth >= TOTAL - FINISHED, "depth %lld: unfinished messages were lost",
              (long long) depth);
    sink = it_sink_new(broker, "orders", "billing", 500, true);
    IT_ASSERT(it_sink_wait(sink, (size_t) depth, 10000), "the restored queue was not served");
    char *seen = calloc(TOTAL, 1);
    for (size_t i = 0; i < it_sink_count(sink); i++)
        seen[s_number(it_sink_get(sink, i))] = 1;
    for (int i = 0; i < TOTAL; i++)
        IT_ASSERT(seen[i] || finished[i], "m-%06d was lost", i);
    free(seen);
    free(finished);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Durable mode over ZeroMQ: PUB is answered OK (after the group commit)
// with its seq, and the messages are there after kill -9.
static void s_durable_zmq(void)
{
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--durable", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    it_raw_t *raw = it_raw_new(broker);
    it_raw_identify(raw, 1);
    Nsq__Frame *frame = it_raw_expect(raw, NSQ__FRAME__FRAME_RESPONSE, 5000);
    IT_ASSERT(frame, "no IDENTIFY response");
    nsq__frame__free_unpacked(frame, NULL);
    for (uint64_t seq = 2; seq < 12; seq++) {
        ProtobufCBinaryData bodies[3] = {
            {3, (uint8_t *) "one"}, {3, (uint8_t *) "two"}, {5, (uint8_t *) "three"}};
        Nsq__Pub pub = NSQ__PUB__INIT;
        pub.topic = nsq_wire_bytes("orders");
        pub.n_bodies = 3;
        pub.bodies = bodies;
        Nsq__Command command = NSQ__COMMAND__INIT;
        command.cmd_case = NSQ__COMMAND__CMD_PUB;
        command.pub = &pub;
        it_raw_send(raw, &command, seq);
    }
    for (uint64_t seq = 2; seq < 12; seq++) {
        frame = it_raw_expect(raw, NSQ__FRAME__FRAME_RESPONSE, 5000);
        IT_ASSERT(frame, "no answer to PUB %llu", (unsigned long long) seq);
        IT_ASSERT_INT(frame->response->seq, ==, seq);
        IT_ASSERT_STR(frame->response->text, "OK");
        nsq__frame__free_unpacked(frame, NULL);
    }
    it_raw_destroy(&raw);
    kill(it_broker_pid(broker), SIGKILL);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 128 + SIGKILL);
    broker = s_start(dir, "--durable", NULL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, 30);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// ---- (b2) sync before acknowledgement, proven with strace ----------------

#define TRACE_PATHS 16

// What the trace told so far, per data file: the event number of the last
// completed write, and the start of the latest completed fdatasync (every
// write completed before that start is on disk).
typedef struct {
    char paths[TRACE_PATHS][512];  // data files seen
    long written[TRACE_PATHS];     // event of the last completed pwritev
    long synced[TRACE_PATHS];      // start event of the latest completed fdatasync
    size_t count;                  // entries used
    long pending_start[65536];     // per pid (mod): start event of an unfinished fdatasync
    int pending_path[65536];       // per pid (mod): its path index
} trace_state_t;

// The index of the file named in "(FD</path>" after call in line; -1 if none.
static int s_trace_path(trace_state_t *state, const char *line, const char *call)
{
    const char *start = strstr(line, call);
    start = start ? strchr(start, '<') : NULL;
    const char *end = start ? strchr(start, '>') : NULL;
    if (!end || !strstr(start, ".diskqueue.") || end - start - 1 >= 512)
        return -1;
    size_t length = (size_t) (end - start - 1);
    for (size_t i = 0; i < state->count; i++)
        if (strlen(state->paths[i]) == length && !strncmp(state->paths[i], start + 1, length))
            return (int) i;
    if (state->count == TRACE_PATHS)
        return -1;
    snprintf(state->paths[state->count], 512, "%.*s", (int) length, start + 1);
    state->written[state->count] = state->synced[state->count] = 0;
    return (int) state->count++;
}

// Reads an strace -f -y log; returns how many "HTTP/1.1 200" answers left
// while some data written before them was not yet synced, or before any
// data file was synced at all (the write may still be on its way: a fast
// default-mode broker answers all before its first write), and counts the
// answers in *answers.
static int s_trace_violations(const char *path, int *answers)
{
    trace_state_t *state = calloc(1, sizeof *state);
    FILE *file = fopen(path, "r");
    IT_ASSERT(state && file, "cannot read %s", path);
    char line[4096];
    long event = 0;
    int violations = 0;
    *answers = 0;
    while (fgets(line, sizeof line, file)) {
        event++;
        int pid = atoi(line) & 65535;
        bool unfinished = strstr(line, "<unfinished ...>") != NULL;
        // Records that waited for their descriptor (async queues) go out with pwrite.
        const char *write = strstr(line, "pwritev(") ? "pwritev(" : "pwrite64(";
        if (strstr(line, write) && !unfinished) {
            int index = s_trace_path(state, line, write);
            if (index >= 0)
                state->written[index] = event;
        } else if (strstr(line, " fdatasync(")) {
            int index = s_trace_path(state, line, "fdatasync(");
            if (unfinished) {
                state->pending_start[pid] = event;
                state->pending_path[pid] = index;
            } else if (index >= 0 && strstr(line, "= 0")) {
                state->synced[index] = event;
            }
        } else if (strstr(line, "<... fdatasync resumed>") && strstr(line, "= 0")) {
            int index = state->pending_path[pid];
            if (index >= 0 && state->pending_start[pid] > state->synced[index])
                state->synced[index] = state->pending_start[pid];
        } else if (strstr(line, "sendmsg(") && strstr(line, "HTTP/1.1 200")) {
            (*answers)++;
            bool any_synced = false;  // an answer before any data sync: nothing is on disk
            for (size_t i = 0; i < state->count; i++) {
                any_synced = any_synced || state->synced[i] > 0;
                if (state->written[i] > state->synced[i])
                    violations++;
            }
            violations += !any_synced;
        }
    }
    fclose(file);
    free(state);
    return violations;
}

// True once every thread of pid is traced.
static bool s_all_traced(void *arg)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/task", *(pid_t *) arg);
    DIR *tasks = opendir(path);
    bool all = tasks != NULL;
    struct dirent *task;
    while (all && (task = readdir(tasks))) {
        if (task->d_name[0] == '.')
            continue;
        char status[512];
        snprintf(status, sizeof status, "%s/%s/status", path, task->d_name);
        FILE *file = fopen(status, "r");
        bool traced = false;
        while (file && fgets(line, sizeof line, file))
            if (!strncmp(line, "TracerPid:", 10))
                traced = atoi(line + 10) != 0;
        if (file)
            fclose(file);
        all = traced;
    }
    if (tasks)
        closedir(tasks);
    return all;
}

// Publishes count messages one at a time under strace; returns the
// violations found (and the answers seen in *answers).
static int s_traced_publishes(const char *mode_flag, int count, int *answers)
{
    char dir[1024], trace[1200], pid_text[16];
    snprintf(dir, sizeof dir, "%s/data%s", it_tmp_dir(), mode_flag);
    IT_ASSERT(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
    it_broker_t *broker = s_start(dir, mode_flag, "--mem-queue-size=0");
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    pid_t pid = it_broker_pid(broker);
    snprintf(trace, sizeof trace, "%s.trace", dir);
    snprintf(pid_text, sizeof pid_text, "%d", (int) pid);
    const char *argv[] = {"/usr/bin/strace",
                          "-f",
                          "-y",
                          "-e",
                          "trace=pwritev,pwrite64,fdatasync,sendmsg",
                          "-s",
                          "16",
                          "-o",
                          trace,
                          "-p",
                          pid_text,
                          NULL};
    it_child_t *strace = it_child_start("strace", argv);
    IT_ASSERT(it_wait_until(s_all_traced, &pid, 10000), "strace did not attach");
    for (int i = 0; i < count; i++)
        it_http_expect(broker, "POST", "/pub?topic=orders", "payload", 7, 200, NULL);
    it_child_stop(&strace, SIGINT, 5000);  // detaches
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, count);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    return s_trace_violations(trace, answers);
}

// (b2) In durable mode no publish is answered before its bytes were
// fdatasynced: every "200 OK" the broker sends comes after a completed
// fdatasync, started after the last write, of every data file written.
// The same check run on the default mode finds violations, so it can fail.
static void s_sync_before_ack(void)
{
    if (access("/usr/bin/strace", X_OK) != 0) {
        printf("SKIP sync_before_ack: needs /usr/bin/strace\n");
        return;
    }
    int answers = 0;
    int violations = s_traced_publishes("--durable", 40, &answers);
    IT_ASSERT_INT(answers, ==, 40);
    IT_ASSERT_INT(violations, ==, 0);
    violations = s_traced_publishes("--sync-every=2500", 40, &answers);
    IT_ASSERT_INT(answers, ==, 40);
    IT_ASSERT(violations > 0, "the check found nothing to object to in the default mode");
}

// --mem-queue-bytes: 1 MB bodies spill to disk once a queue holds the byte
// bound in memory (the count bound, 10000, would take them all); /stats
// never shows more than the bound in memory, and every body arrives
// intact and in order.
static void s_mem_bytes(void)
{
    enum { BODY = 1000000, COUNT = 12, BOUND = 4194304 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--mem-queue-bytes=4m", NULL);
    it_post_ok(broker, "/channel/create?topic=big&channel=billing");
    char *body = malloc(BODY);
    IT_ASSERT(body, "out of memory");
    for (int i = 0; i < COUNT; i++) {
        memset(body, 'a' + i, BODY);
        memcpy(body, "big-", 4);
        it_http_expect(broker, "POST", "/pub?topic=big", body, BODY, 200, NULL);
        it_http_expect(broker, "POST", "/pub?topic=held", body, BODY, 200, NULL);
        IT_ASSERT_INT(it_channel_stat(broker, "big", "billing", "memory_bytes"), <=, BOUND);
        IT_ASSERT_INT(it_topic_stat(broker, "held", "memory_bytes"), <=, BOUND);
    }
    free(body);
    IT_ASSERT_INT(it_channel_stat(broker, "big", "billing", "memory_bytes"), ==, 4 * BODY);
    IT_ASSERT_INT(it_channel_stat(broker, "big", "billing", "backend_depth"), ==, COUNT - 4);
    IT_ASSERT_INT(it_channel_stat(broker, "big", "billing", "depth"), ==, COUNT);
    IT_ASSERT_INT(it_topic_stat(broker, "held", "memory_bytes"), ==, 4 * BODY);
    IT_ASSERT_INT(it_topic_stat(broker, "held", "backend_depth"), ==, COUNT - 4);

    it_sink_t *sink = it_sink_new(broker, "big", "billing", 1, true);
    int64_t deadline = it_now_ms() + 30000;
    while (it_sink_count(sink) < COUNT) {
        IT_ASSERT(it_now_ms() < deadline, "only %zu of %d arrived", it_sink_count(sink), COUNT);
        it_sink_pump(&sink, 1, 20);
        IT_ASSERT_INT(it_channel_stat(broker, "big", "billing", "memory_bytes"), <=, BOUND);
    }
    it_sink_pump(&sink, 1, 100);
    IT_ASSERT_INT(it_sink_count(sink), ==, COUNT);
    for (int i = 0; i < COUNT; i++) {
        it_delivery_t *delivery = it_sink_get(sink, (size_t) i);
        IT_ASSERT_INT(delivery->size, ==, BODY);
        IT_ASSERT(memcmp(delivery->body, "big-", 4) == 0 && delivery->body[BODY - 1] == 'a' + i,
                  "delivery %d is not body %d (first in, first out)", i, i);
    }
    IT_ASSERT_INT(it_channel_stat(broker, "big", "billing", "depth"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "big", "billing", "memory_bytes"), ==, 0);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Publishes to topic over HTTP until the broker is gone; writes how many
// were answered 200 to fd. Runs in a child process.
static void s_publish_until_gone(it_broker_t *broker, const char *topic, int fd)
{
    char path[128];
    snprintf(path, sizeof path, "/pub?topic=%s", topic);
    int answered = 0, status;
    while ((status = it_http(broker, "POST", path, "m", 1, NULL)) > 0)
        answered += status == 200;
    ssize_t written = write(fd, &answered, sizeof answered);
    _exit(written == sizeof answered ? 0 : 1);
}

// A publish answered 200 over HTTP is in its queue: /stats counts it at
// once, and it is there after a restart (with at most one more per client
// whose answer the stop cut off), also when the SIGTERM came while
// publishes were being answered (the HTTP threads admit publishes to an
// existing topic without the core: those admitted before the broker
// stopped taking them are kept, the later ones are refused).
static void s_http_sigterm(void)
{
    enum { CLIENTS = 2 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, NULL, NULL);
    for (int i = 0; i < 100; i++) {
        it_http_expect(broker, "POST", "/pub?topic=kept", "m", 1, 200, NULL);
        IT_ASSERT_INT(it_topic_stat(broker, "kept", "depth"), ==, i + 1);
    }
    int fds[2];
    pid_t clients[CLIENTS];
    IT_ASSERT(pipe(fds) == 0, "pipe: %s", strerror(errno));
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = fork();
        IT_ASSERT(clients[i] >= 0, "fork: %s", strerror(errno));
        if (clients[i] == 0)
            s_publish_until_gone(broker, "kept", fds[1]);
    }
    IT_ASSERT_EVENTUALLY(it_topic_stat(broker, "kept", "depth") >= 1000, 10000,
                         "the publishers did not get going");
    IT_ASSERT_INT(kill(it_broker_pid(broker), SIGTERM), ==, 0);
    IT_ASSERT_INT(it_broker_wait(&broker), ==, 0);  // signalled once already
    int answered = 100;
    for (int i = 0; i < CLIENTS; i++) {
        int status = -1, count = 0;
        IT_ASSERT(waitpid(clients[i], &status, 0) == clients[i] && WIFEXITED(status)
                      && WEXITSTATUS(status) == 0,
                  "a publisher failed");
        IT_ASSERT(read(fds[0], &count, sizeof count) == sizeof count, "no count from a publisher");
        answered += count;
    }
    close(fds[0]);
    close(fds[1]);
    it_note("%d publishes answered 200", answered);
    broker = s_start(dir, NULL, NULL);
    // Every 200 is kept. A publish stored while the broker stopped may
    // have lost its answer with the connection (the client would send it
    // again, as to nsqd): at most one per client.
    int64_t depth = it_topic_stat(broker, "kept", "depth");
    IT_ASSERT(depth >= answered && depth <= answered + CLIENTS,
              "%lld kept for %d publishes answered 200", (long long) depth, answered);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// How many lines of the brokers' logs (in this case's directory) contain text.
static int s_log_lines(const char *text)
{
    DIR *dir = opendir(it_tmp_dir());
    IT_ASSERT(dir, "cannot list %s", it_tmp_dir());
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (strncmp(entry->d_name, "broker-", 7) != 0)
            continue;
        char path[1200], line[2048];
        snprintf(path, sizeof path, "%s/%s", it_tmp_dir(), entry->d_name);
        FILE *log = fopen(path, "r");
        while (log && fgets(line, sizeof line, log))
            count += strstr(line, text) != NULL;
        if (log)
            fclose(log);
    }
    closedir(dir);
    return count;
}

// True if the file named by arg[0] has a line containing arg[1] (arg: const char *[2]).
static bool s_file_has(void *arg)
{
    const char *const *pair = arg;
    FILE *file = fopen(pair[0], "r");
    char line[512];
    bool found = false;
    while (file && !found && fgets(line, sizeof line, file))
        found = strstr(line, pair[1]) != NULL;
    if (file)
        fclose(file);
    return found;
}

// A state file save that fails (its temporary file cannot be created) is
// retried on the next ticks: once the obstacle is gone, the state file
// lists the new topic without anything else happening, and a restart
// restores it.
static void s_state_retry(void)
{
    char dir[1024], blocker[1200], state[1200];
    s_data_dir(dir, sizeof dir, "data");
    snprintf(blocker, sizeof blocker, "%s/nsq-broker.dat.tmp", dir);
    snprintf(state, sizeof state, "%s/nsq-broker.dat", dir);
    it_broker_t *broker = s_start(dir, NULL, NULL);
    IT_ASSERT(mkdir(blocker, 0755) == 0, "mkdir %s: %s", blocker, strerror(errno));
    it_post_ok(broker, "/topic/create?topic=later");
    const char *pair[] = {state, "topic later "};
    IT_ASSERT_EVENTUALLY(s_log_lines("cannot write") >= 1, 5000, "the failed save was not logged");
    IT_ASSERT(!s_file_has(pair), "the state file was written despite the obstacle");
    IT_ASSERT(rmdir(blocker) == 0, "rmdir %s: %s", blocker, strerror(errno));
    IT_ASSERT(it_wait_until(s_file_has, pair, 5000), "the save was never retried");
    // The line comes after the directory's fsync, which follows the rename
    IT_ASSERT_EVENTUALLY(s_log_lines("saved after") >= 1, 5000, "the retried save was not logged");
    IT_ASSERT_INT(s_log_lines("saved after"), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    broker = s_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "later", "depth"), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A --data-path that does not exist is created with its parents, mode
// 0700; a path that cannot be a directory is refused with a clear line.
static void s_data_path_created(void)
{
    char dir[1024], data_flag[1100], line[512];
    snprintf(dir, sizeof dir, "%s/new/data/path", it_tmp_dir());
    it_broker_t *broker = s_start(dir, NULL, NULL);
    struct stat status;
    IT_ASSERT(stat(dir, &status) == 0 && S_ISDIR(status.st_mode), "%s was not created", dir);
    IT_ASSERT_INT(status.st_mode & 0777, ==, 0700);
    it_pub(broker, "kept", "one");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    broker = s_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "kept", "depth"), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    snprintf(dir, sizeof dir, "%s/a-file", it_tmp_dir());
    FILE *file = fopen(dir, "w");
    IT_ASSERT(file, "cannot create %s", dir);
    fclose(file);
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *flags[] = {data_flag, NULL};
    IT_ASSERT_INT(it_broker_refuses(flags, line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "not a writable directory"), "last line: %s", line);
}

// Descriptors process pid has open.
static int s_open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int) pid);
    DIR *dir = opendir(path);
    IT_ASSERT(dir, "cannot list %s", path);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        count += entry->d_name[0] != '.';
    closedir(dir);
    return count;
}

// Starts a broker whose RLIMIT_NOFILE is limit (inherited through its fork).
static it_broker_t *s_start_limited(const char *dir, rlim_t limit, const char *extra)
{
    struct rlimit saved, low;
    IT_ASSERT(getrlimit(RLIMIT_NOFILE, &saved) == 0, "getrlimit: %s", strerror(errno));
    low = saved;
    low.rlim_cur = limit;
    IT_ASSERT(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit: %s", strerror(errno));
    it_broker_t *broker = s_start(dir, extra, NULL);
    setrlimit(RLIMIT_NOFILE, &saved);
    return broker;
}

// Topics named many-NNNN listed in /stats.
static int s_count_many_topics(it_broker_t *broker)
{
    char *stats = it_stats(broker);
    IT_ASSERT(stats, "no /stats");
    int count = 0;
    for (const char *at = stats; (at = strstr(at, "\"many-")); at++)
        count += at[10] == '"';  // "many-NNNN" as a whole value
    free(stats);
    return count;
}

// 2,000 topics with one message each under RLIMIT_NOFILE 256: every one
// is created and kept (an idle topic holds no descriptor), the broker's
// descriptors stay few, and a restart under the same limit restores them
// all.
static void s_many_topics(void)
{
    enum { TOPICS = 2000, LIMIT = 256, FEW = 64 };
    char dir[1024], path[64];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start_limited(dir, LIMIT, NULL);
    it_raw_t *raw = it_raw_new(broker);  // pipelined: all PUBs, then all answers
    ProtobufCBinaryData body = {1, (uint8_t *) "m"};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.n_bodies = 1;
    pub.bodies = &body;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    for (int i = 0; i < TOPICS; i++) {
        snprintf(path, sizeof path, "many-%04d", i);
        pub.topic = nsq_wire_bytes(path);
        it_raw_send(raw, &command, (uint64_t) i + 1);
    }
    for (int i = 0; i < TOPICS; i++) {
        Nsq__Frame *frame = it_raw_next(raw, 10000);
        IT_ASSERT(frame && frame->frame_case == NSQ__FRAME__FRAME_RESPONSE,
                  "PUB %d was not answered OK", i);
        nsq__frame__free_unpacked(frame, NULL);
    }
    it_raw_destroy(&raw);
    it_http_expect(broker, "POST", "/pub?topic=many-1999", "m", 1, 200, NULL);  // HTTP too
    int fds = s_open_fds(it_broker_pid(broker));
    it_note("%d topics: %d descriptors open", TOPICS, fds);
    IT_ASSERT(fds < FEW, "%d descriptors open for %d idle topics", fds, TOPICS);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);

    broker = s_start_limited(dir, LIMIT, NULL);
    fds = s_open_fds(it_broker_pid(broker));
    it_note("after the restart: %d descriptors open", fds);
    IT_ASSERT(fds < FEW, "%d descriptors open after restoring %d topics", fds, TOPICS);
    IT_ASSERT_INT(s_count_many_topics(broker), ==, TOPICS);
    IT_ASSERT_INT(it_topic_stat(broker, "many-1999", "depth"), ==, 2);
    it_sink_t *sink = it_sink_new(broker, "many-0007", "c", 10, true);
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "a restored topic was not served");
    IT_ASSERT_STR(it_sink_get(sink, 0)->body, "m");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Publishes "z" over ZeroMQ to topic prefix+number with seq. Returns true
// on OK; sets *refused when the answer is E_PUB_FAILED TOO_MANY_OPEN_FILES
// (any other answer fails the case).
static bool s_raw_pub(it_raw_t *raw, uint64_t seq, const char *prefix, int number, int *refused)
{
    char topic[64];
    snprintf(topic, sizeof topic, "%s%d", prefix, number);
    ProtobufCBinaryData body = {1, (uint8_t *) "z"};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = nsq_wire_bytes(topic);
    pub.n_bodies = 1;
    pub.bodies = &body;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    it_raw_send(raw, &command, seq);
    Nsq__Frame *frame = it_raw_next(raw, 5000);
    IT_ASSERT(frame, "no answer to PUB %s", topic);
    if (frame->frame_case == NSQ__FRAME__FRAME_RESPONSE) {
        IT_ASSERT_INT(frame->response->seq, ==, seq);
        nsq__frame__free_unpacked(frame, NULL);
        return true;
    }
    IT_ASSERT_INT(frame->frame_case, ==, NSQ__FRAME__FRAME_ERROR);
    IT_ASSERT_STR(frame->error->code, "E_PUB_FAILED");
    IT_ASSERT_STR(frame->error->text, "TOO_MANY_OPEN_FILES");
    nsq__frame__free_unpacked(frame, NULL);
    *refused = 1;
    return false;
}

// True if the process watched[0] has more than watched[1] descriptors open.
static bool s_fds_above(void *arg)
{
    const pid_t *watched = arg;
    return s_open_fds(watched[0]) > (int) watched[1];
}

// The broker runs out of descriptors (each topic written holds its write
// segment open until a sync, and --sync-timeout is a day): a publish that
// needs one more is answered 503 TOO_MANY_OPEN_FILES over HTTP and
// E_PUB_FAILED "TOO_MANY_OPEN_FILES" over ZeroMQ, with a log line; the
// broker keeps serving what needs no new descriptor, stops cleanly and
// keeps everything it accepted.
static void s_out_of_files(void)
{
    char dir[1024], path[64], state[1200], line[64];
    s_data_dir(dir, sizeof dir, "data");
    snprintf(state, sizeof state, "%s/nsq-broker.dat", dir);
    it_broker_t *broker = s_start(dir, "--mem-queue-size=0", "--sync-timeout=24h");
    pid_t pid = it_broker_pid(broker);
    for (int i = 0; i < 8; i++)  // every HTTP thread has its socket to the core
        it_pub(broker, "warm", "x");
    it_raw_t *raw = it_raw_new(broker);
    it_raw_identify(raw, 1);
    Nsq__Frame *frame = it_raw_expect(raw, NSQ__FRAME__FRAME_RESPONSE, 5000);
    IT_ASSERT(frame, "no IDENTIFY response");
    nsq__frame__free_unpacked(frame, NULL);
    struct rlimit limit;
    IT_ASSERT(prlimit(pid, RLIMIT_NOFILE, NULL, &limit) == 0, "prlimit: %s", strerror(errno));
    limit.rlim_cur = (rlim_t) s_open_fds(pid) + 8;
    IT_ASSERT(prlimit(pid, RLIMIT_NOFILE, &limit, NULL) == 0, "prlimit: %s", strerror(errno));
    char *reply = NULL;
    int status = 200, created = 0;
    while (status == 200 && created < 20) {
        snprintf(path, sizeof path, "/pub?topic=fresh-%d", created);
        free(reply);
        status = it_http(broker, "POST", path, "x", 1, &reply);
        if (status != 200)
            break;
        // Wait for the state file, so that no retried save holds a descriptor.
        snprintf(line, sizeof line, "topic fresh-%d ", created++);
        const char *pair[] = {state, line};
        IT_ASSERT(it_wait_until(s_file_has, pair, 5000), "the state file lacks fresh-%d",
                  created - 1);
    }
    it_note("out of descriptors after %d new topics", created);
    IT_ASSERT_INT(status, ==, 503);
    IT_ASSERT(reply && strstr(reply, "TOO_MANY_OPEN_FILES"), "reply: %s", reply ? reply : "");
    free(reply);
    IT_ASSERT(s_log_lines("out of file descriptors") >= 1, "no log line about descriptors");
    // What needs no new descriptor still works (the connection takes the
    // one the refused request gave back).
    it_pub(broker, "fresh-0", "again");
    // ZeroMQ needs no descriptor per request: new topics take the last
    // ones, then one is refused. Two more for them: the disk I/O thread
    // creates a topic's first segment with its directory open too (the
    // name is fsynced).
    limit.rlim_cur = (rlim_t) s_open_fds(pid) + 2;
    IT_ASSERT(prlimit(pid, RLIMIT_NOFILE, &limit, NULL) == 0, "prlimit: %s", strerror(errno));
    int refused = 0, taken = 0;
    while (!refused && taken < 40) {
        int before = s_open_fds(pid);
        if (!s_raw_pub(raw, (uint64_t) (10 + taken), "fresh-zmq-", taken, &refused))
            continue;
        taken++;
        // The disk I/O thread opens the new segment after the answer: let
        // it take its descriptor before the next topic asks.
        pid_t watched[2] = {pid, (pid_t) before};
        it_wait_until(s_fds_above, watched, 1000);
    }
    IT_ASSERT(refused, "ZeroMQ publishes to %d new topics all succeeded", taken);
    IT_ASSERT(s_raw_pub(raw, 99, "fresh-", 0, &refused),
              "publishing to a topic with its files failed");
    it_raw_destroy(&raw);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    broker = s_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "fresh-0", "depth"), ==, 3);
    IT_ASSERT_INT(it_topic_stat(broker, "fresh-zmq-0", "depth"), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// SIGTERM while a consumer holds messages: the broker stops delivering,
// keeps serving FINs and publishes for --drain-timeout, and writes to disk
// only what is still in flight then. A consumer that finishes at once does
// not get its messages again after the restart, and a publish made while
// the broker drains is answered and kept.
static void s_drain_on_term(void)
{
    enum { HELD = 10 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--drain-timeout=10s", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    s_publish(broker, "orders", 0, HELD);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", HELD, false);
    IT_ASSERT(it_sink_wait(sink, HELD, 5000), "the messages were not delivered");
    IT_ASSERT_INT(kill(it_broker_pid(broker), SIGTERM), ==, 0);
    it_sleep_ms(200);  // the broker is draining now (it waits up to 10 s)
    it_http_expect(broker, "POST", "/pub?topic=orders", "late", 4, 200, NULL);
    for (size_t i = 0; i < HELD; i++)
        it_sink_fin(sink, i);
    it_sink_pump(&sink, 1, 200);                    // the FINs leave; the broker then ends
    IT_ASSERT_INT(it_sink_count(sink), ==, HELD);   // nothing new while draining
    IT_ASSERT_INT(it_broker_wait(&broker), ==, 0);  // signalled once already
    it_sink_destroy(&sink);

    broker = s_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, 1);
    sink = it_sink_new(broker, "orders", "billing", 100, true);
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "the publish made while draining was lost");
    IT_ASSERT_STR(it_sink_get(sink, 0)->body, "late");
    it_sink_pump(&sink, 1, 300);
    IT_ASSERT_INT(it_sink_count(sink), ==, 1);  // the finished ones never come back
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A memory backlog larger than the disk queue's write buffer (4 MiB) is
// written out in full at SIGTERM: a topic with no channel (its own queue)
// and a channel, 200,000 messages each, all in memory, all back after a
// restart. (The writes once failed with EAGAIN past the buffer and the
// rest was logged as lost.)
static void s_memory_backlog_on_term(void)
{
    enum { TOTAL = 200000 };
    char dir[1024];
    s_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = s_start(dir, "--mem-queue-size=1000000", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    it_post_ok(broker, "/topic/create?topic=audit");
    s_publish(broker, "orders", 0, TOTAL);
    s_publish(broker, "audit", 0, TOTAL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "backend_depth"), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, "audit", "backend_depth"), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);

    broker = s_start(dir, "--mem-queue-size=1000000", NULL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, TOTAL);
    IT_ASSERT_INT(it_topic_stat(broker, "audit", "depth"), ==, TOTAL);
    it_post_ok(broker, "/channel/create?topic=audit&channel=archive");
    it_sink_t *sink = it_sink_new(broker, "audit", "archive", 2500, true);
    IT_ASSERT(it_sink_wait(sink, TOTAL, 60000), "only %zu of %d arrived", it_sink_count(sink),
              TOTAL);
    char *seen = calloc(TOTAL, 1);
    IT_ASSERT(seen, "out of memory");
    for (size_t i = 0; i < it_sink_count(sink); i++) {
        int number = s_number(it_sink_get(sink, i));
        IT_ASSERT(number >= 0 && number < TOTAL && !seen[number], "m-%06d arrived twice", number);
        seen[number] = 1;
    }
    free(seen);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"restart", s_restart},
        {"kill9", s_kill9},
        {"disk_full", s_disk_full},
        {"locked", s_locked},
        {"corrupt", s_corrupt},
        {"delete_and_pause", s_delete_and_pause},
        {"durable_kill9", s_durable_kill9},
        {"sync_before_ack", s_sync_before_ack},
        {"inflight_kill9", s_inflight_kill9},
        {"durable_zmq", s_durable_zmq},
        {"mem_bytes", s_mem_bytes},
        {"http_sigterm", s_http_sigterm},
        {"state_retry", s_state_retry},
        {"data_path_created", s_data_path_created},
        {"many_topics", s_many_topics},
        {"out_of_files", s_out_of_files},
        {"drain_on_term", s_drain_on_term},
        {"memory_backlog_on_term", s_memory_backlog_on_term},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
