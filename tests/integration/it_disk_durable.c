/*  it_disk_durable - --durable publishes with the real broker
    SPDX-License-Identifier: MIT

    A publish acknowledged with --durable survives kill -9 (over HTTP, with
    messages in flight, over ZeroMQ), and the broker syncs a message's
    write before it answers: proven by running the broker under strace and
    checking, for every answer, that an fdatasync covering the write
    completed first (and that the check does object to --sync-every).
*/
#include "harness.h"
#include "it_disk_util.h"

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
    disk_data_dir(dir, sizeof dir, "data");
    char *acked = calloc(LIMIT, 1), *seen = calloc(LIMIT, 1);
    IT_ASSERT(acked && seen, "out of memory");
    srand((unsigned) getpid());
    int next = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        it_broker_t *broker = disk_start(dir, "--durable", NULL);
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
    it_broker_t *broker = disk_start(dir, "--durable", NULL);
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
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--durable", "--sync-timeout=50ms");
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    disk_publish(broker, "orders", 0, TOTAL);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", HELD, false);
    IT_ASSERT(it_sink_wait(sink, HELD, 5000), "the first messages were not delivered");
    char *finished = calloc(TOTAL, 1);
    for (int i = 0; i < FINISHED; i++) {
        finished[disk_number(it_sink_get(sink, (size_t) i))] = 1;
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

    broker = disk_start(dir, "--durable", NULL);
    int64_t depth = it_channel_stat(broker, "orders", "billing", "depth");
    IT_ASSERT(depth >= TOTAL - FINISHED, "depth %lld: unfinished messages were lost",
              (long long) depth);
    sink = it_sink_new(broker, "orders", "billing", 500, true);
    IT_ASSERT(it_sink_wait(sink, (size_t) depth, 10000), "the restored queue was not served");
    char *seen = calloc(TOTAL, 1);
    for (size_t i = 0; i < it_sink_count(sink); i++)
        seen[disk_number(it_sink_get(sink, i))] = 1;
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
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--durable", NULL);
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
    broker = disk_start(dir, "--durable", NULL);
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
    it_broker_t *broker = disk_start(dir, mode_flag, "--mem-queue-size=0");
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

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"durable_kill9", s_durable_kill9},
        {"sync_before_ack", s_sync_before_ack},
        {"inflight_kill9", s_inflight_kill9},
        {"durable_zmq", s_durable_zmq},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
