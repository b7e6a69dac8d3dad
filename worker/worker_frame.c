/*  worker_frame - the --process protocol's framing: message headers out, replies in
    SPDX-License-Identifier: MIT

    See worker_frame.h for the format. Headers are written and read with
    jansson (compact, so a header never holds a raw newline; duplicate keys
    refused). The reader keeps what it was fed in one buffer: the bytes of
    the reply it handed out last stay in place until the next call (the
    reply borrows them), then are dropped; the buffer is compacted when the
    dropped part is at least half of it, so a steady stream costs one
    memmove per buffer's worth, not one per reply.
*/
#include "worker_frame.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SNIPPET_MAX 48  // bytes of a bad header quoted in the error

struct _worker_frame_reader_t {
    uint8_t *data;               // what was fed
    size_t start;                // first byte not yet taken
    size_t end;                  // one past the last byte fed
    size_t capacity;             // of data
    size_t drop;                 // bytes of the reply handed out last, dropped at the next call
    size_t max_output;           // largest output accepted
    bool have_header;            // the reply below waits for its body
    size_t header_size;          // its header line, newline included
    worker_frame_reply_t reply;  // parsed header of the reply in progress
    bool broken;                 // garbage was seen: every call fails
};

static bool s_is_id(const char *text);

// text as a JSON string, quotes included, into out. Returns 0 or -1.
static int s_json_string(const char *text, char *out, size_t size)
{
    json_t *string = json_string(text);
    size_t length = string && size ? json_dumpb(string, out, size - 1, JSON_ENCODE_ANY) : 0;
    json_decref(string);
    if (length == 0 || length > size - 1) {
        errno = string ? ENOMEM : EINVAL;
        return -1;
    }
    out[length] = '\0';
    return 0;
}

int worker_frame_names(const char *topic, const char *channel, char *names, size_t size)
{
    char topic_json[256], channel_json[256];
    if (s_json_string(topic, topic_json, sizeof topic_json)
        || s_json_string(channel, channel_json, sizeof channel_json))
        return -1;
    int length = snprintf(names, size, "\"topic\":%s,\"channel\":%s", topic_json, channel_json);
    if (length < 0 || (size_t) length >= size) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int worker_frame_header(const worker_frame_message_t *message, const char *names, char *buffer,
                        size_t size)
{
    if (!s_is_id(message->id)) {
        errno = EINVAL;
        return -1;
    }
    int length = snprintf(
        buffer, size, "{\"id\":\"%s\",\"attempts\":%u,\"timestamp\":%lld,%s,\"size\":%zu}\n",
        message->id, message->attempts, (long long) message->timestamp, names, message->size);
    if (length < 0 || (size_t) length >= size) {  // snprintf needs room for its NUL
        errno = ENOMEM;
        return -1;
    }
    return length;
}

worker_frame_reader_t *worker_frame_reader_new(size_t max_output)
{
    worker_frame_reader_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max_output = max_output;
    return self;
}

void worker_frame_reader_destroy(worker_frame_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}

size_t worker_frame_reader_buffered(const worker_frame_reader_t *self)
{
    return self->end - self->start - self->drop;
}

// Forgets the reply handed out last; compacts once the dead part is half.
static void s_drop(worker_frame_reader_t *self)
{
    self->start += self->drop;
    self->drop = 0;
    if (self->start == self->end)
        self->start = self->end = 0;
    else if (self->start >= self->capacity / 2) {
        memmove(self->data, self->data + self->start, self->end - self->start);
        self->end -= self->start;
        self->start = 0;
    }
}

int worker_frame_reader_feed(worker_frame_reader_t *self, const void *data, size_t size)
{
    s_drop(self);
    if (self->capacity - self->end < size) {
        size_t capacity = self->capacity ? self->capacity : 4096;
        while (capacity - self->end < size)
            capacity *= 2;
        uint8_t *grown = realloc(self->data, capacity);
        if (!grown)
            return -1;
        self->data = grown;
        self->capacity = capacity;
    }
    if (size)
        memcpy(self->data + self->end, data, size);
    self->end += size;
    return 0;
}

// Marks the reader broken and writes the reason. Returns -1.
static int s_garbage(worker_frame_reader_t *self, char *error, size_t error_size,
                     const char *format, ...) __attribute__((format(printf, 4, 5)));
static int s_garbage(worker_frame_reader_t *self, char *error, size_t error_size,
                     const char *format, ...)
{
    self->broken = true;
    va_list args;
    va_start(args, format);
    vsnprintf(error, error_size, format, args);
    va_end(args);
    return -1;
}

// The first bytes of line for a log: printable ASCII kept, the rest '.'.
static void s_snippet(const uint8_t *line, size_t size, char out[S_SNIPPET_MAX + 4])
{
    size_t length = size < S_SNIPPET_MAX ? size : S_SNIPPET_MAX;
    for (size_t i = 0; i < length; i++)
        out[i] = isprint(line[i]) && line[i] < 0x80 ? (char) line[i] : '.';
    strcpy(out + length, size > length ? "..." : "");
}

static bool s_is_id(const char *text)
{
    size_t length = strlen(text);
    for (size_t i = 0; i < length; i++)
        if (!isxdigit((unsigned char) text[i]))
            return false;
    return length == 16;
}

// Reads an optional non-negative integer field: -1 if absent, -2 if wrong.
static int64_t s_count(json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);
    if (!value)
        return -1;
    if (!json_is_integer(value) || json_integer_value(value) < 0)
        return -2;
    return json_integer_value(value);
}

// Marks the reader broken: error says what is wrong with the header line
// and quotes its start. Returns -1.
static int s_bad_header(worker_frame_reader_t *self, char *error, size_t error_size,
                        const uint8_t *line, size_t size, const char *what)
{
    char snippet[S_SNIPPET_MAX + 4];
    s_snippet(line, size, snippet);
    return s_garbage(self, error, error_size, "%s: \"%s\"", what, snippet);
}

// Fills self->reply from the header line. Returns 0, or -1 (garbage).
static int s_parse_header(worker_frame_reader_t *self, const uint8_t *line, size_t size,
                          char *error, size_t error_size)
{
    json_error_t parse_error;
    json_t *object = json_loadb((const char *) line, size, JSON_REJECT_DUPLICATES, &parse_error);
    const char *id = json_string_value(json_object_get(object, "id"));
    const char *op = json_string_value(json_object_get(object, "op"));
    int64_t delay = s_count(object, "delay_ms");
    int64_t size_field = s_count(object, "size");
    const char *what = NULL;
    if (!json_is_object(object))
        what = "not a JSON object header line";
    else if (!id || !s_is_id(id))
        what = "no \"id\" of 16 hex digits";
    else if (!op || (strcmp(op, "fin") && strcmp(op, "req") && strcmp(op, "touch")))
        what = "\"op\" is not fin, req or touch";
    else if (delay == -2 || size_field == -2)
        what = "\"delay_ms\" and \"size\" must be non-negative integers";
    else if (size_field > 0 && strcmp(op, "fin"))
        what = "only fin carries output (\"size\")";
    int rc = 0;
    if (what)
        rc = s_bad_header(self, error, error_size, line, size, what);
    else if (size_field > 0 && (uint64_t) size_field > self->max_output)
        rc = s_garbage(self, error, error_size, "output of %lld bytes is over the limit of %zu",
                       (long long) size_field, self->max_output);
    else {
        worker_frame_reply_t *reply = &self->reply;
        snprintf(reply->id, sizeof reply->id, "%s", id);
        reply->op = op[0] == 'f'   ? WORKER_FRAME_FIN
                    : op[0] == 'r' ? WORKER_FRAME_REQ
                                   : WORKER_FRAME_TOUCH;
        reply->delay_ms = reply->op == WORKER_FRAME_REQ ? delay : -1;
        reply->size = size_field > 0 ? (size_t) size_field : 0;
        reply->body = NULL;
    }
    json_decref(object);
    return rc;
}

int worker_frame_reader_next(worker_frame_reader_t *self, worker_frame_reply_t *reply, char *error,
                             size_t error_size)
{
    s_drop(self);
    if (self->broken)
        return s_garbage(self, error, error_size, "the stream was broken earlier");
    size_t available = self->end - self->start;
    if (available == 0)
        return 0;  // nothing fed yet (data may still be NULL)
    const uint8_t *at = self->data + self->start;
    if (!self->have_header) {
        size_t scan = available < WORKER_FRAME_HEADER_MAX ? available : WORKER_FRAME_HEADER_MAX;
        const uint8_t *newline = scan ? memchr(at, '\n', scan) : NULL;
        if (!newline && available >= WORKER_FRAME_HEADER_MAX) {
            char what[64];
            snprintf(what, sizeof what, "no newline within %d bytes (not a header line)",
                     WORKER_FRAME_HEADER_MAX);
            return s_bad_header(self, error, error_size, at, available, what);
        }
        if (!newline)
            return 0;
        if (s_parse_header(self, at, (size_t) (newline - at), error, error_size))
            return -1;
        self->header_size = (size_t) (newline - at) + 1;
        self->have_header = true;
    }
    if (available - self->header_size < self->reply.size)
        return 0;
    *reply = self->reply;
    reply->body = self->reply.size ? at + self->header_size : NULL;
    self->drop = self->header_size + self->reply.size;
    self->have_header = false;
    return 1;
}

// ---- self-test --------------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "worker_frame_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);     \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

// Feeds text to a fresh reader (limit 100) and expects garbage whose
// reason contains needle.
static int s_expect_garbage(const char *text, const char *needle)
{
    worker_frame_reader_t *reader = worker_frame_reader_new(100);
    worker_frame_reply_t reply;
    char error[256] = "";
    S_CHECK(reader && worker_frame_reader_feed(reader, text, strlen(text)) == 0);
    S_CHECK(worker_frame_reader_next(reader, &reply, error, sizeof error) == -1);
    S_CHECK(strstr(error, needle));
    S_CHECK(worker_frame_reader_next(reader, &reply, error, sizeof error) == -1);
    worker_frame_reader_destroy(&reader);
    return 0;
failed:
    fprintf(stderr, "worker_frame_test: input %s gave \"%s\"\n", text, error);
    worker_frame_reader_destroy(&reader);
    return -1;
}

// The header is the documented line, and jansson reads back what it says.
static int s_test_header(void)
{
    char line[256], names[128];
    json_t *parsed = NULL;
    worker_frame_message_t message = {"0a0000000000002a", 3, 1764490000000000000, 5};
    S_CHECK(worker_frame_names("orders", "bill\"ing", names, sizeof names) == 0);
    int length = worker_frame_header(&message, names, line, sizeof line);
    const char *expected = "{\"id\":\"0a0000000000002a\",\"attempts\":3,\"timestamp\":"
                           "1764490000000000000,\"topic\":\"orders\",\"channel\":\"bill\\\"ing\","
                           "\"size\":5}\n";
    S_CHECK(length == (int) strlen(expected) && memcmp(line, expected, (size_t) length) == 0);
    json_error_t error;
    parsed = json_loadb(line, (size_t) length, 0, &error);
    json_int_t attempts = 0, timestamp = 0, size = 0;
    const char *id = NULL, *topic = NULL, *channel = NULL;
    S_CHECK(json_unpack(parsed, "{s:s, s:I, s:I, s:s, s:s, s:I}", "id", &id, "attempts", &attempts,
                        "timestamp", &timestamp, "topic", &topic, "channel", &channel, "size",
                        &size)
            == 0);
    S_CHECK(strcmp(id, message.id) == 0 && attempts == 3 && timestamp == message.timestamp);
    S_CHECK(strcmp(topic, "orders") == 0 && strcmp(channel, "bill\"ing") == 0 && size == 5);
    S_CHECK(worker_frame_header(&message, names, line, (size_t) length) == -1);  // no room for NUL
    message.id = "0a0000000000002\"";
    S_CHECK(worker_frame_header(&message, names, line, sizeof line) == -1 && errno == EINVAL);
    S_CHECK(worker_frame_names("\xff", "c", names, sizeof names) == -1);
    S_CHECK(worker_frame_names("orders", "billing", names, 20) == -1);
    json_decref(parsed);
    return 0;
failed:
    json_decref(parsed);
    return -1;
}

// Replies with binary output fed one byte at a time, then three at once.
static int s_test_reader(void)
{
    static const char stream[] =
        "{\"id\":\"00000000000000aa\",\"op\":\"fin\",\"size\":4}\n\n\0\xff\n"
        "{\"op\":\"req\",\"id\":\"00000000000000BB\",\"delay_ms\":250,\"future\":[1,2]}\n"
        "{\"id\":\"00000000000000cc\",\"op\":\"touch\"}\r\n"
        "{\"id\":\"00000000000000dd\",\"op\":\"fin\",\"size\":0,\"delay_ms\":9}\n";
    worker_frame_reader_t *reader = worker_frame_reader_new(100);
    worker_frame_reply_t reply;
    char error[256];
    S_CHECK(reader);
    size_t fed = 0, total = sizeof stream - 1;
    while (fed < total) {
        S_CHECK(worker_frame_reader_feed(reader, stream + fed, 1) == 0);
        fed++;
        int rc = worker_frame_reader_next(reader, &reply, error, sizeof error);
        S_CHECK(rc == 0 || (rc == 1 && reply.op == WORKER_FRAME_FIN));
        if (rc == 1)
            break;
    }
    S_CHECK(strcmp(reply.id, "00000000000000aa") == 0 && reply.size == 4);
    S_CHECK(memcmp(reply.body, "\n\0\xff\n", 4) == 0 && reply.delay_ms == -1);
    S_CHECK(worker_frame_reader_feed(reader, stream + fed, total - fed) == 0);
    S_CHECK(worker_frame_reader_next(reader, &reply, error, sizeof error) == 1);
    S_CHECK(reply.op == WORKER_FRAME_REQ && reply.delay_ms == 250 && reply.size == 0);
    S_CHECK(strcmp(reply.id, "00000000000000BB") == 0 && reply.body == NULL);
    S_CHECK(worker_frame_reader_next(reader, &reply, error, sizeof error) == 1);
    S_CHECK(reply.op == WORKER_FRAME_TOUCH && reply.delay_ms == -1);
    S_CHECK(worker_frame_reader_next(reader, &reply, error, sizeof error) == 1);
    S_CHECK(reply.op == WORKER_FRAME_FIN && reply.delay_ms == -1 && reply.size == 0);
    S_CHECK(worker_frame_reader_next(reader, &reply, error, sizeof error) == 0);
    S_CHECK(worker_frame_reader_buffered(reader) == 0);
    worker_frame_reader_destroy(&reader);
    worker_frame_reader_destroy(&reader);
    return 0;
failed:
    worker_frame_reader_destroy(&reader);
    return -1;
}

// A stream larger than the buffer's first size, so it grows and compacts.
static int s_test_stream(void)
{
    worker_frame_reader_t *reader = worker_frame_reader_new(1000);
    worker_frame_reply_t reply;
    char error[256], header[128];
    uint8_t body[1000];
    int taken = 0;
    S_CHECK(reader);
    for (int i = 0; i < 200; i++) {
        size_t size = (size_t) (i * 37) % sizeof body;
        memset(body, i, size);
        int length = snprintf(header, sizeof header,
                              "{\"id\":\"%016x\",\"op\":\"fin\",\"size\":%zu}\n", i, size);
        S_CHECK(worker_frame_reader_feed(reader, header, (size_t) length) == 0);
        S_CHECK(worker_frame_reader_feed(reader, body, size) == 0);
        if (i % 3)
            continue;
        while (worker_frame_reader_next(reader, &reply, error, sizeof error) == 1) {
            S_CHECK(reply.size == (size_t) (taken * 37) % sizeof body);
            S_CHECK(reply.size == 0
                    || (reply.body[0] == (uint8_t) taken
                        && reply.body[reply.size - 1] == (uint8_t) taken));
            taken++;
        }
    }
    while (worker_frame_reader_next(reader, &reply, error, sizeof error) == 1)
        taken++;
    S_CHECK(taken == 200);
    worker_frame_reader_destroy(&reader);
    return 0;
failed:
    worker_frame_reader_destroy(&reader);
    return -1;
}

int worker_frame_test(void)
{
    char long_line[WORKER_FRAME_HEADER_MAX + 8];
    memset(long_line, 'x', sizeof long_line - 1);
    long_line[sizeof long_line - 1] = '\0';
    if (s_test_header() || s_test_reader() || s_test_stream()
        || s_expect_garbage("hello\n", "not a JSON object header line: \"hello\"")
        || s_expect_garbage("[1,2]\n", "not a JSON object")
        || s_expect_garbage("{\"id\":\"1\",\"id\":\"2\"}\n", "not a JSON object")
        || s_expect_garbage("{\"op\":\"fin\"}\n", "no \"id\"")
        || s_expect_garbage("{\"id\":\"00000000000000zz\",\"op\":\"fin\"}\n", "no \"id\"")
        || s_expect_garbage("{\"id\":\"0000000000000000\",\"op\":\"done\"}\n", "\"op\"")
        || s_expect_garbage("{\"id\":\"0000000000000000\",\"op\":\"req\",\"delay_ms\":-1}\n",
                            "non-negative")
        || s_expect_garbage("{\"id\":\"0000000000000000\",\"op\":\"fin\",\"size\":\"3\"}\n",
                            "non-negative")
        || s_expect_garbage("{\"id\":\"0000000000000000\",\"op\":\"touch\",\"size\":3}\n",
                            "only fin")
        || s_expect_garbage("{\"id\":\"0000000000000000\",\"op\":\"fin\",\"size\":101}\n",
                            "over the limit of 100")
        || s_expect_garbage("{\"id\":\"0000000000000000\",\"op\":\"fin\"} x\n", "not a JSON")
        || s_expect_garbage("\n", "not a JSON") || s_expect_garbage("\x01\xfe\n", "\"..\"")
        || s_expect_garbage(long_line, "no newline within"))
        return -1;
    worker_frame_reader_destroy(NULL);
    return 0;
}
