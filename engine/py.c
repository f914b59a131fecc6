/*
 * py.c - the embedded CPython interpreter.
 *
 * The only file that includes Python.h.  The interpreter starts on first
 * use, isolated from the environment (no PYTHON* variables, no user site
 * directory, no signal handlers: the event loop owns the signals), and
 * keeps running until dkv_py_shutdown().  Between calls the GIL is
 * released, so a call may come from a worker thread as long as only one
 * thread uses this module at a time.
 *
 * Calls are rare (command-line values, stored code), so results are
 * converted from Python objects one by one without caching anything but
 * the literal_eval function.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static PyThreadState *main_ts;  /* saved while the GIL is released */
static PyObject *literal_eval; /* ast.literal_eval, a strong reference */

static int start(char *err, size_t errlen)
{
	PyConfig config;
	PyStatus st;

	if (literal_eval)
		return 0;
	if (Py_IsInitialized()) {
		/* someone else started it; we only borrow the interpreter */
		snprintf(err, errlen, "Python was initialised outside py.c");
		return -EINVAL;
	}
	PyConfig_InitIsolatedConfig(&config);
	config.install_signal_handlers = 0;
	config.site_import = 0;
	config.write_bytecode = 0;
	st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		snprintf(err, errlen, "cannot start Python: %s",
			 st.err_msg ? st.err_msg : "unknown error");
		return -EINVAL;
	}

	PyObject *ast = PyImport_ImportModule("ast");
	if (ast) {
		literal_eval = PyObject_GetAttrString(ast, "literal_eval");
		Py_DECREF(ast);
	}
	if (!literal_eval) {
		PyErr_Clear();
		snprintf(err, errlen, "cannot import ast.literal_eval");
		Py_FinalizeEx();
		return -EINVAL;
	}
	main_ts = PyEval_SaveThread();
	return 0;
}

/* Write the pending exception as "Name: message" and clear it. */
static void exc_text(char *err, size_t errlen)
{
	PyObject *type = NULL, *value = NULL, *tb = NULL;
	const char *name = "Exception", *msg = NULL;
	PyObject *str = NULL;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (type && PyType_Check(type))
		name = ((PyTypeObject *)type)->tp_name;
	if (value) {
		str = PyObject_Str(value);
		if (str)
			msg = PyUnicode_AsUTF8(str);
	}
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

/* A positive int beyond int64: an ordinary uint64 when it fits, else ext
 * type 2; dkv_mp_bigint() picks, given the magnitude from int.to_bytes(). */
static int put_bigint(struct dkv_buf *out, PyObject *o, char *err, size_t errlen)
{
	PyObject *bits = NULL, *bytes = NULL;
	int rc = -EINVAL;
	long long nbits;

	bits = PyObject_CallMethod(o, "bit_length", NULL);
	if (!bits || (nbits = PyLong_AsLongLong(bits)) < 0)
		goto pyerr;
	bytes = PyObject_CallMethod(o, "to_bytes", "Ls", (nbits + 7) / 8, "big");
	if (!bytes)
		goto pyerr;
	dkv_mp_bigint(out, (const uint8_t *)PyBytes_AS_STRING(bytes),
		      (size_t)PyBytes_GET_SIZE(bytes));
	rc = 0;
	goto out;
pyerr:
	exc_text(err, errlen);
out:
	Py_XDECREF(bits);
	Py_XDECREF(bytes);
	return rc;
}

static int put_obj(struct dkv_buf *out, PyObject *o, int depth, char *err, size_t errlen);

static int put_seq(struct dkv_buf *out, PyObject *o, int depth, char *err, size_t errlen)
{
	/* literal_eval builds fresh lists and tuples, so PySequence_Fast
	 * returns the object itself */
	PyObject *seq = PySequence_Fast(o, "not a sequence");
	int rc = 0;
	if (!seq) {
		exc_text(err, errlen);
		return -EINVAL;
	}
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if ((uint64_t)n > UINT32_MAX) {
		snprintf(err, errlen, "sequence too long");
		rc = -EINVAL;
	} else {
		dkv_mp_array(out, (uint32_t)n);
		for (Py_ssize_t i = 0; i < n && !rc; i++)
			rc = put_obj(out, PySequence_Fast_GET_ITEM(seq, i), depth + 1, err, errlen);
	}
	Py_DECREF(seq);
	return rc;
}

static int put_dict(struct dkv_buf *out, PyObject *o, int depth, char *err, size_t errlen)
{
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	int rc = 0;

	if ((uint64_t)PyDict_Size(o) > UINT32_MAX) {
		snprintf(err, errlen, "dict too long");
		return -EINVAL;
	}
	dkv_mp_map(out, (uint32_t)PyDict_Size(o));
	while (!rc && PyDict_Next(o, &pos, &k, &v)) {
		rc = put_obj(out, k, depth + 1, err, errlen);
		if (!rc)
			rc = put_obj(out, v, depth + 1, err, errlen);
	}
	return rc;
}

static int put_obj(struct dkv_buf *out, PyObject *o, int depth, char *err, size_t errlen)
{
	if ((PyList_Check(o) || PyTuple_Check(o) || PyDict_Check(o)) && depth >= DKV_MP_MAX_DEPTH) {
		snprintf(err, errlen, "value nested deeper than %d levels", DKV_MP_MAX_DEPTH);
		return -EINVAL;
	}
	if (o == Py_None) {
		dkv_mp_nil(out);
	} else if (PyBool_Check(o)) { /* bool is a subclass of int */
		dkv_mp_bool(out, o == Py_True);
	} else if (PyLong_Check(o)) {
		int overflow = 0;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
		if (v == -1 && PyErr_Occurred()) {
			exc_text(err, errlen);
			return -EINVAL;
		}
		if (overflow < 0) {
			snprintf(err, errlen, "integer too small (below -2**63)");
			return -EINVAL;
		}
		if (overflow)
			return put_bigint(out, o, err, errlen);
		dkv_mp_int(out, v);
	} else if (PyFloat_Check(o)) {
		dkv_mp_double(out, PyFloat_AS_DOUBLE(o));
	} else if (PyUnicode_Check(o)) {
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);
		if (!s) {
			exc_text(err, errlen); /* lone surrogates */
			return -EINVAL;
		}
		dkv_mp_str(out, s, (size_t)n);
	} else if (PyBytes_Check(o)) {
		dkv_mp_bin(out, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
	} else if (PyByteArray_Check(o)) {
		dkv_mp_bin(out, PyByteArray_AS_STRING(o), (size_t)PyByteArray_GET_SIZE(o));
	} else if (PyList_Check(o) || PyTuple_Check(o)) {
		return put_seq(out, o, depth, err, errlen);
	} else if (PyDict_Check(o)) {
		return put_dict(out, o, depth, err, errlen);
	} else {
		snprintf(err, errlen, "TypeError: cannot store a value of type '%s'",
			 Py_TYPE(o)->tp_name);
		return -EINVAL;
	}
	return 0;
}

int dkv_py_literal_eval(struct dkv_buf *out, const char *src, char *err, size_t errlen)
{
	size_t mark = out->len;
	PyGILState_STATE gs;
	PyObject *res = NULL;
	int rc;

	if (errlen)
		err[0] = 0;
	rc = start(err, errlen);
	if (rc)
		return rc;
	gs = PyGILState_Ensure();
	res = PyObject_CallFunction(literal_eval, "s", src);
	if (!res) {
		exc_text(err, errlen);
		rc = -EINVAL;
	} else {
		rc = put_obj(out, res, 0, err, errlen);
	}
	Py_XDECREF(res);
	PyGILState_Release(gs);
	if (rc)
		out->len = mark;
	return rc;
}

void dkv_py_shutdown(void)
{
	if (!literal_eval)
		return;
	PyEval_RestoreThread(main_ts);
	Py_CLEAR(literal_eval);
	Py_FinalizeEx();
	main_ts = NULL;
}
