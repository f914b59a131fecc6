/*
 * codec.c - the codec commands: set, get, list, delete and convert.
 *
 * A codec NAME... is the internal entry (codec, NAME...) holding
 * {encode, decode, in, out}; a converter NAME binds codecs to data paths
 * as the entries (conv, NAME, PATH...) holding {codec: [NAME...]}
 * (engine/codec.h).  The server checks both when they are stored (the
 * scripts compile, the samples give their results, the codec exists),
 * so these commands only build the records and print them.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- words and files ---- */

/* The internal path (ROOT, words...); 0 or EXIT_USAGE after a message. */
static int int_path(struct dkv__cli_ctx *x, const char *root, int argc, char **argv,
		    struct dkv_buf *path)
{
	dkv_mp_cstr(path, root);
	return dkv__cli_parse_path(x, argc, argv, path);
}

/* A path's elements as words ("monitor # value"). */
static void path_words(struct dkv_buf *out, const uint8_t *enc, size_t len)
{
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	bool first = true;
	dkv_path_iter_init(&it, enc, len);
	while (dkv_path_iter_next(&it, &el, &elen)) {
		if (!first)
			dkv_buf_putc(out, ' ');
		dkv_pathtext_format(out, el, elen, 0);
		first = false;
	}
}

/* The script for one direction: from FILE, or typed after a prompt
 * (to the end of input, ^D). */
static int script(struct dkv__cli_ctx *x, const char *file, const char *dir, struct dkv_buf *out)
{
	if (file)
		return dkv__cli_read_file(x, file, out);
	if (isatty(STDIN_FILENO)) {
		printf("Enter the Python script to %s 'value'.\n", dir);
		fflush(stdout);
	}
	int rc = dkv__cli_read_all(x, stdin, "standard input", out);
	clearerr(stdin); /* a terminal reads again after ^D */
	return rc;
}

/* ---- -i IN OUT, -o IN OUT ---- */

struct samples {
	struct dkv_buf mp; /* [IN, OUT] pairs, back to back */
	uint32_t n;
};

/* An option with two words: the option's argument and the next word. */
static int opt_sample(const struct dkv__cli_optarg *a)
{
	struct samples *s = a->data;
	char err[256];
	if (optind >= a->argc)
		return dkv__cli_usage_error(a->x, "%s", "a sample is two values: IN OUT");
	const char *in = a->arg, *out = a->argv[optind++];
	dkv_mp_array(&s->mp, 2);
	const char *bad = in;
	if (dkv_py_literal_eval(&s->mp, in, err, sizeof err) == 0) {
		bad = out;
		if (dkv_py_literal_eval(&s->mp, out, err, sizeof err) == 0) {
			s->n++;
			return 0;
		}
	}
	fprintf(stderr, "%s: sample '%s': %s\n", a->x->cli->progname, bad, err);
	return dkv__cli_usage_error(a->x, NULL, NULL);
}

/* ---- codec set ---- */

static int cmd_set(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const char *encfile = NULL, *decfile = NULL;
	struct samples in = {0}, out = {0};
	const struct dkv__cli_opt opts[] = {
		{.name = "in", .letter = 'i', .arg = "IN OUT", .fn = opt_sample, .data = &in,
		 .help = "a decoding sample: decode(IN) == OUT\n(Python literals; give one or more)"},
		{.name = "out", .letter = 'o', .arg = "IN OUT", .fn = opt_sample, .data = &out,
		 .help = "an encoding sample: encode(IN) == OUT"},
		{.name = "encode", .letter = 'e', .arg = "FILE", .str = &encfile,
		 .help = "the encoding script ('-': standard input)"},
		{.name = "decode", .letter = 'd', .arg = "FILE", .str = &decfile,
		 .help = "the decoding script"},
		{NULL},
	};
	struct dkv_buf path = {0}, enc = {0}, dec = {0};
	struct dkv__cli_req q = {0};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		goto out;
	if (optind >= argc) {
		rc = dkv__cli_usage_error(x, "%s", "missing the codec's NAME");
		goto out;
	}
	if (!in.n || !out.n) {
		rc = dkv__cli_usage_error(x, "%s", in.n ? "missing encoding samples (-o IN OUT)"
						     : "missing decoding samples (-i IN OUT)");
		goto out;
	}
	int from_stdin = !encfile + !decfile + (encfile && !strcmp(encfile, "-")) +
			 (decfile && !strcmp(decfile, "-"));
	if (from_stdin > 1 && !isatty(STDIN_FILENO)) {
		/* nothing would say where the first script ends */
		rc = dkv__cli_usage_error(
			x, "%s", "standard input is not a terminal: give the scripts with -e FILE and -d FILE");
		goto out;
	}
	if ((rc = int_path(x, "codec", argc - optind, argv + optind, &path)) ||
	    (rc = script(x, encfile, "encode", &enc)) || (rc = script(x, decfile, "decode", &dec)))
		goto out;
	dkv__cli_req_init(&q, "set_internal");
	dkv__cli_req_path(&q, &path);
	struct dkv_buf *b = dkv__cli_req_key(&q, "value");
	dkv_mp_map(b, 4);
	dkv_mp_cstr(b, "encode");
	dkv_mp_str(b, enc.data, enc.len);
	dkv_mp_cstr(b, "decode");
	dkv_mp_str(b, dec.data, dec.len);
	dkv_mp_cstr(b, "in");
	dkv_mp_array(b, in.n);
	dkv_buf_append(b, in.mp.data, in.mp.len);
	dkv_mp_cstr(b, "out");
	dkv_mp_array(b, out.n);
	dkv_buf_append(b, out.mp.data, out.mp.len);
	rc = dkv__cli_call(x, &q, NULL);
out:
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&enc);
	dkv_buf_release(&dec);
	dkv_buf_release(&in.mp);
	dkv_buf_release(&out.mp);
	return rc;
}

static const struct dkv__cli_cmd set_cmd = {
	.name = "set", .run = cmd_set, .summary = "store a codec",
	.usage = "codec set -i IN OUT... -o IN OUT... [-e FILE] [-d FILE] NAME...",
	.about = "Store the codec NAME...: a script that encodes `value` for the users of\n"
		 "a converter and one that decodes what they send, each a procedure body\n"
		 "(\"return str(value)\").  Without -e/-d the scripts are typed after a\n"
		 "prompt, each up to end of input (^D); when standard input is not a\n"
		 "terminal, give -e and -d (one of them may be '-').  The server stores\n"
		 "the codec only when every sample gives its OUT.\n",
	.help_col = 22,
};

/* ---- codec get ---- */

/* Write the string at key of the map rec to file; 0 or 1. */
static int save_script(struct dkv__cli_ctx *x, const uint8_t *rec, size_t len, const char *key,
		       const char *file)
{
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it = {.type = DKV_MP_NIL};
	if (dkv_client_field(rec, len, key, &v, &vlen) == 0) {
		dkv_mp_reader_init(&r, v, vlen);
		if (dkv_mp_read(&r, &it) < 0)
			it.type = DKV_MP_NIL;
	}
	FILE *f = strcmp(file, "-") ? fopen(file, "w") : stdout;
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", x->cli->progname, file, strerror(errno));
		return 1;
	}
	if (it.type == DKV_MP_STR)
		fwrite(it.v.s.p, 1, it.v.s.len, f);
	int bad = ferror(f);
	if (f != stdout)
		bad |= fclose(f);
	if (bad) {
		fprintf(stderr, "%s: cannot write %s\n", x->cli->progname, file);
		return 1;
	}
	return 0;
}

static bool not_saved_enc(const struct dkv_mp_item *k)
{
	return !dkv_mp_streq(k, "encode");
}

static bool not_saved_dec(const struct dkv_mp_item *k)
{
	return !dkv_mp_streq(k, "decode");
}

static bool not_saved_both(const struct dkv_mp_item *k)
{
	return not_saved_enc(k) && not_saved_dec(k);
}

static int cmd_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const char *encfile = NULL, *decfile = NULL;
	const struct dkv__cli_opt opts[] = {
		{.name = "encode", .letter = 'e', .arg = "FILE", .str = &encfile,
		 .help = "write the encoding script to FILE, not with the rest"},
		{.name = "decode", .letter = 'd', .arg = "FILE", .str = &decfile,
		 .help = "write the decoding script to FILE"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return dkv__cli_usage_error(x, "%s", "missing the codec's NAME");
	struct dkv_buf path = {0}, val = {0}, rest = {0};
	if ((rc = int_path(x, "codec", argc - optind, argv + optind, &path)) ||
	    (rc = dkv__cli_get(x, "get_internal", &path, &val, NULL)))
		goto out;
	const uint8_t *v = val.data;
	size_t vlen = val.len;
	if (!vlen) {
		char *w = dkv__cli_words_text(argc - optind, argv + optind, "");
		fprintf(stderr, "%s: no codec named '%s'\n", x->cli->progname, w);
		free(w);
		rc = 1;
		goto out;
	}
	if ((encfile && (rc = save_script(x, v, vlen, "encode", encfile))) ||
	    (decfile && (rc = save_script(x, v, vlen, "decode", decfile))))
		goto out;
	bool (*keep)(const struct dkv_mp_item *) = encfile && decfile ? not_saved_both
						   : encfile		  ? not_saved_enc
						   : decfile		  ? not_saved_dec
									  : NULL;
	if (!keep) {
		rc = dkv__cli_print_yaml(x, v, vlen);
		goto out;
	}
	struct dkv_buf pairs = {0};
	uint32_t n = dkv__cli_copy_pairs(&pairs, v, vlen, keep);
	dkv_mp_map(&rest, n);
	dkv_buf_append(&rest, pairs.data, pairs.len);
	dkv_buf_release(&pairs);
	rc = dkv__cli_print_yaml(x, rest.data, rest.len);
out:
	dkv_buf_release(&path);
	dkv_buf_release(&val);
	dkv_buf_release(&rest);
	return rc;
}

static const struct dkv__cli_cmd get_cmd = {
	.name = "get", .run = cmd_get, .summary = "print a codec",
	.usage = "codec get [-e FILE] [-d FILE] NAME...",
	.about = "Print the codec NAME... as YAML; -e and -d write its scripts to files\n"
		 "instead.\n",
	.help_col = 22,
};

/* ---- walking a subtree ---- */

/* Whether the internal root has a child named name: get_tree_internal
 * fails on a subtree that never existed, enum_internal does not. */
static int root_has(struct dkv__cli_ctx *x, const char *name, const char *sub, bool *yes)
{
	struct dkv__cli_req q;
	struct dkv_buf path = {0}, rep = {0};
	const uint8_t *res;
	size_t reslen;
	*yes = false;
	if (sub)
		dkv_mp_cstr(&path, name);
	dkv__cli_req_init(&q, "enum_internal");
	dkv__cli_req_path(&q, &path);
	dkv__cli_req_bool(&q, "empty", true);
	int rc = dkv__cli_call(x, &q, &rep);
	if (rc == 0 && dkv_client_field(rep.data, rep.len, "result", &res, &reslen) == 0) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it, e;
		dkv_mp_reader_init(&r, res, reslen);
		if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_ARRAY)
			for (uint32_t i = 0; i < it.v.n && !*yes; i++) {
				struct dkv_mp_reader er = r;
				if (dkv_mp_read(&er, &e) < 0 || dkv_mp_skip(&r) < 0)
					break;
				*yes = e.type == DKV_MP_STR && dkv_mp_streq(&e, sub ? sub : name);
			}
	}
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&rep);
	return rc;
}

struct listing {
	struct dkv_client_path rel;
	bool conv; /* converter entries: "PATH : CODEC" */
	unsigned n;
};

static int list_cb(void *arg, const uint8_t *m, size_t len)
{
	struct listing *l = arg;
	const uint8_t *v;
	size_t vlen;
	if (dkv_client_path_update(&l->rel, m, len) < 0 ||
	    dkv_client_field(m, len, "value", &v, &vlen) < 0)
		return 0;
	struct dkv_buf out = {0};
	path_words(&out, l->rel.enc.data, l->rel.enc.len);
	if (l->conv) {
		const uint8_t *c;
		size_t clen;
		struct dkv_path p;
		struct dkv_mp_reader r;
		dkv_path_init(&p);
		dkv_buf_puts(&out, " : ");
		if (dkv_client_field(v, vlen, "codec", &c, &clen) == 0) {
			dkv_mp_reader_init(&r, c, clen);
			if (dkv_path_decode(&p, &r) == 0)
				path_words(&out, p.enc.data, p.enc.len);
		}
		dkv_path_release(&p);
	}
	dkv_buf_putc(&out, '\n');
	fwrite(out.data, 1, out.len, stdout);
	dkv_buf_release(&out);
	l->n++;
	return 0;
}

/* Print the entries with a value below path; 0 or 1. */
static int list_tree(struct dkv__cli_ctx *x, const struct dkv_buf *path, struct listing *l)
{
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "get_tree_internal");
	dkv__cli_req_path(&q, path);
	int rc = dkv__cli_stream(x, &q, list_cb, l);
	dkv__cli_req_release(&q);
	dkv_client_path_release(&l->rel);
	return rc;
}

/* ---- codec list ---- */

static int cmd_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
	bool any;
	if ((rc = root_has(x, "codec", NULL, &any)) || !any)
		return rc;
	struct dkv_buf path = {0};
	struct listing l = {0};
	dkv_mp_cstr(&path, "codec");
	rc = list_tree(x, &path, &l);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the codecs",
	.usage = "codec list",
	.about = "Print the names of the codecs, one per line.\n",
};

/* ---- codec delete ---- */

/* Delete the internal value at path; 0, or 1 after a message ("no
 * WHAT named ..." when there was none). */
static int delete_entry(struct dkv__cli_ctx *x, const struct dkv_buf *path, const char *what,
			int argc, char **argv)
{
	bool changed;
	int rc = dkv__cli_delete(x, "delete_internal", path, &changed);
	if (rc == 0 && !changed) {
		char *w = dkv__cli_words_text(argc, argv, "");
		fprintf(stderr, "%s: no %s at '%s'\n", x->cli->progname, what, w);
		free(w);
		rc = 1;
	}
	return rc;
}

static int cmd_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return dkv__cli_usage_error(x, "%s", "missing the codec's NAME");
	struct dkv_buf path = {0};
	rc = int_path(x, "codec", argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = delete_entry(x, &path, "codec", argc - optind, argv + optind);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd delete_cmd = {
	.name = "delete", .run = cmd_delete, .summary = "delete a codec",
	.usage = "codec delete NAME...",
	.about = "Delete the codec NAME... (converters that name it fail from then on).\n",
};

/* ---- codec convert ---- */

static int opt_codec(const struct dkv__cli_optarg *a)
{
	struct dkv_buf *words = a->data; /* the -c words' element encodings */
	char *w = (char *)a->arg;
	return dkv__cli_parse_path(a->x, 1, &w, words);
}

static int cmd_convert(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct dkv_buf codec = {0};
	bool del = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "codec", .letter = 'c', .arg = "CODEC", .fn = opt_codec, .data = &codec,
		 .help = "bind the codec CODEC... to PATH (several -c\n"
			 "give the elements of the codec's name)"},
		{.name = "delete", .letter = 'd', .flag = &del, .help = "unbind PATH"},
		{NULL},
	};
	struct dkv_buf path = {0};
	struct dkv__cli_req q = {0};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		goto out;
	if (optind >= argc) {
		rc = dkv__cli_usage_error(x, "%s", "missing the converter's NAME");
		goto out;
	}
	if (codec.len && del) {
		rc = dkv__cli_usage_error(x, "%s", "-c and -d: bind or unbind, not both");
		goto out;
	}
	int nwords = argc - optind - 1;
	char **words = argv + optind + 1;
	if ((codec.len || del) && !nwords) {
		rc = dkv__cli_usage_error(x, "%s", "missing the PATH to bind");
		goto out;
	}
	dkv_mp_cstr(&path, "conv");
	dkv_mp_cstr(&path, argv[optind]);
	if ((rc = dkv__cli_parse_path(x, nwords, words, &path)))
		goto out;
	if (del) {
		rc = delete_entry(x, &path, "binding", nwords, words);
	} else if (codec.len) {
		struct dkv_mp_reader r;
		uint32_t n = 0;
		dkv_mp_reader_init(&r, codec.data, codec.len);
		while (dkv_mp_left(&r) && dkv_mp_skip(&r) == 0)
			n++;
		dkv__cli_req_init(&q, "set_internal");
		dkv__cli_req_path(&q, &path);
		struct dkv_buf *b = dkv__cli_req_key(&q, "value");
		dkv_mp_map(b, 1);
		dkv_mp_cstr(b, "codec");
		dkv_mp_array(b, n);
		dkv_buf_append(b, codec.data, codec.len);
		rc = dkv__cli_call(x, &q, NULL);
	} else {
		bool any;
		struct listing l = {.conv = true};
		if ((rc = root_has(x, "conv", argv[optind], &any)))
			goto out;
		if (!any) {
			fprintf(stderr, "%s: no converter named '%s'\n", x->cli->progname,
				argv[optind]);
			rc = 1;
			goto out;
		}
		rc = list_tree(x, &path, &l);
	}
out:
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&codec);
	return rc;
}

static const struct dkv__cli_cmd convert_cmd = {
	.name = "convert", .run = cmd_convert, .summary = "bind codecs to paths for a converter",
	.usage = "codec convert [-c CODEC... | -d] NAME [PATH...]",
	.about = "With -c, bind the codec CODEC... to PATH in converter NAME (\"+\" in\n"
		 "PATH matches one element, \"#\" one or more); with -d, unbind PATH;\n"
		 "with neither, list converter NAME's paths (below PATH) and their\n"
		 "codecs.  A user reads and writes through converter NAME when its aux\n"
		 "says so: auth user modify --aux codec=NAME name=USER.\n",
	.help_col = 22,
};

const struct dkv__cli_cmd *const dkv__cli_codec_cmds[] = {
	&set_cmd, &get_cmd, &list_cmd, &delete_cmd, &convert_cmd, NULL,
};
