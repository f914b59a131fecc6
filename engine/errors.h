/*
 * errors.h - the project's one error dialect.
 *
 * Every function that can fail returns int: 0 on success, a negative
 * errno, or a negative project code from the table below when no errno
 * says it.  Each project code carries the errno it becomes where only
 * an errno can leave (fuse_reply_err, process exit statuses) and the
 * sentence a person reads.  Add a row to add a code; nothing else
 * changes.
 */
#ifndef DKV_ERRORS_H
#define DKV_ERRORS_H

/* X(name, errno at the boundary, message) */
#define DKV_ERROR_TABLE(X)                                                          \
	X(DKV_E_PREV, ESTALE, "the entry does not hold the expected previous value")   \
	X(DKV_E_INTERNAL, EINVAL, "the None subtree is internal")                      \
	X(DKV_E_NOT_READY, EAGAIN, "the node is not in sync with its cluster yet")     \
	X(DKV_E_NO_LOG, ENOSYS, "this server keeps no logs")

#define DKV_E_BASE 1000 /* above every errno; codes are -(DKV_E_BASE + row) */

enum dkv_error_row_ {
#define DKV_X_(name, eno, msg) name##_ROW_,
	DKV_ERROR_TABLE(DKV_X_)
#undef DKV_X_
};

enum dkv_error {
#define DKV_X_(name, eno, msg) name = -(DKV_E_BASE + name##_ROW_),
	DKV_ERROR_TABLE(DKV_X_)
#undef DKV_X_
};

/* The sentence for rc (a negative errno or project code). */
const char *dkv_strerror(int rc);
/* The project code's name ("DKV_E_PREV"), or NULL for an errno. */
const char *dkv_error_name(int rc);
/* The positive errno rc stands for: -rc for an errno, the table's errno
 * for a project code, EIO for anything else. */
int dkv_errno(int rc);

#endif
