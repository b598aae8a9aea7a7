// SPDX-License-Identifier: GPL-2.0
/*
 * agentgated: start-up.  Everything that needs privilege happens here, in an
 * order chosen so that no step opens a window in which an agent's traffic
 * leaves the host ungoverned:
 *
 *  0. detach, unless --foreground or a service manager waits on
 *     NOTIFY_SOCKET: first, so the process that serves is the one that
 *     creates every thread and ring (detach.c);
 *  1. join <instance>/daemon, so the daemon's own sockets are outside the
 *     agents' hooks;
 *  2. load or adopt the programs (config written before any attach);
 *  3. listen, marked (listen.c);
 *  4. register agents and rules;
 *  5. drop every capability but CAP_NET_ADMIN (marks on upstream sockets);
 *  6. serve: a socket of the daemon's goes into the serving map, and from
 *     here on the hooks redirect agents' connects to the listeners;
 *  7. once the daemon_start record is durable and the loop has armed its
 *     listeners, report ready (the waiting parent, NOTIFY_SOCKET).
 *
 * Until step 6, and again once teardown takes the socket out (or the
 * daemon's exit closes it), the connect hooks refuse: fail closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <bpf/bpf.h>

#include "audit.h"
#include "budget.h"
#include "ctl.h"
#include "cgroup.h"
#include "daemon.h"
#include "detach.h"
#include "fileio.h"
#include "fleet.h"
#include "inbound.h"
#include "hosted.h"
#include "integrity.h"
#include "listen.h"
#include "netns.h"
#include "notify.h"
#include "probe.h"
#include "secret.h"
#include "subagent.h"
#include "trail.h"
#include "upgrade.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: agentgated [--instance NAME] [--config FILE] [--state-dir DIR]\n"
	       "                  [--foreground] [--log-level error|warn|info|debug]\n"
	       "                  [--upgrade]\n"
	       "\n"
	       "The agentgate daemon: loads the instance's kernel programs (or adopts them),\n"
	       "accepts the agents' redirected connections and relays them.  See agentgated(8).\n");
}

struct options {
	const char *instance;
	const char *config;
	const char *state_dir;
	bool foreground;
	bool upgrade; /* take over the running daemon (upgrade.h) */
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "instance", required_argument, NULL, 'i' },
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "upgrade", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum ag_log_level level;
	int c;

	o->instance = AG_INSTANCE_DEFAULT;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->instance = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 's':
			o->state_dir = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'u':
			o->upgrade = true;
			break;
		case 'l':
			if (ag_log_parse_level(optarg, &level)) {
				fprintf(stderr,
					"agentgated: --log-level %s: use error, warn, info "
					"or debug\n",
					optarg);
				return -EINVAL;
			}
			ag_log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agentgated: unexpected argument \"%s\"\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int make_dir(const char *path, mode_t mode, struct ag_err *err)
{
	if (mkdir(path, mode) && errno != EEXIST)
		return ag_errf(err, errno, "%s: mkdir: %s", path, strerror(errno));
	return 0;
}

/*
 * Adds the wanted rules before removing stale ones: removing first would
 * open a window in which a DENY rule is missing and the destination gets the
 * agent's default verdict instead.
 */
static int sync_rules(struct ag_daemon *d, struct ag_err *err)
{
	int fd = d->kern.map_fd[AG_MAP_DEST_RULES];
	struct ag_rule_key key, next, *prev = NULL;
	uint32_t *indexes = calloc(d->conf.nr_agents + 1, sizeof(*indexes));
	int ret = 0;

	if (!indexes)
		return ag_errf(err, ENOMEM, "rules: out of memory");
	for (int i = 0; i < d->conf.nr_rules && !ret; i++) {
		const struct ag_rule_conf *r = &d->conf.rules[i];

		ret = ag_rule_add(&d->kern, 0, r->addr, r->prefixlen, r->port, r->verdict, err);
	}
	for (int a = 0; a < d->conf.nr_agents && !ret; a++) {
		const struct ag_agent_conf *ac = &d->conf.agents[a];
		struct ag_agent agent;
		uint64_t id;

		struct ag_quota_limits limits = {
			.connect_rate = ac->connect_rate,
			.connect_burst = ac->connect_burst,
			.calls_per_minute = ac->calls_per_minute,
			.calls_per_day = ac->calls_per_day,
		};

		/* A fleet-wide budget is leased (fleet.h), not counted per host. */
		if (ac->fleet_scope)
			limits.calls_per_minute = limits.calls_per_day = 0;

		ret = ag_agent_register(&d->kern, &d->inst, ac->name, ac->verdict, &id, err);
		if (ret || (ret = ag_quota_set(&d->kern, id, &limits, err)) ||
		    (ret = ag_agent_lookup(&d->kern, id, &agent)))
			break;
		indexes[a + 1] = agent.index;
		for (int i = 0; i < ac->nr_rules && !ret; i++) {
			const struct ag_rule_conf *r = &ac->rules[i];

			ret = ag_rule_add(&d->kern, agent.index, r->addr, r->prefixlen, r->port,
					  r->verdict, err);
		}
	}
	d->nr_rules = 0;
	while (!ret && !bpf_map_get_next_key(fd, prev, &next)) {
		bool wanted = false;

		key = next;
		prev = &key;
		for (int a = -1; a < d->conf.nr_agents && !wanted; a++) {
			const struct ag_rule_conf *rules =
			    a < 0 ? d->conf.rules : d->conf.agents[a].rules;
			int n = a < 0 ? d->conf.nr_rules : d->conf.agents[a].nr_rules;

			if (key.agent_index != indexes[a + 1])
				continue;
			for (int i = 0; i < n && !wanted; i++)
				wanted = key.prefixlen == 64u + rules[i].prefixlen &&
					 key.port == rules[i].port &&
					 !memcmp(key.addr, rules[i].addr, 16);
		}
		if (!wanted && !bpf_map_delete_elem(fd, &key))
			prev = NULL; /* the iteration restarts after a delete */
	}
	free(indexes);
	if (ret)
		return ret;
	/*
	 * Count what is there now; the hooks skip rule lookups while the count
	 * is 0.  Written after the rules, so a new rule is never counted
	 * before it can be found.
	 */
	prev = NULL;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		d->nr_rules++;
	}
	return 0;
}

/*
 * unix_paths from agents[].unix_sockets: every configured agent's exact
 * list, and nothing for anyone else (an agent no longer configured loses
 * its entries).  The agents are registered by sync_rules already.
 */
static int sync_unix(struct ag_daemon *d, struct ag_err *err)
{
	struct ag_unix_key *want;
	int nr = 0, ret = 0;

	for (int a = 0; a < d->conf.nr_agents; a++)
		nr += d->conf.agents[a].nr_unix_sockets;
	if (!(want = calloc(nr ? nr : 1, sizeof(*want))))
		return ag_errf(err, ENOMEM, "unix_sockets: out of memory");
	nr = 0;
	for (int a = 0; a < d->conf.nr_agents && !ret; a++) {
		const struct ag_agent_conf *ac = &d->conf.agents[a];
		uint64_t id;

		if (!ac->nr_unix_sockets)
			continue;
		ret = ag_agent_register(&d->kern, &d->inst, ac->name, AG_VERDICT_KEEP, &id, err);
		for (int i = 0; i < ac->nr_unix_sockets && !ret; i++)
			if (ag_unix_key_make(id, ac->unix_sockets[i], &want[nr++]))
				ret = ag_errf(err, EINVAL,
					      "agent %s: unix socket \"%s\": bad address", ac->name,
					      ac->unix_sockets[i]);
	}
	if (!ret)
		ret = ag_unix_sync(&d->kern, want, nr, err);
	free(want);
	return ret;
}

static int drop_capabilities(struct ag_err *err)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	char *text = NULL;
	long last = CAP_LAST_CAP;

	if (!ag_read_file("/proc/sys/kernel/cap_last_cap", 32, &text, NULL, NULL)) {
		last = strtol(text, NULL, 10);
		free(text);
	}
	for (long cap = 0; cap <= last; cap++)
		if (cap != CAP_NET_ADMIN && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL)
			return ag_errf(err, errno, "capability %ld: drop from bounding set: %s",
				       cap, strerror(errno));
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(data, 0, sizeof(data));
	data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective = CAP_TO_MASK(CAP_NET_ADMIN);
	data[CAP_TO_INDEX(CAP_NET_ADMIN)].permitted = CAP_TO_MASK(CAP_NET_ADMIN);
	if (syscall(SYS_capset, &hdr, data))
		return ag_errf(err, errno, "capset: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return ag_errf(err, errno, "no_new_privs: %s", strerror(errno));
	return 0;
}

/* Replaced whole (fileio.h): never written through a link planted beside it. */
static int write_pidfile(const struct ag_instance *in, struct ag_err *err)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%d\n", getpid());

	return ag_file_write_atomic(in->pid_path, num, (size_t)n, 0644, err);
}

/* Nothing is relayed that cannot be recorded. */
static int state_open(struct ag_daemon *d, struct ag_err *err)
{
	int ret = ag_daemon_audit_open(d, err);

	if (!ret)
		ret = ag_integrity_open(d, err);
	if (!ret)
		ret = ag_budget_init(d, err);
	if (!ret)
		ret = ag_fleet_start(d, err);
	if (!ret)
		ret = ag_inbound_start(d, err);
	return ret;
}

/*
 * --upgrade: the host DNS relay stays where the running daemon has it, so
 * the config written with the new programs never points agents' DNS at a
 * port nobody reads.
 */
static int old_dns_relay(const struct ag_instance *in, struct ag_config *kcfg, struct ag_err *err)
{
	struct ag_config old;
	struct ag_kern k;
	int ret = ag_kern_open(&k, in, err);

	if (!ret)
		ret = ag_kern_get_config(&k, &old, err);
	ag_kern_close(&k);
	if (ret)
		return ret;
	kcfg->dns_relay_ip4 = old.dns_relay_ip4;
	kcfg->dns_relay_port = old.dns_relay_port;
	return 0;
}

/*
 * The relay's splice maps, while privileged: adopted on a restart, a new
 * build's on an upgrade.  A refusal is no failure: the relay copies, as it
 * did before the kernel could splice, and says so once.
 */
static void splice_open(struct ag_daemon *d, bool adopt)
{
	struct ag_err err;

	if (!d->conf.relay_splice)
		snprintf(d->splice_off, sizeof(d->splice_off), "relay_splice is false");
	else if (ag_splice_maps_open(&d->splice, &d->inst, adopt, &err))
		snprintf(d->splice_off, sizeof(d->splice_off), "%s", err.msg);
	if (d->splice_off[0])
		ag_log(AG_LOG_INFO, "start", "splice=off cause=\"%s\"", d->splice_off);
}

static int setup(struct ag_daemon *d, const struct options *o, struct ag_err *err)
{
	struct ag_config kcfg;
	uint64_t daemon_cg;
	int ret, pid, level;

	/* Secrets (tool credentials, keys) live in this process: no core
	 * dumps, no ptrace by other processes of the same uid. */
	if ((ret = ag_secret_process_harden()))
		return ag_errf(err, -ret, "prctl(PR_SET_DUMPABLE): %s", strerror(-ret));
	if ((ret = ag_instance_init(&d->inst, o->instance, o->state_dir, err)) ||
	    (ret = ag_subagents_new(&d->subagents, err)))
		return ret;
	if (geteuid() != 0)
		return ag_errf(err, EPERM, "agentgated must start as root (it loads BPF programs)");
	/*
	 * Agents must reach tls/ca.crt to trust the gateway's leaves, so the
	 * state directory can be traversed (never listed); everything secret
	 * in it is 0600 or 0640 root on its own.
	 */
	if ((ret = make_dir(d->inst.run_dir, 0700, err)) ||
	    (ret = make_dir(d->inst.state_dir, 0711, err)))
		return ret;
	/* A detached daemon logs from here on, its warnings about the config included. */
	snprintf(d->log_path, sizeof(d->log_path), "%s/agentgated.log", d->inst.state_dir);
	if ((ret = ag_detach_log(&d->detach, d->log_path, err)))
		return ret;
	ret = o->config ? ag_conf_load(&d->conf, o->config, err) : ag_conf_default(&d->conf, err);
	if (ret)
		return ret;
	if (o->upgrade)
		ret = ag_upgrade_begin(d->upgrade, &d->inst, err);
	else if ((pid = ag_instance_daemon_pid(&d->inst)))
		return ag_errf(err, EEXIST, "instance %s: agentgated already running as pid %d",
			       d->inst.name, pid);
	/* Upgrading, the old daemon writes the audit log until it exits. */
	else
		ret = state_open(d, err);
	if (ret)
		return ret;
	if ((ret = ag_bpffs_ensure(err)) || (ret = ag_cgroup_mkdir(d->inst.cg_root, err)) ||
	    (ret = ag_cgroup_mkdir(d->inst.cg_agents, err)) ||
	    (ret = ag_cgroup_mkdir(d->inst.cg_daemon, err)) ||
	    (ret = ag_cgroup_enter(d->inst.cg_daemon, 0, err)) ||
	    (ret = ag_cgroup_id(d->inst.cg_daemon, &daemon_cg, err)))
		return ret;

	level = ag_cgroup_level(d->inst.cgroup2, d->inst.cg_agents);
	ag_conf_to_kernel(&d->conf, &kcfg);
	kcfg.agents_level = level;
	kcfg.daemon_cgroup_id = daemon_cg;
	/*
	 * An adopted instance may hold DENY rules: keep the lookups on until
	 * sync_rules has counted what is really there.
	 */
	kcfg.nr_rules = UINT32_MAX;
	/* An instance keeps its gateway address (an upgrade: the pinned one). */
	if ((ret = ag_netns_gateway_choose(&d->inst, &kcfg.netns_gateway_ip4, err)))
		return ret;
	/* Before the programs change: a refusal leaves the old build untouched. */
	if (o->upgrade &&
	    ((ret = old_dns_relay(&d->inst, &kcfg, err)) || (ret = ag_listen_take(d, &kcfg, err))))
		return ret;
	ret = o->upgrade ? ag_kern_upgrade(&d->kern, &d->inst, &kcfg, err)
			 : ag_kern_install(&d->kern, &d->inst, &kcfg, err);
	if (ret)
		return ret;
	splice_open(d, !o->upgrade && d->kern.adopted);
	{
		char why[128];

		/* The programs were left unloaded: agents' unix sockets go unseen. */
		if (!ag_probe_unix_hooks(why, sizeof(why)))
			ag_log(AG_LOG_WARN, "start", "af_unix=unpoliced error=\"%s\"", why);
	}

	if (!o->upgrade && (ret = ag_listen_open(d, &kcfg, err)))
		return ret;
	if ((ret = sync_rules(d, err)) || (ret = sync_unix(d, err)) ||
	    (ret = ag_hosted_start(d, err)) || (ret = ag_inbound_guard(d, err)))
		return ret;
	kcfg.nr_rules = d->nr_rules;
	if ((ret = ag_kern_set_config(&d->kern, &kcfg, err)))
		return ret;
	/* After the old daemon's exit, which removes its socket (upgrade.c). */
	if (o->upgrade) {
		struct ag_err told;

		/* The old daemon serves until then: it charges as the quotas now are. */
		if (ag_ctl_budgets_changed(&d->inst, &told))
			ag_log(AG_LOG_WARN, "upgrade", "error=\"budgets_changed: %s\"", told.msg);
		return 0;
	}
	d->control_fd = ag_listen_control(&d->inst, err);
	if (d->control_fd < 0)
		return d->control_fd;
	ag_budget_refresh(d);
	return 0;
}

static void block_stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2); /* a live upgrade's handoff (loop.c) */
	sigprocmask(SIG_BLOCK, &set, NULL);
}

static void teardown(struct ag_daemon *d)
{
	struct ag_err err;

	/* Before the listeners close, so no agent's connect is sent to a closed port. */
	if (ag_kern_serving(&d->kern, false, &err))
		ag_log(AG_LOG_ERROR, "stop", "error=\"%s\"", err.msg);
	ag_inbound_stop(d);
	ag_hosted_stop(d);
	ag_fleet_stop(d);
	ag_budget_fini(d);
	ag_integrity_close(d);
	ag_daemon_audit_close(d);
	for (int i = 0; i < AG_LISTEN__COUNT; i++)
		if (d->listen_fd[i] >= 0)
			close(d->listen_fd[i]);
	if (d->dns_fd >= 0)
		close(d->dns_fd);
	if (d->dns_host_fd >= 0)
		close(d->dns_host_fd);
	/* After a live upgrade, the path and the pidfile are the new daemon's. */
	if (d->control_fd >= 0)
		close(d->control_fd);
	if (ag_instance_daemon_pid(&d->inst) == getpid()) {
		if (d->control_fd >= 0)
			unlink(d->inst.control_path);
		unlink(d->inst.pid_path);
	}
	ag_upgrade_end(d->upgrade);
	ag_kern_close(&d->kern);
	ag_splice_maps_close(&d->splice);
	ag_subagents_free(d->subagents);
	ag_conf_free(&d->conf);
	ag_notify_close();
}

/*
 * The start's outcome, for whoever waits on it.  Serving means: the
 * listeners are armed on the loop (loop.c calls this), and the audit
 * writer has made the daemon_start record durable (main, before the loop).
 */
void ag_daemon_started(struct ag_daemon *d, const char *error)
{
	char summary[PATH_MAX + 128];

	if (d->start_reported)
		return;
	d->start_reported = true;
	if (error) {
		ag_detach_report(&d->detach, error, NULL);
		return;
	}
	snprintf(summary, sizeof(summary), "instance %s serving, pid %d, log %s", d->inst.name,
		 getpid(), d->log_path);
	ag_detach_report(&d->detach, NULL, summary);
	ag_notify("READY=1\nMAINPID=%d", getpid());
	ag_log(AG_LOG_INFO, "ready", "instance=%s pid=%d manager=%s", d->inst.name, getpid(),
	       ag_notify_managed()  ? "notified"
	       : d->detach.detached ? "parent"
				    : "none");
}

/* How this daemon came by the kernel side, for the log and daemon_start. */
static const char *kernel_how(const struct ag_daemon *d)
{
	return d->upgrade->pid ? "upgraded" : d->kern.adopted ? "adopted" : "loaded";
}

/* Fail closed: a daemon whose records never become durable serves nobody. */
static int audit_started(struct ag_daemon *d, struct ag_err *err)
{
	uint64_t seq;
	int ret;

	ret = ag_daemon_audit_seq(d, "daemon_start",
				  json_pack("{s:s,s:i,s:i,s:b,s:s}", "instance", d->inst.name,
					    "pid", getpid(), "port", d->conf.port, "ipv6",
					    d->conf.ipv6, "kernel", kernel_how(d)),
				  &seq);
	if (ret)
		return ag_errf(err, -ret, "audit log %s: the daemon_start record: %s",
			       d->audit_path, strerror(-ret));
	return ag_audit_wait(d->audit, seq, err);
}

/*
 * --upgrade, from SERVING to OWN (upgrade.c): this daemon serves before the
 * old one is told to go, and owns the control socket and the audit log
 * only once it is gone.
 */
static int take_over(struct ag_daemon *d, struct ag_err *err)
{
	int ret = ag_kern_serving(&d->kern, true, err);

	if (!ret)
		ret = ag_upgrade_handoff(d->upgrade, err);
	if (!ret)
		ret = state_open(d, err);
	if (ret)
		return ret;
	d->control_fd = ag_listen_control(&d->inst, err);
	if (d->control_fd < 0)
		return d->control_fd;
	ag_budget_refresh(d);
	ag_log(AG_LOG_INFO, "upgrade",
	       "instance=%s from_pid=%d to_pid=%d version=%s handoff_ms=%llu", d->inst.name,
	       d->upgrade->pid, getpid(), ag_version(),
	       (unsigned long long)((ag_now_ns() - d->upgrade->switch_ns) / 1000000));
	return 0;
}

int main(int argc, char **argv)
{
	struct ag_upgrade upgrade = { .pidfd = -1 };
	struct ag_daemon d = { .listen_fd = { -1, -1 },
			       .control_fd = -1,
			       .dns_fd = -1,
			       .dns_host_fd = -1,
			       .splice = { -1, -1, -1, -1 },
			       .upgrade = &upgrade,
			       .detach = AG_DETACH_INIT };
	struct options o = { 0 };
	struct ag_err err = { 0 };
	char dst[64];
	int ret;

	if (parse_args(argc, argv, &o))
		return 2;
	/* A start that fails before the install tears down no fd it never had (fd 0). */
	ag_kern_reset(&d.kern);
	/*
	 * Blocked before any thread exists (the audit writer starts one), so
	 * every thread inherits the mask and the loop's signalfd receives the
	 * signals; otherwise the kernel may hand SIGTERM to a thread that does
	 * not block it, and its default action kills the daemon mid-write.
	 */
	block_stop_signals();
	/*
	 * Then the fork, before anything else exists (detach.c): a service
	 * manager that set NOTIFY_SOCKET wants its own child to serve.
	 */
	ret = ag_notify_open(&err);
	if (!ret && !o.foreground && !ag_notify_managed())
		ret = ag_detach(&d.detach, &err);
	if (ret) {
		fprintf(stderr, "agentgated: %s\n", err.msg);
		return 1;
	}
	d.start_ns = ag_now_ns();
	ret = setup(&d, &o, &err);
	if (!ret && o.upgrade)
		ret = take_over(&d, &err);
	if (!ret)
		ret = write_pidfile(&d.inst, &err);
	if (!ret)
		ret = drop_capabilities(&err);
	/* The listeners accept from here on: agents' connects may come. */
	if (!ret)
		ret = ag_kern_serving(&d.kern, true, &err);
	if (!ret)
		ret = audit_started(&d, &err);
	if (ret) {
		fprintf(stderr, "agentgated: %s\n", err.msg);
		ag_daemon_started(&d, err.msg);
		teardown(&d);
		return 1;
	}
	{
		uint8_t lo[16] = { [10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1 };
		uint64_t records, read;

		ag_audit_recovery(d.audit, &records, &read);
		ag_log(AG_LOG_INFO, "start",
		       "instance=%s pid=%d listen=%s ipv6=%s kernel=%s audit_records=%" PRIu64
		       " audit_read=%" PRIu64 " startup_us=%llu",
		       d.inst.name, getpid(), ag_addr_fmt(lo, d.conf.port, dst, sizeof(dst)),
		       d.conf.ipv6 ? "yes" : "no", kernel_how(&d), records, read,
		       (unsigned long long)((ag_now_ns() - d.start_ns) / 1000));
	}
	ret = ag_loop_run(&d);
	/* Only if the loop never armed its listeners (its error is in the log). */
	ag_daemon_started(&d, "the event loop failed to start: see the log");
	ag_log(AG_LOG_INFO, "stop", "instance=%s status=%s", d.inst.name, ret ? "error" : "ok");
	ag_daemon_audit(&d, "daemon_stop", json_pack("{s:s}", "status", ret ? "error" : "ok"));
	teardown(&d);
	return ret ? 1 : 0;
}
