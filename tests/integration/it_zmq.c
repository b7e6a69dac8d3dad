/*  it_zmq - the ZeroMQ doors under load and abuse, and nsq-bench's counting
    SPDX-License-Identifier: MIT

    What users rely on when they push hard: every publish is acknowledged
    and stored exactly once whatever the publish window, messages published
    while they are consumed all arrive without waiting for a timeout, an
    oversized frame costs the broker or lookupd no memory and does not stop
    them, /stats and /nodes say which connection a client is (IP:port), and
    nsq-bench counts only the messages of its own run.
*/
#include "harness.h"

#include <czmq.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BIG_FRAME     (64 << 20)  // far above every cap, far below memory
#define S_RSS_SLACK     (8 << 10)   // kB a daemon may grow by while refusing a big frame
#define S_WINDOW_ROUNDS 3           // runs of two producers per publish window

// ---- helpers ------------------------------------------------------------------

// Starts nsq-bench ($NSQ_BENCH) with flags (NULL-terminated) against broker.
static it_child_t *s_bench_start(it_broker_t *broker, const char *const *flags)
{
    const char *binary = getenv("NSQ_BENCH");
    IT_ASSERT(binary && *binary, "NSQ_BENCH is not set (meson sets it)");
    static char zmq[96];
    snprintf(zmq, sizeof zmq, "--zmq-address=%s", it_broker_zmq(broker));
    const char *argv[16] = {binary, zmq};
    size_t count = 2;
    for (size_t i = 0; flags[i] && count < 15; i++)
        argv[count++] = flags[i];
    return it_child_start("nsq-bench", argv);
}

// Runs nsq-bench to its end; returns its result line in line and fails the
// case unless it exits 0.
static void s_bench_run(it_broker_t *broker, const char *const *flags, char *line, size_t size)
{
    it_child_t *bench = s_bench_start(broker, flags);
    int status = it_child_read_line(bench, line, size, 60000);
    IT_ASSERT(status == 1, "nsq-bench printed no result line (read status %d)", status);
    it_note("nsq-bench: %s", line);
    IT_ASSERT_INT(it_child_stop(&bench, 0, 60000), ==, 0);
}

// The integer after "key=" in a result line; fails the case if absent.
static int64_t s_field(const char *line, const char *key)
{
    char needle[32];
    snprintf(needle, sizeof needle, " %s=", key);
    const char *at = strstr(line, needle);
    IT_ASSERT(at, "no %s= in \"%s\"", key, line);
    return strtoll(at + strlen(needle), NULL, 10);
}

// A /proc/PID/status field in kB (VmRSS, VmHWM).
static int64_t s_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen(path, "r");
    IT_ASSERT(file, "cannot open %s", path);
    int64_t kb = -1;
    size_t length = strlen(field);
    while (kb < 0 && fgets(line, sizeof line, file))
        if (strncmp(line, field, length) == 0 && line[length] == ':')
            kb = strtoll(line + length + 1, NULL, 10);
    fclose(file);
    IT_ASSERT(kb >= 0, "%s has no %s", path, field);
    return kb;
}

// Whether an established TCP connection on 127.0.0.1 goes from local port
// `from` to port `to` (read from /proc/net/tcp: the kernel's own view).
static bool s_tcp_connection(unsigned from, unsigned to)
{
    FILE *file = fopen("/proc/net/tcp", "r");
    IT_ASSERT(file, "cannot open /proc/net/tcp");
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, file)) {
        unsigned local_ip, local_port, remote_ip, remote_port, state;
        if (sscanf(line, " %*u: %x:%x %x:%x %x", &local_ip, &local_port, &remote_ip, &remote_port,
                   &state)
            == 5)
            found = state == 1 && local_port == from && remote_port == to;
    }
    fclose(file);
    return found;
}

// The port of "host:port".
static unsigned s_port(const char *address)
{
    const char *colon = strrchr(address, ':');
    IT_ASSERT(colon, "no port in %s", address);
    return (unsigned) strtoul(colon + 1, NULL, 10);
}

// Checks that remote_address is "127.0.0.1:PORT" of a live connection to
// server (a "host:port" we listen on).
static void s_assert_peer_of(const char *remote_address, const char *server)
{
    IT_ASSERT(strncmp(remote_address, "127.0.0.1:", 10) == 0,
              "remote_address \"%s\" is not 127.0.0.1:PORT", remote_address);
    char *end = NULL;
    unsigned long port = strtoul(remote_address + 10, &end, 10);
    IT_ASSERT(*end == '\0' && port > 0 && port < 65536, "remote_address \"%s\" has no port",
              remote_address);
    IT_ASSERT(s_tcp_connection((unsigned) port, s_port(server)),
              "no connection from port %lu to %s: remote_address \"%s\" is not the peer's", port,
              server, remote_address);
}

// A DEALER to "host:port" with a receive timeout.
static zsock_t *s_dealer(const char *address)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    IT_ASSERT(dealer, "zsock_new(DEALER) failed");
    zsock_set_rcvtimeo(dealer, 1000);
    zsock_set_sndhwm(dealer, 100000);
    zsock_set_rcvhwm(dealer, 100000);
    IT_ASSERT(zsock_connect(dealer, "tcp://%s", address) == 0, "connect %s failed", address);
    return dealer;
}

// Sends one frame of size zero bytes (not a valid command).
static void s_send_big_frame(zsock_t *dealer, size_t size)
{
    zmq_msg_t big;
    IT_ASSERT(zmq_msg_init_size(&big, size) == 0, "cannot allocate %zu bytes", size);
    memset(zmq_msg_data(&big), 0, size);
    IT_ASSERT(zmq_msg_send(&big, zsock_resolve(dealer), 0) >= 0, "zmq_msg_send: %s",
              zmq_strerror(zmq_errno()));
}

// Sends PUB seq of one body to topic.
static void s_send_pub(zsock_t *dealer, uint64_t seq, const char *topic, const char *body)
{
    ProtobufCBinaryData data = {strlen(body), (uint8_t *) body};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = nsq_wire_bytes(topic);
    pub.n_bodies = 1;
    pub.bodies = &data;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    command.seq = seq;
    IT_ASSERT(nsq_wire_send_command(zsock_resolve(dealer), &command, 0) == 0, "send PUB: %s",
              zmq_strerror(zmq_errno()));
}

// Reads frames until the Response to seq; false if none came in timeout_ms.
static bool s_wait_response(zsock_t *dealer, uint64_t seq, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_now_ms() < deadline) {
        zframe_t *frame = zframe_recv(dealer);
        if (!frame)
            continue;
        Nsq__Frame *decoded = nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame));
        zframe_destroy(&frame);
        bool answered = decoded && decoded->frame_case == NSQ__FRAME__FRAME_RESPONSE
                        && decoded->response->seq == seq;
        nsq__frame__free_unpacked(decoded, NULL);
        if (answered)
            return true;
    }
    return false;
}

// ---- publish windows --------------------------------------------------------------

// Two producers publish 20,000 messages each with window, a few times over;
// every publish is acknowledged and the topic holds each message once.
// (A full queue shows only now and then, so the rounds give it chances.)
static void s_publish_window(const char *window)
{
    it_broker_t *broker = it_broker_start(NULL);
    char topic[32], topic_flag[48], window_flag[32], line[512];
    snprintf(topic, sizeof topic, "window%s", window);
    snprintf(topic_flag, sizeof topic_flag, "--topic=%s", topic);
    snprintf(window_flag, sizeof window_flag, "--window=%s", window);
    const char *flags[] = {"--mode=zmq-pub", "--count=40000", "--connections=2",
                           window_flag,      topic_flag,      NULL};
    for (int round = 1; round <= S_WINDOW_ROUNDS; round++) {
        s_bench_run(broker, flags, line, sizeof line);
        IT_ASSERT(!strstr(line, "errors="), "publishes failed in round %d: %s", round, line);
        IT_ASSERT_INT(s_field(line, "count"), ==, 40000);
        IT_ASSERT_INT(it_topic_stat(broker, topic, "message_count"), ==, 40000 * round);
        IT_ASSERT_INT(it_topic_stat(broker, topic, "depth"), ==, 40000 * round);
    }
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_window_500(void)
{
    s_publish_window("500");
}

static void s_window_1000(void)
{
    s_publish_window("1000");
}

static void s_window_2000(void)
{
    s_publish_window("2000");
}

static void s_window_5000(void)
{
    s_publish_window("5000");
}

// Sends count PUBs to topic (seq 1..count) before reading anything, then
// checks that each gets its answer, in order, once: a Response, or an Error
// with error_code when error_code is not NULL.
static void s_unread_answers(it_broker_t *broker, const char *topic, uint64_t count,
                             const char *error_code)
{
    zsock_t *dealer = s_dealer(it_broker_zmq(broker));
    for (uint64_t seq = 1; seq <= count; seq++)
        s_send_pub(dealer, seq, topic, "x");
    uint64_t next = 1;
    int64_t deadline = it_now_ms() + 30000;
    while (next <= count && it_now_ms() < deadline) {
        zframe_t *frame = zframe_recv(dealer);
        Nsq__Frame *decoded =
            frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
        zframe_destroy(&frame);
        if (!decoded)
            continue;
        bool is_error = decoded->frame_case == NSQ__FRAME__FRAME_ERROR;
        uint64_t seq = is_error ? decoded->error->seq : decoded->response->seq;
        IT_ASSERT(is_error ? error_code && streq(decoded->error->code, error_code)
                           : !error_code && decoded->frame_case == NSQ__FRAME__FRAME_RESPONSE,
                  "answer %" PRIu64 " is of kind %d", next, (int) decoded->frame_case);
        IT_ASSERT(seq == next,
                  "answer %" PRIu64 " came for seq %" PRIu64 " (the ones between were lost)", next,
                  seq);
        nsq__frame__free_unpacked(decoded, NULL);
        next++;
    }
    IT_ASSERT(next > count, "only %" PRIu64 " of %" PRIu64 " commands were answered", next - 1,
              count);
    zsock_destroy(&dealer);
}

// Clients that send 20,000 publishes (or 20,000 bad ones, which the broker
// answers faster) before reading a single answer still get every answer.
static void s_unread_answers_case(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    s_unread_answers(broker, "bad!topic", 20000, "E_BAD_TOPIC");
    s_unread_answers(broker, "unread", 20000, NULL);
    IT_ASSERT_INT(it_topic_stat(broker, "unread", "message_count"), ==, 20000);
    char *stats = it_stats(broker);
    int64_t blocked = -1;
    IT_ASSERT(stats && it_json_int(it_json_get(stats, "send_blocked_count"), &blocked),
              "no send_blocked_count in /stats");
    it_note("send_blocked_count %lld", (long long) blocked);
    free(stats);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static int s_compare_ids(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

// Publishing and consuming at once: every message arrives once, long before
// any in-flight timeout could have redelivered it, and nothing stays in
// flight.
static void s_publish_while_consuming(void)
{
    const char *broker_flags[] = {"--msg-timeout=5m", NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    it_sink_t *sink = it_sink_new(broker, "live", "c", 2500, true);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "live", "c", "client_count") == 1, 5000,
                     "the consumer never subscribed");
    const char *flags[] = {"--mode=zmq-pub", "--count=40000", "--connections=2",
                           "--window=1000",  "--topic=live",  NULL};
    it_child_t *bench = s_bench_start(broker, flags);
    IT_ASSERT_PUMPED(&sink, 1, it_sink_count(sink) >= 40000, 60000,
                     "%zu of 40000 messages arrived (the rest wait for a timeout?)",
                     it_sink_count(sink));
    char line[512];
    IT_ASSERT_INT(it_child_read_line(bench, line, sizeof line, 30000), ==, 1);
    it_note("nsq-bench: %s", line);
    IT_ASSERT_INT(it_child_stop(&bench, 0, 30000), ==, 0);
    IT_ASSERT(!strstr(line, "errors="), "publishes failed: %s", line);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "live", "c", "in_flight_count") == 0, 10000,
                     "messages stay in flight after every FIN");
    size_t count = it_sink_count(sink);
    IT_ASSERT_INT(count, ==, 40000);
    const char **ids = malloc(count * sizeof *ids);
    IT_ASSERT(ids, "out of memory");
    for (size_t i = 0; i < count; i++)
        ids[i] = it_sink_get(sink, i)->id;
    qsort(ids, count, sizeof *ids, s_compare_ids);
    for (size_t i = 1; i < count; i++)
        IT_ASSERT(strcmp(ids[i - 1], ids[i]) != 0, "message %s was delivered twice", ids[i]);
    free(ids);
    IT_ASSERT_INT(it_channel_stat(broker, "live", "c", "depth"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "live", "c", "timeout_count"), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, "live", "message_count"), ==, 40000);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Sends command with seq on a raw DEALER.
static void s_send_command(zsock_t *dealer, Nsq__Command *command, uint64_t seq)
{
    command->seq = seq;
    IT_ASSERT(nsq_wire_send_command(zsock_resolve(dealer), command, 0) == 0, "send command: %s",
              zmq_strerror(zmq_errno()));
}

// A consumer (raw DEALER with small buffers) subscribed to topic/channel
// with credit rdy.
static zsock_t *s_raw_consumer(it_broker_t *broker, const char *topic, const char *channel,
                               uint32_t rdy)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    IT_ASSERT(dealer, "zsock_new(DEALER) failed");
    zsock_set_rcvhwm(dealer, 10);  // before connect, so they apply
    zsock_set_rcvbuf(dealer, 16384);
    zsock_set_rcvtimeo(dealer, 1000);
    IT_ASSERT(zsock_connect(dealer, "tcp://%s", it_broker_zmq(broker)) == 0, "connect failed");
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    identify.client_id = "stalled";
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    s_send_command(dealer, &command, 1);
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes(topic);
    sub.channel = nsq_wire_bytes(channel);
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    s_send_command(dealer, &command, 2);
    Nsq__Rdy ready = NSQ__RDY__INIT;
    ready.count = rdy;
    command.cmd_case = NSQ__COMMAND__CMD_RDY;
    command.rdy = &ready;
    s_send_command(dealer, &command, 3);
    return dealer;
}

// Reads Messages frames and FINs each message until count distinct ids
// came; fails the case on a duplicate or after timeout_ms.
static void s_receive_all(zsock_t *dealer, size_t count, int timeout_ms)
{
    uint64_t *ids = calloc(count, sizeof *ids);
    IT_ASSERT(ids, "out of memory");
    size_t received = 0;
    uint64_t seq = 100;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (received < count && it_now_ms() < deadline) {
        zframe_t *frame = zframe_recv(dealer);
        Nsq__Frame *decoded =
            frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
        zframe_destroy(&frame);
        if (decoded && decoded->frame_case == NSQ__FRAME__FRAME_MESSAGES) {
            Nsq__Fin fin = NSQ__FIN__INIT;
            uint64_t batch[256];
            for (size_t i = 0; i < decoded->messages->n_messages; i++) {
                uint64_t id = decoded->messages->messages[i]->id;
                for (size_t j = 0; j < received; j++)
                    IT_ASSERT(ids[j] != id, "message %016" PRIx64 " delivered twice", id);
                IT_ASSERT(received < count, "more messages than published");
                ids[received++] = id;
                batch[fin.n_ids++] = id;
                if (fin.n_ids == 256 || i + 1 == decoded->messages->n_messages) {
                    fin.ids = batch;
                    Nsq__Command command = NSQ__COMMAND__INIT;
                    command.cmd_case = NSQ__COMMAND__CMD_FIN;
                    command.fin = &fin;
                    s_send_command(dealer, &command, seq++);
                    fin.n_ids = 0;
                }
            }
        }
        nsq__frame__free_unpacked(decoded, NULL);
    }
    free(ids);
    IT_ASSERT(received == count, "%zu of %zu messages arrived (the rest wait for a timeout?)",
              received, count);
}

// A consumer that stops reading while 2,000 messages of 16 KiB are sent to
// it one by one gets all of them once it reads again, none by a timeout.
static void s_stalled_consumer(void)
{
    const char *flags[] = {"--msg-timeout=5m", NULL};
    it_broker_t *broker = it_broker_start(flags);
    zsock_t *dealer = s_raw_consumer(broker, "stall", "c", 2500);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "stall", "c", "client_count") == 1, 5000,
                         "the consumer never subscribed");
    size_t size = 16384, count = 2000;
    char *body = malloc(size);
    IT_ASSERT(body, "out of memory");
    memset(body, 's', size);
    for (size_t i = 0; i < count; i++)  // one by one: one Messages frame each
        it_http_expect(broker, "POST", "/pub?topic=stall", body, size, 200, NULL);
    free(body);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "stall", "c", "depth") == 0, 10000,
                         "the broker did not hand every message to the consumer");
    s_receive_all(dealer, count, 30000);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "stall", "c", "in_flight_count") == 0, 5000,
                         "messages stay in flight after their FIN");
    IT_ASSERT_INT(it_channel_stat(broker, "stall", "c", "timeout_count"), ==, 0);
    zsock_destroy(&dealer);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// ---- oversized frames ---------------------------------------------------------------

// A 64 MiB frame to the broker is refused before it is read: the broker's
// memory does not grow and it keeps serving HTTP and ZeroMQ.
static void s_oversized_frame_broker(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    pid_t pid = it_broker_pid(broker);
    zsock_t *dealer = s_dealer(it_broker_zmq(broker));
    s_send_pub(dealer, 1, "before", "x");
    IT_ASSERT(s_wait_response(dealer, 1, 10000), "the first publish was not answered");
    int64_t rss = s_status_kb(pid, "VmRSS"), peak = s_status_kb(pid, "VmHWM");
    s_send_big_frame(dealer, S_BIG_FRAME);
    s_send_pub(dealer, 2, "after", "y");  // answered once the big frame was dealt with
    IT_ASSERT(s_wait_response(dealer, 2, 30000), "no answer after the big frame");
    int64_t rss_after = s_status_kb(pid, "VmRSS"), peak_after = s_status_kb(pid, "VmHWM");
    it_note("broker VmRSS %lld -> %lld kB, VmHWM %lld -> %lld kB", (long long) rss,
            (long long) rss_after, (long long) peak, (long long) peak_after);
    IT_ASSERT(peak_after - peak < S_RSS_SLACK && rss_after - rss < S_RSS_SLACK,
              "a %d MiB frame grew the broker: VmHWM %lld -> %lld kB, VmRSS %lld -> %lld kB",
              S_BIG_FRAME >> 20, (long long) peak, (long long) peak_after, (long long) rss,
              (long long) rss_after);
    zsock_destroy(&dealer);

    IT_ASSERT_INT(it_http(broker, "GET", "/ping", NULL, 0, NULL), ==, 200);
    it_sink_t *sink = it_sink_new(broker, "after", "c", 10, true);
    nsq_producer_t *producer = nsq_producer_new(it_broker_zmq(broker));
    IT_ASSERT(producer && nsq_producer_publish(producer, "after", "z", 1) == 0,
              "publish after the big frame: %s", producer ? nsq_producer_error(producer) : "");
    IT_ASSERT(it_sink_wait(sink, 2, 10000), "only %zu of 2 messages consumed after the big frame",
              it_sink_count(sink));
    nsq_producer_destroy(&producer);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Sends a LookupCommand and returns the answer (caller frees), or NULL.
static Nsq__LookupFrame *s_lookup_call(zsock_t *dealer, Nsq__LookupCommand *command, int timeout_ms)
{
    IT_ASSERT(nsq_wire_send_lookup_command(zsock_resolve(dealer), command, 0) == 0,
              "send LookupCommand: %s", zmq_strerror(zmq_errno()));
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_now_ms() < deadline) {
        zframe_t *frame = zframe_recv(dealer);
        Nsq__LookupFrame *answer =
            frame ? nsq__lookup_frame__unpack(NULL, zframe_size(frame), zframe_data(frame)) : NULL;
        zframe_destroy(&frame);
        if (answer && answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_RESPONSE
            && answer->response->seq == command->seq)
            return answer;
        if (answer && answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_ERROR
            && answer->error->seq == command->seq)
            return answer;
        if (answer)
            nsq__lookup_frame__free_unpacked(answer, NULL);
    }
    return NULL;
}

// Identifies as a broker and registers topic; fails the case unless both
// are answered OK within timeout_ms.
static void s_lookup_register(zsock_t *dealer, uint64_t seq, const char *topic, int timeout_ms)
{
    Nsq__LookupIdentify identify = NSQ__LOOKUP_IDENTIFY__INIT;
    identify.broadcast_address = nsq_wire_bytes("10.9.8.7");
    identify.hostname = nsq_wire_bytes("fake");
    identify.http_port = 30151;  // announced only: nothing listens or connects there
    identify.zmq_port = 30152;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    command.seq = seq;
    Nsq__LookupFrame *answer = s_lookup_call(dealer, &command, timeout_ms);
    bool ok = answer && answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_RESPONSE;
    if (answer)
        nsq__lookup_frame__free_unpacked(answer, NULL);
    IT_ASSERT(ok, "IDENTIFY to lookupd was not answered OK");
    Nsq__Register reg = NSQ__REGISTER__INIT;
    reg.topic = nsq_wire_bytes(topic);
    reg.channel = nsq_wire_bytes("");
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_REG;
    command.reg = &reg;
    command.seq = seq + 1;
    answer = s_lookup_call(dealer, &command, timeout_ms);
    ok = answer && answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_RESPONSE;
    if (answer)
        nsq__lookup_frame__free_unpacked(answer, NULL);
    IT_ASSERT(ok, "REGISTER %s was not answered OK", topic);
}

// The same for lookupd: its cap is fixed.
static void s_oversized_frame_lookupd(void)
{
    it_broker_t *lookupd = it_lookupd_start(NULL);
    pid_t pid = it_broker_pid(lookupd);
    zsock_t *dealer = s_dealer(it_broker_zmq(lookupd));
    s_lookup_register(dealer, 1, "before", 10000);
    int64_t rss = s_status_kb(pid, "VmRSS"), peak = s_status_kb(pid, "VmHWM");
    s_send_big_frame(dealer, S_BIG_FRAME);
    s_lookup_register(dealer, 3, "after", 30000);  // once the big frame was dealt with
    int64_t rss_after = s_status_kb(pid, "VmRSS"), peak_after = s_status_kb(pid, "VmHWM");
    it_note("lookupd VmRSS %lld -> %lld kB, VmHWM %lld -> %lld kB", (long long) rss,
            (long long) rss_after, (long long) peak, (long long) peak_after);
    IT_ASSERT(peak_after - peak < S_RSS_SLACK && rss_after - rss < S_RSS_SLACK,
              "a %d MiB frame grew lookupd: VmHWM %lld -> %lld kB, VmRSS %lld -> %lld kB",
              S_BIG_FRAME >> 20, (long long) peak, (long long) peak_after, (long long) rss,
              (long long) rss_after);
    zsock_destroy(&dealer);
    IT_ASSERT_INT(it_http(lookupd, "GET", "/ping", NULL, 0, NULL), ==, 200);
    IT_ASSERT_INT(it_http(lookupd, "GET", "/lookup?topic=after", NULL, 0, NULL), ==, 200);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// ---- remote addresses ---------------------------------------------------------------

// /stats names a consumer by the IP:port of its connection.
static void s_stats_remote_address(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "where", "c", 1, true);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "where", "c", "client_count") == 1, 5000,
                     "the consumer never subscribed");
    char *stats = it_stats(broker);
    const char *topic = it_json_find(it_json_get(stats, "topics"), "topic_name", "where");
    const char *channel = it_json_find(it_json_get(topic, "channels"), "channel_name", "c");
    const char *clients = it_json_get(channel, "clients");
    char address[128] = "";
    IT_ASSERT(
        clients && *clients == '['
            && it_json_string(it_json_get(clients + 1, "remote_address"), address, sizeof address),
        "no remote_address in /stats: %.500s", stats);
    free(stats);
    s_assert_peer_of(address, it_broker_zmq(broker));
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// lookupd's /nodes names a broker by the IP:port of its connection.
static void s_nodes_remote_address(void)
{
    it_broker_t *lookupd = it_lookupd_start(NULL);
    char lookupd_flag[96];
    snprintf(lookupd_flag, sizeof lookupd_flag, "--lookupd-address=%s", it_broker_zmq(lookupd));
    const char *flags[] = {"--broadcast-address=127.0.0.1", lookupd_flag, NULL};
    it_broker_t *broker = it_broker_start(flags);
    char *nodes = NULL, address[128] = "";
    int64_t deadline = it_now_ms() + 10000;
    while (!address[0] && it_now_ms() < deadline) {
        free(nodes);
        nodes = NULL;
        IT_ASSERT_INT(it_http(lookupd, "GET", "/nodes", NULL, 0, &nodes), ==, 200);
        const char *producers = it_json_get(nodes, "producers");
        if (producers && *producers == '[')
            it_json_string(it_json_get(producers + 1, "remote_address"), address, sizeof address);
        if (!address[0])
            it_sleep_ms(20);
    }
    IT_ASSERT(address[0], "the broker never showed in /nodes: %.500s", nodes ? nodes : "");
    free(nodes);
    s_assert_peer_of(address, it_broker_zmq(lookupd));
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// ---- nsq-bench counts its own messages ------------------------------------------------

// Messages left on topic/channel bench/bench (the old defaults).
static void s_leave_leftovers(it_broker_t *broker, const char *topic, const char *channel,
                              size_t count, const char *body, size_t size)
{
    char path[160];
    snprintf(path, sizeof path, "/channel/create?topic=%s&channel=%s", topic, channel);
    it_post_ok(broker, path);
    snprintf(path, sizeof path, "/pub?topic=%s", topic);
    for (size_t i = 0; i < count; i++)
        it_http_expect(broker, "POST", path, body, size, 200, NULL);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, topic, channel, "depth") == (int64_t) count, 5000,
                         "leftovers not queued");
}

// A consume run counts its own messages, not what an earlier run left on
// the default topic (and leaves those alone).
static void s_bench_leftovers(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    s_leave_leftovers(broker, "bench", "bench", 150, "leftover", 8);
    char line[512];
    const char *flags[] = {"--mode=zmq-consume", "--count=100", NULL};
    s_bench_run(broker, flags, line, sizeof line);
    IT_ASSERT_INT(s_field(line, "count"), ==, 100);
    IT_ASSERT_INT(it_channel_stat(broker, "bench", "bench", "depth"), ==, 150);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// On a topic the user names, leftovers (here stamped as if sent in the
// future) are neither counted nor measured: latency is never negative.
static void s_bench_named_topic(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t future = ((int64_t) now.tv_sec + 3600) * 1000000000LL;
    int64_t stamp[2] = {future, future};
    s_leave_leftovers(broker, "named", "named", 150, (const char *) stamp, sizeof stamp);
    char line[512];
    const char *flags[] = {"--mode=zmq-e2e", "--count=200", "--topic=named", "--channel=named",
                           NULL};
    s_bench_run(broker, flags, line, sizeof line);
    IT_ASSERT_INT(s_field(line, "count"), ==, 200);
    IT_ASSERT_INT(s_field(line, "p50_us"), >=, 0);
    IT_ASSERT_INT(s_field(line, "p99_us"), >=, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// zmq-pub --batch publishes MPUBs: every message arrives once, the last
// short batch included.
static void s_bench_batches(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char line[512];
    const char *flags[] = {"--mode=zmq-pub", "--count=10001", "--batch=64", "--connections=2",
                           "--window=256",   "--topic=mpub",  NULL};
    s_bench_run(broker, flags, line, sizeof line);
    IT_ASSERT(!strstr(line, "errors="), "publishes failed: %s", line);
    IT_ASSERT_INT(s_field(line, "count"), ==, 10001);
    IT_ASSERT_INT(it_topic_stat(broker, "mpub", "message_count"), ==, 10001);
    IT_ASSERT_INT(it_topic_stat(broker, "mpub", "depth"), ==, 10001);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"window_500", s_window_500},
        {"window_1000", s_window_1000},
        {"window_2000", s_window_2000},
        {"window_5000", s_window_5000},
        {"unread_answers", s_unread_answers_case},
        {"publish_while_consuming", s_publish_while_consuming},
        {"stalled_consumer", s_stalled_consumer},
        {"oversized_frame_broker", s_oversized_frame_broker},
        {"oversized_frame_lookupd", s_oversized_frame_lookupd},
        {"stats_remote_address", s_stats_remote_address},
        {"nodes_remote_address", s_nodes_remote_address},
        {"bench_leftovers", s_bench_leftovers},
        {"bench_named_topic", s_bench_named_topic},
        {"bench_batches", s_bench_batches},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
