/*  broker_tcp_codec - NSQ's TCP protocol V2: client bytes into checked
    commands, and the server's frames
    SPDX-License-Identifier: MIT

    The parser takes a connection's plaintext as it arrives, in pieces of
    any size, and hands out one command at a time: the "  V2" magic first,
    then lines ending in \n (an optional \r is dropped), words split on
    single spaces, and for IDENTIFY, AUTH, PUB, DPUB and MPUB a body after
    the line: [int32 BE size][size bytes]. Every check that needs nothing
    but the bytes, the settings and the client's protocol state is made
    here, in nsqd's order and with nsqd's codes and descriptions (its
    error frame reads "E_CODE description"): names, ids, numbers, ranges,
    body sizes checked before the body is waited for, the MPUB layout, the
    IDENTIFY JSON. Each of these errors is fatal in nsqd (the connection
    closes after the error frame), so the parser stops at the first one.

    The parser follows the client's state as nsqd's protocolV2 does: IDENTIFY
    and AUTH only before SUB, SUB once, RDY/FIN/REQ/TOUCH only after it, CLS
    moves to closing (RDY is then ignored). It moves on as if each command
    succeeds: the commands that change state fail only fatally, so a door
    that executes them in order and closes the connection at a fatal
    answer never acts on a later command parsed under a wrong state.

    After an IDENTIFY that negotiated TLS, snappy or deflate, the bytes
    behind it belong to the upgraded stream: the parser pauses
    (broker_tcp_parser_next returns BROKER_TCP_PAUSED) until the door has
    taken them (broker_tcp_parser_take_unparsed), upgraded its stream,
    and resumes it (broker_tcp_parser_resume).

    The writers append whole frames ([int32 BE size][int32 BE type][data])
    to a broker_buffer_t: responses, errors, and messages in nsqd's layout
    ([int64 BE timestamp ns][uint16 BE attempts][16-byte ASCII hex id][body]).

    API in call order: broker_tcp_parser_new, broker_tcp_parser_feed,
    broker_tcp_parser_next (until it needs more), broker_tcp_parser_take_unparsed
    + broker_tcp_parser_resume after an upgrade, broker_tcp_parser_destroy;
    broker_tcp_mpub_next; broker_tcp_write_response, broker_tcp_write_error,
    broker_tcp_write_message; broker_tcp_error_is_fatal.
*/
#ifndef BROKER_TCP_CODEC_H
#define BROKER_TCP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_buffer.h"
#include "broker_tcp_identify.h"
#include "nsq_message.h"
#include "nsq_names.h"

#define BROKER_TCP_MAGIC "  V2"
// Longest command line; nsqd's reader fails on a line longer than its
// 16 KiB buffer.
#define BROKER_TCP_LINE_MAX 16384
// Frame header: [int32 size][int32 type].
#define BROKER_TCP_FRAME_HEADER 8
// Message frame data before the body: timestamp, attempts, id.
#define BROKER_TCP_MESSAGE_HEADER (8 + 2 + NSQ_MESSAGE_ID_HEX_SIZE)

typedef enum {
    BROKER_TCP_FRAME_RESPONSE = 0,
    BROKER_TCP_FRAME_ERROR = 1,
    BROKER_TCP_FRAME_MESSAGE = 2,
} broker_tcp_frame_type_t;

typedef enum {
    BROKER_TCP_IDENTIFY,  // identify, body = the JSON
    BROKER_TCP_AUTH,      // body = the secret
    BROKER_TCP_SUB,       // topic, channel
    BROKER_TCP_RDY,       // count
    BROKER_TCP_FIN,       // id
    BROKER_TCP_REQ,       // id, ms (clamped to 0..max-req-timeout)
    BROKER_TCP_TOUCH,     // id
    BROKER_TCP_CLS,       //
    BROKER_TCP_NOP,       //
    BROKER_TCP_PUB,       // topic, body = the message
    BROKER_TCP_MPUB,      // topic, body = [int32 count]([int32 size][data])*, count
    BROKER_TCP_DPUB,      // topic, ms (the defer), body = the message
} broker_tcp_kind_t;

typedef struct {
    broker_tcp_kind_t kind;
    char topic[NSQ_NAME_MAX + 1];               // SUB, PUB, MPUB, DPUB (valid)
    char channel[NSQ_NAME_MAX + 1];             // SUB (valid)
    char id_text[NSQ_MESSAGE_ID_HEX_SIZE + 1];  // FIN, REQ, TOUCH: the 16 bytes, ? if unprintable
    bool id_valid;                              // id_text is 16 hex digits, parsed into id
    uint64_t id;                                // the parsed id
    int64_t count;                              // RDY: 0..max-rdy-count
    int64_t ms;                                 // REQ delay, DPUB defer
    uint32_t message_count;                     // MPUB: messages in body (checked)
    const uint8_t *body;                        // borrowed until the next parser call
    size_t body_size;                           // its length
    broker_tcp_identify_t identify;             // IDENTIFY: what it settles
} broker_tcp_command_t;

// A protocol error: the frame's text is "CODE description".
typedef struct {
    const char *code;  // static, e.g. "E_INVALID"
    char text[512];    // the error frame's body
} broker_tcp_error_t;

typedef enum {
    BROKER_TCP_MORE,     // no whole command yet: feed more bytes
    BROKER_TCP_COMMAND,  // *command holds the next command
    BROKER_TCP_PAUSED,   // after an upgrading IDENTIFY: take the unparsed bytes, resume
    BROKER_TCP_ERROR,    // *error holds a fatal error; the parser accepts nothing more
} broker_tcp_status_t;

typedef struct _broker_tcp_parser_t broker_tcp_parser_t;

// Returns a parser expecting the magic. settings is copied. Caller owns
// the result; NULL if out of memory.
broker_tcp_parser_t *broker_tcp_parser_new(const broker_tcp_settings_t *settings);

// Frees the parser. Nulls *self_p; accepts NULL.
void broker_tcp_parser_destroy(broker_tcp_parser_t **self_p);

// Appends plaintext bytes. Returns 0, or -1 if out of memory.
int broker_tcp_parser_feed(broker_tcp_parser_t *self, const void *data, size_t size);

// Parses the next command. The command's body and the previous command's
// bytes stay valid until the next call. On BROKER_TCP_ERROR the error
// is final: later calls return it again.
broker_tcp_status_t broker_tcp_parser_next(broker_tcp_parser_t *self, broker_tcp_command_t *command,
                                           broker_tcp_error_t *error);

// Paused: moves the bytes received after the IDENTIFY into out (appended;
// they are to be decoded by the upgraded stream). Returns 0, or -1 if out
// of memory.
int broker_tcp_parser_take_unparsed(broker_tcp_parser_t *self, broker_buffer_t *out);

// Parses again after an upgrade; tls says the stream is now TLS (for
// --tls-required).
void broker_tcp_parser_resume(broker_tcp_parser_t *self, bool tls);

// The buffer broker_tcp_parser_feed appends to (borrowed): a stream may
// decode straight into it. Append only.
broker_buffer_t *broker_tcp_parser_input(broker_tcp_parser_t *self);

// Bytes fed and not parsed yet.
size_t broker_tcp_parser_buffered(const broker_tcp_parser_t *self);

// Walks an MPUB body the parser checked: *offset starts at 0. Returns true
// and the next message's place, or false after the last one.
bool broker_tcp_mpub_next(const uint8_t *body, size_t size, size_t *offset, const uint8_t **data,
                          size_t *length);

// Appends a response frame. Returns 0, or -1 if out of memory.
int broker_tcp_write_response(broker_buffer_t *out, const void *data, size_t size);

// Appends an error frame carrying text ("E_CODE description").
int broker_tcp_write_error(broker_buffer_t *out, const char *text);

// Appends a message frame: timestamp in ns, attempts (capped at 65535),
// the id as 16 hex digits, the body.
int broker_tcp_write_message(broker_buffer_t *out, int64_t timestamp, uint32_t attempts,
                             uint64_t id, const void *body, size_t size);

// True unless code is one nsqd answers without closing the connection
// (E_FIN_FAILED, E_REQ_FAILED, E_TOUCH_FAILED).
bool broker_tcp_error_is_fatal(const char *code);

// Self-test; returns 0 on success.
int broker_tcp_codec_test(void);

#endif
