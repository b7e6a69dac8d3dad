/*  broker_mpub - the framing of an /mpub body, text or binary
    SPDX-License-Identifier: MIT
*/
#include "broker_mpub.h"

#include <stdio.h>
#include <string.h>

// Bytes of the binary count and of each binary size.
#define S_LENGTH_SIZE 4

static uint32_t s_read_be32(const uint8_t *data)
{
    return (uint32_t) data[0] << 24 | (uint32_t) data[1] << 16 | (uint32_t) data[2] << 8
           | (uint32_t) data[3];
}

static size_t s_refuse(const char **code, const char *text)
{
    *code = text;
    return 0;
}

static size_t s_check_binary(const uint8_t *body, size_t size, uint64_t max_msg_size,
                             uint64_t max_body_size, const char **code)
{
    if (size < S_LENGTH_SIZE || max_body_size < S_LENGTH_SIZE)
        return s_refuse(code, "BAD_BODY");
    uint32_t count = s_read_be32(body);
    // Each message takes at least its size and one byte.
    if (count == 0 || count > (max_body_size - S_LENGTH_SIZE) / (S_LENGTH_SIZE + 1))
        return s_refuse(code, "BAD_BODY");
    size_t offset = S_LENGTH_SIZE;
    for (uint32_t index = 0; index < count; index++) {
        if (size - offset < S_LENGTH_SIZE)
            return s_refuse(code, "BAD_MESSAGE");
        uint32_t length = s_read_be32(body + offset);
        offset += S_LENGTH_SIZE;
        if (length == 0 || size - offset < length)
            return s_refuse(code, "BAD_MESSAGE");
        if (length > max_msg_size)
            return s_refuse(code, "MSG_TOO_BIG");
        offset += length;
    }
    if (offset != size)
        return s_refuse(code, "BAD_BODY");
    return count;
}

static size_t s_check_text(const uint8_t *body, size_t size, uint64_t max_msg_size,
                           const char **code)
{
    size_t count = 0, offset = 0, start, length;
    while (broker_mpub_next(body, size, false, &offset, &start, &length)) {
        if (length > max_msg_size)
            return s_refuse(code, "MSG_TOO_BIG");
        count++;
    }
    return count ? count : s_refuse(code, "MSG_EMPTY");
}

size_t broker_mpub_check(const uint8_t *body, size_t size, bool binary, uint64_t max_msg_size,
                         uint64_t max_body_size, const char **code)
{
    if (binary)
        return s_check_binary(body, size, max_msg_size, max_body_size, code);
    return s_check_text(body, size, max_msg_size, code);
}

bool broker_mpub_next(const uint8_t *body, size_t size, bool binary, size_t *offset, size_t *start,
                      size_t *length)
{
    if (binary && *offset == 0)
        *offset = S_LENGTH_SIZE;  // past the count
    while (*offset < size) {
        if (binary) {
            *length = s_read_be32(body + *offset);
            *start = *offset + S_LENGTH_SIZE;
            *offset = *start + *length;
            return true;
        }
        const uint8_t *newline = memchr(body + *offset, '\n', size - *offset);
        *start = *offset;
        *length = (newline ? (size_t) (newline - body) : size) - *start;
        *offset = *start + *length + 1;
        if (*length > 0)
            return true;
    }
    return false;
}

// ---- self-test -------------------------------------------------------------------

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "broker_mpub_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

// Checks body and returns the count, with *code "" when accepted.
static size_t s_test_check(const char *body, size_t size, bool binary, const char **code)
{
    *code = "";
    return broker_mpub_check((const uint8_t *) body, size, binary, 3, 64, code);
}

int broker_mpub_test(void)
{
    const char *code;
    S_CHECK(s_test_check("a\n\nbb\nccc", 9, false, &code) == 3 && !code[0]);
    S_CHECK(s_test_check("a\nbbbb\n", 7, false, &code) == 0 && !strcmp(code, "MSG_TOO_BIG"));
    S_CHECK(s_test_check("\n\n", 2, false, &code) == 0 && !strcmp(code, "MSG_EMPTY"));
    S_CHECK(s_test_check(NULL, 0, false, &code) == 0 && !strcmp(code, "MSG_EMPTY"));

    const uint8_t text[] = "x\n\nyz";
    size_t offset = 0, start, length;
    S_CHECK(broker_mpub_next(text, 5, false, &offset, &start, &length) && start == 0
            && length == 1);
    S_CHECK(broker_mpub_next(text, 5, false, &offset, &start, &length) && start == 3
            && length == 2);
    S_CHECK(!broker_mpub_next(text, 5, false, &offset, &start, &length));

    // Binary: two messages, then every way of getting it wrong.
    const char two[] = "\0\0\0\2"
                       "\0\0\0\1x"
                       "\0\0\0\2yz";
    S_CHECK(s_test_check(two, 15, true, &code) == 2 && !code[0]);
    offset = 0;
    S_CHECK(broker_mpub_next((const uint8_t *) two, 15, true, &offset, &start, &length)
            && start == 8 && length == 1);
    S_CHECK(broker_mpub_next((const uint8_t *) two, 15, true, &offset, &start, &length)
            && start == 13 && length == 2);
    S_CHECK(!broker_mpub_next((const uint8_t *) two, 15, true, &offset, &start, &length));
    S_CHECK(s_test_check(two, 16, true, &code) == 0 && !strcmp(code, "BAD_BODY"));
    S_CHECK(s_test_check(two, 14, true, &code) == 0 && !strcmp(code, "BAD_MESSAGE"));
    S_CHECK(s_test_check(two, 3, true, &code) == 0 && !strcmp(code, "BAD_BODY"));
    S_CHECK(s_test_check("\0\0\0\0", 4, true, &code) == 0 && !strcmp(code, "BAD_BODY"));
    S_CHECK(s_test_check("\0\0\0\x0d", 4, true, &code) == 0 && !strcmp(code, "BAD_BODY"));
    S_CHECK(s_test_check("\0\0\0\1\0\0\0\0", 8, true, &code) == 0 && !strcmp(code, "BAD_MESSAGE"));
    S_CHECK(s_test_check("\0\0\0\1\0\0\0\4abcd", 12, true, &code) == 0
            && !strcmp(code, "MSG_TOO_BIG"));
    S_CHECK(s_test_check("\0\0\0\1\xff\xff\xff\xff", 8, true, &code) == 0
            && !strcmp(code, "BAD_MESSAGE"));
    return 0;
}
