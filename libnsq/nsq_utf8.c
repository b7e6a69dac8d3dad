/*  nsq_utf8 - strict UTF-8 for text that came from a peer
    SPDX-License-Identifier: MIT

    The decoder follows the well-formed byte sequences table of Unicode
    (chapter 3, table 3-7): the second byte's range depends on the first,
    which rules out overlong forms, surrogates and values above U+10FFFF
    without decoding first and checking after.
*/
#include "nsq_utf8.h"

#include <string.h>

size_t nsq_utf8_decode(const void *data, size_t size, uint32_t *code_point)
{
    const uint8_t *bytes = data;
    uint8_t lead = bytes[0];
    if (lead < 0x80) {
        *code_point = lead;
        return 1;
    }
    size_t length;
    uint8_t low = 0x80, high = 0xBF;  // allowed range of the second byte
    uint32_t value;
    if (lead >= 0xC2 && lead <= 0xDF)
        length = 2, value = lead & 0x1F;
    else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3, value = lead & 0x0F;
        if (lead == 0xE0)
            low = 0xA0;  // overlong below U+0800
        else if (lead == 0xED)
            high = 0x9F;  // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4, value = lead & 0x07;
        if (lead == 0xF0)
            low = 0x90;  // overlong below U+10000
        else if (lead == 0xF4)
            high = 0x8F;  // above U+10FFFF
    } else
        return 0;  // a continuation byte, C0/C1 (overlong) or F5..FF
    if (size < length || bytes[1] < low || bytes[1] > high)
        return 0;
    value = value << 6 | (bytes[1] & 0x3F);
    for (size_t index = 2; index < length; index++) {
        if ((bytes[index] & 0xC0) != 0x80)
            return 0;
        value = value << 6 | (bytes[index] & 0x3F);
    }
    *code_point = value;
    return length;
}

bool nsq_utf8_is_valid(const void *data, size_t size)
{
    const uint8_t *bytes = data;
    uint32_t code_point;
    for (size_t offset = 0; offset < size;) {
        size_t length = nsq_utf8_decode(bytes + offset, size - offset, &code_point);
        if (length == 0)
            return false;
        offset += length;
    }
    return true;
}

size_t nsq_utf8_sanitize(char *out, size_t out_size, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    size_t used = 0;
    for (size_t offset = 0; offset < size;) {
        uint32_t code_point;
        size_t length = nsq_utf8_decode(bytes + offset, size - offset, &code_point);
        const void *put = bytes + offset;
        size_t put_size = length;
        if (length == 0) {
            put = NSQ_UTF8_REPLACEMENT, put_size = NSQ_UTF8_REPLACEMENT_SIZE;
            length = 1;
        } else if (code_point < 0x20 || code_point == 0x7F)
            put = "?", put_size = 1;
        if (used + put_size >= out_size)
            break;
        memcpy(out + used, put, put_size);
        used += put_size;
        offset += length;
    }
    out[used] = '\0';
    return used;
}

//  --------------------------------------------------------------------------
//  Self-test

int nsq_utf8_test(void)
{
    const struct {
        const char *bytes;
        size_t size;
        bool valid;
    } cases[] = {
        {"plain", 5, true},
        {"\xc3\xa9", 2, true},               // U+00E9
        {"\xe2\x82\xac", 3, true},           // U+20AC
        {"\xf0\x9f\x98\x80", 4, true},       // U+1F600
        {"\xf4\x8f\xbf\xbf", 4, true},       // U+10FFFF, the last
        {"\xef\xbf\xbd", 3, true},           // U+FFFD itself
        {"a\0b", 3, true},                   // NUL is a character
        {"\xff", 1, false},                  // never in UTF-8
        {"\x80", 1, false},                  // stray continuation
        {"\xc0\xaf", 2, false},              // overlong '/'
        {"\xc1\xbf", 2, false},              // overlong
        {"\xe0\x80\xaf", 3, false},          // overlong '/'
        {"\xf0\x80\x80\xaf", 4, false},      // overlong '/'
        {"\xed\xa0\x80", 3, false},          // U+D800, a surrogate
        {"\xed\xbf\xbf", 3, false},          // U+DFFF, a surrogate
        {"\xf4\x90\x80\x80", 4, false},      // U+110000
        {"\xf8\x88\x80\x80\x80", 5, false},  // five bytes
        {"\xe2\x82", 2, false},              // truncated
        {"\xc3\x28", 2, false},              // bad continuation
        {"ok\xc3\xa9\xe2\x82\xac\xff", 8, false},
    };
    for (size_t index = 0; index < sizeof(cases) / sizeof(cases[0]); index++)
        if (nsq_utf8_is_valid(cases[index].bytes, cases[index].size) != cases[index].valid)
            return -1;
    uint32_t code_point = 0;
    if (nsq_utf8_decode("\xf0\x9f\x98\x80", 4, &code_point) != 4 || code_point != 0x1F600
        || nsq_utf8_decode("\xc3\xa9", 1, &code_point) != 0)
        return -1;

    char out[32];
    size_t used = nsq_utf8_sanitize(out, sizeof out, "a\xff\n\xc3\xa9\x7f\xed\xa0\x80", 9);
    const char *expected =
        "a" NSQ_UTF8_REPLACEMENT
        "?\xc3\xa9?" NSQ_UTF8_REPLACEMENT NSQ_UTF8_REPLACEMENT NSQ_UTF8_REPLACEMENT;
    if (used != strlen(expected) || strcmp(out, expected) != 0 || !nsq_utf8_is_valid(out, used))
        return -1;
    // Truncation keeps whole characters only: 4 bytes of room hold "a" and
    // one 2-byte character, not half of the 3-byte one after it.
    if (nsq_utf8_sanitize(out, 5, "a\xc3\xa9\xe2\x82\xac", 6) != 3 || strcmp(out, "a\xc3\xa9"))
        return -1;
    if (nsq_utf8_sanitize(out, 1, "abc", 3) != 0 || out[0] != '\0')
        return -1;
    return 0;
}
