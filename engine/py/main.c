/*
 * main.c - a Python program inside one of our processes: dkv_py_main()
 * starts an interpreter of its own on the calling thread and calls one
 * function of one module until it returns (the runner, `distkv client run
 * all`, is python/distkv/runner.py called this way).
 *
 * This is not the bounded Python of the rest of engine/py/: no Python
 * thread, no time limit, no memory meter, no recursion limit of ours.  The
 * program owns the process while it runs (its threads, its signal
 * handlers, its standard streams) and is meant to run for as long as the
 * process does.  So this file shares nothing with interp.c but Python.h:
 * the two never run in one process (dkv_py_main refuses an interpreter
 * that someone else started).
 *
 * The interpreter is isolated from the environment (no PYTHON* variables,
 * no user site directory), but imports `site`, so that Debian's
 * dist-packages are on sys.path as they are for /usr/bin/python3; the
 * caller's directories go first.
 */
#include "py_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The exit status of a SystemExit: its code (an int, None: 0; anything
 * else is printed, status 1), as the python command does it. */
static int exit_status(void)
{
	PyObject *type = NULL, *value = NULL, *tb = NULL;
	int status = 1;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	PyObject *code = value ? PyObject_GetAttrString(value, "code") : NULL;
	if (!code || code == Py_None) {
		status = 0;
	} else if (PyLong_Check(code)) {
		status = (int)PyLong_AsLong(code) & 0xff;
	} else {
		PyObject_Print(code, stderr, Py_PRINT_RAW);
		fputc('\n', stderr);
	}
	PyErr_Clear();
	Py_XDECREF(code);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	return status;
}

/* What an exception the function did not catch means: SystemExit its
 * code, KeyboardInterrupt 130, anything else a traceback and 1. */
static int uncaught(void)
{
	if (PyErr_ExceptionMatches(PyExc_SystemExit))
		return exit_status();
	if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
		PyErr_Clear();
		return 130;
	}
	PyErr_Print();
	return 1;
}

static int prepend_path(const char *const *path, unsigned npath)
{
	PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
	if (!sys_path)
		return -1;
	for (unsigned i = npath; i-- > 0;) {
		PyObject *dir = PyUnicode_DecodeFSDefault(path[i]);
		int rc = dir ? PyList_Insert(sys_path, 0, dir) : -1;
		Py_XDECREF(dir);
		if (rc)
			return -1;
	}
	return 0;
}

/* module.func(arg) with the interpreter running; the exit status, or -1
 * with a Python exception pending. */
static int call_main(const char *module, const char *func, const uint8_t *arg, size_t arglen)
{
	PyObject *mod = PyImport_ImportModule(module);
	PyObject *fn = mod ? PyObject_GetAttrString(mod, func) : NULL;
	PyObject *data = fn ? PyBytes_FromStringAndSize((const char *)arg, (Py_ssize_t)arglen)
			    : NULL;
	PyObject *res = data ? PyObject_CallOneArg(fn, data) : NULL;
	int status = -1;

	if (res == Py_None)
		status = 0;
	else if (res && PyLong_Check(res))
		status = (int)PyLong_AsLong(res) & 0xff;
	else if (res)
		status = 1;
	Py_XDECREF(res);
	Py_XDECREF(data);
	Py_XDECREF(fn);
	Py_XDECREF(mod);
	return status;
}

/* Whether Python threads other than this one still run: a job's worker
 * thread may never end, and finalizing would wait for it forever. */
static bool other_threads(void)
{
	PyObject *threading = PyImport_ImportModule("threading");
	PyObject *n = threading ? PyObject_CallMethod(threading, "active_count", NULL) : NULL;
	bool more = !n || !PyLong_Check(n) || PyLong_AsLong(n) > 1;
	Py_XDECREF(n);
	Py_XDECREF(threading);
	PyErr_Clear();
	return more;
}

static void flush_streams(void)
{
	static const char *const names[] = {"stdout", "stderr"};
	for (int i = 0; i < 2; i++) {
		PyObject *f = PySys_GetObject(names[i]); /* borrowed */
		PyObject *r = f && f != Py_None ? PyObject_CallMethod(f, "flush", NULL) : NULL;
		Py_XDECREF(r);
	}
	PyErr_Clear();
}

int dkv_py_main(const char *const *path, unsigned npath, const char *module, const char *func,
		const uint8_t *arg, size_t arglen, char *err, size_t errlen)
{
	PyConfig config;
	PyStatus st;

	if (Py_IsInitialized()) {
		snprintf(err, errlen, "Python is already running in this process");
		return -EINVAL;
	}
	PyConfig_InitIsolatedConfig(&config);
	config.site_import = 1;
	config.install_signal_handlers = 1; /* SIGINT: KeyboardInterrupt */
	config.write_bytecode = 0;
	st = PyConfig_SetBytesString(&config, &config.program_name, module);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		snprintf(err, errlen, "cannot start Python: %s",
			 st.err_msg ? st.err_msg : "unknown error");
		return -EINVAL;
	}
	int status = prepend_path(path, npath) ? -1 : call_main(module, func, arg, arglen);
	if (status < 0)
		status = uncaught();
	flush_streams();
	/* An exiting process needs no clean interpreter; one with a thread
	 * still in a job cannot have one. */
	if (!other_threads())
		Py_FinalizeEx();
	return status;
}
