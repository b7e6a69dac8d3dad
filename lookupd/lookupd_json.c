/*  lookupd_json - reading the brokers' JSON documents without a check at
    every step
    SPDX-License-Identifier: MIT

    jansson's getters already accept NULL and answer 0 or NULL for a
    mistyped value; these only turn that into the defaults above.
*/
#include "lookupd_json.h"

#include <czmq.h>

uint64_t lookupd_json_uint(json_t *object, const char *key)
{
    json_int_t value = json_integer_value(json_object_get(object, key));
    return value > 0 ? (uint64_t) value : 0;
}

double lookupd_json_real(json_t *object, const char *key)
{
    return json_number_value(json_object_get(object, key));
}

const char *lookupd_json_str(json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value ? value : "";
}

bool lookupd_json_true(json_t *object, const char *key)
{
    return json_is_true(json_object_get(object, key));
}

json_t *lookupd_json_find(json_t *array, const char *key, const char *name)
{
    size_t index;
    json_t *item;
    json_array_foreach(array, index,
                       item) if (streq(lookupd_json_str(item, key), name)) return item;
    return NULL;
}
