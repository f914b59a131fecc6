/*
 * cli.h - what the subcommands of the distkv program share.
 *
 * distkv.c parses the global options (-c, -C, -v, -q), builds the
 * configuration and hands the rest of the command line to one
 * subcommand.  Each subcommand parses its own options with getopt_long
 * and returns the process exit status: 0 success, 1 failure (a message
 * was printed), 2 bad usage.
 */
#ifndef DKV_CLI_H
#define DKV_CLI_H

struct dkv_config;

struct dkv_cli {
	struct dkv_config *cfg;
	int verbose; /* -1 with -q, 0 default, +1 per -v */
	const char *progname; /* for messages: "distkv" or "dkv" */
};

/* argv[0] == "server" */
int dkv_cli_server(struct dkv_cli *cli, int argc, char **argv);
/* argv[0] == "client" */
int dkv_cli_client(struct dkv_cli *cli, int argc, char **argv);

/* Reset getopt so that the next getopt_long() call parses a new argv. */
void dkv_cli_getopt_reset(void);

#endif
