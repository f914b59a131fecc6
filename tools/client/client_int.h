/*
 * client_int.h - what the files of tools/client/ share: the context of
 * one "distkv client" run, a command group's table, and the helpers every
 * command uses (client.c).  Every dkv__cli_ function is declared here,
 * once.
 *
 * A command group is one file (data.c, internal.c, log.c) that exports
 * its table of commands; client.c's table of groups names each table.
 */
#ifndef DKV_CLIENT_INT_H
#define DKV_CLIENT_INT_H

#include "cli.h"
#include "mp.h"

#include <stdbool.h>
#include <stdint.h>

#define EXIT_USAGE 2

struct dkv_client;

/* One run of "distkv client" (or "dkv"). */
struct dkv__cli_ctx {
	struct dkv_cli *cli;
	const char *cmdname; /* "distkv client" or "dkv", for usage lines */
	const char *host;
	unsigned port;
	struct dkv_client *conn; /* NULL until dkv__cli_connect */
};

/* One command of a group.  run gets the command's words with argv[0]
 * naming the whole command ("distkv client data get"), for getopt's
 * messages, and returns the exit status. */
struct dkv__cli_cmd {
	const char *name;
	int (*run)(struct dkv__cli_ctx *x, int argc, char **argv);
	const char *summary; /* one line in the group's --help */
};

/* The groups' tables, each ended by a row whose name is NULL. */
extern const struct dkv__cli_cmd dkv__cli_data_cmds[];
extern const struct dkv__cli_cmd dkv__cli_internal_cmds[];
extern const struct dkv__cli_cmd dkv__cli_log_cmds[];

/* ---- usage (client.c) ---- */

/* Print "usage: CMDNAME usage" to stderr, after "PROGNAME: fmt" when fmt
 * is not NULL (NULL: getopt has already said what is wrong); returns
 * EXIT_USAGE. */
int dkv__cli_usage_error(struct dkv__cli_ctx *x, const char *usage, const char *fmt,
			 const char *arg);
/* Print the usage line and text to stdout; returns 0. */
int dkv__cli_help(struct dkv__cli_ctx *x, const char *usage, const char *text);
/* For commands whose only option is --help.  Returns -1 to go on (the
 * words start at optind), else the exit status. */
int dkv__cli_help_only(struct dkv__cli_ctx *x, int argc, char **argv, const char *usage,
		       const char *text);
/* A decimal number; -EINVAL when s is anything else. */
int dkv__cli_parse_int(const char *s, long *v);
/* Command-line words as a path (element encodings back to back);
 * EXIT_USAGE after a message when a word is not colon notation. */
int dkv__cli_parse_path(struct dkv__cli_ctx *x, int argc, char **argv, struct dkv_buf *enc);

/* ---- requests (client.c) ---- */

/* Connect to the server; 0, or 1 after a message. */
int dkv__cli_connect(struct dkv__cli_ctx *x);
/* Report a failed request; returns 1. */
int dkv__cli_request_failed(struct dkv__cli_ctx *x, int r);
/* The exit status for a request's outcome: -EIO was already reported. */
int dkv__cli_request_status(struct dkv__cli_ctx *x, int r);
/* Request fields: the key, then the value. */
void dkv__cli_put_path(struct dkv_buf *req, const struct dkv_buf *path);
void dkv__cli_put_bool(struct dkv_buf *req, const char *key, bool v);
void dkv__cli_put_int(struct dkv_buf *req, const char *key, int64_t v);

/* ---- output (client.c) ---- */

/* Print the msgpack item mp[0..len) as one YAML document; 0, or 1 after
 * a message. */
int dkv__cli_print_yaml(struct dkv__cli_ctx *x, const uint8_t *mp, size_t len);
/* Print a reply map without its seq, like dkv__cli_print_yaml. */
int dkv__cli_print_reply(struct dkv__cli_ctx *x, const uint8_t *m, size_t n);
/* Append to out the pairs of the map m[0..n) whose key passes keep();
 * returns how many. */
uint32_t dkv__cli_copy_pairs(struct dkv_buf *out, const uint8_t *m, size_t n,
			     bool (*keep)(const struct dkv_mp_item *k));

/* ---- reading subtrees (data.c; internal dump uses it too) ---- */

struct dkv__cli_get_opts {
	const char *action; /* get_tree or get_tree_internal */
	const char *as_dict; /* NULL: one document per entry */
	bool meta, empty;
	long mindepth, maxdepth; /* -1: not given */
};

/* Ask for the subtree at path and print it as o says; the exit status. */
int dkv__cli_get_tree(struct dkv__cli_ctx *x, const struct dkv__cli_get_opts *o,
		      const struct dkv_buf *path);

#endif
