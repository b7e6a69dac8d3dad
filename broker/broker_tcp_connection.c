/*  broker_tcp_connection - one NSQ TCP client as the I/O thread sees it:
    socket, stream, parser, output buffering, heartbeats and liveness
    SPDX-License-Identifier: MIT
*/
#include "broker_tcp_connection.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_tcp_stream.h"

#define READ_SIZE  65536  // bytes per read(2)
#define READS_MAX  16     // reads per readiness, so that one client cannot starve the rest
#define DECODE_GAP 65536  // decoded bytes allowed beyond a whole command and body

typedef enum {
    UPGRADE_NONE,       // no upgrade under way
    UPGRADE_WAITING,    // the parser paused behind an upgrading IDENTIFY; the core decides
    UPGRADE_HANDSHAKE,  // TLS started; OK and compression follow the handshake
} upgrade_t;

struct _broker_tcp_connection_t {
    const broker_tcp_context_t *context;  // settings, TLS, the core's inbox (borrowed)
    uint64_t id;                          // the core's name for it
    int fd;                               // the socket
    broker_tcp_parser_t *parser;          // commands out of plaintext
    broker_tcp_stream_t *stream;          // TLS and compression
    broker_buffer_t *frame;               // scratch for frames written here
    broker_tcp_identify_t identify;       // settled by IDENTIFY (defaults before)
    upgrade_t upgrade;                    // where an upgrade stands
    uint32_t outstanding;                 // commands at the core, not finished
    bool parse_failed;                    // error waits for the outstanding commands
    broker_tcp_error_t error;             // the parser's fatal error
    bool blocked;                         // the core was told BLOCKED
    bool closing;                         // read nothing more; close once output is sent
    const char *closing_reason;           // why it is closing
    const char *closed;                   // finished, and why; NULL while alive
    int64_t last_read;                    // monotonic ms of the last byte read
    int64_t next_heartbeat;               // when the next heartbeat goes
    int64_t flush_at;                     // when buffered messages must go; 0 = none waiting
    int64_t stalled_since;                // output waiting since, without progress; 0 = none
    int64_t handshake_until;              // TLS handshake deadline
    int64_t linger_until;                 // closing: when to give up sending
    broker_tcp_event_t *fins;             // FINs parsed in a row, not yet handed over
    size_t fins_capacity;                 // of fins->fin_ids
};

void broker_tcp_event_destroy(broker_tcp_event_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_tcp_event_t *self = *self_p;
    for (size_t i = 0; i < self->message_count; i++)
        nsq_message_unref(&self->messages[i]);
    free(self->messages);
    free(self->fin_ids);
    if (self->secret)
        explicit_bzero(self->secret, self->secret_size);  // a secret outlives no event
    free(self->secret);
    free(self);
    *self_p = NULL;
}

static broker_tcp_event_t *s_event_new(broker_tcp_connection_t *self, broker_tcp_event_kind_t kind)
{
    broker_tcp_event_t *event = calloc(1, sizeof *event);
    if (event) {
        event->kind = kind;
        event->connection = self->id;
    }
    return event;
}

// Emits a bodiless event (OPENED, BLOCKED, UNBLOCKED, CLOSED).
static void s_emit(broker_tcp_connection_t *self, broker_tcp_event_kind_t kind, const char *reason)
{
    broker_tcp_event_t *event = s_event_new(self, kind);
    if (!event)
        return;  // the core misses a state change it would also infer from CLOSED
    event->reason = reason;
    self->context->emit(self->context->arg, event);
}

// Stops the connection: nothing more is read or sent.
static void s_close(broker_tcp_connection_t *self, const char *reason)
{
    if (!self->closed)
        self->closed = reason;
}

// Starts closing: what is pending still goes, for a while.
static void s_close_after_output(broker_tcp_connection_t *self, const char *reason, int64_t now)
{
    if (self->closing)
        return;
    self->closing = true;
    self->closing_reason = reason;
    self->linger_until = now + BROKER_TCP_CLOSE_LINGER_MS;
}

broker_tcp_connection_t *broker_tcp_connection_new(const broker_tcp_context_t *context, uint64_t id,
                                                   int fd, const char *remote_address, int64_t now)
{
    broker_tcp_connection_t *self = calloc(1, sizeof *self);
    if (!self) {
        close(fd);
        return NULL;
    }
    self->context = context;
    self->id = id;
    self->fd = fd;
    self->parser = broker_tcp_parser_new(context->settings);
    self->stream = broker_tcp_stream_new();
    self->frame = broker_buffer_new();
    broker_tcp_event_t *opened = s_event_new(self, BROKER_TCP_OPENED);
    if (!self->parser || !self->stream || !self->frame || !opened) {
        free(opened);
        broker_tcp_parser_destroy(&self->parser);
        broker_tcp_stream_destroy(&self->stream);
        broker_buffer_destroy(&self->frame);
        close(fd);
        free(self);
        return NULL;
    }
    broker_tcp_identify_defaults(context->settings, &self->identify);
    self->last_read = now;
    self->next_heartbeat = now + self->identify.heartbeat_interval_ms;
    snprintf(opened->remote_address, sizeof opened->remote_address, "%s", remote_address);
    context->emit(context->arg, opened);
    return self;
}

void broker_tcp_connection_destroy(broker_tcp_connection_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_tcp_connection_t *self = *self_p;
    s_emit(self, BROKER_TCP_CLOSED, self->closed ? self->closed : "shutdown");
    close(self->fd);
    broker_tcp_parser_destroy(&self->parser);
    broker_tcp_stream_destroy(&self->stream);
    broker_buffer_destroy(&self->frame);
    free(self);
    *self_p = NULL;
}

int broker_tcp_connection_fd(const broker_tcp_connection_t *self)
{
    return self->fd;
}

const char *broker_tcp_connection_closed(const broker_tcp_connection_t *self)
{
    return self->closed;
}

// ---- output ----------------------------------------------------------------

// Bytes queued for the client and not sent yet.
static size_t s_unsent(const broker_tcp_connection_t *self)
{
    return broker_buffer_size(broker_tcp_stream_output(self->stream))
           + broker_tcp_stream_unflushed(self->stream);
}

// Writes one response frame (text) into the stream.
static void s_write_response(broker_tcp_connection_t *self, const char *text)
{
    broker_buffer_clear(self->frame);
    if (broker_tcp_write_response(self->frame, text, strlen(text))
        || broker_tcp_stream_write(self->stream, broker_buffer_data(self->frame),
                                   broker_buffer_size(self->frame)))
        s_close(self, "out of memory");
}

static void s_flush(broker_tcp_connection_t *self)
{
    self->flush_at = 0;
    if (broker_tcp_stream_flush(self->stream))
        s_close(self, "TLS or compression failed on output");
}

static void s_parse(broker_tcp_connection_t *self, int64_t now);

// Tells the core when the client stops or starts taking messages; drops it
// past the hard limit.
static void s_check_output(broker_tcp_connection_t *self, int64_t now)
{
    size_t unsent = s_unsent(self);
    if (unsent > BROKER_TCP_OUTPUT_MAX) {
        s_close(self, "output buffer overflow (client not reading)");
    } else if (!self->blocked && unsent > BROKER_TCP_OUTPUT_HIGH) {
        self->blocked = true;
        s_emit(self, BROKER_TCP_BLOCKED, NULL);
    } else if (self->blocked && unsent < BROKER_TCP_OUTPUT_LOW) {
        self->blocked = false;
        s_emit(self, BROKER_TCP_UNBLOCKED, NULL);
        s_parse(self, now);
    }
}

// Sends what the stream's output holds, as far as the socket takes it.
static void s_send(broker_tcp_connection_t *self, int64_t now)
{
    broker_buffer_t *output = broker_tcp_stream_output(self->stream);
    bool progress = false;
    while (!self->closed && broker_buffer_size(output) > 0) {
        ssize_t sent = write(self->fd, broker_buffer_data(output), broker_buffer_size(output));
        if (sent > 0) {
            broker_buffer_consume(output, (size_t) sent);
            progress = true;
        } else if (sent < 0 && errno == EINTR) {
            continue;
        } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            s_close(self, "write failed (client gone)");
        }
    }
    if (broker_buffer_size(output) == 0)
        self->stalled_since = 0;
    else if (progress || self->stalled_since == 0)
        self->stalled_since = now;
    if (self->closing && s_unsent(self) == 0)
        s_close(self, self->closing_reason);
    if (!self->closed)
        s_check_output(self, now);
}

void broker_tcp_connection_writable(broker_tcp_connection_t *self, int64_t now)
{
    s_send(self, now);
}

// ---- commands to the core --------------------------------------------------

// The command as an event: its body becomes messages (PUB, DPUB, MPUB) or
// the secret (AUTH). Returns NULL if out of memory.
static broker_tcp_event_t *s_command_event(broker_tcp_connection_t *self,
                                           const broker_tcp_command_t *command)
{
    broker_tcp_event_t *event = s_event_new(self, BROKER_TCP_RECEIVED);
    if (!event)
        return NULL;
    event->command = *command;
    event->command.body = NULL;
    event->command.body_size = 0;
    bool publish = command->kind == BROKER_TCP_PUB || command->kind == BROKER_TCP_DPUB
                   || command->kind == BROKER_TCP_MPUB;
    if (publish) {
        size_t count = command->kind == BROKER_TCP_MPUB ? command->message_count : 1;
        event->messages = calloc(count, sizeof *event->messages);
        if (!event->messages)
            goto failed;
        size_t offset = 0, length = command->body_size;
        const uint8_t *data = command->body;
        for (size_t i = 0; i < count; i++) {
            if (command->kind == BROKER_TCP_MPUB)
                broker_tcp_mpub_next(command->body, command->body_size, &offset, &data, &length);
            event->messages[i] = nsq_message_new(data, length);
            if (!event->messages[i])
                goto failed;
            event->message_count++;
        }
    } else if (command->kind == BROKER_TCP_AUTH) {
        event->secret = malloc(command->body_size + 1);
        if (!event->secret)
            goto failed;
        memcpy(event->secret, command->body, command->body_size);
        event->secret[command->body_size] = '\0';
        event->secret_size = command->body_size;
    }
    return event;
failed:
    broker_tcp_event_destroy(&event);
    return NULL;
}

// Sends the parser's fatal error as the last frame.
static void s_fail(broker_tcp_connection_t *self, int64_t now)
{
    broker_buffer_clear(self->frame);
    if (broker_tcp_write_error(self->frame, self->error.text) == 0)
        broker_tcp_stream_write(self->stream, broker_buffer_data(self->frame),
                                broker_buffer_size(self->frame));
    s_flush(self);
    s_close_after_output(self, "protocol error", now);
    s_send(self, now);
}

// The most decoded plaintext the parser may hold: a whole command and body.
static size_t s_decode_limit(const broker_tcp_connection_t *self)
{
    return (size_t) self->context->settings->max_body_size + BROKER_TCP_LINE_MAX + DECODE_GAP;
}

// Hands the FINs gathered in a row to the core as one event.
static void s_emit_fins(broker_tcp_connection_t *self)
{
    if (self->fins)
        self->context->emit(self->context->arg, self->fins);
    self->fins = NULL;
}

// Gathers a valid FIN into the event of the FINs in a row: a consumer
// finishes a read's worth of messages at once, and one event for them all
// saves an allocation and a hand-off per message. Returns 0, or -1 if out
// of memory.
static int s_gather_fin(broker_tcp_connection_t *self, const broker_tcp_command_t *command)
{
    if (!self->fins) {
        self->fins = s_command_event(self, command);
        self->fins_capacity = 0;
        if (!self->fins)
            return -1;
    }
    broker_tcp_event_t *event = self->fins;
    if (event->fin_count == self->fins_capacity) {
        size_t capacity = self->fins_capacity ? 2 * self->fins_capacity : 64;
        uint64_t *grown = realloc(event->fin_ids, capacity * sizeof *grown);
        if (!grown)
            return -1;
        event->fin_ids = grown;
        self->fins_capacity = capacity;
    }
    event->fin_ids[event->fin_count++] = command->id;
    return 0;
}

// Parses and hands over commands (see s_parse); FINs in a row may wait
// in self->fins.
static void s_parse_commands(broker_tcp_connection_t *self, int64_t now)
{
    broker_buffer_t *input = broker_tcp_parser_input(self->parser);
    while (!self->closed && !self->closing && !self->parse_failed && !self->blocked
           && self->upgrade == UPGRADE_NONE && self->outstanding < BROKER_TCP_OUTSTANDING_MAX) {
        broker_tcp_command_t command;
        broker_tcp_status_t status = broker_tcp_parser_next(self->parser, &command, &self->error);
        if (status == BROKER_TCP_COMMAND) {
            if (command.kind == BROKER_TCP_NOP)
                continue;  // heard from: last_read is already fresh
            if (command.kind == BROKER_TCP_FIN && command.id_valid) {
                if (s_gather_fin(self, &command) != 0) {
                    s_close(self, "out of memory");
                    return;
                }
                self->outstanding++;
                continue;
            }
            s_emit_fins(self);  // the FINs before this command go first
            if (command.kind == BROKER_TCP_IDENTIFY) {
                self->identify = command.identify;  // its heartbeat ticker starts now
                self->next_heartbeat = now + self->identify.heartbeat_interval_ms;
            }
            broker_tcp_event_t *event = s_command_event(self, &command);
            if (!event) {
                s_close(self, "out of memory");
                return;
            }
            self->outstanding++;
            self->context->emit(self->context->arg, event);
        } else if (status == BROKER_TCP_PAUSED) {
            self->upgrade = UPGRADE_WAITING;
        } else if (status == BROKER_TCP_ERROR) {
            self->parse_failed = true;
        } else if (broker_tcp_stream_has_input(self->stream)) {
            size_t before = broker_buffer_size(input);
            if (broker_tcp_stream_read(self->stream, NULL, 0, input, s_decode_limit(self))) {
                s_close(self, "TLS or compression stream corrupt");
                return;
            }
            if (broker_buffer_size(input) == before)
                break;
        } else {
            break;
        }
    }
}

// Hands every complete command to the core, while the client may have more
// outstanding and no upgrade or error holds the parser.
static void s_parse(broker_tcp_connection_t *self, int64_t now)
{
    s_parse_commands(self, now);
    s_emit_fins(self);  // in order: before anything a later parse emits
    if (self->parse_failed && self->outstanding == 0 && !self->closing)
        s_fail(self, now);
}

// ---- IDENTIFY and the upgrades ---------------------------------------------

// Tells the core the TLS handshake is done, with the client certificate's
// common name (for the auth server), before any command sent over TLS.
static void s_secured(broker_tcp_connection_t *self)
{
    broker_tcp_event_t *event = s_event_new(self, BROKER_TCP_SECURED);
    if (!event)
        return;  // the core keeps tls=true from the IDENTIFY, without a name
    broker_tcp_stream_peer_common_name(self->stream, event->common_name, sizeof event->common_name);
    self->context->emit(self->context->arg, event);
}

// After the TLS handshake, or at once without TLS: the compression, each
// upgrade confirmed by an OK in its new stream; then parsing goes on.
static void s_finish_upgrades(broker_tcp_connection_t *self, int64_t now)
{
    bool tls = self->upgrade == UPGRADE_HANDSHAKE;
    if (tls) {
        s_secured(self);
        s_write_response(self, "OK");
        s_flush(self);
    }
    if (self->identify.snappy || self->identify.deflate) {
        broker_buffer_t *behind = broker_buffer_new();
        int rc = behind ? broker_tcp_parser_take_unparsed(self->parser, behind) : -1;
        if (rc == 0)
            rc = self->identify.snappy ? broker_tcp_stream_start_snappy(self->stream, behind)
                                       : broker_tcp_stream_start_deflate(
                                           self->stream, self->identify.deflate_level, behind);
        broker_buffer_destroy(&behind);
        if (rc) {
            s_close(self, "cannot start compression");
            return;
        }
        s_write_response(self, "OK");
        s_flush(self);
    }
    self->upgrade = UPGRADE_NONE;
    broker_tcp_parser_resume(self->parser, tls);
    s_send(self, now);
    // The client's first bytes in the new stream may be waiting already.
    if (!self->closed
        && broker_tcp_stream_read(self->stream, NULL, 0, broker_tcp_parser_input(self->parser),
                                  s_decode_limit(self)))
        s_close(self, "TLS or compression stream corrupt");
    s_parse(self, now);
}

// The core accepted the IDENTIFY: reply (JSON when negotiating), then
// upgrade the stream as negotiated.
static void s_identified(broker_tcp_connection_t *self, int64_t now)
{
    char *reply = self->identify.feature_negotiation
                      ? broker_tcp_identify_reply(self->context->settings, &self->identify)
                      : NULL;
    if (self->identify.feature_negotiation && !reply) {
        s_close(self, "out of memory");
        return;
    }
    s_write_response(self, reply ? reply : "OK");
    free(reply);
    s_flush(self);
    if (self->upgrade != UPGRADE_WAITING)
        return;  // nothing negotiated: the parser never paused
    if (!self->identify.tls) {
        s_finish_upgrades(self, now);
        return;
    }
    s_send(self, now);  // the reply leaves in plaintext before TLS starts
    broker_buffer_t *behind = broker_buffer_new();
    int rc = behind ? broker_tcp_parser_take_unparsed(self->parser, behind) : -1;
    if (rc == 0)
        rc = broker_tcp_stream_start_tls(self->stream, self->context->tls, behind);
    broker_buffer_destroy(&behind);
    if (rc) {
        s_close(self, "cannot start TLS");
        return;
    }
    self->upgrade = UPGRADE_HANDSHAKE;
    self->handshake_until = now + BROKER_TCP_HANDSHAKE_MS;
    // The ClientHello may have come with the IDENTIFY.
    if (broker_tcp_stream_read(self->stream, NULL, 0, broker_tcp_parser_input(self->parser),
                               s_decode_limit(self)))
        s_close(self, "TLS handshake failed");
    else if (!broker_tcp_stream_handshaking(self->stream))
        s_finish_upgrades(self, now);
}

// ---- from the socket and from the core -------------------------------------

void broker_tcp_connection_readable(broker_tcp_connection_t *self, int64_t now)
{
    uint8_t data[READ_SIZE];
    broker_buffer_t *input = broker_tcp_parser_input(self->parser);
    for (int reads = 0; reads < READS_MAX && !self->closed && !self->closing; reads++) {
        ssize_t size = read(self->fd, data, sizeof data);
        if (size < 0 && errno == EINTR)
            continue;
        if (size < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (size <= 0) {
            // Commands that came whole before the end still count, as in nsqd.
            s_parse(self, now);
            s_close(self, size == 0 ? "client closed the connection" : "read failed");
            break;
        }
        self->last_read = now;
        if (broker_tcp_stream_read(self->stream, data, (size_t) size, input,
                                   s_decode_limit(self))) {
            s_close(self, broker_tcp_stream_is_tls(self->stream) ? "TLS failed"
                                                                 : "compression stream corrupt");
            break;
        }
        if (self->upgrade == UPGRADE_HANDSHAKE && !broker_tcp_stream_handshaking(self->stream))
            s_finish_upgrades(self, now);
        s_parse(self, now);
        if ((size_t) size < sizeof data)
            break;
    }
    s_send(self, now);  // handshake records, a last error frame
}

void broker_tcp_connection_post(broker_tcp_connection_t *self, broker_buffer_t **bytes,
                                unsigned flags, uint32_t done, int64_t now)
{
    self->outstanding -= done < self->outstanding ? done : self->outstanding;
    if (bytes && *bytes && !self->closed) {
        if (broker_tcp_stream_write(self->stream, broker_buffer_data(*bytes),
                                    broker_buffer_size(*bytes)))
            s_close(self, "out of memory");
    }
    if (bytes)
        broker_buffer_destroy(bytes);
    if (self->closed)
        return;
    if (flags & BROKER_TCP_POST_CLOSE)
        s_close_after_output(self, "fatal error", now);
    if (flags & BROKER_TCP_POST_IDENTIFIED)
        s_identified(self, now);
    if (flags & (BROKER_TCP_POST_FLUSH | BROKER_TCP_POST_CLOSE)
        || self->identify.output_buffer_timeout_ms == 0
        || broker_tcp_stream_unflushed(self->stream) >= (size_t) self->identify.output_buffer_size)
        s_flush(self);
    else if (broker_tcp_stream_unflushed(self->stream) > 0 && self->flush_at == 0)
        self->flush_at = now + self->identify.output_buffer_timeout_ms;
    s_send(self, now);
    s_parse(self, now);
}

// ---- timers ----------------------------------------------------------------

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t broker_tcp_connection_tick(broker_tcp_connection_t *self, int64_t now)
{
    if (self->closed)
        return INT64_MAX;
    int64_t next = INT64_MAX;
    int64_t interval = self->identify.heartbeat_interval_ms;
    bool reading;
    broker_tcp_connection_interest(self, &reading, &(bool){false});
    if (self->flush_at && now >= self->flush_at) {
        s_flush(self);
        s_send(self, now);
    }
    if (interval > 0 && self->upgrade == UPGRADE_NONE && !self->closing) {
        if (now >= self->next_heartbeat) {
            broker_buffer_clear(self->frame);
            s_write_response(self, "_heartbeat_");
            s_flush(self);
            s_send(self, now);
            self->next_heartbeat = now + interval;
        }
        if (!reading)
            self->last_read = now;  // we are not reading: its silence is ours
        if (now - self->last_read > 2 * interval)
            s_close(self, "missed heartbeats");
        if (self->stalled_since && now - self->stalled_since > interval)
            s_close(self, "writes stalled for a heartbeat interval");
        next = s_min(self->next_heartbeat, self->last_read + 2 * interval + 1);
    }
    if (self->upgrade == UPGRADE_HANDSHAKE) {
        if (now >= self->handshake_until)
            s_close(self, "TLS handshake timed out");
        next = s_min(next, self->handshake_until);
    }
    if (self->closing) {
        if (now >= self->linger_until)
            s_close(self, self->closing_reason);
        next = s_min(next, self->linger_until);
    }
    if (self->flush_at)
        next = s_min(next, self->flush_at);
    return self->closed ? INT64_MAX : next;
}

void broker_tcp_connection_interest(const broker_tcp_connection_t *self, bool *read, bool *write)
{
    *write = !self->closed && broker_buffer_size(broker_tcp_stream_output(self->stream)) > 0;
    *read = !self->closed && !self->closing && !self->parse_failed && !self->blocked
            && self->outstanding < BROKER_TCP_OUTSTANDING_MAX
            && broker_tcp_parser_buffered(self->parser) < s_decode_limit(self);
}
