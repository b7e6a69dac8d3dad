/*  broker_auth_grant - what an auth server granted one secret: its answer
    parsed and checked, and the permission test every door relies on
    SPDX-License-Identifier: MIT

    Patterns are compiled once, when the answer is parsed, and matched with
    regexec (REG_NOSUB: only "does it match" is asked).
*/
#include "broker_auth_grant.h"

#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_AUTHORIZATIONS_MAX 4096  // an answer with more is refused
#define S_CHANNELS_MAX       1024  // channel patterns per authorization
#define S_TTL_MAX_S          (30 * 24 * 3600)

typedef struct {
    regex_t topic;         // compiled topic pattern
    regex_t *channels;     // compiled channel patterns
    size_t channel_count;  // entries of channels compiled
    unsigned permits;      // broker_permit_t bits
} authorization_t;

struct _broker_auth_grant_t {
    int64_t ttl_ms;                   // how long the answer holds
    char *identity;                   // "" when absent
    char *identity_url;               // "" when absent
    authorization_t *authorizations;  // what it may do
    size_t count;                     // entries of authorizations filled
};

static void s_authorization_free(authorization_t *authorization)
{
    regfree(&authorization->topic);
    for (size_t i = 0; i < authorization->channel_count; i++)
        regfree(&authorization->channels[i]);
    free(authorization->channels);
}

void broker_auth_grant_destroy(broker_auth_grant_t **self_p)
{
    broker_auth_grant_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        s_authorization_free(&self->authorizations[i]);
    free(self->authorizations);
    free(self->identity);
    free(self->identity_url);
    free(self);
    *self_p = NULL;
}

// ---- parsing ----------------------------------------------------------------------

// Compiles a pattern (a JSON string) into out. Returns 0, or -1 with a reason.
static int s_compile(json_t *pattern, regex_t *out, const char *what, char *error, size_t size)
{
    const char *text = json_string_value(pattern);
    if (!text || strlen(text) != json_string_length(pattern))
        return snprintf(error, size, "%s pattern is not a string", what), -1;
    if (regcomp(out, text, REG_EXTENDED | REG_NOSUB) != 0)
        return snprintf(error, size, "%s pattern does not compile", what), -1;
    return 0;
}

// Reads "permissions" into permits; an unknown one refuses the answer.
static int s_permissions(json_t *list, unsigned *permits, char *error, size_t size)
{
    static const struct {
        const char *name;
        broker_permit_t permit;
    } known[] = {{"subscribe", BROKER_PERMIT_SUBSCRIBE},
                 {"publish", BROKER_PERMIT_PUBLISH},
                 {"admin", BROKER_PERMIT_ADMIN}};
    if (!json_is_array(list))
        return snprintf(error, size, "permissions is not an array"), -1;
    size_t index;
    json_t *item;
    json_array_foreach(list, index, item)
    {
        const char *name = json_string_value(item);
        size_t k = 0;
        while (name && k < sizeof known / sizeof *known && strcmp(name, known[k].name) != 0)
            k++;
        if (!name || k == sizeof known / sizeof *known)
            return snprintf(error, size, "unknown permission"), -1;
        *permits |= known[k].permit;
    }
    return 0;
}

// Fills out from one element of "authorizations". On failure out holds
// nothing to free.
static int s_authorization(json_t *item, authorization_t *out, char *error, size_t size)
{
    memset(out, 0, sizeof *out);
    json_t *channels = json_object_get(item, "channels");
    if (!json_is_object(item) || !json_is_array(channels)
        || json_array_size(channels) > S_CHANNELS_MAX)
        return snprintf(error, size, "an authorization is not {topic, channels[], permissions[]}"),
               -1;
    if (s_permissions(json_object_get(item, "permissions"), &out->permits, error, size) != 0
        || s_compile(json_object_get(item, "topic"), &out->topic, "topic", error, size) != 0)
        return -1;
    out->channels = calloc(json_array_size(channels) + 1, sizeof *out->channels);
    if (!out->channels) {
        regfree(&out->topic);
        return snprintf(error, size, "out of memory"), -1;
    }
    size_t index;
    json_t *pattern;
    json_array_foreach(channels, index, pattern)
    {
        if (s_compile(pattern, &out->channels[index], "channel", error, size) != 0) {
            s_authorization_free(out);
            return -1;
        }
        out->channel_count++;
    }
    return 0;
}

// A copy of an optional string member ("" when absent); NULL if it is
// there and not a string, or out of memory.
static char *s_string_member(json_t *root, const char *key)
{
    json_t *value = json_object_get(root, key);
    if (value && !json_is_null(value) && !json_is_string(value))
        return NULL;
    return strdup(value && json_is_string(value) ? json_string_value(value) : "");
}

static int s_fill(broker_auth_grant_t *self, json_t *root, char *error, size_t size)
{
    json_t *ttl = json_object_get(root, "ttl");
    json_t *list = json_object_get(root, "authorizations");
    if (!json_is_integer(ttl) || json_integer_value(ttl) <= 0
        || json_integer_value(ttl) > S_TTL_MAX_S)
        return snprintf(error, size, "ttl is not a number of seconds above 0"), -1;
    self->ttl_ms = (int64_t) json_integer_value(ttl) * 1000;
    self->identity = s_string_member(root, "identity");
    self->identity_url = s_string_member(root, "identity_url");
    if (!self->identity || !self->identity_url)
        return snprintf(error, size, "identity or identity_url is not a string"), -1;
    if (!json_is_array(list) || json_array_size(list) > S_AUTHORIZATIONS_MAX)
        return snprintf(error, size, "authorizations is not an array"), -1;
    self->authorizations = calloc(json_array_size(list) + 1, sizeof *self->authorizations);
    if (!self->authorizations)
        return snprintf(error, size, "out of memory"), -1;
    size_t index;
    json_t *item;
    json_array_foreach(list, index, item)
    {
        if (s_authorization(item, &self->authorizations[index], error, size) != 0)
            return -1;
        self->count++;
    }
    return 0;
}

broker_auth_grant_t *broker_auth_grant_parse(const char *json, size_t size, char *error,
                                             size_t error_size)
{
    json_error_t parse_error;
    json_t *root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &parse_error);
    if (!json_is_object(root)) {
        snprintf(error, error_size, "the answer is not a JSON object");
        json_decref(root);
        return NULL;
    }
    broker_auth_grant_t *self = calloc(1, sizeof *self);
    if (!self)
        snprintf(error, error_size, "out of memory");
    else if (s_fill(self, root, error, error_size) != 0)
        broker_auth_grant_destroy(&self);
    json_decref(root);
    return self;
}

// ---- matching -----------------------------------------------------------------------

static bool s_matches(const regex_t *pattern, const char *name)
{
    return regexec(pattern, name, 0, NULL, 0) == 0;
}

bool broker_auth_grant_allows(const broker_auth_grant_t *self, broker_permit_t permit,
                              const char *topic, const char *channel)
{
    if (permit == BROKER_PERMIT_IDENTITY)
        return self->count > 0;
    for (size_t i = 0; i < self->count; i++) {
        const authorization_t *authorization = &self->authorizations[i];
        if (!(authorization->permits & permit) || !s_matches(&authorization->topic, topic))
            continue;
        for (size_t c = 0; c < authorization->channel_count; c++)
            if (s_matches(&authorization->channels[c], channel))
                return true;
    }
    return false;
}

int64_t broker_auth_grant_ttl_ms(const broker_auth_grant_t *self)
{
    return self->ttl_ms;
}

const char *broker_auth_grant_identity(const broker_auth_grant_t *self)
{
    return self->identity;
}

const char *broker_auth_grant_identity_url(const broker_auth_grant_t *self)
{
    return self->identity_url;
}

size_t broker_auth_grant_count(const broker_auth_grant_t *self)
{
    return self->count;
}

// ---- self-test ----------------------------------------------------------------------

static broker_auth_grant_t *s_parse(const char *json)
{
    char error[128];
    return broker_auth_grant_parse(json, strlen(json), error, sizeof error);
}

int broker_auth_grant_test(void)
{
    printf(" * broker_auth_grant: ");
    broker_auth_grant_t *grant =
        s_parse("{\"ttl\":3600,\"identity\":\"alice\",\"identity_url\":\"https://id/alice\","
                "\"authorizations\":["
                "{\"topic\":\"^orders$\",\"channels\":[\".*\"],\"permissions\":[\"publish\"]},"
                "{\"topic\":\"^orders$\",\"channels\":[\"^billing$\",\"^audit\"],"
                "\"permissions\":[\"subscribe\"]},"
                "{\"topic\":\"logs\",\"channels\":[],\"permissions\":[\"publish\",\"admin\"]}]}");
    if (!grant || broker_auth_grant_ttl_ms(grant) != 3600000
        || strcmp(broker_auth_grant_identity(grant), "alice") != 0
        || strcmp(broker_auth_grant_identity_url(grant), "https://id/alice") != 0
        || broker_auth_grant_count(grant) != 3)
        return printf("parse failed\n"), 1;
    struct {
        broker_permit_t permit;
        const char *topic, *channel;
        bool allowed;
    } cases[] = {
        {BROKER_PERMIT_PUBLISH, "orders", "", true},
        {BROKER_PERMIT_PUBLISH, "orders2", "", false},  // anchored by the pattern itself
        {BROKER_PERMIT_PUBLISH, "other", "", false},
        {BROKER_PERMIT_SUBSCRIBE, "orders", "billing", true},
        {BROKER_PERMIT_SUBSCRIBE, "orders", "audit#ephemeral", true},
        {BROKER_PERMIT_SUBSCRIBE, "orders", "marketing", false},
        {BROKER_PERMIT_SUBSCRIBE, "orders", "xbilling", false},
        {BROKER_PERMIT_ADMIN, "orders", "", false},
        // "logs" is searched, not anchored (as nsqd), but no channel
        // pattern matches "": it may not publish, as in nsqd
        {BROKER_PERMIT_PUBLISH, "mylogs", "", false},
        {BROKER_PERMIT_ADMIN, "logs", "", false},
        {BROKER_PERMIT_IDENTITY, "", "", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (broker_auth_grant_allows(grant, cases[i].permit, cases[i].topic, cases[i].channel)
            != cases[i].allowed)
            return printf("case %zu failed\n", i), 1;
    broker_auth_grant_destroy(&grant);

    // Unanchored search, as nsqd: "logs" matches "mylogs2".
    grant = s_parse("{\"ttl\":1,\"authorizations\":[{\"topic\":\"logs\",\"channels\":[\"\"],"
                    "\"permissions\":[\"publish\"]}]}");
    if (!grant || !broker_auth_grant_allows(grant, BROKER_PERMIT_PUBLISH, "mylogs2", "")
        || strcmp(broker_auth_grant_identity(grant), "") != 0)
        return printf("unanchored search failed\n"), 1;
    broker_auth_grant_destroy(&grant);

    // No authorizations: a valid answer with no identity to speak of.
    grant = s_parse("{\"ttl\":5,\"identity\":\"x\",\"authorizations\":[]}");
    if (!grant || broker_auth_grant_allows(grant, BROKER_PERMIT_IDENTITY, "", ""))
        return printf("empty authorizations failed\n"), 1;
    broker_auth_grant_destroy(&grant);

    const char *refused[] = {
        "",
        "[]",
        "{\"ttl\":0,\"authorizations\":[]}",
        "{\"ttl\":-5,\"authorizations\":[]}",
        "{\"ttl\":\"60\",\"authorizations\":[]}",
        "{\"ttl\":60}",
        "{\"ttl\":60,\"authorizations\":[{\"topic\":\"(\",\"channels\":[],"
        "\"permissions\":[]}]}",
        "{\"ttl\":60,\"authorizations\":[{\"topic\":\"a\",\"channels\":[\"[\"],"
        "\"permissions\":[]}]}",
        "{\"ttl\":60,\"authorizations\":[{\"topic\":\"a\",\"channels\":[],"
        "\"permissions\":[\"root\"]}]}",
        "{\"ttl\":60,\"authorizations\":[{\"topic\":\"a\",\"channels\":\".*\","
        "\"permissions\":[]}]}",
        "{\"ttl\":60,\"authorizations\":[{\"topic\":\"a\\u0000b\",\"channels\":[],"
        "\"permissions\":[]}]}",
        "{\"ttl\":60,\"identity\":7,\"authorizations\":[]}",
        "{\"ttl\":60,\"ttl\":61,\"authorizations\":[]}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        grant = s_parse(refused[i]);
        if (grant)
            return printf("answer %zu accepted\n", i), 1;
    }
    printf("OK\n");
    return 0;
}
