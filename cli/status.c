// SPDX-License-Identifier: GPL-2.0
/* agentgatectl status: is the instance enforcing, and what is it missing? */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "cgroup.h"
#include "cli.h"
#include "ctl.h"
#include "kern.h"
#include "probe.h"
#include "runuid.h"
#include "sandbox.h"

static const char status_usage[] =
    "usage: agentgatectl [--instance NAME] status [--verbose] [--json]\n"
    "\n"
    "Leads with three lines: whether the instance serves, what is enforced on this\n"
    "kernel (and what stays open), and the audit log.  Then the details: limits, tool\n"
    "servers, DNS relay, isolation, AF_UNIX, XDP guards, what is degraded; --verbose\n"
    "adds every pinned link and map with its ids.  Exits 1 when the instance is not\n"
    "installed or not serving (daemon down, or its audit log not writable).\n";

static json_t *daemon_status(const struct ag_instance *in)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *resp = NULL;
	struct ag_err err;

	if (ag_ctl_call(in, req, &resp, &err)) {
		json_decref(req);
		return json_pack("{s:b,s:s}", "running", 0, "error", err.msg);
	}
	json_decref(req);
	json_object_set_new(resp, "running", json_true());
	return resp;
}

/* Yama's kernel.yama.ptrace_scope, or JSON null when Yama is not there. */
static json_t *yama_scope(void)
{
	char *s = NULL;
	json_t *j;

	if (ag_read_file("/proc/sys/kernel/yama/ptrace_scope", 16, &s, NULL, NULL))
		return json_null();
	j = json_integer(atoi(s));
	free(s);
	return j;
}

/* The range agentgatectl run takes per-run uids from, as the daemon wrote it. */
static json_t *agent_uids(const struct ag_instance *in)
{
	struct ag_config cfg = { 0 };
	uint32_t min, max;
	struct ag_kern k;
	struct ag_err err;

	if (ag_kern_open(&k, in, &err))
		return json_null();
	ag_kern_get_config(&k, &cfg, &err); /* unread: the defaults */
	ag_kern_close(&k);
	ag_runuid_range(&cfg, &min, &max);
	return json_pack("{s:I,s:I}", "min", (json_int_t)min, "max", (json_int_t)max);
}

/*
 * What keeps agents from acting on processes that are not theirs here
 * (agentgatectl(8) run), what that leaves open on this kernel, and in
 * degraded what makes run refuse to start agents.
 */
static json_t *isolation(const struct ag_instance *in, bool lsm, json_t *degraded)
{
	int abi = ag_landlock_abi();
	bool seccomp = ag_seccomp_available();
	json_t *open = json_array();

	if (!seccomp)
		json_array_append_new(degraded,
				      json_string("no seccomp filters on this kernel: agentgatectl "
						  "run refuses to start agents (fail closed)"));
	if (!abi)
		json_array_append_new(degraded,
				      json_string("no Landlock: agentgatectl run --user refuses; "
						  "agents run only under per-run uids"));
	if (!lsm)
		json_array_append_new(
		    open,
		    json_string("a socket a process outside hands in over a unix socket "
				"(SCM_RIGHTS) is not seen by the cgroup hooks (needs BPF-LSM)"));
	if (abi && abi < AG_LANDLOCK_ABI_SCOPES)
		json_array_append_new(
		    open, json_string("with --user, the agent can signal that user's processes "
				      "and reach their abstract unix sockets (Landlock ABI < 6)"));
	return json_pack("{s:b,s:i,s:b,s:o,s:o,s:o}", "seccomp", seccomp, "landlock_abi", abi,
			 "landlock_scopes", abi >= AG_LANDLOCK_ABI_SCOPES, "yama_ptrace_scope",
			 yama_scope(), "agent_uids", agent_uids(in), "open", open);
}

static json_t *collect(const struct ag_instance *in)
{
	struct ag_link_status links[AG_PROG_COUNT];
	json_t *out = json_object(), *jl = json_array(), *jm = json_array(),
	       *degraded = json_array();
	char path[PATH_MAX], why[256];
	bool installed = true, lsm, unix_hooks;
	json_t *daemon;

	json_object_set_new(out, "instance", json_string(in->name));
	json_object_set_new(out, "cgroup", json_string(in->cg_root));
	json_object_set_new(out, "agent_processes",
			    json_integer(ag_cgroup_count_procs(in->cg_agents)));
	ag_kern_links(in, links);
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		bool supported = ag_kern_prog_supported(i);

		installed &= links[i].pinned || !supported;
		json_array_append_new(jl,
				      json_pack("{s:s,s:b,s:b,s:I,s:I,s:I}", "name", links[i].name,
						"supported", supported, "pinned", links[i].pinned,
						"link_id", (json_int_t)links[i].link_id, "prog_id",
						(json_int_t)links[i].prog_id, "cgroup_id",
						(json_int_t)links[i].cgroup_id));
	}
	for (int i = 0; i < AG_MAP__COUNT; i++) {
		bool pinned;

		ag_pin_path(in, ag_map_names[i], path, sizeof(path));
		pinned = access(path, F_OK) == 0;
		installed &= pinned;
		json_array_append_new(jm, json_pack("{s:s,s:s,s:b}", "name", ag_map_names[i],
						    "path", path, "pinned", pinned));
	}
	json_object_set_new(out, "installed", json_boolean(installed));
	/* What the connect hooks go by: redirect while set, refuse otherwise. */
	json_object_set_new(out, "serving", json_boolean(ag_kern_is_serving(in)));
	json_object_set_new(out, "links", jl);
	json_object_set_new(out, "maps", jm);
	daemon = daemon_status(in);
	json_object_set_new(out, "daemon", daemon);

	lsm = ag_probe_bpf_lsm(why, sizeof(why));
	json_object_set_new(out, "bpf_lsm",
			    json_pack("{s:b,s:s}", "available", lsm, "detail", why));
	json_object_set_new(out, "isolation", isolation(in, lsm, degraded));
	/* AF_UNIX: policed only where the kernel has the unix-socket hooks (6.7). */
	unix_hooks = ag_probe_unix_hooks(why, sizeof(why));
	json_object_set_new(out, "unix_hooks",
			    json_pack("{s:b,s:s}", "available", unix_hooks, "detail", why));
	if (!unix_hooks)
		json_array_append_new(
		    degraded, json_string("AF_UNIX not policed on this kernel (no "
					  "unix-socket cgroup hooks): agents connect to any "
					  "unix socket their uid may open"));
	if (json_is_false(json_object_get(json_object_get(daemon, "audit"), "ok")))
		json_array_append_new(degraded,
				      json_string("audit log not writable: agents' new connections "
						  "are refused until it is (fail closed)"));
	if (installed && !json_is_true(json_object_get(daemon, "running")))
		json_array_append_new(degraded,
				      json_string("daemon not running: agents' connections are "
						  "refused (fail closed)"));
	else if (installed && !json_is_true(json_object_get(out, "serving")))
		json_array_append_new(degraded,
				      json_string("daemon not serving (starting or stopping): "
						  "agents' connections are refused (fail closed)"));
	json_object_set_new(out, "xdp_guards", guard_list_json(in));
	json_object_set_new(out, "degraded", degraded);
	return out;
}

/* The tool inventory and the credentials the gateway holds (never their values). */
/* Fair sharing (agentgated(8) LIMITS): slots in use, caps, refusals, timeouts. */
static void print_limits(json_t *v)
{
	json_int_t cap = json_integer_value(json_object_get(v, "max_conns_per_agent"));
	json_int_t share = json_integer_value(json_object_get(v, "fair_share"));

	if (!v)
		return;
	printf("limits:     %lld of %lld agent connections (nofile %lld), at most %lld per "
	       "agent; %lld refused over a cap, %lld header and %lld idle timeouts\n",
	       json_integer_value(json_object_get(v, "active")),
	       json_integer_value(json_object_get(v, "ceiling")),
	       json_integer_value(json_object_get(v, "nofile")), share < cap ? share : cap,
	       json_integer_value(json_object_get(v, "refused_cap")) +
		   json_integer_value(json_object_get(v, "refused_ceiling")),
	       json_integer_value(json_object_get(v, "header_timeouts")),
	       json_integer_value(json_object_get(v, "idle_timeouts")));
}

static void print_tools(json_t *mcp)
{
	json_t *tools = json_object_get(mcp, "tools"), *c;
	const char *server;
	json_int_t review = json_integer_value(json_object_get(tools, "pending")) +
			    json_integer_value(json_object_get(tools, "blocked"));

	printf("tools:      %lld trusted, %lld pending, %lld blocked%s\n",
	       json_integer_value(json_object_get(tools, "trusted")),
	       json_integer_value(json_object_get(tools, "pending")),
	       json_integer_value(json_object_get(tools, "blocked")),
	       review ? " (agentgatectl tools diff|approve)" : "");
	json_object_foreach(json_object_get(mcp, "credentials"), server, c)
	{
		printf("credential: %s: %s", server, json_string_value(json_object_get(c, "type")));
		if (json_object_get(c, "requests"))
			printf(", %lld token requests, %lld failed, token %s",
			       json_integer_value(json_object_get(c, "requests")),
			       json_integer_value(json_object_get(c, "failures")),
			       json_is_integer(json_object_get(c, "expires_in_s")) ? "cached"
										   : "none");
		if (json_is_string(json_object_get(c, "last_error")))
			printf(", last error: %s",
			       json_string_value(json_object_get(c, "last_error")));
		putchar('\n');
	}
}

static void print_isolation(json_t *iso)
{
	json_t *uids = json_object_get(iso, "agent_uids"), *yama, *v;
	json_int_t abi = json_integer_value(json_object_get(iso, "landlock_abi"));
	size_t i;

	yama = json_object_get(iso, "yama_ptrace_scope");
	printf("isolation:  seccomp %s; Landlock ",
	       json_is_true(json_object_get(iso, "seccomp")) ? "yes" : "NO");
	if (abi)
		printf("ABI %lld%s", abi,
		       abi >= AG_LANDLOCK_ABI_SCOPES ? " (scopes signals, abstract unix)" : "");
	else
		printf("NO");
	if (json_is_integer(yama))
		printf("; Yama ptrace_scope %lld", json_integer_value(yama));
	else
		printf("; no Yama");
	if (uids)
		printf("; per-run uids %lld-%lld", json_integer_value(json_object_get(uids, "min")),
		       json_integer_value(json_object_get(uids, "max")));
	putchar('\n');
	json_array_foreach(json_object_get(iso, "open"), i, v)
	    printf("  open: %s\n", json_string_value(v));
}

/* Line 1: does the instance serve, and what has it done. */
static void print_serving(json_t *s)
{
	json_t *daemon = json_object_get(s, "daemon"), *conns;

	if (!json_is_true(json_object_get(s, "installed"))) {
		printf("serving:    NO: not installed (start agentgated)\n");
		return;
	}
	if (!json_is_true(json_object_get(daemon, "running"))) {
		printf("serving:    NO: agentgated is not running; agents' connections are refused "
		       "(fail closed)\n");
		return;
	}
	conns = json_object_get(daemon, "connections");
	printf("serving:    %s: agentgated pid %lld, up %llds, port %lld; %lld connections "
	       "active, %lld refused, %lld kernel refusals\n",
	       json_is_true(json_object_get(s, "serving")) ? "yes" : "NO (starting or stopping)",
	       json_integer_value(json_object_get(daemon, "pid")),
	       json_integer_value(json_object_get(daemon, "uptime_s")),
	       json_integer_value(json_object_get(daemon, "listen_port")),
	       json_integer_value(json_object_get(conns, "active")),
	       json_integer_value(json_object_get(conns, "rejected")),
	       json_integer_value(json_object_get(daemon, "kernel_refusals")));
}

/* Line 2: what this kernel lets the instance enforce, and what stays open. */
static void print_coverage(json_t *s)
{
	json_t *iso = json_object_get(s, "isolation");
	json_t *uids = json_object_get(iso, "agent_uids");
	json_int_t abi = json_integer_value(json_object_get(iso, "landlock_abi"));
	size_t open = json_array_size(json_object_get(iso, "open"));

	printf("coverage:   TCP, UDP/DNS, socket families%s; agents isolated: %s%s",
	       json_is_true(json_object_get(json_object_get(s, "unix_hooks"), "available"))
		   ? ", AF_UNIX"
		   : " (AF_UNIX NOT policed)",
	       json_is_true(json_object_get(iso, "seccomp")) ? "seccomp" : "NO seccomp",
	       abi ? ", Landlock" : ", no Landlock");
	if (uids)
		printf(", per-run uids %lld-%lld", json_integer_value(json_object_get(uids, "min")),
		       json_integer_value(json_object_get(uids, "max")));
	if (open)
		printf("; %zu path%s open (below)", open, open == 1 ? "" : "s");
	putchar('\n');
}

/* Shipping to a collector (agentgate.conf(5) audit.ship), when configured. */
static void print_ship(json_t *ship)
{
	const char *error = json_string_value(json_object_get(ship, "error"));

	if (!ship)
		return;
	printf("            shipped to %s: %s, %" JSON_INTEGER_FORMAT
	       " records confirmed, %" JSON_INTEGER_FORMAT " behind%s%s\n",
	       json_string_value(json_object_get(ship, "address")),
	       json_is_true(json_object_get(ship, "connected")) ? "connected" : "NOT CONNECTED",
	       json_integer_value(json_object_get(ship, "cursor")),
	       json_integer_value(json_object_get(ship, "lag")), error ? ": " : "",
	       error ? error : "");
}

/* Line 3: the audit log. */
static void print_audit(json_t *daemon)
{
	json_t *v = json_object_get(daemon, "audit");

	if (!json_is_true(json_object_get(daemon, "running"))) {
		printf("audit:      nothing is being recorded (no daemon)\n");
		return;
	}
	printf(
	    "audit:      %s, %s%s%s, durability %s\n", json_string_value(json_object_get(v, "log")),
	    json_is_true(json_object_get(v, "ok")) ? "writing" : "FAILED: ",
	    json_is_true(json_object_get(v, "ok")) ? ""
						   : json_string_value(json_object_get(v, "error")),
	    json_integer_value(json_object_get(v, "lost")) ? " (records were lost)" : "",
	    json_string_value(json_object_get(v, "durability")));
	print_ship(json_object_get(v, "ship"));
}

static void print_dns(json_t *dns)
{
	const char *host = json_string_value(json_object_get(dns, "host_relay"));

	if (!dns)
		return;
	printf("dns:        %s%s\n",
	       host ? "agents' queries to the resolvers go through the relay at "
		    : "NO relay for "
		      "host agents: their UDP to the resolvers is refused",
	       host ? host : "");
}

/* The git policy source: where from, the commit in force, the last refusal. */
static void print_policy_source(json_t *src)
{
	json_t *ref = json_object_get(src, "last_refusal");

	if (!src)
		return;
	printf("policy:     from %s (%s), commit %s, %lld polls\n",
	       json_string_value(json_object_get(src, "url")),
	       json_string_value(json_object_get(src, "ref")),
	       json_string_value(json_object_get(src, "commit")) ?: "NONE (every call refused)",
	       json_integer_value(json_object_get(src, "polls")));
	if (json_is_object(ref))
		printf("  last refused: commit %s at %s: %s\n",
		       json_string_value(json_object_get(ref, "commit")) ?: "-",
		       json_string_value(json_object_get(ref, "stage")),
		       json_string_value(json_object_get(ref, "error")));
}

/* Fleet-wide budgets (agentgate.conf(5) "fleet"): whether Redis answers, what is leased. */
static void print_fleet(json_t *fl)
{
	json_t *b;
	size_t i;

	if (!fl)
		return;
	printf("fleet:      redis %s %s (on_unreachable %s)\n",
	       json_string_value(json_object_get(fl, "redis")),
	       json_is_true(json_object_get(fl, "reachable")) ? "reachable" : "UNREACHABLE",
	       json_string_value(json_object_get(fl, "on_unreachable")));
	json_array_foreach(json_object_get(fl, "budgets"), i, b)
	{
		printf("  %s %s %lld: %lld calls leased%s\n",
		       json_string_value(json_object_get(b, "agent")),
		       json_string_value(json_object_get(b, "budget")),
		       json_integer_value(json_object_get(b, "limit")),
		       json_integer_value(json_object_get(b, "leased")),
		       json_is_true(json_object_get(b, "spent")) ? ", spent across the fleet" : "");
	}
}

/* The relay: spliced in the kernel, or why every byte is copied. */
static void print_relay(json_t *v)
{
	if (!v)
		return;
	if (json_is_true(json_object_get(v, "splice")))
		printf("relay:      spliced in the kernel (%lld directions so far, %lld of them "
		       "copied after their reader fell behind, %lld bytes copied)\n",
		       json_integer_value(json_object_get(v, "spliced")),
		       json_integer_value(json_object_get(v, "unspliced")),
		       json_integer_value(json_object_get(v, "bytes_copied")));
	else
		printf("relay:      copied by the daemon, splice off: %s\n",
		       json_string_value(json_object_get(v, "splice_off")));
}

static void print_text(json_t *s, bool verbose)
{
	json_t *daemon = json_object_get(s, "daemon"), *v;
	size_t i;

	print_serving(s);
	print_coverage(s);
	print_audit(daemon);
	printf("instance:   %s, cgroup %s (%lld agent processes)\n",
	       json_string_value(json_object_get(s, "instance")),
	       json_string_value(json_object_get(s, "cgroup")),
	       json_integer_value(json_object_get(s, "agent_processes")));
	if (json_is_true(json_object_get(daemon, "running"))) {
		json_t *conns = json_object_get(daemon, "connections");

		printf("daemon:     kernel objects %s; %lld connections in all, %lld upstream "
		       "failures\n",
		       json_string_value(json_object_get(daemon, "kernel")),
		       json_integer_value(json_object_get(conns, "total")),
		       json_integer_value(json_object_get(conns, "upstream_failed")));
		print_limits(json_object_get(daemon, "limits"));
		print_relay(json_object_get(daemon, "relay"));
		v = json_object_get(daemon, "mcp");
		if (json_integer_value(json_object_get(v, "tool_servers"))) {
			json_t *up = json_object_get(v, "upstreams");

			printf("mcp:        %lld tool servers, %lld connections, %lld upstream "
			       "connections (%lld idle), %lld calls held for approval\n",
			       json_integer_value(json_object_get(v, "tool_servers")),
			       json_integer_value(json_object_get(v, "active")),
			       json_integer_value(json_object_get(up, "open")),
			       json_integer_value(json_object_get(up, "idle")),
			       json_integer_value(json_object_get(v, "held_for_approval")));
		}
		if (json_integer_value(json_object_get(v, "tool_servers")))
			print_tools(v);
		print_dns(json_object_get(daemon, "dns"));
		print_policy_source(json_object_get(daemon, "policy_source"));
		print_fleet(json_object_get(daemon, "fleet"));
	} else {
		printf("daemon:     not running (%s)\n",
		       json_string_value(json_object_get(daemon, "error")));
	}
	printf("kernel:     %s\n", !json_is_true(json_object_get(s, "installed")) ? "not installed"
				   : json_is_true(json_object_get(s, "serving"))
				       ? "installed: programs attached through pinned links, "
					 "redirecting to the daemon"
				       : "installed: programs attached through pinned links, "
					 "refusing (the daemon is not serving)");
	json_array_foreach(json_object_get(s, "links"), i, v)
	{
		/* Without --verbose only what is wrong: a missing link or map. */
		if (!verbose && (json_is_true(json_object_get(v, "pinned")) ||
				 !json_is_true(json_object_get(v, "supported"))))
			continue;
		if (json_is_true(json_object_get(v, "pinned")))
			printf("  link %-13s id %-5lld prog %-5lld cgroup %lld\n",
			       json_string_value(json_object_get(v, "name")),
			       json_integer_value(json_object_get(v, "link_id")),
			       json_integer_value(json_object_get(v, "prog_id")),
			       json_integer_value(json_object_get(v, "cgroup_id")));
		else
			printf("  link %-13s %s\n", json_string_value(json_object_get(v, "name")),
			       json_is_true(json_object_get(v, "supported"))
				   ? "MISSING"
				   : "not on this kernel");
	}
	json_array_foreach(json_object_get(s, "maps"), i,
			   v) if (verbose || !json_is_true(json_object_get(v, "pinned")))
	    printf("  map  %-13s %s\n", json_string_value(json_object_get(v, "name")),
		   json_is_true(json_object_get(v, "pinned"))
		       ? json_string_value(json_object_get(v, "path"))
		       : "MISSING");
	if (!json_array_size(json_object_get(s, "xdp_guards")))
		printf("xdp:        no guard attached\n");
	json_array_foreach(json_object_get(s, "xdp_guards"), i, v)
	    printf("xdp guard:  %s (%s), %s mode, %s, %s, %lld dropped\n",
		   json_string_value(json_object_get(v, "interface")),
		   json_string_value(json_object_get(v, "kind")),
		   json_string_value(json_object_get(v, "mode")),
		   json_string_value(json_object_get(v, "dispatcher")),
		   json_is_true(json_object_get(v, "attached")) ? "attached" : "NOT ATTACHED",
		   json_integer_value(json_object_get(json_object_get(v, "stats"), "dropped")));
	v = json_object_get(s, "bpf_lsm");
	printf("bpf-lsm:    %s\n", json_string_value(json_object_get(v, "detail")));
	print_isolation(json_object_get(s, "isolation"));
	v = json_object_get(s, "unix_hooks");
	printf("af_unix:    %s\n", json_is_true(json_object_get(v, "available"))
				       ? "policed: agents reach only their unix_sockets"
				       : json_string_value(json_object_get(v, "detail")));
	if (json_array_size(json_object_get(s, "degraded")) == 0) {
		printf("state:      ok\n");
		return;
	}
	printf("state:      degraded\n");
	json_array_foreach(json_object_get(s, "degraded"), i, v)
	    printf("  - %s\n", json_string_value(v));
}

int cmd_status(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_FLAG("json"), CLI_FLAG("verbose"), CLI_END };
	static const struct cli_spec sp = { .cmd = "agentgatectl status",
					    .usage = status_usage,
					    .opts = opts };
	struct cli_args a;
	const char **slots = a.val;
	bool json, serving;
	json_t *s;
	int ret = cli_parse(&sp, argc, argv, &a);

	if (ret)
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	cli_args_free(&a);
	if (a.ind < argc) {
		fprintf(stderr, "agentgatectl status: unexpected argument \"%s\"; see --help\n",
			argv[a.ind]);
		return AG_EXIT_USAGE;
	}
	json = slots[0] != NULL;
	if (geteuid() != 0)
		return cli_fail("status: must run as root (it reads pinned BPF objects)");
	s = collect(&c->inst);
	if (json) {
		json_dumpf(s, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else {
		print_text(s, slots[1] != NULL);
	}
	/* Refusing every connection because nothing can be recorded is not serving. */
	serving = json_is_true(json_object_get(s, "installed")) &&
		  json_is_true(json_object_get(s, "serving")) &&
		  json_is_true(json_object_get(json_object_get(s, "daemon"), "running")) &&
		  !json_is_false(json_object_get(
		      json_object_get(json_object_get(s, "daemon"), "audit"), "ok"));
	json_decref(s);
	return serving ? 0 : AG_EXIT_FAIL;
}
