/* SPDX-License-Identifier: GPL-2.0 */
/* Errors, logging and small helpers shared by the daemon, the CLI and tests. */
#ifndef AG_UTIL_H
#define AG_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#define AG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * An error: a negative errno and a one-line message that names the object
 * and the cause ("cgroup /sys/fs/cgroup/x: mkdir: Permission denied").
 */
struct ag_err {
	int code;
	char msg[512];
};

/* Sets err and returns -code, so `return ag_errf(err, EINVAL, ...)` reads well. */
int ag_errf(struct ag_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum ag_log_level {
	AG_LOG_ERROR,
	AG_LOG_WARN,
	AG_LOG_INFO,
	AG_LOG_DEBUG,
};

int ag_log_parse_level(const char *s, enum ag_log_level *out);
void ag_log_set_level(enum ag_log_level level);
bool ag_log_enabled(enum ag_log_level level);
/*
 * One logfmt line on stderr: "ts=... level=info event=EVENT " followed by
 * the caller's key=value pairs.  Values an agent controls go through
 * ag_logq() so they cannot forge fields or lines.
 */
void ag_log(enum ag_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Quote s for logfmt into buf (always quoted, escapes ", \ and controls). */
const char *ag_logq(char *buf, size_t len, const char *s);

/* snprintf(dst, cap, "%s", src) without printf, for the per-call path: cap > 0. */
void ag_strcpy_cut(char *dst, size_t cap, const char *src);

/* Formats an address as "a.b.c.d:port" (v4-mapped) or "[v6]:port". */
const char *ag_addr_fmt(const __u8 addr[16], __u16 port, char *buf, size_t len);
/* Parses "a.b.c.d", "v6" with optional "/prefix"; v4 becomes v4-mapped and
 * its prefix is counted in v6 bits (so /8 becomes /104). */
int ag_addr_parse(const char *s, __u8 addr[16], int *prefixlen);
bool ag_addr_is_v4(const __u8 addr[16]);
struct sockaddr;
/* addr (v4-mapped for IPv4) and port as the socket address to bind or dial
 * into sa, which has cap bytes: its length, 0 if cap is too small. */
unsigned int ag_addr_sockaddr(const __u8 addr[16], __u16 port, struct sockaddr *sa,
			      unsigned int cap);

/* Reads a whole small regular file; *out is NUL-terminated, caller frees
 * (lib/fileio.c, where the other whole-file helpers live). */
int ag_read_file(const char *path, size_t max, char **out, size_t *len, struct ag_err *err);
/* Writes a small string to a file (cgroup and proc knobs). */
int ag_write_file(const char *path, const char *s, struct ag_err *err);

/* The value of a hex digit of either case, or -1. */
int ag_hex_digit(char c);

uint64_t ag_now_ns(void);  /* CLOCK_MONOTONIC */
uint64_t ag_wall_ns(void); /* CLOCK_REALTIME */

/*
 * bind(2), retried every 10 ms up to tries times while EADDRINUSE: a daemon
 * gone a moment ago (stopped, or handed over in a live upgrade) may still
 * hold the port, since its io_uring releases sockets asynchronously.
 */
int ag_bind_wait(int fd, const struct sockaddr *sa, unsigned int len, int tries);

#endif
