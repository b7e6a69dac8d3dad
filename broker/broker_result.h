/*  broker_result - what a core operation answered, in no door's words
    SPDX-License-Identifier: MIT

    Every operation of broker_server.h returns one of these. Each door maps
    them to its own wire: the HTTP door to a status and NSQ's JSON code
    (broker_http_answer.c), the ZeroMQ door to an E_* error frame
    (broker_zmq_commands.c). The names below are for logs only.
*/
#ifndef BROKER_RESULT_H
#define BROKER_RESULT_H

typedef enum {
    BROKER_OK = 0,
    BROKER_PENDING,            // accepted; durable mode answers after the group commit
    BROKER_INVALID,            // misuse: wrong state, IDENTIFY twice, RDY before SUB
    BROKER_BAD_TOPIC,          // not a valid topic name
    BROKER_BAD_CHANNEL,        // not a valid channel name
    BROKER_BAD_BODY,           // settings out of range (IDENTIFY), bodies above max-body-size
    BROKER_BAD_MESSAGE,        // no message, an empty one, or one above max-msg-size
    BROKER_OUT_OF_RANGE,       // RDY above max-rdy-count, defer above max-req-timeout
    BROKER_NOT_IN_FLIGHT,      // FIN/REQ/TOUCH of an id this client does not hold
    BROKER_TOPIC_NOT_FOUND,    // no such topic
    BROKER_CHANNEL_NOT_FOUND,  // no such channel
    BROKER_QUEUE_FULL,         // memory full and no disk to spill to
    BROKER_DISK_FAILED,        // a disk write failed (ENOSPC...)
    BROKER_SYNC_FAILED,        // durable: the fdatasync covering it failed
    BROKER_TOO_MANY_FILES,     // out of file descriptors (EMFILE, ENFILE)
    BROKER_NO_MEMORY,          // a topic, channel or record could not be made
    BROKER_EXITING,            // the broker is stopping and takes nothing more
    BROKER_AUTH_FAILED,        // the auth server refused the secret, or none was given
    BROKER_UNAUTHORIZED,       // the secret does not allow this (topic, channel, permission)
    BROKER_AUTH_UNAVAILABLE,   // no auth server answered: refused, never allowed
    BROKER_AUTH_PENDING,       // the auth server is being asked: retry after the callback
    BROKER_AUTH_FIRST,         // a session must AUTH before this command
    BROKER_AUTH_DISABLED,      // AUTH with no auth server configured
} broker_result_t;

// The result's name ("TOPIC_NOT_FOUND"), for logs. Static; "UNKNOWN" for
// a value outside the enum.
const char *broker_result_name(broker_result_t result);

#endif
