/*
 * report.h - messages of a running node to whoever runs it: one call,
 * dkv_report(), for every part (the log writer, the loader, the server,
 * the cluster, the mount).
 *
 * By default a message goes to standard error as one line,
 * "distkv: TEXT" ("distkv: warning: TEXT" for warnings).  A sink can take
 * them instead (the error log is not one: doc/errors.md); messages above
 * the chosen level are dropped.  This is the one piece of process-wide state in the engine, on
 * purpose: a process has one standard error, and a message must not need
 * an engine at hand (a mount's worker thread, a loader without a server).
 * Thread-safe: one line is written with one call.
 */
#ifndef DKV_REPORT_H
#define DKV_REPORT_H

enum dkv_level {
	DKV_REPORT_ERROR,   /* something failed: a log stopped, a peer refused us */
	DKV_REPORT_WARNING, /* damage survived: a torn record skipped */
	DKV_REPORT_INFO,    /* what a node does: serving, loaded, mounted, peers */
	DKV_REPORT_DEBUG,
};

void dkv_report(enum dkv_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Messages above level are dropped (default: DKV_REPORT_INFO). */
void dkv_report_set_level(enum dkv_level level);
/* Send messages to sink instead of standard error (NULL: back to
 * standard error).  msg has no prefix and no newline. */
void dkv_report_set_sink(void (*sink)(void *arg, enum dkv_level level, const char *msg),
			 void *arg);

#endif
