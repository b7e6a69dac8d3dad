/*  lookupd_json - reading the brokers' JSON documents without a check at
    every step
    SPDX-License-Identifier: MIT

    The console reads /nodes and /stats documents that other processes
    wrote: a field may be absent or of another type. These readers never
    fail: what is absent or mistyped reads as 0, "", false or NULL, and
    object may itself be NULL. Everything returned is borrowed from the
    document.

    API: lookupd_json_uint, lookupd_json_real, lookupd_json_str,
    lookupd_json_true, lookupd_json_find.
*/
#ifndef LOOKUPD_JSON_H
#define LOOKUPD_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

// The integer at key of object; 0 if absent, not an integer, or negative.
uint64_t lookupd_json_uint(json_t *object, const char *key);

// The number (integer or real) at key of object; 0 if absent.
double lookupd_json_real(json_t *object, const char *key);

// The string at key of object; "" if absent. Borrowed.
const char *lookupd_json_str(json_t *object, const char *key);

// True if the value at key of object is true.
bool lookupd_json_true(json_t *object, const char *key);

// The first object of array whose string at key is name; NULL if none.
// Borrowed.
json_t *lookupd_json_find(json_t *array, const char *key, const char *name);

#endif
