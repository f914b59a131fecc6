/*
 * agents.h - real `serf agent` processes for the tests and the benchmark
 * of serf/: free loopback ports, a temporary directory for logs and
 * config, start and kill.  Every agent started is killed by agents_end(),
 * at exit, and by the kernel if this process dies first.
 */
#ifndef SERF_TEST_AGENTS_H
#define SERF_TEST_AGENTS_H

#include <stdbool.h>
#include <sys/types.h>

struct agent {
	const char *name;
	const char *auth;    /* rpc_auth key, or NULL */
	const char *profile; /* "lan", "local", ...; NULL: local */
	int bind_port;       /* chosen by agent_start when 0; kept for restarts */
	int rpc_port;
	pid_t pid;           /* 0: not running */
	char bind_addr[32];  /* "127.0.0.1:PORT" */
};

/* Whether a `serf` binary is on PATH. */
bool agents_available(void);
/* Make the temporary directory; false on failure. */
bool agents_begin(void);
/* Kill every agent; remove the directory unless keep (then say where). */
void agents_end(bool keep);
const char *agents_dir(void);

/* Start a (the first time: with fresh ports) and wait until its RPC port
 * accepts connections (at most 10 s). */
bool agent_start(struct agent *a);
/* SIGKILL and reap. */
void agent_kill(struct agent *a);

/* A port free for both TCP and UDP on 127.0.0.1, or -1. */
int free_port(void);
double now_s(void);
void msleep(int ms);

#endif
