/*
 * interp.c - the embedded CPython interpreter: starting and stopping it,
 * the memory meter, exception texts, and values between msgpack and
 * Python.
 *
 * engine/py/ is the only place that includes Python.h.  The interpreter
 * starts on first use, from whichever thread gets there first, isolated
 * from the environment (no PYTHON* variables, no user site directory, no
 * signal handlers: the event loop owns the signals), and runs until
 * dkv_py_shutdown().  Between calls nobody holds the GIL, so any thread
 * may call in; each call takes the GIL for its duration.
 *
 * The workload: the command line evaluates a literal now and then; the
 * server calls short stored procedures (type checks, codecs) once per
 * checked write, tens of thousands of times a second.  So values are
 * converted field by field without caching anything, and the memory
 * meter costs one thread-local test per allocation outside calls.
 */
#include "py_int.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where Debian keeps its Python packages (python3-jsonschema); the
 * isolated interpreter does not import site, which would add it. */
#define DEBIAN_DIST_PACKAGES "/usr/lib/python3/dist-packages"

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool running;    /* set once everything below is ready */
static PyThreadState *main_ts; /* the starting thread's state; start_lock */
static PyObject *literal_eval; /* ast.literal_eval, a strong reference */
unsigned dkv__py_generation;   /* start_lock */

/* ---- the memory meter ---- */

/*
 * Python's memory comes from two places we can wrap without replacing
 * anything: the raw domain (malloc; pymalloc passes every block over 512
 * bytes there) and the arena allocator (pymalloc's arenas for the small
 * objects).  The hooks count the bytes a thread allocates and frees while
 * its meter is on, and refuse what would pass the budget.  Outside calls
 * the cost is one test of a thread-local flag.
 */
struct meter {
	bool on;
	size_t budget; /* bytes */
	ptrdiff_t used; /* net bytes since on; negative when it freed more */
};
static _Thread_local struct meter meter;

static PyMemAllocatorEx raw_base;
static PyObjectArenaAllocator arena_base;

static bool meter_allows(size_t n)
{
	return meter.used < 0 || (size_t)meter.used + n <= meter.budget;
}

static void *raw_malloc(void *ctx, size_t n)
{
	(void)ctx;
	if (meter.on && !meter_allows(n))
		return NULL;
	void *p = raw_base.malloc(raw_base.ctx, n);
	if (p && meter.on)
		meter.used += (ptrdiff_t)malloc_usable_size(p);
	return p;
}

static void *raw_calloc(void *ctx, size_t nelem, size_t elsize)
{
	(void)ctx;
	if (meter.on && (elsize && nelem > SIZE_MAX / elsize))
		return NULL;
	if (meter.on && !meter_allows(nelem * elsize))
		return NULL;
	void *p = raw_base.calloc(raw_base.ctx, nelem, elsize);
	if (p && meter.on)
		meter.used += (ptrdiff_t)malloc_usable_size(p);
	return p;
}

static void *raw_realloc(void *ctx, void *p, size_t n)
{
	(void)ctx;
	if (!meter.on)
		return raw_base.realloc(raw_base.ctx, p, n);
	size_t old = p ? malloc_usable_size(p) : 0;
	if (n > old && !meter_allows(n - old))
		return NULL;
	void *q = raw_base.realloc(raw_base.ctx, p, n);
	if (q)
		meter.used += (ptrdiff_t)malloc_usable_size(q) - (ptrdiff_t)old;
	return q;
}

static void raw_free(void *ctx, void *p)
{
	(void)ctx;
	if (p && meter.on)
		meter.used -= (ptrdiff_t)malloc_usable_size(p);
	raw_base.free(raw_base.ctx, p);
}

static void *arena_alloc(void *ctx, size_t n)
{
	(void)ctx;
	if (meter.on && !meter_allows(n))
		return NULL;
	void *p = arena_base.alloc(arena_base.ctx, n);
	if (p && meter.on)
		meter.used += (ptrdiff_t)n;
	return p;
}

static void arena_free(void *ctx, void *p, size_t n)
{
	(void)ctx;
	if (p && meter.on)
		meter.used -= (ptrdiff_t)n;
	arena_base.free(arena_base.ctx, p, n);
}

/* Wrap the allocators once; a restart may find them still wrapped. */
static void hook_allocators(void)
{
	PyMemAllocatorEx raw;
	PyObjectArenaAllocator arena;

	PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
	if (raw.malloc != raw_malloc) {
		raw_base = raw;
		raw = (PyMemAllocatorEx){NULL, raw_malloc, raw_calloc, raw_realloc, raw_free};
		PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &raw);
	}
	PyObject_GetArenaAllocator(&arena);
	if (arena.alloc != arena_alloc) {
		arena_base = arena;
		arena = (PyObjectArenaAllocator){NULL, arena_alloc, arena_free};
		PyObject_SetArenaAllocator(&arena);
	}
}

void dkv__py_meter_on(size_t budget)
{
	meter = (struct meter){.on = true, .budget = budget, .used = 0};
}

void dkv__py_meter_off(void)
{
	meter.on = false;
}

/* ---- starting and stopping ---- */

static int add_dist_packages(void)
{
	PyObject *path = PySys_GetObject("path"); /* borrowed */
	PyObject *dir = PyUnicode_FromString(DEBIAN_DIST_PACKAGES);
	int rc = path && dir ? PyList_Append(path, dir) : -1;
	Py_XDECREF(dir);
	return rc;
}

/* The interpreter and what it needs, with start_lock held. */
static int start_locked(char *err, size_t errlen)
{
	PyPreConfig pre;
	PyConfig config;
	PyStatus st;

	if (Py_IsInitialized()) {
		/* someone else started it; we only borrow the interpreter */
		snprintf(err, errlen, "Python was initialised outside engine/py");
		return -EINVAL;
	}
	/* pymalloc over malloc, whatever PYTHONMALLOC says: the meter's
	 * hooks ask malloc_usable_size() about raw blocks */
	PyPreConfig_InitIsolatedConfig(&pre);
	pre.allocator = PYMEM_ALLOCATOR_PYMALLOC;
	st = Py_PreInitialize(&pre);
	if (!PyStatus_Exception(st)) {
		hook_allocators();
		PyConfig_InitIsolatedConfig(&config);
		config.install_signal_handlers = 0;
		config.site_import = 0;
		config.write_bytecode = 0;
		st = Py_InitializeFromConfig(&config);
		PyConfig_Clear(&config);
	}
	if (PyStatus_Exception(st)) {
		snprintf(err, errlen, "cannot start Python: %s",
			 st.err_msg ? st.err_msg : "unknown error");
		return -EINVAL;
	}

	Py_SetRecursionLimit(DKV_PY_RECURSION);
	PyObject *ast = add_dist_packages() ? NULL : PyImport_ImportModule("ast");
	if (ast) {
		literal_eval = PyObject_GetAttrString(ast, "literal_eval");
		Py_DECREF(ast);
	}
	if (!literal_eval) {
		dkv__py_exc_text(err, errlen);
		Py_FinalizeEx();
		return -EINVAL;
	}
	dkv__py_generation++;
	int rc = dkv__py_proc_init(err, errlen);
	if (rc) {
		Py_CLEAR(literal_eval);
		Py_FinalizeEx();
		return rc;
	}
	main_ts = PyEval_SaveThread();
	return 0;
}

bool dkv__py_alive(unsigned generation)
{
	return atomic_load_explicit(&running, memory_order_acquire) &&
	       generation == dkv__py_generation;
}

int dkv__py_start(char *err, size_t errlen)
{
	int rc = 0;

	if (atomic_load_explicit(&running, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&start_lock);
	if (!atomic_load_explicit(&running, memory_order_relaxed)) {
		rc = start_locked(err, errlen);
		if (!rc)
			atomic_store_explicit(&running, true, memory_order_release);
	}
	pthread_mutex_unlock(&start_lock);
	return rc;
}

void dkv_py_shutdown(void)
{
	/* the Python thread stops the interpreter as its last act (below),
	 * unless it is stuck in a call that overran: then both stay */
	dkv__py_exec_stop(dkv__py_wait());
}

void dkv__py_finish(void)
{
	pthread_mutex_lock(&start_lock);
	if (atomic_load_explicit(&running, memory_order_relaxed)) {
		atomic_store_explicit(&running, false, memory_order_relaxed);
		PyEval_RestoreThread(main_ts);
		dkv__py_proc_fini();
		dkv__py_schema_fini();
		Py_CLEAR(literal_eval);
		Py_FinalizeEx();
		main_ts = NULL;
	}
	pthread_mutex_unlock(&start_lock);
}

/* ---- each thread's Python state ---- */

/*
 * PyGILState_Ensure() on a thread that has no Python state makes one and
 * PyGILState_Release() deletes it again, which costs an mmap and munmap
 * of its frame stack: 25 us a call.  So each thread keeps the state of its
 * first call until it ends (the key's destructor deletes it) or the
 * interpreter stops.  It is the thread's PyGILState one, so C code in
 * Python that asks for the GIL on this thread finds it.
 */
struct pinned {
	PyThreadState *ts;
	unsigned generation; /* of the interpreter ts belongs to */
	bool own;            /* made here, not the starting thread's */
};
static _Thread_local struct pinned pinned;
static pthread_key_t pinned_key;
static pthread_once_t pinned_once = PTHREAD_ONCE_INIT;

static void thread_gone(void *arg)
{
	struct pinned *p = arg;
	if (!p->own || !dkv__py_alive(p->generation))
		return; /* gone with the interpreter */
	PyEval_RestoreThread(p->ts);
	PyThreadState_Clear(p->ts);
	PyThreadState_DeleteCurrent();
	p->ts = NULL;
}

static void make_pinned_key(void)
{
	if (pthread_key_create(&pinned_key, thread_gone))
		abort(); /* only when the process is out of keys */
}

/* The Python thread keeps the GIL from one call to the next while calls
 * come in quick succession (dkv__py_keep_gil): a handover then costs no
 * lock at all. */
static _Thread_local bool keep_gil, gil_held;

void dkv__py_keep_gil(bool on)
{
	keep_gil = on;
	if (!on && gil_held) {
		gil_held = false;
		PyEval_SaveThread();
	}
}

PyThreadState *dkv__py_enter(void)
{
	if (gil_held)
		return pinned.ts;
	if (!pinned.ts || pinned.generation != dkv__py_generation) {
		PyThreadState *ts = PyGILState_GetThisThreadState();
		pinned = (struct pinned){ts, dkv__py_generation, false};
		if (!ts) {
			pthread_once(&pinned_once, make_pinned_key);
			pinned.ts = PyThreadState_New(PyInterpreterState_Main());
			pinned.own = true;
			pthread_setspecific(pinned_key, &pinned);
		}
	}
	PyEval_RestoreThread(pinned.ts);
	return pinned.ts;
}

void dkv__py_leave(void)
{
	if (keep_gil)
		gil_held = true;
	else
		PyEval_SaveThread();
}

/* ---- exception texts ---- */

/* "line N: message" of a SyntaxError value, or NULL. */
static PyObject *syntax_text(PyObject *value)
{
	PyObject *msg = PyObject_GetAttrString(value, "msg");
	PyObject *line = PyObject_GetAttrString(value, "lineno");
	PyObject *text = NULL;

	if (msg && line && PyUnicode_Check(msg) && PyLong_Check(line))
		text = PyUnicode_FromFormat("line %S: %U", line, msg);
	Py_XDECREF(msg);
	Py_XDECREF(line);
	PyErr_Clear();
	return text;
}

void dkv__py_exc_text(char *err, size_t errlen)
{
	PyObject *type = NULL, *value = NULL, *tb = NULL;
	const char *name = "Exception", *msg = NULL;
	PyObject *str = NULL;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (type && PyType_Check(type))
		name = ((PyTypeObject *)type)->tp_name;
	if (value && PyErr_GivenExceptionMatches(value, PyExc_SyntaxError))
		str = syntax_text(value);
	if (value && !str)
		str = PyObject_Str(value);
	if (str)
		msg = PyUnicode_AsUTF8(str);
	if (msg && *msg)
		snprintf(err, errlen, "%s: %s", name, msg);
	else
		snprintf(err, errlen, "%s", name);
	Py_XDECREF(str);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	PyErr_Clear();
}

void dkv__py_exc_repr(char *err, size_t errlen)
{
	PyObject *type = NULL, *value = NULL, *tb = NULL;
	PyObject *repr = NULL;
	const char *text = NULL;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (value)
		repr = PyObject_Repr(value); /* may run the script's __repr__ */
	if (repr)
		text = PyUnicode_AsUTF8(repr);
	if (text)
		snprintf(err, errlen, "%s", text);
	else if (type && PyType_Check(type))
		snprintf(err, errlen, "%s()", ((PyTypeObject *)type)->tp_name);
	else
		snprintf(err, errlen, "Exception()");
	Py_XDECREF(repr);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	PyErr_Clear();
}

/* ---- msgpack to Python ---- */

static PyObject *from_item(struct dkv_mp_reader *r, int depth, bool key, char *err, size_t errlen);

static PyObject *fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return NULL;
}

static PyObject *pyfail(char *err, size_t errlen)
{
	dkv__py_exc_text(err, errlen);
	return NULL;
}

/* n items; as a tuple when it is (part of) a dict key or a path. */
static PyObject *from_array(struct dkv_mp_reader *r, uint32_t n, int depth, bool tuple,
			    char *err, size_t errlen)
{
	if (depth >= DKV_MP_MAX_DEPTH)
		return fail(err, errlen, "value nested too deeply");
	if (n > dkv_mp_left(r)) /* every item takes a byte at least */
		return fail(err, errlen, "truncated msgpack value");
	PyObject *seq = tuple ? PyTuple_New(n) : PyList_New(n);
	if (!seq)
		return pyfail(err, errlen);
	for (uint32_t i = 0; i < n; i++) {
		PyObject *o = from_item(r, depth + 1, tuple, err, errlen);
		if (!o) {
			Py_DECREF(seq);
			return NULL;
		}
		if (tuple)
			PyTuple_SET_ITEM(seq, i, o);
		else
			PyList_SET_ITEM(seq, i, o);
	}
	return seq;
}

static PyObject *from_map(struct dkv_mp_reader *r, uint32_t n, int depth, char *err, size_t errlen)
{
	if (depth >= DKV_MP_MAX_DEPTH)
		return fail(err, errlen, "value nested too deeply");
	if (n > dkv_mp_left(r) / 2)
		return fail(err, errlen, "truncated msgpack value");
	PyObject *d = PyDict_New();
	if (!d)
		return pyfail(err, errlen);
	for (uint32_t i = 0; i < n; i++) {
		PyObject *k = from_item(r, depth + 1, true, err, errlen);
		PyObject *v = k ? from_item(r, depth + 1, false, err, errlen) : NULL;
		int rc = v ? PyDict_SetItem(d, k, v) : -1;
		Py_XDECREF(k);
		Py_XDECREF(v);
		if (rc) {
			if (PyErr_Occurred()) /* unhashable key */
				dkv__py_exc_text(err, errlen);
			Py_DECREF(d);
			return NULL;
		}
	}
	return d;
}

/* A path: its elements' encodings back to back, as a tuple. */
static PyObject *from_path(const uint8_t *p, uint32_t len, int depth, char *err, size_t errlen)
{
	struct dkv_mp_reader r;
	PyObject *list = PyList_New(0), *tuple = NULL;

	if (!list)
		return pyfail(err, errlen);
	dkv_mp_reader_init(&r, p, len);
	while (dkv_mp_left(&r)) {
		PyObject *o = from_item(&r, depth + 1, true, err, errlen);
		int rc = o ? PyList_Append(list, o) : -1;
		Py_XDECREF(o);
		if (rc) {
			if (PyErr_Occurred())
				dkv__py_exc_text(err, errlen);
			Py_DECREF(list);
			return NULL;
		}
	}
	tuple = PyList_AsTuple(list);
	Py_DECREF(list);
	return tuple ? tuple : pyfail(err, errlen);
}

static PyObject *from_ext(const struct dkv_mp_item *it, int depth, char *err, size_t errlen)
{
	PyObject *o;

	switch (it->v.ext.type) {
	case DKV_EXT_BIGINT:
		o = PyObject_CallMethod((PyObject *)&PyLong_Type, "from_bytes", "y#s",
					(const char *)it->v.ext.p, (Py_ssize_t)it->v.ext.len, "big");
		return o ? o : pyfail(err, errlen);
	case DKV_EXT_PATH:
		if (depth >= DKV_MP_MAX_DEPTH)
			return fail(err, errlen, "value nested too deeply");
		return from_path(it->v.ext.p, it->v.ext.len, depth, err, errlen);
	default:
		snprintf(err, errlen, "TypeError: no Python form for msgpack ext type %d",
			 it->v.ext.type);
		return NULL;
	}
}

static PyObject *from_item(struct dkv_mp_reader *r, int depth, bool key, char *err, size_t errlen)
{
	struct dkv_mp_item it;
	PyObject *o = NULL;
	int rc = dkv_mp_read(r, &it);

	if (rc)
		return fail(err, errlen, rc == -EAGAIN ? "truncated msgpack value" : "bad msgpack value");
	switch (it.type) {
	case DKV_MP_NIL:
		Py_RETURN_NONE;
	case DKV_MP_BOOL:
		return PyBool_FromLong(it.v.b);
	case DKV_MP_UINT:
		o = PyLong_FromUnsignedLongLong(it.v.u);
		break;
	case DKV_MP_INT:
		o = PyLong_FromLongLong(it.v.i);
		break;
	case DKV_MP_FLOAT:
		o = PyFloat_FromDouble(it.v.f);
		break;
	case DKV_MP_STR:
		o = PyUnicode_DecodeUTF8((const char *)it.v.s.p, it.v.s.len, NULL);
		break;
	case DKV_MP_BIN:
		o = PyBytes_FromStringAndSize((const char *)it.v.s.p, it.v.s.len);
		break;
	case DKV_MP_ARRAY:
		return from_array(r, it.v.n, depth, key, err, errlen);
	case DKV_MP_MAP:
		return from_map(r, it.v.n, depth, err, errlen);
	case DKV_MP_EXT:
		return from_ext(&it, depth, err, errlen);
	}
	return o ? o : pyfail(err, errlen);
}

PyObject *dkv__py_from_mp(struct dkv_mp_reader *r, char *err, size_t errlen)
{
	return from_item(r, 0, false, err, errlen);
}

/* ---- Python to msgpack ---- */

struct put {
	struct dkv_buf *out;
	size_t limit; /* out->len must stay at or below it */
	char *err;
	size_t errlen;
};

static int put_obj(struct put *c, PyObject *o, int depth);

static int put_room(struct put *c, size_t n)
{
	if (c->out->len > c->limit || n > c->limit - c->out->len) {
		snprintf(c->err, c->errlen, "result too large");
		return -E2BIG;
	}
	return 0;
}

static int put_pyerr(struct put *c)
{
	dkv__py_exc_text(c->err, c->errlen);
	return -EINVAL;
}

/* A positive int beyond int64: an ordinary uint64 when it fits, else ext
 * type 2; dkv_mp_bigint() picks, given the magnitude from int.to_bytes(). */
static int put_bigint(struct put *c, PyObject *o)
{
	PyObject *bits = NULL, *bytes = NULL;
	int rc = -EINVAL;
	long long nbits;

	bits = PyObject_CallMethod(o, "bit_length", NULL);
	if (!bits || (nbits = PyLong_AsLongLong(bits)) < 0)
		goto pyerr;
	bytes = PyObject_CallMethod(o, "to_bytes", "Ls", (nbits + 7) / 8, "big");
	if (!bytes || !PyBytes_Check(bytes))
		goto pyerr;
	rc = put_room(c, (size_t)PyBytes_GET_SIZE(bytes) + 6);
	if (!rc)
		dkv_mp_bigint(c->out, (const uint8_t *)PyBytes_AS_STRING(bytes),
			      (size_t)PyBytes_GET_SIZE(bytes));
	goto out;
pyerr:
	rc = put_pyerr(c);
out:
	Py_XDECREF(bits);
	Py_XDECREF(bytes);
	return rc;
}

static int put_int(struct put *c, PyObject *o)
{
	int overflow = 0;
	long long v = PyLong_AsLongLongAndOverflow(o, &overflow);

	if (v == -1 && PyErr_Occurred())
		return put_pyerr(c);
	if (overflow < 0) {
		snprintf(c->err, c->errlen, "integer too small (below -2**63)");
		return -EINVAL;
	}
	if (overflow)
		return put_bigint(c, o);
	dkv_mp_int(c->out, v);
	return 0;
}

static int put_seq(struct put *c, PyObject *o, int depth)
{
	/* lists and tuples: PySequence_Fast returns the object itself */
	PyObject *seq = PySequence_Fast(o, "not a sequence");
	int rc = 0;
	if (!seq)
		return put_pyerr(c);
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if ((uint64_t)n > UINT32_MAX) {
		snprintf(c->err, c->errlen, "sequence too long");
		rc = -EINVAL;
	} else {
		dkv_mp_array(c->out, (uint32_t)n);
		for (Py_ssize_t i = 0; i < n && !rc; i++)
			rc = put_obj(c, PySequence_Fast_GET_ITEM(seq, i), depth + 1);
	}
	Py_DECREF(seq);
	return rc;
}

static int put_dict(struct put *c, PyObject *o, int depth)
{
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	int rc = 0;

	if ((uint64_t)PyDict_Size(o) > UINT32_MAX) {
		snprintf(c->err, c->errlen, "dict too long");
		return -EINVAL;
	}
	dkv_mp_map(c->out, (uint32_t)PyDict_Size(o));
	while (!rc && PyDict_Next(o, &pos, &k, &v)) {
		Py_INCREF(k); /* a key's or value's __del__ must not pull them away */
		Py_INCREF(v);
		rc = put_obj(c, k, depth + 1);
		if (!rc)
			rc = put_obj(c, v, depth + 1);
		Py_DECREF(k);
		Py_DECREF(v);
	}
	return rc;
}

static int put_obj(struct put *c, PyObject *o, int depth)
{
	int rc = put_room(c, 9); /* the largest head or scalar */
	if (rc)
		return rc;
	if ((PyList_Check(o) || PyTuple_Check(o) || PyDict_Check(o)) && depth >= DKV_MP_MAX_DEPTH) {
		snprintf(c->err, c->errlen, "value nested deeper than %d levels", DKV_MP_MAX_DEPTH);
		return -EINVAL;
	}
	if (o == Py_None) {
		dkv_mp_nil(c->out);
	} else if (PyBool_Check(o)) { /* bool is a subclass of int */
		dkv_mp_bool(c->out, o == Py_True);
	} else if (PyLong_Check(o)) {
		return put_int(c, o);
	} else if (PyFloat_Check(o)) {
		dkv_mp_double(c->out, PyFloat_AS_DOUBLE(o));
	} else if (PyUnicode_Check(o)) {
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);
		if (!s)
			return put_pyerr(c); /* lone surrogates */
		if ((rc = put_room(c, (size_t)n + 5)))
			return rc;
		dkv_mp_str(c->out, s, (size_t)n);
	} else if (PyBytes_Check(o)) {
		if ((rc = put_room(c, (size_t)PyBytes_GET_SIZE(o) + 5)))
			return rc;
		dkv_mp_bin(c->out, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
	} else if (PyByteArray_Check(o)) {
		if ((rc = put_room(c, (size_t)PyByteArray_GET_SIZE(o) + 5)))
			return rc;
		dkv_mp_bin(c->out, PyByteArray_AS_STRING(o), (size_t)PyByteArray_GET_SIZE(o));
	} else if (PyList_Check(o) || PyTuple_Check(o)) {
		return put_seq(c, o, depth);
	} else if (PyDict_Check(o)) {
		return put_dict(c, o, depth);
	} else {
		snprintf(c->err, c->errlen, "TypeError: cannot store a value of type '%s'",
			 Py_TYPE(o)->tp_name);
		return -EINVAL;
	}
	return 0;
}

int dkv__py_to_mp(struct dkv_buf *out, PyObject *o, size_t limit, char *err, size_t errlen)
{
	size_t mark = out->len;
	struct put c = {out, limit > SIZE_MAX - mark ? SIZE_MAX : mark + limit, err, errlen};
	int rc = put_obj(&c, o, 0);
	if (rc)
		out->len = mark;
	return rc;
}

/* ---- ast.literal_eval ---- */

static int literal_eval_here(struct dkv_buf *out, const char *src, char *err, size_t errlen)
{
	PyObject *res = NULL;
	int rc;

	rc = dkv__py_start(err, errlen);
	if (rc)
		return rc;
	dkv__py_enter();
	res = PyObject_CallFunction(literal_eval, "s", src);
	if (!res) {
		dkv__py_exc_text(err, errlen);
		rc = -EINVAL;
	} else {
		rc = dkv__py_to_mp(out, res, SIZE_MAX, err, errlen);
		if (rc)
			rc = -EINVAL;
	}
	Py_XDECREF(res);
	dkv__py_leave();
	return rc;
}

struct eval_job {
	struct dkv__py_job job;
	struct dkv_buf *out;
	const char *src;
	char *err;
	size_t errlen;
	int rc;
};

static void eval_run(struct dkv__py_job *j)
{
	struct eval_job *ej = (struct eval_job *)j;
	ej->rc = literal_eval_here(ej->out, ej->src, ej->err, ej->errlen);
}

static void eval_drop(struct dkv__py_job *j)
{
	(void)j; /* never abandoned: it waits without a bound */
}

int dkv_py_literal_eval(struct dkv_buf *out, const char *src, char *err, size_t errlen)
{
	struct eval_job ej = {.job = {.run = eval_run, .drop = eval_drop},
			      .out = out, .src = src, .err = err, .errlen = errlen};
	if (errlen)
		err[0] = 0;
	int rc = dkv__py_exec(&ej.job, 0, err, errlen);
	return rc ? rc : ej.rc;
}
