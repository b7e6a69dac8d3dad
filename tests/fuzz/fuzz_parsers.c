/*  fuzz_parsers - the small parsers every door relies on: /mpub framing
    (text and binary), topic and channel names, durations, message ids
    SPDX-License-Identifier: MIT

    Each parser is checked against what its contract promises, not only
    for crashes: /mpub hands out exactly the messages it counted, each
    inside the body and within the size limit; a name is valid exactly
    when it matches NSQ's rule (checked by a second, naive reading of the
    rule); a duration and an id that parse format back to the same value.

    Input: [u8 selector] then the parser's bytes. selector % 4:
        0  /mpub: [u8 flags: bit 0 binary][u8 max_msg_size][u16 LE
           max_body_size] then the body
        1  a name (up to the first NUL, as C callers see it)
        2  a duration, then the same bytes' first 8 as an int64 to format
        3  a message id, then the same bytes' first 8 as a u64 to format
    Seeds: tests/fuzz/corpus/fuzz_parsers (made by seeds.py).
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "broker_mpub.h"
#include "fuzz_support.h"
#include "nsq_duration.h"
#include "nsq_message.h"
#include "nsq_names.h"

static void s_mpub(fuzz_input_t *input)
{
    uint8_t flags = fuzz_u8(input);
    bool binary = flags & 1;
    uint64_t max_msg_size = fuzz_u8(input);
    uint64_t max_body_size = fuzz_u16(input);
    size_t size;
    const uint8_t *body = fuzz_bytes(input, fuzz_left(input), &size);
    // A copy of exactly size bytes, so ASan sees any read past the body.
    uint8_t *copy = size ? malloc(size) : NULL;
    FUZZ_ASSERT(size == 0 || copy);
    if (size)
        memcpy(copy, body, size);
    const char *code = NULL;
    size_t count = broker_mpub_check(copy, size, binary, max_msg_size, max_body_size, &code);
    FUZZ_ASSERT(count > 0 || code != NULL);
    size_t offset = 0, start, length, walked = 0, bytes = 0;
    while (count > 0 && broker_mpub_next(copy, size, binary, &offset, &start, &length)) {
        FUZZ_ASSERT(length > 0 && length <= max_msg_size);
        FUZZ_ASSERT(start <= size && length <= size - start);
        FUZZ_ASSERT(binary || memchr(copy + start, '\n', length) == NULL);
        bytes += length;
        walked++;
        FUZZ_ASSERT(walked <= count);
    }
    FUZZ_ASSERT(walked == count);
    // Binary framing is count, then size + data per message, nothing else;
    // text loses only its newlines.
    if (count > 0 && binary)
        FUZZ_ASSERT(size == 4 + 4 * count + bytes);
    if (count > 0 && !binary) {
        size_t text = 0;
        for (size_t i = 0; i < size; i++)
            text += copy[i] != '\n';
        FUZZ_ASSERT(text == bytes);
    }
    free(copy);
}

// NSQ's rule read the naive way: [.a-zA-Z0-9_-]+ with an optional
// "#ephemeral" suffix, 1..64 characters in all.
static bool s_name_rule(const char *name)
{
    size_t length = strlen(name);
    const char *suffix = NSQ_NAME_EPHEMERAL_SUFFIX;
    size_t base = length;
    if (length > strlen(suffix) && strcmp(name + length - strlen(suffix), suffix) == 0)
        base = length - strlen(suffix);
    if (base == 0 || length > NSQ_NAME_MAX)
        return false;
    for (size_t i = 0; i < base; i++)
        if (!(isalnum((unsigned char) name[i]) && (unsigned char) name[i] < 128)
            && !strchr("._-", name[i]))
            return false;
    return true;
}

static void s_name(fuzz_input_t *input)
{
    size_t size;
    const uint8_t *bytes = fuzz_bytes(input, fuzz_left(input), &size);
    char *name = strndup((const char *) bytes, size);
    FUZZ_ASSERT(name != NULL);
    bool valid = nsq_name_is_valid(name);
    FUZZ_ASSERT(valid == s_name_rule(name));
    if (valid)
        FUZZ_ASSERT(nsq_name_is_ephemeral(name)
                    == (strstr(name, NSQ_NAME_EPHEMERAL_SUFFIX) != NULL));
    free(name);
}

static int64_t s_first_eight(const uint8_t *bytes, size_t size)
{
    uint64_t value = 0;
    for (size_t i = 0; i < 8 && i < size; i++)
        value |= (uint64_t) bytes[i] << (8 * i);
    return (int64_t) value;
}

static void s_duration(fuzz_input_t *input)
{
    size_t size;
    const uint8_t *bytes = fuzz_bytes(input, fuzz_left(input), &size);
    char *text = strndup((const char *) bytes, size);
    FUZZ_ASSERT(text != NULL);
    int64_t value = -7, back = -7;
    char formatted[NSQ_DURATION_TEXT_MAX];
    if (nsq_duration_parse(text, &value) == 0) {
        FUZZ_ASSERT(value >= 0);
        nsq_duration_format(value, formatted, sizeof formatted);
        FUZZ_ASSERT(nsq_duration_parse(formatted, &back) == 0 && back == value);
    } else {
        FUZZ_ASSERT(value == -7);  // untouched on failure
    }
    int64_t any = s_first_eight(bytes, size);
    if (any < 0)
        any = -(any + 1);  // the contract's range: 0..INT64_MAX
    nsq_duration_format(any, formatted, sizeof formatted);
    FUZZ_ASSERT(nsq_duration_parse(formatted, &back) == 0 && back == any);
    free(text);
}

static void s_id(fuzz_input_t *input)
{
    size_t size;
    const uint8_t *bytes = fuzz_bytes(input, fuzz_left(input), &size);
    char *text = strndup((const char *) bytes, size);
    FUZZ_ASSERT(text != NULL);
    uint64_t id = 0;
    bool hex = strlen(text) == NSQ_MESSAGE_ID_HEX_SIZE;
    for (size_t i = 0; hex && i < NSQ_MESSAGE_ID_HEX_SIZE; i++)
        hex = isxdigit((unsigned char) text[i]);
    FUZZ_ASSERT((nsq_message_id_parse(text, &id) == 0) == hex);
    char formatted[NSQ_MESSAGE_ID_HEX_SIZE + 1];
    if (hex) {
        nsq_message_id_format(id, formatted);
        for (size_t i = 0; i < NSQ_MESSAGE_ID_HEX_SIZE; i++)
            FUZZ_ASSERT(formatted[i] == tolower((unsigned char) text[i]));
    }
    uint64_t any = (uint64_t) s_first_eight(bytes, size), back = 0;
    nsq_message_id_format(any, formatted);
    FUZZ_ASSERT(nsq_message_id_parse(formatted, &back) == 0 && back == any);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    fuzz_input_t input;
    fuzz_input_init(&input, data, size);
    switch (fuzz_u8(&input) % 4) {
    case 0:
        s_mpub(&input);
        break;
    case 1:
        s_name(&input);
        break;
    case 2:
        s_duration(&input);
        break;
    default:
        s_id(&input);
        break;
    }
    return 0;
}
