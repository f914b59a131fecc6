/*
 * dkvfs.h - the mounted tree: a node's data as a filesystem.
 *
 * Every entry is a directory named after its path element (colon notation
 * for what is not a plain string, see doc/filesystem.md); `_` holds the
 * value as YAML, `.meta` the chain, `.watch` streams changes.  Special
 * directories at the root (.acl, .auth, .code, .run, .errors, ...) show the
 * internal data.
 *
 * Threads: the FUSE session serves requests on threads of its own, which
 * read the tree under the engine's read lock and hand every change to the
 * loop thread (the engine's owner).  A notifier thread invalidates the
 * kernel's caches after changes from any source and repeats them through
 * the mount so that inotify watchers see them.
 */
#ifndef DKVFS_H
#define DKVFS_H

#include "distkv.h"

#include <sys/types.h>
#include <uv.h>

/* server.mount.users: one Unix uid and the distkv user it acts as. */
struct dkvfs_uidmap {
	uid_t uid;
	const char *user;
};

struct dkvfs_opts {
	const char *mountpoint;
	bool inotify;    /* repeat changes through the mount for inotify (default on) */
	bool debug;      /* libfuse debug output */
	int max_threads; /* FUSE worker threads; 0: 64 */
	int spin_us;     /* how long a worker that answered a request keeps
			  * polling for the next before it sleeps; 0: never */
	struct dkv_logger *logger; /* change logs: close() of a written "_" waits
				    * until an `always` log has the change */
	/* who may use the mount and with which rights (doc/filesystem.md,
	 * "Users and ACLs").  user: the distkv user the mount acts as for
	 * the Unix user that mounted it (NULL: full rights).  allow_other:
	 * other Unix users may use it; users maps their uids to distkv
	 * users (unmapped uids get EACCES, root full rights) */
	const char *user;
	bool allow_other;
	const struct dkvfs_uidmap *users;
	size_t nusers;
	/* called on the loop when the fence (dkvfs_fence) moved; may be NULL */
	void (*fence_moved)(void *arg);
	void *fence_arg;
};

struct dkvfs;

/* Mount the engine's tree.  Must be called on the loop thread that owns
 * the engine.  A stale mount at the mountpoint (a crashed daemon's) is
 * detached first.  On error *out is NULL and err says why; -ENOENT when
 * opts->user or a user of opts->users is no distkv user. */
int dkvfs_mount(struct dkvfs **out, uv_loop_t *loop, struct dkv_engine *e,
		const struct dkvfs_opts *opts, char *err, size_t errlen);
/* The fence that protocol replies must wait for (server.h): the kernel's
 * caches of the mount are rid of what changes made stale.  Valid until
 * dkvfs_close, which must come after the fence was taken off the server. */
void dkvfs_fence(struct dkvfs *fs, struct dkv_fence *out);
/* Unmount and stop every thread; cb (may be NULL) runs on the loop when
 * all is gone and fs is freed.  The loop must keep running until then.
 * fs NULL: nothing to close, cb runs at once. */
void dkvfs_close(struct dkvfs *fs, void (*cb)(void *arg), void *arg);

#endif
