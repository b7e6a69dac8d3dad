/*  broker_tcp_identify - NSQ TCP IDENTIFY: the client's JSON, checked against
    nsqd's ranges, and the negotiated reply
    SPDX-License-Identifier: MIT

    Pure functions over the door's settings (broker_tcp_settings_t, filled
    once from the broker's options). The fields and ranges are nsqd's:

        heartbeat_interval     ms, 1000..max; -1 disables; 0 = default
        output_buffer_size     bytes, 64..max; -1 = unbuffered; 0 = default
        output_buffer_timeout  ms, min..max; -1 = none; 0 = default
        msg_timeout            ms, 1000..max-msg-timeout; 0 = default
        sample_rate            0..99 (percent of messages sent; 0 = all)
        client_id, hostname, user_agent   strings (kept for /stats)
        feature_negotiation    the reply is JSON instead of OK
        tls_v1, snappy, deflate, deflate_level   stream upgrades

    Keys match case-insensitively, a later duplicate wins and unknown keys
    are ignored (as Go's JSON decoder does); a value of the wrong type
    fails the whole body. A failure fills the error text nsqd sends after
    its E_BAD_BODY or E_IDENTIFY_FAILED code.

    API: broker_tcp_settings_defaults, broker_tcp_identify_parse,
    broker_tcp_identify_reply.
*/
#ifndef BROKER_TCP_IDENTIFY_H
#define BROKER_TCP_IDENTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BROKER_TCP_IDENTITY_MAX 255  // bytes kept of client_id, hostname, user_agent

// The door's settings: limits from the broker's options, defaults as nsqd's.
typedef struct {
    int64_t max_msg_size;                  // bytes per message body (PUB, DPUB, each of MPUB)
    int64_t max_body_size;                 // bytes per MPUB, IDENTIFY or AUTH body
    int64_t max_rdy_count;                 // upper bound for RDY
    int64_t max_req_timeout_ms;            // REQ delays are clamped to it, DPUB beyond it fails
    int64_t msg_timeout_ms;                // default in-flight timeout
    int64_t max_msg_timeout_ms;            // upper bound for IDENTIFY msg_timeout
    int64_t heartbeat_interval_ms;         // default heartbeat interval
    int64_t max_heartbeat_interval_ms;     // upper bound for IDENTIFY heartbeat_interval
    int64_t output_buffer_size;            // default bytes buffered before a write
    int64_t max_output_buffer_size;        // upper bound for IDENTIFY output_buffer_size
    int64_t output_buffer_timeout_ms;      // default longest wait before buffered frames go
    int64_t min_output_buffer_timeout_ms;  // lower bound for IDENTIFY output_buffer_timeout
    int64_t max_output_buffer_timeout_ms;  // upper bound for IDENTIFY output_buffer_timeout
    int max_deflate_level;                 // 1..9, what deflate_level is capped to
    bool deflate_enabled;                  // offer deflate
    bool snappy_enabled;                   // offer snappy
    bool tls_available;                    // a certificate and key are loaded
    bool tls_required;                     // no command but IDENTIFY before TLS
    bool auth_required;                    // an auth server is configured
    const char *version;                   // what the reply calls our version (static)
} broker_tcp_settings_t;

// What a client's IDENTIFY settles, with defaults where it asked for none.
typedef struct {
    char client_id[BROKER_TCP_IDENTITY_MAX + 1];   // as sent (cut at 255 bytes or a NUL)
    char hostname[BROKER_TCP_IDENTITY_MAX + 1];    // as sent
    char user_agent[BROKER_TCP_IDENTITY_MAX + 1];  // as sent
    int64_t heartbeat_interval_ms;                 // 0 = heartbeats disabled
    int64_t output_buffer_size;                    // bytes; 1 = every frame goes at once
    int64_t output_buffer_timeout_ms;              // 0 = no timed flush
    int64_t msg_timeout_ms;                        // in-flight timeout of its messages
    int sample_rate;                               // 0 = every message, else percent sent
    bool feature_negotiation;                      // answer with the negotiated JSON
    bool tls;                                      // upgrade to TLS (negotiated)
    bool snappy;                                   // upgrade to snappy (negotiated)
    bool deflate;                                  // upgrade to deflate (negotiated)
    int deflate_level;                             // the level used when deflate is on
} broker_tcp_identify_t;

// Fills settings with nsqd's defaults (and our broker's option defaults).
void broker_tcp_settings_defaults(broker_tcp_settings_t *settings);

// Fills out with the client's defaults: what a client that never sends
// IDENTIFY gets.
void broker_tcp_identify_defaults(const broker_tcp_settings_t *settings,
                                  broker_tcp_identify_t *out);

// Parses an IDENTIFY body (size bytes of JSON) into out, starting from the
// defaults. Returns 0, or -1 with *code set to "E_BAD_BODY" (not JSON, a
// wrong type, a value out of range) or "E_IDENTIFY_FAILED" (both snappy and
// deflate negotiated) and nsqd's description in error (size bytes).
int broker_tcp_identify_parse(const broker_tcp_settings_t *settings, const void *body, size_t size,
                              broker_tcp_identify_t *out, const char **code, char *error,
                              size_t error_size);

// Writes the negotiated reply (nsqd's keys, in nsqd's order) as compact
// JSON. Caller frees the result; NULL if out of memory.
char *broker_tcp_identify_reply(const broker_tcp_settings_t *settings,
                                const broker_tcp_identify_t *identify);

// Self-test; returns 0 on success.
int broker_tcp_identify_test(void);

#endif
