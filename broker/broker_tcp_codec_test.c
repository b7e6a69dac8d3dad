/*  broker_tcp_codec_test - the self-test of broker_tcp_codec
    SPDX-License-Identifier: MIT

    Every command parsed whole and fed a byte at a time; every malformed
    case nsqd answers, with nsqd's code and description; the state rules;
    the pause around an upgrading IDENTIFY; the frames byte for byte.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_tcp_codec.h"

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_tcp_codec_test: %s:%d: %s\n", __FILE__, __LINE__, #condition); \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// Appends line, then (if body is not NULL) [int32 BE size][body].
static void s_put(broker_buffer_t *out, const char *line, const void *body, int32_t size)
{
    broker_buffer_append(out, line, strlen(line));
    if (!body)
        return;
    uint8_t prefix[4] = {(uint8_t) ((uint32_t) size >> 24), (uint8_t) ((uint32_t) size >> 16),
                         (uint8_t) ((uint32_t) size >> 8), (uint8_t) size};
    broker_buffer_append(out, prefix, 4);
    if (size > 0)
        broker_buffer_append(out, body, (size_t) size);
}

// An MPUB body of count messages "m0", "m1", ... (count is what it claims).
static void s_mpub_body(broker_buffer_t *out, int32_t claimed, int real)
{
    uint8_t word[4] = {(uint8_t) ((uint32_t) claimed >> 24), (uint8_t) ((uint32_t) claimed >> 16),
                       (uint8_t) ((uint32_t) claimed >> 8), (uint8_t) claimed};
    broker_buffer_append(out, word, 4);
    for (int i = 0; i < real; i++) {
        char text[16];
        int length = snprintf(text, sizeof text, "m%d", i);
        uint8_t size[4] = {0, 0, 0, (uint8_t) length};
        broker_buffer_append(out, size, 4);
        broker_buffer_append(out, text, (size_t) length);
    }
}

typedef struct {
    broker_tcp_kind_t kinds[16];  // commands handed out, in order
    size_t count;                 // how many
    broker_tcp_command_t last;    // the last one (body copied out)
    uint8_t body[256];            // its body
    broker_tcp_status_t status;   // how it ended
    broker_tcp_error_t error;     // the error, if it ended in one
} run_t;

// Feeds input in pieces of chunk bytes, taking commands as they come,
// until all is fed and the parser wants more, pauses or fails.
static void s_run(const broker_tcp_settings_t *settings, broker_buffer_t *input, size_t chunk,
                  run_t *run)
{
    memset(run, 0, sizeof *run);
    broker_tcp_parser_t *parser = broker_tcp_parser_new(settings);
    const uint8_t *data = broker_buffer_data(input);
    size_t size = broker_buffer_size(input), fed = 0;
    for (;;) {
        broker_tcp_command_t command;
        run->status = broker_tcp_parser_next(parser, &command, &run->error);
        if (run->status == BROKER_TCP_COMMAND) {
            if (run->count < 16)
                run->kinds[run->count] = command.kind;
            run->count++;
            run->last = command;
            size_t copy = command.body_size < sizeof run->body ? command.body_size : 0;
            if (copy)
                memcpy(run->body, command.body, copy);
            continue;
        }
        if (run->status != BROKER_TCP_MORE || fed == size)
            break;
        size_t piece = size - fed < chunk ? size - fed : chunk;
        broker_tcp_parser_feed(parser, data + fed, piece);
        fed += piece;
    }
    broker_tcp_parser_destroy(&parser);
}

// The malformed cases: what comes after "  V2" + prefix, and nsqd's answer.
typedef struct {
    const char *prefix;  // commands that set the state up, or ""
    const char *line;    // the command line under test
    int32_t body_size;   // its body's size prefix, or -99 for none
    const char *error;   // the error frame's text
} bad_case_t;

static const bad_case_t s_bad[] = {
    {"", "HELLO\n", -99, "E_INVALID invalid command HELLO"},
    {"", "\n", -99, "E_INVALID invalid command "},
    {"", "sub t c\n", -99, "E_INVALID invalid command sub"},
    {"", "RDY 1\n", -99, "E_INVALID cannot RDY in current state"},
    {"", "FIN 0123456789abcdef\n", -99, "E_INVALID cannot FIN in current state"},
    {"", "REQ 0123456789abcdef 0\n", -99, "E_INVALID cannot REQ in current state"},
    {"", "TOUCH 0123456789abcdef\n", -99, "E_INVALID cannot TOUCH in current state"},
    {"", "CLS\n", -99, "E_INVALID cannot CLS in current state"},
    {"", "SUB t\n", -99, "E_INVALID SUB insufficient number of parameters"},
    {"", "SUB bad!topic c\n", -99, "E_BAD_TOPIC SUB topic name \"bad!topic\" is not valid"},
    {"", "SUB t bad\"c\n", -99, "E_BAD_CHANNEL SUB channel name \"bad\\\"c\" is not valid"},
    {"", "SUB  t c\n", -99, "E_BAD_TOPIC SUB topic name \"\" is not valid"},
    {"SUB t c\n", "SUB t c\n", -99, "E_INVALID cannot SUB in current state"},
    {"SUB t c\n", "IDENTIFY\n", 2, "E_INVALID cannot IDENTIFY in current state"},
    {"SUB t c\n", "AUTH\n", 2, "E_INVALID cannot AUTH in current state"},
    {"SUB t c\n", "RDY x\n", -99, "E_INVALID RDY could not parse count x"},
    {"SUB t c\n", "RDY -1\n", -99, "E_INVALID RDY could not parse count -1"},
    {"SUB t c\n", "RDY 2501\n", -99, "E_INVALID RDY count 2501 out of range 0-2500"},
    {"SUB t c\n", "RDY 99999999999999999999\n", -99,
     "E_INVALID RDY count 9223372036854775807 out of range 0-2500"},
    {"SUB t c\n", "FIN\n", -99, "E_INVALID FIN insufficient number of params"},
    {"SUB t c\n", "FIN 0123\n", -99, "E_INVALID Invalid Message ID"},
    {"SUB t c\n", "TOUCH 0123456789abcdef0\n", -99, "E_INVALID Invalid Message ID"},
    {"SUB t c\n", "REQ 0123456789abcdef\n", -99, "E_INVALID REQ insufficient number of params"},
    {"SUB t c\n", "REQ 0123456789abcdef 1s\n", -99, "E_INVALID REQ could not parse timeout 1s"},
    {"SUB t c\nCLS\n", "CLS\n", -99, "E_INVALID cannot CLS in current state"},
    {"SUB t c\nCLS\n", "SUB t c\n", -99, "E_INVALID cannot SUB in current state"},
    {"IDENTIFY\n{\"heartbeat_interval\":-1}", "SUB t c\n", -99,
     "E_INVALID cannot SUB with heartbeats disabled"},
    {"IDENTIFY\n{}", "IDENTIFY\n", 2, "E_INVALID cannot IDENTIFY in current state"},
    {"", "IDENTIFY\n", 0, "E_BAD_BODY IDENTIFY invalid body size 0"},
    {"", "IDENTIFY\n", -1, "E_BAD_BODY IDENTIFY invalid body size -1"},
    {"", "IDENTIFY\n", 5242881, "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880"},
    {"", "AUTH x\n", 2, "E_INVALID AUTH invalid number of parameters"},
    {"", "AUTH\n", 0, "E_BAD_BODY AUTH invalid body size 0"},
    {"", "AUTH\n", 5242881, "E_BAD_BODY AUTH body too big 5242881 > 5242880"},
    {"", "PUB\n", -99, "E_INVALID PUB insufficient number of parameters"},
    {"", "PUB t#ephemeral#ephemeral\n", 1,
     "E_BAD_TOPIC PUB topic name \"t#ephemeral#ephemeral\" is not valid"},
    {"", "PUB t\n", 0, "E_BAD_MESSAGE PUB invalid message body size 0"},
    {"", "PUB t\n", -5, "E_BAD_MESSAGE PUB invalid message body size -5"},
    {"", "PUB t\n", 1048577, "E_BAD_MESSAGE PUB message too big 1048577 > 1048576"},
    {"", "DPUB t\n", -99, "E_INVALID DPUB insufficient number of parameters"},
    {"", "DPUB t x\n", 1, "E_INVALID DPUB could not parse timeout x"},
    {"", "DPUB t 3600001\n", 1, "E_INVALID DPUB timeout 3600001 out of range 0-3600000"},
    {"", "DPUB t 10\n", 0, "E_BAD_MESSAGE DPUB invalid message body size 0"},
    {"", "DPUB t 10\n", 1048577, "E_BAD_MESSAGE DPUB message too big 1048577 > 1048576"},
    {"", "MPUB\n", -99, "E_INVALID MPUB insufficient number of parameters"},
    {"", "MPUB a/b\n", 4, "E_BAD_TOPIC MPUB topic name \"a/b\" is not valid"},
    {"", "MPUB t\n", 0, "E_BAD_BODY MPUB invalid body size 0"},
    {"", "MPUB t\n", 5242881, "E_BAD_BODY MPUB body too big 5242881 > 5242880"},
};

// Runs one malformed case, whole and byte by byte; both must end in its error.
static int s_bad_case(const broker_tcp_settings_t *settings, const bad_case_t *bad)
{
    broker_buffer_t *input = broker_buffer_new();
    s_put(input, BROKER_TCP_MAGIC, NULL, 0);
    if (strncmp(bad->prefix, "IDENTIFY\n", 9) == 0) {
        const char *json = bad->prefix + 9;
        s_put(input, "IDENTIFY\n", json, (int32_t) strlen(json));
    } else {
        s_put(input, bad->prefix, NULL, 0);
    }
    // Bodies of size 2 are "{}"; a body whose size is out of range is never
    // sent (the error must come before it).
    if (bad->body_size == -99)
        s_put(input, bad->line, NULL, 0);
    else if (bad->body_size == 2)
        s_put(input, bad->line, "{}", 2);
    else
        s_put(input, bad->line, "x", bad->body_size == 1 ? 1 : 0);
    if (bad->body_size != -99 && bad->body_size != 1 && bad->body_size != 2) {
        uint8_t *prefix = broker_buffer_data(input) + broker_buffer_size(input) - 4;
        uint32_t size = (uint32_t) bad->body_size;
        uint8_t bytes[4] = {(uint8_t) (size >> 24), (uint8_t) (size >> 16), (uint8_t) (size >> 8),
                            (uint8_t) size};
        memcpy(prefix, bytes, 4);
    }
    int rc = 0;
    for (size_t chunk = 1; chunk <= 4096; chunk *= 4096) {
        run_t run;
        s_run(settings, input, chunk, &run);
        if (run.status != BROKER_TCP_ERROR || strcmp(run.error.text, bad->error) != 0) {
            fprintf(stderr, "broker_tcp_codec_test: %s%s: got %s (status %d), want %s\n",
                    bad->prefix, bad->line, run.status == BROKER_TCP_ERROR ? run.error.text : "-",
                    run.status, bad->error);
            rc = -1;
        }
    }
    broker_buffer_destroy(&input);
    return rc;
}

// MPUB bodies that do not add up, and the magic.
static int s_framing_cases(const broker_tcp_settings_t *settings)
{
    int rc = -1;
    broker_buffer_t *input = broker_buffer_new(), *body = broker_buffer_new();
    run_t run;
    const struct {
        int32_t claimed;  // the count the body states
        int real;         // messages it holds
        const char *error;
    } mpub[] = {
        {0, 0, "E_BAD_BODY MPUB invalid message count 0"},
        {-1, 1, "E_BAD_BODY MPUB invalid message count -1"},
        {1048576, 1, "E_BAD_BODY MPUB invalid message count 1048576"},
        {3, 2, "E_BAD_MESSAGE MPUB failed to read message(2) body size"},
        {1, 2, "E_BAD_BODY MPUB body size 16 does not match its messages"},
    };
    for (size_t i = 0; i < sizeof mpub / sizeof mpub[0]; i++) {
        broker_buffer_clear(input);
        broker_buffer_clear(body);
        s_mpub_body(body, mpub[i].claimed, mpub[i].real);
        s_put(input, "  V2MPUB t\n", broker_buffer_data(body), (int32_t) broker_buffer_size(body));
        s_run(settings, input, 3, &run);
        if (run.status != BROKER_TCP_ERROR || strcmp(run.error.text, mpub[i].error) != 0) {
            fprintf(stderr, "broker_tcp_codec_test: mpub %zu: %s\n", i, run.error.text);
            goto done;
        }
    }
    // A message size inside the body: zero, too big, past the end.
    const struct {
        uint8_t bytes[12];
        const char *error;
    } inner[] = {
        {{0, 0, 0, 1, 0, 0, 0, 0, 'x', 'x', 'x', 'x'},
         "E_BAD_MESSAGE MPUB invalid message(0) body size 0"},
        {{0, 0, 0, 1, 0, 0x10, 0, 1, 'x', 'x', 'x', 'x'},
         "E_BAD_MESSAGE MPUB message too big 1048577 > 1048576"},
        {{0, 0, 0, 1, 0, 0, 0, 5, 'x', 'x', 'x', 'x'},
         "E_BAD_MESSAGE MPUB failed to read message body"},
    };
    for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++) {
        broker_buffer_clear(input);
        s_put(input, "  V2MPUB t\n", inner[i].bytes, 12);
        s_run(settings, input, 4096, &run);
        S_CHECK(run.status == BROKER_TCP_ERROR && strcmp(run.error.text, inner[i].error) == 0);
    }
    // A wrong magic: the bare code, and nothing parsed after it.
    broker_buffer_clear(input);
    s_put(input, "  V1PUB t\n", "x", 1);
    s_run(settings, input, 1, &run);
    S_CHECK(run.status == BROKER_TCP_ERROR && strcmp(run.error.text, "E_BAD_PROTOCOL") == 0);
    S_CHECK(run.count == 0);
    // A line that never ends: refused at 16 KiB, not buffered for ever.
    broker_buffer_clear(input);
    s_put(input, "  V2", NULL, 0);
    for (int i = 0; i < BROKER_TCP_LINE_MAX; i++)
        broker_buffer_append(input, "A", 1);
    s_run(settings, input, 1000, &run);
    S_CHECK(run.status == BROKER_TCP_ERROR && strcmp(run.error.code, "E_INVALID") == 0);
    // --tls-required: only IDENTIFY before TLS.
    broker_tcp_settings_t required = *settings;
    required.tls_required = true;
    broker_buffer_clear(input);
    s_put(input, "  V2NOP\n", NULL, 0);
    s_run(&required, input, 4096, &run);
    S_CHECK(run.status == BROKER_TCP_ERROR
            && strcmp(run.error.text, "E_INVALID cannot NOP in current state (TLS required)") == 0);
    rc = 0;
done:
    broker_buffer_destroy(&input);
    broker_buffer_destroy(&body);
    return rc;
}

// A whole session's worth of valid commands, at every piece size.
static int s_good_session(const broker_tcp_settings_t *settings)
{
    int rc = -1;
    broker_buffer_t *input = broker_buffer_new(), *body = broker_buffer_new();
    s_put(input, "  V2", NULL, 0);
    const char *json = "{\"client_id\":\"c\",\"heartbeat_interval\":5000}";
    s_put(input, "IDENTIFY\n", json, (int32_t) strlen(json));
    s_put(input, "AUTH\n", "secret", 6);
    s_put(input, "PUB t\n", "hello", 5);
    s_put(input, "DPUB t#ephemeral 3600000\n", "later", 5);
    s_mpub_body(body, 3, 3);
    s_put(input, "MPUB t\r\n", broker_buffer_data(body), (int32_t) broker_buffer_size(body));
    s_put(input, "NOP\n", NULL, 0);
    s_put(input, "SUB t c extra\n", NULL, 0);
    s_put(input, "RDY\nRDY 2500\nRDY \n", NULL, 0);
    s_put(input, "FIN 0123456789abcdef\nTOUCH 0123456789ABCDEF\n", NULL, 0);
    s_put(input, "REQ 00000000000000ff 99999999999\nCLS\nRDY 5000\nFIN 0000000000000001\n", NULL,
          0);
    const broker_tcp_kind_t want[] = {
        BROKER_TCP_IDENTIFY, BROKER_TCP_AUTH, BROKER_TCP_PUB, BROKER_TCP_DPUB,
        BROKER_TCP_MPUB,     BROKER_TCP_NOP,  BROKER_TCP_SUB, BROKER_TCP_RDY,
        BROKER_TCP_RDY,      BROKER_TCP_RDY,  BROKER_TCP_FIN, BROKER_TCP_TOUCH,
        BROKER_TCP_REQ,      BROKER_TCP_CLS,  BROKER_TCP_FIN,  // RDY after CLS is ignored
    };
    size_t count = sizeof want / sizeof want[0];
    for (size_t chunk = 1; chunk <= 4096; chunk *= 8) {
        run_t run;
        s_run(settings, input, chunk, &run);
        S_CHECK(run.status == BROKER_TCP_MORE && run.count == count);
        S_CHECK(memcmp(run.kinds, want, sizeof want) == 0);
        S_CHECK(run.last.id_valid && run.last.id == 1);
    }
    // The values, one command at a time.
    broker_tcp_parser_t *parser = broker_tcp_parser_new(settings);
    broker_tcp_parser_feed(parser, broker_buffer_data(input), broker_buffer_size(input));
    broker_tcp_command_t c;
    broker_tcp_error_t error;
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(strcmp(c.identify.client_id, "c") == 0 && c.identify.heartbeat_interval_ms == 5000);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(c.kind == BROKER_TCP_AUTH && c.body_size == 6 && memcmp(c.body, "secret", 6) == 0);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(strcmp(c.topic, "t") == 0 && c.body_size == 5 && memcmp(c.body, "hello", 5) == 0);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(strcmp(c.topic, "t#ephemeral") == 0 && c.ms == 3600000 && c.body_size == 5);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(c.kind == BROKER_TCP_MPUB && c.message_count == 3);
    size_t offset = 0, length, walked = 0;
    const uint8_t *data;
    while (broker_tcp_mpub_next(c.body, c.body_size, &offset, &data, &length)) {
        char expect[8];
        snprintf(expect, sizeof expect, "m%zu", walked++);
        S_CHECK(length == strlen(expect) && memcmp(data, expect, length) == 0);
    }
    S_CHECK(walked == 3);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);  // NOP
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(strcmp(c.topic, "t") == 0 && strcmp(c.channel, "c") == 0);
    int64_t counts[] = {1, 2500, 0};  // no count is 1; an empty one 0, as nsqd
    for (int i = 0; i < 3; i++) {
        S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
        S_CHECK(c.kind == BROKER_TCP_RDY && c.count == counts[i]);
    }
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(c.id_valid && c.id == 0x0123456789abcdefULL);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(!c.id_valid && strcmp(c.id_text, "0123456789ABCDEF") == 0);  // matches nothing
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(c.kind == BROKER_TCP_REQ && c.id == 255 && c.ms == 3600000);  // clamped
    broker_tcp_parser_destroy(&parser);
    rc = 0;
done:
    broker_tcp_parser_destroy(&parser);
    broker_buffer_destroy(&input);
    broker_buffer_destroy(&body);
    return rc;
}

// An IDENTIFY that negotiates deflate pauses the parser; the bytes behind
// it are handed over and the parser goes on with what the door feeds.
static int s_upgrade(const broker_tcp_settings_t *settings)
{
    int rc = -1;
    broker_buffer_t *input = broker_buffer_new(), *rest = broker_buffer_new();
    broker_tcp_parser_t *parser = broker_tcp_parser_new(settings);
    const char *json = "{\"feature_negotiation\":true,\"deflate\":true}";
    s_put(input, "  V2IDENTIFY\n", json, (int32_t) strlen(json));
    s_put(input, "COMPRESSED", NULL, 0);
    broker_tcp_parser_feed(parser, broker_buffer_data(input), broker_buffer_size(input));
    broker_tcp_command_t c;
    broker_tcp_error_t error;
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(c.identify.deflate && c.identify.feature_negotiation);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_PAUSED);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_PAUSED);
    S_CHECK(broker_tcp_parser_take_unparsed(parser, rest) == 0);
    S_CHECK(broker_buffer_size(rest) == 10
            && memcmp(broker_buffer_data(rest), "COMPRESSED", 10) == 0);
    S_CHECK(broker_tcp_parser_buffered(parser) == 0);
    broker_tcp_parser_resume(parser, false);
    broker_tcp_parser_feed(parser, "NOP\n", 4);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_COMMAND);
    S_CHECK(c.kind == BROKER_TCP_NOP);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_MORE);
    // A fatal error is final: later calls repeat it, later bytes are ignored.
    broker_tcp_parser_feed(parser, "BOGUS\n", 6);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_ERROR);
    broker_tcp_parser_feed(parser, "NOP\n", 4);
    S_CHECK(broker_tcp_parser_next(parser, &c, &error) == BROKER_TCP_ERROR);
    S_CHECK(strcmp(error.text, "E_INVALID invalid command BOGUS") == 0);
    rc = 0;
done:
    broker_tcp_parser_destroy(&parser);
    broker_buffer_destroy(&input);
    broker_buffer_destroy(&rest);
    return rc;
}

// The frames byte for byte.
static int s_frames(void)
{
    int rc = -1;
    broker_buffer_t *out = broker_buffer_new();
    S_CHECK(broker_tcp_write_response(out, "OK", 2) == 0);
    S_CHECK(broker_buffer_size(out) == 10
            && memcmp(broker_buffer_data(out), "\0\0\0\6\0\0\0\0OK", 10) == 0);
    broker_buffer_clear(out);
    S_CHECK(broker_tcp_write_error(out, "E_INVALID x") == 0);
    S_CHECK(memcmp(broker_buffer_data(out), "\0\0\0\17\0\0\0\1E_INVALID x", 19) == 0);
    broker_buffer_clear(out);
    S_CHECK(broker_tcp_write_message(out, 0x0102030405060708LL, 70000, 0xabcdefULL, "body", 4)
            == 0);
    const uint8_t expect[] = {0,   0,   0,   34,   0,    0,   0,   2,   1,   2,   3,   4,   5,
                              6,   7,   8,   0xff, 0xff, '0', '0', '0', '0', '0', '0', '0', '0',
                              '0', '0', 'a', 'b',  'c',  'd', 'e', 'f', 'b', 'o', 'd', 'y'};
    S_CHECK(broker_buffer_size(out) == sizeof expect);
    S_CHECK(memcmp(broker_buffer_data(out), expect, sizeof expect) == 0);
    S_CHECK(!broker_tcp_error_is_fatal("E_FIN_FAILED")
            && !broker_tcp_error_is_fatal("E_REQ_FAILED"));
    S_CHECK(!broker_tcp_error_is_fatal("E_TOUCH_FAILED") && broker_tcp_error_is_fatal("E_INVALID"));
    S_CHECK(broker_tcp_error_is_fatal("E_PUB_FAILED") && broker_tcp_error_is_fatal("E_BAD_TOPIC"));
    rc = 0;
done:
    broker_buffer_destroy(&out);
    return rc;
}

int broker_tcp_codec_test(void)
{
    broker_tcp_settings_t settings;
    broker_tcp_settings_defaults(&settings);
    int rc = 0;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++)
        rc |= s_bad_case(&settings, &s_bad[i]);
    rc |= s_framing_cases(&settings);
    rc |= s_good_session(&settings);
    rc |= s_upgrade(&settings);
    rc |= s_frames();
    return rc ? -1 : 0;
}
