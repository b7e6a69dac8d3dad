/*  lookupd_console - the web console's API: the cluster as one view, its
    last hour, and actions on every broker
    SPDX-License-Identifier: MIT

    Lives on the lookupd actor's thread and owns: the polled view of the
    brokers (lookupd_cluster), their history (lookupd_history), the HTTP
    thread that polls and fans out (lookupd_fetch), the actions' jobs
    (lookupd_jobs) and the dead-letter replays (lookupd_replay). It never
    blocks the loop: every request to a broker runs on another thread and
    reports back through a zloop reader.

    Every --stats-interval the registry's brokers (through the nodes
    callback, a /nodes document) are polled for /stats?format=json and the
    peer lookupds for /info; a round still running when the next is due
    makes that one wait.

    GET  /api/overview, /api/topics[?topic=T[&channel=C]],
         /api/channel?topic=T&channel=C, /api/history?topic=T[&channel=C],
         /api/deadletters, /api/lookupd, /api/jobs[?id=N]
    POST /api/topic/{create,pause,unpause,empty,delete}?topic=T,
         /api/topic/tombstone?topic=T&node=HOST:HTTP_PORT,
         /api/channel/{create,pause,unpause,empty,delete}?topic=T&channel=C,
         /api/deadletters/{replay,sample}?topic=T.dead
    A POST starts a job and answers 202 with it at once; GET
    /api/jobs?id=N says how it went, per broker. Every action passes
    through s_act in lookupd_console_actions.c: the one place that logs
    who asked for what, and where a permission check belongs.

    API in call order: lookupd_console_new, lookupd_console_start (adds its
    readers and timer to the loop), lookupd_console_handle,
    lookupd_console_info_json, lookupd_console_destroy.
*/
#ifndef LOOKUPD_CONSOLE_H
#define LOOKUPD_CONSOLE_H

#include <czmq.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "nsq_http_client.h"

// Renders the registry's /nodes document. Caller frees; NULL on failure.
typedef char *(lookupd_console_nodes_fn) (void *arg);

// Applies action ("create", "delete" or "tombstone") to this lookupd's own
// registry: topic, channel ("" for a topic), node (tombstone only).
// Returns 0, or -1 with an NSQ error code in code.
typedef int(lookupd_console_registry_fn)(void *arg, const char *action, const char *topic,
                                         const char *channel, const char *node, char *code,
                                         size_t code_size);

typedef struct {
    int64_t stats_interval_ms;              // how often brokers are polled; 0 = never
    int64_t history_window_ms;              // how much history is kept
    size_t history_max_bytes;               // its memory bound; 0 = no history
    const char *const *peers;               // other lookupds' HTTP "host:port"
    size_t peer_count;                      // entries in peers
    lookupd_console_nodes_fn *nodes;        // the brokers
    lookupd_console_registry_fn *registry;  // our registry's side of actions
    void *arg;                              // for both callbacks
    const char *auth_secret;                // sent to brokers (Bearer), NULL = none; copied
    nsq_http_client_tls_t tls;              // https to brokers and peers: CA, client cert; copied
    const char *curve_key_file;             // replays: our CURVE key pair, NULL = plain; copied
    const char *curve_server_key_file;      // replays: the brokers' public certificate; copied
} lookupd_console_config_t;

// A request as lookupd's HTTP front end passed it. Arguments are their
// decoded bytes: a size that differs from strlen means a NUL inside.
typedef struct {
    const char *method, *path;
    const char *topic, *channel, *node, *id;  // "" when absent
    size_t topic_size, channel_size, node_size;
    const char *remote;      // the client's address
    const char *user_agent;  // its User-Agent header, "" if none
} lookupd_console_request_t;

typedef struct {
    int status;        // HTTP status
    const char *type;  // content type (static)
    char *body;        // owned by the caller after the call
} lookupd_console_answer_t;

typedef struct _lookupd_console_t lookupd_console_t;

// Creates the console (config copied, peer addresses too). The step of the history is the poll
// interval, or longer so that a window holds at most 240 buckets. Caller owns the result; NULL if
// out of memory.
lookupd_console_t *lookupd_console_new(const lookupd_console_config_t *config);

// Stops its threads (polls and actions in progress are abandoned) and
// nulls *self_p; accepts NULL. Call it before destroying the loop.
void lookupd_console_destroy(lookupd_console_t **self_p);

// Adds the poll timer and the result readers to loop. info (borrowed, a
// reference is kept) is this lookupd's /info document, shown by
// /api/lookupd. Returns 0, or -1 if the loop refused.
int lookupd_console_start(lookupd_console_t *self, zloop_t *loop, json_t *info);

// True if path is one of the console's API paths (it starts "/api/").
bool lookupd_console_owns(const char *path);

// Answers request (a path lookupd_console_owns). answer->body is set
// (caller frees) unless out of memory.
void lookupd_console_handle(lookupd_console_t *self, const lookupd_console_request_t *request,
                            lookupd_console_answer_t *answer);

// {"stats_interval_ms","history":{"step_ms","window_ms","series","bytes",
// "max_bytes","refused","evicted","expired"}} for lookupd's /info. New
// reference.
json_t *lookupd_console_info_json(lookupd_console_t *self);

#endif
