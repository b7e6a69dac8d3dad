/*  harness - what the integration tests need to drive the real binaries
    SPDX-License-Identifier: MIT

    Each test executable lists its cases and hands them to it_run, which runs
    every case in a forked process of its own: one failing case cannot take
    the others down, and whatever a case started dies with it. Inside a case:

        it_broker_start          nsq-broker ($NSQ_BROKER) on 127.0.0.1:0 with a
                                 fresh data dir; waits for its READY line
        it_http, it_http_expect  HTTP requests (libcurl) and error checks
        it_topic_stat, it_channel_stat
                                 numbers read from /stats?format=json
        it_sink_new, it_sink_pump
                                 a consumer (client API) that records what it
                                 receives; auto-FIN or hold
        it_raw_new, it_raw_send, it_raw_expect
                                 a bare DEALER speaking the protobuf protocol
        it_worker_start, it_child_read_line
                                 nsq-worker ($NSQ_WORKER) with its stdout piped
        IT_ASSERT*, IT_ASSERT_EVENTUALLY, IT_ASSERT_PUMPED
                                 checks; positive conditions are polled
                                 against a deadline, never slept for
        it_broker_stop           SIGTERM by PID; returns the exit status

    A failed check prints the check, the tail of every log the case started
    (broker and worker stderr), keeps the case's temporary directory, kills
    every child by PID and ends the case with status 1. A passing case
    removes its temporary directory. Children also get PR_SET_PDEATHSIG, so
    nothing outlives a case that was killed from outside.
*/
#ifndef IT_HARNESS_H
#define IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "nsq.h"
#include "nsq_wire.h"

// ---- cases and checks -------------------------------------------------

typedef void(it_case_fn)(void);

typedef struct {
    const char *name;  // run by name: `it_delivery credit`
    it_case_fn *fn;
} it_case_t;

// Runs the cases named in argv (all when none is named), each in its own
// process with a 90 s limit. Prints one line per case and a closing
// "N passed, N failed". Returns the process exit status (0 = all passed).
int it_run(int argc, char **argv, const it_case_t *cases, size_t count);

// Ends the current case as failed: prints where and why, every log the case
// started, kills its children. Never returns.
_Noreturn void it_fail(const char *file, int line, const char *check, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

// Prints a progress note to stderr (shown by meson on failure).
void it_note(const char *format, ...) __attribute__((format(printf, 1, 2)));

#define IT_ASSERT(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            it_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                       \
    } while (0)

// Integer comparison that prints both sides: IT_ASSERT_INT(got, ==, 3).
#define IT_ASSERT_INT(a, op, b)                                                                    \
    do {                                                                                           \
        long long a_ = (long long) (a), b_ = (long long) (b);                                      \
        if (!(a_ op b_))                                                                           \
            it_fail(__FILE__, __LINE__, #a " " #op " " #b, "%lld " #op " %lld is false", a_, b_);  \
    } while (0)

#define IT_ASSERT_STR(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            it_fail(__FILE__, __LINE__, #a " == " #b, "\"%s\" != \"%s\"", a_ ? a_ : "(null)",      \
                    b_ ? b_ : "(null)");                                                           \
    } while (0)

// Polls expr every 10 ms until it holds; fails the case after timeout_ms.
#define IT_ASSERT_EVENTUALLY(expr, timeout_ms, ...)                                                \
    do {                                                                                           \
        int64_t deadline_ = it_now_ms() + (timeout_ms);                                            \
        while (!(expr)) {                                                                          \
            if (it_now_ms() >= deadline_)                                                          \
                it_fail(__FILE__, __LINE__, #expr " (within " #timeout_ms " ms)", __VA_ARGS__);    \
            it_sleep_ms(10);                                                                       \
        }                                                                                          \
    } while (0)

// Like IT_ASSERT_EVENTUALLY, but runs the sinks' consumers between checks
// (their messages arrive only while they are pumped).
#define IT_ASSERT_PUMPED(sinks, sink_count, expr, timeout_ms, ...)                                 \
    do {                                                                                           \
        int64_t deadline_ = it_now_ms() + (timeout_ms);                                            \
        while (!(expr)) {                                                                          \
            if (it_now_ms() >= deadline_)                                                          \
                it_fail(__FILE__, __LINE__, #expr " (within " #timeout_ms " ms)", __VA_ARGS__);    \
            it_sink_pump((sinks), (sink_count), 20);                                               \
        }                                                                                          \
    } while (0)

// Monotonic milliseconds.
int64_t it_now_ms(void);
void it_sleep_ms(int milliseconds);

// Calls condition(arg) every 10 ms until it returns true (returns true) or
// timeout_ms passes (returns false).
bool it_wait_until(bool (*condition)(void *arg), void *arg, int timeout_ms);

// ---- child processes --------------------------------------------------

typedef struct _it_child_t it_child_t;

// Starts argv[0] with argv (NULL-terminated), stdout piped to the test and
// stderr kept in a log file named after name. Fails the case if it cannot.
it_child_t *it_child_start(const char *name, const char *const *argv);

// Reads one line of the child's stdout (newline stripped) into line.
// Returns 1, 0 on timeout, -1 at end of file.
int it_child_read_line(it_child_t *self, char *line, size_t size, int timeout_ms);

pid_t it_child_pid(it_child_t *self);

// The file the child's stderr goes to. Borrowed; stays valid (and the file
// stays) after it_child_stop, until the case ends.
const char *it_child_log_path(it_child_t *self);

// Sends signal (0 = none) to the child by its PID and waits up to
// timeout_ms for it to exit, then SIGKILLs it. Returns the exit code, 128 +
// the signal number if a signal ended it, or -1 if it had to be killed.
// Frees the child and nulls *self_p; its log stays until the case ends.
int it_child_stop(it_child_t **self_p, int signal, int timeout_ms);

// Waits up to timeout_ms for a line of the child's stderr log that starts
// with prefix; copies it (newline stripped) into line. Returns 1, or 0 on
// timeout.
int it_child_wait_log(it_child_t *self, const char *prefix, char *line, size_t size,
                      int timeout_ms);

// The reference auth server (nsq-auth-server, $NSQ_AUTH_SERVER) a case
// starts on a free port with a file of secrets.
typedef struct {
    it_child_t *child;  // nsq-auth-server
    char address[64];   // its HOST:PORT (for --auth-http-address)
    char path[512];     // its file
} it_authd_t;

// Writes text to path at once (a temporary file renamed over it, so a
// reader sees the old file or the new one). Fails the case if it cannot.
void it_write_file(const char *path, const char *text);

// Starts nsq-auth-server with text as its file (in it_tmp_dir) and waits
// for its READY line. Stop it with it_child_stop(&authd.child, ...).
it_authd_t it_authd_start(const char *text);

// Starts nsq-worker --broker-address=ZMQ --topic --channel plus extra flags
// (NULL-terminated list, may be NULL), adding --stdout unless the flags name
// a handler and --http-address=127.0.0.1:0 unless they set one.
typedef struct _it_broker_t it_broker_t;
it_child_t *it_worker_start(it_broker_t *broker, const char *topic, const char *channel,
                            const char *const *extra_flags);

// Waits for the worker's "READY http=HOST:PORT" line on stderr and copies
// HOST:PORT into http. Fails the case after 10 s.
void it_worker_wait_ready(it_child_t *worker, char *http, size_t size);

// ---- broker -----------------------------------------------------------

// Starts nsq-broker with ephemeral ports, a fresh data dir and extra flags
// (NULL-terminated list, may be NULL); waits up to 10 s for READY. Fails
// the case if the broker does not get ready.
it_broker_t *it_broker_start(const char *const *flags);

// Starts nsq-lookupd ($NSQ_LOOKUPD) on 127.0.0.1 with ephemeral ports
// (unless flags set --http-address or --zmq-address) and waits for READY.
// The handle is an it_broker_t so that it_http*, it_broker_http,
// it_broker_zmq, it_broker_pid and it_broker_stop work on it.
it_broker_t *it_lookupd_start(const char *const *flags);

// Starts nsq-broker with flags expected to be refused; returns its exit
// status (-1 if it printed READY or did not exit within 10 s), and its
// stderr's last line in last_line.
int it_broker_refuses(const char *const *flags, char *last_line, size_t size);

// "127.0.0.1:PORT". Borrowed.
const char *it_broker_http(it_broker_t *self);
const char *it_broker_zmq(it_broker_t *self);
// The NSQ TCP port from the READY line (the harness starts brokers with
// --tcp-address=127.0.0.1:0 unless the flags set it); fails the case if
// the broker announced none.
uint16_t it_broker_tcp_port(it_broker_t *self);
pid_t it_broker_pid(it_broker_t *self);

// Waits up to timeout_ms for a line of the broker's (or lookupd's) stderr
// log that contains text; copies it (newline stripped) into line. Returns
// 1, or 0 on timeout.
int it_broker_wait_log(it_broker_t *self, const char *text, char *line, size_t size,
                       int timeout_ms);

// SIGTERM by PID, waits up to 10 s (then SIGKILL). Returns as it_child_stop.
int it_broker_stop(it_broker_t **self_p);

// Waits up to 10 s (then SIGKILL) for a broker the test has signalled
// already: a second SIGTERM could reach it after it restored the default
// handler on its way out. Returns as it_child_stop.
int it_broker_wait(it_broker_t **self_p);

// ---- HTTP -------------------------------------------------------------

// Sends method path (e.g. "/pub?topic=t") with body (NULL = none) to the
// broker's HTTP port. Returns the status, or -1 if no answer came within
// 10 s. If reply is not NULL, *reply gets the body, NUL-terminated; caller
// frees it.
int it_http(it_broker_t *broker, const char *method, const char *path, const void *body,
            size_t size, char **reply);

// it_http to any "host:port" (a worker's probes, a test's own server).
int it_http_to(const char *address, const char *method, const char *path, const void *body,
               size_t size, char **reply);

// it_http with a string body (or NULL), reply discarded.
int it_http_status(it_broker_t *broker, const char *method, const char *path, const char *body);

// Checks that the request answers status and, when code is not NULL, the
// JSON body {"message":code}; code may list alternatives: "A|B".
#define it_http_expect(broker, method, path, body, size, status, code)                             \
    it_http_expect_at(__FILE__, __LINE__, broker, method, path, body, size, status, code)
void it_http_expect_at(const char *file, int line, it_broker_t *broker, const char *method,
                       const char *path, const void *body, size_t size, int status,
                       const char *code);

// POST /pub?topic=topic with body; fails the case unless 200.
void it_pub(it_broker_t *broker, const char *topic, const char *body);

// POST path (e.g. "/channel/create?topic=t&channel=c"); fails unless 200.
void it_post_ok(it_broker_t *broker, const char *path);

// A binary /mpub body: [4B BE declared_count] then ([4B BE size][data]) for
// each of count bodies. Caller frees; *size gets its length.
char *it_mpub_binary(uint32_t declared_count, const char *const *bodies, size_t count,
                     size_t *size);

// ---- JSON and /stats --------------------------------------------------

// Read with jansson. json and value are JSON text; what follows the first
// value in them is ignored, so "[{...},{...}]" + 1 reads the first element.
// The value of key in the object at json, or NULL: JSON text, kept until
// the process ends.
const char *it_json_get(const char *json, const char *key);
// The first object in the array at json whose key is the string value (JSON
// text, kept as above), or NULL.
const char *it_json_find(const char *json, const char *key, const char *value);
// Reads a number (true/false read as 1/0). Returns true on success.
bool it_json_int(const char *value, int64_t *out);
// Copies a string value, escapes decoded, cut to size - 1 bytes. Returns
// true on success.
bool it_json_string(const char *value, char *out, size_t size);

// True if text parses as JSON with a real parser: /usr/bin/python3's json
// module after a strict UTF-8 decode. When check is not NULL it is a
// Python expression over the parsed `doc` that must be true as well (e.g.
// "doc['topics'] == []"). Without /usr/bin/python3 it notes so and checks
// less: valid UTF-8 and no raw control character (check is skipped).
bool it_json_parses(const char *text, const char *check);

// /stats?format=json, NUL-terminated; NULL unless 200. Caller frees.
char *it_stats(it_broker_t *broker);

// A field of a topic or channel in /stats (booleans as 0/1); -1 when the
// topic, channel or field is absent.
int64_t it_topic_stat(it_broker_t *broker, const char *topic, const char *field);
int64_t it_channel_stat(it_broker_t *broker, const char *topic, const char *channel,
                        const char *field);
bool it_channel_exists(it_broker_t *broker, const char *topic, const char *channel);
// True if the channel holds nothing: no message queued, in flight or deferred.
bool it_channel_settled(it_broker_t *broker, const char *topic, const char *channel);
// Waits up to 5 s until clients consumers are subscribed to the channel.
void it_wait_clients(it_broker_t *broker, const char *topic, const char *channel, int clients);

// A value of the worker's /metrics at http (HOST:PORT); -1 if absent or
// unreachable.
int64_t it_worker_metric(const char *http, const char *name);

// Lines of the file at path (0 if it does not exist) that contain needle
// (every line if needle is NULL).
int it_count_lines(const char *path, const char *needle);

// ---- consumer sink (client API) ---------------------------------------

typedef struct {
    char id[17];        // hex id as the client API gives it
    char *body;         // copy, NUL-terminated
    size_t size;        // body bytes
    uint32_t attempts;  // delivery attempt, 1 first
    int64_t timestamp;  // ns since the epoch when the broker accepted it
    int64_t at_ms;      // it_now_ms() when the handler ran
    nsq_msg_t *msg;     // still unsettled (held), else NULL
} it_delivery_t;

typedef struct _it_sink_t it_sink_t;

// A consumer of (topic, channel) on broker with max_in_flight; auto_fin
// settles every message in the handler, otherwise messages are held.
it_sink_t *it_sink_new(it_broker_t *broker, const char *topic, const char *channel,
                       uint32_t max_in_flight, bool auto_fin);
// The same, asking the broker for msg_timeout_ms in IDENTIFY.
it_sink_t *it_sink_new_msg_timeout(it_broker_t *broker, const char *topic, const char *channel,
                                   uint32_t max_in_flight, bool auto_fin, uint32_t msg_timeout_ms);
// Destroys the consumer (held messages are dropped; the broker requeues).
void it_sink_destroy(it_sink_t **self_p);
nsq_consumer_t *it_sink_consumer(it_sink_t *self);

// Deliveries so far, and one of them. Borrowed; valid until the next pump.
size_t it_sink_count(it_sink_t *self);
it_delivery_t *it_sink_get(it_sink_t *self, size_t index);
// Deliveries whose body is body.
size_t it_sink_count_body(it_sink_t *self, const char *body);

// Runs each sink's consumer for about milliseconds in total.
void it_sink_pump(it_sink_t **sinks, size_t count, int milliseconds);
// Pumps until self has count deliveries; false after timeout_ms.
bool it_sink_wait(it_sink_t *self, size_t count, int timeout_ms);

// Settles the held delivery index: FIN, REQ with delay, TOUCH. Fail the
// case if the message is not held or the client API refuses. The client
// API batches settlements: they reach the broker when the sink is pumped
// next, so wait for their effect with IT_ASSERT_PUMPED.
void it_sink_fin(it_sink_t *self, size_t index);
void it_sink_req(it_sink_t *self, size_t index, uint32_t delay_ms);
void it_sink_touch(it_sink_t *self, size_t index);

// ---- raw protocol client ----------------------------------------------

typedef struct _it_raw_t it_raw_t;

// A DEALER connected to the broker's ZeroMQ address (IPv6 in brackets too).
it_raw_t *it_raw_new(it_broker_t *broker);
void it_raw_destroy(it_raw_t **self_p);

// Sends bytes as one ZeroMQ frame; fails the case if it cannot.
void it_raw_send_bytes(it_raw_t *self, const void *data, size_t size);
// Sends command with seq (version filled by nsq_wire_send_command).
void it_raw_send(it_raw_t *self, Nsq__Command *command, uint64_t seq);
// Shorthands for the common commands.
void it_raw_identify(it_raw_t *self, uint64_t seq);
void it_raw_sub(it_raw_t *self, uint64_t seq, const char *topic, const char *channel);
void it_raw_rdy(it_raw_t *self, uint64_t seq, uint32_t count);
void it_raw_fin(it_raw_t *self, uint64_t seq, uint64_t id);

// Waits for the next frame of kind, skipping (and noting) others; NULL
// after timeout_ms. Caller frees with nsq__frame__free_unpacked(f, NULL).
Nsq__Frame *it_raw_expect(it_raw_t *self, Nsq__Frame__FrameCase kind, int timeout_ms);

// Waits for the next frame of any kind; NULL after timeout_ms. Caller frees.
Nsq__Frame *it_raw_next(it_raw_t *self, int timeout_ms);

// ---- misc -------------------------------------------------------------

// Connects a TCP socket to "host:port" or "[ipv6]:port"; -1 on failure.
int it_tcp_connect(const char *address);

// Sends request as raw bytes on a new connection to address and reads what
// comes back into reply (NUL-terminated, truncated to size) until the
// server closes the connection, or 5 s pass. Returns the status of the
// first answer, 0 if none came. For requests curl will not send.
int it_http_raw(const char *address, const char *request, char *reply, size_t size);

// Sends requests whose body length two HTTP parsers could read differently
// (two Content-Length headers, Content-Length with Transfer-Encoding, an
// unknown or repeated Transfer-Encoding) for path to address, each hiding a
// second request (POST /topic/create?topic=smuggled). Fails the case unless
// each gets one 400 and nothing more.
void it_http_expect_smuggling_refused(const char *address, const char *path);

// A loopback port that nothing listens on, held: a socket bound to
// 127.0.0.1:0 that never listens, so connections to it are refused and no
// other process (nor ZeroMQ's own port search) can take it meanwhile.
// Returns the socket (close it to free the port); *port gets the port.
// Fails the case if it cannot.
int it_port_hold(int *port);

// This case's temporary directory (created on first use, removed when the
// case passes). Borrowed.
const char *it_tmp_dir(void);

// The absolute path of this test executable (to start it as a helper).
const char *it_self_path(void);

#endif
