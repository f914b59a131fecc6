/*
 * agents.c - starting and stopping real Serf agents for tests (see
 * agents.h).  Agents are children made with fork/exec so that the child
 * can ask for PR_SET_PDEATHSIG before exec: a crashed test leaves no
 * agent behind.
 */
#include "agents.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_AGENTS 16

static char dir[] = "/tmp/serf-test-XXXXXX";
static bool have_dir;
static struct agent *started[MAX_AGENTS];
static int nstarted;

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

int free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof(sa);
		int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
		int port = -1;
		if (t >= 0 && u >= 0 && !bind(t, (struct sockaddr *)&sa, sizeof(sa)) &&
		    !getsockname(t, (struct sockaddr *)&sa, &len) &&
		    !bind(u, (struct sockaddr *)&sa, sizeof(sa)))
			port = ntohs(sa.sin_port);
		if (t >= 0)
			close(t);
		if (u >= 0)
			close(u);
		if (port > 0)
			return port;
	}
	return -1;
}

static bool rpc_port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (fd >= 0)
		close(fd);
	return ok;
}

bool agents_available(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	if (!path)
		return false;
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, sizeof(buf), "%.*s/serf", (int)n, path);
		if (!access(buf, X_OK))
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

static void kill_all(void)
{
	for (int i = 0; i < nstarted; i++)
		agent_kill(started[i]);
}

bool agents_begin(void)
{
	if (!mkdtemp(dir))
		return false;
	have_dir = true;
	signal(SIGPIPE, SIG_IGN);
	atexit(kill_all);
	return true;
}

const char *agents_dir(void)
{
	return dir;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void agents_end(bool keep)
{
	kill_all();
	if (!have_dir)
		return;
	if (keep)
		printf("# agent logs kept in %s\n", dir);
	else
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

bool agent_start(struct agent *a)
{
	char node[64], bind[64], rpc[64], profile[64], auth[256], log[256];
	bool known = false;

	if (!a->bind_port)
		a->bind_port = free_port();
	if (!a->rpc_port)
		a->rpc_port = free_port();
	if (a->bind_port < 0 || a->rpc_port < 0)
		return false;
	snprintf(a->bind_addr, sizeof(a->bind_addr), "127.0.0.1:%d", a->bind_port);
	snprintf(node, sizeof(node), "-node=%s", a->name);
	snprintf(bind, sizeof(bind), "-bind=%s", a->bind_addr);
	snprintf(rpc, sizeof(rpc), "-rpc-addr=127.0.0.1:%d", a->rpc_port);
	snprintf(profile, sizeof(profile), "-profile=%s", a->profile ? a->profile : "local");
	snprintf(log, sizeof(log), "%s/%s.log", dir, a->name);
	if (a->auth) {
		/* the auth key has no flag, only the config file's rpc_auth */
		snprintf(auth, sizeof(auth), "%s/%s.json", dir, a->name);
		FILE *f = fopen(auth, "w");
		if (!f)
			return false;
		fprintf(f, "{\"rpc_auth\": \"%s\"}\n", a->auth);
		fclose(f);
		snprintf(auth, sizeof(auth), "-config-file=%s/%s.json", dir, a->name);
	}
	const char *argv[] = {"serf", "agent", node, bind, rpc, profile, a->auth ? auth : NULL,
			      NULL};

	for (int i = 0; i < nstarted; i++)
		known |= started[i] == a;
	if (!known) {
		if (nstarted == MAX_AGENTS)
			return false;
		started[nstarted++] = a;
	}

	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp("serf", (char *const *)argv);
		_exit(127);
	}
	a->pid = pid;
	for (double end = now_s() + 10; now_s() < end; msleep(20)) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			printf("# agent %s exited at start; see %s\n", a->name, log);
			a->pid = 0;
			return false;
		}
		if (rpc_port_open(a->rpc_port))
			return true;
	}
	printf("# agent %s did not open its RPC port\n", a->name);
	return false;
}

void agent_kill(struct agent *a)
{
	if (a->pid > 0) {
		kill(a->pid, SIGKILL);
		waitpid(a->pid, NULL, 0);
	}
	a->pid = 0;
}
