/*
 * proc.c - stored procedures, and the bounds every call into stored code
 * runs under: a time limit, a memory budget, a recursion limit.
 *
 * A procedure is the user's text compiled as the body of a function (so
 * "return 42" is valid), through the AST: the body is parsed as a module
 * and put under a FunctionDef, so line numbers in errors are the user's
 * and multi-line strings keep their text (indenting the source would
 * change both).
 *
 * The time limit: each call registers its deadline with one watchdog
 * thread.  At the deadline the watchdog takes the GIL, which a script
 * looping in Python gives up every switch interval (5 ms), and raises a
 * TimeoutError in the calling thread with PyThreadState_SetAsyncExc(); it
 * raises again every RETRY seconds until the call ends, so a script that
 * catches it does not get away.  A script sleeping in time.sleep() holds
 * no GIL and would not see that exception until it wakes, so time.sleep
 * is replaced by one that sleeps at most until the caller's deadline and
 * then raises itself.
 *
 * What the watchdog cannot interrupt -- C code that holds the GIL for
 * long (a huge integer power, sum(range(10**10)), a regex backtracking),
 * blocking calls other than time.sleep (select, sockets, locks, input), a
 * script that catches the TimeoutError in a loop -- ends when it ends;
 * but calls run on the Python thread (exec.c), and their callers stop
 * waiting at the limit and the grace, so the server is not held up.
 *
 * The workload: one call per checked write, a short script.  The public
 * functions copy their arguments into a job for the Python thread (an
 * abandoned job outlives its caller) and copy the result back.
 */
#include "py_int.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* After a TimeoutError, how long the watchdog waits before raising again
 * while the call still runs, seconds. */
#define RETRY 0.05

/* ---- the helper module ---- */

/* Our Python side: compiling a body into a function. */
static const char helper_src[] =
	"import ast, builtins, keyword\n"
	"def make(src, names, is_async):\n"
	"    for n in names:\n"
	"        if not n.isidentifier() or keyword.iskeyword(n):\n"
	"            raise SyntaxError('invalid parameter name %r' % (n,))\n"
	"    body = ast.parse(src, '<stored code>').body or [ast.Pass()]\n"
	"    params = ast.arguments(posonlyargs=[], args=[ast.arg(arg=n) for n in names],\n"
	"                           kwonlyargs=[], kw_defaults=[], defaults=[])\n"
	"    kind = ast.AsyncFunctionDef if is_async else ast.FunctionDef\n"
	"    fn = kind(name='_proc', args=params, body=body, decorator_list=[],\n"
	"              lineno=1, col_offset=0)\n"
	"    tree = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))\n"
	"    scope = {'__builtins__': builtins, '__name__': 'stored'}\n"
	"    exec(compile(tree, '<stored code>', 'exec'), scope)\n"
	"    return scope['_proc']\n"
	"def drain():\n"
	"    pass\n";

static PyObject *make_fn;   /* helper make(), a strong reference */
static PyObject *drain_fn;  /* helper drain() */
static PyObject *orig_sleep; /* the time module's own sleep */

/* ---- the watchdog ---- */

static _Atomic double timeout_s = 0.5;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	pthread_t thread;
	bool started, stop;
	struct dkv__py_guard *head; /* calls with a deadline */
	double asleep_until;        /* INFINITY: until woken */
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The guard of the call running on this thread. */
static _Thread_local struct dkv__py_guard *current;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double due(const struct dkv__py_guard *g)
{
	return g->fired ? g->retry : g->deadline;
}

/* With the GIL and wd.lock: raise in every call that is due. */
static void fire_due(void)
{
	double t = now();
	for (struct dkv__py_guard *g = wd.head; g; g = g->next) {
		if (due(g) > t)
			continue;
		PyThreadState_SetAsyncExc(g->thread, PyExc_TimeoutError);
		g->fired = true;
		g->retry = t + RETRY;
	}
}

static void *watchdog(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wd.lock);
	while (!wd.stop) {
		double t = now(), next = INFINITY;
		for (struct dkv__py_guard *g = wd.head; g; g = g->next)
			next = fmin(next, due(g));
		if (next <= t) {
			/* never wait for the GIL with the lock held: a caller
			 * holding the GIL may be waiting for the lock */
			pthread_mutex_unlock(&wd.lock);
			dkv__py_enter();
			pthread_mutex_lock(&wd.lock);
			fire_due();
			pthread_mutex_unlock(&wd.lock);
			dkv__py_leave();
			pthread_mutex_lock(&wd.lock);
			continue;
		}
		wd.asleep_until = next;
		if (isinf(next)) {
			pthread_cond_wait(&wd.wake, &wd.lock);
		} else {
			struct timespec ts;
			ts.tv_sec = (time_t)next;
			ts.tv_nsec = (long)((next - (double)ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&wd.wake, &wd.lock, &ts);
		}
		wd.asleep_until = 0;
	}
	pthread_mutex_unlock(&wd.lock);
	return NULL;
}

/* With wd.lock.  The watchdog blocks every signal: the event loop owns
 * them. */
static int watchdog_start(void)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wd.wake, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	wd.stop = false;
	rc = pthread_create(&wd.thread, NULL, watchdog, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&wd.wake);
		return -rc;
	}
	wd.started = true;
	return 0;
}

/* With the GIL held: the watchdog waits for it, so let it go meanwhile. */
static void watchdog_stop(void)
{
	pthread_mutex_lock(&wd.lock);
	bool started = wd.started;
	wd.stop = true;
	if (started)
		pthread_cond_signal(&wd.wake);
	pthread_mutex_unlock(&wd.lock);
	if (!started)
		return;
	Py_BEGIN_ALLOW_THREADS
	pthread_join(wd.thread, NULL);
	Py_END_ALLOW_THREADS
	pthread_cond_destroy(&wd.wake);
	wd.started = false;
}

/* ---- the bounds of a call ---- */

void dkv_py_set_timeout(double seconds)
{
	atomic_store(&timeout_s, seconds > 0 ? seconds : 0);
}

void dkv__py_timeout_text(const struct dkv__py_guard *g, char *err, size_t errlen)
{
	snprintf(err, errlen, "TimeoutError('stored code took longer than %g s')", g->limit);
}

void dkv__py_guard_enter(struct dkv__py_guard *g)
{
	*g = (struct dkv__py_guard){
		.thread = PyThread_get_thread_ident(),
		.limit = atomic_load(&timeout_s),
	};
	current = g;
	if (g->limit > 0) {
		g->deadline = now() + g->limit;
		pthread_mutex_lock(&wd.lock);
		if (wd.started || !watchdog_start()) {
			g->next = wd.head;
			if (wd.head)
				wd.head->prev = g;
			wd.head = g;
			g->listed = true;
			if (wd.asleep_until > g->deadline || isinf(wd.asleep_until))
				pthread_cond_signal(&wd.wake);
		}
		pthread_mutex_unlock(&wd.lock);
	}
	dkv__py_meter_on(DKV_PY_MEM_BUDGET);
}

/* A TimeoutError the watchdog raised may still be pending in this thread
 * when the call ended on its own.  Withdrawing it with SetAsyncExc(NULL)
 * would leave the interpreter's "async exception" flag on (each thread's
 * eval loop would then check for it on every jump), so deliver a fresh one
 * to a function that does nothing and drop it: that clears both. */
static void drain_timeout(unsigned long thread)
{
	PyObject *type, *value, *tb;

	PyErr_Fetch(&type, &value, &tb);
	PyThreadState_SetAsyncExc(thread, PyExc_TimeoutError);
	PyObject *r = PyObject_CallNoArgs(drain_fn);
	Py_XDECREF(r);
	PyErr_Clear();
	PyErr_Restore(type, value, tb);
}

int dkv__py_guard_leave(struct dkv__py_guard *g)
{
	bool fired = false;

	dkv__py_meter_off();
	current = NULL;
	if (g->listed) {
		pthread_mutex_lock(&wd.lock);
		if (g->prev)
			g->prev->next = g->next;
		else
			wd.head = g->next;
		if (g->next)
			g->next->prev = g->prev;
		fired = g->fired;
		pthread_mutex_unlock(&wd.lock);
		g->listed = false;
	}
	if (fired)
		drain_timeout(g->thread);
	return fired || g->expired ? -ETIMEDOUT : 0;
}

/* time.sleep for stored code: never past the caller's deadline. */
static PyObject *bounded_sleep(PyObject *self, PyObject *arg)
{
	struct dkv__py_guard *g = current;
	(void)self;

	if (!g || !g->deadline)
		return PyObject_CallOneArg(orig_sleep, arg);
	double secs = PyFloat_AsDouble(arg);
	if (secs == -1.0 && PyErr_Occurred())
		return NULL;
	double left = g->deadline - now();
	if (!(secs >= left)) /* also negative or NaN: time.sleep says why */
		return PyObject_CallOneArg(orig_sleep, arg);
	if (left > 0) {
		PyObject *part = PyFloat_FromDouble(left);
		PyObject *r = part ? PyObject_CallOneArg(orig_sleep, part) : NULL;
		Py_XDECREF(part);
		if (!r)
			return NULL;
		Py_DECREF(r);
	}
	g->expired = true;
	PyErr_Format(PyExc_TimeoutError, "stored code took longer than %g s", g->limit);
	return NULL;
}

static PyMethodDef bounded_sleep_def = {
	"sleep", bounded_sleep, METH_O,
	"sleep(seconds): time.sleep, cut off at the stored code's time limit",
};

/* Put bounded_sleep in the time module's place. */
static int replace_sleep(void)
{
	PyObject *time = PyImport_ImportModule("time");
	PyObject *ours = NULL;
	int rc = -1;

	if (!time)
		return -1;
	orig_sleep = PyObject_GetAttrString(time, "sleep");
	ours = orig_sleep ? PyCFunction_New(&bounded_sleep_def, NULL) : NULL;
	if (ours)
		rc = PyObject_SetAttrString(time, "sleep", ours);
	Py_XDECREF(ours);
	Py_DECREF(time);
	return rc;
}

int dkv__py_proc_init(char *err, size_t errlen)
{
	PyObject *scope = PyDict_New(), *r = NULL;

	if (scope && !PyDict_SetItemString(scope, "__builtins__", PyEval_GetBuiltins()))
		r = PyRun_String(helper_src, Py_file_input, scope, scope);
	if (r) {
		make_fn = PyDict_GetItemString(scope, "make");
		drain_fn = PyDict_GetItemString(scope, "drain");
		Py_XINCREF(make_fn);
		Py_XINCREF(drain_fn);
	}
	Py_XDECREF(r);
	Py_XDECREF(scope);
	if (!make_fn || !drain_fn || replace_sleep()) {
		dkv__py_exc_text(err, errlen);
		dkv__py_proc_fini();
		return -EINVAL;
	}
	return 0;
}

void dkv__py_proc_fini(void)
{
	watchdog_stop();
	Py_CLEAR(make_fn);
	Py_CLEAR(drain_fn);
	Py_CLEAR(orig_sleep);
}

/* ---- procedures ---- */

struct dkv_py_proc {
	PyObject *fn;        /* the compiled function */
	unsigned generation; /* of the interpreter fn lives in */
	unsigned nparams;
	bool async_;         /* compiled only */
};

static PyObject *name_tuple(const char *const *names, unsigned n)
{
	PyObject *t = PyTuple_New(n);
	for (unsigned i = 0; t && i < n; i++) {
		PyObject *s = PyUnicode_FromString(names[i]);
		if (!s) {
			Py_CLEAR(t);
			break;
		}
		PyTuple_SET_ITEM(t, i, s);
	}
	return t;
}

/* Compile on this thread, with the GIL. */
static int proc_new_here(struct dkv_py_proc **out, const char *src, size_t len,
			 const char *const *names, unsigned n, bool async_, char *err,
			 size_t errlen)
{
	struct dkv__py_guard g;
	PyObject *text = NULL, *params = NULL, *fn = NULL;
	int rc;

	*out = NULL;
	rc = dkv__py_start(err, errlen);
	if (rc)
		return rc;
	dkv__py_enter();
	dkv__py_guard_enter(&g);
	text = PyUnicode_DecodeUTF8(src, (Py_ssize_t)len, NULL);
	params = text ? name_tuple(names, n) : NULL;
	if (params)
		fn = PyObject_CallFunction(make_fn, "OOO", text, params, async_ ? Py_True : Py_False);
	if (!fn) {
		dkv__py_exc_text(err, errlen);
		rc = -EINVAL;
	}
	Py_XDECREF(text);
	Py_XDECREF(params);
	if (dkv__py_guard_leave(&g)) {
		Py_CLEAR(fn);
		dkv__py_timeout_text(&g, err, errlen);
		rc = -ETIMEDOUT;
	}
	if (!rc) {
		struct dkv_py_proc *p = dkv_xcalloc(1, sizeof *p);
		*p = (struct dkv_py_proc){fn, dkv__py_generation, n, async_};
		*out = p;
	}
	dkv__py_leave();
	return rc;
}

static void proc_free_here(struct dkv_py_proc *p)
{
	/* after a restart fn belonged to the old interpreter, gone with it */
	if (dkv__py_alive(p->generation)) {
		dkv__py_enter();
		Py_DECREF(p->fn);
		dkv__py_leave();
	}
	free(p);
}

double dkv__py_wait(void)
{
	double limit = atomic_load(&timeout_s);
	return limit > 0 ? limit + DKV_PY_GRACE : 0;
}

void dkv__py_overran(char *err, size_t errlen)
{
	snprintf(err, errlen, "TimeoutError('stored code took longer than %g s')",
		 atomic_load(&timeout_s));
}

struct new_job {
	struct dkv__py_job job;
	struct dkv_py_proc *proc;
	unsigned n;
	bool async_;
	int rc;
	char err[512];
	const char **names;
	size_t len;
	char src[];
};

static void new_run(struct dkv__py_job *j)
{
	struct new_job *nj = (struct new_job *)j;
	nj->rc = proc_new_here(&nj->proc, nj->src, nj->len, nj->names, nj->n, nj->async_,
			       nj->err, sizeof nj->err);
}

static void new_drop(struct dkv__py_job *j)
{
	struct new_job *nj = (struct new_job *)j;
	if (nj->proc)
		proc_free_here(nj->proc);
	for (unsigned i = 0; i < nj->n; i++)
		free((char *)nj->names[i]);
	free(nj->names);
	free(nj);
}

int dkv_py_proc_new(struct dkv_py_proc **out, const char *src, size_t len,
		    const char *const *names, unsigned n, bool async_, char *err, size_t errlen)
{
	*out = NULL;
	if (errlen)
		err[0] = 0;
	struct new_job *nj = dkv_xcalloc(1, sizeof *nj + len + 1);
	nj->job.run = new_run;
	nj->job.drop = new_drop;
	nj->n = n;
	nj->async_ = async_;
	nj->len = len;
	memcpy(nj->src, src, len);
	nj->names = dkv_xcalloc(n ? n : 1, sizeof *nj->names);
	for (unsigned i = 0; i < n; i++)
		nj->names[i] = dkv_xstrdup(names[i]);
	int rc = dkv__py_exec(&nj->job, dkv__py_wait(), err, errlen);
	if (rc == -ETIMEDOUT) {
		dkv__py_overran(err, errlen);
		return rc; /* the job is the Python thread's */
	}
	if (!rc) {
		rc = nj->rc;
		if (rc)
			snprintf(err, errlen, "%s", nj->err);
		*out = nj->proc;
		nj->proc = NULL;
	}
	new_drop(&nj->job);
	return rc;
}

struct free_job {
	struct dkv__py_job job;
	struct dkv_py_proc *proc;
};

static void free_run(struct dkv__py_job *j)
{
	proc_free_here(((struct free_job *)j)->proc);
}

static void free_drop(struct dkv__py_job *j)
{
	free(j);
}

void dkv_py_proc_free(struct dkv_py_proc *p)
{
	if (!p)
		return;
	if (!dkv__py_alive(p->generation) || dkv__py_on_thread()) {
		proc_free_here(p);
		return;
	}
	/* on the Python thread, after whatever runs there now: a stuck
	 * script must not hold up the caller */
	struct free_job *fj = dkv_xcalloc(1, sizeof *fj);
	fj->job.run = free_run;
	fj->job.drop = free_drop;
	fj->proc = p;
	if (dkv__py_exec_later(&fj->job)) {
		free(fj);
		proc_free_here(p);
	}
}

/* Call fn with the arguments converted; the result's encoding onto out. */
static int call(struct dkv_py_proc *p, const struct dkv_py_arg *args, unsigned nargs,
		struct dkv_buf *out, char *err, size_t errlen)
{
	PyObject *small[8], **argv = small, *res = NULL;
	unsigned have = 0;
	int rc = 0;

	if (nargs > sizeof small / sizeof small[0])
		argv = dkv_xcalloc(nargs, sizeof *argv);
	for (; have < nargs; have++) {
		struct dkv_mp_reader r;
		dkv_mp_reader_init(&r, args[have].mp, args[have].len);
		argv[have] = dkv__py_from_mp(&r, err, errlen);
		if (!argv[have]) {
			rc = -EINVAL;
			goto out;
		}
	}
	res = PyObject_Vectorcall(p->fn, argv, nargs, NULL);
	if (!res) {
		dkv__py_exc_repr(err, errlen);
		rc = -EINVAL;
	} else if (dkv__py_to_mp(out, res, DKV_PY_MAX_RESULT, err, errlen)) {
		rc = -ERANGE;
	}
out:
	Py_XDECREF(res); /* its __del__ runs here, still under the bounds */
	for (unsigned i = 0; i < have; i++)
		Py_DECREF(argv[i]);
	if (argv != small)
		free(argv);
	return rc;
}

/* Call on this thread, with the GIL and under the bounds. */
static int call_here(struct dkv_py_proc *p, const struct dkv_py_arg *args, unsigned nargs,
		     struct dkv_buf *out, char *err, size_t errlen)
{
	struct dkv__py_guard g;
	int rc;

	dkv__py_enter();
	dkv__py_guard_enter(&g);
	rc = call(p, args, nargs, out, err, errlen);
	if (dkv__py_guard_leave(&g)) {
		dkv__py_timeout_text(&g, err, errlen);
		rc = -ETIMEDOUT;
	}
	dkv__py_leave();
	return rc;
}

struct call_job {
	struct dkv__py_job job;
	struct dkv_py_proc *p;
	unsigned nargs;
	int rc;
	struct dkv_buf out;
	char err[512];
	struct dkv_py_arg args[8];
	uint8_t data[];
};

static void call_run(struct dkv__py_job *j)
{
	struct call_job *cj = (struct call_job *)j;
	cj->rc = call_here(cj->p, cj->args, cj->nargs, &cj->out, cj->err, sizeof cj->err);
}

static void call_drop(struct dkv__py_job *j)
{
	struct call_job *cj = (struct call_job *)j;
	dkv_buf_release(&cj->out);
	free(cj);
}

int dkv_py_proc_call(struct dkv_py_proc *p, const struct dkv_py_arg *args, unsigned nargs,
		     struct dkv_buf *out, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	if (p->async_) {
		snprintf(err, errlen, "an async procedure is not called here");
		return -EINVAL;
	}
	if (nargs != p->nparams || nargs > 8) {
		snprintf(err, errlen, "TypeError('the procedure takes %u arguments, not %u')",
			 p->nparams, nargs);
		return -EINVAL;
	}
	if (!dkv__py_alive(p->generation)) {
		snprintf(err, errlen, "Python was shut down since the procedure was made");
		return -EINVAL;
	}
	/* the arguments are copied: an abandoned call outlives the caller's */
	size_t total = 0;
	for (unsigned i = 0; i < nargs; i++)
		total += args[i].len;
	struct call_job *cj = dkv_xmalloc(sizeof *cj + total);
	memset(cj, 0, sizeof *cj);
	cj->job.run = call_run;
	cj->job.drop = call_drop;
	cj->p = p;
	cj->nargs = nargs;
	total = 0;
	for (unsigned i = 0; i < nargs; i++) {
		memcpy(cj->data + total, args[i].mp, args[i].len);
		cj->args[i] = (struct dkv_py_arg){cj->data + total, args[i].len};
		total += args[i].len;
	}
	int rc = dkv__py_exec(&cj->job, dkv__py_wait(), err, errlen);
	if (rc == -ETIMEDOUT) {
		dkv__py_overran(err, errlen);
		return rc;
	}
	if (!rc) {
		rc = cj->rc;
		if (rc)
			snprintf(err, errlen, "%s", cj->err);
		else
			dkv_buf_append(out, cj->out.data, cj->out.len);
	}
	call_drop(&cj->job);
	return rc;
}
