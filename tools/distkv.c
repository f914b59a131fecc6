/*
 * distkv.c - main() of the distkv and dkv programs: global options and
 * dispatch to the "server" and "client" subcommands.
 *
 * Invoked as "dkv" the program is "distkv client": the global options may
 * still come first ("dkv -C connect.port=1234 data get").
 */
#include "cli.h"

#include "distkv.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DKV_VERSION
#define DKV_VERSION "unknown"
#endif

/* Where the configuration is looked for when -c does not name a file:
 * the system's, then the user's; a key in a later file wins. */
#define SYSTEM_CONFIG "/etc/distkv/distkv.cfg"
#define USER_CONFIG ".config/distkv.cfg" /* below $XDG_CONFIG_HOME's parent, or $HOME */

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [-c FILE] [-C KEY=VALUE]... [-v|-q] COMMAND [ARGS...]\n"
		"\n"
		"Global options:\n"
		"  -c, --config FILE   read the configuration from this YAML file\n"
		"  -C, --set KEY=VALUE set one configuration value (repeatable)\n"
		"  -v, --verbose       say more (repeatable)\n"
		"  -q, --quiet         say less\n"
		"      --version       print the version and exit\n"
		"      --help          show this help\n"
		"\n"
		"Commands:\n"
		"  server   run a DistKV node\n"
		"  client   talk to a DistKV server\n"
		"\n"
		"Without -c the configuration is read from " SYSTEM_CONFIG " and then\n"
		"$XDG_CONFIG_HOME/distkv.cfg (default ~/" USER_CONFIG "), where they exist.\n"
		"\n"
		"Run \"%s COMMAND --help\" for a command's options.\n",
		prog, prog);
}

static void version(void)
{
	printf("distkv " DKV_VERSION "\n");
	exit(0);
}

void dkv_cli_getopt_reset(void)
{
	/* glibc: optind 0 re-initialises the scanner completely, which a
	 * plain optind = 1 does not when a previous scan stopped inside a
	 * cluster of short options. */
	optind = 0;
}

struct globals {
	const char *cfgfile;
	char **sets;
	int nsets;
};

/* Options accepted before the subcommand in "dkv" mode.  getopt cannot be
 * used here: the client's own options (-h HOST, ...) follow immediately
 * and must be left for the client's parser, so we take only the leading
 * words that are plainly global options. */
static int parse_dkv_globals(struct dkv_cli *cli, struct globals *g, int argc, char **argv)
{
	int i = 1;
	while (i < argc) {
		const char *a = argv[i];
		if ((!strcmp(a, "-c") || !strcmp(a, "-C")) && i + 1 < argc) {
			if (a[1] == 'c')
				g->cfgfile = argv[i + 1];
			else
				g->sets[g->nsets++] = argv[i + 1];
			i += 2;
		} else if (a[0] == '-' && (a[1] == 'c' || a[1] == 'C') && a[2]) {
			if (a[1] == 'c')
				g->cfgfile = a + 2;
			else
				g->sets[g->nsets++] = (char *)a + 2;
			i++;
		} else if (!strcmp(a, "--version")) {
			version();
		} else if (a[0] == '-' && a[1] && strspn(a + 1, "vq") == strlen(a + 1)) {
			for (const char *p = a + 1; *p; p++)
				cli->verbose = *p == 'q' ? -1 : cli->verbose + 1;
			i++;
		} else {
			break;
		}
	}
	return i;
}

static int parse_globals(struct dkv_cli *cli, struct globals *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"set", required_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'H'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	argv[0] = (char *)cli->progname; /* for getopt's messages */
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+c:C:vqh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			g->cfgfile = optarg;
			break;
		case 'C':
			g->sets[g->nsets++] = optarg;
			break;
		case 'v':
			cli->verbose++;
			break;
		case 'q':
			cli->verbose = -1;
			break;
		case 'h':
		case 'H':
			usage(stdout, cli->progname);
			exit(0);
		case 'V':
			version();
			break;
		default:
			usage(stderr, cli->progname);
			exit(2);
		}
	}
	return optind;
}

/* A default configuration file that exists is read; one that does not,
 * or that we cannot even see (another user's home: HOME kept by setpriv
 * or sudo), is skipped; one we see but cannot read or parse is an error,
 * as with -c. */
static int load_default(struct dkv_cli *cli, const char *path)
{
	char err[512];
	if (access(path, F_OK))
		return 0;
	if (dkv_config_load_file(cli->cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", cli->progname, err);
		return 2;
	}
	return 0;
}

static int load_config(struct dkv_cli *cli, const struct globals *g)
{
	char err[512];
	int rc;
	cli->cfg = dkv_config_new();
	if (g->cfgfile && dkv_config_load_file(cli->cfg, g->cfgfile, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", cli->progname, err);
		return 2;
	}
	if (!g->cfgfile) {
		const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
		char user[4096];
		if ((rc = load_default(cli, SYSTEM_CONFIG)))
			return rc;
		if (xdg && *xdg)
			snprintf(user, sizeof user, "%s/distkv.cfg", xdg);
		else if (home && *home)
			snprintf(user, sizeof user, "%s/" USER_CONFIG, home);
		else
			user[0] = 0;
		if (user[0] && (rc = load_default(cli, user)))
			return rc;
	}
	/* -C wins over the file wherever it stands on the command line. */
	for (int i = 0; i < g->nsets; i++) {
		if (dkv_config_set(cli->cfg, g->sets[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: bad -C %s: %s\n", cli->progname, g->sets[i], err);
			return 2;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct dkv_cli cli = {0};
	struct globals g = {0};
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	bool as_dkv = !strcmp(base, "dkv");
	cli.progname = as_dkv ? "dkv" : "distkv";
	g.sets = calloc((size_t)argc + 1, sizeof(*g.sets));
	if (!g.sets)
		return 1;

	int first = as_dkv ? parse_dkv_globals(&cli, &g, argc, argv) : parse_globals(&cli, &g, argc, argv);
	int rc;
	if (!as_dkv && first >= argc) {
		usage(stderr, cli.progname);
		rc = 2;
		goto out;
	}
	rc = load_config(&cli, &g);
	if (rc)
		goto out;

	if (as_dkv) {
		/* argv[first - 1] becomes the "client" word the subcommand expects. */
		char **sub = calloc((size_t)(argc - first) + 2, sizeof(*sub));
		if (!sub) {
			rc = 1;
			goto out;
		}
		sub[0] = "client";
		memcpy(sub + 1, argv + first, (size_t)(argc - first) * sizeof(*sub));
		rc = dkv_cli_client(&cli, argc - first + 1, sub);
		free(sub);
	} else if (!strcmp(argv[first], "client")) {
		rc = dkv_cli_client(&cli, argc - first, argv + first);
	} else if (!strcmp(argv[first], "server")) {
		rc = dkv_cli_server(&cli, argc - first, argv + first);
	} else {
		fprintf(stderr, "%s: unknown command '%s'\n", cli.progname, argv[first]);
		usage(stderr, cli.progname);
		rc = 2;
	}
out:
	fflush(stdout);
	dkv_config_free(cli.cfg);
	free(g.sets);
	return rc;
}
