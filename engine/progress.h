/*
 * progress.h - a line of progress on a terminal while long work runs
 * (loading a state file, downloading the state from a peer, a big dump):
 * "loading s.dkv: 120,000 records, 34.5 MB, 410,000 records/s".
 *
 * Only when standard error is a terminal (DKV_PROGRESS=1: always, from
 * the start and at every update; DKV_PROGRESS=0: never): nothing at all goes out
 * otherwise, so logs and pipes stay as they were.  Work shorter than half
 * a second shows nothing; the line is rewritten in place at most four
 * times a second and erased at the end, so the program's own messages
 * follow on a clean line.
 */
#ifndef DKV_PROGRESS_H
#define DKV_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct dkv_progress {
	char what[256];  /* "loading s.dkv" */
	const char *unit; /* "records", "entries" */
	bool on;         /* showing progress at all */
	bool shown;      /* a line is on the screen */
	bool every_call; /* DKV_PROGRESS set: no delay, no rate limit */
	uint64_t n, bytes;
	double t0, next; /* monotonic seconds: start, next update */
};

void dkv_progress_start(struct dkv_progress *p, const char *what, const char *unit);
/* Count n more units and bytes more bytes; updates the line when due. */
void dkv_progress_add(struct dkv_progress *p, uint64_t n, uint64_t bytes);
/* Erase the line (if any was shown). */
void dkv_progress_end(struct dkv_progress *p);

#endif
