/*
 * code.h - stored code: what the records below (None, "code") and
 * (None, "module") must look like, and the checker that refuses the ones
 * that do not (engine/code.c).
 *
 * A procedure, at (None, "code", NAME...), is a map:
 *   code      the script (a string), the body of a procedure, so that
 *             "return 42" is valid
 *   is_async  true: an async procedure; null or absent: a plain one;
 *             false: a plain one that should run in a worker thread
 *             (DistKV's three states)
 *   vars      the procedure's parameters, a list of names (absent: none)
 *   info      a line about it, for listings (a string or absent)
 * A module, at (None, "module", NAME...), is a map {code: its text},
 * compiled as a module.  Other keys of either map are kept as they are
 * (the original's "default" and "requires", for the runners).
 *
 * Records are checked by compiling them; nothing here runs them.
 */
#ifndef DKV_CODE_H
#define DKV_CODE_H

#include "engine.h"

#include <stddef.h>
#include <stdint.h>

#define DKV_CODE_ELEM "code"     /* (None, "code", NAME...): procedures */
#define DKV_MODULE_ELEM "module" /* (None, "module", NAME...): modules */
#define DKV_CODE_MAX_VARS 64     /* parameters a procedure may have */
/* The longest script or module, bytes.  Compiling is not interruptible
 * and runs on the loop: 32 KiB (about 800 lines) compiles in about 0.2 s
 * (the worst text measured: 16,384 one-letter statements as a
 * procedure), within a call's time limit (server.python.timeout, 0.5 s
 * by default). */
#define DKV_CODE_MAX_TEXT (32u << 10)

enum dkv_code_kind {
	DKV_CODE_NONE,   /* not stored code */
	DKV_CODE_PROC,   /* a procedure record */
	DKV_CODE_MODULE, /* a module record */
};

/* What the internal path (element encodings, relative to None) holds:
 * every path at or below (code) a procedure, at or below (module) a
 * module, anything else neither. */
enum dkv_code_kind dkv_code_kind_of(const uint8_t *path, size_t len);

/* Check the record value[0..len) (msgpack) of kind: 0, or -EINVAL with
 * the reason in why: "SyntaxError: line 2: invalid syntax" (the line in
 * the script), or what is wrong with the map ("TypeError: ...", or
 * "ValueError: ..." for a text longer than DKV_CODE_MAX_TEXT).
 * DKV_CODE_NONE: 0. */
int dkv_code_check_record(enum dkv_code_kind kind, const uint8_t *value, size_t len, char *why,
			  size_t whylen);

/* Have e refuse every local change that stores a bad record
 * (dkv_engine_add_checker); deletions always pass. */
void dkv_code_add_checker(struct dkv_engine *e);

#endif
