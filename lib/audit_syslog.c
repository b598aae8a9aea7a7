// SPDX-License-Identifier: GPL-2.0
/*
 * Audit records as RFC 5424 messages: the mirror over a unix datagram socket,
 * and the frames lib/audit_ship.c sends to a collector.  The mirror is best
 * effort by design: the signed log is the record, syslog is a convenience, so
 * a full or missing receiver drops messages instead of slowing the writer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "audit_ship.h"

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

/* "<PRI>1 TS HOST APP PID audit SD ": the header both forms share; -1 if it does not fit. */
static int head(char *out, size_t cap, const char *host, const char *app, int pid, const char *sd)
{
	struct timespec now;
	char ts[AG_AUDIT_TS_LEN];
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	ag_audit_format_ts(&now, ts);
	/* RFC 5424 TIME-SECFRAC has at most 6 digits: microseconds. */
	memcpy(ts + 26, "Z", 2);
	n = snprintf(out, cap, "<%d>1 %s %s %s %d audit %s ", SYSLOG_PRI, ts, host, app, pid, sd);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

void ag_audit_syslog_send(struct ag_audit_syslog *s, const char *line, size_t len)
{
	int n;

	if (!s)
		return;
	n = head(s->msg, sizeof(s->msg), s->host, s->app, (int)s->pid, "-");
	if (n < 0)
		return;
	/* Long records are cut: the full record is in the signed log. */
	if (len > sizeof(s->msg) - (size_t)n)
		len = sizeof(s->msg) - (size_t)n;
	memcpy(s->msg + n, line, len);
	(void)sendto(s->fd, s->msg, (size_t)n + len, MSG_DONTWAIT | MSG_NOSIGNAL,
		     (const struct sockaddr *)&s->addr, sizeof(s->addr));
}

/* An RFC 5424 PARAM-VALUE: '"', '\\' and ']' escaped; false if it does not fit. */
static bool sd_value(char *out, size_t cap, const char *v)
{
	size_t o = 0;

	for (; *v; v++) {
		if (o + 3 > cap)
			return false;
		if (*v == '"' || *v == '\\' || *v == ']')
			out[o++] = '\\';
		out[o++] = *v;
	}
	out[o] = '\0';
	return true;
}

int ag_audit_ship_frame(char *out, size_t cap, const char *host, const char *instance, uint64_t seq,
			const char *line, size_t len)
{
	char sd[1024], hdr[1600], h[520], in[200];
	int n, digits;

	if (!sd_value(h, sizeof(h), host) || !sd_value(in, sizeof(in), instance))
		return -EINVAL;
	snprintf(sd, sizeof(sd),
		 "[" AG_AUDIT_SHIP_SDID " host=\"%s\" instance=\"%s\" seq=\"%" PRIu64 "\"]", h, in,
		 seq);
	n = head(hdr, sizeof(hdr), host, instance, (int)getpid(), sd);
	if (n < 0 || len > AG_AUDIT_MAX_LINE)
		return -EINVAL;
	digits = snprintf(out, cap, "%zu ", (size_t)n + len);
	if (digits < 0 || (size_t)digits + (size_t)n + len > cap)
		return -ENOSPC;
	memcpy(out + digits, hdr, (size_t)n);
	memcpy(out + digits + n, line, len);
	return digits + n + (int)len;
}

void ag_audit_syslog_close(struct ag_audit_syslog *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}
