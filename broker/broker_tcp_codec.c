/*  broker_tcp_codec - NSQ's TCP protocol V2: client bytes into checked
    commands, and the server's frames
    SPDX-License-Identifier: MIT

    Parsing re-reads the command line until its body is complete: a body
    waits in the input buffer, and the line in front of it is short, so
    the repeated checks cost nothing next to the bytes received; in return
    the parser has no half-parsed state and every check runs before the
    parser waits for a body.
*/
#include "broker_tcp_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS_MAX 4  // words kept from a line; more only count

typedef enum {
    STATE_INIT,        // before SUB: IDENTIFY, AUTH, SUB, publishing
    STATE_SUBSCRIBED,  // after SUB: RDY, FIN, REQ, TOUCH, CLS
    STATE_CLOSING,     // after CLS: RDY is ignored, in-flight may finish
} parser_state_t;

struct _broker_tcp_parser_t {
    broker_tcp_settings_t settings;  // limits and offers (a copy)
    broker_buffer_t *input;          // plaintext not parsed yet
    size_t consumed;                 // bytes of the command handed out last
    bool magic_seen;                 // the "  V2" magic was read
    parser_state_t state;            // the client's protocol state
    bool identified;                 // IDENTIFY was accepted
    bool tls;                        // the stream is TLS
    bool paused;                     // waiting for the door to upgrade the stream
    int64_t heartbeat_interval_ms;   // SUB needs it > 0
    bool failed;                     // a fatal error was handed out
    broker_tcp_error_t error;        // that error, handed out again
};

// One command line split on single spaces, as nsqd's bytes.Split.
typedef struct {
    const uint8_t *word[WORDS_MAX];  // the first words (borrowed from the input)
    size_t length[WORDS_MAX];        // their lengths
    size_t count;                    // words on the line (may exceed WORDS_MAX)
} line_t;

broker_tcp_parser_t *broker_tcp_parser_new(const broker_tcp_settings_t *settings)
{
    broker_tcp_parser_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->settings = *settings;
    self->input = broker_buffer_new();
    if (!self->input) {
        free(self);
        return NULL;
    }
    self->heartbeat_interval_ms = settings->heartbeat_interval_ms;
    return self;
}

void broker_tcp_parser_destroy(broker_tcp_parser_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_buffer_destroy(&(*self_p)->input);
    free(*self_p);
    *self_p = NULL;
}

int broker_tcp_parser_feed(broker_tcp_parser_t *self, const void *data, size_t size)
{
    if (self->failed)
        return 0;  // nothing more is read after a fatal error
    return broker_buffer_append(self->input, data, size);
}

broker_buffer_t *broker_tcp_parser_input(broker_tcp_parser_t *self)
{
    return self->input;
}

size_t broker_tcp_parser_buffered(const broker_tcp_parser_t *self)
{
    return broker_buffer_size(self->input) - self->consumed;
}

int broker_tcp_parser_take_unparsed(broker_tcp_parser_t *self, broker_buffer_t *out)
{
    broker_buffer_consume(self->input, self->consumed);
    self->consumed = 0;
    if (broker_buffer_append(out, broker_buffer_data(self->input), broker_buffer_size(self->input)))
        return -1;
    broker_buffer_clear(self->input);
    return 0;
}

void broker_tcp_parser_resume(broker_tcp_parser_t *self, bool tls)
{
    self->paused = false;
    self->tls = self->tls || tls;
}

// ---- errors --------------------------------------------------------------

// Records the fatal error "code description" and returns BROKER_TCP_ERROR.
static broker_tcp_status_t s_fail(broker_tcp_parser_t *self, broker_tcp_error_t *error,
                                  const char *code, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static broker_tcp_status_t s_fail(broker_tcp_parser_t *self, broker_tcp_error_t *error,
                                  const char *code, const char *format, ...)
{
    char description[sizeof self->error.text];
    va_list args;
    va_start(args, format);
    vsnprintf(description, sizeof description, format, args);
    va_end(args);
    self->failed = true;
    self->error.code = code;
    snprintf(self->error.text, sizeof self->error.text, "%s%s%.400s", code,
             description[0] ? " " : "", description);
    *error = self->error;
    return BROKER_TCP_ERROR;
}

// Writes bytes for an error text: Go's %q when quoted (escapes, quotes),
// else printable ASCII with '?' for the rest; at most 100 bytes shown.
static const char *s_show(char *out, size_t out_size, const uint8_t *data, size_t size, bool quoted)
{
    size_t used = 0;
    if (quoted)
        out[used++] = '"';
    for (size_t i = 0; i < size && i < 100 && used + 6 < out_size; i++) {
        uint8_t byte = data[i];
        if (quoted && (byte == '"' || byte == '\\'))
            used += (size_t) snprintf(out + used, out_size - used, "\\%c", byte);
        else if (byte >= 0x20 && byte < 0x7f)
            out[used++] = (char) byte;
        else if (quoted)
            used += (size_t) snprintf(out + used, out_size - used, "\\x%02x", byte);
        else
            out[used++] = '?';
    }
    if (quoted)
        out[used++] = '"';
    out[used] = '\0';
    return out;
}

bool broker_tcp_error_is_fatal(const char *code)
{
    return strcmp(code, "E_FIN_FAILED") != 0 && strcmp(code, "E_REQ_FAILED") != 0
           && strcmp(code, "E_TOUCH_FAILED") != 0;
}

// ---- reading ---------------------------------------------------------------

static int32_t s_get_i32(const uint8_t *in)
{
    return (int32_t) ((uint32_t) in[0] << 24 | (uint32_t) in[1] << 16 | (uint32_t) in[2] << 8
                      | (uint32_t) in[3]);
}

static void s_put_u32(uint8_t *out, uint32_t value)
{
    out[0] = (uint8_t) (value >> 24);
    out[1] = (uint8_t) (value >> 16);
    out[2] = (uint8_t) (value >> 8);
    out[3] = (uint8_t) value;
}

// nsqd's ByteToBase10: digits only ("" is 0); large values saturate.
// Returns 0, or -1 on any other byte.
static int s_base10(const uint8_t *data, size_t size, int64_t *value)
{
    int64_t number = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] < '0' || data[i] > '9')
            return -1;
        int digit = data[i] - '0';
        number = number > (INT64_MAX - digit) / 10 ? INT64_MAX : number * 10 + digit;
    }
    *value = number;
    return 0;
}

static bool s_word_is(const line_t *line, const char *name)
{
    size_t length = strlen(name);
    return line->length[0] == length && memcmp(line->word[0], name, length) == 0;
}

static void s_split(const uint8_t *data, size_t size, line_t *line)
{
    memset(line, 0, sizeof *line);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != ' ')
            continue;
        if (line->count < WORDS_MAX) {
            line->word[line->count] = data + start;
            line->length[line->count] = i - start;
        }
        line->count++;
        start = i + 1;
    }
}

// Copies a message id for FIN, REQ and TOUCH: nsqd takes exactly 16 bytes
// (E_INVALID otherwise); ours are lowercase hex, anything else matches no
// message in flight.
static int s_id(const line_t *line, broker_tcp_command_t *command)
{
    if (line->length[1] != NSQ_MESSAGE_ID_HEX_SIZE)
        return -1;
    command->id_valid = true;
    command->id = 0;
    for (size_t i = 0; i < NSQ_MESSAGE_ID_HEX_SIZE; i++) {
        char c = (char) line->word[1][i];
        // Kept printable for error texts (such an id matches nothing anyway).
        command->id_text[i] = c >= 0x20 && c < 0x7f ? c : '?';
        if (c >= '0' && c <= '9')
            command->id = command->id << 4 | (uint64_t) (c - '0');
        else if (c >= 'a' && c <= 'f')
            command->id = command->id << 4 | (uint64_t) (c - 'a' + 10);
        else
            command->id_valid = false;
    }
    command->id_text[NSQ_MESSAGE_ID_HEX_SIZE] = '\0';
    return 0;
}

// The bytes after a command line: where its body is read from.
typedef struct {
    const uint8_t *data;  // borrowed from the input
    size_t size;          // bytes there
    size_t used;          // the body's bytes, size prefix included, once read
} rest_t;

// Reads [int32 size][body] for the command called name: sizes out of
// 1..max fail with code ("NAME invalid WHAT size N", "NAME BIG too big N >
// MAX", nsqd's words), before the body is waited for.
static broker_tcp_status_t s_body(broker_tcp_parser_t *self, broker_tcp_error_t *error,
                                  rest_t *rest, const char *name, const char *code,
                                  const char *what, const char *big, int64_t max,
                                  broker_tcp_command_t *command)
{
    if (rest->size < 4)
        return BROKER_TCP_MORE;
    int32_t size = s_get_i32(rest->data);
    if (size <= 0)
        return s_fail(self, error, code, "%s invalid %s size %d", name, what, size);
    if (size > max)
        return s_fail(self, error, code, "%s %s too big %d > %lld", name, big, size,
                      (long long) max);
    if (rest->size - 4 < (size_t) size)
        return BROKER_TCP_MORE;
    command->body = rest->data + 4;
    command->body_size = (size_t) size;
    rest->used = 4 + (size_t) size;
    return BROKER_TCP_COMMAND;
}

// Checks an MPUB body: [int32 count]([int32 size][data])*, every message
// 1..max-msg-size bytes, nothing left over.
static broker_tcp_status_t s_check_mpub(broker_tcp_parser_t *self, broker_tcp_error_t *error,
                                        broker_tcp_command_t *command)
{
    const uint8_t *body = command->body;
    size_t size = command->body_size;
    if (size < 4)
        return s_fail(self, error, "E_BAD_BODY", "MPUB failed to read message count");
    int32_t count = s_get_i32(body);
    int64_t most = (self->settings.max_body_size - 4) / 5;  // each message takes 5 bytes or more
    if (count <= 0 || count > most)
        return s_fail(self, error, "E_BAD_BODY", "MPUB invalid message count %d", count);
    size_t offset = 4;
    for (int32_t i = 0; i < count; i++) {
        if (size - offset < 4)
            return s_fail(self, error, "E_BAD_MESSAGE", "MPUB failed to read message(%d) body size",
                          i);
        int32_t length = s_get_i32(body + offset);
        if (length <= 0)
            return s_fail(self, error, "E_BAD_MESSAGE", "MPUB invalid message(%d) body size %d", i,
                          length);
        if (length > self->settings.max_msg_size)
            return s_fail(self, error, "E_BAD_MESSAGE", "MPUB message too big %d > %lld", length,
                          (long long) self->settings.max_msg_size);
        if (size - offset - 4 < (size_t) length)
            return s_fail(self, error, "E_BAD_MESSAGE", "MPUB failed to read message body");
        offset += 4 + (size_t) length;
    }
    if (offset != size)  // nsqd would read the rest as the next command
        return s_fail(self, error, "E_BAD_BODY", "MPUB body size %zu does not match its messages",
                      size);
    command->message_count = (uint32_t) count;
    return BROKER_TCP_COMMAND;
}

bool broker_tcp_mpub_next(const uint8_t *body, size_t size, size_t *offset, const uint8_t **data,
                          size_t *length)
{
    if (*offset == 0)
        *offset = 4;
    if (*offset >= size || size - *offset < 4)
        return false;
    int32_t message = s_get_i32(body + *offset);
    if (message <= 0 || size - *offset - 4 < (size_t) message)
        return false;
    *data = body + *offset + 4;
    *length = (size_t) message;
    *offset += 4 + (size_t) message;
    return true;
}

// IDENTIFY and AUTH: before SUB only, a body of 1..max-body-size.
static broker_tcp_status_t s_identify(broker_tcp_parser_t *self, const line_t *line, rest_t *rest,
                                      broker_tcp_command_t *command, broker_tcp_error_t *error)
{
    bool identify = command->kind == BROKER_TCP_IDENTIFY;
    const char *name = identify ? "IDENTIFY" : "AUTH";
    if (self->state != STATE_INIT || (identify && self->identified))
        return s_fail(self, error, "E_INVALID", "cannot %s in current state", name);
    if (!identify && line->count != 1)
        return s_fail(self, error, "E_INVALID", "AUTH invalid number of parameters");
    broker_tcp_status_t status = s_body(self, error, rest, name, "E_BAD_BODY", "body", "body",
                                        self->settings.max_body_size, command);
    if (status != BROKER_TCP_COMMAND || !identify)
        return status;
    const char *code;
    char text[256];
    if (broker_tcp_identify_parse(&self->settings, command->body, command->body_size,
                                  &command->identify, &code, text, sizeof text)
        != 0)
        return s_fail(self, error, code, "%s", text);
    self->identified = true;
    self->heartbeat_interval_ms = command->identify.heartbeat_interval_ms;
    // What follows belongs to the upgraded stream.
    self->paused = command->identify.tls || command->identify.snappy || command->identify.deflate;
    return BROKER_TCP_COMMAND;
}

static broker_tcp_status_t s_sub(broker_tcp_parser_t *self, const line_t *line,
                                 broker_tcp_command_t *command, broker_tcp_error_t *error)
{
    char shown[512];
    if (self->state != STATE_INIT)
        return s_fail(self, error, "E_INVALID", "cannot SUB in current state");
    if (self->heartbeat_interval_ms <= 0)
        return s_fail(self, error, "E_INVALID", "cannot SUB with heartbeats disabled");
    if (line->count < 3)
        return s_fail(self, error, "E_INVALID", "SUB insufficient number of parameters");
    if (nsq_name_copy(command->topic, line->word[1], line->length[1]) != 0)
        return s_fail(self, error, "E_BAD_TOPIC", "SUB topic name %s is not valid",
                      s_show(shown, sizeof shown, line->word[1], line->length[1], true));
    if (nsq_name_copy(command->channel, line->word[2], line->length[2]) != 0)
        return s_fail(self, error, "E_BAD_CHANNEL", "SUB channel name %s is not valid",
                      s_show(shown, sizeof shown, line->word[2], line->length[2], true));
    self->state = STATE_SUBSCRIBED;
    return BROKER_TCP_COMMAND;
}

// RDY, FIN, REQ, TOUCH and CLS: the consumer's commands after SUB.
static broker_tcp_status_t s_consumer(broker_tcp_parser_t *self, const line_t *line,
                                      const char *name, broker_tcp_command_t *command,
                                      broker_tcp_error_t *error)
{
    char shown[512];
    bool closing_too = command->kind != BROKER_TCP_RDY && command->kind != BROKER_TCP_CLS;
    if (self->state != STATE_SUBSCRIBED && !(closing_too && self->state == STATE_CLOSING))
        return s_fail(self, error, "E_INVALID", "cannot %s in current state", name);
    switch (command->kind) {
    case BROKER_TCP_RDY:
        command->count = 1;
        if (line->count > 1 && s_base10(line->word[1], line->length[1], &command->count) != 0)
            return s_fail(self, error, "E_INVALID", "RDY could not parse count %s",
                          s_show(shown, sizeof shown, line->word[1], line->length[1], false));
        if (command->count > self->settings.max_rdy_count)
            return s_fail(self, error, "E_INVALID", "RDY count %lld out of range 0-%lld",
                          (long long) command->count, (long long) self->settings.max_rdy_count);
        return BROKER_TCP_COMMAND;
    case BROKER_TCP_CLS:
        self->state = STATE_CLOSING;
        return BROKER_TCP_COMMAND;
    default:
        break;
    }
    size_t needed = command->kind == BROKER_TCP_REQ ? 3 : 2;
    if (line->count < needed)
        return s_fail(self, error, "E_INVALID", "%s insufficient number of params", name);
    if (s_id(line, command) != 0)
        return s_fail(self, error, "E_INVALID", "Invalid Message ID");
    if (command->kind != BROKER_TCP_REQ)
        return BROKER_TCP_COMMAND;
    if (s_base10(line->word[2], line->length[2], &command->ms) != 0)
        return s_fail(self, error, "E_INVALID", "REQ could not parse timeout %s",
                      s_show(shown, sizeof shown, line->word[2], line->length[2], false));
    if (command->ms > self->settings.max_req_timeout_ms)
        command->ms = self->settings.max_req_timeout_ms;  // nsqd clamps
    return BROKER_TCP_COMMAND;
}

// PUB, MPUB and DPUB: a valid topic, DPUB's defer, then the body.
static broker_tcp_status_t s_publish(broker_tcp_parser_t *self, const line_t *line,
                                     const char *name, rest_t *rest, broker_tcp_command_t *command,
                                     broker_tcp_error_t *error)
{
    char shown[512];
    bool dpub = command->kind == BROKER_TCP_DPUB;
    if (line->count < (dpub ? 3u : 2u))
        return s_fail(self, error, "E_INVALID", "%s insufficient number of parameters", name);
    if (nsq_name_copy(command->topic, line->word[1], line->length[1]) != 0)
        return s_fail(self, error, "E_BAD_TOPIC", "%s topic name %s is not valid", name,
                      s_show(shown, sizeof shown, line->word[1], line->length[1], true));
    if (dpub) {
        if (s_base10(line->word[2], line->length[2], &command->ms) != 0)
            return s_fail(self, error, "E_INVALID", "DPUB could not parse timeout %s",
                          s_show(shown, sizeof shown, line->word[2], line->length[2], false));
        if (command->ms > self->settings.max_req_timeout_ms)
            return s_fail(self, error, "E_INVALID", "DPUB timeout %lld out of range 0-%lld",
                          (long long) command->ms, (long long) self->settings.max_req_timeout_ms);
    }
    if (command->kind != BROKER_TCP_MPUB)
        return s_body(self, error, rest, name, "E_BAD_MESSAGE", "message body", "message",
                      self->settings.max_msg_size, command);
    broker_tcp_status_t status = s_body(self, error, rest, name, "E_BAD_BODY", "body", "body",
                                        self->settings.max_body_size, command);
    return status == BROKER_TCP_COMMAND ? s_check_mpub(self, error, command) : status;
}

// The commands by name, and who parses them.
static const struct {
    const char *name;
    broker_tcp_kind_t kind;
} s_commands[] = {
    {"IDENTIFY", BROKER_TCP_IDENTIFY}, {"AUTH", BROKER_TCP_AUTH}, {"SUB", BROKER_TCP_SUB},
    {"RDY", BROKER_TCP_RDY},           {"FIN", BROKER_TCP_FIN},   {"REQ", BROKER_TCP_REQ},
    {"TOUCH", BROKER_TCP_TOUCH},       {"CLS", BROKER_TCP_CLS},   {"NOP", BROKER_TCP_NOP},
    {"PUB", BROKER_TCP_PUB},           {"MPUB", BROKER_TCP_MPUB}, {"DPUB", BROKER_TCP_DPUB},
};

// Parses one line (and its body, from rest) into command.
static broker_tcp_status_t s_line(broker_tcp_parser_t *self, const line_t *line, rest_t *rest,
                                  broker_tcp_command_t *command, broker_tcp_error_t *error)
{
    char shown[512];
    size_t found = sizeof s_commands / sizeof s_commands[0];
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (s_word_is(line, s_commands[i].name))
            found = i;
    if (found != 0 && self->settings.tls_required && !self->tls)
        return s_fail(self, error, "E_INVALID", "cannot %s in current state (TLS required)",
                      s_show(shown, sizeof shown, line->word[0], line->length[0], false));
    if (found == sizeof s_commands / sizeof s_commands[0])
        return s_fail(self, error, "E_INVALID", "invalid command %s",
                      s_show(shown, sizeof shown, line->word[0], line->length[0], false));
    const char *name = s_commands[found].name;
    command->kind = s_commands[found].kind;
    switch (command->kind) {
    case BROKER_TCP_IDENTIFY:
    case BROKER_TCP_AUTH:
        return s_identify(self, line, rest, command, error);
    case BROKER_TCP_SUB:
        return s_sub(self, line, command, error);
    case BROKER_TCP_NOP:
        return BROKER_TCP_COMMAND;
    case BROKER_TCP_PUB:
    case BROKER_TCP_MPUB:
    case BROKER_TCP_DPUB:
        return s_publish(self, line, name, rest, command, error);
    default:
        return s_consumer(self, line, name, command, error);
    }
}

broker_tcp_status_t broker_tcp_parser_next(broker_tcp_parser_t *self, broker_tcp_command_t *command,
                                           broker_tcp_error_t *error)
{
    if (self->failed) {
        *error = self->error;
        return BROKER_TCP_ERROR;
    }
    broker_buffer_consume(self->input, self->consumed);
    self->consumed = 0;
    if (self->paused)
        return BROKER_TCP_PAUSED;
    if (!self->magic_seen) {
        if (broker_buffer_size(self->input) < 4)
            return BROKER_TCP_MORE;
        if (memcmp(broker_buffer_data(self->input), BROKER_TCP_MAGIC, 4) != 0)
            return s_fail(self, error, "E_BAD_PROTOCOL", "%s", "");  // nsqd sends the bare code
        broker_buffer_consume(self->input, 4);
        self->magic_seen = true;
    }
    for (;;) {
        const uint8_t *data = broker_buffer_data(self->input);
        size_t size = broker_buffer_size(self->input);
        const uint8_t *end =
            data ? memchr(data, '\n', size < BROKER_TCP_LINE_MAX ? size : BROKER_TCP_LINE_MAX)
                 : NULL;
        if (!end && size >= BROKER_TCP_LINE_MAX)
            return s_fail(self, error, "E_INVALID", "command line longer than %d bytes",
                          BROKER_TCP_LINE_MAX);
        if (!end)
            return BROKER_TCP_MORE;
        size_t length = (size_t) (end - data);
        line_t line;
        s_split(data, length > 0 && data[length - 1] == '\r' ? length - 1 : length, &line);
        rest_t rest = {end + 1, size - length - 1, 0};
        memset(command, 0, sizeof *command);
        // RDY after CLS is dropped, as nsqd ignores it.
        if (self->state == STATE_CLOSING && s_word_is(&line, "RDY")
            && !(self->settings.tls_required && !self->tls)) {
            broker_buffer_consume(self->input, length + 1);
            continue;
        }
        broker_tcp_status_t status = s_line(self, &line, &rest, command, error);
        if (status == BROKER_TCP_COMMAND)
            self->consumed = length + 1 + rest.used;
        return status;
    }
}

// ---- frames ----------------------------------------------------------------

// Appends [int32 size][int32 type][head][data].
static int s_frame(broker_buffer_t *out, broker_tcp_frame_type_t type, const void *head,
                   size_t head_size, const void *data, size_t size)
{
    if (size > INT32_MAX - 4 - head_size)
        return -1;
    uint8_t *room = broker_buffer_reserve(out, BROKER_TCP_FRAME_HEADER + head_size + size);
    if (!room)
        return -1;
    s_put_u32(room, (uint32_t) (4 + head_size + size));
    s_put_u32(room + 4, (uint32_t) type);
    if (head_size)
        memcpy(room + BROKER_TCP_FRAME_HEADER, head, head_size);
    if (size)
        memcpy(room + BROKER_TCP_FRAME_HEADER + head_size, data, size);
    broker_buffer_commit(out, BROKER_TCP_FRAME_HEADER + head_size + size);
    return 0;
}

int broker_tcp_write_response(broker_buffer_t *out, const void *data, size_t size)
{
    return s_frame(out, BROKER_TCP_FRAME_RESPONSE, NULL, 0, data, size);
}

int broker_tcp_write_error(broker_buffer_t *out, const char *text)
{
    return s_frame(out, BROKER_TCP_FRAME_ERROR, NULL, 0, text, strlen(text));
}

int broker_tcp_write_message(broker_buffer_t *out, int64_t timestamp, uint32_t attempts,
                             uint64_t id, const void *body, size_t size)
{
    uint8_t head[BROKER_TCP_MESSAGE_HEADER];
    s_put_u32(head, (uint32_t) ((uint64_t) timestamp >> 32));
    s_put_u32(head + 4, (uint32_t) timestamp);
    uint16_t shown = attempts > UINT16_MAX ? UINT16_MAX : (uint16_t) attempts;
    head[8] = (uint8_t) (shown >> 8);
    head[9] = (uint8_t) shown;
    char hex[NSQ_MESSAGE_ID_HEX_SIZE + 1];
    nsq_message_id_format(id, hex);
    memcpy(head + 10, hex, NSQ_MESSAGE_ID_HEX_SIZE);
    return s_frame(out, BROKER_TCP_FRAME_MESSAGE, head, sizeof head, body, size);
}
