/*
 * secret.c - asking for a password: on the terminal without echo, or one
 * line from standard input when that is not a terminal (scripts, tests).
 */
#include "client_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int dkv__cli_ask_secret(struct dkv__cli_ctx *x, const char *prompt, char **out)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	*out = NULL;
	if (isatty(STDIN_FILENO)) {
		int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
		FILE *tty = fd >= 0 ? fdopen(fd, "r+") : NULL;
		if (!tty) {
			if (fd >= 0)
				close(fd);
			fprintf(stderr, "%s: cannot open the terminal to ask for %s\n",
				x->cli->progname, prompt);
			return 1;
		}
		struct termios old, quiet;
		bool restore = tcgetattr(fd, &old) == 0;
		if (restore) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			quiet.c_lflag |= ECHONL;
			tcsetattr(fd, TCSAFLUSH, &quiet);
		}
		fprintf(tty, "%s: ", prompt);
		fflush(tty);
		n = getline(&line, &cap, tty);
		if (restore)
			tcsetattr(fd, TCSAFLUSH, &old);
		fclose(tty);
	} else {
		n = getline(&line, &cap, stdin);
	}
	if (n < 0) {
		free(line);
		fprintf(stderr, "%s: no answer for %s\n", x->cli->progname, prompt);
		return 1;
	}
	if (n > 0 && line[n - 1] == '\n')
		line[--n] = 0;
	*out = line;
	return 0;
}
