// SPDX-License-Identifier: GPL-2.0
/*
 * AF_UNIX is policed: an agent of a real agentgated reaches only the unix
 * socket addresses of its agents[].unix_sockets.  The listeners belong to
 * the test (outside agents/), like a local proxy or daemon would; the test
 * asserts the errno the agent got, whether anything reached the listener,
 * and the refusal's audit record and log line with the address.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "cgroup.h"
#include "test.h"
#include "testlib.h"

/* One attempt of an agent, in shared memory: what it tried, what it got. */
struct unix_try {
	char addr[128]; /* a path, or "@name" for an abstract address */
	int type;	/* SOCK_STREAM, SOCK_DGRAM */
	bool sendto;	/* an unconnected datagram send, else connect (then write) */
	int err;	/* 0, or the errno of connect/sendto */
};

/* A filesystem path with the whole sun_path as length, abstract names exactly. */
static socklen_t unix_sockaddr(const char *addr, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (addr[0] != '@') {
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", addr);
		return sizeof(*sun);
	}
	memcpy(sun->sun_path + 1, addr + 1, strlen(addr + 1));
	return offsetof(struct sockaddr_un, sun_path) + strlen(addr);
}

static int agent_try(void *arg)
{
	struct unix_try *t = arg;
	struct sockaddr_un sun;
	socklen_t len = unix_sockaddr(t->addr, &sun);
	int fd = socket(AF_UNIX, t->type | SOCK_CLOEXEC, 0), ret;

	if (fd < 0) {
		t->err = errno;
		return 1;
	}
	if (t->sendto)
		ret = sendto(fd, "hi", 2, 0, (struct sockaddr *)&sun, len) == 2 ? 0 : -1;
	else
		ret = connect(fd, (struct sockaddr *)&sun, len);
	t->err = ret ? errno : 0;
	if (!ret && !t->sendto && write(fd, "hi", 2) != 2)
		t->err = errno;
	close(fd);
	return 0;
}

/* The agent's outcome of one attempt from cgroup cg: 0 or its errno. */
static int try_from(const char *cg, const char *addr, int type, bool use_sendto)
{
	struct unix_try *t =
	    mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int err;

	if (t == MAP_FAILED)
		return -1;
	snprintf(t->addr, sizeof(t->addr), "%s", addr);
	t->type = type;
	t->sendto = use_sendto;
	t->err = -1;
	err = run_in_cgroup(cg, NOBODY_UID, agent_try, t) ? -1 : t->err;
	munmap(t, sizeof(*t));
	return err;
}

/* A socket of the test's bound to addr, listening if it is a stream one. */
static int unix_bound(const char *addr, int type)
{
	struct sockaddr_un sun;
	socklen_t len = unix_sockaddr(addr, &sun);
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, len) || (addr[0] != '@' && chmod(addr, 0777)) ||
	    (type != SOCK_DGRAM && listen(fd, 8))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The bytes one accepted connection brought, "" if none came. */
static void accepted_bytes(int lfd, char *buf, size_t len)
{
	int fd = accept_timeout(lfd, 2000);
	ssize_t n = -1;

	buf[0] = '\0';
	if (fd < 0)
		return;
	for (int i = 0; i < 200 && n < 0; i++) {
		n = recv(fd, buf, len - 1, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			usleep(10000);
	}
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

static bool dgram_received(int fd)
{
	char buf[8];

	return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0;
}

/* Whether the audit log holds a kernel_refusal record with every needle. */
static bool refusal_audited(const struct tdaemon *d, const char *n1, const char *n2)
{
	char *out = NULL;
	bool found = false;

	for (int i = 0; i < 20 && !found; i++) {
		free(out);
		out = NULL;
		run_capture(&out,
			    "%s/agentgatectl audit query --json --kind kernel_refusal %s/audit.log",
			    testlib_build_dir(), d->state);
		found = out && strstr(out, n1) && strstr(out, n2);
		if (!found)
			usleep(100000);
	}
	free(out);
	return found;
}

static uint64_t unix_denied(const struct tdaemon *d, const char *cg)
{
	struct ag_stats s = { 0 };
	struct ag_kern k;
	struct ag_err err;
	uint64_t id;

	if (ag_cgroup_id(cg, &id, &err) || ag_kern_open(&k, &d->in, &err))
		return 0;
	bpf_map_lookup_elem(k.map_fd[AG_MAP_STATS], &id, &s);
	ag_kern_close(&k);
	return s.unix_denied;
}

/* The map key of an address, and how a refused one is written. */
TEST(unix_address)
{
	struct ag_unix_key key;
	char buf[512];

	ASSERT_OK(ag_unix_key_make(7, "@x", &key), "abstract");
	ASSERT_TRUE(key.agent_cgroup_id == 7 && key.len == 2 && !key.path[0] &&
			key.path[1] == 'x' && !key.path[2],
		    "a NUL byte, then the name");
	ASSERT_OK(ag_unix_key_make(7, "/run/a", &key), "path");
	ASSERT_TRUE(key.len == 6 && !memcmp(key.path, "/run/a", 7), "the path, zero padded");
	ASSERT_EQ(ag_unix_key_make(7, "run/a", &key), -EINVAL, "relative refused");
	ASSERT_STREQ(ag_unix_addr_fmt("\0a\nb\0", 5, buf, sizeof(buf)), "@a\\x0ab\\x00",
		     "abstract: @, bytes escaped");
	ASSERT_STREQ(ag_unix_addr_fmt("@a \"", 4, buf, sizeof(buf)), "\\x40a\\x20\\x22",
		     "a path's leading @ is not an abstract name");
	ASSERT_STREQ(ag_unix_addr_fmt("/r", 2, buf, sizeof(buf)), "/r", "a path as it is");
}

TEST(unix_sockets)
{
	char dir[] = "/tmp/agunix.XXXXXX", allowed[64], denied[64], dgram[64], seq[64];
	char abs_allowed[64], abs_denied[64], conf[512], cg_a[PATH_MAX], cg_sub[PATH_MAX];
	char cg_b[PATH_MAX], want[128], buf[16];
	int l_allowed = -1, l_denied = -1, l_abs_allowed = -1, l_abs_denied = -1, l_dgram = -1;
	int l_seq = -1;
	int *fds[] = { &l_allowed, &l_denied, &l_abs_allowed, &l_abs_denied, &l_dgram, &l_seq };
	struct ag_err err;
	struct tdaemon d;
	bool started = false;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "dir") || !ASSERT_OK(chmod(dir, 0755), "chmod"))
		return;
	snprintf(allowed, sizeof(allowed), "%s/allowed.sock", dir);
	snprintf(denied, sizeof(denied), "%s/denied.sock", dir);
	snprintf(dgram, sizeof(dgram), "%s/dgram.sock", dir);
	snprintf(seq, sizeof(seq), "%s/seq.sock", dir);
	snprintf(abs_allowed, sizeof(abs_allowed), "@%s", test__instance("unix-ok"));
	snprintf(abs_denied, sizeof(abs_denied), "@%s", test__instance("unix-no"));
	l_allowed = unix_bound(allowed, SOCK_STREAM);
	l_denied = unix_bound(denied, SOCK_STREAM);
	l_abs_allowed = unix_bound(abs_allowed, SOCK_STREAM);
	l_abs_denied = unix_bound(abs_denied, SOCK_STREAM);
	l_dgram = unix_bound(dgram, SOCK_DGRAM);
	l_seq = unix_bound(seq, SOCK_SEQPACKET);
	if (!ASSERT_TRUE(l_allowed >= 0 && l_denied >= 0 && l_abs_allowed >= 0 &&
			     l_abs_denied >= 0 && l_dgram >= 0 && l_seq >= 0,
			 "listeners"))
		goto out;
	snprintf(conf, sizeof(conf),
		 "\"agents\": [{\"name\": \"a\", \"unix_sockets\": [\"%s\", \"%s\"]}]", allowed,
		 abs_allowed);
	if (!ASSERT_OK(tdaemon_start(&d, "unix", conf, 0), "agentgated"))
		goto out;
	started = true;
	snprintf(cg_a, sizeof(cg_a), "%s/a", d.in.cg_agents);
	snprintf(cg_sub, sizeof(cg_sub), "%s/a/sub", d.in.cg_agents);
	snprintf(cg_b, sizeof(cg_b), "%s/b", d.in.cg_agents);
	if (!ASSERT_OK(ag_cgroup_mkdir(cg_sub, &err), "sub-agent cgroup") ||
	    !ASSERT_OK(ag_cgroup_mkdir(cg_b, &err), "unconfigured agent cgroup"))
		goto out;

	if (test__start_subtest("unlisted_path_refused")) {
		uint64_t before = unix_denied(&d, cg_a);

		ASSERT_EQ(try_from(cg_a, denied, SOCK_STREAM, false), EPERM, "connect refused");
		ASSERT_FALSE(has_pending(l_denied), "nothing reached the listener");
		/* At least: glibc's nscd lookups in the child's set-up are refused too. */
		ASSERT_GE(unix_denied(&d, cg_a), before + 1, "counted in the agent's stats");
		ASSERT_TRUE(log_has(&d, 2000, "event=kernel_refusal", "agent=\"a\"",
				    "hook=connect_unix", "reason=unix_path", denied, NULL),
			    "refusal logged with the path");
		snprintf(want, sizeof(want), "\"dst\":\"%s\"", denied);
		ASSERT_TRUE(refusal_audited(&d, want, "\"hook\":\"connect_unix\""),
			    "refusal audited with the path");
	}
	if (test__start_subtest("seqpacket")) {
		ASSERT_EQ(try_from(cg_a, seq, SOCK_SEQPACKET, false), EPERM, "connect refused");
		ASSERT_FALSE(has_pending(l_seq), "nothing reached the listener");
	}
	if (test__start_subtest("listed_path_works")) {
		ASSERT_EQ(try_from(cg_a, allowed, SOCK_STREAM, false), 0, "connect");
		accepted_bytes(l_allowed, buf, sizeof(buf));
		ASSERT_STREQ(buf, "hi", "the bytes arrived");
	}
	if (test__start_subtest("abstract")) {
		ASSERT_EQ(try_from(cg_a, abs_denied, SOCK_STREAM, false), EPERM,
			  "unlisted refused");
		ASSERT_FALSE(has_pending(l_abs_denied), "nothing reached the unlisted listener");
		snprintf(want, sizeof(want), "\"dst\":\"%s\"", abs_denied);
		ASSERT_TRUE(refusal_audited(&d, want, "\"family\":1"), "audited as @name");
		ASSERT_EQ(try_from(cg_a, abs_allowed, SOCK_STREAM, false), 0, "listed connects");
		accepted_bytes(l_abs_allowed, buf, sizeof(buf));
		ASSERT_STREQ(buf, "hi", "the bytes arrived");
	}
	if (test__start_subtest("datagram")) {
		ASSERT_EQ(try_from(cg_a, dgram, SOCK_DGRAM, true), EPERM, "sendto refused");
		ASSERT_EQ(try_from(cg_a, dgram, SOCK_DGRAM, false), EPERM, "connect refused");
		ASSERT_FALSE(dgram_received(l_dgram), "no datagram arrived");
		snprintf(want, sizeof(want), "\"dst\":\"%s\"", dgram);
		ASSERT_TRUE(refusal_audited(&d, want, "\"hook\":\"sendmsg_unix\""),
			    "sendto refusal audited");
	}
	if (test__start_subtest("sub_agent")) {
		ASSERT_EQ(try_from(cg_sub, denied, SOCK_STREAM, false), EPERM, "unlisted refused");
		ASSERT_EQ(try_from(cg_sub, abs_denied, SOCK_STREAM, false), EPERM,
			  "abstract refused");
		ASSERT_EQ(try_from(cg_sub, dgram, SOCK_DGRAM, true), EPERM, "sendto refused");
		ASSERT_FALSE(has_pending(l_denied) || has_pending(l_abs_denied) ||
				 dgram_received(l_dgram),
			     "nothing arrived");
		ASSERT_EQ(try_from(cg_sub, allowed, SOCK_STREAM, false), 0,
			  "its root agent's list applies");
		accepted_bytes(l_allowed, buf, sizeof(buf));
		ASSERT_STREQ(buf, "hi", "the bytes arrived");
	}
	if (test__start_subtest("unconfigured_agent")) {
		ASSERT_EQ(try_from(cg_b, allowed, SOCK_STREAM, false), EPERM,
			  "another agent's address refused");
		ASSERT_FALSE(has_pending(l_allowed), "nothing reached the listener");
	}
out:
	if (started) {
		rmdir(cg_sub);
		rmdir(cg_b);
		tdaemon_destroy(&d);
	}
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	unlink(allowed);
	unlink(denied);
	unlink(dgram);
	unlink(seq);
	rmdir(dir);
}
