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
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void nsq_options_hide(int argc, char **argv, const char *name)
{
    size_t length = strlen(name);
    for (int index = 1; index < argc && strcmp(argv[index], "--") != 0; index++) {
        char *flag = argv[index] + (strncmp(argv[index], "--", 2) == 0 ? 2 : 1);
        if (argv[index][0] != '-' || strncmp(flag, name, length) != 0)
            continue;
        char *value = flag[length] == '='                        ? flag + length + 1
                      : flag[length] == '\0' && index + 1 < argc ? argv[++index]
                                                                 : NULL;
        for (; value && *value; value++)
            *value = '*';
    }
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
    nsq_options_print_options(self, out);
}

void nsq_options_print_options(nsq_options_t *self, FILE *out)
{
    fprintf(out, "Options (flags override environment variables; SIZE takes k/m/g suffixes,\n"
                 "DURATION is written like 250ms, 60s, 15m, 1h):\n");
    for (size_t index = 0; index < self->count; index++)
        s_print_option(&self->options[index], out);
    fprintf(out, "  --help\n        print this help and exit\n");
    fprintf(out, "  --version\n        print the version and exit\n");
}
