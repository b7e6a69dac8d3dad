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

bool nsq_name_is_valid(const char *name)
{
    if (!name)
        return false;
    size_t length = strnlen(name, NSQ_NAME_MAX + 1);
    if (length == 0 || length > NSQ_NAME_MAX)
        return false;
    size_t base = nsq_name_is_ephemeral(name) ? length - SUFFIX_SIZE : length;
    if (base == 0)
        return false;
    for (size_t index = 0; index < base; index++)
        if (!s_is_name_char(name[index]))
            return false;
    return true;
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
    if (nsq_name_is_valid(NULL))
        return -1;

    if (!nsq_name_is_ephemeral("orders#ephemeral") || !nsq_name_is_ephemeral("#ephemeral"))
        return -1;
    if (nsq_name_is_ephemeral("orders") || nsq_name_is_ephemeral("ephemeral")
        || nsq_name_is_ephemeral("orders#ephemeral ") || nsq_name_is_ephemeral(NULL))
        return -1;
    return 0;
}
