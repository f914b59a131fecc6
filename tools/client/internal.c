/*
 * internal.c - the internal commands: dump (the tree below the None root
 * element: users, ACLs, code, ...) and state (the replication
 * bookkeeping, the change log's and the network's health).
 */
#include "client_int.h"

#include "distkv.h"

#include <getopt.h>
#include <stdio.h>

static int cmd_dump(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {DKV__CLI_OUTPUT_OPTS(x), {NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv__cli_get_opts o = {
		.action = "get_tree_internal", .as_dict = "_", .mindepth = -1, .maxdepth = -1};
	struct dkv_buf path = {0};
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = dkv__cli_get_tree(x, &o, &path);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd dump_cmd = {
	.name = "dump", .run = cmd_dump, .summary = "print the internal tree",
	.usage = "internal dump [-o FMT] [PATH...]",
	.about = "Print the internal tree below PATH as one nested mapping\n"
		 "(like \"data get -rd_\"), values under the key \"_\".\n",
	.help_col = 20,
};

/* The parts of the state, as get_state names them; the options say
 * remote-missing for remote_missing. */
enum { NODES, KNOWN, CURRENT, MISSING, REMOTE_MISSING, DELETED, LOG, CLUSTER, NPARTS };
static const char *const parts[NPARTS] = {
	[NODES] = "nodes",
	[KNOWN] = "known",
	[CURRENT] = "current",
	[MISSING] = "missing",
	[REMOTE_MISSING] = "remote_missing",
	[DELETED] = "deleted",
	[LOG] = "log",
	[CLUSTER] = "cluster",
};

static int cmd_state(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool want[NPARTS] = {false};
	const struct dkv__cli_opt opts[] = {
		{.name = "nodes", .flag = &want[NODES]},
		{.name = "known", .flag = &want[KNOWN]},
		{.name = "current", .flag = &want[CURRENT]},
		{.name = "missing", .flag = &want[MISSING]},
		{.name = "remote-missing", .flag = &want[REMOTE_MISSING]},
		{.name = "deleted", .flag = &want[DELETED]},
		{.name = "log", .flag = &want[LOG]},
		{.name = "cluster", .flag = &want[CLUSTER]},
		DKV__CLI_OUTPUT_OPTS(x),
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
	bool any = false;
	for (int i = 0; i < NPARTS; i++)
		any = any || want[i];
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	dkv__cli_req_init(&q, "get_state");
	for (int i = 0; i < NPARTS; i++)
		dkv__cli_req_bool(&q, parts[i], want[i] || !any);
	rc = dkv__cli_call(x, &q, &rep);
	if (rc == 0)
		rc = dkv__cli_print_reply(x, rep.data, rep.len);
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

static const struct dkv__cli_cmd state_cmd = {
	.name = "state", .run = cmd_state, .summary = "print the replication state",
	.usage = "internal state [--nodes] [--known] [--current] [--missing] [--remote-missing]"
		 " [--deleted]\n       [--log] [--cluster] [-o FMT]",
	.about = "Print the server's replication state as YAML or JSON (every part when\n"
		 "no option is given).  --log: the change log's health (path,\n"
		 "sync mode, state, records, bytes, syncs, errors, last_error).\n"
		 "--cluster: the network (root, ready, the Serf agent, each peer's\n"
		 "address, link state and errors, conflicts, missing ticks).\n",
	.help_col = 20,
};

const struct dkv__cli_cmd *const dkv__cli_internal_cmds[] = {&dump_cmd, &state_cmd, NULL};
