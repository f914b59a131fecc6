/*
 * py.h - the embedded CPython interpreter (engine/py/).
 *
 * The only module that includes Python.h.  The interpreter is started on
 * first use and lives until dkv_py_shutdown().  Every call here may come
 * from any thread, several at once, but not while dkv_py_shutdown() runs.
 * All of them run on one thread of ours, the Python thread (engine/py/
 * exec.c); the caller waits for its call at most the time limit and a
 * grace of 0.25 s, so no caller -- the event loop above all -- is held up
 * longer than that by any script, whatever the script does.
 *
 * Bounds of every call into stored code (procedures, schema checks): the
 * time limit (dkv_py_set_timeout), 256 MiB of net allocations (beyond it
 * Python raises MemoryError), a recursion limit of 200 frames (1000 while
 * a schema check runs, for jsonschema's own recursion), a result of at
 * most 64 MiB of msgpack.  Each ends that call with an error; the server
 * goes on.  A call the watchdog cannot interrupt (C code holding the GIL,
 * a blocking call, a script that keeps catching the TimeoutError) is
 * abandoned at the limit: its caller gets the timeout, the Python thread
 * finishes it whenever it ends, and meanwhile every call fails at once
 * with -EBUSY ("Python is busy: ...").  The bounds stop mistakes, not
 * malice: stored code is written by users the None subtree's rule lets
 * in, and it may import anything (os, ctypes, threading); a thread it
 * starts is not bounded at all, and a crash in C code it calls (ctypes)
 * takes the process down.
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
 * reason in err ("SyntaxError: line 2: invalid syntax"; line numbers are
 * those of src) when it does not compile or a name is not an identifier.
 * async_: an "async def" body (compiled only; calling it is -EINVAL).
 * The text runs in a namespace of its own (its globals), so one
 * procedure's globals are not another's. */
int dkv_py_proc_new(struct dkv_py_proc **out, const char *src, size_t len,
		    const char *const *names, unsigned n, bool async_, char *err, size_t errlen);
void dkv_py_proc_free(struct dkv_py_proc *p); /* accepts NULL */

/* Call p with args[i] (msgpack encodings, one per parameter) and append
 * the msgpack encoding of its return value to out (None when it returns
 * nothing).  What the script sees: nil, bool, int (ext 2 too), float,
 * str, bytes, lists for arrays (tuples where a dict key must be
 * hashable), dicts for maps, tuples for paths (ext 3); other ext types
 * are -EINVAL.  Its result: the same types back, tuples as arrays.
 * Errors, with err set and out as it was: -EINVAL for an exception,
 * written as repr() of it ("ValueError('not a percentage')"), or for
 * arguments that are not msgpack or nargs that is not the parameter
 * count; -ETIMEDOUT when the time limit interrupted it ("TimeoutError(
 * 'stored code took longer than 0.5 s')"), whatever the script did with
 * the TimeoutError it got; -ERANGE when the result cannot be msgpack
 * ("TypeError: cannot store a value of type 'set'", "result too large"). */
struct dkv_py_arg {
	const uint8_t *mp;
	size_t len;
};
int dkv_py_proc_call(struct dkv_py_proc *p, const struct dkv_py_arg *args, unsigned nargs,
		     struct dkv_buf *out, char *err, size_t errlen);

/* Check the value (msgpack) against a JSON schema (msgpack of the schema
 * object) with Python's jsonschema: 0, or -EINVAL with the reason:
 * "ValidationError('101 is greater than the maximum of 100')" for the
 * value, "SchemaError('...')" for a schema that is not one, or why the
 * module could not be imported; -ETIMEDOUT as for procedures.  Validators
 * are cached by the schema's bytes. */
int dkv_py_schema_check(const uint8_t *schema, size_t slen, const uint8_t *value, size_t vlen,
			char *err, size_t errlen);

/* The time limit of each call, seconds (server.python.timeout; default
 * 0.5; 0: none).  Any thread; calls made afterwards use it.  A script
 * looping in Python is interrupted within a few ms of the limit (the
 * watchdog waits for the GIL, which a running script hands over every
 * 5 ms) and again every 50 ms while it catches the TimeoutError;
 * time.sleep() ends at the limit.  C code holding the GIL (a huge
 * integer power, a regex backtracking) and blocking calls other than
 * time.sleep (select, sockets, locks) are not cut short, but their
 * callers stop waiting (above). */
void dkv_py_set_timeout(double seconds);

/* on: calls run on the caller's own thread, as plain function calls,
 * instead of the Python thread (server.python.inline).  Faster (no
 * handover between threads), but a script the watchdog cannot interrupt
 * (above) holds its caller, the event loop included, until it ends.  Set
 * it before the first call. */
void dkv_py_set_inline(bool on);

/* ---- a Python program (engine/py/main.c) ---- */

/* Run module.func(arg) -- arg a bytes object holding arg[0..arglen) --
 * in an interpreter of its own on the calling thread, without any of the
 * bounds above, until it returns; for a process that is the Python
 * program (the runner).  path[0..npath) go first on sys.path, before
 * the standard library and Debian's dist-packages (`site` is imported;
 * PYTHON* variables are ignored).  SIGINT raises KeyboardInterrupt.
 * Returns the exit status: what func returned (an int; None: 0), a
 * SystemExit's code, 130 after KeyboardInterrupt, 1 after any other
 * exception (its traceback printed on standard error).  -EINVAL with err
 * when Python cannot start, or was started in this process before (by
 * the calls above, or an earlier dkv_py_main: once per process). */
int dkv_py_main(const char *const *path, unsigned npath, const char *module, const char *func,
		const uint8_t *arg, size_t arglen, char *err, size_t errlen);

/* Stop the interpreter (when running) and the Python thread: procedures
 * made before it can only be freed, their calls fail.  No call may be
 * running.  When the Python thread is stuck in an abandoned call (see
 * above), both are left as they are. */
void dkv_py_shutdown(void);

#endif
