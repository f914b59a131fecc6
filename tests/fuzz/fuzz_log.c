/*
 * fuzz_log.c - libFuzzer target for the log reader (engine/logload.c).
 *
 * An input is a file as `distkv server -l` would read it.  It is loaded
 * into a fresh engine twice: strictly, then skipping damage.  Besides the
 * sanitizers one invariant is checked: whatever state a load produced,
 * its dump must load back cleanly (no error, no warning) into the same
 * state.  A violation aborts.
 */
#include "fuzz.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned warnings;

static void count_warning(void *arg, const char *msg)
{
	warnings++;
}

static struct dkv_engine *fresh(void)
{
	return dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a", .chain_length = 5});
}

static void dump(struct dkv_engine *e, struct dkv_buf *out)
{
	dkv_log_encode_header(out, "node-a", DKV_LOG_KIND_DUMP);
	dkv_log_encode_dump(out, e, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkv_log_load_opts strict = {.warn = count_warning};
	struct dkv_log_load_opts skip = {.warn = count_warning, .skip_damaged = true};
	char err[600];

	struct dkv_engine *e = fresh();
	dkv_log_load_mem(e, data, size, "fuzz", &strict, NULL, err, sizeof err);
	dkv_engine_free(e);

	e = fresh();
	dkv_log_load_mem(e, data, size, "fuzz", &skip, NULL, err, sizeof err);
	struct dkv_buf d1 = {0}, d2 = {0};
	dump(e, &d1);
	struct dkv_engine *again = fresh();
	warnings = 0;
	int rc = dkv_log_load_mem(again, d1.data, d1.len, "dump", &strict, NULL, err, sizeof err);
	if (rc || warnings) {
		fprintf(stderr, "fuzz_log: the dump of a loaded state does not load: %s\n", err);
		abort();
	}
	dump(again, &d2);
	/* the headers differ in their time stamps; the rest must not */
	struct dkv_mp_reader r1, r2;
	dkv_mp_reader_init(&r1, d1.data, d1.len);
	dkv_mp_reader_init(&r2, d2.data, d2.len);
	if (dkv_mp_skip(&r1) || dkv_mp_skip(&r2) || dkv_mp_left(&r1) != dkv_mp_left(&r2) ||
	    memcmp(r1.p, r2.p, dkv_mp_left(&r1))) {
		fprintf(stderr, "fuzz_log: a dump reloaded differs from the original\n");
		abort();
	}
	dkv_buf_release(&d1);
	dkv_buf_release(&d2);
	dkv_engine_free(again);
	dkv_engine_free(e);
	return 0;
}
