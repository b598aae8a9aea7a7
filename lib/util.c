// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

static enum ag_log_level log_level = AG_LOG_INFO;

int ag_errf(struct ag_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	if (!code)
		code = EIO;
	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int ag_log_parse_level(const char *s, enum ag_log_level *out)
{
	for (size_t i = 0; i < AG_ARRAY_SIZE(level_names); i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum ag_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void ag_log_set_level(enum ag_log_level level)
{
	log_level = level;
}

bool ag_log_enabled(enum ag_log_level level)
{
	return level <= log_level;
}

void ag_log(enum ag_log_level level, const char *event, const char *fmt, ...)
{
	char line[2048], ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n;

	if (!ag_log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "ts=%s.%06ldZ level=%s event=%s ", ts, now.tv_nsec / 1000,
		     level_names[level], event);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One write per line: lines from concurrent processes never interleave. */
	n = strlen(line);
	if ((size_t)n < sizeof(line) - 1) {
		line[n++] = '\n';
	} else {
		line[sizeof(line) - 2] = '\n';
		n = sizeof(line) - 1;
	}
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void ag_strcpy_cut(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

const char *ag_logq(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	if (len < 3) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (; *s && o + 6 < len; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = c;
		} else if (c < 0x20 || c == 0x7f) {
			o += snprintf(buf + o, len - o, "\\x%02x", c);
		} else {
			buf[o++] = c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

bool ag_addr_is_v4(const __u8 addr[16])
{
	static const __u8 prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(addr, prefix, sizeof(prefix));
}

unsigned int ag_addr_sockaddr(const __u8 addr[16], __u16 port, struct sockaddr *sa,
			      unsigned int cap)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	bool v4 = ag_addr_is_v4(addr);
	unsigned int len = v4 ? sizeof(sin) : sizeof(sin6);

	if (cap < len)
		return 0;
	memcpy(&sin.sin_addr, addr + 12, 4);
	memcpy(&sin6.sin6_addr, addr, 16);
	memcpy(sa, v4 ? (const void *)&sin : (const void *)&sin6, len);
	return len;
}

const char *ag_addr_fmt(const __u8 addr[16], __u16 port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ag_addr_is_v4(addr)) {
		inet_ntop(AF_INET, addr + 12, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, port);
	} else {
		inet_ntop(AF_INET6, addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, port);
	}
	return buf;
}

int ag_addr_parse(const char *s, __u8 addr[16], int *prefixlen)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	long plen = -1;
	bool v4;

	if (n == 0 || n >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, ip, addr + 12) == 1) {
		addr[10] = addr[11] = 0xff;
		v4 = true;
	} else if (inet_pton(AF_INET6, ip, addr) == 1) {
		v4 = false;
	} else {
		return -EINVAL;
	}
	if (slash) {
		char *end;

		errno = 0;
		plen = strtol(slash + 1, &end, 10);
		if (errno || *end || end == slash + 1 || plen < 0 || plen > (v4 ? 32 : 128))
			return -EINVAL;
	}
	if (prefixlen)
		*prefixlen = plen < 0 ? 128 : (int)(v4 ? plen + 96 : plen);
	else if (slash)
		return -EINVAL;
	return 0;
}

int ag_write_file(const char *path, const char *s, struct ag_err *err)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(s);
	ssize_t w;

	if (fd < 0)
		return ag_errf(err, errno, "%s: open: %s", path, strerror(errno));
	w = write(fd, s, n);
	if (w < 0 || (size_t)w != n) {
		int e = w < 0 ? errno : EIO;

		close(fd);
		return ag_errf(err, e, "%s: write \"%s\": %s", path, s, strerror(e));
	}
	close(fd);
	return 0;
}

int ag_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t ag_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t ag_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int ag_bind_wait(int fd, const struct sockaddr *sa, unsigned int len, int tries)
{
	int ret = bind(fd, sa, len);

	for (int i = 0; ret && errno == EADDRINUSE && i < tries; i++) {
		usleep(10 * 1000);
		ret = bind(fd, sa, len);
	}
	return ret;
}
