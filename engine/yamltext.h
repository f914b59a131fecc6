/*
 * yamltext.h - msgpack values as YAML 1.2 text and back (engine/yaml.c).
 *
 * yaml.c is the only module that includes libyaml.  This header is not
 * called yaml.h because the engine directory is on every include path
 * and would hide libyaml's <yaml.h> behind it.
 *
 * Text is read as YAML 1.2 core schema: null/true/false/integers/floats
 * resolve as such (`~`, `null`, `true`, `false`, decimal, 0x/0o
 * integers, .inf/.nan floats); everything else, including `ON`, `yes`
 * and `no`, is a string.  Text is written so that YAML 1.1 readers
 * (PyYAML) read the same values too: strings that any common reader would
 * take for something else are quoted ('ON', 'yes', '12:30', '1_000',
 * '2001-12-14', '=', ...), floats always have a '.' ("1.0e+16"), byte
 * strings are `!!binary` base64 (`!bin` text and `!hex` are still read),
 * paths (ext type 3) use `!P` with the colon notation of pathtext.h
 * joined by '.'; arrays are sequences, maps are mappings.  The full list
 * of tags is at the top of yaml.c; doc/formats.md is the user's account.
 */
#ifndef DKV_YAMLTEXT_H
#define DKV_YAMLTEXT_H

#include "mp.h"

/* Append the value encoded at mp[0..len) as one YAML document to out,
 * without a "---" marker and ending in exactly one newline (scalars:
 * "123\n", "Duh\n").  Block style for maps and sequences.
 * Returns 0, or -EBADMSG when mp is not one valid msgpack item. */
int dkv_yaml_emit(struct dkv_buf *out, const uint8_t *mp, size_t len);

/* Like dkv_yaml_emit, with every non-empty line of the output prefixed by
 * `indent` spaces; used for nested output ("key:\n" + this parses as a
 * map holding the value).  */
int dkv_yaml_emit_indented(struct dkv_buf *out, const uint8_t *mp, size_t len, unsigned indent);

/* Parse text (one YAML document; an empty document is null) and append
 * the canonical msgpack encoding of its value to out.  On failure returns
 * -EINVAL, leaves out unchanged and writes a one-line reason (with line
 * and column) into err. */
int dkv_yaml_parse(struct dkv_buf *out, const char *text, size_t len, char *err, size_t errlen);

/* Parse a stream of YAML documents, appending one msgpack item per document.
 * *ndocs receives the number of documents.  Errors as dkv_yaml_parse. */
int dkv_yaml_parse_stream(struct dkv_buf *out, const char *text, size_t len, size_t *ndocs,
			  char *err, size_t errlen);

#endif
