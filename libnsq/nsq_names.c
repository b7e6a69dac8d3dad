/*  nsq_names - NSQ's rules for topic and channel names
    SPDX-License-Identifier: MIT

    Checks scan at most NSQ_NAME_MAX + 1 bytes, so an unterminated flood from
    a peer costs no more than a valid name.
*/
#include "nsq_names.h"

#include <string.h>

#define SUFFIX_SIZE (sizeof(NSQ_NAME_EPHEMERAL_SUFFIX) - 1)

static bool s_is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
           || c == '_' || c == '-';
}

bool nsq_name_is_ephemeral(const char *name)
{
    if (!name)
        return false;
    size_t length = strlen(name);
    return length >= SUFFIX_SIZE
           && memcmp(name + length - SUFFIX_SIZE, NSQ_NAME_EPHEMERAL_SUFFIX, SUFFIX_SIZE) == 0;
}

bool nsq_name_is_valid_n(const void *data, size_t size)
{
    const char *name = data;
    if (!name || size == 0 || size > NSQ_NAME_MAX)
        return false;
    bool ephemeral =
        size >= SUFFIX_SIZE
        && memcmp(name + size - SUFFIX_SIZE, NSQ_NAME_EPHEMERAL_SUFFIX, SUFFIX_SIZE) == 0;
    size_t base = ephemeral ? size - SUFFIX_SIZE : size;
    if (base == 0)
        return false;
    for (size_t index = 0; index < base; index++)
        if (!s_is_name_char(name[index]))
            return false;
    return true;
}

bool nsq_name_is_valid(const char *name)
{
    return name && nsq_name_is_valid_n(name, strnlen(name, NSQ_NAME_MAX + 1));
}

int nsq_name_copy(char *out, const void *data, size_t size)
{
    out[0] = '\0';
    if (!nsq_name_is_valid_n(data, size))
        return -1;
    memcpy(out, data, size);
    out[size] = '\0';
    return 0;
}

//  --------------------------------------------------------------------------
//  Self-test

int nsq_names_test(void)
{
    const char *valid[] = {"orders",
                           "a",
                           "A.b_c-9",
                           "...",
                           "orders#ephemeral",
                           "x#ephemeral",
                           "0123456789012345678901234567890123456789012345678901234567890123",
                           "012345678901234567890123456789012345678901234567890123#ephemeral"};
    for (size_t index = 0; index < sizeof(valid) / sizeof(valid[0]); index++)
        if (!nsq_name_is_valid(valid[index]))
            return -1;

    const char *invalid[] = {"",
                             "#ephemeral",
                             "a b",
                             "a/b",
                             "orders#eph",
                             "orders#ephemeral#ephemeral",
                             "orders#Ephemeral",
                             "ördérs",
                             "orders\n",
                             "a:b",
                             "01234567890123456789012345678901234567890123456789012345678901234",
                             "0123456789012345678901234567890123456789012345678901234#ephemeral"};
    for (size_t index = 0; index < sizeof(invalid) / sizeof(invalid[0]); index++)
        if (nsq_name_is_valid(invalid[index]))
            return -1;
    if (nsq_name_is_valid(NULL) || nsq_name_is_valid_n(NULL, 3))
        return -1;

    // With a length, every byte counts: a NUL or a bad byte after it is no
    // shorter valid name.
    const struct {
        const char *data;
        size_t size;
        bool valid;
    } sized[] = {{"a\0b", 3, false},
                 {"a\0", 2, false},
                 {"\0", 1, false},
                 {"orders", 6, true},
                 {"orders!", 6, true},
                 {"orders", 0, false},
                 {"qq\0x#ephemeral", 13, false},
                 {"c\0!", 3, false},
                 {"x#ephemeral", 11, true}};
    for (size_t index = 0; index < sizeof(sized) / sizeof(sized[0]); index++)
        if (nsq_name_is_valid_n(sized[index].data, sized[index].size) != sized[index].valid)
            return -1;
    char copy[NSQ_NAME_MAX + 1];
    if (nsq_name_copy(copy, "topic!", 5) || strcmp(copy, "topic") != 0
        || nsq_name_copy(copy, "lk\0zzz", 6) == 0 || copy[0] != '\0'
        || nsq_name_copy(copy, valid[6], 64) || strcmp(copy, valid[6]) != 0
        || nsq_name_copy(copy, invalid[10], 65) == 0)
        return -1;

    if (!nsq_name_is_ephemeral("orders#ephemeral") || !nsq_name_is_ephemeral("#ephemeral"))
        return -1;
    if (nsq_name_is_ephemeral("orders") || nsq_name_is_ephemeral("ephemeral")
        || nsq_name_is_ephemeral("orders#ephemeral ") || nsq_name_is_ephemeral(NULL))
        return -1;
    return 0;
}
