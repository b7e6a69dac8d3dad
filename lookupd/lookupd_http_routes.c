/*  lookupd_http_routes - lookupd's HTTP API on the actor's thread
    SPDX-License-Identifier: MIT

    A request is unpacked into its arguments (each with its decoded size),
    routed by method and path, and answered as an s_answer_t the reply is
    built from. Reads render the registry's JSON; writes change the
    registry and answer an empty 200.
*/
#include "lookupd_http_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_config.h"
#include "nsq_json.h"
#include "nsq_log.h"
#include "nsq_names.h"

typedef struct {
    int status;        // HTTP status
    const char *type;  // content type
    char *body;        // owned
} s_answer_t;

static void s_answer_error(s_answer_t *answer, int status, const char *code)
{
    answer->status = status;
    answer->type = "application/json";
    answer->body = zsys_sprintf("{\"message\":\"%s\"}", code);
}

static void s_answer_json(s_answer_t *answer, char *body)
{
    if (!body) {
        s_answer_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = 200;
    answer->type = "application/json";
    answer->body = body;
}

// GET /info; the broadcast address is the operator's, escaped all the same.
// "console" tells how the console polls and what its history holds.
static void s_answer_info(const lookupd_http_routes_t *self, s_answer_t *answer)
{
    char broadcast[LOOKUPD_ADDRESS_MAX * 6];
    nsq_json_escape(broadcast, sizeof broadcast, self->broadcast_address);
    json_t *console = lookupd_console_info_json(self->console);
    char *console_text = console ? json_dumps(console, JSON_COMPACT) : NULL;
    json_decref(console);
    s_answer_json(answer, console_text ? zsys_sprintf("{\"version\":\"%s\",\"broadcast_address\":"
                                                      "\"%s\",\"http_port\":%u,\"zmq_port\":%u,"
                                                      "\"console\":%s}",
                                                      NSQ_VERSION, broadcast, self->http_port,
                                                      self->zmq_port, console_text)
                                       : NULL);
    free(console_text);
}

// A query argument as the HTTP thread sent it: its decoded bytes, which may
// hold a NUL, so names are checked with their size.
typedef struct {
    char *text;   // NUL-terminated copy (owned)
    size_t size;  // bytes received, the NUL excluded
} s_arg_t;

typedef struct {
    s_arg_t topic, channel, node, id;  // query arguments
    s_arg_t remote, user_agent;        // who asks
} s_args_t;

// Checks the topic (and channel when wanted) arguments; fills an error
// answer and returns false when one is missing or invalid.
static bool s_names_ok(s_answer_t *answer, const s_args_t *args, bool want_channel)
{
    if (args->topic.size == 0)
        return s_answer_error(answer, 400, "MISSING_ARG_TOPIC"), false;
    if (!nsq_name_is_valid_n(args->topic.text, args->topic.size))
        return s_answer_error(answer, 400, "INVALID_ARG_TOPIC"), false;
    if (want_channel && args->channel.size == 0)
        return s_answer_error(answer, 400, "MISSING_ARG_CHANNEL"), false;
    if (want_channel && !nsq_name_is_valid_n(args->channel.text, args->channel.size))
        return s_answer_error(answer, 400, "INVALID_ARG_CHANNEL"), false;
    return true;
}

// Read-only endpoints (GET).
static void s_route_get(const lookupd_http_routes_t *self, const char *path, const s_args_t *args,
                        s_answer_t *answer)
{
    int64_t now = zclock_mono();
    const char *topic = args->topic.text;
    if (streq(path, "/ping")) {
        answer->status = 200;
        answer->type = "text/plain; charset=utf-8";
        answer->body = strdup("OK");
    } else if (streq(path, "/info"))
        s_answer_info(self, answer);
    else if (streq(path, "/topics"))
        s_answer_json(answer, lookupd_registry_topics_json(self->registry));
    else if (streq(path, "/nodes"))
        s_answer_json(answer, lookupd_registry_nodes_json(self->registry, now));
    else if (!s_names_ok(answer, args, false))
        return;
    else if (streq(path, "/channels"))
        s_answer_json(answer, lookupd_registry_channels_json(self->registry, topic));
    else if (!lookupd_registry_has_topic(self->registry, topic))
        s_answer_error(answer, 404, "TOPIC_NOT_FOUND");
    else
        s_answer_json(answer, lookupd_registry_lookup_json(self->registry, topic, now));
}

// POST /topic/tombstone; returns false with the error answer filled.
static bool s_tombstone(const lookupd_http_routes_t *self, const s_args_t *args, s_answer_t *answer)
{
    if (args->node.size == 0)
        return s_answer_error(answer, 400, "MISSING_ARG_NODE"), false;
    // A node with a NUL in it names no producer (and must not match the
    // shorter one before the NUL).
    if (strlen(args->node.text) != args->node.size
        || lookupd_registry_tombstone(self->registry, args->topic.text, args->node.text,
                                      zclock_mono()))
        return s_answer_error(answer, 404, "PRODUCER_NOT_FOUND"), false;
    nsq_info("topic %s: producer %s tombstoned", args->topic.text, args->node.text);
    return true;
}

// Administrative endpoints (POST).
static void s_route_post(const lookupd_http_routes_t *self, const char *path, const s_args_t *args,
                         s_answer_t *answer)
{
    bool channel_op = strncmp(path, "/channel/", 9) == 0;
    if (!s_names_ok(answer, args, channel_op))
        return;
    const char *topic = args->topic.text, *channel = args->channel.text;
    int rc = 0;
    if (streq(path, "/topic/create") || streq(path, "/channel/create"))
        rc = lookupd_registry_create(self->registry, topic, channel_op ? channel : NULL);
    else if (streq(path, "/topic/delete"))
        lookupd_registry_delete(self->registry, topic, NULL);  // absent is fine, as NSQ
    else if (streq(path, "/channel/delete")
             && lookupd_registry_delete(self->registry, topic, channel)) {
        s_answer_error(answer, 404, "CHANNEL_NOT_FOUND");
        return;
    } else if (streq(path, "/topic/tombstone") && !s_tombstone(self, args, answer))
        return;
    if (rc) {
        s_answer_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = 200;
    answer->type = "text/plain; charset=utf-8";
    answer->body = strdup("");
}

static bool s_path_in(const char *path, const char *const *paths)
{
    for (size_t i = 0; paths[i]; i++)
        if (streq(path, paths[i]))
            return true;
    return false;
}

// Hands a console API request to the console.
static void s_route_console(const lookupd_http_routes_t *self, const char *method, const char *path,
                            const s_args_t *args, s_answer_t *answer)
{
    lookupd_console_request_t request = {method,
                                         path,
                                         args->topic.text,
                                         args->channel.text,
                                         args->node.text,
                                         args->id.text,
                                         args->topic.size,
                                         args->channel.size,
                                         args->node.size,
                                         args->remote.text,
                                         args->user_agent.text};
    lookupd_console_answer_t reply = {0, NULL, NULL};
    lookupd_console_handle(self->console, &request, &reply);
    if (!reply.body) {
        s_answer_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = reply.status;
    answer->type = reply.type;
    answer->body = reply.body;
}

// Routes one request; 405 for a known path with the wrong method.
static void s_route(const lookupd_http_routes_t *self, const char *method, const char *path,
                    const s_args_t *args, s_answer_t *answer)
{
    static const char *const reads[] = {"/ping",   "/info",     "/topics", "/nodes",
                                        "/lookup", "/channels", NULL};
    static const char *const writes[] = {"/topic/create",   "/topic/delete",    "/channel/create",
                                         "/channel/delete", "/topic/tombstone", NULL};
    bool get = streq(method, "GET") || streq(method, "HEAD");
    if (s_path_in(path, reads))
        get ? s_route_get(self, path, args, answer)
            : s_answer_error(answer, 405, "METHOD_NOT_ALLOWED");
    else if (s_path_in(path, writes))
        streq(method, "POST") ? s_route_post(self, path, args, answer)
                              : s_answer_error(answer, 405, "METHOD_NOT_ALLOWED");
    else if (lookupd_console_owns(path))
        s_route_console(self, method, path, args, answer);
    else
        s_answer_error(answer, 404, "NOT_FOUND");
}

// Pops the next frame of request as an argument; false if there is none.
static bool s_pop_arg(zmsg_t *request, s_arg_t *arg)
{
    zframe_t *frame = request ? zmsg_pop(request) : NULL;
    arg->size = frame ? zframe_size(frame) : 0;
    arg->text = frame ? zframe_strdup(frame) : NULL;
    zframe_destroy(&frame);
    return arg->text != NULL;
}

zmsg_t *lookupd_http_routes_answer(const lookupd_http_routes_t *self, zmsg_t **request_p)
{
    zmsg_t *request = *request_p;
    *request_p = NULL;
    zframe_t *identity = request ? zmsg_pop(request) : NULL;
    zframe_t *empty = request ? zmsg_pop(request) : NULL;
    char *method = request ? zmsg_popstr(request) : NULL;
    char *path = request ? zmsg_popstr(request) : NULL;
    s_args_t args;  // every argument popped, so that each can be freed below
    bool topic = s_pop_arg(request, &args.topic);
    bool channel = s_pop_arg(request, &args.channel);
    bool node = s_pop_arg(request, &args.node);
    bool id = s_pop_arg(request, &args.id);
    bool remote = s_pop_arg(request, &args.remote);
    bool complete =
        s_pop_arg(request, &args.user_agent) && topic && channel && node && id && remote;
    s_answer_t answer = {0, NULL, NULL};
    if (method && path && complete)
        s_route(self, method, path, &args, &answer);
    else
        s_answer_error(&answer, 400, "BAD_REQUEST");
    char status[8];
    snprintf(status, sizeof status, "%d", answer.status);
    zmsg_t *reply = identity && empty ? zmsg_new() : NULL;
    if (reply) {
        zmsg_append(reply, &identity);
        zmsg_append(reply, &empty);
        zmsg_addstr(reply, status);
        zmsg_addstr(reply, answer.type);
        zmsg_addstr(reply, answer.body ? answer.body : "");
    }
    zframe_destroy(&identity);
    zframe_destroy(&empty);
    zstr_free(&method);
    zstr_free(&path);
    zstr_free(&args.topic.text);
    zstr_free(&args.channel.text);
    zstr_free(&args.node.text);
    zstr_free(&args.id.text);
    zstr_free(&args.remote.text);
    zstr_free(&args.user_agent.text);
    free(answer.body);
    zmsg_destroy(&request);
    return reply;
}
