/*  broker_tcp_identify - NSQ TCP IDENTIFY: the client's JSON, checked against
    nsqd's ranges, and the negotiated reply
    SPDX-License-Identifier: MIT
*/
#include "broker_tcp_identify.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void broker_tcp_settings_defaults(broker_tcp_settings_t *settings)
{
    memset(settings, 0, sizeof *settings);
    settings->max_msg_size = 1048576;
    settings->max_body_size = 5242880;
    settings->max_rdy_count = 2500;
    settings->max_req_timeout_ms = 3600000;
    settings->msg_timeout_ms = 60000;
    settings->max_msg_timeout_ms = 900000;
    settings->heartbeat_interval_ms = 30000;
    settings->max_heartbeat_interval_ms = 60000;
    settings->output_buffer_size = 16384;
    settings->max_output_buffer_size = 65536;
    settings->output_buffer_timeout_ms = 250;
    settings->min_output_buffer_timeout_ms = 25;
    settings->max_output_buffer_timeout_ms = 30000;
    settings->max_deflate_level = 6;
    settings->deflate_enabled = true;
    settings->snappy_enabled = true;
    settings->version = NSQ_VERSION;
}

void broker_tcp_identify_defaults(const broker_tcp_settings_t *settings, broker_tcp_identify_t *out)
{
    memset(out, 0, sizeof *out);
    out->heartbeat_interval_ms = settings->heartbeat_interval_ms;
    out->output_buffer_size = settings->output_buffer_size;
    out->output_buffer_timeout_ms = settings->output_buffer_timeout_ms;
    out->msg_timeout_ms = settings->msg_timeout_ms;
    out->deflate_level = 6;
}

// The client's fields as Go decodes them: zero when absent or null.
typedef struct {
    int64_t heartbeat_interval;
    int64_t output_buffer_size;
    int64_t output_buffer_timeout;
    int64_t msg_timeout;
    int64_t sample_rate;
    int64_t deflate_level;
    bool feature_negotiation;
    bool tls_v1;
    bool snappy;
    bool deflate;
} identify_fields_t;

typedef enum { FIELD_STRING, FIELD_INT, FIELD_INT32, FIELD_BOOL } field_type_t;

// Reads one value into its field. Returns 0, or -1 on a wrong type.
static int s_field(json_t *value, field_type_t type, void *field, size_t field_size)
{
    if (json_is_null(value))
        return 0;
    switch (type) {
    case FIELD_STRING: {
        if (!json_is_string(value))
            return -1;
        size_t length = json_string_length(value);
        const char *text = json_string_value(value);
        length = strnlen(text, length < field_size - 1 ? length : field_size - 1);
        memcpy(field, text, length);
        ((char *) field)[length] = '\0';
        return 0;
    }
    case FIELD_INT:
    case FIELD_INT32: {
        if (!json_is_integer(value))
            return -1;
        json_int_t number = json_integer_value(value);
        if (type == FIELD_INT32 && (number < INT32_MIN || number > INT32_MAX))
            return -1;
        *(int64_t *) field = number;
        return 0;
    }
    case FIELD_BOOL:
        if (!json_is_boolean(value))
            return -1;
        *(bool *) field = json_is_true(value);
        return 0;
    }
    return -1;
}

// Decodes the object into out and fields. Returns 0, or -1 if a value has
// the wrong type.
static int s_decode(json_t *object, broker_tcp_identify_t *out, identify_fields_t *fields)
{
    const struct {
        const char *key;
        field_type_t type;
        void *field;
        size_t size;
    } table[] = {
        {"client_id", FIELD_STRING, out->client_id, sizeof out->client_id},
        {"hostname", FIELD_STRING, out->hostname, sizeof out->hostname},
        {"user_agent", FIELD_STRING, out->user_agent, sizeof out->user_agent},
        {"heartbeat_interval", FIELD_INT, &fields->heartbeat_interval, 0},
        {"output_buffer_size", FIELD_INT, &fields->output_buffer_size, 0},
        {"output_buffer_timeout", FIELD_INT, &fields->output_buffer_timeout, 0},
        {"msg_timeout", FIELD_INT, &fields->msg_timeout, 0},
        {"sample_rate", FIELD_INT32, &fields->sample_rate, 0},
        {"deflate_level", FIELD_INT, &fields->deflate_level, 0},
        {"feature_negotiation", FIELD_BOOL, &fields->feature_negotiation, 0},
        {"tls_v1", FIELD_BOOL, &fields->tls_v1, 0},
        {"snappy", FIELD_BOOL, &fields->snappy, 0},
        {"deflate", FIELD_BOOL, &fields->deflate, 0},
    };
    const char *key;
    json_t *value;
    json_object_foreach(object, key, value)
    {
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
            if (strcasecmp(key, table[i].key) == 0
                && s_field(value, table[i].type, table[i].field, table[i].size) != 0)
                return -1;
    }
    return 0;
}

// Fills error with nsqd's description of a value out of range; returns -1.
static int s_invalid(char *error, size_t error_size, const char *what, int64_t value)
{
    snprintf(error, error_size, "IDENTIFY %s (%lld) is invalid", what, (long long) value);
    return -1;
}

// Applies nsqd's ranges, in nsqd's order. Returns 0, or -1 with the
// description in error.
static int s_check_ranges(const broker_tcp_settings_t *settings, const identify_fields_t *fields,
                          broker_tcp_identify_t *out, char *error, size_t error_size)
{
    int64_t value = fields->heartbeat_interval;
    if (value == -1)
        out->heartbeat_interval_ms = 0;
    else if (value >= 1000 && value <= settings->max_heartbeat_interval_ms)
        out->heartbeat_interval_ms = value;
    else if (value != 0)
        return s_invalid(error, error_size, "heartbeat interval", value);
    value = fields->output_buffer_timeout;
    if (value == -1)
        out->output_buffer_timeout_ms = 0;
    else if (value >= settings->min_output_buffer_timeout_ms
             && value <= settings->max_output_buffer_timeout_ms)
        out->output_buffer_timeout_ms = value;
    else if (value != 0)
        return s_invalid(error, error_size, "output buffer timeout", value);
    value = fields->output_buffer_size;
    if (value == -1) {
        out->output_buffer_size = 1;  // nsqd: every write goes straight out
        out->output_buffer_timeout_ms = 0;
    } else if (value >= 64 && value <= settings->max_output_buffer_size) {
        out->output_buffer_size = value;
    } else if (value != 0) {
        return s_invalid(error, error_size, "output buffer size", value);
    }
    value = fields->sample_rate;
    if (value < 0 || value > 99)
        return s_invalid(error, error_size, "sample rate", value);
    out->sample_rate = (int) value;
    value = fields->msg_timeout;
    if (value >= 1000 && value <= settings->max_msg_timeout_ms)
        out->msg_timeout_ms = value;
    else if (value != 0)
        return s_invalid(error, error_size, "msg timeout", value);
    return 0;
}

int broker_tcp_identify_parse(const broker_tcp_settings_t *settings, const void *body, size_t size,
                              broker_tcp_identify_t *out, const char **code, char *error,
                              size_t error_size)
{
    broker_tcp_identify_defaults(settings, out);
    *code = "E_BAD_BODY";
    identify_fields_t fields = {0};
    // Go accepts \u0000 in strings; the strings here are cut at it.
    json_t *object = json_loadb(body, size, JSON_ALLOW_NUL, NULL);
    int rc = json_is_object(object) ? s_decode(object, out, &fields) : -1;
    json_decref(object);
    if (rc != 0) {
        snprintf(error, error_size, "IDENTIFY failed to decode JSON body");
        return -1;
    }
    if (s_check_ranges(settings, &fields, out, error, error_size) != 0)
        return -1;
    out->feature_negotiation = fields.feature_negotiation;
    if (!fields.feature_negotiation)
        return 0;  // nsqd upgrades nothing without feature negotiation
    out->tls = settings->tls_available && fields.tls_v1;
    out->deflate = settings->deflate_enabled && fields.deflate;
    out->snappy = settings->snappy_enabled && fields.snappy;
    out->deflate_level = 6;
    if (out->deflate && fields.deflate_level > 0)
        out->deflate_level = fields.deflate_level > 9 ? 9 : (int) fields.deflate_level;
    if (out->deflate_level > settings->max_deflate_level)
        out->deflate_level = settings->max_deflate_level;
    if (out->deflate && out->snappy) {
        *code = "E_IDENTIFY_FAILED";
        snprintf(error, error_size, "cannot enable both deflate and snappy compression");
        return -1;
    }
    return 0;
}

char *broker_tcp_identify_reply(const broker_tcp_settings_t *settings,
                                const broker_tcp_identify_t *identify)
{
    json_t *reply =
        json_pack("{sI ss sI sI sb sb si si sb si sb sI sI}", "max_rdy_count",
                  (json_int_t) settings->max_rdy_count, "version", settings->version,
                  "max_msg_timeout", (json_int_t) settings->max_msg_timeout_ms, "msg_timeout",
                  (json_int_t) identify->msg_timeout_ms, "tls_v1", identify->tls, "deflate",
                  identify->deflate, "deflate_level", identify->deflate_level, "max_deflate_level",
                  settings->max_deflate_level, "snappy", identify->snappy, "sample_rate",
                  identify->sample_rate, "auth_required", settings->auth_required,
                  "output_buffer_size", (json_int_t) identify->output_buffer_size,
                  "output_buffer_timeout", (json_int_t) identify->output_buffer_timeout_ms);
    if (!reply)
        return NULL;
    char *text = json_dumps(reply, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(reply);
    return text;
}

// ---- self-test -----------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_tcp_identify_test: %s:%d: %s\n", __FILE__, __LINE__,           \
                    #condition);                                                                   \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// Parses text; returns the code of the failure, or NULL if it parsed.
static const char *s_test_parse(const broker_tcp_settings_t *settings, const char *text,
                                broker_tcp_identify_t *out, char *error)
{
    const char *code = NULL;
    if (broker_tcp_identify_parse(settings, text, strlen(text), out, &code, error, 200) == 0)
        return NULL;
    return code;
}

int broker_tcp_identify_test(void)
{
    int rc = -1;
    char *reply = NULL;
    broker_tcp_settings_t settings;
    broker_tcp_settings_defaults(&settings);
    broker_tcp_identify_t id;
    char error[200];

    // Defaults: an empty object changes nothing; unknown keys are ignored.
    S_CHECK(s_test_parse(&settings, "{\"topology_zone\":\"a\",\"x\":[1]}", &id, error) == NULL);
    S_CHECK(id.heartbeat_interval_ms == 30000 && id.output_buffer_size == 16384);
    S_CHECK(id.output_buffer_timeout_ms == 250 && id.msg_timeout_ms == 60000);
    S_CHECK(!id.feature_negotiation && !id.tls && !id.deflate && !id.snappy);

    // Every field, within range; keys match whatever their case.
    S_CHECK(s_test_parse(&settings,
                         "{\"client_id\":\"c1\",\"HOSTNAME\":\"h\",\"user_agent\":\"go-nsq/1.1\","
                         "\"heartbeat_interval\":1000,\"output_buffer_size\":64,"
                         "\"output_buffer_timeout\":25,\"msg_timeout\":900000,"
                         "\"sample_rate\":99,\"feature_negotiation\":true}",
                         &id, error)
            == NULL);
    S_CHECK(strcmp(id.client_id, "c1") == 0 && strcmp(id.hostname, "h") == 0);
    S_CHECK(strcmp(id.user_agent, "go-nsq/1.1") == 0 && id.heartbeat_interval_ms == 1000);
    S_CHECK(id.output_buffer_size == 64 && id.output_buffer_timeout_ms == 25);
    S_CHECK(id.msg_timeout_ms == 900000 && id.sample_rate == 99 && id.feature_negotiation);

    // -1 disables heartbeats, buffering (size 1, no timeout) and the timer.
    S_CHECK(
        s_test_parse(&settings, "{\"heartbeat_interval\":-1,\"output_buffer_size\":-1}", &id, error)
        == NULL);
    S_CHECK(id.heartbeat_interval_ms == 0 && id.output_buffer_size == 1
            && id.output_buffer_timeout_ms == 0);
    S_CHECK(s_test_parse(&settings, "{\"output_buffer_timeout\":-1}", &id, error) == NULL);
    S_CHECK(id.output_buffer_timeout_ms == 0 && id.output_buffer_size == 16384);

    // Out of range: E_BAD_BODY with nsqd's description, one case per field.
    const struct {
        const char *body;
        const char *error;
    } bad[] = {
        {"{\"heartbeat_interval\":999}", "IDENTIFY heartbeat interval (999) is invalid"},
        {"{\"heartbeat_interval\":60001}", "IDENTIFY heartbeat interval (60001) is invalid"},
        {"{\"heartbeat_interval\":-2}", "IDENTIFY heartbeat interval (-2) is invalid"},
        {"{\"output_buffer_size\":63}", "IDENTIFY output buffer size (63) is invalid"},
        {"{\"output_buffer_size\":65537}", "IDENTIFY output buffer size (65537) is invalid"},
        {"{\"output_buffer_timeout\":24}", "IDENTIFY output buffer timeout (24) is invalid"},
        {"{\"output_buffer_timeout\":30001}", "IDENTIFY output buffer timeout (30001) is invalid"},
        {"{\"sample_rate\":100}", "IDENTIFY sample rate (100) is invalid"},
        {"{\"sample_rate\":-1}", "IDENTIFY sample rate (-1) is invalid"},
        {"{\"msg_timeout\":999}", "IDENTIFY msg timeout (999) is invalid"},
        {"{\"msg_timeout\":900001}", "IDENTIFY msg timeout (900001) is invalid"},
        {"{\"sample_rate\":4294967296}", "IDENTIFY failed to decode JSON body"},
        {"{\"heartbeat_interval\":\"1000\"}", "IDENTIFY failed to decode JSON body"},
        {"{\"heartbeat_interval\":1000.0}", "IDENTIFY failed to decode JSON body"},
        {"{\"tls_v1\":1}", "IDENTIFY failed to decode JSON body"},
        {"{\"client_id\":7}", "IDENTIFY failed to decode JSON body"},
        {"[1]", "IDENTIFY failed to decode JSON body"},
        {"{} x", "IDENTIFY failed to decode JSON body"},
        {"{\"a\":", "IDENTIFY failed to decode JSON body"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *code = s_test_parse(&settings, bad[i].body, &id, error);
        if (!code || strcmp(code, "E_BAD_BODY") != 0 || strcmp(error, bad[i].error) != 0) {
            fprintf(stderr, "broker_tcp_identify_test: %s: %s / %s\n", bad[i].body,
                    code ? code : "accepted", code ? error : "");
            goto done;
        }
    }
    // null leaves a field at its default; a later duplicate wins; a NUL
    // cuts a string; long strings are cut at 255 bytes.
    S_CHECK(s_test_parse(&settings,
                         "{\"msg_timeout\":null,\"sample_rate\":5,\"sample_rate\":6,"
                         "\"client_id\":\"a\\u0000b\"}",
                         &id, error)
            == NULL);
    S_CHECK(id.msg_timeout_ms == 60000 && id.sample_rate == 6 && strcmp(id.client_id, "a") == 0);
    char long_body[600];
    snprintf(long_body, sizeof long_body, "{\"user_agent\":\"%0400d\"}", 0);
    S_CHECK(s_test_parse(&settings, long_body, &id, error) == NULL);
    S_CHECK(strlen(id.user_agent) == BROKER_TCP_IDENTITY_MAX);

    // Upgrades only with feature negotiation, only what is offered.
    S_CHECK(s_test_parse(&settings, "{\"deflate\":true,\"tls_v1\":true}", &id, error) == NULL);
    S_CHECK(!id.deflate && !id.tls);
    S_CHECK(s_test_parse(&settings,
                         "{\"feature_negotiation\":true,\"deflate\":true,\"deflate_level\":9,"
                         "\"tls_v1\":true}",
                         &id, error)
            == NULL);
    S_CHECK(id.deflate && id.deflate_level == 6 && !id.tls);  // capped; no certificate
    settings.tls_available = true;
    settings.max_deflate_level = 9;
    S_CHECK(s_test_parse(&settings,
                         "{\"feature_negotiation\":true,\"deflate\":true,\"deflate_level\":3,"
                         "\"tls_v1\":true}",
                         &id, error)
            == NULL);
    S_CHECK(id.deflate && id.deflate_level == 3 && id.tls && !id.snappy);
    S_CHECK(s_test_parse(&settings, "{\"feature_negotiation\":true,\"snappy\":true}", &id, error)
            == NULL);
    S_CHECK(id.snappy && !id.deflate);
    settings.snappy_enabled = false;
    S_CHECK(s_test_parse(&settings, "{\"feature_negotiation\":true,\"snappy\":true}", &id, error)
            == NULL);
    S_CHECK(!id.snappy);
    settings.snappy_enabled = true;
    const char *code = s_test_parse(
        &settings, "{\"feature_negotiation\":true,\"snappy\":true,\"deflate\":true}", &id, error);
    S_CHECK(code && strcmp(code, "E_IDENTIFY_FAILED") == 0);
    S_CHECK(strcmp(error, "cannot enable both deflate and snappy compression") == 0);

    // The reply: nsqd's keys in nsqd's order with the negotiated values.
    broker_tcp_settings_defaults(&settings);
    settings.version = "1.2.3";
    S_CHECK(s_test_parse(&settings,
                         "{\"feature_negotiation\":true,\"deflate\":true,\"sample_rate\":10,"
                         "\"output_buffer_size\":-1,\"msg_timeout\":5000}",
                         &id, error)
            == NULL);
    reply = broker_tcp_identify_reply(&settings, &id);
    S_CHECK(reply);
    S_CHECK(strcmp(reply,
                   "{\"max_rdy_count\":2500,\"version\":\"1.2.3\",\"max_msg_timeout\":900000,"
                   "\"msg_timeout\":5000,\"tls_v1\":false,\"deflate\":true,"
                   "\"deflate_level\":6,\"max_deflate_level\":6,\"snappy\":false,"
                   "\"sample_rate\":10,\"auth_required\":false,\"output_buffer_size\":1,"
                   "\"output_buffer_timeout\":0}")
            == 0);
    rc = 0;
done:
    free(reply);
    return rc;
}
