// SPDX-License-Identifier: GPL-2.0
/*
 * sd_notify(3) for agentgated (notify.h).  The address is parsed once, at
 * start-up, and every state is a sendto() of its own: the manager may
 * re-create its socket (systemd re-executing itself), so the socket is
 * never connected.  Sending needs write permission on a path socket only,
 * which root has as its owner or through the socket's mode, so it works
 * after the capabilities are dropped.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

static struct {
	int fd; /* -1: no manager */
	struct sockaddr_un sun;
	socklen_t len;
} notify = { .fd = -1 };

int ag_notify_open(struct ag_err *err)
{
	const char *env = getenv("NOTIFY_SOCKET");
	size_t n = env ? strlen(env) : 0;
	int ret = 0;

	if (!env)
		return 0;
	memset(&notify.sun, 0, sizeof(notify.sun));
	notify.sun.sun_family = AF_UNIX;
	/* Fail closed: a manager we cannot answer would wait for us in vain. */
	if (n < 2 || n > sizeof(notify.sun.sun_path) || (env[0] != '/' && env[0] != '@') ||
	    (env[0] == '/' && n == sizeof(notify.sun.sun_path))) {
		ret = ag_errf(err, EINVAL,
			      "NOTIFY_SOCKET \"%.*s\": not an AF_UNIX path or @abstract name",
			      (int)(n > 128 ? 128 : n), env);
		goto out;
	}
	memcpy(notify.sun.sun_path, env, n);
	if (env[0] == '@')
		notify.sun.sun_path[0] = '\0'; /* abstract: no terminating NUL counted */
	notify.len = offsetof(struct sockaddr_un, sun_path) + n + (env[0] == '/');
	notify.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify.fd < 0)
		ret = ag_errf(err, errno, "NOTIFY_SOCKET: socket: %s", strerror(errno));
out:
	unsetenv("NOTIFY_SOCKET");
	return ret;
}

bool ag_notify_managed(void)
{
	return notify.fd >= 0;
}

void ag_notify(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int n;

	if (notify.fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return; /* states are short constants: cannot happen */
	if (sendto(notify.fd, msg, n, MSG_NOSIGNAL, (struct sockaddr *)&notify.sun, notify.len) !=
	    n)
		ag_log(AG_LOG_WARN, "notify", "state=\"%.*s\" error=\"%s\"",
		       (int)strcspn(msg, "\n"), msg, strerror(errno));
}

void ag_notify_reloading(void)
{
	ag_notify("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)(ag_now_ns() / 1000));
}

void ag_notify_close(void)
{
	if (notify.fd >= 0)
		close(notify.fd);
	notify.fd = -1;
}
