/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the tests: instances, agents in cgroups, sockets. */
#ifndef AG_TESTLIB_H
#define AG_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <limits.h>

/* Runner hooks. */
void testlib_init(const char *argv0);
void testlib_cleanup(void); /* end of one test's child process */
void testlib_sweep(void);   /* parent: remove what a crashed test left */

/* Directory of the test binary's build tree (for agentgated, agentgatectl). */
const char *testlib_build_dir(void);
/* The project root (for selftests/fuzz/corpus, policies/, ../shared). */
const char *testlib_src_dir(void);

#include <stdint.h>

#include "instance.h"
#include "kern.h"

#define NOBODY_UID 65534
#define NOBODY_GID 65534

/*
 * A test instance with the kernel programs installed and, unless
 * TINST_NO_LISTENER, a stand-in for agentgated: marked listeners on
 * 127.0.0.1 and [::1], created from <instance>/daemon like the daemon's,
 * and a process there that keeps the instance serving, so the hooks
 * redirect to them.  The test accepts on them and claims origins, without
 * any relay in between.
 */
struct tinst {
	struct ag_instance in;
	struct ag_kern k;
	struct ag_config cfg;
	uint16_t port;	   /* the daemon port */
	int lfd4, lfd6;	   /* stand-in listeners, -1 if none */
	uint64_t agent_cg; /* cgroup id of agents/a */
	pid_t daemon_pid;  /* in <instance>/daemon, holding the serving socket */
	char agent_path[PATH_MAX];
};

enum {
	TINST_NO_LISTENER = 1 << 0,
};

/* resolver: an address (v4-mapped or v6) and port UDP may go to, or NULL. */
int tinst_create(struct tinst *t, const char *suffix, unsigned int flags, const uint8_t *resolver,
		 uint16_t resolver_port);
void tinst_destroy(struct tinst *t);
/* Ends the stand-in daemon process (so the instance stops serving); its listeners stay open. */
void tinst_kill_daemon(struct tinst *t);

/*
 * Runs fn(arg) in a child started inside agents/a (clone3), as uid (and gid
 * uid) after dropping privileges; uid 0 keeps root and its capabilities.
 * Returns fn's return value (0..255), or -1 if the child crashed.
 */
int tinst_agent(struct tinst *t, uid_t uid, int (*fn)(void *arg), void *arg);
int run_in_cgroup(const char *cgroup, uid_t uid, int (*fn)(void *arg), void *arg);

/*
 * A network namespace of this run (/run/netns/<test__instance(suffix)>),
 * removed by the sweep if the test does not.  Returns its name.
 */
const char *tnetns_add(const char *suffix);
void tnetns_del(const char *name);
/* Runs fn(arg) in a child inside the namespace; returns its exit code. */
int tnetns_run(const char *name, int (*fn)(void *arg), void *arg);

/* Memory shared with agent children, for their results. */
void *shared_alloc(size_t size);

/* TCP listener on addr ("127.0.0.1", "::1", "0.0.0.0"), port 0 picks one. */
int tcp_listen(const char *addr, uint16_t port, uint16_t *bound);
int udp_bind(const char *addr, uint16_t port, uint16_t *bound);
/* accept with a timeout in ms; -1 with errno ETIMEDOUT when none came. */
int accept_timeout(int lfd, int ms);
/* Whether anything is waiting in a listener's accept queue right now. */
bool has_pending(int lfd);
/* A free TCP port on 127.0.0.1 (bound and released). */
uint16_t free_port(void);
/* A real ClientHello for name (SNI) into buf: its length, 0 on failure. */
size_t tls_client_hello(const char *name, unsigned char *buf, size_t cap);
/* A child that accepts one connection on tool, reads a request, answers it;
 * waitpid it for the outcome (exit 0: served). */
pid_t serve_one(int tool, const char *answer);
/* Fills a sockaddr from "addr" and port; returns its length. */
socklen_t make_sockaddr(const char *addr, uint16_t port, struct sockaddr_storage *ss);

/*
 * A real agentgated for a test instance: its own config (port, resolvers),
 * state directory and log file; --foreground, child of the test, unless
 * TDAEMON_DETACHED or TDAEMON_NOTIFY.
 */
struct tdaemon {
	struct ag_instance in;
	pid_t pid;
	uint16_t port;
	char dir[128]; /* mkdtemp: config, state, log */
	char conf[PATH_MAX];
	char log[PATH_MAX];
	char state[PATH_MAX]; /* audit.log, audit.key */
	unsigned int flags;   /* TDAEMON_* */
};

enum {
	TDAEMON_NETNS_WITHOUT_IPV6 = 1 << 0, /* in a new netns whose lo has no ::1 */
	TDAEMON_SMALL_STATE = 1 << 1,	     /* state dir on a 256 KiB tmpfs */
	/*
	 * Started as README.md's "Using it" does: no --foreground, so it
	 * detaches; started once the launcher exited 0, pid from the pidfile,
	 * logging to <state>/agentgated.log (log).
	 */
	TDAEMON_DETACHED = 1 << 2,
	/*
	 * Started as a service unit's ExecStart does: no --foreground, a
	 * child of the test, which sets NOTIFY_SOCKET and waits on it for
	 * readiness (tdaemon_start does not wait).
	 */
	TDAEMON_NOTIFY = 1 << 3,
};

/* extra_json: more top-level members for agentgate.json ("" for none); without
 * "resolvers" among them, the daemon has none. */
int tdaemon_start(struct tdaemon *d, const char *suffix, const char *extra_json,
		  unsigned int flags);
/*
 * tdaemon_start, then agent "a" registered: agent_cg gets its cgroup.  0, or
 * what failed (a start's failure says where its log is).
 */
int tdaemon_start_agent(struct tdaemon *d, const char *suffix, const char *extra_json,
			char *agent_cg, size_t len);
/* Starts the same instance again (after a kill), same config and log. */
int tdaemon_restart(struct tdaemon *d);
/*
 * Sends sig and waits up to ms for the daemon to exit (reaping it when it
 * is the test's child): 0, or -ETIMEDOUT after which it was SIGKILLed.
 */
int tdaemon_stop(struct tdaemon *d, int sig, int ms);
/* tdaemon_stop with 30 s. */
void tdaemon_kill(struct tdaemon *d, int sig);
/* Stops the daemon, uninstalls the instance, removes the directory. */
void tdaemon_destroy(struct tdaemon *d);
/* Whether the daemon's log has a line containing every one of the strings
 * (NULL-terminated list), waiting up to ms for it to appear. */
bool log_has(const struct tdaemon *d, int ms, ...);
/* The ID of the first call the instance holds for approval (agentgatectl
 * approvals --json), waiting up to 10 s for one; 0 if none came. */
long long held_approval_id(const struct ag_instance *in);
/* Runs a shell command line, output captured into *out (caller frees);
 * returns the exit status, or -1. */
/* Whether word occurs in text as a whole word (not inside another name). */
bool text_has_word(const char *text, const char *word);

int run_capture(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Starts a node peer of selftests/e2e (argv: "node", script, options) with
 * AGENTGATE_E2E_DIR=e2e_dir; it dies with us.  Reads its first stdout line,
 * {"port":N,...}, within 15 s: returns N, or -ETIMEDOUT.  *pid: the peer's,
 * or -1.
 */
int node_peer_start(char *const argv[], const char *e2e_dir, pid_t *pid);

struct ag_conf;
struct ag_err;
/* ag_conf_load of json, from a temporary file removed after. */
int tconf_load(const char *json, struct ag_conf *c, struct ag_err *err);

#endif
