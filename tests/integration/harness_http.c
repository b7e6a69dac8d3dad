/*  harness_http - HTTP requests (libcurl), JSON reading and /stats numbers
    SPDX-License-Identifier: MIT

    it_http* send one request each on a fresh curl handle with a 10 s
    limit and hand back the status and the body. JSON is read with
    jansson; it_json_parses checks text with a real parser (python3's json)
    in a child. The /stats helpers parse the broker's JSON stats for one
    topic or channel field at a time (they are polled, so they keep no
    text); it_worker_metric reads nsq-worker's /metrics text. Also the
    binary /mpub body builder.
*/
#include "harness.h"
#include "harness_internal.h"
#include "nsq_utf8.h"

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- JSON -------------------------------------------------------------
//
// Read with jansson. it_json_get and it_json_find hand out JSON text, as
// their contract says; the text is jansson's compact dump of the value,
// kept until the case's process ends (a few lookups per case). Polling
// helpers (/stats, error codes) read the parsed document directly, so
// polling keeps no text.

static char **s_json_kept;  // texts handed out
static size_t s_json_kept_count;
static size_t s_json_kept_size;  // slots allocated

// The JSON value at the start of text; what follows it is ignored (an
// element inside an array is followed by the rest of the array). NULL if
// it does not parse. Caller decrefs.
static json_t *s_json_parse(const char *text)
{
    json_error_t error;
    return text ? json_loads(text, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &error) : NULL;
}

// value as JSON text, kept until the process ends; NULL if value is.
static const char *s_json_keep(const json_t *value)
{
    if (!value)
        return NULL;
    if (s_json_kept_count == s_json_kept_size) {
        s_json_kept_size = s_json_kept_size ? 2 * s_json_kept_size : 16;
        s_json_kept = realloc(s_json_kept, s_json_kept_size * sizeof *s_json_kept);
        IT_ASSERT(s_json_kept, "out of memory");
    }
    char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    IT_ASSERT(text, "out of memory");
    return s_json_kept[s_json_kept_count++] = text;
}

// The first object of array whose key is the string value. Borrowed.
static json_t *s_json_find(const json_t *array, const char *key, const char *value)
{
    size_t index;
    json_t *element;
    json_array_foreach(array, index, element)
    {
        const char *found = json_string_value(json_object_get(element, key));
        if (found && strcmp(found, value) == 0)
            return element;
    }
    return NULL;
}

// A number or a boolean (1/0) as an integer. Returns true on success.
static bool s_json_number(const json_t *value, int64_t *out)
{
    if (json_is_integer(value))
        *out = json_integer_value(value);
    else if (json_is_real(value))
        *out = (int64_t) json_real_value(value);
    else if (json_is_boolean(value))
        *out = json_is_true(value);
    else
        return false;
    return true;
}

// Copies a string value, cut to size - 1 bytes. Returns true on success.
static bool s_json_text(const json_t *value, char *out, size_t size)
{
    if (!json_is_string(value) || size == 0)
        return false;
    snprintf(out, size, "%s", json_string_value(value));
    return true;
}

const char *it_json_get(const char *json, const char *key)
{
    json_t *document = s_json_parse(json);
    const char *value = s_json_keep(json_object_get(document, key));
    json_decref(document);
    return value;
}

const char *it_json_find(const char *json, const char *key, const char *value)
{
    json_t *document = s_json_parse(json);
    const char *found = s_json_keep(s_json_find(document, key, value));
    json_decref(document);
    return found;
}

bool it_json_int(const char *value, int64_t *out)
{
    json_t *document = s_json_parse(value);
    bool ok = s_json_number(document, out);
    json_decref(document);
    return ok;
}

bool it_json_string(const char *value, char *out, size_t size)
{
    json_t *document = s_json_parse(value);
    bool ok = s_json_text(document, out, size);
    json_decref(document);
    return ok;
}

// ---- HTTP -------------------------------------------------------------

typedef struct {
    char *data;   // received bytes, NUL-terminated
    size_t size;  // bytes received
} s_buffer_t;

static size_t s_collect(char *data, size_t size, size_t count, void *arg)
{
    s_buffer_t *buffer = arg;
    size_t bytes = size * count;
    char *grown = realloc(buffer->data, buffer->size + bytes + 1);
    if (!grown)
        return 0;
    memcpy(grown + buffer->size, data, bytes);
    buffer->data = grown;
    buffer->size += bytes;
    buffer->data[buffer->size] = '\0';
    return bytes;
}

int it_http(it_broker_t *broker, const char *method, const char *path, const void *body,
            size_t size, char **reply)
{
    return it_http_to(it_broker_http(broker), method, path, body, size, reply);
}

int it_http_to(const char *address, const char *method, const char *path, const void *body,
               size_t size, char **reply)
{
    CURL *curl = curl_easy_init();
    IT_ASSERT(curl, "curl_easy_init failed");
    char url[2048];
    snprintf(url, sizeof url, "http://%s%s", address, path);
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    s_buffer_t buffer = {calloc(1, 1), 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buffer);
    if (strcmp(method, "GET") == 0 && !body) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (body ? size : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode code = curl_easy_perform(curl);
    long status = -1;
    if (code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else
        it_note("%s %s: %s", method, url, curl_easy_strerror(code));
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (reply)
        *reply = buffer.data;
    else
        free(buffer.data);
    return (int) status;
}

int it_http_status(it_broker_t *broker, const char *method, const char *path, const char *body)
{
    return it_http(broker, method, path, body, body ? strlen(body) : 0, NULL);
}

// Whether message is one of the '|'-separated codes.
static bool s_code_matches(const char *codes, const char *message)
{
    size_t length = strlen(message);
    for (const char *p = codes; p; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
        if (strncmp(p, message, length) == 0 && (p[length] == '|' || p[length] == '\0'))
            return length > 0;
    return false;
}

void it_http_expect_at(const char *file, int line, it_broker_t *broker, const char *method,
                       const char *path, const void *body, size_t size, int status,
                       const char *code)
{
    char *reply = NULL;
    int got = it_http(broker, method, path, body, size, &reply);
    char message[128] = "";
    json_t *document = s_json_parse(reply);
    s_json_text(json_object_get(document, "message"), message, sizeof message);
    json_decref(document);
    if (got != status || (code && !s_code_matches(code, message))) {
        char check[256];
        snprintf(check, sizeof check, "%s %s -> %d %s", method, path, status, code ? code : "");
        it_fail(file, line, check, "got %d, body: %.300s", got, reply);
    }
    free(reply);
}

void it_pub(it_broker_t *broker, const char *topic, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, "/pub?topic=%s", topic);
    char *reply = NULL;
    int status = it_http(broker, "POST", path, body, strlen(body), &reply);
    IT_ASSERT(status == 200, "POST %s: %d %.200s", path, status, reply);
    free(reply);
}

void it_post_ok(it_broker_t *broker, const char *path)
{
    char *reply = NULL;
    int status = it_http(broker, "POST", path, NULL, 0, &reply);
    IT_ASSERT(status == 200, "POST %s: %d %.200s", path, status, reply);
    free(reply);
}

static char *s_put_u32(char *out, uint32_t value)
{
    out[0] = (char) (value >> 24);
    out[1] = (char) (value >> 16);
    out[2] = (char) (value >> 8);
    out[3] = (char) value;
    return out + 4;
}

char *it_mpub_binary(uint32_t declared_count, const char *const *bodies, size_t count, size_t *size)
{
    size_t total = 4;
    for (size_t index = 0; index < count; index++)
        total += 4 + strlen(bodies[index]);
    char *buffer = malloc(total);
    IT_ASSERT(buffer, "out of memory");
    char *out = s_put_u32(buffer, declared_count);
    for (size_t index = 0; index < count; index++) {
        size_t length = strlen(bodies[index]);
        out = s_put_u32(out, (uint32_t) length);
        memcpy(out, bodies[index], length);
        out += length;
    }
    *size = total;
    return buffer;
}

// ---- /stats -----------------------------------------------------------

char *it_stats(it_broker_t *broker)
{
    char *reply = NULL;
    int status = it_http(broker, "GET", "/stats?format=json", NULL, 0, &reply);
    static int last_status = 200;  // notes each change only, not every poll
    if (status != last_status)
        it_note("GET /stats?format=json: %d %.200s", status, reply);
    last_status = status;
    if (status == 200)
        return reply;
    free(reply);
    return NULL;
}

// The object of topic (and of channel when not NULL) in a parsed /stats,
// or NULL. Borrowed.
static json_t *s_stats_find(const json_t *stats, const char *topic, const char *channel)
{
    json_t *found = s_json_find(json_object_get(stats, "topics"), "topic_name", topic);
    if (found && channel)
        found = s_json_find(json_object_get(found, "channels"), "channel_name", channel);
    return found;
}

// /stats, parsed; NULL unless 200 and JSON. Caller decrefs.
static json_t *s_stats_parsed(it_broker_t *broker)
{
    char *stats = it_stats(broker);
    json_t *document = s_json_parse(stats);
    free(stats);
    return document;
}

static int64_t s_stat(it_broker_t *broker, const char *topic, const char *channel,
                      const char *field)
{
    json_t *stats = s_stats_parsed(broker);
    json_t *object = s_stats_find(stats, topic, channel);
    int64_t value = -1;
    if (!object || !s_json_number(json_object_get(object, field), &value))
        value = -1;
    json_decref(stats);
    return value;
}

int64_t it_topic_stat(it_broker_t *broker, const char *topic, const char *field)
{
    return s_stat(broker, topic, NULL, field);
}

int64_t it_channel_stat(it_broker_t *broker, const char *topic, const char *channel,
                        const char *field)
{
    return s_stat(broker, topic, channel, field);
}

bool it_channel_exists(it_broker_t *broker, const char *topic, const char *channel)
{
    json_t *stats = s_stats_parsed(broker);
    IT_ASSERT(stats, "GET /stats failed");
    bool exists = s_stats_find(stats, topic, channel) != NULL;
    json_decref(stats);
    return exists;
}

bool it_channel_settled(it_broker_t *broker, const char *topic, const char *channel)
{
    return it_channel_stat(broker, topic, channel, "depth") == 0
           && it_channel_stat(broker, topic, channel, "in_flight_count") == 0
           && it_channel_stat(broker, topic, channel, "deferred_count") == 0;
}

void it_wait_clients(it_broker_t *broker, const char *topic, const char *channel, int clients)
{
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, topic, channel, "client_count") == clients, 5000,
                         "%d consumer(s) did not subscribe to %s/%s", clients, topic, channel);
}

int64_t it_worker_metric(const char *http, const char *name)
{
    char *text = NULL;
    int status = it_http_to(http, "GET", "/metrics", NULL, 0, &text);
    int64_t value = -1;
    size_t length = strlen(name);
    for (const char *at = text; status == 200 && at && *at; at = strchr(at, '\n')) {
        at += *at == '\n';
        if (strncmp(at, name, length) == 0 && at[length] == ' ') {
            value = strtoll(at + length + 1, NULL, 10);
            break;
        }
    }
    free(text);
    return value;
}

// The fallback of it_json_parses: valid UTF-8, no raw control character.
static bool s_json_plausible(const char *text)
{
    for (const char *c = text; *c; c++)
        if ((unsigned char) *c < 0x20 && *c != '\n' && *c != '\r' && *c != '\t' && *c != ' ')
            return false;
    return nsq_utf8_is_valid(text, strlen(text));
}

bool it_json_parses(const char *text, const char *check)
{
    const char *python = "/usr/bin/python3";
    if (access(python, X_OK) != 0) {
        it_note("no %s: JSON checked for UTF-8 and control characters only", python);
        return s_json_plausible(text);
    }
    static int count;
    char path[PATH_MAX], script[1024];
    int length = snprintf(path, sizeof path, "%s/json-%d.json", it_tmp_dir(), ++count);
    IT_ASSERT(length > 0 && (size_t) length < sizeof path, "temporary path too long");
    FILE *file = fopen(path, "wb");
    IT_ASSERT(file && fputs(text, file) >= 0 && fclose(file) == 0, "cannot write %s", path);
    snprintf(script, sizeof script,
             "import json, sys\n"
             "doc = json.loads(open(sys.argv[1], 'rb').read().decode('utf-8', 'strict'))\n"
             "sys.exit(0 if (%s) else 3)\n",
             check ? check : "True");
    const char *argv[] = {python, "-c", script, path, NULL};
    it_child_t *child = it_child_start("json-check", argv);
    char line[256];
    while (it_child_read_line(child, line, sizeof line, 10000) == 1)
        it_note("json check: %s", line);
    int status = it_child_stop(&child, 0, 5000);
    if (status != 0)
        it_note("%s does not parse as JSON%s%s (status %d)", path, check ? " or fails " : "",
                check ? check : "", status);
    return status == 0;
}
