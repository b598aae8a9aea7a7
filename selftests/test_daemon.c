// SPDX-License-Identifier: GPL-2.0
/*
 * agentgated for real: relay through the daemon with the identity in the
 * log, kill -9 (fail closed, 1000 refused connects), restart (adopted, the
 * same links), a connection that bypassed the hooks (rejected), and the
 * counters as bpftool prints them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "cgroup.h"
#include "ctl.h"
#include "test.h"
#include "testlib.h"

static const char request[] = "agent-request-bytes";
static const char reply[] = "tool-reply-bytes";

struct relay_attempt {
	uint16_t port;
	int ret, err;
	char got[64];
	pid_t pid;
};

/* Connect, send the request, read the reply until the tool closes. */
static int agent_roundtrip(void *arg)
{
	struct relay_attempt *r = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", r->port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n, total = 0;

	r->pid = getpid();
	r->ret = connect(fd, (struct sockaddr *)&ss, len);
	r->err = errno;
	if (r->ret || write(fd, request, sizeof(request)) != sizeof(request)) {
		close(fd);
		return 1;
	}
	while ((n = read(fd, r->got + total, sizeof(r->got) - 1 - total)) > 0)
		total += n;
	close(fd);
	return 0;
}

/* The tool side of one round trip: read the request, answer, close. */
static bool serve_once(int tool, char *got, size_t len)
{
	int c = accept_timeout(tool, 3000);
	bool ok;

	if (c < 0)
		return false;
	memset(got, 0, len);
	ok = recv(c, got, sizeof(request), MSG_WAITALL) == sizeof(request) &&
	     write(c, reply, sizeof(reply)) == sizeof(reply);
	close(c);
	return ok;
}

/* Runs an agent round trip in agents/a while this process plays the tool. */
static void roundtrip(const struct tdaemon *d, const char *agent_cg, int tool, uint16_t port,
		      struct relay_attempt *r)
{
	char got[64] = "";
	pid_t pid;
	int status;

	memset(r, 0, sizeof(*r));
	r->port = port;
	pid = fork();
	if (pid == 0)
		_exit(run_in_cgroup(agent_cg, NOBODY_UID, agent_roundtrip, r) == 0 ? 0 : 1);
	ASSERT_TRUE(serve_once(tool, got, sizeof(got)), "tool served one request");
	ASSERT_STREQ(got, request, "request bytes at the tool");
	waitpid(pid, &status, 0);
	if (!ASSERT_EQ(r->ret, 0, "agent connect")) {
		char *tail = NULL;

		fprintf(stderr, "  agent errno %d (%s); daemon log ends:\n", r->err,
			strerror(r->err));
		if (run_capture(&tail, "tail -5 %s", d->log) >= 0 && tail)
			fprintf(stderr, "%s", tail);
		free(tail);
	}
	ASSERT_STREQ(r->got, reply, "reply bytes at the agent");
}

TEST(daemon_relay)
{
	struct relay_attempt *r = shared_alloc(sizeof(*r));
	char agent_cg[PATH_MAX], dst[64], pid[32];
	struct tdaemon d;
	uint16_t tool_port;
	int tool;

	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	if (!ASSERT_OK(tdaemon_start_agent(&d, "relay", "", agent_cg, sizeof(agent_cg)), "daemon"))
		goto out;
	if (test__start_subtest("roundtrip_logged")) {
		roundtrip(&d, agent_cg, tool, tool_port, r);
		snprintf(dst, sizeof(dst), "dst=127.0.0.1:%u", tool_port);
		snprintf(pid, sizeof(pid), "pid=%d", r->pid);
		ASSERT_TRUE(log_has(&d, 2000, "event=conn ", "agent=\"a\"", dst, pid, "uid=65534",
				    "bytes_up=20", "bytes_down=17", NULL),
			    "one log line with the agent's identity and byte counts");
	}
	if (test__start_subtest("no_origin_rejected")) {
		struct sockaddr_storage ss;
		socklen_t len = make_sockaddr("127.0.0.1", d.port, &ss);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char buf[8];

		/* This process is outside agents/: a connection with no origin. */
		ASSERT_OK(connect(fd, (struct sockaddr *)&ss, len), "connect to the daemon");
		ASSERT_LE(read(fd, buf, sizeof(buf)), 0, "closed without a byte");
		close(fd);
		ASSERT_TRUE(log_has(&d, 2000, "event=conn_rejected", "reason=no_origin", NULL),
			    "rejection logged");
		ASSERT_FALSE(has_pending(tool), "nothing reached the tool");
	}
	if (test__start_subtest("gateway_loop_refused")) {
		char *out = NULL;

		/*
		 * The gateway's own port at another loopback address reaches a
		 * listener on 0.0.0.0 too: refused as a loop, never relayed.
		 */
		ASSERT_NEQ(run_capture(&out,
				       "echo $$ > %s/cgroup.procs && exec setpriv --reuid=65534 "
				       "--regid=65534 --clear-groups bash -c "
				       "'exec 3<>/dev/tcp/127.0.0.2/%u && head -c1 <&3 | grep -q .' "
				       "2>&1",
				       agent_cg, d.port),
			   0, "no byte came back");
		free(out);
		snprintf(dst, sizeof(dst), "dst=127.0.0.2:%u", d.port);
		ASSERT_TRUE(log_has(&d, 2000, "reason=gateway_loop", dst, NULL),
			    "refused as a loop to the gateway");
	}
	if (test__start_subtest("kernel_refusal_logged")) {
		char *out = NULL;

		/* UDP from the agent (bash connects the socket first): refused, logged. */
		ASSERT_NEQ(run_capture(&out,
				       "echo $$ > %s/cgroup.procs && exec setpriv --reuid=65534 "
				       "--regid=65534 --clear-groups bash -c "
				       "'echo x > /dev/udp/127.0.0.1/9' 2>&1",
				       agent_cg),
			   0, "UDP send failed");
		free(out);
		ASSERT_TRUE(log_has(&d, 2000, "event=kernel_refusal", "hook=connect4",
				    "reason=udp_destination", "dst=127.0.0.1:9", NULL),
			    "refusal logged with hook and reason");
	}
out:
	tdaemon_destroy(&d);
	close(tool);
	munmap(r, sizeof(*r));
}

struct burst {
	uint16_t port;
	int attempts, connected, refused, other;
	int other_errno;
};

static int agent_burst(void *arg)
{
	struct burst *b = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", b->port, &ss);

	for (int i = 0; i < b->attempts; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (!connect(fd, (struct sockaddr *)&ss, len))
			b->connected++;
		else if (errno == ECONNREFUSED)
			b->refused++;
		else {
			b->other++;
			b->other_errno = errno;
		}
		close(fd);
	}
	return 0;
}

TEST(daemon_fail_closed)
{
	struct relay_attempt *r = shared_alloc(sizeof(*r));
	struct burst *b = shared_alloc(sizeof(*b));
	struct ag_link_status before[AG_PROG_COUNT], after[AG_PROG_COUNT];
	char agent_cg[PATH_MAX];
	struct tdaemon d;
	uint16_t tool_port;
	int tool;

	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	if (!ASSERT_OK(tdaemon_start_agent(&d, "failclosed", "", agent_cg, sizeof(agent_cg)),
		       "daemon"))
		goto out;
	roundtrip(&d, agent_cg, tool, tool_port, r);
	ag_kern_links(&d.in, before);

	if (test__start_subtest("killed_refuses_1000")) {
		tdaemon_kill(&d, SIGKILL);
		b->port = tool_port;
		b->attempts = 1000;
		run_in_cgroup(agent_cg, NOBODY_UID, agent_burst, b);
		ASSERT_EQ(b->connected, 0, "connects that succeeded");
		ASSERT_EQ(b->refused, 1000, "connects refused with ECONNREFUSED");
		if (!ASSERT_EQ(b->other, 0, "connects failed otherwise"))
			fprintf(stderr, "  other errno %d\n", b->other_errno);
		ASSERT_FALSE(has_pending(tool), "nothing reached the tool");
	}
	if (test__start_subtest("restart_adopts")) {
		ASSERT_OK(tdaemon_restart(&d), "restart");
		ag_kern_links(&d.in, after);
		for (int i = 0; i < AG_PROG_COUNT; i++) {
			ASSERT_TRUE(after[i].pinned, after[i].name);
			ASSERT_EQ(after[i].link_id, before[i].link_id, after[i].name);
			ASSERT_EQ(after[i].prog_id, before[i].prog_id, after[i].name);
		}
		ASSERT_TRUE(log_has(&d, 1000, "event=start", "kernel=adopted", NULL),
			    "restart adopted the pinned objects");
		roundtrip(&d, agent_cg, tool, tool_port, r);
	}
	if (test__start_subtest("sigterm_keeps_links")) {
		tdaemon_kill(&d, SIGTERM);
		ASSERT_TRUE(log_has(&d, 1000, "event=stop", "status=ok", NULL), "clean stop");
		ASSERT_TRUE(ag_kern_installed(&d.in), "links still pinned");
		b->attempts = 10;
		b->connected = b->refused = b->other = 0;
		run_in_cgroup(agent_cg, NOBODY_UID, agent_burst, b);
		ASSERT_EQ(b->refused, 10, "refused after a clean stop");
	}
out:
	tdaemon_destroy(&d);
	close(tool);
	munmap(r, sizeof(*r));
	munmap(b, sizeof(*b));
}

/* The counters, as an operator sees them with bpftool. */
TEST(daemon_stats_bpftool)
{
	struct relay_attempt *r = shared_alloc(sizeof(*r));
	char agent_cg[PATH_MAX], *out = NULL, want[64];
	struct ag_stats before = { 0 }, after = { 0 };
	struct tdaemon d;
	struct ag_kern k;
	struct ag_err err;
	uint64_t id = 0;
	uint16_t tool_port;
	int tool;

	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	if (!ASSERT_OK(tdaemon_start_agent(&d, "stats", "", agent_cg, sizeof(agent_cg)),
		       "daemon") ||
	    !ASSERT_OK(ag_kern_open(&k, &d.in, &err), "open maps"))
		goto out;
	ag_cgroup_id(agent_cg, &id, &err);
	bpf_map_lookup_elem(k.map_fd[AG_MAP_STATS], &id, &before);
	roundtrip(&d, agent_cg, tool, tool_port, r);
	roundtrip(&d, agent_cg, tool, tool_port, r);
	bpf_map_lookup_elem(k.map_fd[AG_MAP_STATS], &id, &after);
	ASSERT_EQ(after.redirected - before.redirected, 2, "redirected counter moved by 2");
	ag_kern_close(&k);

	ASSERT_EQ(run_capture(&out, "bpftool map dump pinned %s/stats", d.in.pin_dir), 0,
		  "bpftool map dump");
	snprintf(want, sizeof(want), "\"redirected\": %llu", (unsigned long long)after.redirected);
	ASSERT_TRUE(out && strstr(out, want), "bpftool prints the named counter");
	ASSERT_TRUE(out && strstr(out, "\"sock_denied\": "), "bpftool prints named fields");
	ASSERT_FALSE(out && strstr(out, "key: "), "no raw hex dump");
	if (test__verbose())
		fprintf(stderr, "%s", out);
	free(out);
out:
	tdaemon_destroy(&d);
	close(tool);
	munmap(r, sizeof(*r));
}

static uint64_t status_field(const char *status, const char *name)
{
	const char *p = strstr(status, name);

	return p ? strtoull(p + strlen(name), NULL, 16) : UINT64_MAX;
}

/* After set-up the daemon keeps CAP_NET_ADMIN (marks) and nothing else. */
TEST(daemon_least_privilege)
{
	char path[64], *status = NULL, *out = NULL;
	const uint64_t net_admin = 1ull << 12;
	struct tdaemon d;

	if (!ASSERT_OK(tdaemon_start(&d, "caps", "", 0), "daemon"))
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/status", d.pid);
	if (!ASSERT_OK(ag_read_file(path, 1 << 16, &status, NULL, NULL), path))
		goto out;
	ASSERT_EQ(status_field(status, "CapEff:\t"), net_admin, "effective: CAP_NET_ADMIN only");
	ASSERT_EQ(status_field(status, "CapPrm:\t"), net_admin, "permitted: CAP_NET_ADMIN only");
	ASSERT_EQ(status_field(status, "CapBnd:\t"), net_admin, "bounding: CAP_NET_ADMIN only");
	ASSERT_EQ(status_field(status, "CapAmb:\t"), 0, "ambient: none");
	ASSERT_EQ(status_field(status, "NoNewPrivs:\t"), 1, "no_new_privs");
	/* It runs in <instance>/daemon, outside the agents' hooks. */
	snprintf(path, sizeof(path), "/proc/%d/cgroup", d.pid);
	ASSERT_EQ(run_capture(&out, "grep -c '^0::/%s/daemon$' %s", d.in.name, path), 0,
		  "in the daemon cgroup");
	free(out);
out:
	free(status);
	tdaemon_destroy(&d);
}

/*
 * The pidfile is replaced whole, never written through a symlink that was
 * planted at a temporary name beside it: agentgated.pid.tmp, which the
 * daemon once opened with O_CREAT (so writing the pid into whatever file
 * the link named) before renaming the link over the pidfile, and
 * .agentgated.pid.tmp, the name ag_file_write_atomic() uses.
 */
TEST(daemon_pidfile_symlink)
{
	static const char victim_text[] = "not the daemon's\n";
	static const char *const tmp_names[] = { "agentgated.pid.tmp", ".agentgated.pid.tmp" };
	char victim[PATH_MAX], links[2][PATH_MAX], *text = NULL;
	struct tdaemon d = { 0 };
	struct ag_instance in;
	struct ag_err err;
	struct stat st;
	FILE *f;

	if (!ASSERT_OK(ag_instance_init(&in, test__instance("pidlink"), NULL, &err), "instance"))
		return;
	snprintf(victim, sizeof(victim), "%s/victim", in.run_dir);
	for (int i = 0; i < 2; i++)
		snprintf(links[i], sizeof(links[i]), "%s/%s", in.run_dir, tmp_names[i]);
	if (!ASSERT_TRUE(!mkdir(in.run_dir, 0700) || errno == EEXIST, "run directory"))
		return;
	if (!ASSERT_OK_PTR(f = fopen(victim, "w"), "victim file"))
		goto out;
	fputs(victim_text, f);
	fclose(f);
	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(symlink(victim, links[i]), tmp_names[i]))
			goto out;
	if (!ASSERT_OK(tdaemon_start(&d, "pidlink", "", 0), "the daemon starts beside the links"))
		goto out;
	if (ASSERT_OK(ag_read_file(victim, 4096, &text, NULL, NULL), "read the victim"))
		ASSERT_STREQ(text, victim_text, "the file the links name is untouched");
	free(text);
	text = NULL;
	if (ASSERT_OK(lstat(in.pid_path, &st), "the pidfile exists"))
		ASSERT_TRUE(S_ISREG(st.st_mode), "the pidfile is a file, not a planted link");
	if (ASSERT_OK(ag_read_file(in.pid_path, 64, &text, NULL, NULL), "read the pidfile"))
		ASSERT_EQ(atoi(text), d.pid, "the pidfile names the daemon");
	free(text);
out:
	tdaemon_destroy(&d);
	/* The sweep in tdaemon_destroy could not remove a directory still holding these. */
	for (int i = 0; i < 2; i++)
		unlink(links[i]);
	unlink(victim);
	rmdir(in.run_dir);
}

static int agent_udp_flood(void *arg)
{
	int n = *(int *)arg, fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", 9, &ss);

	for (int i = 0; i < n; i++)
		sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len);
	close(fd);
	return 0;
}

static long long daemon_counter(const struct tdaemon *d, const char *name)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *resp = NULL;
	struct ag_err err;
	long long v = -1;

	if (!ag_ctl_call(&d->in, req, &resp, &err))
		v = json_integer_value(json_object_get(resp, name));
	json_decref(req);
	json_decref(resp);
	return v;
}

static int count_lines(const struct tdaemon *d, const char *needle)
{
	char *out = NULL;
	int n = -1;

	if (run_capture(&out, "grep -c '%s' %s", needle, d->log) >= 0 && out)
		n = atoi(out);
	free(out);
	return n;
}

/*
 * A flood of refusals: every one counted, the log bounded (a burst of 100
 * lines, then 20 a second while the daemon works through the flood), and
 * whatever was not logged is accounted for on the agent's next line.
 */
TEST(daemon_refusal_log_limit)
{
	int *n = shared_alloc(sizeof(int));
	char agent_cg[PATH_MAX], *out = NULL;
	struct timespec t0, t1;
	struct tdaemon d;
	double drained_s;
	int lines;

	if (!ASSERT_OK(tdaemon_start_agent(&d, "loglimit", "", agent_cg, sizeof(agent_cg)),
		       "daemon"))
		goto out;
	*n = 1000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_in_cgroup(agent_cg, NOBODY_UID, agent_udp_flood, n);
	/* Counting, not timing: a loaded host may take a while to drain the ring. */
	for (int i = 0; i < 1000 && daemon_counter(&d, "kernel_refusals") < 1000; i++)
		usleep(10 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	drained_s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ASSERT_EQ(daemon_counter(&d, "kernel_refusals"), 1000, "every refusal counted");
	lines = count_lines(&d, "event=kernel_refusal");
	ASSERT_GE(lines, 100, "the burst is logged");
	ASSERT_LE(lines, 100 + (int)(20 * drained_s) + 10, "the rest is not");
	/* After a pause, the next line says how many were held back: all the others. */
	usleep(300 * 1000);
	*n = 1;
	run_in_cgroup(agent_cg, NOBODY_UID, agent_udp_flood, n);
	for (int i = 0; i < 1000 && daemon_counter(&d, "kernel_refusals") < 1001; i++)
		usleep(10 * 1000);
	ASSERT_EQ(daemon_counter(&d, "kernel_refusals"), 1001, "the one after the pause counted");
	ASSERT_EQ(run_capture(&out,
			      "grep event=kernel_refusal %s | tail -1 | sed "
			      "'s/.*suppressed=//'",
			      d.log),
		  0, "last refusal line");
	ASSERT_EQ(out ? atoi(out) : -1, 1000 - lines, "every refusal logged or counted as held back");
	free(out);
out:
	tdaemon_destroy(&d);
	munmap(n, sizeof(int));
}

/* No ::1 on loopback: the gateway still starts, IPv4 only. */
TEST(daemon_without_ipv6)
{
	struct tdaemon d;

	if (ASSERT_OK(tdaemon_start(&d, "noipv6", "", TDAEMON_NETNS_WITHOUT_IPV6),
		      "starts without IPv6")) {
		ASSERT_TRUE(log_has(&d, 1000, "event=listen", "ipv6=off", NULL), "says so");
		ASSERT_TRUE(log_has(&d, 1000, "event=start", "ipv6=no", NULL), "runs IPv4 only");
	}
	tdaemon_destroy(&d);
}

/* agentgatectl audit CMD over the daemon's log; verify checks the signatures too. */
static int audit_cmd(char **out, const struct tdaemon *d, const char *args)
{
	char key[PATH_MAX + 32] = "";

	if (!strncmp(args, "verify", 6))
		snprintf(key, sizeof(key), "--pubkey %s/audit.key", d->state);
	return run_capture(out, "%s/agentgatectl audit %s %s %s/audit.log 2>&1",
			   testlib_build_dir(), args, key, d->state);
}

/* Relayed calls the log holds so far. */
static int count_ok_records(const struct tdaemon *d)
{
	char *out = NULL;
	int n = -1;

	if (run_capture(&out, "grep -c '\"kind\":\"connect\".*\"result\":\"ok\"' %s/audit.log",
			d->state) >= 0 &&
	    out)
		n = atoi(out);
	free(out);
	return n;
}

/* Every connection and refusal in the signed, hash-chained audit log. */
TEST(daemon_audit_trail)
{
	struct relay_attempt *r = shared_alloc(sizeof(*r));
	char agent_cg[PATH_MAX], *out = NULL, want[64];
	int *n = shared_alloc(sizeof(int));
	struct tdaemon d;
	uint16_t tool_port;
	int tool;

	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	if (!ASSERT_OK(tdaemon_start_agent(&d, "audit", "", agent_cg, sizeof(agent_cg)), "daemon"))
		goto out;
	roundtrip(&d, agent_cg, tool, tool_port, r);
	*n = 1;
	run_in_cgroup(agent_cg, NOBODY_UID, agent_udp_flood, n);
	{
		struct sockaddr_storage ss;
		socklen_t len = make_sockaddr("127.0.0.1", d.port, &ss);
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		connect(fd, (struct sockaddr *)&ss, len); /* no origin: rejected */
		ASSERT_TRUE(log_has(&d, 2000, "event=conn_rejected", NULL), "rejected");
		close(fd);
	}
	ASSERT_TRUE(log_has(&d, 2000, "event=kernel_refusal", NULL), "refusal logged");

	if (test__start_subtest("records")) {
		snprintf(want, sizeof(want), "\"dst\":\"127.0.0.1:%u\"", tool_port);
		ASSERT_EQ(audit_cmd(&out, &d, "query --json --kind connect --agent a"), 0, "query");
		ASSERT_TRUE(out && strstr(out, want) && strstr(out, "\"result\":\"ok\"") &&
				strstr(out, "\"bytes_up\":20"),
			    "the relayed call, with destination, result and bytes");
		free(out);
		ASSERT_EQ(audit_cmd(&out, &d, "query --json --kind kernel_refusal"), 0, "query");
		ASSERT_TRUE(out && strstr(out, "\"hook\":\"sendmsg4\"") &&
				strstr(out, "\"reason\":\"udp_destination\""),
			    "the kernel's refusal");
		free(out);
		ASSERT_EQ(audit_cmd(&out, &d, "query --json --kind connect"), 0, "query");
		ASSERT_TRUE(out && strstr(out, "\"reason\":\"no_origin\""),
			    "the connection that bypassed the hooks");
		free(out);
	}
	if (test__start_subtest("verifies_after_stop")) {
		tdaemon_kill(&d, SIGTERM);
		ASSERT_EQ(audit_cmd(&out, &d, "verify"), 0, "audit verify");
		if (test__verbose() || !out || !strstr(out, "OK"))
			fprintf(stderr, "%s", out ? out : "");
		free(out);
	}
	if (test__start_subtest("kill9_continues_chain")) {
		ASSERT_OK(tdaemon_restart(&d), "restart");
		roundtrip(&d, agent_cg, tool, tool_port, r);
		/*
		 * Connection records are group-committed without a wait (governed
		 * calls will wait for theirs): let this one reach the disk, so what
		 * the kill tests is the chain, not the last millisecond.
		 */
		for (int i = 0; i < 100 && count_ok_records(&d) < 2; i++)
			usleep(10 * 1000);
		tdaemon_kill(&d, SIGKILL);
		ASSERT_OK(tdaemon_restart(&d), "restart after kill -9");
		roundtrip(&d, agent_cg, tool, tool_port, r);
		/* Closed by both peers before the stop, or it ends as result=shutdown. */
		for (int i = 0; i < 100 && count_ok_records(&d) < 3; i++)
			usleep(10 * 1000);
		tdaemon_kill(&d, SIGTERM);
		ASSERT_EQ(audit_cmd(&out, &d, "verify"), 0, "the log verifies, one chain");
		if (test__verbose() || !out || !strstr(out, "OK"))
			fprintf(stderr, "%s", out ? out : "");
		free(out);
		ASSERT_EQ(count_ok_records(&d), 3, "all three relayed calls recorded");
	}
out:
	tdaemon_destroy(&d);
	close(tool);
	munmap(r, sizeof(*r));
	munmap(n, sizeof(int));
}

static bool daemon_audit_ok(const struct tdaemon *d)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *resp = NULL;
	struct ag_err err;
	bool ok = false;

	if (!ag_ctl_call(&d->in, req, &resp, &err))
		ok = json_is_true(json_object_get(json_object_get(resp, "audit"), "ok"));
	json_decref(req);
	json_decref(resp);
	return ok;
}

/* No space for the audit log: agents' connections are refused, then served again. */
TEST(daemon_audit_disk_full)
{
	struct relay_attempt *r = shared_alloc(sizeof(*r));
	struct burst *b = shared_alloc(sizeof(*b));
	char agent_cg[PATH_MAX], filler[PATH_MAX + 16], *out = NULL;
	struct tdaemon d;
	uint16_t tool_port;
	int tool;

	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	if (!ASSERT_OK(tdaemon_start(&d, "diskfull", "", TDAEMON_SMALL_STATE), "daemon"))
		goto out;
	{
		struct ag_kern k;
		struct ag_err err;

		if (ASSERT_OK(ag_kern_open(&k, &d.in, &err), "maps")) {
			ag_agent_register(&k, &d.in, "a", AG_VERDICT_KEEP, NULL, &err);
			ag_kern_close(&k);
		}
		snprintf(agent_cg, sizeof(agent_cg), "%s/a", d.in.cg_agents);
	}
	roundtrip(&d, agent_cg, tool, tool_port, r);
	snprintf(filler, sizeof(filler), "%s/filler", d.state);
	ASSERT_NEQ(run_capture(&out, "dd if=/dev/zero of=%s bs=4k count=1000 2>&1", filler), 0,
		   "fill the disk");
	free(out);
	/*
	 * The writer finds out when a write needs a page tmpfs no longer has:
	 * make records until it does (bounded).
	 */
	b->port = tool_port;
	b->attempts = 5;
	for (int i = 0; i < 40 && daemon_audit_ok(&d); i++) {
		run_in_cgroup(agent_cg, NOBODY_UID, agent_burst, b);
		while (has_pending(tool))
			close(accept_timeout(tool, 100));
		usleep(20 * 1000);
	}
	ASSERT_FALSE(daemon_audit_ok(&d), "the daemon knows it cannot write");
	/*
	 * Relays accepted while records could still be written may reach the
	 * tool a moment later: let them in before the check below, which is
	 * about connections made after the failure.
	 */
	for (int i = 0; i < 20; i++) {
		while (has_pending(tool))
			close(accept_timeout(tool, 100));
		usleep(10 * 1000);
	}
	ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s status", testlib_build_dir(),
			      d.in.name),
		  1, "status: not serving");
	ASSERT_TRUE(out && strstr(out, "audit:") && strstr(out, "FAILED"), "audit FAILED");
	ASSERT_TRUE(out && strstr(out, "state:      degraded"), "degraded");
	free(out);
	b->attempts = 3;
	run_in_cgroup(agent_cg, NOBODY_UID, agent_burst, b);
	ASSERT_TRUE(log_has(&d, 1000, "event=conn_rejected", "reason=audit_unavailable", NULL),
		    "refused: cannot be recorded");
	ASSERT_FALSE(has_pending(tool), "nothing reached the tool");

	unlink(filler);
	/* The writer retries on its own; wait until it says it is writing again. */
	for (int i = 0; i < 100 && !daemon_audit_ok(&d); i++)
		usleep(20 * 1000);
	ASSERT_TRUE(daemon_audit_ok(&d), "audit recovered once space returned");
	roundtrip(&d, agent_cg, tool, tool_port, r);
	tdaemon_kill(&d, SIGTERM);
	ASSERT_EQ(audit_cmd(&out, &d, "verify"), 0, "whole records only: the log verifies");
	if (test__verbose() || !out || !strstr(out, "OK"))
		fprintf(stderr, "%s", out ? out : "");
	free(out);
out:
	tdaemon_destroy(&d);
	close(tool);
	munmap(r, sizeof(*r));
	munmap(b, sizeof(*b));
}
