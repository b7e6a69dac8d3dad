/*  nsq_json - the little JSON writing our HTTP APIs share
    SPDX-License-Identifier: MIT

    One escaper (s_escape_next) yields the output of the next character;
    the stream and buffer writers only differ in where the bytes go.
*/
#include "nsq_json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_utf8.h"

// Escapes the character at data (size >= 1 bytes) into unit (>= 7 bytes).
// Returns the output size; *consumed gets the input bytes it stands for.
static size_t s_escape_next(const uint8_t *data, size_t size, char *unit, size_t *consumed)
{
    uint32_t code_point;
    size_t length = nsq_utf8_decode(data, size, &code_point);
    if (length == 0) {
        *consumed = 1;
        memcpy(unit, NSQ_UTF8_REPLACEMENT, NSQ_UTF8_REPLACEMENT_SIZE);
        return NSQ_UTF8_REPLACEMENT_SIZE;
    }
    *consumed = length;
    if (code_point == '"' || code_point == '\\') {
        unit[0] = '\\';
        unit[1] = (char) code_point;
        return 2;
    }
    if (code_point < 0x20)
        return (size_t) snprintf(unit, 7, "\\u%04x", (unsigned) code_point);
    memcpy(unit, data, length);
    return length;
}

void nsq_json_write_string_n(FILE *out, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    fputc('"', out);
    for (size_t offset = 0, consumed; offset < size; offset += consumed) {
        char unit[8];
        size_t unit_size = s_escape_next(bytes + offset, size - offset, unit, &consumed);
        fwrite(unit, 1, unit_size, out);
    }
    fputc('"', out);
}

void nsq_json_write_string(FILE *out, const char *text)
{
    nsq_json_write_string_n(out, text, strlen(text));
}

size_t nsq_json_escape(char *out, size_t out_size, const char *text)
{
    const uint8_t *bytes = (const uint8_t *) text;
    size_t size = strlen(text), used = 0;
    for (size_t offset = 0, consumed; offset < size; offset += consumed) {
        char unit[8];
        size_t unit_size = s_escape_next(bytes + offset, size - offset, unit, &consumed);
        if (used + unit_size >= out_size)
            break;
        memcpy(out + used, unit, unit_size);
        used += unit_size;
    }
    out[used] = '\0';
    return used;
}

//  --------------------------------------------------------------------------
//  Self-test

// Writes data with nsq_json_write_string_n; true if it reads back expected.
static bool s_test_write(const char *data, size_t size, const char *expected)
{
    char *buffer = NULL;
    size_t buffer_size = 0;
    FILE *out = open_memstream(&buffer, &buffer_size);
    if (!out)
        return false;
    nsq_json_write_string_n(out, data, size);
    fclose(out);
    bool same = strcmp(buffer, expected) == 0 && nsq_utf8_is_valid(buffer, buffer_size);
    if (!same)
        fprintf(stderr, "nsq_json_test: got %s, want %s\n", buffer, expected);
    free(buffer);
    return same;
}

#define R NSQ_UTF8_REPLACEMENT

int nsq_json_test(void)
{
    const struct {
        const char *data;
        size_t size;
        const char *expected;
    } cases[] = {
        {"a\"b\\c\n\x01-\xc3\xa9", 10, "\"a\\\"b\\\\c\\u000a\\u0001-\xc3\xa9\""},
        {"", 0, "\"\""},
        {"\x1f\x7f", 2, "\"\\u001f\x7f\""},          // DEL is allowed as is
        {"a\0b", 3, "\"a\\u0000b\""},                // a NUL in a sized text
        {"\xff", 1, "\"" R "\""},                    // never UTF-8
        {"x\x80y", 3, "\"x" R "y\""},                // stray continuation
        {"\xc0\xaf", 2, "\"" R R "\""},              // overlong '/'
        {"\xe0\x80\xaf", 3, "\"" R R R "\""},        // overlong '/'
        {"\xed\xa0\x80", 3, "\"" R R R "\""},        // U+D800 surrogate
        {"\xf4\x90\x80\x80", 4, "\"" R R R R "\""},  // above U+10FFFF
        {"\xe2\x82", 2, "\"" R R "\""},              // truncated at the end
        {"\xf0\x9f\x98\x80\xe2\x82\xac", 7, "\"\xf0\x9f\x98\x80\xe2\x82\xac\""},
    };
    for (size_t index = 0; index < sizeof(cases) / sizeof(cases[0]); index++)
        if (!s_test_write(cases[index].data, cases[index].size, cases[index].expected))
            return -1;

    char *buffer = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buffer, &size);
    if (!out)
        return -1;
    nsq_json_write_string(out, "host\xff\"");
    fclose(out);
    int rc = strcmp(buffer, "\"host" R "\\\"\"") == 0 ? 0 : -1;
    free(buffer);

    // The buffer form never cuts an escape or a character in half.
    char escaped[16];
    if (rc || nsq_json_escape(escaped, sizeof escaped, "a\"\xff") != 6
        || strcmp(escaped, "a\\\"" R) != 0)
        return -1;
    if (nsq_json_escape(escaped, 8, "abc\n") != 3 || strcmp(escaped, "abc") != 0)
        return -1;  // "\u000a" (6 bytes) does not fit after "abc" in 7
    if (nsq_json_escape(escaped, 5, "ab\xe2\x82\xac") != 2 || strcmp(escaped, "ab") != 0)
        return -1;
    return 0;
}
