/*  it_worker_output - nsq-worker's http and file handlers, drain and probes
    SPDX-License-Identifier: MIT

    Each case starts a broker and an nsq-worker with short delays and
    timeouts (flags): http results decide FIN or REQ and connections are
    reused, --file writes every body once across its rotations, SIGTERM
    lets running handlers finish (or requeues them at the shutdown
    timeout) and loses nothing, /readyz turns 503 while draining, the
    probes answer without a broker, and bad flags are refused.

    The http cases run their own endpoint in this process (libmicrohttpd,
    a thread per connection) whose answer depends on the body: "ok-*" 200,
    "flaky-*" 503 the first time then 200, "bad-*" 400, "slow-*" a reply
    slower than the worker's --http-timeout the first time then 200.
*/
#include "harness.h"
#include "it_worker_util.h"
#include "nsq_deadletter.h"

#include <dirent.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---- http ---------------------------------------------------------------

#define S_BODIES_MAX 64

typedef struct {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    char bodies[S_BODIES_MAX][64];  // distinct bodies seen
    int hits[S_BODIES_MAX];         // requests per body
    int attempts[S_BODIES_MAX];     // highest X-NSQ-Attempts seen per body
    size_t count;
    int connections;  // TCP connections accepted
    int requests;     // requests answered
} s_endpoint_t;

typedef struct {
    char body[64];
    size_t size;
} s_upload_t;

// Records one request for body; returns how many it has had, this one included.
static int s_endpoint_hit(s_endpoint_t *self, const char *body, const char *attempts)
{
    pthread_mutex_lock(&self->lock);
    size_t index = 0;
    while (index < self->count && strcmp(self->bodies[index], body))
        index++;
    if (index == self->count && self->count < S_BODIES_MAX)
        snprintf(self->bodies[self->count++], 64, "%s", body);
    int hits = index < S_BODIES_MAX ? ++self->hits[index] : 0;
    int attempt = attempts ? atoi(attempts) : 0;
    if (index < S_BODIES_MAX && attempt > self->attempts[index])
        self->attempts[index] = attempt;
    self->requests++;
    pthread_mutex_unlock(&self->lock);
    return hits;
}

// Requests for body so far; *attempts gets the highest X-NSQ-Attempts.
static int s_endpoint_hits(s_endpoint_t *self, const char *body, int *attempts)
{
    pthread_mutex_lock(&self->lock);
    int hits = 0;
    for (size_t index = 0; index < self->count; index++)
        if (strcmp(self->bodies[index], body) == 0) {
            hits = self->hits[index];
            *attempts = self->attempts[index];
        }
    pthread_mutex_unlock(&self->lock);
    return hits;
}

static unsigned s_endpoint_status(int hits, const char *body)
{
    if (strncmp(body, "bad-", 4) == 0)
        return 400;
    if (strncmp(body, "flaky-", 6) == 0 && hits == 1)
        return 503;
    if (strncmp(body, "slow-", 5) == 0 && hits == 1)
        usleep(1500 * 1000);  // beyond the worker's --http-timeout
    return 200;
}

static enum MHD_Result s_endpoint_access(void *arg, struct MHD_Connection *connection,
                                         const char *url, const char *method, const char *version,
                                         const char *upload, size_t *upload_size, void **state)
{
    (void) url;
    (void) method;
    (void) version;
    s_endpoint_t *self = arg;
    if (!*state) {
        *state = calloc(1, sizeof(s_upload_t));
        return *state ? MHD_YES : MHD_NO;
    }
    s_upload_t *body = *state;
    if (*upload_size) {
        size_t room = sizeof body->body - 1 - body->size;
        size_t take = *upload_size < room ? *upload_size : room;
        memcpy(body->body + body->size, upload, take);
        body->size += take;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *attempts =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-NSQ-Attempts");
    unsigned status = s_endpoint_status(s_endpoint_hit(self, body->body, attempts), body->body);
    struct MHD_Response *response =
        MHD_create_response_from_buffer(2, (void *) "ok", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static void s_endpoint_completed(void *arg, struct MHD_Connection *connection, void **state,
                                 enum MHD_RequestTerminationCode code)
{
    (void) arg;
    (void) connection;
    (void) code;
    free(*state);
    *state = NULL;
}

static void s_endpoint_notify(void *arg, struct MHD_Connection *connection, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    (void) connection;
    (void) socket_context;
    s_endpoint_t *self = arg;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&self->lock);
        self->connections++;
        pthread_mutex_unlock(&self->lock);
    }
}

// Starts the endpoint on 127.0.0.1:0; url gets "http://127.0.0.1:PORT/hook".
static s_endpoint_t *s_endpoint_start(char *url, size_t size)
{
    s_endpoint_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    pthread_mutex_init(&self->lock, NULL);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    self->daemon =
        MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                         NULL, s_endpoint_access, self, MHD_OPTION_SOCK_ADDR, &address,
                         MHD_OPTION_NOTIFY_COMPLETED, s_endpoint_completed, self,
                         MHD_OPTION_NOTIFY_CONNECTION, s_endpoint_notify, self, MHD_OPTION_END);
    IT_ASSERT(self->daemon, "cannot start the test's HTTP endpoint");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    IT_ASSERT(info && info->port, "the endpoint has no port");
    snprintf(url, size, "http://127.0.0.1:%u/hook", info->port);
    return self;
}

static void s_endpoint_stop(s_endpoint_t **self_p)
{
    MHD_stop_daemon((*self_p)->daemon);
    pthread_mutex_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

// 2xx finishes, 5xx and a timeout retry, 4xx finishes without retry.
static void s_http_results(void)
{
    char url[128], flag[160];
    s_endpoint_t *endpoint = s_endpoint_start(url, sizeof url);
    snprintf(flag, sizeof flag, "--http=%s", url);
    it_broker_t *broker = it_broker_start(NULL);
    const char *flags[] = {flag,
                           "--http-timeout=500ms",
                           "--requeue-delay=20ms",
                           "--backoff=20ms",
                           "--max-backoff=100ms",
                           NULL};
    it_child_t *worker = it_worker_start(broker, "hooks", "http", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "hooks", "http");
    it_pub(broker, "hooks", "ok-1");
    it_pub(broker, "hooks", "flaky-1");
    it_pub(broker, "hooks", "bad-1");
    it_pub(broker, "hooks", "slow-1");
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "hooks", "http")
                             && worker_metric(http, "nsq_worker_messages_finished_total") == 3,
                         15000, "the four messages were not settled");
    int attempts = 0;
    IT_ASSERT_INT(s_endpoint_hits(endpoint, "ok-1", &attempts), ==, 1);
    IT_ASSERT_INT(attempts, ==, 1);
    IT_ASSERT_INT(s_endpoint_hits(endpoint, "flaky-1", &attempts), ==, 2);
    IT_ASSERT_INT(attempts, ==, 2);
    IT_ASSERT_INT(s_endpoint_hits(endpoint, "bad-1", &attempts), ==, 1);
    IT_ASSERT_INT(s_endpoint_hits(endpoint, "slow-1", &attempts), ==, 2);
    IT_ASSERT_INT(attempts, ==, 2);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_messages_rejected_total"), ==, 1);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_messages_requeued_total"), ==, 2);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_handler_timeouts_total"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "hooks", "http", "requeue_count"), ==, 2);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    s_endpoint_stop(&endpoint);
}

// Sequential requests share one kept-alive connection.
static void s_http_reuse(void)
{
    char url[128], flag[160];
    s_endpoint_t *endpoint = s_endpoint_start(url, sizeof url);
    snprintf(flag, sizeof flag, "--http=%s", url);
    it_broker_t *broker = it_broker_start(NULL);
    const char *flags[] = {flag, "--max-in-flight=1", NULL};
    it_child_t *worker = it_worker_start(broker, "reuse", "http", flags);
    worker_wait_subscribed(broker, "reuse", "http");
    for (int i = 0; i < 20; i++) {
        char body[32];
        snprintf(body, sizeof body, "ok-%d", i);
        it_pub(broker, "reuse", body);
    }
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "reuse", "http") && endpoint->requests == 20, 10000,
                         "20 messages were not delivered (%d requests)", endpoint->requests);
    IT_ASSERT(endpoint->connections <= 2, "20 requests used %d connections", endpoint->connections);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    s_endpoint_stop(&endpoint);
}

// ---- file ---------------------------------------------------------------

// Every body once across the file and its rotations, in a directory that
// --file creates; the messages wait on the channel, so they arrive in
// batches of 5 lines (40 bytes), and still no file exceeds 20 bytes.
static void s_file_rotation(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char dir_path[1024], path[1100], flag[1200];
    snprintf(dir_path, sizeof dir_path, "%s/out/lines", it_tmp_dir());
    snprintf(path, sizeof path, "%s/sink.log", dir_path);
    snprintf(flag, sizeof flag, "--file=%s", path);
    it_post_ok(broker, "/channel/create?topic=lines&channel=file");
    for (int i = 0; i < 40; i++) {
        char body[32];
        snprintf(body, sizeof body, "line-%02d", i);
        it_pub(broker, "lines", body);
    }
    const char *flags[] = {flag, "--file-max-bytes=20", "--max-in-flight=5", NULL};
    it_child_t *worker = it_worker_start(broker, "lines", "file", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_messages_finished_total") == 40, 10000,
                         "40 lines were not written");
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    int seen[40] = {0}, lines = 0, files = 0;
    DIR *dir = opendir(dir_path);
    IT_ASSERT(dir, "--file did not create %s", dir_path);
    for (struct dirent *entry = readdir(dir); entry; entry = readdir(dir)) {
        if (strncmp(entry->d_name, "sink.log", 8))
            continue;
        char name[1300], line[64];
        struct stat info;
        snprintf(name, sizeof name, "%s/%s", dir_path, entry->d_name);
        IT_ASSERT(stat(name, &info) == 0 && info.st_size <= 20, "%s holds %lld bytes (max 20)",
                  entry->d_name, (long long) info.st_size);
        files++;
        FILE *file = fopen(name, "r");
        int number = -1;
        while (file && fgets(line, sizeof line, file)) {
            lines++;
            if (sscanf(line, "line-%d", &number) == 1 && number >= 0 && number < 40)
                seen[number]++;
        }
        if (file)
            fclose(file);
    }
    closedir(dir);
    int distinct = 0;
    for (int i = 0; i < 40; i++)
        distinct += seen[i] == 1;
    IT_ASSERT_INT(distinct, ==, 40);
    IT_ASSERT_INT(lines, ==, 40);
    IT_ASSERT_INT(files, ==, 20);  // two 8-byte lines per file
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// --file-rotate-interval starts a new file once the interval has passed.
static void s_file_rotate_interval(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char path[1024], flag[1100];
    snprintf(path, sizeof path, "%s/timed.log", it_tmp_dir());
    snprintf(flag, sizeof flag, "--file=%s", path);
    const char *flags[] = {flag, "--file-rotate-interval=300ms", NULL};
    it_child_t *worker = it_worker_start(broker, "timed", "file", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "timed", "file");
    it_pub(broker, "timed", "first");
    IT_ASSERT_EVENTUALLY(worker_count_lines(path, "first") == 1, 5000, "the first line is missing");
    int published = 1;
    int64_t deadline = it_now_ms() + 5000;
    while (worker_count_files("timed.log.") == 0) {
        IT_ASSERT(it_now_ms() < deadline, "no rotation within 5 s at a 300 ms interval");
        it_pub(broker, "timed", "more");
        published++;
        it_sleep_ms(50);
    }
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_messages_finished_total") == published,
                         5000, "not every line was written");
    IT_ASSERT_INT(worker_count_lines(path, "first"), ==, 0);  // it moved to the rotated file
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// ---- pod behaviour -------------------------------------------------------

// SIGTERM with four slow commands running: /readyz turns 503, every command
// finishes, every message is FINned, the worker exits 0.
static void s_drain(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char exec[4096];
    snprintf(exec, sizeof exec,
             "--exec=cat > /dev/null; touch %s/start.$NSQ_MSG_ID; sleep 2.5; "
             "touch %s/done.$NSQ_MSG_ID",
             it_tmp_dir(), it_tmp_dir());
    const char *flags[] = {exec, "--max-in-flight=4", "--shutdown-timeout=10s", NULL};
    it_child_t *worker = it_worker_start(broker, "slow", "exec", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "slow", "exec");
    IT_ASSERT_EVENTUALLY(worker_probe(http, "/readyz") == 200, 5000, "/readyz never said ready");
    for (int i = 0; i < 6; i++)
        it_pub(broker, "slow", "work");
    IT_ASSERT_EVENTUALLY(worker_count_files("start.") == 4, 5000, "four commands are not running");
    IT_ASSERT_INT(kill(it_child_pid(worker), SIGTERM), ==, 0);
    IT_ASSERT_EVENTUALLY(worker_probe(http, "/readyz") == 503, 1000, "/readyz did not flip to 503");
    IT_ASSERT_INT(worker_probe(http, "/healthz"), ==, 200);
    IT_ASSERT_INT(it_child_stop(&worker, 0, 10000), ==, 0);
    IT_ASSERT_INT(worker_count_files("done."), ==, 4);
    IT_ASSERT_INT(it_channel_stat(broker, "slow", "exec", "in_flight_count"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "slow", "exec", "depth"), ==, 2);
    IT_ASSERT_INT(it_channel_stat(broker, "slow", "exec", "requeue_count"), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// SIGTERM with commands that would run for 30 s and a 500 ms shutdown
// timeout: they are stopped, their messages requeued at once, exit 0.
static void s_drain_timeout(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char exec[4096];
    snprintf(exec, sizeof exec, "--exec=cat > /dev/null; touch %s/start.$NSQ_MSG_ID; sleep 30",
             it_tmp_dir());
    const char *flags[] = {exec, "--max-in-flight=3", "--shutdown-timeout=500ms", NULL};
    it_child_t *worker = it_worker_start(broker, "hang", "exec", flags);
    worker_wait_subscribed(broker, "hang", "exec");
    for (int i = 0; i < 3; i++)
        it_pub(broker, "hang", "forever");
    IT_ASSERT_EVENTUALLY(worker_count_files("start.") == 3, 5000, "three commands are not running");
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 5000), ==, 0);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "hang", "exec", "depth") == 3, 2000,
                         "the stopped messages were not requeued");
    IT_ASSERT_INT(it_channel_stat(broker, "hang", "exec", "in_flight_count"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "hang", "exec", "timeout_count"), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Alive but not ready while no broker answers. Configured through
// NSQ_WORKER_* variables only, as a pod spec would.
static void s_probes_without_broker(void)
{
    setenv("NSQ_WORKER_BROKER_ADDRESS", "127.0.0.1:1", 1);
    setenv("NSQ_WORKER_TOPIC", "t", 1);
    setenv("NSQ_WORKER_CHANNEL", "c", 1);
    setenv("NSQ_WORKER_STDOUT", "true", 1);
    setenv("NSQ_WORKER_HTTP_ADDRESS", "127.0.0.1:0", 1);
    const char *argv[] = {getenv("NSQ_WORKER"), NULL};
    it_child_t *worker = it_child_start("worker", argv);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    IT_ASSERT_EVENTUALLY(worker_probe(http, "/healthz") == 200, 5000, "/healthz does not answer");
    IT_ASSERT_INT(worker_probe(http, "/readyz"), ==, 503);
    IT_ASSERT_INT(worker_probe(http, "/nope"), ==, 404);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_connections"), ==, 0);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
}

// While no broker answers the worker says so every few seconds, and once
// when one does.
static void s_no_broker_warning(void)
{
    int port = 0, held = it_port_hold(&port);
    char address[64], zmq_flag[96];
    snprintf(address, sizeof address, "--broker-address=127.0.0.1:%d", port);
    const char *argv[] = {getenv("NSQ_WORKER"),         address,    "--topic=t", "--channel=c",
                          "--http-address=127.0.0.1:0", "--stdout", NULL};
    it_child_t *worker = it_child_start("worker", argv);
    const char *log = it_child_log_path(worker);
    // The warning comes every 5 s; the deadlines leave room for a loaded
    // machine under ASan.
    IT_ASSERT_EVENTUALLY(worker_count_lines(log, "no broker reachable for") >= 1, 20000,
                         "no warning while no broker answers");
    IT_ASSERT_EVENTUALLY(worker_count_lines(log, "no broker reachable for") >= 2, 20000,
                         "the warning is not repeated");
    IT_ASSERT_INT(worker_count_lines(log, "connected to"), ==, 0);
    close(held);  // the broker takes the port
    snprintf(zmq_flag, sizeof zmq_flag, "--zmq-address=127.0.0.1:%d", port);
    const char *broker_flags[] = {zmq_flag, NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    IT_ASSERT_EVENTUALLY(worker_count_lines(log, "connected to 1 broker(s)") == 1, 15000,
                         "no line says the broker was reached");
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Bad configurations exit 2 with one line. A --http-address that is taken
// is refused (only the default may be skipped).
static void s_refuses(void)
{
    const char *both[] = {getenv("NSQ_WORKER"),
                          "--broker-address=127.0.0.1:1",
                          "--topic=t",
                          "--channel=c",
                          "--stdout",
                          "--exec=true",
                          "--http-address=127.0.0.1:0",
                          NULL};
    it_child_t *worker = it_child_start("worker", both);
    IT_ASSERT_INT(it_child_stop(&worker, 0, 5000), ==, 2);
    char long_topic[80] = "--topic=";  // valid, but 62 + ".dead" is too long for a topic
    memset(long_topic + 8, 'x', 62);
    long_topic[70] = '\0';
    const char *dead[] = {
        getenv("NSQ_WORKER"), "--broker-address=127.0.0.1:1", long_topic, "--channel=c",
        "--stdout",           "--http-address=127.0.0.1:0",   NULL};
    worker = it_child_start("worker", dead);
    IT_ASSERT_INT(it_child_stop(&worker, 0, 5000), ==, 2);
    it_broker_t *broker = it_broker_start(NULL);
    char taken[96], expected[128];
    snprintf(taken, sizeof taken, "--http-address=%s", it_broker_http(broker));
    snprintf(expected, sizeof expected,
             "cannot listen on --http-address %s: ", it_broker_http(broker));
    const char *busy[] = {getenv("NSQ_WORKER"),
                          "--broker-address=127.0.0.1:1",
                          "--topic=t",
                          "--channel=c",
                          "--stdout",
                          taken,
                          NULL};
    worker = it_child_start("worker", busy);
    const char *log = it_child_log_path(worker);
    IT_ASSERT_INT(it_child_stop(&worker, 0, 5000), ==, 2);
    IT_ASSERT_INT(worker_count_lines(log, NULL), ==, 1);
    IT_ASSERT_INT(worker_count_lines(log, expected), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"http_results", s_http_results},
        {"http_reuse", s_http_reuse},
        {"file_rotation", s_file_rotation},
        {"file_rotate_interval", s_file_rotate_interval},
        {"drain", s_drain},
        {"drain_timeout", s_drain_timeout},
        {"probes_without_broker", s_probes_without_broker},
        {"no_broker_warning", s_no_broker_warning},
        {"refuses", s_refuses},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
