/*
 * fuzz_text.c - libFuzzer target for the text parsers: the colon notation
 * of one path element and of a whole path (engine/pathtext.c: command-line
 * path words, names in the mounted tree, YAML's !P) and YAML values
 * (engine/yaml.c: what is written to a `_` file, `data set` without -e,
 * dumps read back).
 *
 * An input is text.  It is parsed as each of those; whatever parses must
 * format and parse back to the same encoding (formatting must never fail
 * on what the parser produced), and a YAML stream must give as many items
 * as it says.  A violation aborts.  (`-e` values are Python literals,
 * parsed by Python's own ast.literal_eval: not fuzzed here.)
 */
#include "fuzz.h"
#include "pathtext.h"
#include "yamltext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct dkv_buf a, b, t;

static void fail(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz_text: %s (input of %zu bytes)\n", what, size);
	abort();
}

static bool same(const struct dkv_buf *x, const struct dkv_buf *y)
{
	return x->len == y->len && !memcmp(x->data, y->data, x->len);
}

/* One element: parse, format (plain and as a file name), parse again. */
static void element(const char *s, size_t n, unsigned flags)
{
	a.len = b.len = t.len = 0;
	if (dkv_pathtext_parse(&a, s, n, flags))
		return;
	for (unsigned fmt = 0; fmt <= DKV_PT_FS; fmt += DKV_PT_FS) {
		t.len = b.len = 0;
		if (dkv_pathtext_format(&t, a.data, a.len, fmt))
			fail("an element parsed does not format", (const uint8_t *)s, n);
		if (dkv_pathtext_parse(&b, (const char *)t.data, t.len, fmt) || !same(&a, &b))
			fail("an element formatted does not parse back", (const uint8_t *)s, n);
	}
}

static void path(const char *s, size_t n)
{
	const char *bad;
	size_t badlen;

	a.len = b.len = t.len = 0;
	if (dkv_pathtext_parse_path(&a, s, n, &bad, &badlen))
		return;
	if (dkv_pathtext_format_path(&t, a.data, a.len))
		fail("a path parsed does not format", (const uint8_t *)s, n);
	if (dkv_pathtext_parse_path(&b, (const char *)t.data, t.len, &bad, &badlen) ||
	    !same(&a, &b))
		fail("a path formatted does not parse back", (const uint8_t *)s, n);
}

static void yaml(const char *s, size_t n)
{
	char err[300];
	size_t ndocs = 0;

	a.len = b.len = t.len = 0;
	if (!dkv_yaml_parse(&a, s, n, err, sizeof err)) {
		if (dkv_yaml_emit(&t, a.data, a.len))
			fail("a YAML value parsed does not emit", (const uint8_t *)s, n);
		if (dkv_yaml_parse(&b, (const char *)t.data, t.len, err, sizeof err)) {
			fprintf(stderr, "fuzz_text: %s\n%.*s\n", err, (int)t.len, (char *)t.data);
			fail("emitted YAML does not parse", (const uint8_t *)s, n);
		}
		if (!same(&a, &b)) {
			fprintf(stderr, "fuzz_text: emitted:\n%.*s\n", (int)t.len, (char *)t.data);
			fail("emitted YAML parses to another value", (const uint8_t *)s, n);
		}
	}
	a.len = 0;
	if (!dkv_yaml_parse_stream(&a, s, n, &ndocs, err, sizeof err)) {
		struct dkv_mp_reader r;
		size_t items = 0;
		dkv_mp_reader_init(&r, a.data, a.len);
		while (dkv_mp_left(&r)) {
			if (dkv_mp_skip(&r))
				fail("a YAML stream gave bad msgpack", (const uint8_t *)s, n);
			items++;
		}
		if (items != ndocs)
			fail("a YAML stream's count is wrong", (const uint8_t *)s, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	element(s, size, 0);
	element(s, size, DKV_PT_FS);
	path(s, size);
	yaml(s, size);
	return 0;
}
