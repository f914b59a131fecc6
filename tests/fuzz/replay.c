/*
 * replay.c - run fuzz inputs through LLVMFuzzerTestOneInput without
 * libFuzzer, so the seed corpus (and any reproducer) is an ordinary test
 * in every build, with or without clang and sanitizers.
 *
 * usage: fuzz_replay PATH...   (files, or directories whose files are run
 * in name order).  Exits 0 when every input ran; a bug aborts.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t len = 0, cap = 0, n;
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		return rc;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *p = realloc(data, cap);
			if (!p) {
				rc = -ENOMEM;
				goto out;
			}
			data = p;
		}
		n = fread(data + len, 1, cap - len, f);
		len += n;
	} while (n);
	if (ferror(f)) {
		rc = -EIO;
		fprintf(stderr, "fuzz_replay: %s: read error\n", path);
		goto out;
	}
	LLVMFuzzerTestOneInput(data, len);
out:
	free(data);
	fclose(f);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, unsigned *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		rc = -errno;
		fprintf(stderr, "fuzz_replay: %s: %s\n", dir, strerror(errno));
		return rc;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **p = realloc(names, cap * sizeof *names);
			if (!p) {
				rc = -ENOMEM;
				goto out;
			}
			names = p;
		}
		size_t l = strlen(dir) + strlen(de->d_name) + 2;
		if (!(names[n] = malloc(l))) {
			rc = -ENOMEM;
			goto out;
		}
		snprintf(names[n++], l, "%s/%s", dir, de->d_name);
	}
	qsort(names, n, sizeof *names, by_name);
	for (size_t i = 0; i < n && !rc; i++) {
		struct stat st;
		if (stat(names[i], &st) || !S_ISREG(st.st_mode))
			continue;
		rc = run_file(names[i]);
		++*count;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned count = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: fuzz_replay FILE_OR_DIR...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int rc;
		if (stat(argv[i], &st)) {
			fprintf(stderr, "fuzz_replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = run_dir(argv[i], &count);
		} else {
			rc = run_file(argv[i]);
			count++;
		}
		if (rc)
			return 1;
	}
	printf("fuzz_replay: %u inputs ran\n", count);
	return count ? 0 : 1;
}
