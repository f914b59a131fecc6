/*
 * options.c - a command's options, parsed from a table, and the usage
 * messages and --help text made from the same table.
 *
 * Every command used to repeat the same getopt_long loop, its own
 * "struct option" list, a short-option string kept in step with it by
 * hand, and a help text that listed the options once more.  Here a
 * command writes one table (doc/cli.md is the user's side of it); getopt
 * still does the parsing, so its messages ("unrecognized option",
 * "option requires an argument") and its handling of abbreviations stay
 * those of glibc.
 */
#include "client_int.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

/* getopt_long's value for the long option of table row i: above every
 * short letter, so the two never mix. */
#define LONG_VAL(i) (256 + (int)(i))

int dkv__cli_usage_error(struct dkv__cli_ctx *x, const char *fmt, const char *arg)
{
	if (fmt) {
		fprintf(stderr, "%s: ", x->cli->progname);
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: %s %s\n", x->cmdname, x->cmd->usage);
	return EXIT_USAGE;
}

void dkv__cli_print_opts(FILE *f, const struct dkv__cli_opt *opts, int col)
{
	for (const struct dkv__cli_opt *o = opts; o->name; o++) {
		if (!o->help)
			continue;
		int w = o->letter ? fprintf(f, "  -%c, --%s", o->letter, o->name)
				  : fprintf(f, "      --%s", o->name);
		if (o->arg)
			w += fprintf(f, " %s", o->arg);
		fprintf(f, "%*s", w < col ? col - w : 1, "");
		for (const char *p = o->help; *p; p++) {
			fputc(*p, f);
			if (*p == '\n')
				fprintf(f, "%*s", col, "");
		}
		fputc('\n', f);
	}
}

/* --help: to stdout, returns 0. */
static int help(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts)
{
	const struct dkv__cli_cmd *cmd = x->cmd;
	bool listed = false;
	if (cmd->print_usage) {
		cmd->print_usage(x, opts, stdout);
		return 0;
	}
	printf("usage: %s %s\n\n%s", x->cmdname, cmd->usage, cmd->about);
	for (const struct dkv__cli_opt *o = opts; o->name; o++)
		listed = listed || o->help;
	if (listed) {
		putchar('\n');
		dkv__cli_print_opts(stdout, opts, cmd->help_col);
	}
	return 0;
}

/* After getopt has said what is wrong: to stderr, returns EXIT_USAGE. */
static int bad_usage(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts)
{
	if (x->cmd->print_usage) {
		x->cmd->print_usage(x, opts, stderr);
		return EXIT_USAGE;
	}
	return dkv__cli_usage_error(x, NULL, NULL);
}

/* Do what the table says for one option; 0, or the exit status. */
static int apply(struct dkv__cli_ctx *x, const struct dkv__cli_opt *o, int argc, char **argv)
{
	const char *arg = o->arg ? optarg : NULL;
	if (o->flag)
		*o->flag = true;
	if (o->str)
		*o->str = arg;
	if (o->num && dkv__cli_parse_int(arg, o->num) < 0)
		return dkv__cli_usage_error(x, "not a number: '%s'", arg);
	if (o->fn) {
		struct dkv__cli_optarg a = {
			.x = x, .arg = arg, .data = o->data, .argc = argc, .argv = argv};
		return o->fn(&a);
	}
	return 0;
}

/* The row getopt_long's ch stands for; NULL: --help or an error. */
static const struct dkv__cli_opt *find(const struct dkv__cli_opt *opts, size_t n, int ch)
{
	for (size_t i = 0; i < n; i++)
		if (ch == LONG_VAL(i) || (opts[i].letter && ch == opts[i].letter))
			return &opts[i];
	return NULL;
}

int dkv__cli_options(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts, int argc,
		     char **argv)
{
	size_t n = 0;
	while (opts[n].name)
		n++;
	/* "+": stop at the first word that is not an option; the path follows. */
	char *shorts = dkv_xmalloc(2 * n + 2);
	size_t ns = 0;
	shorts[ns++] = '+';
	struct option *lo = dkv_xcalloc(n + 2, sizeof(*lo));
	for (size_t i = 0; i < n; i++) {
		int has_arg = opts[i].arg ? required_argument : no_argument;
		lo[i] = (struct option){opts[i].name, has_arg, NULL, LONG_VAL(i)};
		if (opts[i].letter) {
			shorts[ns++] = opts[i].letter;
			if (has_arg)
				shorts[ns++] = ':';
		}
	}
	shorts[ns] = '\0';
	lo[n] = (struct option){"help", no_argument, NULL, LONG_VAL(n)};

	int rc = -1;
	int ch;
	dkv_cli_getopt_reset();
	while (rc < 0 && (ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const struct dkv__cli_opt *o = find(opts, n, ch);
		if (o) {
			int r = apply(x, o, argc, argv);
			if (r)
				rc = r;
		} else if (ch == LONG_VAL(n)) {
			rc = help(x, opts);
		} else {
			rc = bad_usage(x, opts);
		}
	}
	free(lo);
	free(shorts);
	return rc;
}
