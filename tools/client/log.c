/*
 * log.c - the log commands: dest (log every change to a file), save (a
 * one-shot dump) and stop.  Files are named as the server sees them: on
 * its machine, relative to its working directory.
 */
#include "client_int.h"

#include "client.h"

#include <getopt.h>
#include <string.h>

/* Send a log request and report: nothing on success, the server's
 * message on failure. */
static int log_request(struct dkv__cli_ctx *x, const struct dkv_buf *req, uint32_t nfields)
{
	struct dkv_buf rep = {0};
	int rc = dkv__cli_connect(x);
	if (rc == 0) {
		int r = dkv_client_call(x->conn, req->data, req->len, nfields, &rep);
		rc = r < 0 ? dkv__cli_request_failed(x, r) : 0;
	}
	dkv_buf_release(&rep);
	return rc;
}

static const char dest_usage[] = "log dest [-i] [--sync always|batch|none] FILE";

static int cmd_log_dest(struct dkv__cli_ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"incremental", no_argument, NULL, 'i'},
		{"sync", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool incremental = false;
	const char *sync = NULL;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+is:", lo, NULL)) != -1) {
		switch (ch) {
		case 'i':
			incremental = true;
			break;
		case 's':
			if (strcmp(optarg, "always") && strcmp(optarg, "batch") && strcmp(optarg, "none"))
				return dkv__cli_usage_error(x, dest_usage, "bad --sync '%s'", optarg);
			sync = optarg;
			break;
		case 'H':
			return dkv__cli_help(x, dest_usage,
				    "Make the server log every change to FILE (a path on the server's\n"
				    "machine, relative to its working directory), first writing the\n"
				    "complete current state unless -i (incremental) is given.  A log\n"
				    "that was open is closed once FILE holds everything.  --sync:\n"
				    "always (each change is on disk before its reply), batch (fsync\n"
				    "every server.log.interval, the default) or none.\n");
		default:
			return dkv__cli_usage_error(x, dest_usage, NULL, NULL);
		}
	}
	if (optind != argc - 1)
		return dkv__cli_usage_error(x, dest_usage, "exactly one FILE is needed%s", "");
	struct dkv_buf req = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "log");
	dkv_mp_cstr(&req, "path");
	dkv_mp_cstr(&req, argv[optind]);
	dkv__cli_put_bool(&req, "fetch", !incremental);
	if (sync) {
		dkv_mp_cstr(&req, "sync");
		dkv_mp_cstr(&req, sync);
	}
	int rc = log_request(x, &req, sync ? 4 : 3);
	dkv_buf_release(&req);
	return rc;
}

static const char save_usage[] = "log save [-f] FILE";

static int cmd_log_save(struct dkv__cli_ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"full", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool full = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+f", lo, NULL)) != -1) {
		if (ch == 'f') {
			full = true;
			continue;
		}
		if (ch == 'H')
			return dkv__cli_help(x, save_usage,
				    "Make the server write its current state to FILE (on the server's\n"
				    "machine) as a one-shot dump: written to a temporary file, synced,\n"
				    "then renamed into place.  -f: include the internal data.\n");
		return dkv__cli_usage_error(x, save_usage, NULL, NULL);
	}
	if (optind != argc - 1)
		return dkv__cli_usage_error(x, save_usage, "exactly one FILE is needed%s", "");
	struct dkv_buf req = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "save");
	dkv_mp_cstr(&req, "path");
	dkv_mp_cstr(&req, argv[optind]);
	dkv__cli_put_bool(&req, "full", full);
	int rc = log_request(x, &req, 3);
	dkv_buf_release(&req);
	return rc;
}

static const char stop_usage[] = "log stop";

static int cmd_log_stop(struct dkv__cli_ctx *x, int argc, char **argv)
{
	int hrc = dkv__cli_help_only(x, argc, argv, stop_usage,
			    "Make the server flush and close its change log.\n");
	if (hrc >= 0)
		return hrc;
	if (optind != argc)
		return dkv__cli_usage_error(x, stop_usage, "unexpected argument '%s'", argv[optind]);
	struct dkv_buf req = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "log");
	int rc = log_request(x, &req, 1);
	dkv_buf_release(&req);
	return rc;
}

const struct dkv__cli_cmd dkv__cli_log_cmds[] = {
	{"dest", cmd_log_dest, "log every change to a file"},
	{"save", cmd_log_save, "write the current state to a file"},
	{"stop", cmd_log_stop, "stop logging changes"},
	{NULL, NULL, NULL},
};
