/*  nsq_options - command-line and environment options declared once as a table
    SPDX-License-Identifier: MIT

    A program declares its options once, as a static table of
    nsq_option_spec_t with defaults, bounds and one line of help; this class
    parses long flags and environment variables against it and answers
    typed queries. Precedence: command line over environment over default.

    Flags: --name=value or --name value (a single leading dash works too, as
    with NSQ's Go flags); booleans as --name or --name=true|false.
    Environment: <env_prefix>_<NAME> with '-' turned into '_', for example
    NSQ_BROKER_MEM_QUEUE_SIZE=100; a repeatable option takes a comma-separated
    list there; an empty variable counts as unset. SIZE values are bytes with
    an optional k, m or g suffix (powers of 1024); DURATION values are
    Go-style ("250ms", "60s", "15m") and are stored in milliseconds.
    --help and --version are built in.

    Nothing is global: two tables can be parsed in one process.

    API in call order: nsq_options_new, nsq_options_parse, then the getters
    (nsq_options_string, _int, _bool, _count, _string_at, _is_set),
    nsq_options_destroy.
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

typedef struct {
    const char *name;           // long flag without dashes, e.g. "mem-queue-size"
    nsq_option_type_t type;     // how values are checked and converted
    const char *default_value;  // as text ("10000", "60s", "true"); NULL = unset
    int64_t min, max;           // bounds for INT/SIZE/DURATION (ms); both 0 = unbounded
    bool repeatable;            // may be given several times (e.g. lookupd-address)
    const char *help;           // one line for --help
} nsq_option_spec_t;

typedef struct _nsq_options_t nsq_options_t;

// Creates a parser for spec_count options. program is shown by --help and
// --version; env_prefix (e.g. "NSQ_BROKER") names the environment variables,
// NULL reads none. The spec strings are borrowed: use a static table.
// Returns NULL if out of memory or if the table is wrong (empty, duplicate
// or reserved name such as "help", a default that does not parse or is out
// of bounds, min > max, a repeatable BOOL); the reason is logged.
nsq_options_t *nsq_options_new(const char *program, const char *env_prefix,
                               const nsq_option_spec_t *specs, size_t spec_count);

// Destroys the parser and nulls *self_p. Accepts NULL and *self_p == NULL.
void nsq_options_destroy(nsq_options_t **self_p);

// Applies defaults, then the environment, then argv[1..argc). Returns 0 when
// the program should run; 1 when --help or --version was printed to stdout
// (exit 0); -1 on bad input, with a one-line reason in error (unknown flag,
// missing value, not a number or duration, out of bounds, a single-valued
// flag given twice, a stray argument). error may be NULL.
int nsq_options_parse(nsq_options_t *self, int argc, char **argv, char *error, size_t error_size);

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
