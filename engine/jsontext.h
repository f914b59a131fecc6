/*
 * jsontext.h - msgpack values as JSON text (engine/json.c), for `-o json`.
 *
 * One way only: the CLI writes JSON for jq and friends, nothing reads it
 * back.  Every value gets a JSON form; what JSON has no type for becomes
 * an object with one key that starts with ':' (doc/formats.md):
 *
 *   bytes                  {":binary": "BASE64"}
 *   NaN, +-infinity        {":float": "nan"}, {":float": "inf"}, {":float": "-inf"}
 *   an integer of 2^8192 or more (over 1024 bytes, 2467 digits)
 *                          {":int": "0xHEX"}   (smaller ones are plain numbers)
 *   a path (ext type 3)    {":path": [element, ...]}
 *   a proxy (ext type 4)   {":proxy": "name"}
 *   another ext type       {":ext": [type, "BASE64"]} (also a proxy whose
 *                          name is not UTF-8)
 *   a string that is not UTF-8 (only from old logs or peers)
 *                          {":nonutf8": "HEX"}, YAML's !nonutf8
 *
 * Object keys: a string of valid UTF-8 that does not start with ':' is
 * itself; any other key is written in the colon notation (pathtext.h:
 * ":5", ":t", ":n", "::x" for the string ":x"), or, when it has none (a
 * map, an ext type), ':' and its JSON text.  So a key that starts with
 * ':' never was a plain string, and none of the marker keys above is the
 * colon notation of anything.  Floats are the shortest decimal that reads
 * back, always with '.' or an exponent (2.0, 1.0e+16).
 */
#ifndef DKV_JSONTEXT_H
#define DKV_JSONTEXT_H

#include "mp.h"

/* Append the value encoded at mp[0..len) to out as JSON on one line,
 * without a newline.  Returns 0, or -EBADMSG when mp is not one valid
 * msgpack item (out is unchanged then). */
int dkv_json_emit(struct dkv_buf *out, const uint8_t *mp, size_t len);

/* Append the JSON string for s[0..n) (quotes included); bytes that are
 * not valid UTF-8 become U+FFFD, so callers that must not change a value
 * check first (dkv_json_emit writes {":nonutf8": ...} instead). */
void dkv_json_string(struct dkv_buf *out, const uint8_t *s, size_t n);

#endif
