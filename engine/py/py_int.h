/*
 * py_int.h - what the files of engine/py/ share; nothing else includes it.
 *
 *   interp.c  starting and stopping the interpreter, the memory meter,
 *             exception texts, msgpack <-> Python, ast.literal_eval
 *   proc.c    stored procedures and the bounds of a call (time limit,
 *             memory budget, recursion limit), the watchdog thread
 *   schema.c  JSON schema checks through the jsonschema module
 *   exec.c    the Python thread the server's calls run on
 *
 * Every dkv__py_ function here but dkv__py_start() and the exec ones is
 * called with the GIL held.
 */
#ifndef DKV_PY_INT_H
#define DKV_PY_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The recursion limit of all Python code in the server (stored code,
 * schema checks, literal_eval): far below what would overflow the C stack
 * of any thread we run on, even under AddressSanitizer. */
#define DKV_PY_RECURSION 200

/* What one call may allocate (net: frees count against it), bytes. */
#define DKV_PY_MEM_BUDGET ((size_t)256 << 20)

/* The largest msgpack result of one call, bytes: a small Python object can
 * stand for a huge encoding ([a] * 1000 with a big a). */
#define DKV_PY_MAX_RESULT ((size_t)64 << 20)

/* Start the interpreter when it is not running (on the Python thread, no
 * GIL held: every use of Python runs there, see exec.c).  0, or -EINVAL
 * with the reason. */
int dkv__py_start(char *err, size_t errlen);
/* Stop it, when running: the Python thread's last act. */
void dkv__py_finish(void);
/* Incremented by every start: objects made before a restart are stale. */
extern unsigned dkv__py_generation;
/* Whether the interpreter that was running at `generation` still runs
 * (objects of an earlier one must not be touched). */
bool dkv__py_alive(unsigned generation);

/* Take the GIL with this thread's Python state (made on the thread's
 * first call, kept until it ends), and give it back.  Calls do not nest. */
PyThreadState *dkv__py_enter(void);
void dkv__py_leave(void);
/* on: leave keeps the GIL for the next enter on this thread; off: give
 * it back now if kept.  For the Python thread between quick calls. */
void dkv__py_keep_gil(bool on);

/* The pending exception as "Name: message" (Python's traceback line) or
 * as its repr(), "Name('message')"; both clear it. */
void dkv__py_exc_text(char *err, size_t errlen);
void dkv__py_exc_repr(char *err, size_t errlen);

/* One msgpack item at r as a new Python object: arrays as lists (tuples
 * as map keys), maps as dicts, ext 2 as int, ext 3 (a path) as a tuple of
 * its elements.  NULL with the reason in err when r holds no complete
 * item, nests deeper than DKV_MP_MAX_DEPTH or cannot be converted. */
PyObject *dkv__py_from_mp(struct dkv_mp_reader *r, char *err, size_t errlen);

/* Append o's msgpack encoding to out.  -EINVAL with the reason when o (or
 * something in it) has no msgpack form, -E2BIG when the encoding would
 * pass `limit` bytes; on error out is as it was. */
int dkv__py_to_mp(struct dkv_buf *out, PyObject *o, size_t limit, char *err, size_t errlen);

/* The memory meter of the calling thread: between on and off, allocations
 * beyond `budget` net bytes fail (Python raises MemoryError). */
void dkv__py_meter_on(size_t budget);
void dkv__py_meter_off(void);

/* The bounds of one call on this thread (proc.c).  enter: the time limit
 * starts, the memory meter is on.  leave: both end; -ETIMEDOUT when the
 * time limit fired (a pending TimeoutError has been withdrawn), else 0. */
struct dkv__py_guard {
	struct dkv__py_guard *prev, *next; /* the watchdog's list; its lock */
	unsigned long thread;              /* PyThread_get_thread_ident() */
	double deadline;                   /* monotonic seconds; 0: no limit */
	double retry;                      /* when to raise again once fired */
	double limit;                      /* the time limit, for the message */
	bool fired;                        /* under the watchdog's lock */
	bool listed;                       /* in the watchdog's list */
	bool expired;                      /* time.sleep ran into the deadline */
};
void dkv__py_guard_enter(struct dkv__py_guard *g);
int dkv__py_guard_leave(struct dkv__py_guard *g);
/* The TimeoutError text users see for g. */
void dkv__py_timeout_text(const struct dkv__py_guard *g, char *err, size_t errlen);

/* ---- the Python thread (exec.c) ---- */

/* A call to make on the Python thread: embedded in the caller's own
 * struct (heap-allocated: an abandoned job outlives its caller). */
struct dkv__py_job {
	void (*run)(struct dkv__py_job *j);  /* on the Python thread, GIL not held */
	void (*drop)(struct dkv__py_job *j); /* frees it: abandoned or detached */
	_Atomic int state;
	bool detached;
	uint64_t id;
	struct dkv__py_job *next;
};

/* Run j on the Python thread and wait for it, at most wait seconds (0:
 * no bound).  0: it ran, and is the caller's again.  -ETIMEDOUT: not done
 * in time; it belongs to the thread now, which drops it once it ends.
 * -EBUSY (with why in err): the thread is still in a call abandoned
 * earlier, and j did not run (it is the caller's), as for other errors
 * (starting the thread failed). */
int dkv__py_exec(struct dkv__py_job *j, double wait, char *err, size_t errlen);
/* Queue j without waiting; the thread runs it, then drops it.  0, or the
 * error of starting the thread (j not queued). */
int dkv__py_exec_later(struct dkv__py_job *j);
/* Stop the thread once its queue is done; false when it did not end
 * within wait seconds (stuck in a call: it is left running). */
bool dkv__py_exec_stop(double wait);
/* Whether the caller is the Python thread. */
bool dkv__py_on_thread(void);

/* How long past the time limit the watchdog's TimeoutError may take to
 * end a call, seconds: it lands within the 5 ms switch interval, the rest
 * is for a loaded machine that runs the Python thread late. */
#define DKV_PY_GRACE 0.25
/* How long a caller waits for its call: the time limit and the grace;
 * 0 when there is no limit. */
double dkv__py_wait(void);
/* The error of a call the caller stopped waiting for. */
void dkv__py_overran(char *err, size_t errlen);

/* Set up and tear down what proc.c and schema.c keep in the interpreter.
 * init runs at the end of every start (0 or -EINVAL); fini runs before
 * Py_FinalizeEx. */
int dkv__py_proc_init(char *err, size_t errlen);
void dkv__py_proc_fini(void);
void dkv__py_schema_fini(void);

#endif
