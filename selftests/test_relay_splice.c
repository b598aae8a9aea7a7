// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's kernel splice (daemon/relay.c, bpf/splice.bpf.c): 3 MiB each
 * way through a spliced connection with every byte checked and none copied
 * by the daemon, a half-close passed on while the other way goes on, the
 * byte counts of the close record, the idle timeout (and a busy spliced
 * connection not taken for idle), the maps empty after 100 connections,
 * adopted on restart and gone on uninstall, relay_splice false copying, and
 * the classifier's bytes first: spliced after them, or copied when it read
 * part of a queued segment; and a reader that reads nothing, for which the
 * kernel holds what a copying relay would, and the verdict's bound more.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "ctl.h"
#include "kern.h"
#include "test.h"
#include "testlib.h"

/*
 * Each way through a spliced connection: less than the verdict's bound on
 * its backlog (AG_SPLICE_BACKLOG), which even a reader that stopped could
 * never reach, so these directions stay spliced however the machine is
 * loaded; relay_splice_flood goes past it.
 */
#define BULK (3u << 20)
_Static_assert(BULK < AG_SPLICE_BACKLOG, "a bulk transfer stays spliced");

/* What one side of a connection saw; in shared memory, filled by the agent. */
struct side {
	uint16_t port;
	int mode;
	uint64_t got, bad; /* bytes read, and how many differed from the pattern */
	int ret;
	char text[64];
	int closed_ms; /* idle: when the daemon closed it, from the connect */
	int acked;     /* head and bulk: its first write all in the daemon's socket */
};

enum {
	MODE_BULK,
	MODE_HALF,
	MODE_IDLE,
	MODE_BUSY,
	MODE_PING,
	MODE_HEAD,
	MODE_HEAD_BULK,
	MODE_FLOOD,
	MODE_SLOW
};

/* What the classifier reads (a Host it must look at) before the relay starts. */
static const char head[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/* The byte at offset i of a stream: not periodic at any buffer size. */
static unsigned char pattern(uint64_t i, unsigned int seed)
{
	return (unsigned char)((i * 131 + (i >> 11) * 7 + seed) & 0xff);
}

/* The stream from offset off on, then its EOF. */
static int write_pattern(int fd, unsigned int seed, uint64_t off)
{
	unsigned char buf[64 * 1024];

	while (off < BULK) {
		size_t n = BULK - off < sizeof(buf) ? BULK - off : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i, seed);
		w = write(fd, buf, n);
		if (w <= 0)
			return -1;
		off += w;
	}
	return shutdown(fd, SHUT_WR);
}

/* Reads to EOF, checking every byte. */
static void read_pattern(int fd, unsigned int seed, struct side *s)
{
	unsigned char buf[64 * 1024];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			s->bad += buf[i] != pattern(s->got + i, seed);
		s->got += n;
	}
}

/* Both ways at once: a child writes, the caller reads. */
static int bulk(int fd, unsigned int wseed, unsigned int rseed, struct side *s)
{
	pid_t w = fork();
	int status;

	if (w == 0)
		_exit(write_pattern(fd, wseed, 0) ? 1 : 0);
	read_pattern(fd, rseed, s);
	waitpid(w, &status, 0);
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

static int connect_port(uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, len)) {
		close(fd);
		return -1;
	}
	return fd;
}

static long long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Idle: one byte each way, then nothing until the daemon closes. */
static void agent_idle(int fd, struct side *s, bool busy)
{
	struct timespec t0;
	char c;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (write(fd, "i", 1) != 1 || read(fd, &c, 1) != 1) {
		s->ret = -1;
		return;
	}
	/* Busy: a byte every 300 ms for 3 s, longer than the idle timeout. */
	for (int i = 0; busy && i < 10; i++) {
		usleep(300 * 1000);
		if (write(fd, "b", 1) != 1 || read(fd, &c, 1) != 1) {
			s->ret = -2;
			return;
		}
	}
	if (busy)
		return;
	/* Bounded: the idle timeout is 1.5 s; 10 s is a failure. */
	for (int i = 0; i < 100 && ms_since(&t0) < 10000; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 100) == 1 && read(fd, &c, 1) <= 0)
			break;
	}
	s->closed_ms = (int)ms_since(&t0);
}

/* Whether the daemon's kernel acknowledged all n bytes written to fd (5 s at most). */
static bool all_acked(int fd, uint64_t n)
{
	for (int i = 0; i < 500; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);

		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
			return false;
		/* bytes_acked counts the SYN. */
		if (ti.tcpi_bytes_acked >= n + 1)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/* Reads on fd give up after 10 s: a stalled direction fails its test, never hangs it. */
static void recv_bounded(int fd)
{
	struct timeval tv = { .tv_sec = 10 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* How long a flood writes, and at most how much. */
#define FLOOD_S 2
#define FLOOD_MAX (1ull << 30)

/*
 * Writes the pattern for FLOOD_S seconds without blocking, counting in
 * *done what the kernel took: what a reader that reads nothing costs.
 */
static int flood(int fd, unsigned int seed, uint64_t *done)
{
	unsigned char buf[64 * 1024];
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	*done = 0;
	while (ms_since(&t0) < FLOOD_S * 1000 && *done < FLOOD_MAX) {
		ssize_t w;

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(*done + i, seed);
		w = send(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (w > 0)
			*done += (uint64_t)w;
		else if (w < 0 && errno != EAGAIN)
			return -1;
		else
			usleep(1000);
	}
	return 0;
}

static int agent(void *arg)
{
	struct side *s = arg;
	int fd = connect_port(s->port);
	ssize_t n;

	if (fd < 0)
		return s->ret = 1;
	switch (s->mode) {
	case MODE_BULK:
		s->ret = bulk(fd, 1, 2, s);
		break;
	case MODE_HALF:
		/* Spliced first (an EOF before the splice is copied), then says its
		 * piece, ends its side and reads the answer to that EOF. */
		usleep(200 * 1000);
		if (write(fd, "ping", 4) != 4 || shutdown(fd, SHUT_WR))
			s->ret = 1;
		else if ((n = recv(fd, s->text, sizeof(s->text) - 1, MSG_WAITALL)) >= 0)
			s->text[n] = '\0';
		break;
	case MODE_IDLE:
	case MODE_BUSY:
		agent_idle(fd, s, s->mode == MODE_BUSY);
		break;
	case MODE_HEAD:
		/* The head, then after the splice 3 MiB that must follow it. */
		if (write(fd, head, strlen(head)) != (ssize_t)strlen(head))
			s->ret = 1;
		usleep(300 * 1000);
		if (!s->ret)
			s->ret = write_pattern(fd, 3, 0);
		break;
	case MODE_HEAD_BULK:
		/* The head and 64 KiB in one segment, more than the classifier reads. */
		{
			static unsigned char buf[sizeof(head) + (64 << 10)];
			size_t hl = strlen(head);

			memcpy(buf, head, hl);
			for (size_t i = 0; i < (64 << 10); i++)
				buf[hl + i] = pattern(i, 3);
			if (write(fd, buf, hl + (64 << 10)) != (ssize_t)(hl + (64 << 10)))
				s->ret = 1;
			else if (!(s->acked = all_acked(fd, hl + (64 << 10))))
				s->ret = 2;
			else
				s->ret = write_pattern(fd, 3, 64 << 10);
		}
		break;
	case MODE_PING:
		if (write(fd, "p", 1) != 1 || read(fd, s->text, 1) != 1)
			s->ret = 1;
		break;
	case MODE_FLOOD:
		s->ret = flood(fd, 5, &s->got);
		break;
	case MODE_SLOW:
		/* A byte to start the relay, then nothing read for a while. */
		if (write(fd, "s", 1) != 1)
			s->ret = 1;
		sleep(FLOOD_S + 1);
		recv_bounded(fd);
		read_pattern(fd, 6, s);
		break;
	}
	close(fd);
	return 0;
}

static pid_t agent_start(const char *cg, struct side *s, uint16_t port, int mode)
{
	pid_t pid;

	memset(s, 0, sizeof(*s));
	s->port = port;
	s->mode = mode;
	pid = fork();
	if (pid == 0)
		_exit(run_in_cgroup(cg, NOBODY_UID, agent, s) == 0 ? 0 : 1);
	return pid;
}

static bool agent_wait(pid_t pid)
{
	int status;

	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status);
}

/* The upstream's side of MODE_HALF: reads to EOF, then answers what it read. */
static bool serve_half(int tool)
{
	int c = accept_timeout(tool, 3000);
	char got[16] = "", answer[40];
	ssize_t n;
	bool ok;

	if (c < 0)
		return false;
	n = recv(c, got, sizeof(got) - 1, MSG_WAITALL);
	ok = n == 4 && !strcmp(got, "ping");
	snprintf(answer, sizeof(answer), "after-eof:%s", ok ? got : "?");
	ok = ok && write(c, answer, strlen(answer)) == (ssize_t)strlen(answer);
	close(c);
	return ok;
}

/* An upstream that echoes every byte until EOF, in a child of its own. */
static pid_t echo_start(int tool, int conns)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	alarm(60);
	for (int i = 0; i < conns; i++) {
		int c = accept_timeout(tool, 10000);
		char buf[4096];
		ssize_t n;

		if (c < 0)
			_exit(1);
		while ((n = read(c, buf, sizeof(buf))) > 0)
			if (write(c, buf, n) != n)
				break;
		close(c);
	}
	_exit(0);
}

/* An object of agentgatectl status (obj), NULL if the daemon did not answer. */
static json_t *status_of(const struct tdaemon *d, const char *obj)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *resp = NULL, *r = NULL;
	struct ag_err err;

	if (!ag_ctl_call(&d->in, req, &resp, &err))
		r = json_incref(json_object_get(resp, obj));
	json_decref(req);
	json_decref(resp);
	return r;
}

static json_t *relay_status(const struct tdaemon *d)
{
	return status_of(d, "relay");
}

static long long status_int(const struct tdaemon *d, const char *obj, const char *name)
{
	json_t *r = status_of(d, obj);
	long long v = r ? json_integer_value(json_object_get(r, name)) : -1;

	json_decref(r);
	return v;
}

static long long relay_counter(const struct tdaemon *d, const char *name)
{
	return status_int(d, "relay", name);
}

/* Entries of a pinned splice map, -1 if it cannot be opened. */
static int map_entries(const struct tdaemon *d, const char *name)
{
	char path[PATH_MAX];
	uint64_t key, next;
	int fd, n = 0;

	snprintf(path, sizeof(path), "%s/%s", d->in.pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	for (void *k = NULL; !bpf_map_get_next_key(fd, k, &next) && n < 100000; k = &key) {
		key = next;
		n++;
	}
	close(fd);
	return n;
}

static uint32_t map_id(const struct tdaemon *d, const char *name)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", d->in.pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.id = 0;
	close(fd);
	return info.id;
}

static void test_bulk(struct tdaemon *d, const char *cg, int tool, uint16_t port, struct side *s)
{
	struct side up = { 0 };
	char want[64], *out = NULL;
	pid_t pid = agent_start(cg, s, port, MODE_BULK);
	int c = accept_timeout(tool, 3000);

	if (!ASSERT_GE(c, 0, "upstream accepted")) {
		agent_wait(pid);
		return;
	}
	ASSERT_OK(bulk(c, 2, 1, &up), "upstream wrote 3 MiB and its EOF");
	close(c);
	ASSERT_TRUE(agent_wait(pid), "agent done");
	ASSERT_OK(s->ret, "agent wrote 3 MiB and its EOF");
	ASSERT_EQ(s->got, (uint64_t)BULK, "3 MiB down, to the upstream's EOF");
	ASSERT_EQ(s->bad, 0, "every byte down as sent");
	ASSERT_EQ(up.got, (uint64_t)BULK, "3 MiB up, to the agent's EOF");
	ASSERT_EQ(up.bad, 0, "every byte up as sent");
	snprintf(want, sizeof(want), "bytes_up=%u", BULK);
	if (!ASSERT_TRUE(log_has(d, 3000, "event=conn ", want, "result=ok", NULL),
			 "close logged with the kernel's count up") &&
	    run_capture(&out, "grep 'event=conn ' %s | tail -3", d->log) >= 0)
		fprintf(stderr, "%s", out);
	free(out);
	out = NULL;
	snprintf(want, sizeof(want), "bytes_down=%u", BULK);
	ASSERT_TRUE(log_has(d, 3000, "event=conn ", want, NULL), "and down");
	ASSERT_OK(run_capture(&out,
			      "grep '\"kind\":\"connect\"' %s/audit.log | "
			      "grep '\"bytes_up\":%u' | grep -q '\"bytes_down\":%u'",
			      d->state, BULK, BULK),
		  "the audit record carries both counts");
	free(out);
}

TEST(relay_splice)
{
	struct side *s = shared_alloc(sizeof(*s));
	char cg[PATH_MAX], pins[4][PATH_MAX];
	struct tdaemon d;
	uint16_t port;
	int tool = tcp_listen("127.0.0.1", 0, &port);

	if (!ASSERT_OK(tdaemon_start_agent(&d, "splice", "\"limits\": {\"idle_timeout_ms\": 1500}",
					   cg, sizeof(cg)),
		       "daemon"))
		goto out;
	snprintf(pins[0], PATH_MAX, "%s/splice_peers", d.in.pin_dir);
	snprintf(pins[1], PATH_MAX, "%s/splice_from", d.in.pin_dir);
	snprintf(pins[2], PATH_MAX, "%s/splice_flows", d.in.pin_dir);
	snprintf(pins[3], PATH_MAX, "%s/splice_kept", d.in.pin_dir);
	if (test__start_subtest("bulk_both_ways")) {
		json_t *r = relay_status(&d);

		if (!ASSERT_TRUE(r && json_is_true(json_object_get(r, "splice")), "splice on"))
			fprintf(stderr, "  splice_off: %s\n",
				json_string_value(json_object_get(r, "splice_off")));
		json_decref(r);
		test_bulk(&d, cg, tool, port, s);
		ASSERT_EQ(relay_counter(&d, "bytes_copied"), 0, "the daemon copied no byte");
		ASSERT_EQ(relay_counter(&d, "spliced"), 2, "both directions spliced");
	}
	if (test__start_subtest("half_close")) {
		pid_t pid = agent_start(cg, s, port, MODE_HALF);

		ASSERT_TRUE(serve_half(tool), "upstream got the bytes, then the EOF, and answered");
		ASSERT_TRUE(agent_wait(pid), "agent done");
		ASSERT_STREQ(s->text, "after-eof:ping", "the answer came after the agent's EOF");
		ASSERT_TRUE(log_has(&d, 3000, "event=conn ", "bytes_up=4", "bytes_down=14",
				    "result=ok", NULL),
			    "counts without the FINs");
		ASSERT_EQ(relay_counter(&d, "bytes_copied"), 0, "still none copied");
	}
	if (test__start_subtest("idle_timeout")) {
		pid_t echo = echo_start(tool, 2), pid;

		pid = agent_start(cg, s, port, MODE_BUSY);
		ASSERT_TRUE(agent_wait(pid), "busy agent done");
		if (!ASSERT_OK(s->ret, "a busy spliced connection outlived the idle timeout")) {
			char *out = NULL;

			if (run_capture(&out, "grep 'event=conn ' %s | tail -2", d.log) >= 0)
				fprintf(stderr, "%s", out);
			free(out);
		}
		pid = agent_start(cg, s, port, MODE_IDLE);
		ASSERT_TRUE(agent_wait(pid), "idle agent done");
		fprintf(stderr, "splice: idle connection closed after %d ms\n", s->closed_ms);
		ASSERT_GE(s->closed_ms, 1400, "not before the idle timeout");
		ASSERT_LE(s->closed_ms, 3500, "closed by the idle timeout");
		ASSERT_TRUE(
		    log_has(&d, 3000, "result=idle_timeout", "bytes_up=1", "bytes_down=1", NULL),
		    "logged with its counts");
		waitpid(echo, NULL, 0);
	}
	if (test__start_subtest("no_leak_100")) {
		pid_t echo = echo_start(tool, 100);
		int live_peers, live_from;

		/* One connection held open: its two sockets are in each map. */
		pid_t held = agent_start(cg, s, port, MODE_BUSY);

		usleep(500 * 1000);
		live_peers = map_entries(&d, "splice_peers");
		live_from = map_entries(&d, "splice_from");
		ASSERT_TRUE(agent_wait(held), "held agent done");
		ASSERT_EQ(live_peers, 2, "a live connection: two peers");
		ASSERT_EQ(live_from, 2, "and two spliced sockets");
		for (int i = 0; i < 99; i++) {
			if (!ASSERT_TRUE(agent_wait(agent_start(cg, s, port, MODE_PING)) && !s->ret,
					 "round trip"))
				break;
		}
		waitpid(echo, NULL, 0);
		/* The daemon closes its sockets once both ends did. */
		for (int i = 0; i < 50 && status_int(&d, "connections", "active") > 0; i++)
			usleep(100 * 1000);
		usleep(200 * 1000);
		ASSERT_EQ(map_entries(&d, "splice_peers"), 0, "no peer left after 100 connections");
		ASSERT_EQ(map_entries(&d, "splice_from"), 0, "no spliced socket left");
		ASSERT_EQ(map_entries(&d, "splice_flows"), 0, "no flow left");
		ASSERT_EQ(relay_counter(&d, "bytes_copied"), 0, "none copied");
	}
	if (test__start_subtest("adopted_then_uninstalled")) {
		uint32_t id = map_id(&d, "splice_from");

		pid_t echo = echo_start(tool, 1), held = agent_start(cg, s, port, MODE_IDLE);

		ASSERT_NEQ(id, 0, "pinned");
		/* Killed with a connection spliced: its flows stay behind. */
		for (int i = 0; i < 40 && map_entries(&d, "splice_flows") < 2; i++)
			usleep(50 * 1000);
		ASSERT_EQ(map_entries(&d, "splice_flows"), 2, "a spliced connection's flows");
		tdaemon_kill(&d, SIGKILL);
		agent_wait(held);
		waitpid(echo, NULL, 0);
		ASSERT_OK(tdaemon_restart(&d), "restart");
		ASSERT_EQ(map_id(&d, "splice_from"), id, "the same map, adopted");
		ASSERT_EQ(map_entries(&d, "splice_flows"), 0, "the dead sockets' flows swept");
		test_bulk(&d, cg, tool, port, s);
		ASSERT_EQ(relay_counter(&d, "bytes_copied"), 0, "spliced by the adopted program");
	}
out:
	tdaemon_destroy(&d);
	if (test__start_subtest("uninstall_unpins")) {
		struct stat st;

		ASSERT_NEQ(stat(pins[0], &st), 0, "splice_peers unpinned");
		ASSERT_NEQ(stat(pins[1], &st), 0, "splice_from unpinned");
		ASSERT_NEQ(stat(pins[2], &st), 0, "splice_flows unpinned");
		ASSERT_NEQ(stat(pins[3], &st), 0, "splice_kept unpinned");
	}
	close(tool);
	munmap(s, sizeof(*s));
}

/* relay_splice false: every byte is the daemon's to copy, and it says so. */
TEST(relay_splice_off)
{
	struct side *s = shared_alloc(sizeof(*s));
	char cg[PATH_MAX];
	struct tdaemon d;
	uint16_t port;
	int tool = tcp_listen("127.0.0.1", 0, &port);
	json_t *r;

	if (!ASSERT_OK(
		tdaemon_start_agent(&d, "splicenot", "\"relay_splice\": false", cg, sizeof(cg)),
		"daemon"))
		goto out;
	ASSERT_TRUE(log_has(&d, 2000, "splice=off", "relay_splice is false", NULL),
		    "said once at start");
	r = relay_status(&d);
	ASSERT_TRUE(r && json_is_false(json_object_get(r, "splice")), "status: off");
	json_decref(r);
	test_bulk(&d, cg, tool, port, s);
	ASSERT_EQ(relay_counter(&d, "bytes_copied"), 2ll * BULK, "the daemon copied both ways");
	ASSERT_EQ(relay_counter(&d, "spliced"), 0, "nothing spliced");
out:
	tdaemon_destroy(&d);
	close(tool);
	munmap(s, sizeof(*s));
}

/* A test's daemon, tool server, upstream side (-1 if none) and shared side, gone. */
static void test_end(struct tdaemon *d, int tool, int c, struct side *s)
{
	if (c >= 0)
		close(c);
	tdaemon_destroy(d);
	close(tool);
	munmap(s, sizeof(*s));
}

/* The head, then 3 MiB through a daemon of passthrough ["localhost"]: spliced (spliced, copied). */
static void head_then_bulk(const char *suffix, int mode, long long spliced, long long copied_max)
{
	struct side *s = shared_alloc(sizeof(*s)), up = { 0 };
	char cg[PATH_MAX], got[sizeof(head)] = "";
	struct tdaemon d;
	uint16_t port;
	int tool = tcp_listen("127.0.0.1", 0, &port), c = -1, filler = -1;
	pid_t pid;

	if (!ASSERT_OK(
		tdaemon_start_agent(&d, suffix, "\"passthrough\": [\"localhost\"]", cg, sizeof(cg)),
		"daemon"))
		goto out;
	/*
	 * Head and bulk at once: the splice must find bytes queued behind the
	 * classifier's read.  Left to timing, the classifier may read all that
	 * had arrived, and the verdict then rightly takes the rest.  So the
	 * tool server's accept queue is full (backlog 0, one connection in it)
	 * and drops the daemon's SYN until the agent's first write is all in
	 * the daemon's socket; the daemon's connect gets in on its retry.
	 */
	if (mode == MODE_HEAD_BULK && ASSERT_OK(listen(tool, 0), "backlog 0"))
		filler = connect_port(port);
	pid = agent_start(cg, s, port, mode);
	if (filler >= 0) {
		for (int i = 0; i < 600 && !s->acked && !s->ret; i++)
			usleep(10 * 1000);
		ASSERT_TRUE(s->acked, "the agent's first write acknowledged");
		close(accept_timeout(tool, 1000));
		close(filler);
	}
	c = accept_timeout(tool, 5000);
	if (ASSERT_GE(c, 0, "upstream accepted")) {
		ASSERT_EQ(recv(c, got, strlen(head), MSG_WAITALL), (ssize_t)strlen(head),
			  "the head");
		ASSERT_STREQ(got, head, "first, as the agent sent it");
		read_pattern(c, 3, &up);
	}
	ASSERT_TRUE(agent_wait(pid), "agent done");
	ASSERT_OK(s->ret, "agent sent");
	ASSERT_EQ(up.got, (uint64_t)BULK, "then 3 MiB, to the agent's EOF");
	ASSERT_EQ(up.bad, 0, "as sent: no byte twice, none lost");
	ASSERT_LE(relay_counter(&d, "bytes_copied"), copied_max, "copied by the daemon");
	ASSERT_EQ(relay_counter(&d, "spliced"), spliced, "directions spliced");
out:
	test_end(&d, tool, c, s);
}

/*
 * The first bytes the classifier read (a Host it had to look at) go to the
 * upstream first, copied; everything after them is spliced.
 */
TEST(relay_splice_after_head)
{
	head_then_bulk("splicehead", MODE_HEAD, 2, (long long)strlen(head));
}

/*
 * The same bytes at once: what the classifier left of a segment it read
 * part of would be sent twice by a verdict, so the agent's side is copied.
 */
TEST(relay_splice_head_at_once)
{
	head_then_bulk("spliceburst", MODE_HEAD_BULK, 1, (long long)strlen(head) + BULK);
}

/* A sysctl's last figure (tcp_rmem, tcp_wmem: the largest buffer), 0 if unreadable. */
static uint64_t sysctl_max(const char *path)
{
	unsigned long long a = 0, b = 0, c = 0;
	FILE *f = fopen(path, "r");

	if (f && fscanf(f, "%llu %llu %llu", &a, &b, &c) != 3)
		c = 0;
	if (f)
		fclose(f);
	return c;
}

/* The daemon's last connection records, for a failure's message. */
static void conn_lines(const struct tdaemon *d)
{
	char *out = NULL;

	if (run_capture(&out, "grep 'event=conn ' %s | tail -2", d->log) >= 0)
		fprintf(stderr, "%s", out);
	free(out);
}

/*
 * What a relay may hold for a reader that reads nothing: the sockets' own
 * buffers at their largest, twice over (writer's send, daemon's receive;
 * daemon's send, reader's receive), and the splice's backlog.
 */
static uint64_t flood_bound(void)
{
	return 2 * (sysctl_max("/proc/sys/net/ipv4/tcp_rmem") +
		    sysctl_max("/proc/sys/net/ipv4/tcp_wmem")) +
	       AG_SPLICE_BACKLOG;
}

/*
 * A spliced direction whose reader reads nothing: the kernel takes a
 * redirected skb off its socket at once, so without the verdict's bound
 * the writer's bytes pile up in kernel memory (a GiB in two seconds).
 * With it, the writer waits as for a copying relay, and every byte still
 * arrives once read, in order, and counted.
 */
/* A process's CPU time so far, in clock ticks (utime + stime); -1 if unreadable. */
static long long cpu_ticks(pid_t pid)
{
	unsigned long long ut, st;
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the command's closing parenthesis: state, then 10 fields, then utime and stime. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* Connections whose upstream reads nothing, held at once. */
#define STALLED 16

TEST(relay_splice_flood)
{
	struct side *s = shared_alloc(sizeof(*s)), r = { 0 };
	uint64_t bound = flood_bound();
	char cg[PATH_MAX], want[64];
	struct tdaemon d;
	uint16_t port;
	int tool = tcp_listen("127.0.0.1", 0, &port), c = -1;
	json_t *r_on;
	pid_t pid;

	if (!ASSERT_GT(bound, AG_SPLICE_BACKLOG, "socket buffer sysctls") ||
	    !ASSERT_OK(tdaemon_start_agent(&d, "spliceflood", "", cg, sizeof(cg)), "daemon"))
		goto out;
	r_on = relay_status(&d);
	ASSERT_TRUE(r_on && json_is_true(json_object_get(r_on, "splice")), "splice on");
	json_decref(r_on);
	if (test__start_subtest("agent_writes_upstream_reads_nothing")) {
		pid = agent_start(cg, s, port, MODE_FLOOD);
		c = accept_timeout(tool, 3000);
		ASSERT_TRUE(agent_wait(pid), "agent done");
		ASSERT_OK(s->ret, "agent flooded");
		fprintf(stderr,
			"splice: an agent flooding a reader that reads nothing: %llu bytes "
			"taken in %d s (bound %llu)\n",
			(unsigned long long)s->got, FLOOD_S, (unsigned long long)bound);
		ASSERT_LE(s->got, bound, "the kernel took no more than the buffers hold");
		if (ASSERT_GE(c, 0, "upstream accepted")) {
			recv_bounded(c);
			read_pattern(c, 5, &r);
		}
		ASSERT_EQ(r.got, s->got, "every byte arrived once read");
		ASSERT_EQ(r.bad, 0, "in order");
		ASSERT_EQ(relay_counter(&d, "unspliced"), 1, "the rest copied by the daemon");
		if (c >= 0)
			close(c);
		c = -1;
		snprintf(want, sizeof(want), "bytes_up=%llu", (unsigned long long)s->got);
		if (!ASSERT_TRUE(log_has(&d, 3000, "event=conn ", want, "result=ok", NULL),
				 "counted"))
			conn_lines(&d);
	}
	if (test__start_subtest("upstream_writes_agent_reads_nothing")) {
		uint64_t sent = 0;
		char one;

		pid = agent_start(cg, s, port, MODE_SLOW);
		c = accept_timeout(tool, 3000);
		if (ASSERT_GE(c, 0, "upstream accepted") &&
		    ASSERT_EQ(read(c, &one, 1), 1, "the agent's byte"))
			ASSERT_OK(flood(c, 6, &sent), "upstream flooded");
		fprintf(stderr,
			"splice: an upstream flooding an agent that reads nothing: %llu bytes "
			"taken in %d s\n",
			(unsigned long long)sent, FLOOD_S);
		ASSERT_LE(sent, bound, "the kernel took no more than the buffers hold");
		if (c >= 0)
			close(c);
		c = -1;
		ASSERT_TRUE(agent_wait(pid), "agent done");
		ASSERT_EQ(s->got, sent, "every byte arrived once read");
		ASSERT_EQ(s->bad, 0, "in order");
		ASSERT_EQ(relay_counter(&d, "unspliced"), 2, "the rest copied by the daemon");
		snprintf(want, sizeof(want), "bytes_down=%llu", (unsigned long long)sent);
		if (!ASSERT_TRUE(log_has(&d, 3000, "event=conn ", want, "result=ok", NULL),
				 "counted"))
			conn_lines(&d);
	}
	if (test__start_subtest("stalled_readers_cost_the_daemon_little")) {
		struct side *many = shared_alloc(STALLED * sizeof(*many));
		long long t0, t1, hz = sysconf(_SC_CLK_TCK);
		int cs[STALLED];
		pid_t pids[STALLED];

		for (int i = 0; i < STALLED; i++)
			pids[i] = agent_start(cg, &many[i], port, MODE_FLOOD);
		for (int i = 0; i < STALLED; i++)
			cs[i] = accept_timeout(tool, 5000);
		for (int i = 0; i < STALLED; i++)
			ASSERT_TRUE(agent_wait(pids[i]), "agent done");
		/*
		 * Each direction now waits for an upstream that reads nothing to
		 * take what the kernel still holds: the daemon must not spin on it.
		 */
		usleep(200 * 1000);
		t0 = cpu_ticks(d.pid);
		sleep(2);
		t1 = cpu_ticks(d.pid);
		fprintf(stderr,
			"splice: %d connections waiting on upstreams that read nothing: the daemon "
			"used %lld ms of CPU in 2 s\n",
			STALLED, (t1 - t0) * 1000 / hz);
		ASSERT_GE(t0, 0, "the daemon's CPU time");
		ASSERT_LT(t1 - t0, hz / 5, "under a tenth of a CPU");
		for (int i = 0; i < STALLED; i++)
			if (cs[i] >= 0)
				close(cs[i]);
		munmap(many, STALLED * sizeof(*many));
	}
out:
	test_end(&d, tool, c, s);
}
