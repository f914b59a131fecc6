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

/* ---- stored procedures (issue 13: types, codecs, code) ---- */

/*
 * A procedure: source text compiled as the body of a function whose
 * parameters are the given names (so "return 42" and "raise ValueError()"
 * are valid), as DistKV's stored code is.  Immutable once made; calls may
 * come from any thread (each takes the GIL).  Calls are bounded by the
 * time limit (dkv_py_set_timeout): a script that loops gets a TimeoutError
 * and the call fails; the server goes on.
 */
struct dkv_py_proc;

/* Compile src[0..len) with parameters names[0..n).  -EINVAL with the
 * reason in err ("SyntaxError: line 2: invalid syntax") when it does not
 * compile.  async_: an "async def" body (compiled only; not called here). */
int dkv_py_proc_new(struct dkv_py_proc **out, const char *src, size_t len,
		    const char *const *names, unsigned n, bool async_, char *err, size_t errlen);
void dkv_py_proc_free(struct dkv_py_proc *p); /* accepts NULL */

/* Call p with args[i] (msgpack encodings, one per parameter) and append
 * the msgpack encoding of its return value to out (None when it returns
 * nothing).  Errors, with err set: -EINVAL for an exception, written as
 * repr() of it ("ValueError('not a percentage')"); -ETIMEDOUT when the
 * time limit interrupted it ("TimeoutError('... took longer than 0.5 s')");
 * -ERANGE when the result cannot be msgpack. */
struct dkv_py_arg {
	const uint8_t *mp;
	size_t len;
};
int dkv_py_proc_call(struct dkv_py_proc *p, const struct dkv_py_arg *args, unsigned nargs,
		     struct dkv_buf *out, char *err, size_t errlen);

/* Check the value (msgpack) against a JSON schema (msgpack of the schema
 * object) with Python's jsonschema: 0, or -EINVAL with the reason. */
int dkv_py_schema_check(const uint8_t *schema, size_t slen, const uint8_t *value, size_t vlen,
			char *err, size_t errlen);

/* The time limit of each call, seconds (server.python.timeout; default
 * 0.5).  Any thread. */
void dkv_py_set_timeout(double seconds);

void dkv_py_shutdown(void);

#endif
