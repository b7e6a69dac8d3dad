/*  nsq_options - command-line and environment options declared once as a table
    SPDX-License-Identifier: MIT

    A program declares its options once, as a static table of
    nsq_option_spec_t: name, type, default, bounds, one line of help, and
    the field of the program's config struct the value goes to. This class
    parses long flags and environment variables against it, checks every
    value (bounds, and that it fits its field), and stores the result in
    the struct; the default lives in the table only, so a row is the one
    place an option is written. Precedence: command line over environment
    over default.

    Flags: --name=value or --name value (a single leading dash works too, as
    with NSQ's Go flags); booleans as --name or --name=true|false.
    Environment: <env_prefix>_<NAME> with '-' turned into '_', for example
    NSQ_BROKER_MEM_QUEUE_SIZE=100; a repeatable option takes a comma-separated
    list there; an empty variable counts as unset. SIZE values are bytes with
    an optional k, m or g suffix (powers of 1024); DURATION values are
    Go-style ("250ms", "60s", "15m") and are stored in milliseconds.
    --help and --version are built in.

    A row names its field with a macro that finds the field's kind from its
    C type; nsq_options_new refuses a table whose field does not suit the
    row (every test that parses it fails), and a row without a field
    element does not compile (-Wmissing-field-initializers). For example:
        typedef struct {
            char data_path[1024];   // STRING, copied (too long is an error)
            const char *exec;       // STRING, borrowed from the parser, NULL if unset
            int64_t msg_timeout;    // INT, SIZE or DURATION (ms); int, uint32_t,
            int http_threads;       //   size_t... too, if the bounds fit the type
            bool durable;           // BOOL
            char lookupds[16][256]; // repeatable STRING, copied, at most 16
            int lookupd_count;      //   and how many were given
            const char **brokers;   // repeatable STRING, borrowed, any number
            size_t broker_count;    //   and how many
        } config_t;
        static const nsq_option_spec_t specs[] = {
            {"data-path", NSQ_OPTION_STRING, ".", 0, 0, false, "where data goes",
             NSQ_OPTION_FIELD(config_t, data_path)},
            {"lookupd-address", NSQ_OPTION_STRING, NULL, 0, 0, true, "a lookupd",
             NSQ_OPTION_LIST(config_t, lookupds, lookupd_count)},
            {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "...", NSQ_OPTION_NO_FIELD},
        };
    then nsq_options_new, nsq_options_parse, nsq_options_store(options,
    &config). A row with NSQ_OPTION_NO_FIELD is read with the getters
    (nsq_daemon reads --log-level and --log-json that way). An option that
    has no value (no default, not given) leaves its field as it was, so the
    caller can prefill what the table cannot say (a hostname).
    nsq_options_store_defaults fills a struct from the table's defaults
    alone (for code and tests that build a config by hand).

    Nothing is global: two tables can be parsed in one process.

    API in call order: nsq_options_new, nsq_options_parse,
    nsq_options_store (and/or the getters nsq_options_string, _int, _bool,
    _count, _string_at, _is_set), nsq_options_destroy;
    nsq_options_store_defaults on its own.
*/
#ifndef NSQ_OPTIONS_H
#define NSQ_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    NSQ_OPTION_STRING,
    NSQ_OPTION_INT,
    NSQ_OPTION_SIZE,
    NSQ_OPTION_DURATION,
    NSQ_OPTION_BOOL,
} nsq_option_type_t;

// What kind of field a row fills; the macros below find it from the C type.
typedef enum {
    NSQ_OPTION_FIELD_NONE,        // no field: read with the getters
    NSQ_OPTION_FIELD_CHARS,       // char field[N]: a copy of at most N - 1 bytes
    NSQ_OPTION_FIELD_TEXT,        // const char *field: borrowed from the parser
    NSQ_OPTION_FIELD_SIGNED,      // int, long, long long (int32_t, int64_t)
    NSQ_OPTION_FIELD_UNSIGNED,    // unsigned, unsigned long (uint32_t, size_t)
    NSQ_OPTION_FIELD_BOOL,        // bool
    NSQ_OPTION_FIELD_CHARS_LIST,  // char field[M][N] and a count: copies
    NSQ_OPTION_FIELD_TEXT_LIST,   // const char **field and a count: borrowed
    NSQ_OPTION_FIELD_INVALID,     // a type no option fills (the table is refused)
} nsq_option_field_kind_t;

// Where a row's value goes in the config struct. Write it with
// NSQ_OPTION_FIELD, NSQ_OPTION_LIST or NSQ_OPTION_NO_FIELD.
typedef struct {
    nsq_option_field_kind_t kind;  // how to store the value
    size_t offset;                 // offsetof the field
    size_t size;                   // its sizeof (one item's, for CHARS_LIST)
    size_t capacity;               // CHARS_LIST: items the array holds
    size_t count_offset;           // lists: offsetof the count field
    size_t count_size;             // lists: its sizeof (int, size_t...)
} nsq_option_field_t;

typedef struct {
    const char *name;           // long flag without dashes, e.g. "mem-queue-size"
    nsq_option_type_t type;     // how values are checked and converted
    const char *default_value;  // as text ("10000", "60s", "true"); NULL = unset
    int64_t min, max;           // bounds for INT/SIZE/DURATION (ms); both 0 = unbounded
    bool repeatable;            // may be given several times (e.g. lookupd-address)
    const char *help;           // one line for --help
    nsq_option_field_t field;   // where nsq_options_store puts the value
} nsq_option_spec_t;

// The field member of struct type. Its C type gives the kind: a char
// array, const char *, an integer type, or bool (anything else makes
// nsq_options_new refuse the table). member may name a nested field
// ("worker.topic").
#define NSQ_OPTION_FIELD(type, member)                                                             \
    {                                                                                              \
        NSQ_OPTION_KIND_OF_(((type *) 0)->member), offsetof(type, member),                         \
            sizeof(((type *) 0)->member), 0, 0, 0                                                  \
    }

// The list member of struct type for a repeatable STRING, with its count
// field count_member: char member[M][N] (copies, at most M values) or
// const char **member (borrowed from the parser, any number; "+ 0" keeps
// compilers from warning that its capacity, unused, divides a pointer).
#define NSQ_OPTION_LIST(type, member, count_member)                                                \
    {                                                                                              \
        NSQ_OPTION_LIST_KIND_OF_(((type *) 0)->member), offsetof(type, member),                    \
            sizeof(((type *) 0)->member[0]),                                                       \
            (sizeof(((type *) 0)->member) + 0) / sizeof(((type *) 0)->member[0]),                  \
            offsetof(type, count_member), sizeof(((type *) 0)->count_member)                       \
    }

// A row without a field, read with the getters.
#define NSQ_OPTION_NO_FIELD                                                                        \
    {                                                                                              \
        NSQ_OPTION_FIELD_NONE, 0, 0, 0, 0, 0                                                       \
    }

// The kind of a field from its type (the macros' helpers). &field tells
// arrays from pointers: a char array does not match char ** but decays to
// char * in the inner selection.
#define NSQ_OPTION_KIND_OF_(field)                                                                 \
    _Generic(&(field), const char **: NSQ_OPTION_FIELD_TEXT, char **: NSQ_OPTION_FIELD_INVALID,    \
             bool *: NSQ_OPTION_FIELD_BOOL, int *: NSQ_OPTION_FIELD_SIGNED,                        \
             long *: NSQ_OPTION_FIELD_SIGNED, long long *: NSQ_OPTION_FIELD_SIGNED,                \
             unsigned *: NSQ_OPTION_FIELD_UNSIGNED, unsigned long *: NSQ_OPTION_FIELD_UNSIGNED,    \
             unsigned long long *: NSQ_OPTION_FIELD_UNSIGNED,                                      \
             default: _Generic((field), char *: NSQ_OPTION_FIELD_CHARS,                            \
                               default: NSQ_OPTION_FIELD_INVALID))
#define NSQ_OPTION_LIST_KIND_OF_(field)                                                            \
    _Generic(&(field), const char ***: NSQ_OPTION_FIELD_TEXT_LIST,                                 \
             default: _Generic((field)[0], char *: NSQ_OPTION_FIELD_CHARS_LIST,                    \
                               default: NSQ_OPTION_FIELD_INVALID))

typedef struct _nsq_options_t nsq_options_t;

// Creates a parser for spec_count options. program is shown by --help and
// --version; env_prefix (e.g. "NSQ_BROKER") names the environment variables,
// NULL reads none. The spec strings are borrowed: use a static table.
// Returns NULL if out of memory or if the table is wrong (empty, duplicate
// or reserved name such as "help", a default that does not parse, is out
// of bounds or does not fit its field, min > max, a repeatable BOOL, a
// field whose kind does not suit the type, a numeric field narrower than
// int64_t or unsigned without bounds that fit it); the reason is logged.
nsq_options_t *nsq_options_new(const char *program, const char *env_prefix,
                               const nsq_option_spec_t *specs, size_t spec_count);

// Destroys the parser and nulls *self_p. Accepts NULL and *self_p == NULL.
void nsq_options_destroy(nsq_options_t **self_p);

// Overwrites, in argv itself, the value of every --name (or -name) flag
// with '*', so a secret does not show in the process's command line
// (/proc/PID/cmdline, ps). Strings the parser borrowed from argv change
// too: copy the value first.
void nsq_options_hide(int argc, char **argv, const char *name);

// Applies defaults, then the environment, then argv[1..argc). Returns 0 when
// the program should run; 1 when --help or --version was printed to stdout
// (exit 0); -1 on bad input, with a one-line reason in error (unknown flag,
// missing value, not a number or duration, out of bounds, a string longer
// than its field, more values than its list holds, a single-valued flag
// given twice, a stray argument). error may be NULL.
int nsq_options_parse(nsq_options_t *self, int argc, char **argv, char *error, size_t error_size);

// Writes every option that has a value (a default, the environment or a
// flag) into its field of config, the struct the table's rows name; an
// option without a value, or without a field, leaves config as it was.
// Borrowed strings (const char * fields and lists) stay valid until the
// next nsq_options_parse or destroy. Call after a parse that returned 0.
void nsq_options_store(const nsq_options_t *self, void *config);

// Writes the defaults of the table into config, as a parse of no flag and
// no environment followed by nsq_options_store would, except that a
// borrowed string points at the table's own default. Rows without a
// default leave their field as it was. Returns 0, or -1 if the table is
// wrong (as nsq_options_new) or a borrowed list has a default.
int nsq_options_store_defaults(const nsq_option_spec_t *specs, size_t spec_count, void *config);

// The value of a STRING option (any option's text, in fact; for a
// repeatable option the first value). NULL if unset.
// Borrowed; valid until the next nsq_options_parse or destroy.
const char *nsq_options_string(nsq_options_t *self, const char *name);

// The value of an INT option, a SIZE in bytes or a DURATION in milliseconds
// (the first value if repeatable). 0 if unset.
int64_t nsq_options_int(nsq_options_t *self, const char *name);

// The value of a BOOL option; false if unset.
bool nsq_options_bool(nsq_options_t *self, const char *name);

// How many values a (repeatable) option holds: 0 if unset.
size_t nsq_options_count(nsq_options_t *self, const char *name);

// Value number index of a repeatable option, NULL if index >= count.
// Borrowed; valid until the next nsq_options_parse or destroy.
const char *nsq_options_string_at(nsq_options_t *self, const char *name, size_t index);

// True if the option came from the command line or the environment rather
// than its default.
bool nsq_options_is_set(nsq_options_t *self, const char *name);

// Prints usage: every option with its type, default, bounds and variable.
void nsq_options_print_help(nsq_options_t *self, FILE *out);

// The same without the "Usage:" line, for a program that writes its own
// (one with commands and arguments).
void nsq_options_print_options(nsq_options_t *self, FILE *out);

// Self-test; returns 0 on success.
int nsq_options_test(void);

#endif
