/*  it_disk_limits - the broker's bounds on memory, files and its data path
    SPDX-License-Identifier: MIT

    --mem-queue-bytes bounds the bodies a queue keeps in memory; a failed
    state file save is retried on the next ticks and restored by a
    restart; a missing --data-path is created with its parents (one that
    cannot be a directory is refused); 2,000 topics under RLIMIT_NOFILE 256
    are all kept; running out of descriptors answers 503
    TOO_MANY_OPEN_FILES (E_PUB_FAILED over ZeroMQ) while the broker keeps
    serving what needs none, stops cleanly and keeps what it accepted.
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

// --mem-queue-bytes: 1 MB bodies spill to disk once a queue holds the byte
// bound in memory (the count bound, 10000, would take them all); /stats
// never shows more than the bound in memory, and every body arrives
// intact and in order.
static void s_mem_bytes(void)
{
    enum { BODY = 1000000, COUNT = 12, BOUND = 4194304 };
    char dir[1024];
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--mem-queue-bytes=4m", NULL);
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
    disk_data_dir(dir, sizeof dir, "data");
    snprintf(blocker, sizeof blocker, "%s/nsq-broker.dat.tmp", dir);
    snprintf(state, sizeof state, "%s/nsq-broker.dat", dir);
    it_broker_t *broker = disk_start(dir, NULL, NULL);
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
    broker = disk_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "later", "depth"), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A --data-path that does not exist is created with its parents, mode
// 0700; a path that cannot be a directory is refused with a clear line.
static void s_data_path_created(void)
{
    char dir[1024], data_flag[1100], line[512];
    snprintf(dir, sizeof dir, "%s/new/data/path", it_tmp_dir());
    it_broker_t *broker = disk_start(dir, NULL, NULL);
    struct stat status;
    IT_ASSERT(stat(dir, &status) == 0 && S_ISDIR(status.st_mode), "%s was not created", dir);
    IT_ASSERT_INT(status.st_mode & 0777, ==, 0700);
    it_pub(broker, "kept", "one");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    broker = disk_start(dir, NULL, NULL);
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
    it_broker_t *broker = disk_start(dir, extra, NULL);
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
    disk_data_dir(dir, sizeof dir, "data");
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
    disk_data_dir(dir, sizeof dir, "data");
    snprintf(state, sizeof state, "%s/nsq-broker.dat", dir);
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=0", "--sync-timeout=24h");
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
    broker = disk_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "fresh-0", "depth"), ==, 3);
    IT_ASSERT_INT(it_topic_stat(broker, "fresh-zmq-0", "depth"), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"mem_bytes", s_mem_bytes},
        {"state_retry", s_state_retry},
        {"data_path_created", s_data_path_created},
        {"many_topics", s_many_topics},
        {"out_of_files", s_out_of_files},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
