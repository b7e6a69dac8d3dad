/*  it_disk - disk spill-over, restarts and stops with the real broker
    SPDX-License-Identifier: MIT

    What users rely on when a broker holds more than its memory or goes
    down: a backlog beyond --mem-queue-size survives SIGTERM (queued, in
    flight and deferred messages) and is delivered exactly once after a
    restart, and so does a memory backlog larger than the disk queue's
    write buffer; kill -9 loses nothing the page cache kept and the queue
    opens cleanly; a full disk answers 503 while consumers drain, and
    publishing recovers once space returns; a second broker cannot share a
    data path; a damaged record is skipped and the rest served; an HTTP
    publish answered 200 survives a SIGTERM that comes while publishing;
    a SIGTERM drains what consumers hold; a SIGTERM that cannot save the
    memory backlog (a full disk) exits 1. Durable publishing is in
    it_disk_durable.c, bounds and resource limits in it_disk_limits.c.
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

// (a) 200,000 messages with --mem-queue-size=100, some in flight and one
// deferred at SIGTERM: after a restart every message not finished arrives
// exactly once, the deferred one after its remaining delay.
static void s_restart(void)
{
    enum { TOTAL = 200000, HELD = 50, FINISHED = 20 };
    char dir[1024];
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=100", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    disk_publish(broker, "orders", 0, TOTAL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, TOTAL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "backend_depth"), ==, TOTAL - 100);
    // Memory is full, so the deferred message waits on disk (counted in depth there).
    it_http_expect(broker, "POST", "/pub?topic=orders&defer=1500", "deferred", 8, 200, NULL);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", HELD, false);
    IT_ASSERT(it_sink_wait(sink, HELD, 5000), "the first messages were not delivered");
    int finished[FINISHED];
    for (int i = 0; i < FINISHED; i++) {
        finished[i] = disk_number(it_sink_get(sink, (size_t) i));
        it_sink_fin(sink, (size_t) i);
    }
    // Each FIN frees credit, which the broker fills with a new message.
    IT_ASSERT(it_sink_wait(sink, HELD + FINISHED, 5000), "the FINs did not arrive");
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "in_flight_count"), ==, HELD);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);  // with HELD messages in flight
    it_sink_destroy(&sink);

    broker = disk_start(dir, "--mem-queue-size=100", NULL);
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
        int number = disk_number(delivery);
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
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=0", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    disk_publish(broker, "orders", 0, TOTAL);
    char *seen = calloc(TOTAL, 1);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", 100, true);
    IT_ASSERT(it_sink_wait(sink, CONSUMED, 10000), "consuming before the kill failed");
    for (size_t i = 0; i < it_sink_count(sink); i++)
        seen[disk_number(it_sink_get(sink, i))] = 1;
    kill(it_broker_pid(broker), SIGKILL);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 128 + SIGKILL);
    it_sink_destroy(&sink);

    broker = disk_start(dir, "--mem-queue-size=0", NULL);
    int64_t depth = it_channel_stat(broker, "orders", "billing", "depth");
    it_note("after kill -9: depth %lld (%d published, %zu consumed before)", (long long) depth,
            TOTAL, (size_t) CONSUMED);
    IT_ASSERT(depth >= TOTAL - CONSUMED - 100 && depth <= TOTAL, "depth %lld", (long long) depth);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "corrupt_count"), ==, 0);
    sink = it_sink_new(broker, "orders", "billing", 500, true);
    IT_ASSERT(it_sink_wait(sink, (size_t) depth, 20000), "the restored queue was not served");
    for (size_t i = 0; i < it_sink_count(sink); i++)
        seen[disk_number(it_sink_get(sink, i))] = 1;
    for (int i = 0; i < TOTAL; i++)
        IT_ASSERT(seen[i], "m-%06d was lost", i);
    free(seen);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Makes dir a data directory on a 2 MiB tmpfs in a private mount
// namespace (gone with the case). Returns false (the case skips) without
// root.
static bool s_small_disk(char *dir, size_t size, const char *case_name)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0
        || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("SKIP %s: needs root to mount a small tmpfs\n", case_name);
        return false;
    }
    disk_data_dir(dir, size, "small");
    IT_ASSERT(mount("tmpfs", dir, "tmpfs", 0, "size=2m") == 0, "mount: %s", strerror(errno));
    return true;
}

// (d) A full disk: publishes fail with 503, the broker stays up, consumers
// drain, publishing works again once reading freed space. Needs root.
static void s_disk_full(void)
{
    char dir[1024];
    if (!s_small_disk(dir, sizeof dir, "disk_full"))
        return;
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=0", "--max-bytes-per-file=262144");
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

// A SIGTERM whose save fails (a memory backlog larger than the disk) ends
// the broker with exit code 1 and an error line, not 0: a supervisor must
// see that messages answered 200 may be lost. Needs root.
static void s_full_on_term(void)
{
    char dir[1024];
    if (!s_small_disk(dir, sizeof dir, "full_on_term"))
        return;
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=1000000", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    disk_publish(broker, "orders", 0, 100000);  // about 4 MB on disk
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, 100000);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 1);
    umount(dir);
}

// A second broker on the same data path refuses to start.
static void s_locked(void)
{
    char dir[1024], data_flag[1100], line[512];
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, NULL, NULL);
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *flags[] = {data_flag, NULL};
    IT_ASSERT_INT(it_broker_refuses(flags, line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "in use by another broker"), "last line: %s", line);
    it_pub(broker, "still", "serving");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    // Once the first one is gone the directory can be used again.
    broker = disk_start(dir, NULL, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "still", "depth"), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A damaged record (one flipped byte) is skipped and counted; the rest of
// the queue is served.
static void s_corrupt(void)
{
    enum { TOTAL = 10, DAMAGED = 4, RECORD = 8 + 28 + 8 };
    char dir[1024], path[1200];
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=0", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    disk_publish(broker, "orders", 0, TOTAL);
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

    broker = disk_start(dir, "--mem-queue-size=0", NULL);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", 100, true);
    IT_ASSERT(it_sink_wait(sink, TOTAL - 1, 5000), "the undamaged messages were not served");
    it_sink_pump(&sink, 1, 200);
    IT_ASSERT_INT(it_sink_count(sink), ==, TOTAL - 1);
    for (size_t i = 0; i < it_sink_count(sink); i++)
        IT_ASSERT(disk_number(it_sink_get(sink, i)) != DAMAGED, "the damaged record was delivered");
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "corrupt_count"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, 0);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Deleting a topic removes its files; paused state survives a restart.
static void s_delete_and_pause(void)
{
    char dir[1024], path[1200];
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=0", NULL);
    it_post_ok(broker, "/channel/create?topic=gone&channel=c");
    it_post_ok(broker, "/channel/create?topic=kept&channel=c");
    it_post_ok(broker, "/channel/pause?topic=kept&channel=c");
    disk_publish(broker, "gone", 0, 10);
    disk_publish(broker, "kept", 0, 10);
    snprintf(path, sizeof path, "%s/gone:c.diskqueue.000000.dat", dir);
    // The disk I/O thread opens and removes files soon after the answer.
    IT_ASSERT_EVENTUALLY(access(path, F_OK) == 0, 5000, "%s does not exist", path);
    it_post_ok(broker, "/topic/delete?topic=gone");
    IT_ASSERT_EVENTUALLY(access(path, F_OK) != 0, 5000, "%s was not removed", path);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    broker = disk_start(dir, "--mem-queue-size=0", NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "gone", "depth"), ==, -1);
    IT_ASSERT_INT(it_channel_stat(broker, "kept", "c", "paused"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "kept", "c", "depth"), ==, 10);
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
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, NULL, NULL);
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
    broker = disk_start(dir, NULL, NULL);
    // Every 200 is kept. A publish stored while the broker stopped may
    // have lost its answer with the connection (the client would send it
    // again, as to nsqd): at most one per client.
    int64_t depth = it_topic_stat(broker, "kept", "depth");
    IT_ASSERT(depth >= answered && depth <= answered + CLIENTS,
              "%lld kept for %d publishes answered 200", (long long) depth, answered);
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
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--drain-timeout=10s", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    disk_publish(broker, "orders", 0, HELD);
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

    broker = disk_start(dir, NULL, NULL);
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
    disk_data_dir(dir, sizeof dir, "data");
    it_broker_t *broker = disk_start(dir, "--mem-queue-size=1000000", NULL);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    it_post_ok(broker, "/topic/create?topic=audit");
    disk_publish(broker, "orders", 0, TOTAL);
    disk_publish(broker, "audit", 0, TOTAL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "backend_depth"), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, "audit", "backend_depth"), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);

    broker = disk_start(dir, "--mem-queue-size=1000000", NULL);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "depth"), ==, TOTAL);
    IT_ASSERT_INT(it_topic_stat(broker, "audit", "depth"), ==, TOTAL);
    it_post_ok(broker, "/channel/create?topic=audit&channel=archive");
    it_sink_t *sink = it_sink_new(broker, "audit", "archive", 2500, true);
    IT_ASSERT(it_sink_wait(sink, TOTAL, 60000), "only %zu of %d arrived", it_sink_count(sink),
              TOTAL);
    char *seen = calloc(TOTAL, 1);
    IT_ASSERT(seen, "out of memory");
    for (size_t i = 0; i < it_sink_count(sink); i++) {
        int number = disk_number(it_sink_get(sink, i));
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
        {"full_on_term", s_full_on_term},
        {"locked", s_locked},
        {"corrupt", s_corrupt},
        {"delete_and_pause", s_delete_and_pause},
        {"http_sigterm", s_http_sigterm},
        {"drain_on_term", s_drain_on_term},
        {"memory_backlog_on_term", s_memory_backlog_on_term},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
