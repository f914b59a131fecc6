/*
 * fuzz.h - the entry point every fuzz target defines (libFuzzer's), called
 * by libFuzzer in a fuzzing build and by replay.c for the seed corpora.
 */
#ifndef DKV_FUZZ_H
#define DKV_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
