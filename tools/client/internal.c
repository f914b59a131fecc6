/*
 * internal.c - the internal commands: dump (the tree below the None root
 * element: users, ACLs, code, ...) and state (the replication
 * bookkeeping, the change log's and the network's health).
 */
#include "client_int.h"

#include "client.h"

#include <getopt.h>
#include <stdio.h>

static const char dump_usage[] = "internal dump [PATH...]";

static int cmd_dump(struct dkv__cli_ctx *x, int argc, char **argv)
{
	int hrc = dkv__cli_help_only(x, argc, argv, dump_usage,
			    "Print the internal tree below PATH as one nested mapping\n"
				    "(like \"data get -rd_\"), values under the key \"_\".\n");
	if (hrc >= 0)
		return hrc;
	struct dkv__cli_get_opts o = {
		.action = "get_tree_internal", .as_dict = "_", .mindepth = -1, .maxdepth = -1};
	struct dkv_buf path = {0};
	int rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = dkv__cli_connect(x);
	if (rc == 0)
		rc = dkv__cli_get_tree(x, &o, &path);
	dkv_buf_release(&path);
	return rc;
}

static const char state_usage[] =
	"internal state [--nodes] [--known] [--current] [--missing] [--remote-missing] [--deleted]\n"
	"       [--log] [--cluster]";

static int cmd_state(struct dkv__cli_ctx *x, int argc, char **argv)
{
	static const char *const flags[] = {"nodes",	      "known",	 "current", "missing",
					    "remote_missing", "deleted", "log",	  "cluster"};
	enum { NFLAGS = sizeof(flags) / sizeof(flags[0]) };
	static const struct option lo[] = {
		{"nodes", no_argument, NULL, 0},
		{"known", no_argument, NULL, 1},
		{"current", no_argument, NULL, 2},
		{"missing", no_argument, NULL, 3},
		{"remote-missing", no_argument, NULL, 4},
		{"deleted", no_argument, NULL, 5},
		{"log", no_argument, NULL, 6},
		{"cluster", no_argument, NULL, 7},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool want[NFLAGS] = {false};
	bool any = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		if (ch >= 0 && ch < NFLAGS) {
			want[ch] = any = true;
			continue;
		}
		if (ch == 'H')
			return dkv__cli_help(x, state_usage,
				    "Print the server's replication state as YAML (every part when\n"
				    "no option is given).  --log: the change log's health (path,\n"
				    "sync mode, state, records, bytes, syncs, errors, last_error).\n"
				    "--cluster: the network (root, ready, the Serf agent, each peer's\n"
				    "address, link state and errors, conflicts, missing ticks).\n");
		return dkv__cli_usage_error(x, state_usage, NULL, NULL);
	}
	if (optind < argc)
		return dkv__cli_usage_error(x, state_usage, "unexpected argument '%s'", argv[optind]);
	struct dkv_buf req = {0}, rep = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "get_state");
	for (int i = 0; i < NFLAGS; i++)
		dkv__cli_put_bool(&req, flags[i], want[i] || !any);
	int rc = dkv__cli_connect(x);
	if (rc == 0) {
		int r = dkv_client_call(x->conn, req.data, req.len, 1 + NFLAGS, &rep);
		rc = r < 0 ? dkv__cli_request_failed(x, r) : dkv__cli_print_reply(x, rep.data, rep.len);
	}
	dkv_buf_release(&req);
	dkv_buf_release(&rep);
	return rc;
}

const struct dkv__cli_cmd dkv__cli_internal_cmds[] = {
	{"dump", cmd_dump, "print the internal tree"},
	{"state", cmd_state, "print the replication state"},
	{NULL, NULL, NULL},
};
