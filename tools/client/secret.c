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

/* One line from fd, read a byte at a time so that nothing after it is
 * consumed (a script may feed several answers on one standard input).
 * The line without its newline, malloc'd; NULL at EOF before anything. */
static char *read_line(int fd)
{
	struct dkv_buf b = {0};
	char ch;
	ssize_t n;
	while ((n = read(fd, &ch, 1)) == 1 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (ch == '\n')
			break;
		dkv_buf_append(&b, &ch, 1);
	}
	if (n == 0 && !b.len) {
		dkv_buf_release(&b);
		return NULL;
	}
	char *line = strndup(b.len ? (const char *)b.data : "", b.len);
	if (b.data)
		explicit_bzero(b.data, b.cap);
	dkv_buf_release(&b);
	return line;
}

int dkv__cli_ask_secret(struct dkv__cli_ctx *x, const char *prompt, char **out)
{
	char *line;
	*out = NULL;
	if (isatty(STDIN_FILENO)) {
		int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
		if (fd < 0) {
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
		dprintf(fd, "%s: ", prompt);
		line = read_line(fd);
		if (restore)
			tcsetattr(fd, TCSAFLUSH, &old);
		close(fd);
	} else {
		line = read_line(STDIN_FILENO);
	}
	if (!line) {
		fprintf(stderr, "%s: no answer for %s\n", x->cli->progname, prompt);
		return 1;
	}
	*out = line;
	return 0;
}
