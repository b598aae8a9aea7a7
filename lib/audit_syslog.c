// SPDX-License-Identifier: GPL-2.0
/*
 * Audit syslog mirror: RFC 5424 messages over a unix datagram socket.  Best
 * effort by design: the signed log is the record, syslog is a convenience, so
 * a full or missing receiver drops messages instead of slowing the writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

/* authpriv (10) * 8 + info (6): audit data is for administrators only. */
#define SYSLOG_PRI 86
#define SYSLOG_MAX 8192

struct ag_audit_syslog {
	int fd;
	struct sockaddr_un addr;
	char host[256];
	char app[49]; /* RFC 5424 APP-NAME is at most 48 characters */
	pid_t pid;
	char msg[SYSLOG_MAX];
};

struct ag_audit_syslog *ag_audit_syslog_open(const char *path, const char *app)
{
	struct ag_audit_syslog *s;

	if (!path)
		path = "/dev/log";
	if (strlen(path) >= sizeof(s->addr.sun_path))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0) {
		free(s);
		return NULL;
	}
	s->addr.sun_family = AF_UNIX;
	strcpy(s->addr.sun_path, path);
	if (gethostname(s->host, sizeof(s->host) - 1) || !s->host[0])
		strcpy(s->host, "-");
	snprintf(s->app, sizeof(s->app), "%s", app && *app ? app : "agentgate");
	s->pid = getpid();
	return s;
}

void ag_audit_syslog_send(struct ag_audit_syslog *s, const char *line, size_t len)
{
	struct timespec now;
	char ts[AG_AUDIT_TS_LEN];
	int n;

	if (!s)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	ag_audit_format_ts(&now, ts);
	n = snprintf(s->msg, sizeof(s->msg), "<%d>1 %s %s %s %d audit - ", SYSLOG_PRI, ts, s->host,
		     s->app, (int)s->pid);
	if (n < 0 || (size_t)n >= sizeof(s->msg))
		return;
	/* Long records are cut: the full record is in the signed log. */
	if (len > sizeof(s->msg) - (size_t)n)
		len = sizeof(s->msg) - (size_t)n;
	memcpy(s->msg + n, line, len);
	(void)sendto(s->fd, s->msg, (size_t)n + len, MSG_DONTWAIT | MSG_NOSIGNAL,
		     (const struct sockaddr *)&s->addr, sizeof(s->addr));
}

void ag_audit_syslog_close(struct ag_audit_syslog *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}
