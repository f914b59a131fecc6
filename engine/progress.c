/*
 * progress.c - the progress line (progress.h).
 */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EVERY 0.25 /* seconds between updates */
#define FIRST 0.5  /* work shorter than this shows nothing */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void dkv_progress_start(struct dkv_progress *p, const char *what, const char *unit)
{
	const char *force = getenv("DKV_PROGRESS");
	memset(p, 0, sizeof *p);
	snprintf(p->what, sizeof p->what, "%s", what);
	p->unit = unit;
	p->on = force && *force ? !strcmp(force, "1") : isatty(STDERR_FILENO);
	p->t0 = now();
	p->every_call = force && *force; /* forced (tests): from the start, every update */
	p->next = p->t0 + (p->every_call ? 0 : FIRST);
}

/* 1234567 as "1,234,567". */
static void grouped(char *out, size_t cap, uint64_t v)
{
	char digits[32];
	int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
	size_t o = 0;
	for (int i = 0; i < n && o + 2 < cap; i++) {
		if (i && (n - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = 0;
}

void dkv_progress_add(struct dkv_progress *p, uint64_t n, uint64_t bytes)
{
	p->n += n;
	p->bytes += bytes;
	if (!p->on)
		return;
	double t = now();
	if (t < p->next)
		return;
	p->next = t + (p->every_call ? 0 : EVERY);
	char count[40], rate[40];
	grouped(count, sizeof count, p->n);
	grouped(rate, sizeof rate, (uint64_t)(p->n / (t - p->t0)));
	fprintf(stderr, "\r\033[K%s: %s %s, %.1f MB, %s %s/s", p->what, count, p->unit,
		p->bytes / 1e6, rate, p->unit);
	fflush(stderr);
	p->shown = true;
}

void dkv_progress_end(struct dkv_progress *p)
{
	if (p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->shown = false;
}
