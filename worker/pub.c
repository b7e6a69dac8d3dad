/*  nsq-pub - publish each line of stdin as one message (NSQ's to_nsq)
    SPDX-License-Identifier: MIT

    `tail -F app.log | nsq-pub --topic=logs --http-address=broker:4151`
    Lines are published in order, in batches of --batch-size lines (or
    1 MiB): over HTTP one /mpub (text mode, one line per message), over
    ZeroMQ one MPUB; each batch is acknowledged before the next goes out. Empty lines are skipped
   (NSQ refuses empty messages); a trailing carriage return is dropped. A batch also goes out when
   stdin has nothing more to read, so interactive use is not held back.

    Exit codes: 0 when every line was acknowledged; 1 when a publish failed
    (the reason on stderr, with the broker's address; lines after it are
    not published); 2 on bad configuration.
*/
#include "nsq.h"
#include "nsq_curve.h"
#include "nsq_http_client.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_options.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_BATCH_BYTES (1 << 20)  // a batch is sent at this size whatever its line count

typedef struct {
    const char *topic;                      // where to publish
    const char *http_address;               // HTTP mode, or NULL
    const char *zmq_address;                // ZeroMQ mode, or NULL
    nsq_producer_t *producer;               // ZeroMQ mode, or NULL
    CURL *curl;                             // HTTP mode
    char url[512];                          // /mpub URL
    char *batch;                            // HTTP mode: lines joined by '\n'
    size_t batch_size;                      // bytes in batch
    size_t batch_lines;                     // lines in batch
    size_t batch_max;                       // lines per batch
    size_t *starts;                         // offset of each line in batch (batch_max entries)
    long timeout_ms;                        // per publish
    const char *log_level;                  // --log-level
    uint64_t published;                     // lines acknowledged
    const char *zmq_curve_key_file;         // CURVE: our key pair, NULL = plain
    const char *zmq_curve_server_key_file;  // CURVE: the broker's public certificate
    const char *tls_root_ca_file;           // https: CA to trust (NULL = the system's)
    const char *tls_cert;                   // https: client certificate, or NULL
    const char *tls_key;                    // https: its key, or NULL
    const char *auth_secret;     // --auth-secret (borrowed until setup, blanked in argv after)
    struct curl_slist *headers;  // HTTP mode: Authorization: Bearer, or NULL
} s_pub_t;

// Each option fills its field of s_pub_t.
static const nsq_option_spec_t s_specs[] = {
    {"topic", NSQ_OPTION_STRING, NULL, 0, 0, false, "topic to publish to (required)",
     NSQ_OPTION_FIELD(s_pub_t, topic)},
    {"http-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "broker HTTP address host:port (publish with /mpub)", NSQ_OPTION_FIELD(s_pub_t, http_address)},
    {"broker-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "broker ZeroMQ address host:port (publish with PUB)", NSQ_OPTION_FIELD(s_pub_t, zmq_address)},
    {"batch-size", NSQ_OPTION_INT, "100", 1, 10000, false,
     "lines per /mpub or MPUB (a batch is also sent at 1 MiB)",
     NSQ_OPTION_FIELD(s_pub_t, batch_max)},
    {"timeout", NSQ_OPTION_DURATION, "10s", 100, 3600000, false,
     "how long one publish may take before it counts as failed",
     NSQ_OPTION_FIELD(s_pub_t, timeout_ms)},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error",
     NSQ_OPTION_FIELD(s_pub_t, log_level)},
    NSQ_CURVE_CLIENT_OPTION_ROWS(s_pub_t, ),
    NSQ_HTTP_CLIENT_TLS_OPTION_ROWS(s_pub_t, ),
    {"auth-secret", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "secret for a broker with --auth-http-address (HTTP: Authorization: Bearer; ZeroMQ: AUTH); "
     "prefer NSQ_PUB_AUTH_SECRET, the flag's value is blanked from the command line",
     NSQ_OPTION_FIELD(s_pub_t, auth_secret)},
};

// Keeps the start of the broker's answer for error messages.
static size_t s_reply(char *data, size_t size, size_t count, void *arg)
{
    char *reply = arg;
    size_t have = strlen(reply), bytes = size * count;
    size_t room = 255 - have;
    memcpy(reply + have, data, bytes < room ? bytes : room);
    reply[have + (bytes < room ? bytes : room)] = '\0';
    return bytes;
}

// Sends the HTTP batch. Returns 0, or -1 with the reason logged.
static int s_http_flush(s_pub_t *self)
{
    char reply[256] = "";
    if (self->batch_lines == 0)
        return 0;
    curl_easy_setopt(self->curl, CURLOPT_URL, self->url);
    curl_easy_setopt(self->curl, CURLOPT_POSTFIELDS, self->batch);
    curl_easy_setopt(self->curl, CURLOPT_POSTFIELDSIZE, (long) self->batch_size);
    curl_easy_setopt(self->curl, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, s_reply);
    curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, reply);
    CURLcode rc = curl_easy_perform(self->curl);
    long status = 0;
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
        if (rc != CURLE_OK)
            nsq_error("publish to %s failed: %s", self->http_address, curl_easy_strerror(rc));
        else
            nsq_error("publish to %s failed: HTTP %ld %s", self->http_address, status, reply);
        return -1;
    }
    self->published += self->batch_lines;
    self->batch_size = 0;
    self->batch_lines = 0;
    return 0;
}

// Sends the batch as one MPUB over ZeroMQ. Returns 0, or -1 with the reason logged.
static int s_zmq_flush(s_pub_t *self)
{
    if (self->batch_lines == 0)
        return 0;
    const void **bodies = malloc(self->batch_lines * sizeof *bodies);
    size_t *sizes = malloc(self->batch_lines * sizeof *sizes);
    int rc = bodies && sizes ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < self->batch_lines; i++) {
        size_t end = i + 1 < self->batch_lines ? self->starts[i + 1] - 1 : self->batch_size;
        bodies[i] = self->batch + self->starts[i];
        sizes[i] = end - self->starts[i];
    }
    if (rc == 0)
        rc = nsq_producer_mpublish(self->producer, self->topic, (const void *const *) bodies, sizes,
                                   self->batch_lines);
    if (rc)
        nsq_error("publish to %s failed: %s", self->zmq_address,
                  bodies && sizes ? nsq_producer_error(self->producer) : "out of memory");
    free(bodies);
    free(sizes);
    if (rc == 0) {
        self->published += self->batch_lines;
        self->batch_size = 0;
        self->batch_lines = 0;
    }
    return rc;
}

// Flushes whatever is pending. Returns 0, or -1 if a publish failed.
static int s_flush(s_pub_t *self)
{
    return self->producer ? s_zmq_flush(self) : s_http_flush(self);
}

// Queues one line (without its newline); sends the batch when it is full.
// Returns 0, or -1 if a publish failed.
static int s_add(s_pub_t *self, const char *line, size_t size)
{
    char *grown = realloc(self->batch, self->batch_size + size + 2);
    if (!grown) {
        nsq_error("out of memory");
        return -1;
    }
    self->batch = grown;
    if (self->batch_lines)
        self->batch[self->batch_size++] = '\n';
    self->starts[self->batch_lines++] = self->batch_size;
    memcpy(self->batch + self->batch_size, line, size);
    self->batch_size += size;
    bool full = self->batch_lines >= self->batch_max || self->batch_size >= S_BATCH_BYTES;
    return full ? s_flush(self) : 0;
}

static bool s_stdin_idle(void)
{
    struct pollfd fd = {.fd = STDIN_FILENO, .events = POLLIN};
    return poll(&fd, 1, 0) == 0;
}

// Publishes the complete lines in data[0, *used); keeps an unfinished
// last line at the start of data. Returns 0, or -1 if a publish failed.
static int s_lines(s_pub_t *self, char *data, size_t *used, bool at_end)
{
    size_t start = 0;
    while (start < *used) {
        char *newline = memchr(data + start, '\n', *used - start);
        if (!newline && !at_end)
            break;
        size_t end = newline ? (size_t) (newline - data) : *used;
        size_t length = end - start;
        if (length > 0 && data[start + length - 1] == '\r')
            length--;
        if (length > 0 && s_add(self, data + start, length))
            return -1;
        start = end + 1;
    }
    if (start > *used)
        start = *used;
    memmove(data, data + start, *used - start);
    *used -= start;
    return 0;
}

// Publishes stdin line by line. Returns the exit code.
static int s_run(s_pub_t *self)
{
    size_t capacity = 1 << 16, used = 0;
    char *data = malloc(capacity);
    int rc = data ? 0 : -1;
    while (rc == 0) {
        if (used == capacity) {  // a line longer than the buffer: grow it
            char *grown = realloc(data, capacity * 2);
            if (!grown) {
                rc = -1;
                break;
            }
            data = grown;
            capacity *= 2;
        }
        ssize_t got = read(STDIN_FILENO, data + used, capacity - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = s_lines(self, data, &used, true);
            break;
        }
        used += (size_t) got;
        rc = s_lines(self, data, &used, false);
        if (rc == 0 && s_stdin_idle())  // nothing more waiting: do not hold lines back
            rc = s_flush(self);
    }
    if (rc == 0)
        rc = s_flush(self);
    free(data);
    nsq_info("published %llu message(s) to topic %s on %s", (unsigned long long) self->published,
             self->topic, self->producer ? self->zmq_address : self->http_address);
    return rc ? 1 : 0;
}

// Checks the options and sets up the chosen transport. Returns 0 or -1.
static int s_setup(s_pub_t *self, nsq_options_t *options, char *error, size_t size)
{
    nsq_options_store(options, self);
    const char *zmq_address = self->zmq_address;
    self->starts = malloc(self->batch_max * sizeof *self->starts);
    if (!self->starts)
        return snprintf(error, size, "out of memory"), -1;
    nsq_log_level_t level;
    if (!self->topic || !nsq_name_is_valid(self->topic))
        return snprintf(error, size, self->topic ? "invalid --topic" : "--topic is required"), -1;
    if (!self->http_address == !zmq_address)
        return snprintf(error, size, "give one of --http-address or --broker-address"), -1;
    if (nsq_log_level_parse(self->log_level, &level))
        return snprintf(error, size, "invalid --log-level"), -1;
    nsq_log_set_level(level);
    if (zmq_address) {
        self->producer = nsq_producer_new(zmq_address);
        if (!self->producer)
            return snprintf(error, size, "invalid --broker-address %s", zmq_address), -1;
        nsq_producer_set_timeout(self->producer, (int) self->timeout_ms);
        if (nsq_curve_client_check(self->zmq_curve_key_file, self->zmq_curve_server_key_file, error,
                                   size))
            return -1;  // one line, ours, rather than the producer's log and ours
        if ((self->zmq_curve_key_file || self->zmq_curve_server_key_file)
            && nsq_producer_set_curve(self->producer, self->zmq_curve_key_file,
                                      self->zmq_curve_server_key_file))
            return snprintf(error, size, "CURVE keys refused (see the line above)"), -1;
        nsq_producer_set_auth_secret(self->producer, self->auth_secret);
        return 0;
    }
    if (!strchr(self->http_address, ':'))
        return snprintf(error, size, "invalid --http-address %s", self->http_address), -1;
    char path[256];
    snprintf(path, sizeof path, "/mpub?topic=%s", self->topic);
    if (nsq_http_client_url(self->url, sizeof self->url, self->http_address, path))
        return snprintf(error, size, "invalid --http-address %s", self->http_address), -1;
    nsq_http_client_tls_t tls = {self->tls_root_ca_file, self->tls_cert, self->tls_key};
    if (nsq_http_client_tls_check(&tls, "tls-key", error, size))
        return -1;
    self->curl = curl_easy_init();
    if (!self->curl)
        return snprintf(error, size, "cannot initialise libcurl"), -1;
    curl_easy_setopt(self->curl, CURLOPT_NOSIGNAL, 1L);
    nsq_http_client_tls_apply(self->curl, &tls);
    curl_easy_setopt(self->curl, CURLOPT_CONNECTTIMEOUT_MS, self->timeout_ms);
    if (self->auth_secret && *self->auth_secret) {
        char *header = zsys_sprintf("Authorization: Bearer %s", self->auth_secret);
        self->headers = header ? curl_slist_append(NULL, header) : NULL;  // curl copies it
        if (header)
            memset(header, 0, strlen(header));
        zstr_free(&header);
        if (!self->headers)
            return snprintf(error, size, "out of memory"), -1;
        curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, self->headers);
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    zsys_init();
    zsys_set_logstream(stderr);
    nsq_log_set_program("nsq-pub");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    nsq_options_t *options =
        nsq_options_new("nsq-pub", "NSQ_PUB", s_specs, sizeof s_specs / sizeof s_specs[0]);
    if (!options)
        return 2;
    char error[512] = "";
    s_pub_t pub = {0};
    int parsed = nsq_options_parse(options, argc, argv, error, sizeof error);
    if (parsed == 0 && s_setup(&pub, options, error, sizeof error))
        parsed = -1;
    nsq_options_hide(argc, argv, "auth-secret");  // the producer or curl has its copy
    int rc = parsed == 1 ? 0 : 2;
    if (parsed < 0)
        fprintf(stderr, "nsq-pub: %s\n", error);
    else if (parsed == 0)
        rc = s_run(&pub);
    nsq_producer_destroy(&pub.producer);
    if (pub.curl)
        curl_easy_cleanup(pub.curl);
    curl_slist_free_all(pub.headers);
    free(pub.batch);
    free(pub.starts);
    nsq_options_destroy(&options);
    curl_global_cleanup();
    return rc;
}
