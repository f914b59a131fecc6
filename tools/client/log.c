/*
 * log.c - the log commands: dest (log every change to a file), save (a
 * one-shot dump) and stop.  Files are named as the server sees them: on
 * its machine, relative to its working directory.  Nothing is printed
 * on success.
 */
#include "client_int.h"

#include "distkv.h"
#include "progress.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static int opt_sync(const struct dkv__cli_optarg *a)
{
	if (strcmp(a->arg, "always") && strcmp(a->arg, "batch") && strcmp(a->arg, "none"))
		return dkv__cli_usage_error(a->x, "bad --sync '%s'", a->arg);
	return 0;
}

static int cmd_log_dest(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool incremental = false;
	const char *sync = NULL;
	const struct dkv__cli_opt opts[] = {
		{.name = "incremental", .letter = 'i', .flag = &incremental},
		{.name = "sync", .letter = 's', .arg = "MODE", .str = &sync, .fn = opt_sync},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return dkv__cli_usage_error(x, "exactly one FILE is needed%s", "");
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "log");
	dkv__cli_req_str(&q, "path", argv[optind]);
	dkv__cli_req_bool(&q, "fetch", !incremental);
	if (sync)
		dkv__cli_req_str(&q, "sync", sync);
	rc = dkv__cli_call(x, &q, NULL);
	dkv__cli_req_release(&q);
	return rc;
}

static const struct dkv__cli_cmd dest_cmd = {
	.name = "dest", .run = cmd_log_dest, .summary = "log every change to a file",
	.usage = "log dest [-i] [--sync always|batch|none] FILE",
	.about = "Make the server log every change to FILE (a path on the server's\n"
		 "machine, relative to its working directory), first writing the\n"
		 "complete current state unless -i (incremental) is given.  A log\n"
		 "that was open is closed once FILE holds everything.  --sync:\n"
		 "always (each change is on disk before its reply), batch (fsync\n"
		 "every server.log.interval, the default) or none.\n",
};

/* A progress report of the server's (act_log.c): {entries, bytes}.  The
 * one reply of a server that sends none has neither. */
static int save_progress(void *arg, const uint8_t *m, size_t n)
{
	struct dkv_progress *p = arg;
	int64_t entries, bytes;
	if (!dkv_client_field_int(m, n, "entries", &entries) &&
	    !dkv_client_field_int(m, n, "bytes", &bytes) && entries >= (int64_t)p->n &&
	    bytes >= (int64_t)p->bytes)
		dkv_progress_add(p, (uint64_t)entries - p->n, (uint64_t)bytes - p->bytes);
	return 0;
}

static int cmd_log_save(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool full = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "full", .letter = 'f', .flag = &full},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return dkv__cli_usage_error(x, "exactly one FILE is needed%s", "");
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "save");
	dkv__cli_req_str(&q, "path", argv[optind]);
	dkv__cli_req_bool(&q, "full", full);
	/* on a terminal, the server reports as it writes (OUR EXTENSION);
	 * elsewhere the request is the original's */
	struct dkv_progress prog;
	char what[200];
	snprintf(what, sizeof what, "saving %s", argv[optind]);
	dkv_progress_start(&prog, what, "entries");
	if (prog.on) {
		dkv__cli_req_bool(&q, "progress", true);
		rc = dkv__cli_stream(x, &q, save_progress, &prog);
	} else {
		rc = dkv__cli_call(x, &q, NULL);
	}
	dkv_progress_end(&prog);
	dkv__cli_req_release(&q);
	return rc;
}

static const struct dkv__cli_cmd save_cmd = {
	.name = "save", .run = cmd_log_save, .summary = "write the current state to a file",
	.usage = "log save [-f] FILE",
	.about = "Make the server write its current state to FILE (on the server's\n"
		 "machine) as a one-shot dump: written to a temporary file, synced,\n"
		 "then renamed into place.  -f: include the internal data.  On a\n"
		 "terminal, standard error shows the entries and bytes written so far.\n",
};

static int cmd_log_stop(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind != argc)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "log");
	rc = dkv__cli_call(x, &q, NULL);
	dkv__cli_req_release(&q);
	return rc;
}

static const struct dkv__cli_cmd stop_cmd = {
	.name = "stop", .run = cmd_log_stop, .summary = "stop logging changes",
	.usage = "log stop",
	.about = "Make the server flush and close its change log.\n",
};

const struct dkv__cli_cmd *const dkv__cli_log_cmds[] = {&dest_cmd, &save_cmd, &stop_cmd, NULL};
