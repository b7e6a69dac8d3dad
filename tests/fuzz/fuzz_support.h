/*  fuzz_support - what the fuzz targets share: reading a libFuzzer input
    as a script of fields, quiet logs, a scratch directory, a reply socket,
    and lists of lines to compare before and after a restart
    SPDX-License-Identifier: MIT

    A target reads its input front to back with fuzz_u8/fuzz_u16/fuzz_bytes;
    past the end every read yields zeros or nothing, so any byte string is
    a valid script and the fuzzer never wastes inputs on framing errors.

    FUZZ_LOG=1 in the environment keeps the daemons' log lines (they are
    silenced by default: millions of runs would drown the fuzzer's own).

    API: fuzz_input_init, fuzz_u8, fuzz_u16, fuzz_bytes, fuzz_left,
    fuzz_string; fuzz_setup_once; fuzz_scratch_dir, fuzz_clean_dir,
    fuzz_write_file; fuzz_router; fuzz_lines_new, fuzz_lines_same, fuzz_lines_expect_same;
    fuzz_expect_json, fuzz_expect_sorted; FUZZ_ASSERT.
*/
#ifndef FUZZ_SUPPORT_H
#define FUZZ_SUPPORT_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The entry point each target defines; libFuzzer calls it once per input.
// Returns 0 (an invariant that fails aborts instead).
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *data;  // what is left of the input (borrowed)
    size_t size;          // bytes left
} fuzz_input_t;

// An invariant of the code under test: a violation aborts, so libFuzzer
// reports it as a crash and keeps the input.
#define FUZZ_ASSERT(cond) fuzz_assert((cond), #cond, __FILE__, __LINE__)

void fuzz_assert(bool ok, const char *what, const char *file, int line);

void fuzz_input_init(fuzz_input_t *self, const uint8_t *data, size_t size);

// The next byte, or 0 past the end.
uint8_t fuzz_u8(fuzz_input_t *self);

// The next two bytes, little-endian; missing bytes read as 0.
uint16_t fuzz_u16(fuzz_input_t *self);

// Up to want bytes (borrowed, into the input); *got receives how many.
const uint8_t *fuzz_bytes(fuzz_input_t *self, size_t want, size_t *got);

// Bytes left.
size_t fuzz_left(const fuzz_input_t *self);

// A string of up to [u8 length] bytes, NUL-terminated in out (size bytes),
// cut at an embedded NUL as C callers would see it.
void fuzz_string(fuzz_input_t *self, char *out, size_t size);

// Silences the logs (unless FUZZ_LOG is set); call at the top of every run.
void fuzz_setup_once(void);

// A private directory for this process (on /dev/shm when it exists, so
// fsyncs cost nothing), created on first use and removed at exit.
const char *fuzz_scratch_dir(void);

// Removes every file in dir (not subdirectories).
void fuzz_clean_dir(const char *dir);

// Writes size bytes to dir/name; aborts if the scratch disk fails.
void fuzz_write_file(const char *dir, const char *name, const void *data, size_t size);

// An unbound ROUTER for the whole process: a send to it succeeds and the
// frame is dropped (no peer has that identity), so daemons' replies are
// packed for real and go nowhere. Created on first use, destroyed at exit.
// Borrowed.
zsock_t *fuzz_router(void);

// A list of strings (malloc'd; the list frees them): what a target records
// before an operation to compare after it. Caller destroys.
zlistx_t *fuzz_lines_new(void);

// True if the lists hold the same lines in any order.
bool fuzz_lines_same(zlistx_t *x, zlistx_t *y);

// Aborts, printing both, unless the lists hold the same lines in any
// order; what names the operation in the message.
void fuzz_lines_expect_same(zlistx_t *before, zlistx_t *after, const char *what);

// Parses text, aborting (and printing it) unless it is one valid JSON
// document (UTF-8, as jansson checks it); what names it in the message.
// Caller owns the result (json_decref).
json_t *fuzz_expect_json(const char *text, const char *what);

// Aborts unless array is a JSON array of strings in strcmp order, each once.
void fuzz_expect_sorted(json_t *array, const char *what);

#endif
