/*
 * client_int.h - what the files of tools/client/ share: the context of
 * one "distkv client" run, commands and their option tables (options.c),
 * and the helpers every command uses (client.c).  Every dkv__cli_
 * function is declared here, once.
 *
 * A command group is one file (data.c, internal.c, log.c) that exports
 * its table of commands; client.c's table of groups names each table.
 * A command starts with its option table and dkv__cli_options, and is
 * described (usage line, help text) by its struct dkv__cli_cmd.
 */
#ifndef DKV_CLIENT_INT_H
#define DKV_CLIENT_INT_H

#include "cli.h"
#include "distkv.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define EXIT_USAGE 2

struct dkv__cli_cmd;

/* One run of "distkv client" (or "dkv"). */
struct dkv__cli_ctx {
	struct dkv_cli *cli;
	const char *cmdname; /* "distkv client" or "dkv", for usage lines */
	const struct dkv__cli_cmd *cmd; /* the command being run, for usage lines */
	const struct dkv__cli_group *group; /* the group being run, for its usage */
	const char *method; /* "auth -m METHOD"; NULL: not given */
	const char *node;   /* "run -n NODE" ("-": all nodes); NULL: not given */
	const char *host;
	unsigned port;
	struct dkv_client *conn; /* NULL until the first request */
	struct dkv_auth_spec *auth; /* -a or connect.auth, parsed; NULL: none */
	const char *auth_text;      /* the same as given (for the runner); NULL: none */
	bool json; /* -o json / --json: dkv__cli_print writes JSON, not YAML */
};

/* ---- options (options.c) ---- */

/* What an option's fn gets. */
struct dkv__cli_optarg {
	struct dkv__cli_ctx *x;
	const char *arg; /* the option's argument; NULL when it takes none */
	void *data;      /* the table row's data */
	int argc;        /* the command's words, for an option that takes */
	char **argv;     /* more than one: argv[optind] is the next word */
};

/* One option of a command.  A command's table is usually a local array
 * pointing at the command's variables; it ends with a row whose name is
 * NULL, and --help is added to it.  For each option given, in this
 * order: *flag becomes true, *str gets the argument, *num gets it as a
 * decimal number ("not a number" is a usage error), fn is called. */
struct dkv__cli_opt {
	const char *name; /* the long name, without "--" */
	char letter;      /* the short name; 0: none */
	const char *arg;  /* the argument's name in --help ("KEY"); NULL: no argument */
	bool *flag;
	const char **str;
	long *num;
	int (*fn)(const struct dkv__cli_optarg *a); /* 0, or an exit status after a message */
	void *data;       /* for fn */
	const char *help; /* the description in --help ("\n" goes on in the same column);
			     NULL: the option is not listed */
};

/* One command of a group.  run gets the command's words with argv[0]
 * naming the whole command ("distkv client data get"), for getopt's
 * messages, and returns the exit status. */
struct dkv__cli_cmd {
	const char *name;
	int (*run)(struct dkv__cli_ctx *x, int argc, char **argv);
	const char *summary; /* one line in the group's --help */
	const char *usage;   /* after the command name: "data list [PATH...]" */
	const char *about;   /* --help: what the command does, before its options */
	int help_col;        /* --help: the column where the options' descriptions start */
	/* Only for the client's own options: prints the whole help, to
	 * stdout for --help and to stderr after a usage error. */
	void (*print_usage)(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts, FILE *f);
};

/* A group of commands: "data", "auth", "auth user". */
struct dkv__cli_group {
	const char *name; /* the words before the command: "data", "auth user" */
	const struct dkv__cli_cmd *const *cmds;
	const char *summary; /* one line in the enclosing --help */
	/* A group with options of its own before the command ("auth -m
	 * METHOD user list") parses them and then calls dkv__cli_run_group;
	 * NULL: dkv__cli_run_group at once.  argv[0] is the group's name. */
	int (*run)(struct dkv__cli_ctx *x, const struct dkv__cli_group *g, int argc, char **argv);
	const char *usage;  /* after the command name; NULL: "NAME COMMAND [OPTIONS] [PATH...]" */
	const char *footer; /* after the list of commands; NULL: a word on PATH */
};

/* The groups' tables, each ended by a NULL. */
extern const struct dkv__cli_cmd *const dkv__cli_data_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_internal_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_log_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_auth_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_acl_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_codec_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_type_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_code_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_error_cmds[];
extern const struct dkv__cli_cmd *const dkv__cli_run_cmds[];

/* auth.c: the auth group's own options (-m), then its commands. */
int dkv__cli_auth_run(struct dkv__cli_ctx *x, const struct dkv__cli_group *g, int argc,
		      char **argv);

/* run.c: the run group's own options (-n), then its commands. */
int dkv__cli_run_run(struct dkv__cli_ctx *x, const struct dkv__cli_group *g, int argc,
		     char **argv);

/* Run the command argv[1] of group g with the words after it (argv[0]
 * is the group's name); --help, -h and no command print the group's
 * usage.  Returns the exit status. */
int dkv__cli_run_group(struct dkv__cli_ctx *x, const struct dkv__cli_group *g, int argc,
		       char **argv);
/* The group's usage and its list of commands. */
void dkv__cli_group_usage(struct dkv__cli_ctx *x, FILE *f, const struct dkv__cli_group *g);

/* Parse the options at the start of argv[1..argc) by the table opts, for
 * the command x->cmd.  Returns -1 when the command goes on with the words
 * from optind, else the exit status to return at once: 0 after --help, 2
 * after a usage error (the message printed), or what an fn returned. */
int dkv__cli_options(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts, int argc,
		     char **argv);
/* Print "usage: CMDNAME USAGE" to stderr, after "PROGNAME: fmt" when fmt
 * is not NULL; returns EXIT_USAGE. */
int dkv__cli_usage_error(struct dkv__cli_ctx *x, const char *fmt, const char *arg);
/* The listed options of a table, one or more lines each, the
 * descriptions starting in column col. */
void dkv__cli_print_opts(FILE *f, const struct dkv__cli_opt *opts, int col);

/* ---- words (client.c) ---- */

/* A decimal number; -EINVAL when s is anything else. */
int dkv__cli_parse_int(const char *s, long *v);
/* Command-line words as a path (element encodings back to back);
 * EXIT_USAGE after a message when a word is not colon notation. */
int dkv__cli_parse_path(struct dkv__cli_ctx *x, int argc, char **argv, struct dkv_buf *enc);

/* The words joined by spaces, for messages ("wom #"); empty when there
 * are none.  The caller frees it. */
char *dkv__cli_words_text(int argc, char **argv, const char *empty);
/* All of f into out; 0, or 1 after a message naming what. */
int dkv__cli_read_all(struct dkv__cli_ctx *x, FILE *f, const char *what, struct dkv_buf *out);
/* All of the file name ("-": standard input) into out; 0, or 1 after a
 * message. */
int dkv__cli_read_file(struct dkv__cli_ctx *x, const char *name, struct dkv_buf *out);

/* ---- secrets (secret.c) ---- */

/* Ask for a secret: "PROMPT: " on the terminal without echo, or one line
 * of standard input when it is not a terminal.  0 with *out (malloc'd;
 * the caller wipes and frees it), or 1 after a message. */
int dkv__cli_ask_secret(struct dkv__cli_ctx *x, const char *prompt, char **out);

/* ---- requests (client.c) ---- */

/* A request being written: its fields (key, value) back to back, and
 * how many there are, as dkv_client_call and dkv_client_stream want them. */
struct dkv__cli_req {
	struct dkv_buf fields;
	uint32_t n;
};

/* Start a request: its first field is action. */
void dkv__cli_req_init(struct dkv__cli_req *q, const char *action);
void dkv__cli_req_release(struct dkv__cli_req *q);
/* Add a field whose value the caller then writes into the returned
 * buffer, as one msgpack item. */
struct dkv_buf *dkv__cli_req_key(struct dkv__cli_req *q, const char *key);
void dkv__cli_req_str(struct dkv__cli_req *q, const char *key, const char *v);
void dkv__cli_req_bool(struct dkv__cli_req *q, const char *key, bool v);
void dkv__cli_req_int(struct dkv__cli_req *q, const char *key, int64_t v);
/* The field "path" (element encodings back to back, as from
 * dkv__cli_parse_path). */
void dkv__cli_req_path(struct dkv__cli_req *q, const struct dkv_buf *path);

/* Send q and wait for its one reply (dkv_client_call; reply may be NULL
 * when only success matters), connecting first when not connected yet.
 * 0, or 1 after a message: the server's words, or what went wrong with
 * the connection. */
int dkv__cli_call(struct dkv__cli_ctx *x, const struct dkv__cli_req *q, struct dkv_buf *reply);
/* The same for a request answered by a stream (dkv_client_stream).  cb
 * returns -EIO after it has reported a failure itself. */
int dkv__cli_stream(struct dkv__cli_ctx *x, const struct dkv__cli_req *q, dkv_client_cb cb,
		    void *arg);

/* One entry, by the action's name: "get_value" or "get_internal".  The
 * value's msgpack is appended to *value (nothing when the entry has
 * none) and, when chain is not NULL, its newest chain link to *chain.
 * 0, or 1 after a message. */
int dkv__cli_get(struct dkv__cli_ctx *x, const char *action, const struct dkv_buf *path,
		 struct dkv_buf *value, struct dkv_buf *chain);
/* Delete one value ("delete_value" or "delete_internal"); *changed says
 * whether there was one.  0, or 1 after a message. */
int dkv__cli_delete(struct dkv__cli_ctx *x, const char *action, const struct dkv_buf *path,
		    bool *changed);
/* Whether the entry at path has children, with or without values
 * ("enum" or "enum_internal", which answer for a missing entry too).  0,
 * or 1 after a message. */
int dkv__cli_has_children(struct dkv__cli_ctx *x, const char *action, const struct dkv_buf *path,
			  bool *yes);

/* ---- output (client.c) ---- */

/* The two option rows of a command that can print JSON (-o FMT and
 * --json, which set x->json), for its option table:
 *     DKV__CLI_OUTPUT_OPTS(x),  */
#define DKV__CLI_OUTPUT_OPTS(x)                                                         \
	{.name = "output", .letter = 'o', .arg = "FMT", .fn = dkv__cli_opt_output,         \
	 .data = (x), .help = "yaml (the default) or json (doc/formats.md)"},               \
	{.name = "json", .flag = &(x)->json, .help = "the same as -o json"}
/* -o FMT: "yaml" or "json" into x->json (the row's data); 0, or
 * EXIT_USAGE after a message. */
int dkv__cli_opt_output(const struct dkv__cli_optarg *a);

/* Print the msgpack item mp[0..len) as one YAML document; 0, or 1 after
 * a message. */
int dkv__cli_print_yaml(struct dkv__cli_ctx *x, const uint8_t *mp, size_t len);
/* The same as YAML or, with x->json, as one line of JSON (a document of
 * its own, or one of a stream of JSON lines). */
int dkv__cli_print(struct dkv__cli_ctx *x, const uint8_t *mp, size_t len);
/* Print a reply map without its seq, like dkv__cli_print. */
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
