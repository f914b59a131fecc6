/*
 * report.c - messages of a running node (report.h).
 */
#include "report.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static _Atomic int max_level = DKV_REPORT_INFO;
/* set before threads start (at the node's start), read by any thread */
static void (*sink_fn)(void *arg, enum dkv_level level, const char *msg);
static void *sink_arg;

void dkv_report_set_level(enum dkv_level level)
{
	max_level = level;
}

void dkv_report_set_sink(void (*sink)(void *arg, enum dkv_level level, const char *msg),
			 void *arg)
{
	sink_fn = sink;
	sink_arg = arg;
}

void dkv_report(enum dkv_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if ((int)level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (sink_fn) {
		sink_fn(sink_arg, level, msg);
		return;
	}
	/* one fprintf: stdio locks the stream, so lines of threads do not mix */
	fprintf(stderr, "distkv: %s%s\n", level == DKV_REPORT_WARNING ? "warning: " : "", msg);
}
