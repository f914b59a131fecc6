/*
 * textconv.c - the engine's text writers and reader as a filter, for the
 * system tests that hold our text against other readers (PyYAML, json,
 * jq: tests/system/test_yaml_fidelity.py).  Not installed.
 *
 *   textconv yaml    msgpack items on stdin -> YAML documents, each after "---"
 *   textconv json    msgpack items on stdin -> JSON lines
 *   textconv parse   a YAML stream on stdin -> one msgpack item per document
 *
 * Exit status 0, or 1 after a message on stderr (naming the item's
 * offset or the parser's line and column).
 */
#include "distkv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_all(struct dkv_buf *in)
{
	char chunk[65536];
	size_t n;

	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		dkv_buf_append(in, chunk, n);
	return ferror(stdin) ? -1 : 0;
}

static int write_items(const struct dkv_buf *in, bool json)
{
	struct dkv_mp_reader r;
	struct dkv_buf out = {0};
	int rc = 0;

	dkv_mp_reader_init(&r, in->data, in->len);
	while (!rc && dkv_mp_left(&r)) {
		const uint8_t *start = r.p;
		size_t off = (size_t)(start - in->data);
		if (dkv_mp_skip(&r)) {
			fprintf(stderr, "textconv: no msgpack item at offset %zu\n", off);
			rc = 1;
			break;
		}
		out.len = 0;
		if (!json)
			dkv_buf_puts(&out, "---\n");
		if (json ? dkv_json_emit(&out, start, (size_t)(r.p - start))
			 : dkv_yaml_emit(&out, start, (size_t)(r.p - start))) {
			fprintf(stderr, "textconv: item at offset %zu cannot be written\n", off);
			rc = 1;
			break;
		}
		if (json)
			dkv_buf_putc(&out, '\n');
		fwrite(out.data, 1, out.len, stdout);
	}
	dkv_buf_release(&out);
	return rc;
}

static int parse_docs(const struct dkv_buf *in)
{
	struct dkv_buf out = {0};
	char err[256];
	size_t n;
	int rc = dkv_yaml_parse_stream(&out, in->len ? (const char *)in->data : "", in->len, &n,
				       err, sizeof err);

	if (rc)
		fprintf(stderr, "textconv: %s\n", err);
	else if (out.len)
		fwrite(out.data, 1, out.len, stdout);
	dkv_buf_release(&out);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct dkv_buf in = {0};
	int rc;

	if (argc != 2 || (strcmp(argv[1], "yaml") && strcmp(argv[1], "json") &&
			  strcmp(argv[1], "parse"))) {
		fprintf(stderr, "usage: textconv yaml|json|parse < input > output\n");
		return 2;
	}
	if (read_all(&in)) {
		perror("textconv: stdin");
		return 1;
	}
	if (!strcmp(argv[1], "parse"))
		rc = parse_docs(&in);
	else
		rc = write_items(&in, !strcmp(argv[1], "json"));
	dkv_buf_release(&in);
	if (fflush(stdout)) {
		perror("textconv: stdout");
		rc = 1;
	}
	return rc;
}
