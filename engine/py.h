/*
 * py.h - the embedded CPython interpreter.
 *
 * The only module that includes Python.h.  The interpreter is started on
 * first use and lives until dkv_py_shutdown().  Not thread-safe: call from
 * one thread.
 */
#ifndef DKV_PY_H
#define DKV_PY_H

#include "mp.h"

/* Evaluate src with Python's ast.literal_eval and append the msgpack
 * encoding of the result to out: None, bool, int (>= 2^64 as ext type 2;
 * below -2^63 is an error), float, str, bytes, list and tuple (as arrays),
 * dict (as a map), set/frozenset are refused.  On failure returns -EINVAL
 * and writes Python's exception text, e.g. "SyntaxError: invalid syntax",
 * into err. */
int dkv_py_literal_eval(struct dkv_buf *out, const char *src, char *err, size_t errlen);

void dkv_py_shutdown(void);

#endif
