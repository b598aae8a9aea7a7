// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl as scripts use it: the command-line contract of DESIGN
 * section 8 (run exits with the agent's status; status; uninstall), run's
 * promises (fresh cgroup, never root, no_new_privs, transparently relayed)
 * and the inspection commands.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "config.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

/* agentgatectl for the test's instance, never as a sudo caller's user. */
static int ctl(char **out, const struct tdaemon *d, const char *args)
{
	return run_capture(out, "env -u SUDO_UID -u SUDO_GID %s/agentgatectl --instance %s %s 2>&1",
			   testlib_build_dir(), d->in.name, args);
}

TEST(cli_run)
{
	char *out = NULL, args[512], want[256];
	struct tdaemon d;
	uint16_t tool_port;
	int tool, status;

	if (!ASSERT_OK(tdaemon_start(&d, "clirun", "", 0), "daemon"))
		goto out;
	if (test__start_subtest("exit_status")) {
		ASSERT_EQ(ctl(&out, &d, "run --agent demo -- sh -c 'exit 7'"), 7, "exit status");
		free(out);
		ASSERT_EQ(ctl(&out, &d, "run --agent demo -- sh -c 'kill -TERM $$'"), 128 + SIGTERM,
			  "killed by a signal");
		free(out);
	}
	if (test__start_subtest("identity")) {
		long uid;

		ASSERT_EQ(
		    ctl(&out, &d,
			"run --agent demo -- sh -c 'echo U=$(id -u); grep ^0:: /proc/self/cgroup; "
			"grep NoNewPrivs /proc/self/status'"),
		    0, "run");
		uid = out && strstr(out, "U=") ? strtol(strstr(out, "U=") + 2, NULL, 10) : 0;
		ASSERT_TRUE(uid >= AG_DEFAULT_AGENT_UID_MIN && uid <= AG_DEFAULT_AGENT_UID_MAX,
			    "runs as a per-run uid, not the caller's nor nobody");
		snprintf(want, sizeof(want), "0::/%s/agents/demo/run-", d.in.name);
		ASSERT_TRUE(out && strstr(out, want), "in a fresh run cgroup below the agent");
		ASSERT_TRUE(out && strstr(out, "NoNewPrivs:\t1"), "no_new_privs");
		if (test__verbose())
			fprintf(stderr, "%s", out);
		free(out);
	}
	if (test__start_subtest("run_cgroup_removed")) {
		char cg[PATH_MAX + 32];
		int n = 0;

		ASSERT_EQ(ctl(&out, &d, "run --agent demo -- true"), 0, "run");
		free(out);
		snprintf(cg, sizeof(cg), "ls -d %s/demo/run-* 2>/dev/null | wc -l", d.in.cg_agents);
		ASSERT_EQ(run_capture(&out, "%s", cg), 0, "ls");
		n = out ? atoi(out) : -1;
		ASSERT_EQ(n, 0, "run cgroups left behind");
		free(out);
	}
	if (test__start_subtest("never_root")) {
		ASSERT_EQ(ctl(&out, &d, "run --agent demo --user root -- true"), 1, "refused");
		ASSERT_TRUE(out && strstr(out, "never run as root"), "says why");
		free(out);
	}
	if (test__start_subtest("relayed")) {
		char uid[32];
		pid_t server;

		tool = tcp_listen("127.0.0.1", 0, &tool_port);
		server = serve_one(tool, "hello-from-tool");
		snprintf(
		    args, sizeof(args),
		    "run --agent demo -- bash -c 'echo U=$(id -u); exec 3<>/dev/tcp/127.0.0.1/%u; "
		    "printf hi >&3; cat <&3'",
		    tool_port);
		ASSERT_EQ(ctl(&out, &d, args), 0, "run");
		ASSERT_TRUE(out && strstr(out, "hello-from-tool"),
			    "the agent got the tool's bytes");
		waitpid(server, &status, 0);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the tool served it");
		snprintf(want, sizeof(want), "dst=127.0.0.1:%u", tool_port);
		snprintf(uid, sizeof(uid), "uid=%ld ",
			 out && strstr(out, "U=") ? strtol(strstr(out, "U=") + 2, NULL, 10) : 0);
		ASSERT_TRUE(log_has(&d, 2000, "event=conn ", "agent=\"demo\"", want, uid,
				    "comm=\"bash\"", NULL),
			    "through the daemon, with the agent's identity");
		free(out);
		close(tool);
	}
	if (test__start_subtest("usage_errors")) {
		ASSERT_EQ(ctl(&out, &d, "run -- true"), 2, "no --agent");
		free(out);
		ASSERT_EQ(ctl(&out, &d, "run --agent 'bad/name' -- true"), 1, "bad agent name");
		ASSERT_TRUE(out && strstr(out, "agent name"), "says what is wrong");
		free(out);
		ASSERT_EQ(ctl(&out, &d, "frobnicate"), 2, "unknown command");
		free(out);
	}
out:
	tdaemon_destroy(&d);
}

TEST(cli_status_and_uninstall)
{
	char *out = NULL, *p, want[256];
	struct tdaemon d;
	json_t *j, *v;

	if (!ASSERT_OK(tdaemon_start(&d, "clistatus", "", 0), "daemon"))
		goto out;
	/* Registers the agent, and gives the kernel one refusal to count. */
	ASSERT_EQ(ctl(&out, &d, "run --agent demo -- bash -c 'echo x > /dev/udp/127.0.0.1/9'"), 1,
		  "agent's UDP send refused");
	free(out);
	if (test__start_subtest("status_text")) {
		ASSERT_EQ(ctl(&out, &d, "status"), 0, "status exit");
		/* Three lines first: serving, coverage, audit. */
		ASSERT_TRUE(out && !strncmp(out, "serving:    yes: agentgated pid ", 32),
			    "leads with serving");
		/*
		 * At least the UDP send: the C library may also try nscd's
		 * socket for the per-run uid, which the kernel refuses too.
		 */
		p = out ? strstr(out, " kernel refusals\n") : NULL;
		while (p && p > out && p[-1] >= '0' && p[-1] <= '9')
			p--;
		ASSERT_TRUE(p && strtol(p, NULL, 10) >= 1, "counts the kernel's refusals");
		ASSERT_STRHAS(out,
			      " kernel refusals\ncoverage:   TCP, UDP/DNS, socket families, "
			      "AF_UNIX; agents isolated: seccomp, Landlock",
			      "then coverage");
		ASSERT_STRHAS(out, "path open (below)\naudit:      ", "then the audit log");
		ASSERT_STRHAS(out, "writing, durability written\n", "its state and durability");
		ASSERT_STRHAS(out,
			      "dns:        agents' queries to the resolvers go through the relay",
			      "the DNS relay");
		ASSERT_FALSE(out && strstr(out, "link connect4"), "no ids without --verbose");
		ASSERT_TRUE(out && strstr(out, "bpf-lsm:"), "BPF-LSM reported");
		ASSERT_STRHAS(out, "isolation:  seccomp yes; Landlock ", "isolation facts");
		ASSERT_STRHAS(out, "per-run uids 61184-65519", "the per-run uid range");
		ASSERT_STRHAS(out, "state:      ok", "not degraded for what is only a fact");
		if (test__verbose())
			fprintf(stderr, "%s", out);
		free(out);
		ASSERT_EQ(ctl(&out, &d, "status --verbose"), 0, "status --verbose");
		ASSERT_TRUE(out && strstr(out, "  link connect4 ") && strstr(out, " prog "),
			    "links with ids");
		ASSERT_TRUE(out && strstr(out, "map  stats"), "maps listed");
		free(out);
	}
	if (test__start_subtest("status_json")) {
		ASSERT_EQ(ctl(&out, &d, "status --json"), 0, "status --json exit");
		j = out ? json_loads(out, 0, NULL) : NULL;
		if (ASSERT_OK_PTR(j, "valid JSON")) {
			ASSERT_TRUE(json_is_true(json_object_get(j, "installed")), "installed");
			ASSERT_EQ(json_array_size(json_object_get(j, "links")), AG_PROG_COUNT,
				  "links");
			ASSERT_TRUE(
			    json_is_true(json_object_get(json_object_get(j, "daemon"), "running")),
			    "daemon.running");
			ASSERT_TRUE(json_is_boolean(json_object_get(json_object_get(j, "bpf_lsm"),
								    "available")),
				    "bpf_lsm.available");
			v = json_object_get(j, "isolation");
			ASSERT_TRUE(json_is_true(json_object_get(v, "seccomp")), "seccomp");
			ASSERT_TRUE(json_is_integer(json_object_get(v, "landlock_abi")),
				    "landlock_abi");
			ASSERT_TRUE(json_object_get(v, "yama_ptrace_scope") != NULL, "yama");
			ASSERT_EQ(json_integer_value(
				      json_object_get(json_object_get(v, "agent_uids"), "min")),
				  AG_DEFAULT_AGENT_UID_MIN, "agent_uids.min");
			ASSERT_TRUE(json_is_array(json_object_get(v, "open")), "what stays open");
			ASSERT_EQ(json_array_size(json_object_get(j, "degraded")), 0, "degraded");
			json_decref(j);
		}
		free(out);
	}
	if (test__start_subtest("agents_and_maps")) {
		ASSERT_EQ(ctl(&out, &d, "agents"), 0, "agents");
		ASSERT_TRUE(out && strstr(out, "demo "), "demo listed");
		free(out);
		ASSERT_EQ(ctl(&out, &d, "maps stats"), 0, "maps stats");
		ASSERT_TRUE(out && strstr(out, "\"udp_denied\": 1"), "the refusal, by name");
		ASSERT_TRUE(out && strstr(out, "\"redirected\": 0"), "named counters");
		free(out);
		ASSERT_EQ(ctl(&out, &d, "maps nosuchmap"), 1, "unknown map");
		free(out);
	}
	if (test__start_subtest("status_daemon_down")) {
		tdaemon_kill(&d, SIGKILL);
		ASSERT_EQ(ctl(&out, &d, "status"), 1, "status exit when not serving");
		ASSERT_TRUE(out && !strncmp(out, "serving:    NO: agentgated is not running", 41),
			    "leads with: not serving");
		ASSERT_TRUE(out && strstr(out, "fail closed"), "says what that means");
		free(out);
	}
	if (test__start_subtest("uninstall")) {
		struct stat st;

		ASSERT_EQ(ctl(&out, &d, "uninstall"), 0, "uninstall");
		free(out);
		ASSERT_EQ(stat(d.in.pin_dir, &st), -1, "pins removed");
		ASSERT_EQ(stat(d.in.cg_root, &st), -1, "cgroups removed");
		ASSERT_EQ(ctl(&out, &d, "run --agent demo -- true"), 1, "run refuses");
		snprintf(want, sizeof(want), "instance %s is not installed", d.in.name);
		ASSERT_TRUE(out && strstr(out, want), "says the instance is not installed");
		free(out);
	}
out:
	tdaemon_destroy(&d);
}

/* The row of agent name in `agents --json` output, or NULL. */
static json_t *agent_row(json_t *rows, const char *name)
{
	size_t i;
	json_t *r;

	json_array_foreach(
	    rows, i,
	    r) if (!strcmp(json_string_value(json_object_get(r, "name")) ?: "", name)) return r;
	return NULL;
}

/*
 * agents counts every refusal: the kernel's (a rule denies the connect)
 * and the daemon's (no pass-through entry allows the Host sent: 403
 * not_allowed) each in its column; with the daemon down, the kernel's only,
 * and it says so.
 */
TEST(cli_agents_refusals)
{
	static const char agent[] =
	    "{\"name\": \"a\", \"tools\": [\"t/echo\"], \"passthrough\": [\"localhost\"], "
	    "\"rules\": [{\"dest\": \"127.0.0.3/32\", \"verdict\": \"deny\"}]}";
	struct exchange *x = shared_alloc(sizeof(*x));
	json_t *rows = NULL, *a, *dm;
	unsigned long long denied = 0, refused = 0;
	char *out = NULL, *line;
	struct mcp_env e = { 0 };

	if (!ASSERT_OK(env_start(&e, "cliref", REPLY_JSON, agent), "environment"))
		goto out;
	/* The daemon's refusal: a Host no pass-through entry allows. */
	x->port = free_port();
	snprintf(x->request, sizeof(x->request),
		 "GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n");
	run_agent(&e, x);
	ASSERT_STRHAS(x->response, "reason=not_allowed", "refused by the daemon");
	/* The kernel's: the agent's rule denies 127.0.0.3. */
	memset(x, 0, sizeof(*x));
	snprintf(x->addr, sizeof(x->addr), "127.0.0.3");
	x->port = free_port();
	snprintf(x->request, sizeof(x->request), "x");
	run_in_cgroup(e.agent_cg, NOBODY_UID, agent_exchange, x);
	ASSERT_EQ(x->err, EPERM, "refused by the kernel");

	ASSERT_EQ(ctl(&out, &e.d, "agents --json"), 0, "agents --json");
	rows = out ? json_loads(out, 0, NULL) : NULL;
	a = agent_row(rows, "a");
	dm = json_object_get(a, "daemon");
	if (ASSERT_OK_PTR(a, "agent a listed")) {
		ASSERT_EQ(
		    json_integer_value(json_object_get(json_object_get(a, "stats"), "denied")), 1,
		    "the kernel's refusal");
		ASSERT_EQ(json_integer_value(json_object_get(dm, "refused")), 1,
			  "the daemon's refusal");
		ASSERT_EQ(json_integer_value(
			      json_object_get(json_object_get(dm, "reasons"), "not_allowed")),
			  1, "by reason");
	}
	json_decref(rows);
	free(out);

	ASSERT_EQ(ctl(&out, &e.d, "agents"), 0, "agents");
	line = out ? strstr(out, "\na ") : NULL;
	ASSERT_TRUE(out && strstr(out, " DENIED  REFUSED\n"), "both columns");
	ASSERT_TRUE(line &&
			sscanf(line, "%*s %*s %*s %*s %*s %*s %llu %llu", &denied, &refused) == 2,
		    "a's row");
	ASSERT_EQ(denied, 1ull, "DENIED: the kernel's");
	ASSERT_EQ(refused, 1ull, "REFUSED: the daemon's");
	free(out);

	tdaemon_kill(&e.d, SIGKILL);
	ASSERT_EQ(ctl(&out, &e.d, "agents --json"), 0, "agents --json, daemon down");
	rows = out ? json_loads(out, 0, NULL) : NULL;
	a = agent_row(rows, "a");
	ASSERT_TRUE(a && json_is_null(json_object_get(a, "daemon")), "daemon: null");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(a, "stats"), "denied")), 1,
		  "the kernel's still");
	json_decref(rows);
	free(out);
	ASSERT_EQ(ctl(&out, &e.d, "agents"), 0, "agents, daemon down");
	ASSERT_STRHAS(out ? out : "", "the daemon's refusals are not known", "says so");
	free(out);
out:
	env_stop(&e);
}

/* agentgatectl of a test instance, no daemon: what usage checks need. */
static int ctl_bare(char **out, const char *args)
{
	return run_capture(out, "%s/agentgatectl --instance %s %s 2>&1", testlib_build_dir(),
			   test__instance("usage"), args);
}

/*
 * The commands made of subcommands (cli_dispatch over their tables): an
 * unknown subcommand exits 2 naming it, --help exits 0 with a synopsis
 * per subcommand, and agentgatectl --help lists the same names.
 */
TEST(cli_subcommand_usage)
{
	static const struct {
		const char *cmd, *subs[7], *listed; /* listed: in agentgatectl --help */
	} cmds[] = {
		{ "quota", { "show", "set", "reset" }, "quota show|set|reset\n" },
		{ "guard", { "attach", "detach", "show" }, "guard attach|detach|show\n" },
		{ "tools", { "diff", "approve", "lock" }, "tools [diff|approve|lock]\n" },
		{ "audit",
		  { "verify", "tail", "query", "pubkey" },
		  "audit verify|tail|query|pubkey\n" },
		{ "config", { "check" }, "config check\n" },
		{ "keys", { "jwks", "rotate", "mint" }, "keys jwks|rotate|mint\n" },
		{ "policy",
		  { "validate", "test", "explain", "simulate", "reload", "pull" },
		  "policy validate|test|explain|simulate|reload|pull\n" },
	};
	char *out = NULL, *help = NULL, args[128], want[128];

	ASSERT_EQ(ctl_bare(&help, "--help"), 0, "agentgatectl --help");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *cmd = cmds[i].cmd;

		if (!test__start_subtest(cmd))
			continue;
		ASSERT_STRHAS(help ? help : "", cmds[i].listed, "listed by agentgatectl --help");
		snprintf(args, sizeof(args), "%s frob", cmd);
		ASSERT_EQ(ctl_bare(&out, args), 2, "unknown subcommand: usage error");
		snprintf(want, sizeof(want), "agentgatectl %s: unknown subcommand \"frob\"", cmd);
		ASSERT_STRHAS(out ? out : "", want, "names it");
		free(out);
		snprintf(args, sizeof(args), "%s --help", cmd);
		ASSERT_EQ(ctl_bare(&out, args), 0, "--help");
		ASSERT_TRUE(out && !strncmp(out, "usage: ", 7), "a usage");
		for (size_t s = 0; cmds[i].subs[s]; s++) {
			snprintf(want, sizeof(want), " %s %s", cmd, cmds[i].subs[s]);
			if (!ASSERT_STRHAS(out ? out : "", want, "a synopsis per subcommand"))
				fprintf(stderr, "  %s --help: no \"%s\"\n", cmd, want);
		}
		free(out);
		if (strcmp(cmd, "tools")) {
			ASSERT_EQ(ctl_bare(&out, cmd), 2, "no subcommand: usage error");
			ASSERT_STRHAS(out ? out : "", "usage: ", "says the usage");
			free(out);
		}
	}
	free(help);
	if (test__start_subtest("aliases_and_default")) {
		char dir[] = "/tmp/agt-cliusage-XXXXXX";

		ASSERT_EQ(ctl_bare(&out, "audit help"), 0, "audit help: the old --help");
		ASSERT_STRHAS(out ? out : "", "agentgatectl audit pubkey --key FILE", "its usage");
		free(out);
		if (ASSERT_OK_PTR(mkdtemp(dir), "state dir")) {
			/* tools without a subcommand lists, with its own options. */
			snprintf(args, sizeof(args), "--state-dir %s tools", dir);
			ASSERT_EQ(ctl_bare(&out, args), 0, "tools");
			ASSERT_STRHAS(out ? out : "", "no tool recorded yet", "lists");
			free(out);
			snprintf(args, sizeof(args), "--state-dir=%s tools --json", dir);
			ASSERT_EQ(ctl_bare(&out, args), 0, "tools --json");
			ASSERT_STRHAS(out ? out : "", "{}", "lists as JSON");
			free(out);
			snprintf(args, sizeof(args), "rm -rf %s", dir);
			ASSERT_EQ(system(args), 0, "cleanup");
		}
		ASSERT_EQ(ctl_bare(&out, "--bogus status"), 2, "unknown global option");
		free(out);
		ASSERT_EQ(ctl_bare(&out, "quota show --bogus"), 2, "unknown option");
		ASSERT_STRHAS(out ? out : "", "--bogus", "names it");
		free(out);
		ASSERT_EQ(ctl_bare(&out, "quota reset --help"), 0, "a subcommand's --help");
		free(out);
		/* Documented: 2 for bad usage, an operand too many included. */
		ASSERT_EQ(ctl_bare(&out, "status extra"), 2, "status takes no operand");
		ASSERT_STRHAS(out ? out : "", "\"extra\"", "names it");
		free(out);
		ASSERT_EQ(ctl_bare(&out, "maps stats extra"), 2, "maps takes one MAP");
		free(out);
		ASSERT_EQ(ctl_bare(&out, "approve 1 2"), 2, "approve takes one ID");
		free(out);
	}
}
