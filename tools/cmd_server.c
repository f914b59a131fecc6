/*
 * cmd_server.c - "distkv server": run a node.
 *
 * Builds the engine from the configuration, loads state files and change
 * logs (-l), optionally stores the root value of a new network (-i),
 * starts logging (--save), starts the client-protocol server and runs the
 * event loop until SIGINT or SIGTERM, when the logs are flushed and closed.
 * With server.runner it also runs a runner ("distkv client run all
 * --every", connected to this server) as a child process, started again
 * when it exits and stopped before the server stops.
 */
#include "cli.h"
#include "distkv.h"
#include "dkvfs.h"
#include "progress.h"
#include "sdnotify.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct node {
	uv_loop_t loop;
	uv_signal_t sigint, sigterm;
	struct dkv_engine *engine;
	struct dkv_types *types; /* the engine's type checker */
	struct dkv_server *server;
	struct dkvfs *fs;
	struct dkv_logger *logger;
	struct dkv_errlog *errlog; /* the node's own error records */
	struct dkv_cluster *cluster;
	pid_t agent;            /* our private serf agent, or 0 */
	/* supervision of that agent: started again when it exits */
	struct agent_spec { /* the strings live as long as the server */
		const char *name, *host, *bind;
		unsigned port;
		int verbose;
	} agent_spec;
	uv_timer_t agent_timer;
	bool agent_supervised;  /* agent_timer is running */
	uint64_t agent_since;   /* loop time it was started */
	uint64_t agent_next;    /* loop time of the next start, while it is down */
	unsigned agent_backoff; /* ms before the next start after an early exit */
	/* server.runner: the runner child, started again when it exits */
	pid_t runner;           /* its pid, or 0 */
	uv_timer_t runner_timer;
	bool runner_supervised; /* runner_timer is running */
	uint64_t runner_since;  /* loop time it was started */
	uint64_t runner_next;   /* loop time of the next start, while it is down */
	unsigned runner_backoff; /* ms before the next start after an early exit */
	uint64_t runner_stop_by; /* stopping: loop time to give up waiting */
	const char *mount;      /* where to mount the tree, or NULL */
	const char *name;       /* the node's */
	struct dkv_auth_spec peer_auth; /* connect.auth: how to log in to peers;
					 * method DKV_AUTH_NONE: not set */
	struct dkv_cli *cli;
	int verbose;
	int exit_code;
	bool stopping;          /* shut_down ran: mount nothing any more */
};

/* The engine, and what its checkers and its error log keep (after the
 * loop, when no thread uses them any more). */
static void free_engine(struct node *n)
{
	dkv_errlog_free(n->errlog);
	dkv_engine_free(n->engine);
	dkv_types_free(n->types);
}

static void usage(FILE *f)
{
	fputs("usage: distkv [global options] server [options] NODENAME\n"
	      "\n"
	      "Run a distkv node named NODENAME.\n"
	      "\n"
	      "options:\n"
	      "  -i, --init VALUE   store VALUE at the root of a new network (a string)\n"
	      "  -e, --eval         evaluate the -i VALUE as a Python literal\n"
	      "  -m, --mount DIR    mount the tree at DIR (config server.mount)\n"
	      "  -l, --load FILE    load a state file or change log before serving (repeatable;\n"
	      "                     order does not matter; FILE may be a pipe, - is stdin)\n"
	      "      --skip-damaged skip damaged parts of loaded files instead of refusing to start\n"
	      "      --save FILE    log every change to FILE, starting with the current state\n"
	      "      --sync MODE    durability of the --save log: always, batch or none\n"
	      "                     (default: server.log.sync, batch)\n"
	      "      --join ADDR    have the Serf agent join the agent at ADDR (host:port of\n"
	      "                     its gossip address; repeatable)\n"
	      "      --help         show this help\n"
	      "\n"
	      "configuration keys used (set with -c FILE or -C key=value):\n"
	      "  server.bind_default.host, server.bind_default.port   where clients connect\n"
	      "  server.change.length     chain length (default 5)\n"
	      "  server.python.timeout    time limit of one call of stored Python, s (0.5)\n"
	      "  server.python.inline     run stored Python on the loop itself: faster, but\n"
	      "                           C code in a script can then hold the server (false)\n"
	      "  server.buffer            stream window offered to clients (default 10)\n"
	      "  server.max_msg_size      largest request in bytes\n"
	      "  server.max_out_buffer    unsent reply bytes before a client is throttled\n"
	      "  server.mount             where to mount the tree (none by default)\n"
	      "  server.mount.path        the same, where server.mount is a mapping\n"
	      "  server.mount.user        the distkv user the mount acts as (none: full rights)\n"
	      "  server.mount.allow_other let other Unix users use the mount (false)\n"
	      "  server.mount.users.UID   the distkv user a Unix uid (or user name) acts as\n"
	      "                           (with allow_other; unmapped uids get EACCES)\n"
	      "  server.mount_inotify     repeat changes through the mount for inotify (true)\n"
	      "  server.mount_spin_us     how long a busy mount's thread polls for the next\n"
	      "                           request before it sleeps (50; 0: never)\n"
	      "  server.log.sync          durability of change logs: always, batch, none (batch)\n"
	      "  server.log.interval      batch mode: seconds between fsyncs (0.1)\n"
	      "  server.errors.interval   the error log writes repeats of an error at most\n"
	      "                           this often, s (1)\n"
	      "  server.runner            run a runner (\"client run all --every\") as a\n"
	      "                           child process, restarted when it exits (false)\n"
	      "  runner.lease, runner.settle   its timing (doc/runners.md)\n"
	      "  server.cluster           join a network through Serf (true)\n"
	      "  server.root              the network's name (:distkv)\n"
	      "  server.serf.host, server.serf.port   the Serf agent's RPC address\n"
	      "                           (127.0.0.1:7373)\n"
	      "  server.serf.spawn        start a private agent when none answers (true)\n"
	      "  server.serf.bind         that agent's gossip address (127.0.0.1:7946)\n"
	      "  server.advertise         host:port where peers reach this server\n"
	      "                           (default: the bind address)\n"
	      "  connect.auth             how to log in to peers that ask for it, e.g.\n"
	      "                           \"_test name=joe\" or \"password name=joe password=...\"\n"
	      "\n"
	      "Never use -i except to create a new, separate network.\n",
	      f);
}

static void server_gone(void *arg)
{
	struct node *n = arg;
	n->server = NULL;
}

static void fs_gone(void *arg)
{
	struct node *n = arg;
	n->fs = NULL;
}

static void cluster_gone(void *arg)
{
	struct node *n = arg;
	n->cluster = NULL;
}

static void logger_gone(void *arg)
{
	struct node *n = arg;
	n->logger = NULL;
}

/* Close everything; the loop ends when all of it is gone.  The logs go
 * last and write out every change made before. */
static void shut_down(struct node *n)
{
	if (!n->stopping)
		dkv_sd_notify("STOPPING=1");
	n->stopping = true;
	if (n->agent_supervised && !uv_is_closing((uv_handle_t *)&n->agent_timer))
		uv_close((uv_handle_t *)&n->agent_timer, NULL);
	if (n->runner_supervised && !uv_is_closing((uv_handle_t *)&n->runner_timer))
		uv_close((uv_handle_t *)&n->runner_timer, NULL);
	if (n->runner > 0) { /* it did not stop when asked (or was not asked) */
		kill(n->runner, SIGKILL);
		waitpid(n->runner, NULL, 0);
		n->runner = 0;
	}
	if (!uv_is_closing((uv_handle_t *)&n->sigint)) {
		uv_close((uv_handle_t *)&n->sigint, NULL);
		uv_close((uv_handle_t *)&n->sigterm, NULL);
	}
	if (n->fs) {
		if (n->server)
			dkv_server_set_fence(n->server, NULL);
		dkvfs_close(n->fs, fs_gone, n);
	}
	if (n->cluster)
		dkv_cluster_close(n->cluster, cluster_gone, n);
	if (n->server)
		dkv_server_close(n->server, server_gone, n);
	dkv_errlog_close(n->errlog); /* what it still writes goes to the log */
	if (n->logger)
		dkv_logger_close(n->logger, logger_gone, n);
}

/* ---- server.runner: a runner as a child process ---- */

#define RUNNER_BACKOFF_MIN 1000
#define RUNNER_BACKOFF_MAX 30000
#define RUNNER_STABLE_MS 30000 /* a runner that ran this long exited "late" */
#define RUNNER_STOP_MS 6000    /* how long a stopping runner may take */

/* "distkv [-C ...] client run all --every" against this server: the
 * runner.* settings and connect.auth go along as -C, so that a runner
 * configured in the server's file runs as configured. */
static pid_t fork_runner(struct node *n)
{
	const struct dkv_config *cfg = n->cli->cfg;
	char **argv = NULL, **owned = NULL; /* owned: the -C texts made here */
	size_t argc = 0, nowned = 0;
	const char *key;
	const uint8_t *mp;
	size_t len;
	char host[300], port[64];
	const char *bind = dkv_config_str(cfg, "server.bind_default.host", "localhost");
	if (!*bind || !strcmp(bind, "0.0.0.0") || !strcmp(bind, "::"))
		bind = "localhost";
	snprintf(host, sizeof host, "connect.host=%s", bind);
	snprintf(port, sizeof port, "connect.port=%d", dkv_server_port(n->server));
	size_t nkeys = 0;
	while (dkv_config_at(cfg, nkeys, &key, &mp, &len))
		nkeys++;
	argv = dkv_xcalloc(2 * nkeys + 16, sizeof *argv);
	owned = dkv_xcalloc(nkeys + 1, sizeof *owned);
	argv[argc++] = "distkv";
	if (n->verbose < 0)
		argv[argc++] = "-q";
	for (int v = 0; v < n->verbose && v < 3; v++)
		argv[argc++] = "-v";
	argv[argc++] = "-C";
	argv[argc++] = host;
	argv[argc++] = "-C";
	argv[argc++] = port;
	for (size_t i = 0; dkv_config_at(cfg, i, &key, &mp, &len); i++) {
		bool auth = !strcmp(key, "connect.auth");
		if (strncmp(key, "runner.", 7) && !auth)
			continue;
		struct dkv_buf b = {0};
		const char *text = dkv_config_str(cfg, key, NULL);
		if (text)
			dkv_buf_printf(&b, "%s=%s", key, text);
		else if (!auth)
			dkv_buf_printf(&b, "%s=%g", key, dkv_config_float(cfg, key, 0));
		else
			continue;
		argv[argc++] = "-C";
		argv[argc++] = owned[nowned++] = dkv_buf_cstr(&b);
	}
	argv[argc++] = "client";
	argv[argc++] = "run";
	argv[argc++] = "all";
	argv[argc++] = "--every";
	argv[argc] = NULL;

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		execv("/proc/self/exe", argv);
		fprintf(stderr, "distkv server: cannot run the runner: %s\n", strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		fprintf(stderr, "distkv server: cannot start the runner: %s\n", strerror(errno));
	for (size_t i = 0; i < nowned; i++)
		free(owned[i]);
	free(owned);
	free(argv);
	return pid;
}

/* Every second: has the runner exited?  Then start another, at once if
 * it had run for a while, else after a growing pause. */
static void runner_watch(uv_timer_t *h)
{
	struct node *n = h->data;
	uint64_t now = uv_now(h->loop);
	if (n->stopping)
		return;
	if (n->runner > 0) {
		int st;
		if (waitpid(n->runner, &st, WNOHANG) != n->runner)
			return;
		bool early = now - n->runner_since < RUNNER_STABLE_MS;
		n->runner_backoff = early ? (n->runner_backoff ? n->runner_backoff * 2
							       : RUNNER_BACKOFF_MIN)
					  : 0;
		if (n->runner_backoff > RUNNER_BACKOFF_MAX)
			n->runner_backoff = RUNNER_BACKOFF_MAX;
		char how[64];
		if (WIFSIGNALED(st))
			snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(st));
		else
			snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
		fprintf(stderr, "distkv: the runner (pid %d) %s; starting another%s\n",
			(int)n->runner, how, n->runner_backoff ? " shortly" : "");
		n->runner = 0;
		n->runner_next = now + n->runner_backoff;
	}
	if (now < n->runner_next)
		return;
	pid_t pid = fork_runner(n);
	if (pid < 0) {
		n->runner_next = now + RUNNER_BACKOFF_MAX;
		return;
	}
	n->runner = pid;
	n->runner_since = now;
	if (n->verbose >= 0)
		fprintf(stderr, "distkv: started a runner (pid %d)\n", (int)pid);
}

static void start_runner(struct node *n)
{
	if (n->runner_supervised || n->stopping || !n->server ||
	    !dkv_config_bool(n->cli->cfg, "server.runner", false))
		return;
	uv_timer_init(&n->loop, &n->runner_timer);
	n->runner_timer.data = n;
	n->runner_supervised = true;
	n->runner_next = 0;
	runner_watch(&n->runner_timer); /* the first one now */
	uv_timer_start(&n->runner_timer, runner_watch, 1000, 1000);
}

/* Stopping: the runner ends its jobs and writes their states while the
 * server still serves; the server shuts down once it is gone. */
static void runner_stopping(uv_timer_t *h)
{
	struct node *n = h->data;
	int st;
	bool gone = n->runner <= 0 || waitpid(n->runner, &st, WNOHANG) == n->runner;
	if (!gone && uv_now(h->loop) < n->runner_stop_by)
		return;
	if (!gone) {
		fprintf(stderr, "distkv: the runner (pid %d) did not stop in time\n",
			(int)n->runner);
		kill(n->runner, SIGKILL);
		waitpid(n->runner, &st, 0);
	}
	n->runner = 0;
	uv_close((uv_handle_t *)&n->runner_timer, NULL);
	n->runner_supervised = false;
	shut_down(n);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct node *n = h->data;
	if (n->verbose >= 0)
		fprintf(stderr, "distkv: %s received, shutting down\n",
			signum == SIGINT ? "SIGINT" : "SIGTERM");
	if (n->runner > 0 && !n->stopping && n->runner_stop_by == 0) {
		kill(n->runner, SIGTERM);
		n->runner_stop_by = uv_now(h->loop) + RUNNER_STOP_MS;
		uv_timer_start(&n->runner_timer, runner_stopping, 50, 50);
		return;
	}
	shut_down(n);
}

static void load_progress(void *arg, const struct dkv_log_stats *st)
{
	struct dkv_progress *p = arg;
	dkv_progress_add(p, st->records - p->n, st->bytes - p->bytes);
}

/* A warning while a progress line may be showing: erase it first. */
static void load_warn(void *arg, const char *msg)
{
	dkv_progress_end(arg);
	dkv_report(DKV_REPORT_WARNING, "%s", msg);
}

/* Load every -l file; any damage (unless skipped) stops the start. */
static int load_all(struct node *n, char **files, int nfiles, bool skip_damaged)
{
	struct dkv_progress prog;
	struct dkv_log_load_opts lo = {.skip_damaged = skip_damaged, .progress = load_progress,
				       .warn = load_warn, .arg = &prog};
	char err[600], what[300];
	for (int i = 0; i < nfiles; i++) {
		struct dkv_log_stats st = {0};
		uint64_t t0 = uv_hrtime();
		snprintf(what, sizeof what, "loading %s", files[i]);
		dkv_progress_start(&prog, what, "records");
		int rc = dkv_log_load_file(n->engine, files[i], &lo, &st, err, sizeof err);
		dkv_progress_end(&prog);
		if (rc) {
			fprintf(stderr, "distkv server: %s\n", err);
			fprintf(stderr, "distkv server: not started: nothing of the loaded data is served\n");
			return rc;
		}
		if (n->verbose >= 0)
			fprintf(stderr, "distkv: loaded %s: %llu records, %llu bytes in %.3f s\n",
				files[i], (unsigned long long)st.records,
				(unsigned long long)st.bytes, (uv_hrtime() - t0) / 1e9);
	}
	return 0;
}

struct started {
	bool done;
	int status;
	char msg[400];
};

static void save_started(void *arg, int status, const char *msg)
{
	struct started *s = arg;
	s->done = true;
	s->status = status;
	snprintf(s->msg, sizeof s->msg, "%s", msg);
}

static int set_root(struct node *n, const char *text, bool eval)
{
	struct dkv_buf v = {0};
	struct dkv_change ch = {0};
	struct dkv_result res;
	char err[256];
	int rc;

	if (eval) {
		rc = dkv_py_literal_eval(&v, text, err, sizeof err);
		dkv_py_shutdown();
		if (rc) {
			fprintf(stderr, "distkv server: -i %s: %s\n", text, err);
			dkv_buf_release(&v);
			return rc;
		}
	} else {
		dkv_mp_cstr(&v, text);
	}
	ch.value = v.data;
	ch.value_len = v.len;
	ch.src = DKV_SRC_LOCAL;
	rc = dkv_engine_apply(n->engine, &ch, &res);
	dkv_result_release(n->engine, &res);
	dkv_buf_release(&v);
	return rc;
}

/* Whether something accepts TCP connections at host:port (a short wait). */
static bool port_answers(const char *host, unsigned port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	char ps[16];
	bool ok = false;
	snprintf(ps, sizeof ps, "%u", port);
	if (getaddrinfo(host, ps, &hints, &ai) || !ai)
		return false;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			ok = true;
		} else if (errno == EINPROGRESS) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			int err = 0;
			socklen_t el = sizeof err;
			ok = poll(&pf, 1, 500) == 1 &&
			     !getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) && !err;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return ok;
}

/* Start a private serf agent for this node: RPC at host:port, gossip at
 * bind.  It gets SIGTERM if we die (even by SIGKILL), and SIGINT (a
 * graceful leave) when we stop. */
static pid_t fork_agent(const char *name, const char *host, unsigned port, const char *bind,
		       int verbose)
{
	char rpc[300];
	snprintf(rpc, sizeof rpc, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "distkv server: cannot start serf: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (verbose < 1) {
			int fd = open("/dev/null", O_WRONLY);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		execlp("serf", "serf", "agent", "-node", name, "-bind", bind, "-rpc-addr", rpc,
		       "-profile", "lan", "-log-level", verbose >= 2 ? "info" : "warn",
		       (char *)NULL);
		fprintf(stderr, "distkv server: cannot run serf: %s\n", strerror(errno));
		_exit(127);
	}
	return pid;
}

static pid_t spawn_agent(const char *name, const char *host, unsigned port, const char *bind,
			 int verbose)
{
	char rpc[300];
	snprintf(rpc, sizeof rpc, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	pid_t pid = fork_agent(name, host, port, bind, verbose);
	if (pid < 0)
		return -1;
	for (int i = 0; i < 100; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "distkv server: the serf agent exited at once (is %s free?)\n",
				bind);
			return -1;
		}
		if (port_answers(host, port))
			return pid;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "distkv server: the serf agent did not answer at %s\n", rpc);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

#define AGENT_BACKOFF_MIN 1000
#define AGENT_BACKOFF_MAX 30000
#define AGENT_STABLE_MS 30000 /* an agent that ran this long exited "late" */

/* Every second: has our agent exited?  Then start another, at once if it
 * had run for a while, else after a growing pause.  The Serf client
 * reconnects by itself, and the cluster then joins the agents it knew. */
static void agent_watch(uv_timer_t *h)
{
	struct node *n = h->data;
	struct agent_spec *a = &n->agent_spec;
	uint64_t now = uv_now(h->loop);
	if (n->stopping)
		return;
	if (n->agent > 0) {
		int st;
		if (waitpid(n->agent, &st, WNOHANG) != n->agent)
			return;
		bool early = now - n->agent_since < AGENT_STABLE_MS;
		n->agent_backoff = early ? (n->agent_backoff ? n->agent_backoff * 2 : AGENT_BACKOFF_MIN)
					 : 0;
		if (n->agent_backoff > AGENT_BACKOFF_MAX)
			n->agent_backoff = AGENT_BACKOFF_MAX;
		char how[64];
		if (WIFSIGNALED(st))
			snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(st));
		else
			snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
		fprintf(stderr, "distkv: the serf agent (pid %d) %s; starting another%s\n",
			(int)n->agent, how, n->agent_backoff ? " shortly" : "");
		n->agent = 0;
		n->agent_next = now + n->agent_backoff;
	}
	if (now < n->agent_next)
		return;
	pid_t pid = fork_agent(a->name, a->host, a->port, a->bind, a->verbose);
	if (pid < 0) {
		n->agent_next = now + AGENT_BACKOFF_MAX;
		return;
	}
	n->agent = pid;
	n->agent_since = now;
	if (a->verbose >= 0)
		fprintf(stderr, "distkv: started a serf agent (pid %d), gossip at %s\n", (int)pid,
			a->bind);
}

static void supervise_agent(struct node *n, const char *name, const char *host, unsigned port,
			    const char *bind, int verbose)
{
	n->agent_spec = (struct agent_spec){name, host, bind, port, verbose};
	n->agent_since = uv_now(&n->loop);
	uv_timer_init(&n->loop, &n->agent_timer);
	n->agent_timer.data = n;
	uv_timer_start(&n->agent_timer, agent_watch, 1000, 1000);
	n->agent_supervised = true;
}

static void stop_agent(pid_t pid)
{
	int st;
	if (pid <= 0)
		return;
	kill(pid, SIGINT); /* serf's graceful leave */
	for (int i = 0; i < 60; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static size_t cfg_size(const struct dkv_config *cfg, const char *key, int64_t dflt)
{
	int64_t v = dkv_config_int(cfg, key, dflt);
	return v > 0 ? (size_t)v : (size_t)dflt;
}

/* server.mount.users.UID (or .NAME, a Unix user) = distkv user: *out
 * (free it), or -EINVAL with err saying why. */
static int mount_users(const struct dkv_config *cfg, struct dkvfs_uidmap **out, size_t *n,
		       char *err, size_t errlen)
{
	static const char prefix[] = "server.mount.users.";
	const char *key;
	const uint8_t *mp;
	size_t len;
	*out = NULL;
	*n = 0;
	for (size_t i = 0; dkv_config_at(cfg, i, &key, &mp, &len); i++) {
		if (strncmp(key, prefix, sizeof prefix - 1))
			continue;
		const char *who = key + sizeof prefix - 1, *user = dkv_config_str(cfg, key, NULL);
		char *end;
		errno = 0;
		unsigned long uid = strtoul(who, &end, 10);
		if (!*who || *end || errno || uid > (uid_t)-2) {
			struct passwd *pw = getpwnam(who);
			if (!pw) {
				snprintf(err, errlen, "%s: no such Unix user %s", key, who);
				return -EINVAL;
			}
			uid = pw->pw_uid;
		}
		if (!user || !*user) {
			snprintf(err, errlen, "%s: the value must be a distkv user name", key);
			return -EINVAL;
		}
		*out = dkv_xrealloc(*out, (*n + 1) * sizeof **out);
		(*out)[(*n)++] = (struct dkvfs_uidmap){.uid = (uid_t)uid, .user = user};
	}
	return 0;
}

/* Mount the tree (when the node is in sync: an empty tree must not be
 * shown while the state is downloaded). */
static void do_mount(struct node *n)
{
	char err[256];
	if (!n->mount || !*n->mount || n->fs || n->exit_code || n->stopping)
		return;
	struct dkvfs_uidmap *users = NULL;
	size_t nusers = 0;
	bool allow_other = dkv_config_bool(n->cli->cfg, "server.mount.allow_other", false);
	int rc = mount_users(n->cli->cfg, &users, &nusers, err, sizeof err);
	if (!rc && nusers && !allow_other) {
		snprintf(err, sizeof err, "server.mount.users needs server.mount.allow_other=true");
		rc = -EINVAL;
	}
	if (rc) {
		fprintf(stderr, "distkv server: %s\n", err);
		free(users);
		n->exit_code = 1;
		shut_down(n);
		return;
	}
	struct dkvfs_opts fo = {
		.mountpoint = n->mount,
		.inotify = dkv_config_bool(n->cli->cfg, "server.mount_inotify", true),
		.spin_us = (int)dkv_config_int(n->cli->cfg, "server.mount_spin_us", 50),
		.debug = n->cli->verbose >= 3,
		.logger = n->logger,
		.fence_moved = n->server ? dkv_server_fence_moved : NULL,
		.fence_arg = n->server,
		.user = dkv_config_str(n->cli->cfg, "server.mount.user", NULL),
		.allow_other = allow_other,
		.users = users,
		.nusers = nusers,
	};
	rc = dkvfs_mount(&n->fs, &n->loop, n->engine, &fo, err, sizeof err);
	free(users);
	if (rc) {
		fprintf(stderr, "distkv server: %s\n", err);
		n->exit_code = 1;
		shut_down(n);
		return;
	}
	if (n->server) {
		struct dkv_fence f;
		dkvfs_fence(n->fs, &f);
		dkv_server_set_fence(n->server, &f);
	}
	if (n->verbose >= 0) {
		fprintf(stderr, "distkv: tree mounted at %s\n", n->mount);
	}
}

/* In sync, and mounted when a mount is asked for: tell systemd. */
static void announce_ready(struct node *n)
{
	char msg[300];
	if (n->exit_code || n->stopping)
		return;
	snprintf(msg, sizeof msg, "READY=1\nSTATUS=node %s serving%s%s", n->name,
		 n->fs ? ", mounted at " : "", n->fs ? n->mount : "");
	dkv_sd_notify(msg);
}

static void on_ready(void *arg)
{
	do_mount(arg);
	announce_ready(arg);
}

/* connect.auth, for logging in to peers: a string such as "_test
 * name=joe", parsed into n->peer_auth.  A prompt (password?=) cannot be
 * answered by a daemon.  0, or 2 after a message. */
static int parse_peer_auth(struct node *n, const struct dkv_cli *cli)
{
	const uint8_t *mp;
	size_t len;
	char err[300];
	n->peer_auth.method = DKV_AUTH_NONE;
	if (!dkv_config_get(cli->cfg, "connect.auth", &mp, &len) || *mp == 0xc0)
		return 0;
	const char *text = dkv_config_str(cli->cfg, "connect.auth", NULL);
	if (!text) {
		fprintf(stderr, "distkv server: connect.auth must be a string such as "
			"\"_test name=joe\"\n");
		return 2;
	}
	if (dkv_auth_spec_parse(&n->peer_auth, text, err, sizeof err)) {
		fprintf(stderr, "distkv server: connect.auth: %s\n", err);
		return 2;
	}
	if (n->peer_auth.prompt && !n->peer_auth.password) {
		fprintf(stderr, "distkv server: connect.auth: a server cannot ask for a password "
			"(password?=%s); give it as password=...\n", n->peer_auth.prompt);
		dkv_auth_spec_release(&n->peer_auth);
		return 2;
	}
	return 0;
}

/* Find or start the Serf agent, then join the network. */
static int start_cluster(struct node *n, struct dkv_cli *cli, const char *name,
			 const struct dkv_server_opts *so, const char **joins, size_t njoins)
{
	const char *host = dkv_config_str(cli->cfg, "server.serf.host", "127.0.0.1");
	int64_t port = dkv_config_int(cli->cfg, "server.serf.port", 7373);
	char adv[300], err[400];
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "distkv server: server.serf.port must be a port number\n");
		return -1;
	}
	if (!port_answers(host, (unsigned)port) &&
	    dkv_config_bool(cli->cfg, "server.serf.spawn", true)) {
		const char *bind = dkv_config_str(cli->cfg, "server.serf.bind", "127.0.0.1:7946");
		n->agent = spawn_agent(name, host, (unsigned)port, bind, cli->verbose);
		if (n->agent < 0) {
			n->agent = 0;
			return -1;
		}
		if (cli->verbose >= 0)
			fprintf(stderr, "distkv: started a serf agent (pid %d), gossip at %s\n",
				(int)n->agent, bind);
		supervise_agent(n, name, host, (unsigned)port, bind, cli->verbose);
	}
	const char *advertise = dkv_config_str(cli->cfg, "server.advertise", NULL);
	if (!advertise) {
		snprintf(adv, sizeof adv, strchr(so->host, ':') ? "[%s]:%d" : "%s:%d", so->host,
			 dkv_server_port(n->server));
		advertise = adv;
	}
	struct dkv_cluster_opts co = {
		.root = dkv_config_str(cli->cfg, "server.root", ":distkv"),
		.serf_host = host,
		.serf_port = (unsigned)port,
		.serf_auth = dkv_config_str(cli->cfg, "server.serf.auth", NULL),
		.advertise = advertise,
		.join = joins,
		.njoin = njoins,
		.auth = n->peer_auth.method == DKV_AUTH_NONE ? NULL : &n->peer_auth,
		.ready_now = !so->unready,
		.verbose = cli->verbose,
		.on_ready = on_ready,
		.arg = n,
	};
	double tw = dkv_config_float(cli->cfg, "server.tombstone.interval", 10);
	if (tw > 0 && tw < 86400)
		co.tombstone_ms = (unsigned)(tw * 1000);
	double tf = dkv_config_float(cli->cfg, "server.tombstone.forget", 86400);
	if (tf >= 1 && tf < 1e8)
		co.forget_s = (unsigned)tf;
	if (dkv_cluster_new(&n->cluster, &n->loop, n->engine, n->server, &co, err, sizeof err)) {
		fprintf(stderr, "distkv server: %s\n", err);
		n->cluster = NULL;
		return -1;
	}
	return 0;
}

int dkv_cli_server(struct dkv_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"init", required_argument, NULL, 'i'},
		{"eval", no_argument, NULL, 'e'},
		{"mount", required_argument, NULL, 'm'},
		{"load", required_argument, NULL, 'l'},
		{"save", required_argument, NULL, 'S'},
		{"sync", required_argument, NULL, 'Y'},
		{"skip-damaged", no_argument, NULL, 'D'},
		{"join", required_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	const char *init = NULL;
	/* server.mount is the directory; in a YAML file that also sets
	 * server.mount.user and the like, server.mount.path is */
	const char *mount = dkv_config_str(cli->cfg, "server.mount", NULL);
	if (!mount)
		mount = dkv_config_str(cli->cfg, "server.mount.path", NULL);
	bool eval = false;
	char **loads = dkv_xcalloc((size_t)argc + 1, sizeof *loads);
	int nloads = 0;
	const char **joins = dkv_xcalloc((size_t)argc + 1, sizeof *joins);
	size_t njoins = 0;
	const char *save = NULL;
	bool skip_damaged = false;
	const char *synctext = dkv_config_str(cli->cfg, "server.log.sync", "batch");
	enum dkv_log_sync default_sync, save_sync;
	int c, rc;

	if (dkv_log_sync_parse(synctext, strlen(synctext), &default_sync)) {
		fprintf(stderr, "distkv server: server.log.sync must be always, batch or none\n");
		free(loads);
		free(joins);
		return 2;
	}
	save_sync = default_sync;
	dkv_cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "+i:em:l:", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			loads[nloads++] = optarg;
			break;
		case 'S':
			save = optarg;
			break;
		case 'J':
			joins[njoins++] = optarg;
			break;
		case 'D':
			skip_damaged = true;
			break;
		case 'Y':
			if (dkv_log_sync_parse(optarg, strlen(optarg), &save_sync)) {
				fprintf(stderr, "distkv server: --sync must be always, batch or none\n");
				free(loads);
		free(joins);
				return 2;
			}
			break;
		case 'm':
			mount = optarg;
			break;
		case 'i':
			init = optarg;
			break;
		case 'e':
			eval = true;
			break;
		case 'H':
			usage(stdout);
			free(loads);
		free(joins);
			return 0;
		default:
			usage(stderr);
			free(loads);
		free(joins);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "distkv server: exactly one NODENAME is needed\n");
		usage(stderr);
		free(loads);
		free(joins);
		return 2;
	}
	if (eval && !init) {
		fprintf(stderr, "distkv server: -e needs -i VALUE\n");
		free(loads);
		free(joins);
		return 2;
	}
	const char *name = argv[optind];

	struct node n = {.verbose = cli->verbose, .peer_auth = {.method = DKV_AUTH_NONE}};
	if (cli->verbose >= 2) /* the mount's refused reads and lookups, among others */
		dkv_report_set_level(DKV_REPORT_DEBUG);
	bool cluster = dkv_config_bool(cli->cfg, "server.cluster", true);
	/* only a node with peers logs in anywhere; a standalone one ignores it */
	if (cluster && (rc = parse_peer_auth(&n, cli))) {
		free(loads);
		free(joins);
		return rc;
	}
	struct dkv_engine_opts eo = {
		.node = name,
		.chain_length = (unsigned)dkv_config_int(cli->cfg, "server.change.length", 5),
	};
	n.engine = dkv_engine_new(&eo);
	/* stored Python (types, codecs): each call's time limit */
	dkv_py_set_timeout(dkv_config_float(cli->cfg, "server.python.timeout", 0.5));
	dkv_py_set_inline(dkv_config_bool(cli->cfg, "server.python.inline", false));
	dkv_engine_add_checker(n.engine, dkv_codec_check, NULL); /* codec and converter records */
	n.types = dkv_types_attach(n.engine);
	dkv_code_add_checker(n.engine); /* stored code must compile */
	rc = load_all(&n, loads, nloads, skip_damaged);
	free(loads);
	if (rc || (init && set_root(&n, init, eval))) {
		free_engine(&n);
		dkv_auth_spec_release(&n.peer_auth);
		free(joins);
		return 1;
	}

	struct dkv_server_opts so = {
		.host = dkv_config_str(cli->cfg, "server.bind_default.host", "localhost"),
		.port = (int)dkv_config_int(cli->cfg, "server.bind_default.port", 27586),
		.max_msg_size = cfg_size(cli->cfg, "server.max_msg_size", 16 << 20),
		.max_out_buffer = cfg_size(cli->cfg, "server.max_out_buffer", 64 << 20),
		.qlen = (unsigned)dkv_config_int(cli->cfg, "server.buffer", 10),
		.max_watch_queue = cfg_size(cli->cfg, "server.max_watch_queue", 100000),
		.unready = cluster && !init,
	};
	char err[256];
	uv_loop_init(&n.loop);
	signal(SIGPIPE, SIG_IGN);
	double interval = dkv_config_float(cli->cfg, "server.log.interval", 0.1);
	struct dkv_logger_opts lo = {
		.sync = default_sync,
		.interval_ms = interval > 0 && interval < 3600 ? (unsigned)(interval * 1000 + 0.5) : 100,
		.verbose = cli->verbose,
	};
	n.logger = dkv_logger_new(&n.loop, n.engine, &lo);
	so.logger = n.logger;
	double eiv = dkv_config_float(cli->cfg, "server.errors.interval", 1);
	struct dkv_errlog_opts elo = {
		.interval_ms = eiv > 0 && eiv < 3600 ? (unsigned)(eiv * 1000 + 0.5) : 1000,
	};
	n.errlog = dkv_errlog_new(&n.loop, n.engine, &elo);
	if (save) {
		/* the file holds the state before anyone can change it */
		struct started st = {0};
		rc = dkv_logger_start(n.logger, save, save_sync, false, save_started, &st);
		while (!rc && !st.done)
			uv_run(&n.loop, UV_RUN_ONCE);
		if (rc || st.status) {
			fprintf(stderr, "distkv server: --save: %s\n",
				rc ? strerror(-rc) : st.msg);
			dkv_errlog_close(n.errlog);
			dkv_logger_close(n.logger, logger_gone, &n);
			uv_run(&n.loop, UV_RUN_DEFAULT);
			uv_loop_close(&n.loop);
			free_engine(&n);
			dkv_auth_spec_release(&n.peer_auth);
			return 1;
		}
	}
	rc = dkv_server_new(&n.server, &n.loop, n.engine, &so, err, sizeof err);
	if (rc) {
		fprintf(stderr, "distkv server: %s\n", err);
		dkv_errlog_close(n.errlog);
		dkv_logger_close(n.logger, logger_gone, &n);
		uv_run(&n.loop, UV_RUN_DEFAULT);
		uv_loop_close(&n.loop);
		free_engine(&n);
		dkv_auth_spec_release(&n.peer_auth);
		return 1;
	}
	uv_signal_init(&n.loop, &n.sigint);
	uv_signal_init(&n.loop, &n.sigterm);
	n.sigint.data = n.sigterm.data = &n;
	uv_signal_start(&n.sigint, on_signal, SIGINT);
	uv_signal_start(&n.sigterm, on_signal, SIGTERM);
	rc = cluster ? start_cluster(&n, cli, name, &so, joins, njoins) : 0;
	dkv_auth_spec_release(&n.peer_auth); /* the cluster has its copy */
	if (rc) {
		n.exit_code = 1;
		shut_down(&n);
		uv_run(&n.loop, UV_RUN_DEFAULT);
		uv_loop_close(&n.loop);
		free_engine(&n);
		stop_agent(n.agent);
		free(joins);
		return 1;
	}
	free(joins);
	if (cli->verbose >= 0)
		fprintf(stderr, "distkv: node %s serving on %s:%d\n", name, so.host,
			dkv_server_port(n.server));
	n.mount = mount;
	n.name = name;
	n.cli = cli;
	if (!so.unready || !n.cluster) {
		do_mount(&n);
		announce_ready(&n);
	}
	start_runner(&n); /* its requests wait until the node is ready */

	uv_run(&n.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&n.loop))
		fprintf(stderr, "distkv: warning: handles still open at exit\n");
	free_engine(&n);
	stop_agent(n.agent);
	return n.exit_code;
}
