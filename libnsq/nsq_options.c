/*  nsq_options - command-line and environment options declared once as a table
    SPDX-License-Identifier: MIT

    Each option_t keeps its values as text (what --help and error messages
    show) plus the first value converted to a number, so getters never
    parse. Every value is checked when it is set, so a getter cannot see a
    bad one. A parse starts from the defaults; the environment replaces
    them; the first flag of a name on the command line replaces whatever
    came before it, later flags of a repeatable name add to it.

    Asking a getter for a name that is not in the table is a bug in the
    program, not bad input, so it is asserted.

    Fields: a value is checked against its field when it is set (a string
    that does not fit, one value more than a list holds), so that
    nsq_options_store never truncates and never fails. Numbers are written
    with the field's size; the table check made sure that the bounds fit
    it.
*/
#include "nsq_options.h"

#include "nsq_duration.h"
#include "nsq_log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef NSQ_VERSION
#define NSQ_VERSION "unknown"
#endif

#define SOURCE_MAX 160  // "--name" or "ENV_NAME (--name)" in error messages

typedef struct {
    nsq_option_spec_t spec;  // copy of the caller's spec (strings borrowed)
    char *env_name;          // e.g. NSQ_BROKER_MEM_QUEUE_SIZE, NULL without a prefix
    char **values;           // current values as text, count of them
    size_t count;            // values in use
    size_t capacity;         // slots allocated in values
    int64_t number;          // values[0] converted (INT, SIZE, DURATION, BOOL)
    bool from_env;           // the environment set it in this parse
    bool from_command_line;  // a flag set it in this parse
} option_t;

struct _nsq_options_t {
    char *program;      // for --help and --version
    option_t *options;  // the table, in declaration order
    size_t count;       // entries in options
};

static const char *s_type_names[] = {"STRING", "INT", "SIZE", "DURATION", "BOOL"};

static option_t *s_find(nsq_options_t *self, const char *name, size_t length)
{
    for (size_t index = 0; index < self->count; index++) {
        const char *candidate = self->options[index].spec.name;
        if (strlen(candidate) == length && strncmp(candidate, name, length) == 0)
            return &self->options[index];
    }
    return NULL;
}

static option_t *s_require(nsq_options_t *self, const char *name)
{
    option_t *option = self && name ? s_find(self, name, strlen(name)) : NULL;
    assert(option);  // a name missing from the table is a bug in the caller
    return option;
}

static void s_clear(option_t *option)
{
    for (size_t index = 0; index < option->count; index++)
        free(option->values[index]);
    option->count = 0;
    option->number = 0;
}

static int s_append(option_t *option, const char *text, size_t length, int64_t number)
{
    if (option->count == option->capacity) {
        size_t capacity = option->capacity ? option->capacity * 2 : 2;
        char **values = realloc(option->values, capacity * sizeof(char *));
        if (!values)
            return -1;
        option->values = values;
        option->capacity = capacity;
    }
    char *copy = strndup(text, length);
    if (!copy)
        return -1;
    if (option->count == 0)
        option->number = number;
    option->values[option->count++] = copy;
    return 0;
}

static void s_format(char *error, size_t error_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void s_format(char *error, size_t error_size, const char *format, ...)
{
    if (!error || error_size == 0)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(error, error_size, format, args);
    va_end(args);
}

//  --------------------------------------------------------------------------
//  Converting and checking values

// Reads an optionally negative decimal integer filling all of text.
static int s_parse_integer(const char *text, size_t length, bool negative_ok, int64_t *value)
{
    size_t index = 0;
    bool negative = length > 0 && text[0] == '-' && negative_ok;
    if (negative)
        index++;
    if (index == length)
        return -1;
    int64_t result = 0;
    for (; index < length; index++) {
        if (!isdigit((unsigned char) text[index]))
            return -1;
        int digit = text[index] - '0';
        if (__builtin_mul_overflow(result, 10, &result)
            || __builtin_add_overflow(result, negative ? -digit : digit, &result))
            return -1;
    }
    *value = result;
    return 0;
}

static int s_parse_size(const char *text, size_t length, int64_t *value)
{
    int64_t multiplier = 1;
    char suffix = length > 0 ? (char) tolower((unsigned char) text[length - 1]) : 0;
    if (suffix == 'k' || suffix == 'm' || suffix == 'g') {
        multiplier = suffix == 'k' ? 1024 : suffix == 'm' ? 1024 * 1024 : 1024 * 1024 * 1024;
        length--;
    }
    int64_t number;
    if (s_parse_integer(text, length, false, &number)
        || __builtin_mul_overflow(number, multiplier, value))
        return -1;
    return 0;
}

static int s_parse_bool(const char *text, int64_t *value)
{
    if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0) {
        *value = 1;
        return 0;
    }
    if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0) {
        *value = 0;
        return 0;
    }
    return -1;
}

// Converts text (length bytes) for option. Returns 0, or -1 with the reason.
static int s_convert(const option_t *option, const char *text, size_t length, int64_t *value,
                     const char **reason)
{
    char buffer[64];
    if (option->spec.type != NSQ_OPTION_STRING) {
        if (length >= sizeof(buffer)) {
            *reason = "too long";
            return -1;
        }
        memcpy(buffer, text, length);
        buffer[length] = '\0';
    }
    *value = 0;
    switch (option->spec.type) {
    case NSQ_OPTION_STRING:
        return 0;
    case NSQ_OPTION_INT:
        *reason = "not an integer";
        return s_parse_integer(buffer, length, true, value);
    case NSQ_OPTION_SIZE:
        *reason = "not a size (bytes, or a number with k, m or g)";
        return s_parse_size(buffer, length, value);
    case NSQ_OPTION_DURATION:
        *reason = "not a duration (like 250ms, 60s, 15m, 1h)";
        return nsq_duration_parse(buffer, value);
    case NSQ_OPTION_BOOL:
        *reason = "not true or false";
        return s_parse_bool(buffer, value);
    }
    *reason = "unknown option type";
    return -1;
}

static void s_format_bound(const option_t *option, int64_t bound, char *out, size_t size)
{
    if (option->spec.type == NSQ_OPTION_DURATION)
        nsq_duration_format(bound, out, size);
    else
        snprintf(out, size, "%" PRId64, bound);
}

// Checks and converts one value; on failure writes why, naming source.
static int s_check(const option_t *option, const char *text, size_t length, const char *source,
                   int64_t *value, char *error, size_t error_size)
{
    const char *reason = NULL;
    if (s_convert(option, text, length, value, &reason)) {
        s_format(error, error_size, "invalid value '%.*s' for %s: %s", (int) length, text, source,
                 reason);
        return -1;
    }
    const nsq_option_spec_t *spec = &option->spec;
    bool copied = spec->field.kind == NSQ_OPTION_FIELD_CHARS
                  || spec->field.kind == NSQ_OPTION_FIELD_CHARS_LIST;
    if (copied && length >= spec->field.size) {
        int shown = length > 40 ? 40 : (int) length;  // the reason must fit a line
        s_format(error, error_size, "invalid value '%.*s%s' for %s: longer than %zu bytes", shown,
                 text, length > 40 ? "..." : "", source, spec->field.size - 1);
        return -1;
    }
    bool bounded = spec->type != NSQ_OPTION_STRING && spec->type != NSQ_OPTION_BOOL
                   && (spec->min != 0 || spec->max != 0);
    if (bounded && (*value < spec->min || *value > spec->max)) {
        char low[NSQ_DURATION_TEXT_MAX], high[NSQ_DURATION_TEXT_MAX];
        s_format_bound(option, spec->min, low, sizeof(low));
        s_format_bound(option, spec->max, high, sizeof(high));
        s_format(error, error_size, "invalid value '%.*s' for %s: must be in %s..%s", (int) length,
                 text, source, low, high);
        return -1;
    }
    return 0;
}

// Adds text (split on commas when split is set) to option's values.
static int s_add(option_t *option, const char *text, bool split, const char *source, char *error,
                 size_t error_size)
{
    const char *cursor = text;
    do {
        size_t length = split ? strcspn(cursor, ",") : strlen(cursor);
        const char *item = cursor;
        size_t item_length = length;
        while (split && item_length > 0 && isspace((unsigned char) *item))
            item++, item_length--;
        while (split && item_length > 0 && isspace((unsigned char) item[item_length - 1]))
            item_length--;
        int64_t number = 0;
        if (!split || item_length > 0) {
            if (s_check(option, item, item_length, source, &number, error, error_size))
                return -1;
            if (option->spec.field.kind == NSQ_OPTION_FIELD_CHARS_LIST
                && option->count == option->spec.field.capacity) {
                s_format(error, error_size, "%s: at most %zu values", source,
                         option->spec.field.capacity);
                return -1;
            }
            if (s_append(option, item, item_length, number)) {
                s_format(error, error_size, "out of memory");
                return -1;
            }
        }
        cursor += length;
    } while (*cursor++ == ',' && split);
    return 0;
}

//  --------------------------------------------------------------------------
//  Constructor and destructor

// True if [min, max] fits an integer field of size bytes (signed or not).
static bool s_bounds_fit(const nsq_option_spec_t *spec, bool is_signed, size_t size)
{
    if (size != 4 && size != 8)
        return false;
    if (is_signed && size == 8)
        return true;  // int64_t holds every value
    bool bounded = spec->min != 0 || spec->max != 0;
    int64_t low = is_signed ? INT32_MIN : 0;
    int64_t high = size == 8 ? INT64_MAX : is_signed ? INT32_MAX : UINT32_MAX;
    return bounded && spec->min >= low && spec->max <= high;
}

// Checks that the row's field suits its type. Returns 0 or -1.
static int s_check_field(const nsq_option_spec_t *spec)
{
    const nsq_option_field_t *field = &spec->field;
    bool list =
        field->kind == NSQ_OPTION_FIELD_CHARS_LIST || field->kind == NSQ_OPTION_FIELD_TEXT_LIST;
    if (field->kind == NSQ_OPTION_FIELD_NONE)
        return 0;
    if (list != spec->repeatable)
        return -1;  // a list takes a repeatable STRING, nothing else
    if (list && field->count_size != 4 && field->count_size != 8)
        return -1;
    switch (field->kind) {
    case NSQ_OPTION_FIELD_CHARS:
    case NSQ_OPTION_FIELD_TEXT:
    case NSQ_OPTION_FIELD_TEXT_LIST:
        return spec->type == NSQ_OPTION_STRING ? 0 : -1;
    case NSQ_OPTION_FIELD_CHARS_LIST:
        return spec->type == NSQ_OPTION_STRING && field->size > 0 && field->capacity > 0 ? 0 : -1;
    case NSQ_OPTION_FIELD_SIGNED:
    case NSQ_OPTION_FIELD_UNSIGNED:
        if (spec->type == NSQ_OPTION_STRING || spec->type == NSQ_OPTION_BOOL)
            return -1;
        return s_bounds_fit(spec, field->kind == NSQ_OPTION_FIELD_SIGNED, field->size) ? 0 : -1;
    case NSQ_OPTION_FIELD_BOOL:
        return spec->type == NSQ_OPTION_BOOL && field->size == sizeof(bool) ? 0 : -1;
    default:
        return -1;
    }
}

static int s_check_spec(nsq_options_t *self, size_t index)
{
    option_t *option = &self->options[index];
    const nsq_option_spec_t *spec = &option->spec;
    if (!spec->name || !*spec->name
        || strspn(spec->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(spec->name))
        return -1;
    if (strcmp(spec->name, "help") == 0 || strcmp(spec->name, "version") == 0
        || strcmp(spec->name, "h") == 0)
        return -1;
    if (s_find(self, spec->name, strlen(spec->name)) != option)
        return -1;  // declared twice
    if ((unsigned) spec->type > NSQ_OPTION_BOOL || spec->min > spec->max)
        return -1;
    if (spec->type == NSQ_OPTION_BOOL && spec->repeatable)
        return -1;
    if (s_check_field(spec))
        return -1;
    if (spec->default_value) {
        char error[256];
        if (s_add(option, spec->default_value, spec->repeatable, "default", error, sizeof(error)))
            return -1;
        s_clear(option);
    }
    return 0;
}

static char *s_env_name(const char *prefix, const char *name)
{
    size_t size = strlen(prefix) + 1 + strlen(name) + 1;
    char *env_name = malloc(size);
    if (!env_name)
        return NULL;
    snprintf(env_name, size, "%s_%s", prefix, name);
    for (char *cursor = env_name + strlen(prefix) + 1; *cursor; cursor++)
        *cursor = *cursor == '-' ? '_' : (char) toupper((unsigned char) *cursor);
    return env_name;
}

nsq_options_t *nsq_options_new(const char *program, const char *env_prefix,
                               const nsq_option_spec_t *specs, size_t spec_count)
{
    nsq_options_t *self = calloc(1, sizeof(nsq_options_t));
    if (!self)
        return NULL;
    self->program = strdup(program ? program : "nsq");
    self->options = calloc(spec_count ? spec_count : 1, sizeof(option_t));
    if (!self->program || !self->options || (spec_count && !specs)) {
        nsq_options_destroy(&self);
        return NULL;
    }
    self->count = spec_count;
    for (size_t index = 0; index < spec_count; index++)
        self->options[index].spec = specs[index];
    for (size_t index = 0; index < spec_count; index++) {
        option_t *option = &self->options[index];
        if (s_check_spec(self, index)) {
            nsq_error("%s: bad option table entry '%s'", self->program,
                      option->spec.name ? option->spec.name : "(null)");
            nsq_options_destroy(&self);
            return NULL;
        }
        if (env_prefix && !(option->env_name = s_env_name(env_prefix, option->spec.name))) {
            nsq_options_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void nsq_options_destroy(nsq_options_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_options_t *self = *self_p;
    for (size_t index = 0; index < self->count; index++) {
        s_clear(&self->options[index]);
        free(self->options[index].values);
        free(self->options[index].env_name);
    }
    free(self->options);
    free(self->program);
    free(self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Parsing

// Returns 1 if argv asks for --help or --version (and prints it), else 0.
static int s_builtin(nsq_options_t *self, int argc, char **argv)
{
    for (int index = 1; index < argc && strcmp(argv[index], "--") != 0; index++) {
        const char *arg = argv[index];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-help") || !strcmp(arg, "-h")) {
            nsq_options_print_help(self, stdout);
            return 1;
        }
        if (!strcmp(arg, "--version") || !strcmp(arg, "-version")) {
            printf("%s %s\n", self->program, NSQ_VERSION);
            return 1;
        }
    }
    return 0;
}

static int s_apply_defaults_and_env(nsq_options_t *self, char *error, size_t error_size)
{
    for (size_t index = 0; index < self->count; index++) {
        option_t *option = &self->options[index];
        s_clear(option);
        option->from_env = option->from_command_line = false;
        if (option->spec.default_value
            && s_add(option, option->spec.default_value, option->spec.repeatable, "default", error,
                     error_size))
            return -1;
        const char *text = option->env_name ? getenv(option->env_name) : NULL;
        if (!text || !*text)
            continue;
        char source[SOURCE_MAX];
        snprintf(source, sizeof(source), "%s (--%s)", option->env_name, option->spec.name);
        s_clear(option);
        option->from_env = true;
        if (s_add(option, text, option->spec.repeatable, source, error, error_size))
            return -1;
    }
    return 0;
}

// Handles argv[*index], a flag; may consume the next argument as its value.
static int s_apply_flag(nsq_options_t *self, int argc, char **argv, int *index, char *error,
                        size_t error_size)
{
    const char *arg = argv[*index];
    const char *name = arg + (arg[1] == '-' ? 2 : 1);
    const char *equals = strchr(name, '=');
    size_t name_length = equals ? (size_t) (equals - name) : strlen(name);
    option_t *option = s_find(self, name, name_length);
    if (!option) {
        s_format(error, error_size, "unknown flag --%.*s (see --help)", (int) name_length, name);
        return -1;
    }
    char source[SOURCE_MAX];
    snprintf(source, sizeof(source), "--%s", option->spec.name);
    const char *value = equals ? equals + 1 : NULL;
    if (!value && option->spec.type == NSQ_OPTION_BOOL)
        value = "true";
    if (!value) {
        if (*index + 1 >= argc || strncmp(argv[*index + 1], "--", 2) == 0) {
            s_format(error, error_size, "flag %s needs a value", source);
            return -1;
        }
        value = argv[++*index];
    }
    if (option->from_command_line && !option->spec.repeatable) {
        s_format(error, error_size, "flag %s given twice (it takes one value)", source);
        return -1;
    }
    if (!option->from_command_line)
        s_clear(option);
    option->from_command_line = true;
    return s_add(option, value, false, source, error, error_size);
}

int nsq_options_parse(nsq_options_t *self, int argc, char **argv, char *error, size_t error_size)
{
    s_format(error, error_size, "%s", "");
    if (s_builtin(self, argc, argv))
        return 1;
    if (s_apply_defaults_and_env(self, error, error_size))
        return -1;
    for (int index = 1; index < argc; index++) {
        const char *arg = argv[index];
        if (strcmp(arg, "--") == 0) {
            if (index + 1 == argc)
                break;
            arg = argv[index + 1];  // we take no positional arguments
        } else if (arg[0] == '-' && arg[1] != '\0') {
            if (s_apply_flag(self, argc, argv, &index, error, error_size))
                return -1;
            continue;
        }
        s_format(error, error_size, "unexpected argument '%s' (options are --name=value)", arg);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Storing into the caller's struct

// Writes number into an integer field of size bytes (4 or 8; the table
// check made sure it fits).
static void s_store_integer(void *field, size_t size, int64_t number)
{
    if (size == 4) {
        int32_t narrow = (int32_t) (uint32_t) number;  // the bit pattern, signed or not
        memcpy(field, &narrow, sizeof narrow);
    } else
        memcpy(field, &number, sizeof number);
}

// Stores option's values into config. text_default: point a TEXT field at
// the table's default instead of the parser's copy.
static void s_store(const option_t *option, void *config, bool text_default)
{
    const nsq_option_field_t *field = &option->spec.field;
    char *target = (char *) config + field->offset;
    if (option->count == 0)
        return;
    switch (field->kind) {
    case NSQ_OPTION_FIELD_CHARS:
        memcpy(target, option->values[0], strlen(option->values[0]) + 1);  // checked to fit
        break;
    case NSQ_OPTION_FIELD_TEXT: {
        const char *text = text_default ? option->spec.default_value : option->values[0];
        memcpy(target, &text, sizeof text);
        break;
    }
    case NSQ_OPTION_FIELD_SIGNED:
    case NSQ_OPTION_FIELD_UNSIGNED:
        s_store_integer(target, field->size, option->number);
        break;
    case NSQ_OPTION_FIELD_BOOL:
        *(bool *) target = option->number != 0;
        break;
    case NSQ_OPTION_FIELD_CHARS_LIST:
        for (size_t index = 0; index < option->count; index++)
            memcpy(target + index * field->size, option->values[index],
                   strlen(option->values[index]) + 1);
        s_store_integer((char *) config + field->count_offset, field->count_size,
                        (int64_t) option->count);
        break;
    case NSQ_OPTION_FIELD_TEXT_LIST: {
        const char **list = (const char **) option->values;
        memcpy(target, &list, sizeof list);
        s_store_integer((char *) config + field->count_offset, field->count_size,
                        (int64_t) option->count);
        break;
    }
    default:
        break;
    }
}

void nsq_options_store(const nsq_options_t *self, void *config)
{
    for (size_t index = 0; index < self->count; index++)
        s_store(&self->options[index], config, false);
}

int nsq_options_store_defaults(const nsq_option_spec_t *specs, size_t spec_count, void *config)
{
    nsq_options_t *self = nsq_options_new("defaults", NULL, specs, spec_count);
    char *argv[] = {"defaults", NULL};
    int rc = self ? nsq_options_parse(self, 1, argv, NULL, 0) : -1;
    for (size_t index = 0; rc == 0 && index < self->count; index++)
        if (self->options[index].count
            && self->options[index].spec.field.kind == NSQ_OPTION_FIELD_TEXT_LIST)
            rc = -1;  // its values would not outlive the parser
    for (size_t index = 0; rc == 0 && index < self->count; index++)
        s_store(&self->options[index], config, true);
    nsq_options_destroy(&self);
    return rc;
}

//  --------------------------------------------------------------------------
//  Getters

const char *nsq_options_string(nsq_options_t *self, const char *name)
{
    option_t *option = s_require(self, name);
    return option && option->count ? option->values[0] : NULL;
}

int64_t nsq_options_int(nsq_options_t *self, const char *name)
{
    option_t *option = s_require(self, name);
    return option ? option->number : 0;
}

bool nsq_options_bool(nsq_options_t *self, const char *name)
{
    option_t *option = s_require(self, name);
    return option && option->number != 0;
}

size_t nsq_options_count(nsq_options_t *self, const char *name)
{
    option_t *option = s_require(self, name);
    return option ? option->count : 0;
}

const char *nsq_options_string_at(nsq_options_t *self, const char *name, size_t index)
{
    option_t *option = s_require(self, name);
    return option && index < option->count ? option->values[index] : NULL;
}

bool nsq_options_is_set(nsq_options_t *self, const char *name)
{
    option_t *option = s_require(self, name);
    return option && (option->from_env || option->from_command_line);
}

static void s_print_option(const option_t *option, FILE *out)
{
    const nsq_option_spec_t *spec = &option->spec;
    if (spec->type == NSQ_OPTION_BOOL)
        fprintf(out, "  --%s[=true|false]", spec->name);
    else
        fprintf(out, "  --%s=%s", spec->name, s_type_names[spec->type]);
    if (option->env_name)
        fprintf(out, "  (env %s)", option->env_name);
    fprintf(out, "\n        %s", spec->help ? spec->help : "");
    if (spec->default_value)
        fprintf(out, " [default: %s]", spec->default_value);
    if (spec->type != NSQ_OPTION_STRING && spec->type != NSQ_OPTION_BOOL
        && (spec->min != 0 || spec->max != 0)) {
        char low[NSQ_DURATION_TEXT_MAX], high[NSQ_DURATION_TEXT_MAX];
        s_format_bound(option, spec->min, low, sizeof(low));
        s_format_bound(option, spec->max, high, sizeof(high));
        fprintf(out, " [range: %s..%s]", low, high);
    }
    if (spec->repeatable)
        fprintf(out, " [repeatable%s]", option->env_name ? "; comma-separated in env" : "");
    fprintf(out, "\n");
}

void nsq_options_print_help(nsq_options_t *self, FILE *out)
{
    fprintf(out, "Usage: %s [OPTIONS]\n\n", self->program);
    fprintf(out, "Options (flags override environment variables; SIZE takes k/m/g suffixes,\n"
                 "DURATION is written like 250ms, 60s, 15m, 1h):\n");
    for (size_t index = 0; index < self->count; index++)
        s_print_option(&self->options[index], out);
    fprintf(out, "  --help\n        print this help and exit\n");
    fprintf(out, "  --version\n        print the version and exit\n");
}

//  --------------------------------------------------------------------------
//  Self-test

#define TEST_PREFIX "NSQ_OPTTEST"

// What s_test_specs fills.
typedef struct {
    char http_address[16];
    int64_t mem_queue_size;
    size_t max_bytes_per_file;
    uint32_t msg_timeout_ms;
    char lookupds[3][8];
    int lookupd_count;
    bool verbose;
    int64_t offset;
} s_test_config_t;

static const nsq_option_spec_t s_test_specs[] = {
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4151", 0, 0, false, "address for HTTP",
     NSQ_OPTION_FIELD(s_test_config_t, http_address)},
    {"mem-queue-size", NSQ_OPTION_INT, "10000", 0, 1000000, false, "messages kept in memory",
     NSQ_OPTION_FIELD(s_test_config_t, mem_queue_size)},
    {"max-bytes-per-file", NSQ_OPTION_SIZE, "100m", 1024, INT64_C(1) << 40, false, "segment",
     NSQ_OPTION_FIELD(s_test_config_t, max_bytes_per_file)},
    {"msg-timeout", NSQ_OPTION_DURATION, "60s", 1000, 900000, false, "in-flight timeout",
     NSQ_OPTION_FIELD(s_test_config_t, msg_timeout_ms)},
    {"lookupd-address", NSQ_OPTION_STRING, NULL, 0, 0, true, "lookupd ZeroMQ address",
     NSQ_OPTION_LIST(s_test_config_t, lookupds, lookupd_count)},
    {"verbose", NSQ_OPTION_BOOL, "false", 0, 0, false, "log more",
     NSQ_OPTION_FIELD(s_test_config_t, verbose)},
    {"offset", NSQ_OPTION_INT, NULL, 0, 0, false, "any integer",
     NSQ_OPTION_FIELD(s_test_config_t, offset)},
};
#define TEST_SPEC_COUNT (sizeof(s_test_specs) / sizeof(s_test_specs[0]))

// Parses the NULL-terminated flags that follow error_size.
static int s_run(nsq_options_t *options, char *error, size_t error_size, ...)
{
    char *argv[32] = {"nsq-test"};
    int argc = 1;
    va_list args;
    va_start(args, error_size);
    for (char *arg = va_arg(args, char *); arg && argc < 31; arg = va_arg(args, char *))
        argv[argc++] = arg;
    va_end(args);
    return nsq_options_parse(options, argc, argv, error, error_size);
}

// True if parsing the two flags fails with a one-line error containing expected.
static bool s_fails_with(nsq_options_t *options, const char *expected, char *first, char *second)
{
    char error[256] = "";
    int rc = s_run(options, error, sizeof(error), first, second, NULL);
    return rc == -1 && strstr(error, expected) && !strchr(error, '\n');
}

static void s_unset_test_env(void)
{
    const char *names[] = {"HTTP_ADDRESS", "MEM_QUEUE_SIZE",  "MAX_BYTES_PER_FILE",
                           "MSG_TIMEOUT",  "LOOKUPD_ADDRESS", "VERBOSE",
                           "OFFSET"};
    for (size_t index = 0; index < sizeof(names) / sizeof(names[0]); index++) {
        char name[64];
        snprintf(name, sizeof(name), "%s_%s", TEST_PREFIX, names[index]);
        unsetenv(name);
    }
}

static int s_test_defaults(nsq_options_t *options)
{
    char error[256];
    if (s_run(options, error, sizeof(error), NULL) != 0)
        return -1;
    if (strcmp(nsq_options_string(options, "http-address"), "0.0.0.0:4151")
        || nsq_options_int(options, "mem-queue-size") != 10000
        || nsq_options_int(options, "max-bytes-per-file") != 100 * 1024 * 1024
        || nsq_options_int(options, "msg-timeout") != 60000
        || nsq_options_count(options, "lookupd-address") != 0
        || nsq_options_string(options, "lookupd-address")
        || nsq_options_string_at(options, "lookupd-address", 0)
        || nsq_options_bool(options, "verbose") || nsq_options_string(options, "offset")
        || nsq_options_int(options, "offset") != 0)
        return -1;
    for (size_t index = 0; index < TEST_SPEC_COUNT; index++)
        if (nsq_options_is_set(options, s_test_specs[index].name))
            return -1;
    return 0;
}

static int s_test_flags(nsq_options_t *options)
{
    char error[256];
    if (s_run(options, error, sizeof(error), "--http-address=127.0.0.1:0", "--mem-queue-size", "5",
              "--max-bytes-per-file=2k", "-msg-timeout=1m30s", "--lookupd-address=a:1",
              "--lookupd-address", "b:2", "--verbose", "--offset", "-7", "--", NULL))
        return -1;
    if (strcmp(nsq_options_string(options, "http-address"), "127.0.0.1:0")
        || nsq_options_int(options, "mem-queue-size") != 5
        || nsq_options_int(options, "max-bytes-per-file") != 2048
        || nsq_options_int(options, "msg-timeout") != 90000
        || nsq_options_count(options, "lookupd-address") != 2
        || strcmp(nsq_options_string_at(options, "lookupd-address", 1), "b:2")
        || strcmp(nsq_options_string(options, "lookupd-address"), "a:1")
        || nsq_options_string_at(options, "lookupd-address", 2)
        || !nsq_options_bool(options, "verbose") || nsq_options_int(options, "offset") != -7
        || !nsq_options_is_set(options, "offset") || !nsq_options_is_set(options, "verbose"))
        return -1;
    const struct {
        char *flag;     // given
        int64_t bytes;  // expected
    } sizes[] = {{"1K", 1024}, {"3m", 3 << 20}, {"1G", 1 << 30}, {"4096", 4096}};
    for (size_t index = 0; index < sizeof(sizes) / sizeof(sizes[0]); index++)
        if (s_run(options, error, sizeof(error), "--max-bytes-per-file", sizes[index].flag, NULL)
            || nsq_options_int(options, "max-bytes-per-file") != sizes[index].bytes)
            return -1;
    if (s_run(options, error, sizeof(error), "--verbose=false", NULL)
        || nsq_options_bool(options, "verbose") || !nsq_options_is_set(options, "verbose"))
        return -1;
    if (s_run(options, error, sizeof(error), "--verbose=TRUE", NULL)
        || !nsq_options_bool(options, "verbose"))
        return -1;
    return s_test_defaults(options);  // a new parse starts over
}

static int s_test_errors(nsq_options_t *options)
{
    if (!s_fails_with(options, "unknown flag --nope", "--nope=1", NULL)
        || !s_fails_with(options, "flag --mem-queue-size needs a value", "--mem-queue-size", NULL)
        || !s_fails_with(options, "needs a value", "--mem-queue-size", "--verbose")
        || !s_fails_with(options, "'abc' for --mem-queue-size: not an integer",
                         "--mem-queue-size=abc", NULL)
        || !s_fails_with(options, "not an integer", "--mem-queue-size=99999999999999999999", NULL)
        || !s_fails_with(options, "for --mem-queue-size: must be in 0..1000000",
                         "--mem-queue-size=1000001", NULL)
        || !s_fails_with(options, "must be in 0..1000000", "--mem-queue-size", "-1")
        || !s_fails_with(options, "--msg-timeout: must be in 1s..15m", "--msg-timeout=16m", NULL)
        || !s_fails_with(options, "not a duration", "--msg-timeout=soon", NULL)
        || !s_fails_with(options, "not a duration", "--msg-timeout=-5s", NULL)
        || !s_fails_with(options, "not a size", "--max-bytes-per-file=1x", NULL)
        || !s_fails_with(options, "not a size", "--max-bytes-per-file=-1k", NULL)
        || !s_fails_with(options, "must be in 1024..", "--max-bytes-per-file=1023", NULL)
        || !s_fails_with(options, "not true or false", "--verbose=maybe", NULL)
        || !s_fails_with(options, "--http-address given twice", "--http-address=a",
                         "--http-address=b")
        || !s_fails_with(options, "unexpected argument 'stray'", "stray", NULL)
        || !s_fails_with(options, "unexpected argument 'x'", "--", "x"))
        return -1;
    return 0;
}

static int s_test_env(nsq_options_t *options)
{
    char error[256];
    setenv(TEST_PREFIX "_MEM_QUEUE_SIZE", "100", 1);
    setenv(TEST_PREFIX "_LOOKUPD_ADDRESS", "x:1, y:2,,", 1);
    setenv(TEST_PREFIX "_VERBOSE", "true", 1);
    setenv(TEST_PREFIX "_HTTP_ADDRESS", "", 1);  // empty counts as unset
    if (s_run(options, error, sizeof(error), NULL)
        || nsq_options_int(options, "mem-queue-size") != 100
        || !nsq_options_is_set(options, "mem-queue-size")
        || nsq_options_count(options, "lookupd-address") != 2
        || strcmp(nsq_options_string_at(options, "lookupd-address", 0), "x:1")
        || strcmp(nsq_options_string_at(options, "lookupd-address", 1), "y:2")
        || !nsq_options_bool(options, "verbose") || nsq_options_is_set(options, "http-address")
        || strcmp(nsq_options_string(options, "http-address"), "0.0.0.0:4151"))
        return -1;
    // The command line wins, and replaces a repeatable list as a whole.
    if (s_run(options, error, sizeof(error), "--mem-queue-size=7", "--lookupd-address=z:3", NULL)
        || nsq_options_int(options, "mem-queue-size") != 7
        || nsq_options_count(options, "lookupd-address") != 1
        || strcmp(nsq_options_string(options, "lookupd-address"), "z:3"))
        return -1;
    setenv(TEST_PREFIX "_MSG_TIMEOUT", "soon", 1);
    if (!s_fails_with(options, "for " TEST_PREFIX "_MSG_TIMEOUT (--msg-timeout): not a duration",
                      NULL, NULL))
        return -1;
    setenv(TEST_PREFIX "_MSG_TIMEOUT", "1h", 1);
    if (!s_fails_with(options, "must be in 1s..15m", NULL, NULL))
        return -1;
    s_unset_test_env();
    return s_test_defaults(options);
}

// Runs parse with stdout sent to /dev/null; returns its result.
static int s_run_quietly(nsq_options_t *options, char *first, char *second)
{
    char error[256];
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *null = fopen("/dev/null", "w");
    if (saved < 0 || !null)
        return -2;
    dup2(fileno(null), STDOUT_FILENO);
    int rc = s_run(options, error, sizeof(error), first, second, NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    fclose(null);
    return rc;
}

static int s_test_help(nsq_options_t *options)
{
    if (s_run_quietly(options, "--help", NULL) != 1
        || s_run_quietly(options, "--version", NULL) != 1
        || s_run_quietly(options, "--nope", "-h") != 1)
        return -1;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return -1;
    nsq_options_print_help(options, out);
    fclose(out);
    const char *expected[] = {"Usage: nsq-test [OPTIONS]",
                              "--mem-queue-size=INT  (env NSQ_OPTTEST_MEM_QUEUE_SIZE)",
                              "messages kept in memory [default: 10000] [range: 0..1000000]",
                              "--msg-timeout=DURATION",
                              "[default: 60s] [range: 1s..15m]",
                              "--max-bytes-per-file=SIZE",
                              "--verbose[=true|false]",
                              "--lookupd-address=STRING",
                              "[repeatable",
                              "--help",
                              "--version"};
    int rc = 0;
    for (size_t index = 0; index < sizeof(expected) / sizeof(expected[0]); index++)
        if (!strstr(text, expected[index]))
            rc = -1;
    free(text);
    return rc;
}

// Fields of every kind, for the table checks and the borrowed strings.
typedef struct {
    char chars[4];
    int64_t count;
    double ratio;
    char *writable;
    uint32_t narrow;
    size_t positive;
    int small;
    const char *text;
    const char **list;
    size_t list_count;
} s_test_fields_t;

// Parsed values land in their fields; what has no value is left alone;
// strings too long for their field and lists too long are refused.
static int s_test_store(nsq_options_t *options)
{
    char error[256];
    s_test_config_t config = {.offset = 99, .lookupd_count = 7};
    if (s_run(options, error, sizeof(error), "--http-address=127.0.0.1:0", "--lookupd-address=a:1",
              "--lookupd-address", "b:2", "--verbose", "--msg-timeout=2s", NULL))
        return -1;
    nsq_options_store(options, &config);
    if (strcmp(config.http_address, "127.0.0.1:0") || config.mem_queue_size != 10000
        || config.max_bytes_per_file != 100 * 1024 * 1024 || config.msg_timeout_ms != 2000
        || config.lookupd_count != 2 || strcmp(config.lookupds[0], "a:1")
        || strcmp(config.lookupds[1], "b:2") || !config.verbose || config.offset != 99)
        return -1;
    if (s_run(options, error, sizeof(error), "--http-address=0123456789abcde", NULL)
        || !s_fails_with(options, "for --http-address: longer than 15 bytes",
                         "--http-address=0123456789abcdef", NULL)
        || s_run(options, error, sizeof(error), "--lookupd-address=a", "--lookupd-address=b",
                 "--lookupd-address=c", "--lookupd-address=d", NULL)
               != -1
        || strcmp(error, "--lookupd-address: at most 3 values") != 0
        || !s_fails_with(options, "longer than 7 bytes", "--lookupd-address=12345678", NULL))
        return -1;
    setenv(TEST_PREFIX "_LOOKUPD_ADDRESS", "a,b,c,d", 1);
    int rc =
        s_fails_with(options, "LOOKUPD_ADDRESS (--lookupd-address): at most 3 values", NULL, NULL)
            ? 0
            : -1;
    s_unset_test_env();
    // The defaults alone, as a config built by hand gets them.
    s_test_config_t defaults = {.offset = 5};
    if (rc || nsq_options_store_defaults(s_test_specs, TEST_SPEC_COUNT, &defaults)
        || strcmp(defaults.http_address, "0.0.0.0:4151") || defaults.mem_queue_size != 10000
        || defaults.msg_timeout_ms != 60000 || defaults.lookupd_count != 0 || defaults.verbose
        || defaults.offset != 5)
        return -1;
    return 0;
}

// Borrowed strings and lists point into the parser (or, for the defaults
// alone, into the table); integers of other sizes are written whole.
static int s_test_borrowed(void)
{
    const nsq_option_spec_t specs[] = {
        {"text", NSQ_OPTION_STRING, "none", 0, 0, false, "",
         NSQ_OPTION_FIELD(s_test_fields_t, text)},
        {"list", NSQ_OPTION_STRING, NULL, 0, 0, true, "",
         NSQ_OPTION_LIST(s_test_fields_t, list, list_count)},
        {"small", NSQ_OPTION_INT, "-3", -10, 10, false, "",
         NSQ_OPTION_FIELD(s_test_fields_t, small)},
        {"narrow", NSQ_OPTION_DURATION, "1s", 0, 3600000, false, "",
         NSQ_OPTION_FIELD(s_test_fields_t, narrow)},
    };
    s_test_fields_t fields = {.narrow = 0xffffffffu};
    if (nsq_options_store_defaults(specs, 4, &fields) || fields.text != specs[0].default_value
        || fields.list || fields.small != -3 || fields.narrow != 1000)
        return -1;
    nsq_options_t *options = nsq_options_new("borrowed", NULL, specs, 4);
    char error[256];
    int rc = options ? 0 : -1;
    if (rc == 0
        && s_run(options, error, sizeof(error), "--text=abc", "--list=x", "--list=yz",
                 "--narrow=1h", NULL))
        rc = -1;
    if (rc == 0) {
        nsq_options_store(options, &fields);
        if (strcmp(fields.text, "abc") || fields.list_count != 2 || strcmp(fields.list[0], "x")
            || strcmp(fields.list[1], "yz") || fields.narrow != 3600000 || fields.small != -3)
            rc = -1;
    }
    nsq_options_destroy(&options);
    // A borrowed list with a default cannot outlive a parser.
    const nsq_option_spec_t listed[] = {
        {"list", NSQ_OPTION_STRING, "a,b", 0, 0, true, "",
         NSQ_OPTION_LIST(s_test_fields_t, list, list_count)},
    };
    if (nsq_options_store_defaults(listed, 1, &fields) != -1)
        rc = -1;
    return rc;
}

// Bad tables are refused; a second table parses independently of the first.
static int s_test_tables(nsq_options_t *first)
{
#define OK_SPEC                                                                                    \
    {                                                                                              \
        "ok", NSQ_OPTION_INT, NULL, 0, 0, false, "", NSQ_OPTION_NO_FIELD                           \
    }
#define NO_FIELD      NSQ_OPTION_NO_FIELD
#define FIELD(member) NSQ_OPTION_FIELD(s_test_fields_t, member)
    const nsq_option_spec_t bad[][2] = {
        {{"ok", NSQ_OPTION_STRING, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"help", NSQ_OPTION_BOOL, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, "ten", 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, "11", 0, 10, false, "", NO_FIELD}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, 5, 1, false, "", NO_FIELD}, OK_SPEC},
        {{"flag", NSQ_OPTION_BOOL, NULL, 0, 0, true, "", NO_FIELD}, OK_SPEC},
        {{NULL, NSQ_OPTION_INT, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"Upper", NSQ_OPTION_INT, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        {{"a b", NSQ_OPTION_INT, NULL, 0, 0, false, "", NO_FIELD}, OK_SPEC},
        // Fields that do not suit the row.
        {{"count", NSQ_OPTION_INT, NULL, 0, 9, false, "", FIELD(chars)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, false, "", FIELD(count)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, "too long", 0, 0, false, "", FIELD(chars)}, OK_SPEC},
        {{"ratio", NSQ_OPTION_INT, NULL, 0, 9, false, "", FIELD(ratio)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, false, "", FIELD(writable)}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, 0, 0, false, "", FIELD(narrow)}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, -1, 9, false, "", FIELD(positive)}, OK_SPEC},
        {{"count", NSQ_OPTION_INT, NULL, 0, INT64_C(1) << 32, false, "", FIELD(narrow)}, OK_SPEC},
        {{"flag", NSQ_OPTION_BOOL, NULL, 0, 0, false, "", FIELD(count)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, true, "", FIELD(text)}, OK_SPEC},
        {{"name", NSQ_OPTION_STRING, NULL, 0, 0, false, "",
          NSQ_OPTION_LIST(s_test_fields_t, list, list_count)},
         OK_SPEC},
    };
#undef FIELD
#undef NO_FIELD
#undef OK_SPEC
    int null_fd = open("/dev/null", O_WRONLY);
    nsq_log_set_stream_fd(null_fd);  // new logs why it refuses a table
    int refused = 0;
    for (size_t index = 0; index < sizeof(bad) / sizeof(bad[0]); index++) {
        nsq_options_t *options = nsq_options_new("bad", NULL, bad[index], 2);
        refused += options == NULL;
        nsq_options_destroy(&options);
    }
    nsq_log_set_stream_fd(-1);
    if (null_fd >= 0)
        close(null_fd);
    if (refused != (int) (sizeof(bad) / sizeof(bad[0])))
        return -1;

    const nsq_option_spec_t specs[] = {
        {"topic", NSQ_OPTION_STRING, NULL, 0, 0, false, "topic", NSQ_OPTION_NO_FIELD},
        {"mem-queue-size", NSQ_OPTION_INT, "1", 0, 0, false, "same name, other table",
         NSQ_OPTION_NO_FIELD},
    };
    nsq_options_t *second = nsq_options_new("second", NULL, specs, 2);
    char error[256];
    int rc = second ? 0 : -1;
    setenv(TEST_PREFIX "_MEM_QUEUE_SIZE", "100", 1);  // read by first only
    if (rc == 0
        && (s_run(second, error, sizeof(error), "--topic=t", NULL)
            || s_run(first, error, sizeof(error), "--mem-queue-size=3", NULL)
            || strcmp(nsq_options_string(second, "topic"), "t")
            || nsq_options_int(second, "mem-queue-size") != 1
            || nsq_options_int(first, "mem-queue-size") != 3))
        rc = -1;
    if (rc == 0 && s_fails_with(second, "unknown flag --verbose", "--verbose", NULL) == false)
        rc = -1;
    s_unset_test_env();
    nsq_options_destroy(&second);
    return rc;
}

int nsq_options_test(void)
{
    s_unset_test_env();
    nsq_options_t *options =
        nsq_options_new("nsq-test", TEST_PREFIX, s_test_specs, TEST_SPEC_COUNT);
    if (!options)
        return -1;
    int rc = s_test_defaults(options);
    if (rc == 0)
        rc = s_test_flags(options);
    if (rc == 0)
        rc = s_test_errors(options);
    if (rc == 0)
        rc = s_test_env(options);
    if (rc == 0)
        rc = s_test_help(options);
    if (rc == 0)
        rc = s_test_tables(options);
    if (rc == 0)
        rc = s_test_store(options) || s_test_borrowed() ? -1 : 0;
    s_unset_test_env();
    nsq_options_destroy(&options);
    nsq_options_destroy(&options);  // NULL is accepted
    nsq_options_destroy(NULL);
    return rc;
}
