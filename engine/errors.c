/*
 * errors.c - messages and errnos of the project's error codes (errors.h).
 */
#include "errors.h"

#include <errno.h>
#include <string.h>

static const struct {
	const char *name;
	int eno;
	const char *msg;
} table[] = {
#define DKV_X_(name, eno, msg) {#name, eno, msg},
	DKV_ERROR_TABLE(DKV_X_)
#undef DKV_X_
};

#define NCODES (int)(sizeof table / sizeof table[0])

static int row(int rc)
{
	int r = -rc - DKV_E_BASE;
	return r >= 0 && r < NCODES ? r : -1;
}

const char *dkv_strerror(int rc)
{
	int r = row(rc);
	return r >= 0 ? table[r].msg : strerror(-rc);
}

const char *dkv_error_name(int rc)
{
	int r = row(rc);
	return r >= 0 ? table[r].name : NULL;
}

int dkv_errno(int rc)
{
	int r = row(rc);
	if (r >= 0)
		return table[r].eno;
	return rc < 0 && rc > -DKV_E_BASE ? -rc : EIO;
}
