// SPDX-License-Identifier: GPL-2.0
/*
 * make run's demo (scripts/demo.sh), run as make run runs it, with the
 * suite's build directory: what a viewer is told happened must have
 * happened.  The governed call is answered, the forbidden one refused, the
 * escalated call held until an operator approves it from outside and then
 * answered, the tool server receives the gateway's credential and the
 * agent's own request carries none, the bypasses are refused in the kernel,
 * and the audit trail verifies; the secret itself is never printed.
 *
 * The demo owns fixed names: instance agentgate-demo and ports 18090-18093, 18095-18096
 * and 15090.  When any is taken the test fails at once, saying which,
 * rather than take it over or wait.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "testlib.h"
#include "util.h"

#define DEMO_TIMEOUT_S 180
/* make run should take well under a minute; twice that is a regression. */
#define DEMO_SLOW_S 120

static const unsigned short demo_ports[] = { 18090, 18091, 18092, 18093, 18095, 18096, 15090 };

static bool listening(unsigned short port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool taken;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	taken = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return taken;
}

/* A server the demo killed may take a moment to exit: up to 2 s. */
static bool released(unsigned short port)
{
	for (int i = 0; i < 40; i++) {
		if (!listening(port))
			return true;
		usleep(50000);
	}
	return false;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* The part of out from the line starting with from up to the next "\n== " heading. */
static char *section(const char *out, const char *from)
{
	const char *s = out ? strstr(out, from) : NULL, *e;

	if (!s)
		return NULL;
	e = strstr(s + strlen(from), "\n\033[1m== ");
	return e ? strndup(s, (size_t)(e - s)) : strdup(s);
}

/* Whether text holds "demo-" followed by the token's 40 hex digits, unmasked. */
static bool token_in_clear(const char *text)
{
	for (const char *p = text; (p = strstr(p, "demo-")); p++) {
		int n = 0;

		while (n < 40 && isxdigit((unsigned char)p[5 + n]))
			n++;
		if (n == 40)
			return true;
	}
	return false;
}

/* The needles appear in out in this order, each after the one before. */
static bool in_order(const char *out, const char *const *needles, int n)
{
	const char *p = out;

	for (int i = 0; i < n; i++) {
		p = p ? strstr(p, needles[i]) : NULL;
		if (!p)
			return false;
		p += strlen(needles[i]);
	}
	return true;
}

static void check_mcp(const char *out)
{
	char *s = section(out, "== 1. ");

	ASSERT_STRHAS(out, "event=policy result=loaded policies=8",
		      "the daemon loaded the demo's policy set");
	ASSERT_STRHAS(s, "\"tools\":[\"echo\",\"get-sum\",\"get-tiny-image\"]",
		      "tools/list filtered by demo-sees");
	ASSERT_STRHAS(s, "\"text\":\"Echo: hello from the demo agent\"",
		      "the governed call allowed and answered");
	ASSERT_STRHAS(s, "\"text\":\"Denied by policy: the demo agent gets no images\"",
		      "get-tiny-image refused by the forbid");
	ASSERT_STRHAS(s, "\"text\":\"The sum of 2 and 3 is 5.\"", "a small sum allowed");
	ASSERT_STRHAS(s, "[REDACTED:email] the key [REDACTED:cloud-key]",
		      "output rules mask the result");
	free(s);
}

static void check_escalation(const char *out)
{
	char *s = section(out, "== 2. ");
	static const char *const audit[] = {
		"tool=get-sum decision=ask reason=needs\\x20approval",
		"approval agent=demo server=everything tool=get-sum decision=allow",
		"result agent=demo server=everything tool=get-sum",
	};

	ASSERT_STRHAS(s, "operator$ agentgatectl --instance agentgate-demo approvals",
		      "the operator lists held calls");
	ASSERT_STRHAS(s, "get-sum", "the held call is listed");
	ASSERT_STRHAS(s, "needs approval: sums above 100 need an operator's approval",
		      "with the policy's reason");
	ASSERT_STRHAS(s, "approved 1: the call goes on by alice", "approved from outside");
	ASSERT_STRHAS(s, "\"text\":\"The sum of 120 and 7 is 127.\"",
		      "the held call completes once approved");
	ASSERT_TRUE(in_order(out, audit, 3), "audit: ask, then alice's approval, then the result");
	free(s);
}

static void check_credential(const char *out)
{
	char *s = section(out, "== 3. "), *sent = NULL, *got;

	if (!ASSERT_OK_PTR(s, "the credential step"))
		return;
	got = strstr(s, "What the tool server received");
	if (ASSERT_OK_PTR(got, "the server's side shown"))
		sent = strndup(s, (size_t)(got - s));
	ASSERT_STRHAS(sent, "agent| > POST /mcp", "the agent's request headers shown");
	ASSERT_FALSE(sent && strcasestr(sent, "authorization"),
		     "the agent's request carries no Authorization");
	ASSERT_STRHAS(got, "server| Authorization: Bearer demo-",
		      "the server received a bearer token");
	ASSERT_STRHAS(got, "characters: the content of upstream.token)",
		      "it is the secret file's token");
	ASSERT_STRHAS(got, " 0 the Authorization an agent sent",
		      "no agent's own Authorization reached the server");
	ASSERT_FALSE(token_in_clear(out), "the token is never printed in full");
	free(sent);
	free(s);
}

static void check_refusals(const char *out)
{
	ASSERT_STRHAS(out, "agent| {\"tool\":\"weather\",\"result\":\"sunny\"}",
		      "the pass-through call relayed");
	ASSERT_STRHAS(out, "agent| {\n   agent|   \"id\": 1,", "the HTTP service's GET answered");
	ASSERT_STRHAS(
	    out, "no policy permits http of route todos/remove\",\"decision\":\"deny\"} (HTTP 403)",
	    "the HTTP service's DELETE refused");
	ASSERT_STRHAS(out,
		      "What json-server received: 1 request(s), 0 DELETE; todo 1 is still there: 1",
		      "only the allowed request reached json-server");
	ASSERT_STRHAS(out, "kernel_refusal agent=demo hook=connect4 dst=127.0.0.2:9000 reason=rule",
		      "the denied address refused");
	ASSERT_STRHAS(out, "dst=127.0.0.1:53 reason=udp_destination", "bypass a) refused");
	ASSERT_STRHAS(out, "dst=127.0.0.1:18091 reason=no_gateway", "bypass b) refused");
	ASSERT_STRHAS(out, "dst=127.0.0.1:15090 reason=gateway_loop", "bypass c) refused");
	ASSERT_STRHAS(out, "signatures verified), 0 unsigned at the end", "audit verify OK");
	ASSERT_STRHAS(out, "FAIL: modified record at seq", "the edited copy caught");
}

/* The hosted stdio server: listed, read, a write refused by policy, its process logged. */
static void check_hosted(const char *out)
{
	char *s = section(out, "== 7. ");

	ASSERT_STRHAS(s, "\"read_text_file\"", "the hosted server's tools listed");
	ASSERT_STRHAS(s, "\"text\":\"Q3 revenue: 4.2M\\n\"", "its answer to the allowed call");
	ASSERT_STRHAS(s,
		      "\"text\":\"Denied by policy: the demo agent reads files, it does not write "
		      "them\"",
		      "write_file refused by no-file-writes");
	ASSERT_STRHAS(s, "event=hosted server=files pid=", "its process started by the daemon");
	free(s);
}

TEST(demo_make_run)
{
	char e2e[PATH_MAX + 64], *out = NULL;
	struct timespec t0, t1;
	double secs;
	int status;

	snprintf(e2e, sizeof(e2e), "%s/e2e/node_modules/@modelcontextprotocol/server-everything",
		 testlib_build_dir());
	if (!exists(e2e)) {
		test__skip("npm peers not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_FALSE(exists("/sys/fs/bpf/agentgate-demo"),
			  "instance agentgate-demo is free (another make run?)"))
		return;
	for (size_t i = 0; i < AG_ARRAY_SIZE(demo_ports); i++) {
		if (!ASSERT_FALSE(
			listening(demo_ports[i]),
			"the demo's port is free (18090-18093, 18095-18096, 15090: another make run?)")) {
			fprintf(stderr, "port %u is in use\n", demo_ports[i]);
			return;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	status = run_capture(&out, "cd '%s' && BUILD='%s' timeout -k 5 %d scripts/demo.sh 2>&1",
			     testlib_src_dir(), testlib_build_dir(), DEMO_TIMEOUT_S);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (test__verbose())
		fprintf(stderr, "%s\ndemo: %.1f s\n", out, secs);
	if (!ASSERT_EQ(status, 0, "scripts/demo.sh exits 0"))
		fprintf(stderr, "%s\n", out ? out : "");
	ASSERT_LT(secs, DEMO_SLOW_S, "the demo's seconds");
	check_mcp(out);
	check_escalation(out);
	check_credential(out);
	check_refusals(out);
	check_hosted(out);
	/* The demo's trap cleans up, even after a timeout's SIGTERM. */
	ASSERT_FALSE(exists("/sys/fs/bpf/agentgate-demo"), "no pins left");
	for (size_t i = 0; i < AG_ARRAY_SIZE(demo_ports); i++)
		ASSERT_TRUE(released(demo_ports[i]), "no server left on the demo's ports");
	free(out);
	out = NULL;
	/* Whatever happened: leave no demo instance behind (free when we started). */
	if (run_capture(&out, "%s/agentgatectl --instance agentgate-demo uninstall >/dev/null 2>&1",
			testlib_build_dir()) > 1)
		fprintf(stderr, "cleanup of agentgate-demo failed\n");
	free(out);
}
