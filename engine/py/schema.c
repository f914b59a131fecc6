/*
 * schema.c - checking values against JSON schemas with Python's
 * jsonschema module (Debian: python3-jsonschema).
 *
 * The workload: a type with a schema checks every write to its paths
 * against the same few schemas.  Checking a schema itself (against its
 * meta-schema) costs far more than checking a value, so the validators
 * are kept in a dict keyed by the schema's msgpack bytes; it is emptied
 * when it reaches CACHE_MAX schemas.  The module is imported on first use
 * (about 0.1 s), so servers without schemas never pay for it.
 */
#include "py_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX 256

/* How much longer than a call the first check may take: it imports
 * jsonschema, seconds. */
#define IMPORT_WAIT 10.0

/* jsonschema takes about six frames per level of the value, and values
 * nest DKV_MP_MAX_DEPTH deep: checks run with Python's default limit,
 * 1000, instead of DKV_PY_RECURSION (safe on the 8 MiB stacks of our
 * threads).  The limit is the interpreter's: while a check runs, stored
 * code on another thread has this limit too. */
#define SCHEMA_RECURSION 1000

/* Our Python side: a validator for a schema, or why the schema is not
 * one; the first (best) error of a value.  Errors read like the repr of
 * other exceptions: "ValidationError('message')". */
static const char helper_src[] =
	"import jsonschema\n"
	"def text(e):\n"
	"    return '%s(%r)' % (type(e).__name__, e.message)\n"
	"def compile(schema):\n"
	"    cls = jsonschema.validators.validator_for(schema)\n"
	"    try:\n"
	"        cls.check_schema(schema)\n"
	"    except jsonschema.exceptions.SchemaError as e:\n"
	"        return text(e)\n"
	"    return cls(schema)\n"
	"def check(validator, value):\n"
	"    e = jsonschema.exceptions.best_match(validator.iter_errors(value))\n"
	"    return None if e is None else text(e)\n";

static unsigned checking; /* checks running; the GIL */
static atomic_bool loaded; /* the module is in (a caller need not wait for the import) */

static PyObject *compile_fn; /* helper compile() */
static PyObject *check_fn;   /* helper check() */
static PyObject *cache;      /* schema bytes -> validator */

static int load(void)
{
	PyObject *scope = PyDict_New(), *r = NULL;

	if (compile_fn)
		return 0;
	if (scope && !PyDict_SetItemString(scope, "__builtins__", PyEval_GetBuiltins()))
		r = PyRun_String(helper_src, Py_file_input, scope, scope);
	if (r) {
		compile_fn = PyDict_GetItemString(scope, "compile");
		check_fn = PyDict_GetItemString(scope, "check");
		Py_XINCREF(compile_fn);
		Py_XINCREF(check_fn);
		cache = PyDict_New();
	}
	Py_XDECREF(r);
	Py_XDECREF(scope);
	if (!compile_fn || !check_fn || !cache) {
		dkv__py_schema_fini();
		return -1;
	}
	return 0;
}

void dkv__py_schema_fini(void)
{
	atomic_store(&loaded, false);
	Py_CLEAR(compile_fn);
	Py_CLEAR(check_fn);
	Py_CLEAR(cache);
}

/* The validator of a schema (a new reference), compiled when not cached;
 * NULL with a Python exception or with the reason in err. */
static PyObject *validator(const uint8_t *schema, size_t slen, char *err, size_t errlen)
{
	PyObject *key = PyBytes_FromStringAndSize((const char *)schema, (Py_ssize_t)slen);
	PyObject *v = NULL, *obj = NULL;
	struct dkv_mp_reader r;

	if (!key)
		return NULL;
	v = PyDict_GetItemWithError(cache, key);
	if (v) {
		Py_INCREF(v);
		goto out;
	}
	if (PyErr_Occurred())
		goto out;
	dkv_mp_reader_init(&r, schema, slen);
	obj = dkv__py_from_mp(&r, err, errlen);
	if (obj && dkv_mp_left(&r)) {
		snprintf(err, errlen, "the schema is followed by more data");
		goto out;
	}
	v = obj ? PyObject_CallOneArg(compile_fn, obj) : NULL;
	if (v && PyUnicode_Check(v)) { /* not a schema */
		const char *why = PyUnicode_AsUTF8(v);
		snprintf(err, errlen, "%s", why ? why : "SchemaError()");
		PyErr_Clear();
		Py_CLEAR(v);
		goto out;
	}
	if (v && PyDict_Size(cache) >= CACHE_MAX)
		PyDict_Clear(cache);
	if (v && PyDict_SetItem(cache, key, v))
		Py_CLEAR(v);
out:
	Py_XDECREF(obj);
	Py_DECREF(key);
	return v;
}

/* The check itself, with the GIL and under the bounds. */
static int check(const uint8_t *schema, size_t slen, const uint8_t *value, size_t vlen,
		 char *err, size_t errlen)
{
	PyObject *v = NULL, *obj = NULL, *res = NULL;
	struct dkv_mp_reader r;
	int rc = -EINVAL;

	v = validator(schema, slen, err, errlen);
	if (!v)
		goto pyerr;
	dkv_mp_reader_init(&r, value, vlen);
	obj = dkv__py_from_mp(&r, err, errlen);
	if (!obj)
		goto out;
	res = PyObject_CallFunctionObjArgs(check_fn, v, obj, NULL);
	if (!res)
		goto pyerr;
	if (res == Py_None)
		rc = 0;
	else if (!PyUnicode_Check(res) || !PyUnicode_AsUTF8(res))
		snprintf(err, errlen, "ValidationError()");
	else
		snprintf(err, errlen, "%s", PyUnicode_AsUTF8(res));
	goto out;
pyerr:
	if (PyErr_Occurred())
		dkv__py_exc_repr(err, errlen);
out:
	Py_XDECREF(res);
	Py_XDECREF(obj);
	Py_XDECREF(v);
	return rc;
}

/* The whole check on this thread. */
static int check_here(const uint8_t *schema, size_t slen, const uint8_t *value, size_t vlen,
		      char *err, size_t errlen)
{
	struct dkv__py_guard g;
	int rc;

	rc = dkv__py_start(err, errlen);
	if (rc)
		return rc;
	dkv__py_enter();
	/* the first import takes longer than a call may, and is ours */
	if (load()) {
		dkv__py_exc_text(err, errlen);
		dkv__py_leave();
		return -EINVAL;
	}
	atomic_store(&loaded, true);
	if (!checking++)
		Py_SetRecursionLimit(SCHEMA_RECURSION);
	dkv__py_guard_enter(&g);
	rc = check(schema, slen, value, vlen, err, errlen);
	if (!--checking)
		Py_SetRecursionLimit(DKV_PY_RECURSION);
	if (dkv__py_guard_leave(&g)) {
		dkv__py_timeout_text(&g, err, errlen);
		rc = -ETIMEDOUT;
	}
	dkv__py_leave();
	return rc;
}

struct schema_job {
	struct dkv__py_job job;
	size_t slen, vlen;
	int rc;
	char err[512];
	uint8_t data[]; /* the schema, then the value */
};

static void schema_run(struct dkv__py_job *j)
{
	struct schema_job *sj = (struct schema_job *)j;
	sj->rc = check_here(sj->data, sj->slen, sj->data + sj->slen, sj->vlen, sj->err,
			    sizeof sj->err);
}

static void schema_drop(struct dkv__py_job *j)
{
	free(j);
}

int dkv_py_schema_check(const uint8_t *schema, size_t slen, const uint8_t *value, size_t vlen,
			char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	struct schema_job *sj = dkv_xcalloc(1, sizeof *sj + slen + vlen);
	sj->job.run = schema_run;
	sj->job.drop = schema_drop;
	sj->slen = slen;
	sj->vlen = vlen;
	memcpy(sj->data, schema, slen);
	memcpy(sj->data + slen, value, vlen);
	/* importing jsonschema (once) is not stored code: it gets its time */
	double wait = dkv__py_wait();
	if (wait > 0 && !atomic_load(&loaded))
		wait += IMPORT_WAIT;
	int rc = dkv__py_exec(&sj->job, wait, err, errlen);
	if (rc == -ETIMEDOUT) {
		dkv__py_overran(err, errlen);
		return rc;
	}
	if (!rc) {
		rc = sj->rc;
		if (rc)
			snprintf(err, errlen, "%s", sj->err);
	}
	free(sj);
	return rc;
}
