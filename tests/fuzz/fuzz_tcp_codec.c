/*  fuzz_tcp_codec - NSQ's TCP protocol V2 as the door reads it: the command
    parser, snappy framing and the deflate stream
    SPDX-License-Identifier: MIT

    Each part is checked against its contract, not only for crashes:

    - the parser hands out the same commands and the same final error
      whether the bytes come whole or in pieces (it is incremental, not
      lucky); every command respects the settings (names valid, bodies
      within --max-msg-size / --max-body-size, an MPUB walks to exactly the
      count it stated, RDY within max-rdy-count, delays within
      max-req-timeout); every error it produces is fatal and reads
      "CODE description" with one of nsqd's codes;
    - snappy: whatever the decoder makes of arbitrary bytes stays within
      its limit plus one chunk, and the fuzzer's bytes encoded then decoded
      come back unchanged;
    - deflate: arbitrary bytes never make the stream hand out more than its
      limit plus one step per read, and the fuzzer's bytes written, flushed
      and read back by a second stream come back unchanged.

    Input: [u8 selector] then the part's bytes. selector % 3:
        0  parser: [u8 settings: bit 0 small limits, bit 1 tls-required,
           bit 2 heartbeats off by default][u8 piece size] then the
           client's bytes (the "  V2" magic is prepended when bit 3 is set)
        1  snappy: [u8 split] then bytes: decoded as they are, and encoded
        2  deflate: [u8 level] then bytes: read as a client's stream, and
           written through one stream into another
    Seeds: tests/fuzz/corpus/fuzz_tcp_codec (made by seeds.py).
*/
#include <stdlib.h>
#include <string.h>

#include "broker_tcp_codec.h"
#include "broker_tcp_snappy.h"
#include "broker_tcp_stream.h"
#include "fuzz_support.h"

// What a parse produced, reduced to text to compare two runs.
typedef struct {
    char *log;    // one line per command, then the end (malloc'd)
    size_t size;  // bytes used
} record_t;

static void s_record(record_t *record, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void s_record(record_t *record, const char *format, ...)
{
    char line[1024];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (length < 0)
        return;
    if ((size_t) length >= sizeof line)
        length = sizeof line - 1;
    record->log = realloc(record->log, record->size + (size_t) length + 1);
    FUZZ_ASSERT(record->log);
    memcpy(record->log + record->size, line, (size_t) length + 1);
    record->size += (size_t) length;
}

static uint32_t s_hash(const uint8_t *data, size_t size)
{
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ data[i]) * 16777619u;
    return hash;
}

// The checks every command must pass, whatever the input.
static void s_check_command(const broker_tcp_settings_t *settings,
                            const broker_tcp_command_t *command)
{
    switch (command->kind) {
    case BROKER_TCP_SUB:
        FUZZ_ASSERT(nsq_name_is_valid(command->channel));
        // fall through
    case BROKER_TCP_PUB:
    case BROKER_TCP_DPUB:
    case BROKER_TCP_MPUB:
        FUZZ_ASSERT(nsq_name_is_valid(command->topic));
        break;
    case BROKER_TCP_RDY:
        FUZZ_ASSERT(command->count >= 0 && command->count <= settings->max_rdy_count);
        break;
    case BROKER_TCP_REQ:
        FUZZ_ASSERT(command->ms >= 0 && command->ms <= settings->max_req_timeout_ms);
        // fall through
    case BROKER_TCP_FIN:
    case BROKER_TCP_TOUCH:
        FUZZ_ASSERT(strlen(command->id_text) == NSQ_MESSAGE_ID_HEX_SIZE);
        if (command->id_valid) {
            char hex[NSQ_MESSAGE_ID_HEX_SIZE + 1];
            nsq_message_id_format(command->id, hex);
            FUZZ_ASSERT(strcmp(hex, command->id_text) == 0);
        }
        break;
    default:
        break;
    }
    if (command->kind == BROKER_TCP_PUB || command->kind == BROKER_TCP_DPUB)
        FUZZ_ASSERT(command->body_size > 0
                    && command->body_size <= (size_t) settings->max_msg_size);
    if (command->kind == BROKER_TCP_DPUB)
        FUZZ_ASSERT(command->ms >= 0 && command->ms <= settings->max_req_timeout_ms);
    if (command->kind == BROKER_TCP_MPUB) {
        FUZZ_ASSERT(command->body_size <= (size_t) settings->max_body_size);
        size_t offset = 0, length, walked = 0;
        const uint8_t *data;
        while (broker_tcp_mpub_next(command->body, command->body_size, &offset, &data, &length)) {
            FUZZ_ASSERT(length > 0 && length <= (size_t) settings->max_msg_size);
            FUZZ_ASSERT(data >= command->body
                        && data + length <= command->body + command->body_size);
            walked++;
        }
        FUZZ_ASSERT(walked == command->message_count && offset == command->body_size);
    }
}

// Parses input fed in pieces of piece bytes; records every command and the end.
static void s_parse(const broker_tcp_settings_t *settings, const uint8_t *input, size_t size,
                    size_t piece, record_t *record)
{
    static const char *const codes[] = {"E_INVALID",     "E_BAD_BODY",    "E_BAD_TOPIC",
                                        "E_BAD_CHANNEL", "E_BAD_MESSAGE", "E_IDENTIFY_FAILED",
                                        "E_BAD_PROTOCOL"};
    broker_tcp_parser_t *parser = broker_tcp_parser_new(settings);
    broker_buffer_t *unparsed = broker_buffer_new();
    FUZZ_ASSERT(parser && unparsed);
    size_t fed = 0;
    for (;;) {
        broker_tcp_command_t command;
        broker_tcp_error_t error;
        broker_tcp_status_t status = broker_tcp_parser_next(parser, &command, &error);
        if (status == BROKER_TCP_COMMAND) {
            s_check_command(settings, &command);
            s_record(record, "%d %s %s %s %lld %lld %u %zu %08x\n", command.kind, command.topic,
                     command.channel, command.id_text, (long long) command.count,
                     (long long) command.ms, command.message_count, command.body_size,
                     s_hash(command.body, command.body_size));
        } else if (status == BROKER_TCP_PAUSED) {
            // No upgrade here: what follows is read as plaintext again.
            FUZZ_ASSERT(broker_tcp_parser_take_unparsed(parser, unparsed) == 0);
            broker_tcp_parser_resume(parser, false);
            broker_tcp_parser_feed(parser, broker_buffer_data(unparsed),
                                   broker_buffer_size(unparsed));
            broker_buffer_clear(unparsed);
            s_record(record, "paused\n");
        } else if (status == BROKER_TCP_ERROR) {
            FUZZ_ASSERT(broker_tcp_error_is_fatal(error.code));
            size_t length = strlen(error.code);
            FUZZ_ASSERT(strncmp(error.text, error.code, length) == 0);
            FUZZ_ASSERT(error.text[length] == '\0' || error.text[length] == ' ');
            bool known = false;
            for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
                known = known || strcmp(error.code, codes[i]) == 0;
            FUZZ_ASSERT(known);
            s_record(record, "error %s\n", error.text);
            break;
        } else if (fed == size) {
            s_record(record, "more %zu\n", broker_tcp_parser_buffered(parser));
            break;
        } else {
            size_t take = size - fed < piece ? size - fed : piece;
            FUZZ_ASSERT(broker_tcp_parser_feed(parser, input + fed, take) == 0);
            fed += take;
        }
    }
    broker_tcp_parser_destroy(&parser);
    broker_buffer_destroy(&unparsed);
}

static void s_parser(fuzz_input_t *input)
{
    uint8_t flags = fuzz_u8(input);
    size_t piece = (size_t) fuzz_u8(input) + 1;
    broker_tcp_settings_t settings;
    broker_tcp_settings_defaults(&settings);
    if (flags & 1) {  // small limits, so that sizes reach them
        settings.max_msg_size = 16;
        settings.max_body_size = 64;
        settings.max_rdy_count = 5;
        settings.max_req_timeout_ms = 1000;
    }
    settings.tls_required = flags & 2;
    if (flags & 4)
        settings.heartbeat_interval_ms = 0;
    size_t size;
    const uint8_t *bytes = fuzz_bytes(input, fuzz_left(input), &size);
    uint8_t *copy = malloc(size + 4);  // exactly the bytes, so ASan sees overreads
    FUZZ_ASSERT(copy);
    size_t total = 0;
    if (flags & 8) {
        memcpy(copy, BROKER_TCP_MAGIC, 4);
        total = 4;
    }
    if (size)
        memcpy(copy + total, bytes, size);
    total += size;
    record_t whole = {0}, pieces = {0};
    s_parse(&settings, copy, total, total ? total : 1, &whole);
    s_parse(&settings, copy, total, piece, &pieces);
    FUZZ_ASSERT(whole.size == pieces.size && memcmp(whole.log, pieces.log, whole.size) == 0);
    free(whole.log);
    free(pieces.log);
    free(copy);
}

static void s_snappy(fuzz_input_t *input)
{
    size_t split = fuzz_u8(input);
    size_t size;
    const uint8_t *bytes = fuzz_bytes(input, fuzz_left(input), &size);
    broker_buffer_t *in = broker_buffer_new(), *out = broker_buffer_new();
    FUZZ_ASSERT(in && out);
    bool started = false;
    size_t limit = 100;
    // Arbitrary bytes, in two pieces: bounded output, no crash.
    size_t first = split < size ? split : size;
    broker_buffer_append(in, bytes, first);
    int rc = broker_tcp_snappy_decode(&started, in, out, limit);
    if (rc == 0) {
        broker_buffer_append(in, bytes + first, size - first);
        broker_buffer_clear(out);
        rc = broker_tcp_snappy_decode(&started, in, out, limit);
    }
    FUZZ_ASSERT(broker_buffer_size(out) < limit + BROKER_TCP_SNAPPY_CHUNK);
    // The bytes encoded come back.
    broker_buffer_clear(in);
    broker_buffer_clear(out);
    bool wrote = false, read = false;
    FUZZ_ASSERT(broker_tcp_snappy_encode(&wrote, bytes, first, in) == 0);
    FUZZ_ASSERT(broker_tcp_snappy_encode(&wrote, bytes + first, size - first, in) == 0);
    FUZZ_ASSERT(broker_tcp_snappy_decode(&read, in, out, SIZE_MAX) == 0);
    FUZZ_ASSERT(broker_buffer_size(in) == 0 && broker_buffer_size(out) == size);
    FUZZ_ASSERT(size == 0 || memcmp(broker_buffer_data(out), bytes, size) == 0);
    broker_buffer_destroy(&in);
    broker_buffer_destroy(&out);
}

static void s_deflate(fuzz_input_t *input)
{
    int level = fuzz_u8(input) % 9 + 1;
    size_t size;
    const uint8_t *bytes = fuzz_bytes(input, fuzz_left(input), &size);
    broker_tcp_stream_t *reader = broker_tcp_stream_new(), *writer = broker_tcp_stream_new();
    broker_buffer_t *plain = broker_buffer_new();
    FUZZ_ASSERT(reader && writer && plain);
    // Arbitrary bytes as a client's deflate stream: bounded pieces.
    FUZZ_ASSERT(broker_tcp_stream_start_deflate(reader, level, NULL) == 0);
    size_t limit = 1000;
    int rc = broker_tcp_stream_read(reader, bytes, size, plain, limit);
    for (int round = 0; rc == 0 && round < 100; round++) {
        FUZZ_ASSERT(broker_buffer_size(plain) < limit + 16384);
        broker_buffer_clear(plain);
        if (!broker_tcp_stream_has_input(reader))
            break;
        rc = broker_tcp_stream_read(reader, NULL, 0, plain, limit);
    }
    broker_tcp_stream_destroy(&reader);
    // The bytes written, flushed and read by a second stream come back.
    reader = broker_tcp_stream_new();
    broker_buffer_clear(plain);
    FUZZ_ASSERT(broker_tcp_stream_start_deflate(writer, level, NULL) == 0);
    FUZZ_ASSERT(broker_tcp_stream_start_deflate(reader, level, NULL) == 0);
    FUZZ_ASSERT(broker_tcp_stream_write(writer, bytes, size) == 0);
    FUZZ_ASSERT(broker_tcp_stream_flush(writer) == 0);
    broker_buffer_t *wire = broker_tcp_stream_output(writer);
    FUZZ_ASSERT(broker_tcp_stream_read(reader, broker_buffer_data(wire), broker_buffer_size(wire),
                                       plain, SIZE_MAX)
                == 0);
    FUZZ_ASSERT(broker_buffer_size(plain) == size);
    FUZZ_ASSERT(size == 0 || memcmp(broker_buffer_data(plain), bytes, size) == 0);
    broker_tcp_stream_destroy(&reader);
    broker_tcp_stream_destroy(&writer);
    broker_buffer_destroy(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    fuzz_input_t input;
    fuzz_input_init(&input, data, size);
    switch (fuzz_u8(&input) % 3) {
    case 0:
        s_parser(&input);
        break;
    case 1:
        s_snappy(&input);
        break;
    default:
        s_deflate(&input);
        break;
    }
    return 0;
}
