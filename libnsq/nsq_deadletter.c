/*  nsq_deadletter - the dead-letter format: a JSON header line, then the body
    SPDX-License-Identifier: MIT

    The header is written and read with jansson: writing gives one compact
    line (a newline inside a string is escaped, so the first '\n' of a dead
    letter always ends the header), reading checks every field against the
    same rules the writer enforces, so what one accepts the other produces.
    See nsq_deadletter.h for the format.
*/
#include "nsq_deadletter.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_kind_names[] = {
    [NSQ_FAILURE_EXIT] = "exit",       [NSQ_FAILURE_SIGNAL] = "signal", [NSQ_FAILURE_HTTP] = "http",
    [NSQ_FAILURE_TIMEOUT] = "timeout", [NSQ_FAILURE_ERROR] = "error",
};

#define S_KIND_COUNT (sizeof s_kind_names / sizeof s_kind_names[0])

const char *nsq_failure_kind_name(nsq_failure_kind_t kind)
{
    return (size_t) kind < S_KIND_COUNT ? s_kind_names[kind] : NULL;
}

int nsq_failure_kind_parse(const char *name, nsq_failure_kind_t *kind)
{
    for (size_t i = 0; name && i < S_KIND_COUNT; i++)
        if (strcmp(name, s_kind_names[i]) == 0) {
            *kind = (nsq_failure_kind_t) i;
            return 0;
        }
    errno = EINVAL;
    return -1;
}

// The rules both directions share.
static bool s_header_is_valid(const nsq_deadletter_t *header)
{
    uint64_t id;
    return nsq_name_is_valid(header->topic) && nsq_name_is_valid(header->channel)
           && nsq_message_id_parse(header->id, &id) == 0 && header->attempts >= 1
           && header->first_seen >= 0 && header->dead_at >= 0 && header->broker[0]
           && nsq_failure_kind_name(header->failure.kind);
}

// A JSON string of text; bytes that are not UTF-8 become '?'.
static json_t *s_json_text(const char *text)
{
    json_t *string = json_string(text);
    if (string)
        return string;
    char copy[NSQ_FAILURE_DETAIL_MAX];
    snprintf(copy, sizeof copy, "%s", text);
    for (char *at = copy; *at; at++)
        if ((unsigned char) *at >= 0x80)
            *at = '?';
    return json_string(copy);
}

uint8_t *nsq_deadletter_build(const nsq_deadletter_t *header, const void *body, size_t size,
                              size_t *out_size)
{
    if (!header || (!body && size) || !out_size || !s_header_is_valid(header)) {
        errno = EINVAL;
        return NULL;
    }
    json_t *object = json_pack(
        "{s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:{s:s, s:I, s:o}}", "v", NSQ_DEADLETTER_VERSION,
        "topic", header->topic, "channel", header->channel, "id", header->id, "attempts",
        (json_int_t) header->attempts, "first_seen", (json_int_t) header->first_seen, "dead_at",
        (json_int_t) header->dead_at, "broker", s_json_text(header->broker), "failure", "kind",
        nsq_failure_kind_name(header->failure.kind), "code", (json_int_t) header->failure.code,
        "detail", s_json_text(header->failure.detail));
    char *line = object ? json_dumps(object, JSON_COMPACT) : NULL;
    json_decref(object);
    size_t length = line ? strlen(line) : 0;
    uint8_t *letter = line ? malloc(length + 1 + size) : NULL;
    if (letter) {
        memcpy(letter, line, length);
        letter[length] = '\n';
        if (size)
            memcpy(letter + length + 1, body, size);
        *out_size = length + 1 + size;
    } else
        errno = ENOMEM;
    free(line);
    return letter;
}

// Copies a string field into out (size bytes). false if it does not fit.
static bool s_copy(char *out, size_t size, const char *text)
{
    size_t length = strlen(text);
    if (length >= size)
        return false;
    memcpy(out, text, length + 1);
    return true;
}

// Fills header from the decoded object. Returns 0, or -1 if a field is
// missing, of the wrong type, or invalid.
static int s_read_header(json_t *object, nsq_deadletter_t *header)
{
    json_int_t version, attempts, first_seen, dead_at, code;
    const char *topic, *channel, *id, *broker, *kind, *detail = "";
    if (json_unpack(object, "{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:{s:s, s:I, s?s}}", "v",
                    &version, "topic", &topic, "channel", &channel, "id", &id, "attempts",
                    &attempts, "first_seen", &first_seen, "dead_at", &dead_at, "broker", &broker,
                    "failure", "kind", &kind, "code", &code, "detail", &detail))
        return -1;
    memset(header, 0, sizeof *header);
    if (version != NSQ_DEADLETTER_VERSION || attempts < 1 || attempts > UINT32_MAX
        || !s_copy(header->topic, sizeof header->topic, topic)
        || !s_copy(header->channel, sizeof header->channel, channel)
        || !s_copy(header->id, sizeof header->id, id)
        || !s_copy(header->broker, sizeof header->broker, broker)
        || !s_copy(header->failure.detail, sizeof header->failure.detail, detail)
        || nsq_failure_kind_parse(kind, &header->failure.kind))
        return -1;
    header->attempts = (uint32_t) attempts;
    header->first_seen = first_seen;
    header->dead_at = dead_at;
    header->failure.code = code;
    return s_header_is_valid(header) ? 0 : -1;
}

int nsq_deadletter_parse(const void *data, size_t size, nsq_deadletter_t *header, const void **body,
                         size_t *body_size)
{
    const char *newline = data ? memchr(data, '\n', size) : NULL;
    if (!newline || !header || !body || !body_size) {
        errno = EINVAL;
        return -1;
    }
    size_t length = (size_t) (newline - (const char *) data);
    json_t *object = json_loadb(data, length, JSON_REJECT_DUPLICATES, NULL);
    int rc = json_is_object(object) ? s_read_header(object, header) : -1;
    json_decref(object);
    if (rc) {
        errno = EINVAL;
        return -1;
    }
    *body = newline + 1;
    *body_size = size - length - 1;
    return 0;
}

// ---- self-test ----------------------------------------------------------------

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "nsq_deadletter_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

// Parses text (a NUL-terminated header line plus body); returns parse's result.
static int s_parse_text(const char *text)
{
    nsq_deadletter_t header;
    const void *body;
    size_t size;
    return nsq_deadletter_parse(text, strlen(text), &header, &body, &size);
}

static const char *const s_malformed[] = {
    "",  // no newline
    "{\"v\":1}",
    "not json\nbody",
    "[1,2]\nbody",
    "{\"v\":1,\"topic\":\"t\"}\n",
    "{\"v\":2,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"000000000000002a\",\"attempts\":1,"
    "\"first_seen\":1,\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":\"exit\","
    "\"code\":1}}\n",
    "{\"v\":1,\"topic\":\"bad topic\",\"channel\":\"c\",\"id\":\"000000000000002a\","
    "\"attempts\":1,\"first_seen\":1,\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":"
    "\"exit\",\"code\":1}}\n",
    "{\"v\":1,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"2a\",\"attempts\":1,\"first_seen\":1,"
    "\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":\"exit\",\"code\":1}}\n",
    "{\"v\":1,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"000000000000002a\",\"attempts\":0,"
    "\"first_seen\":1,\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":\"exit\","
    "\"code\":1}}\n",
    "{\"v\":1,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"000000000000002a\",\"attempts\":\"1\","
    "\"first_seen\":1,\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":\"exit\","
    "\"code\":1}}\n",
    "{\"v\":1,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"000000000000002a\",\"attempts\":1,"
    "\"first_seen\":1,\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":\"boom\","
    "\"code\":1}}\n",
    "{\"v\":1,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"000000000000002a\",\"attempts\":1,"
    "\"first_seen\":1,\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":\"exit\","
    "\"code\":1}} trailing\n",
    "{\"v\":1,\"v\":1,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"000000000000002a\","
    "\"attempts\":1,\"first_seen\":1,\"dead_at\":2,\"broker\":\"b:1\",\"failure\":{\"kind\":"
    "\"exit\",\"code\":1}}\n",
    NULL,
};

int nsq_deadletter_test(void)
{
    uint8_t *letter = NULL;
    nsq_deadletter_t header = {
        .topic = "orders",
        .channel = "billing#ephemeral",
        .id = "0a0000000000002a",
        .attempts = 5,
        .first_seen = 1764490000000000000,
        .dead_at = 1764490042000000000,
        .broker = "10.0.0.1:4152",
        .failure = {NSQ_FAILURE_HTTP, 503, "HTTP 503 \"busy\"\nretry later \xff"},
    };
    const char body[] = "line one\nline two\0\xff end";
    size_t size = 0;
    letter = nsq_deadletter_build(&header, body, sizeof body - 1, &size);
    S_CHECK(letter && size > sizeof body);
    const uint8_t *newline = memchr(letter, '\n', size);  // the detail's newline is escaped
    S_CHECK(newline && newline[-1] == '}' && newline + sizeof body == letter + size);
    S_CHECK(memcmp(letter, "{\"v\":1,\"topic\":\"orders\"", 23) == 0);
    nsq_deadletter_t parsed;
    const void *parsed_body = NULL;
    size_t parsed_size = 0;
    S_CHECK(nsq_deadletter_parse(letter, size, &parsed, &parsed_body, &parsed_size) == 0);
    S_CHECK(parsed_size == sizeof body - 1 && memcmp(parsed_body, body, parsed_size) == 0);
    S_CHECK(strcmp(parsed.topic, "orders") == 0 && strcmp(parsed.channel, header.channel) == 0);
    S_CHECK(strcmp(parsed.id, header.id) == 0 && parsed.attempts == 5);
    S_CHECK(parsed.first_seen == header.first_seen && parsed.dead_at == header.dead_at);
    S_CHECK(strcmp(parsed.broker, header.broker) == 0);
    S_CHECK(parsed.failure.kind == NSQ_FAILURE_HTTP && parsed.failure.code == 503);
    S_CHECK(strcmp(parsed.failure.detail, "HTTP 503 \"busy\"\nretry later ?") == 0);
    free(letter);

    // An empty body, a negative code, an empty detail; every kind round-trips.
    for (size_t kind = 0; kind < S_KIND_COUNT; kind++) {
        header.failure = (nsq_failure_t){(nsq_failure_kind_t) kind, -1, ""};
        letter = nsq_deadletter_build(&header, NULL, 0, &size);
        S_CHECK(letter && letter[size - 1] == '\n');
        S_CHECK(nsq_deadletter_parse(letter, size, &parsed, &parsed_body, &parsed_size) == 0);
        S_CHECK(parsed_size == 0 && parsed.failure.kind == (nsq_failure_kind_t) kind);
        S_CHECK(parsed.failure.code == -1 && parsed.failure.detail[0] == '\0');
        free(letter);
    }
    letter = NULL;
    nsq_failure_kind_t kind;
    S_CHECK(nsq_failure_kind_parse("timeout", &kind) == 0 && kind == NSQ_FAILURE_TIMEOUT);
    S_CHECK(nsq_failure_kind_parse("nope", &kind) == -1 && errno == EINVAL);
    S_CHECK(nsq_failure_kind_name((nsq_failure_kind_t) 99) == NULL);

    // Headers the writer refuses.
    nsq_deadletter_t bad = header;
    bad.attempts = 0;
    S_CHECK(!nsq_deadletter_build(&bad, "x", 1, &size) && errno == EINVAL);
    bad = header;
    snprintf(bad.topic, sizeof bad.topic, "no spaces");
    S_CHECK(!nsq_deadletter_build(&bad, "x", 1, &size) && errno == EINVAL);
    bad = header;
    bad.broker[0] = '\0';
    S_CHECK(!nsq_deadletter_build(&bad, "x", 1, &size) && errno == EINVAL);
    bad = header;
    bad.failure.kind = (nsq_failure_kind_t) 7;
    S_CHECK(!nsq_deadletter_build(&bad, "x", 1, &size) && errno == EINVAL);

    // Inputs the reader refuses: each is not a dead letter.
    for (size_t i = 0; s_malformed[i]; i++) {
        errno = 0;
        if (s_parse_text(s_malformed[i]) != -1 || errno != EINVAL) {
            fprintf(stderr, "nsq_deadletter_test: accepted malformed #%zu\n", i);
            goto failed;
        }
    }
    // A string too long for its field, and a NUL inside the header line.
    char *long_broker = malloc(1024);
    S_CHECK(long_broker);
    snprintf(long_broker, 1024,
             "{\"v\":1,\"topic\":\"t\",\"channel\":\"c\",\"id\":\"000000000000002a\","
             "\"attempts\":1,\"first_seen\":1,\"dead_at\":2,\"broker\":\"%0300d\",\"failure\":"
             "{\"kind\":\"exit\",\"code\":1}}\n",
             7);
    int rc = s_parse_text(long_broker);
    free(long_broker);
    S_CHECK(rc == -1);
    const char with_nul[] = "{\"v\":1,\0\"topic\":\"t\"}\nbody";
    S_CHECK(nsq_deadletter_parse(with_nul, sizeof with_nul - 1, &parsed, &parsed_body, &parsed_size)
            == -1);
    S_CHECK(nsq_deadletter_parse(NULL, 0, &parsed, &parsed_body, &parsed_size) == -1);
    return 0;
failed:
    free(letter);
    return -1;
}
