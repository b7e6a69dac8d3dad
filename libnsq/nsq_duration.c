/*  nsq_duration - Go-style durations ("250ms", "60s", "1h30m") in milliseconds
    SPDX-License-Identifier: MIT

    The parser is exact integer arithmetic with overflow checks: the
    fraction of a component is kept as digits over a power of ten (at most
    nine digits), so "1.5s" is 1500 ms without floating point.
*/
#include "nsq_duration.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define FRACTION_DIGITS_MAX 9

typedef struct {
    const char *name;  // unit as written
    int64_t millis;    // milliseconds per unit
} unit_t;

// Longest names first, so "ms" is not read as "m" followed by garbage.
static const unit_t s_units[] = {{"ms", 1}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

static bool s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

// Reads digits at *cursor into *value. Returns the digit count, or -1 on overflow.
static int s_read_integer(const char **cursor, int64_t *value)
{
    int count = 0;
    *value = 0;
    while (s_is_digit(**cursor)) {
        if (__builtin_mul_overflow(*value, 10, value)
            || __builtin_add_overflow(*value, **cursor - '0', value))
            return -1;
        (*cursor)++;
        count++;
    }
    return count;
}

static const unit_t *s_read_unit(const char **cursor)
{
    for (size_t index = 0; index < sizeof(s_units) / sizeof(s_units[0]); index++) {
        size_t length = strlen(s_units[index].name);
        if (strncmp(*cursor, s_units[index].name, length) == 0) {
            *cursor += length;
            return &s_units[index];
        }
    }
    return NULL;
}

// Reads one <number>[.<fraction>]<unit> component and adds it to *total.
static int s_read_component(const char **cursor, int64_t *total)
{
    int64_t whole = 0, fraction = 0, scale = 1;
    int whole_digits = s_read_integer(cursor, &whole);
    int fraction_digits = 0;
    if (whole_digits < 0)
        return -1;
    if (**cursor == '.') {
        (*cursor)++;
        const char *start = *cursor;
        fraction_digits = s_read_integer(cursor, &fraction);
        if (fraction_digits < 0 || *cursor - start > FRACTION_DIGITS_MAX)
            return -1;
        for (int index = 0; index < fraction_digits; index++)
            scale *= 10;
    }
    if (whole_digits + fraction_digits == 0)
        return -1;
    const unit_t *unit = s_read_unit(cursor);
    if (!unit)
        return -1;
    int64_t value;
    int64_t fraction_millis = fraction * unit->millis;  // < 10^9 * 3.6 * 10^6: fits
    if (fraction_millis % scale != 0 || __builtin_mul_overflow(whole, unit->millis, &value)
        || __builtin_add_overflow(value, fraction_millis / scale, &value)
        || __builtin_add_overflow(*total, value, total))
        return -1;
    return 0;
}

int nsq_duration_parse(const char *text, int64_t *milliseconds)
{
    if (!text || !*text) {
        errno = EINVAL;
        return -1;
    }
    const char *cursor = text;
    int64_t total = 0;
    int digits = s_read_integer(&cursor, &total);
    if (digits < 0 || *cursor != '\0') {
        // Not a bare integer: read it again as <number><unit> components.
        cursor = text;
        total = 0;
        while (*cursor) {
            if (s_read_component(&cursor, &total)) {
                errno = EINVAL;
                return -1;
            }
        }
    }
    *milliseconds = total;
    return 0;
}

void nsq_duration_format(int64_t milliseconds, char *out, size_t size)
{
    const char *sign = milliseconds < 0 ? "-" : "";
    // Negate as unsigned so INT64_MIN does not overflow.
    uint64_t value = milliseconds < 0 ? 0 - (uint64_t) milliseconds : (uint64_t) milliseconds;
    if (value == 0) {
        snprintf(out, size, "0s");
        return;
    }
    // s_units is longest-name first; walk it from the largest unit down.
    const unit_t *order[] = {&s_units[1], &s_units[2], &s_units[3], &s_units[0]};
    for (size_t index = 0; index < sizeof(order) / sizeof(order[0]); index++) {
        uint64_t unit = (uint64_t) order[index]->millis;
        if (value % unit == 0) {
            snprintf(out, size, "%s%" PRIu64 "%s", sign, value / unit, order[index]->name);
            return;
        }
    }
}

//  --------------------------------------------------------------------------
//  Self-test

typedef struct {
    const char *text;  // input
    int64_t millis;    // expected value
} duration_case_t;

static int s_test_parse(void)
{
    const duration_case_t good[] = {
        {"250ms", 250},
        {"60s", 60000},
        {"15m", 900000},
        {"1h", 3600000},
        {"1h30m", 5400000},
        {"1.5s", 1500},
        {"0", 0},
        {"0s", 0},
        {"250", 250},
        {".5s", 500},
        {"1m30.25s", 90250},
        {"2h0m0s", 7200000},
        {"1.5h", 5400000},
        {"0.001s", 1},
        {"007ms", 7},
        {"1s1s", 2000},
        {"9223372036854775807", INT64_MAX},
        {"9223372036854775807ms", INT64_MAX},
    };
    for (size_t index = 0; index < sizeof(good) / sizeof(good[0]); index++) {
        int64_t value = -1;
        if (nsq_duration_parse(good[index].text, &value) || value != good[index].millis)
            return -1;
    }
    const char *bad[] = {"",
                         "-1s",
                         "-5",
                         "+5s",
                         "s",
                         "5x",
                         "5 s",
                         " 5s",
                         "5s ",
                         "1.5",
                         "1.5ms",
                         "0.0001s",
                         "1.s.s",
                         ".s",
                         "1..5s",
                         "1e3s",
                         "5sec",
                         "1hour",
                         "9223372036854775808",
                         "9223372036854775807s",
                         "2562047788015216h",
                         "1.0000000001s",
                         "9223372036854775807ms1ms"};
    for (size_t index = 0; index < sizeof(bad) / sizeof(bad[0]); index++) {
        int64_t value = 42;
        errno = 0;
        if (nsq_duration_parse(bad[index], &value) == 0 || errno != EINVAL || value != 42)
            return -1;
    }
    int64_t value = 42;
    errno = 0;
    return nsq_duration_parse(NULL, &value) == -1 && errno == EINVAL && value == 42 ? 0 : -1;
}

static int s_test_format(void)
{
    const duration_case_t cases[] = {
        {"0s", 0},       {"250ms", 250},  {"1s", 1000},     {"90s", 90000},   {"1m", 60000},
        {"15m", 900000}, {"1h", 3600000}, {"90m", 5400000}, {"1500ms", 1500}, {"-2s", -2000},
    };
    char text[NSQ_DURATION_TEXT_MAX];
    for (size_t index = 0; index < sizeof(cases) / sizeof(cases[0]); index++) {
        nsq_duration_format(cases[index].millis, text, sizeof(text));
        if (strcmp(text, cases[index].text))
            return -1;
        int64_t back = 0;
        if (cases[index].millis >= 0
            && (nsq_duration_parse(text, &back) || back != cases[index].millis))
            return -1;
    }
    nsq_duration_format(INT64_MIN, text, sizeof(text));
    if (strcmp(text, "-9223372036854775808ms"))
        return -1;
    char small[4];
    nsq_duration_format(250, small, sizeof(small));
    return strcmp(small, "250") == 0 ? 0 : -1;
}

int nsq_duration_test(void)
{
    return s_test_parse() || s_test_format() ? -1 : 0;
}
