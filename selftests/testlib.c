// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <time.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "ctl.h"
#include "spawn.h"
#include "test.h"
#include "testlib.h"
#include "tls.h"

static char build_dir[PATH_MAX], src_dir[PATH_MAX];
static pid_t runner_pid;

void testlib_init(const char *argv0)
{
	char buf[PATH_MAX];

	runner_pid = getpid();
	if (!realpath(argv0, buf))
		snprintf(buf, sizeof(buf), "build/test_progs");
	snprintf(build_dir, sizeof(build_dir), "%s", dirname(buf));
	snprintf(buf, sizeof(buf), "%s", build_dir);
	snprintf(src_dir, sizeof(src_dir), "%s", dirname(buf));
}

const char *testlib_build_dir(void)
{
	return build_dir;
}

const char *testlib_src_dir(void)
{
	return src_dir;
}

/* Instance names of this run start with "agt<runner pid>-": easy to sweep. */
const char *test__instance(const char *suffix)
{
	static char name[AG_INSTANCE_MAX];

	snprintf(name, sizeof(name), "agt%d-%s", runner_pid, suffix);
	return name;
}

void testlib_cleanup(void)
{
}

static void sweep_instance(const char *name)
{
	struct ag_instance in;
	struct ag_err err;
	int pid;

	if (ag_instance_init(&in, name, NULL, &err))
		return;
	pid = ag_instance_daemon_pid(&in);
	if (pid)
		kill(pid, SIGKILL);
	ag_cgroup_destroy(in.cg_agents, &err);
	ag_kern_uninstall(&in, &err);
	ag_cgroup_destroy(in.cg_root, &err);
	unlink(in.control_path);
	unlink(in.pid_path);
	rmdir(in.run_dir);
}

static void sweep_dir(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			sweep_instance(de->d_name);
	closedir(d);
}

static void sweep_netns(const char *prefix)
{
	DIR *d = opendir("/run/netns");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			tnetns_del(de->d_name);
	closedir(d);
}

/* Temporary directories of this run's daemons, with any tmpfs in them. */
static void sweep_tmp(const char *prefix)
{
	DIR *d = opendir("/tmp");
	struct dirent *de;
	char cmd[PATH_MAX];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) || getenv("AG_KEEP"))
			continue;
		snprintf(cmd, sizeof(cmd), "umount -l /tmp/%s/state 2>/dev/null; rm -rf /tmp/%s",
			 de->d_name, de->d_name);
		if (system(cmd))
			fprintf(stderr, "sweep: %s failed\n", cmd);
	}
	closedir(d);
}

void testlib_sweep(void)
{
	char prefix[32], cg[PATH_MAX];
	struct ag_err err;

	snprintf(prefix, sizeof(prefix), "agt%d-", runner_pid);
	sweep_netns(prefix);
	sweep_dir(AG_BPFFS, prefix);
	if (!ag_cgroup2_mount(cg, sizeof(cg), &err))
		sweep_dir(cg, prefix);
	sweep_dir("/run", prefix);
	sweep_tmp(prefix);
}

const char *tnetns_add(const char *suffix)
{
	static char name[4][AG_INSTANCE_MAX];
	static int next;
	char *n = name[next++ % 4], cmd[128];

	snprintf(n, AG_INSTANCE_MAX, "%s", test__instance(suffix));
	snprintf(cmd, sizeof(cmd), "ip netns add %s && ip -n %s link set lo up", n, n);
	return system(cmd) == 0 ? n : NULL;
}

void tnetns_del(const char *name)
{
	char cmd[384];

	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", name);
	if (system(cmd))
		return;
}

int tnetns_run(const char *name, int (*fn)(void *arg), void *arg)
{
	char path[PATH_MAX];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || setns(fd, CLONE_NEWNET))
			_exit(255);
		close(fd);
		alarm(60);
		_exit(fn(arg) & 0xff);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

socklen_t make_sockaddr(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &sin6->sin6_addr);
		return sizeof(*sin6);
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, addr, &sin->sin_addr);
	return sizeof(*sin);
}

static int bound_socket(int type, const char *addr, uint16_t port, uint16_t *bound)
{
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr(addr, port, &ss);
	int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || (type == SOCK_STREAM && listen(fd, 1024))) {
		close(fd);
		return -1;
	}
	if (bound) {
		len = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &len);
		*bound = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return fd;
}

int tcp_listen(const char *addr, uint16_t port, uint16_t *bound)
{
	return bound_socket(SOCK_STREAM, addr, port, bound);
}

int udp_bind(const char *addr, uint16_t port, uint16_t *bound)
{
	return bound_socket(SOCK_DGRAM, addr, port, bound);
}

int accept_timeout(int lfd, int ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int r = poll(&p, 1, ms);

	if (r <= 0) {
		errno = r == 0 ? ETIMEDOUT : errno;
		return -1;
	}
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

bool has_pending(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/*
 * The kernel may hand out a port it just took back: a test that asks twice
 * (the daemon's port, then a port its agent believes a server is on) must
 * not get the same one, or the agent's connects go to the gateway itself.
 */
uint16_t free_port(void)
{
	static uint16_t given[64];
	static unsigned int n;
	uint16_t port = 0;

	for (int tries = 0; tries < 32; tries++) {
		int fd = tcp_listen("127.0.0.1", 0, &port);
		bool seen = false;

		if (fd >= 0)
			close(fd);
		for (unsigned int i = 0; i < n && i < 64; i++)
			seen |= given[i] == port;
		if (!seen)
			break;
	}
	given[n++ % 64] = port;
	return port;
}

int run_in_cgroup(const char *cgroup, uid_t uid, int (*fn)(void *arg), void *arg)
{
	int cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), status;
	pid_t pid;

	if (cgfd < 0)
		return -1;
	pid = ag_clone_into_cgroup(cgfd);
	if (pid == 0) {
		struct ag_user u = { .uid = uid, .gid = uid, .name = "nobody" };
		struct ag_err err;

		if (uid && ag_user_become(&u, &err)) {
			fprintf(stderr, "agent child: %s\n", err.msg);
			_exit(255);
		}
		alarm(60);
		_exit(fn(arg) & 0xff);
	}
	close(cgfd);
	if (pid < 0)
		return -1;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int tinst_agent(struct tinst *t, uid_t uid, int (*fn)(void *arg), void *arg)
{
	return run_in_cgroup(t->agent_path, uid, fn, arg);
}

/* Listener sockets belong to the cgroup of their creator: create them there. */
static int listen_from_daemon_cgroup(struct tinst *t, struct ag_err *err)
{
	char self[PATH_MAX], *text = NULL, *nl;
	uint32_t mark = t->cfg.mark;
	int ret;

	if (ag_read_file("/proc/self/cgroup", 4096, &text, NULL, err))
		return -1;
	/* cgroup v2 line: "0::/path" (a hybrid host lists v1 lines first) */
	nl = strstr(text, "0::");
	if (!nl) {
		free(text);
		return ag_errf(err, ENOENT, "/proc/self/cgroup: no cgroup2 entry");
	}
	snprintf(self, sizeof(self), "%s%s", t->in.cgroup2, nl + 3);
	free(text);
	if ((nl = strchr(self, '\n')))
		*nl = '\0';
	ret = ag_cgroup_enter(t->in.cg_daemon, 0, err);
	if (ret)
		return ret;
	t->lfd4 = tcp_listen("127.0.0.1", 0, &t->port);
	if (t->lfd4 >= 0)
		t->lfd6 = tcp_listen("::1", t->port, NULL);
	if (t->lfd4 >= 0)
		setsockopt(t->lfd4, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	if (t->lfd6 >= 0)
		setsockopt(t->lfd6, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	ret = ag_cgroup_enter(self, 0, err);
	if (t->lfd4 < 0 || t->lfd6 < 0)
		return ag_errf(err, EADDRINUSE, "stand-in listeners: %s", strerror(errno));
	return ret;
}

/*
 * The stand-in for agentgated's process, in <instance>/daemon: it holds the
 * serving socket (this process's copy is closed), so the instance serves
 * exactly as long as it lives, as it would for the daemon.
 */
static pid_t start_daemon_placeholder(struct tinst *t)
{
	int cgfd = open(t->in.cg_daemon, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pid_t pid;

	if (cgfd < 0)
		return -1;
	pid = ag_clone_into_cgroup(cgfd);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	close(cgfd);
	if (pid > 0) {
		close(t->k.serving_fd);
		t->k.serving_fd = -1;
	}
	return pid;
}

void tinst_kill_daemon(struct tinst *t)
{
	if (t->daemon_pid > 0) {
		kill(t->daemon_pid, SIGKILL);
		waitpid(t->daemon_pid, NULL, 0);
	}
	t->daemon_pid = 0;
}

int tinst_create(struct tinst *t, const char *suffix, unsigned int flags, const uint8_t *resolver,
		 uint16_t resolver_port)
{
	struct ag_err err = { 0 };
	uint32_t lo = htonl(INADDR_LOOPBACK);
	int ret;

	memset(t, 0, sizeof(*t));
	t->lfd4 = t->lfd6 = -1;
	if ((ret = ag_instance_init(&t->in, test__instance(suffix), NULL, &err)) ||
	    (ret = ag_bpffs_ensure(&err)) || (ret = ag_cgroup_mkdir(t->in.cg_root, &err)) ||
	    (ret = ag_cgroup_mkdir(t->in.cg_agents, &err)) ||
	    (ret = ag_cgroup_mkdir(t->in.cg_daemon, &err)))
		goto fail;
	t->cfg.mark = 0x41470000 | (runner_pid & 0xffff);
	if (flags & TINST_NO_LISTENER)
		t->port = free_port();
	else if ((ret = listen_from_daemon_cgroup(t, &err)))
		goto fail;
	memcpy(&t->cfg.daemon_ip4, &lo, 4);
	t->cfg.daemon_ip6[15] = 1;
	t->cfg.daemon_port = t->port;
	t->cfg.agents_level = ag_cgroup_level(t->in.cgroup2, t->in.cg_agents);
	{
		uint64_t id = 0;

		ag_cgroup_id(t->in.cg_daemon, &id, NULL);
		t->cfg.daemon_cgroup_id = id;
	}
	if (resolver) {
		memcpy(t->cfg.resolvers[0], resolver, 16);
		t->cfg.nr_resolvers = 1;
		t->cfg.resolver_port = resolver_port;
	}
	t->cfg.default_verdict = AG_VERDICT_REDIRECT;
	if ((ret = ag_kern_install(&t->k, &t->in, &t->cfg, &err)) ||
	    (ret = ag_agent_register(&t->k, &t->in, "a", AG_VERDICT_REDIRECT, &t->agent_cg, &err)))
		goto fail;
	if (!(flags & TINST_NO_LISTENER)) {
		if ((ret = ag_kern_serving(&t->k, true, &err)))
			goto fail;
		t->daemon_pid = start_daemon_placeholder(t);
		if (t->daemon_pid < 0) {
			ret = ag_errf(&err, errno, "daemon placeholder: %s", strerror(errno));
			goto fail;
		}
	}
	snprintf(t->agent_path, sizeof(t->agent_path), "%s/a", t->in.cg_agents);
	return 0;
fail:
	fprintf(stderr, "tinst_create %s: %s\n", suffix, err.msg);
	tinst_destroy(t);
	return ret ? ret : -1;
}

void tinst_destroy(struct tinst *t)
{
	struct ag_err err;

	tinst_kill_daemon(t);
	if (t->lfd4 >= 0)
		close(t->lfd4);
	if (t->lfd6 >= 0)
		close(t->lfd6);
	t->lfd4 = t->lfd6 = -1;
	ag_kern_close(&t->k);
	if (!t->in.name[0])
		return;
	ag_cgroup_destroy(t->in.cg_agents, &err);
	ag_kern_uninstall(&t->in, &err);
	ag_cgroup_destroy(t->in.cg_root, &err);
}

static int daemon_ready(struct tdaemon *d, int ms)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	struct ag_err err;

	for (int i = 0; i < ms / 10; i++) {
		json_t *req = json_pack("{s:s}", "cmd", "ping"), *resp = NULL;
		int ret = ag_ctl_call(&d->in, req, &resp, &err);

		json_decref(req);
		json_decref(resp);
		if (!ret)
			return 0;
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			return -ECHILD;
		}
		nanosleep(&pause, NULL);
	}
	return -ETIMEDOUT;
}

/*
 * The launcher of a detached start (the process the README's command line
 * runs) exits once the daemon serves or fails: its status, bounded in time.
 */
static int launcher_status(pid_t pid, int ms)
{
	int status;

	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
		usleep(10 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -ETIMEDOUT;
}

int tdaemon_start_agent(struct tdaemon *d, const char *suffix, const char *extra_json,
			char *agent_cg, size_t len)
{
	struct ag_kern k;
	struct ag_err err;
	int ret = tdaemon_start(d, suffix, extra_json, 0);

	if (ret) {
		fprintf(stderr, "agentgated did not start (%d); log %s\n", ret, d->log);
		return ret;
	}
	if (ag_kern_open(&k, &d->in, &err))
		return -ENOENT;
	ret = ag_agent_register(&k, &d->in, "a", AG_VERDICT_KEEP, NULL, &err);
	ag_kern_close(&k);
	snprintf(agent_cg, len, "%s/a", d->in.cg_agents);
	return ret;
}

int tdaemon_restart(struct tdaemon *d)
{
	char bin[PATH_MAX + 32];
	pid_t pid;
	int logfd, ret;

	snprintf(bin, sizeof(bin), "%s/agentgated", testlib_build_dir());
	logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		if ((d->flags & TDAEMON_NETNS_WITHOUT_IPV6) &&
		    (unshare(CLONE_NEWNET) ||
		     system(
			 "ip link set lo up && echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6")))
			_exit(126);
		/* As README.md's "Using it" and a service unit's ExecStart run it. */
		if (d->flags & (TDAEMON_DETACHED | TDAEMON_NOTIFY))
			execl(bin, bin, "--instance", d->in.name, "--config", d->conf,
			      "--state-dir", d->state, (char *)NULL);
		execl(bin, bin, "--instance", d->in.name, "--config", d->conf, "--state-dir",
		      d->state, "--foreground", "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	close(logfd);
	if (pid < 0)
		return -errno;
	if (d->flags & TDAEMON_NOTIFY) {
		d->pid = pid;
		return 0;
	}
	if (d->flags & TDAEMON_DETACHED) {
		if ((ret = launcher_status(pid, 10000)))
			return ret > 0 ? -ECHILD : ret;
		d->pid = ag_instance_daemon_pid(&d->in);
		if (!d->pid)
			return -ESRCH;
	} else {
		d->pid = pid;
	}
	return daemon_ready(d, 5000);
}

int tdaemon_start(struct tdaemon *d, const char *suffix, const char *extra_json, unsigned int flags)
{
	struct ag_err err;
	FILE *f;

	memset(d, 0, sizeof(*d));
	d->flags = flags;
	snprintf(d->dir, sizeof(d->dir), "/tmp/agt%d-XXXXXX", runner_pid);
	if (!mkdtemp(d->dir))
		return -errno;
	if (ag_instance_init(&d->in, test__instance(suffix), NULL, &err))
		return -EINVAL;
	d->port = free_port();
	snprintf(d->conf, sizeof(d->conf), "%s/agentgate.json", d->dir);
	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	if (flags & TDAEMON_SMALL_STATE) {
		if (mkdir(d->state, 0700) ||
		    mount("tmpfs", d->state, "tmpfs", 0, "size=256k,mode=0700"))
			return -errno;
	}
	snprintf(d->log, sizeof(d->log), "%s/agentgated.log", d->dir);
	/* Detached, the daemon logs in its state directory (0711, as it makes it). */
	if (flags & TDAEMON_DETACHED) {
		if (mkdir(d->state, 0711))
			return -errno;
		if (snprintf(d->log, sizeof(d->log), "%s/agentgated.log", d->state) >=
		    (int)sizeof(d->log))
			return -ENAMETOOLONG;
	}
	f = fopen(d->conf, "w");
	if (!f)
		return -errno;
	/* No resolver unless the test plays one: no test may send DNS anywhere. */
	fprintf(f, "{\"listen\": {\"port\": %u}%s%s%s}\n", d->port,
		strstr(extra_json, "\"resolvers\"") ? "" : ", \"resolvers\": []",
		extra_json[0] ? ", " : "", extra_json);
	fclose(f);
	return tdaemon_restart(d);
}

int tdaemon_stop(struct tdaemon *d, int sig, int ms)
{
	/* Before the signal: the pid cannot be reused while the pidfd holds it. */
	int pfd = d->pid > 0 ? syscall(SYS_pidfd_open, d->pid, 0) : -1, ret = 0;
	struct pollfd p = { .fd = pfd, .events = POLLIN };

	if (d->pid <= 0)
		return 0;
	kill(d->pid, sig);
	/* Readable once the process has exited, whoever reaps it. */
	if (pfd >= 0 && poll(&p, 1, ms) == 0) {
		ret = -ETIMEDOUT;
		kill(d->pid, SIGKILL);
		poll(&p, 1, 5000);
	}
	if (pfd >= 0)
		close(pfd);
	if (!(d->flags & TDAEMON_DETACHED))
		waitpid(d->pid, NULL, 0);
	d->pid = 0;
	return ret;
}

void tdaemon_kill(struct tdaemon *d, int sig)
{
	tdaemon_stop(d, sig, 30000);
}

bool text_has_word(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = strstr(text, word); p; p = strstr(p + 1, word))
		if ((p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
		    !(isalnum((unsigned char)p[n]) || p[n] == '_'))
			return true;
	return false;
}

/* Every member name in v (below "args", which holds the agent's own names). */
static void audit_fields_check(json_t *v, const char *doc, int depth)
{
	const char *key;
	json_t *m;
	size_t i;

	if (depth > 16)
		return;
	if (json_is_array(v))
		json_array_foreach(v, i, m) audit_fields_check(m, doc, depth + 1);
	if (!json_is_object(v))
		return;
	json_object_foreach(v, key, m)
	{
		if (!text_has_word(doc, key)) {
			fprintf(stderr, "audit field \"%s\" is not documented in docs/audit.md\n",
				key);
			test__fail();
		}
		if (strcmp(key, "args"))
			audit_fields_check(m, doc, depth + 1);
	}
}

/*
 * docs/audit.md names every field the daemon writes: checked on the records
 * of every test that ran a daemon, so a new field cannot land undocumented.
 */
static void audit_fields_documented(const struct tdaemon *d)
{
	char path[PATH_MAX], *doc = NULL, *text = NULL, *line, *save = NULL;
	struct dirent *de;
	DIR *dir;

	if (!d->state[0] ||
	    snprintf(path, sizeof(path), "%s/docs/audit.md", testlib_src_dir()) >=
		(int)sizeof(path) ||
	    ag_read_file(path, 1 << 20, &doc, NULL, NULL))
		return;
	dir = opendir(d->state);
	while (dir && (de = readdir(dir))) {
		if (strncmp(de->d_name, "audit.log", 9) ||
		    snprintf(path, sizeof(path), "%s/%s", d->state, de->d_name) >=
			(int)sizeof(path) ||
		    ag_read_file(path, 64 << 20, &text, NULL, NULL))
			continue;
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			json_t *rec = json_loads(line, 0, NULL);

			audit_fields_check(rec, doc, 0);
			json_decref(rec);
		}
		free(text);
		text = NULL;
	}
	if (dir)
		closedir(dir);
	free(doc);
}

void tdaemon_destroy(struct tdaemon *d)
{
	char cmd[PATH_MAX + 16];

	tdaemon_kill(d, SIGTERM);
	audit_fields_documented(d);
	if (d->in.name[0])
		sweep_instance(d->in.name);
	if (d->flags & TDAEMON_SMALL_STATE)
		umount2(d->state, MNT_DETACH);
	if (d->dir[0] && !getenv("AG_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (system(cmd))
			fprintf(stderr, "cleanup: %s failed\n", cmd);
	}
}

bool log_has(const struct tdaemon *d, int ms, ...)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	for (int i = 0; i <= ms / 20; i++) {
		char *text = NULL, *line, *save = NULL;
		bool found = false;

		if (ag_read_file(d->log, 16 << 20, &text, NULL, NULL) == 0) {
			for (line = strtok_r(text, "\n", &save); line && !found;
			     line = strtok_r(NULL, "\n", &save)) {
				va_list ap;
				const char *s;

				found = true;
				va_start(ap, ms);
				while ((s = va_arg(ap, const char *)))
					found &= strstr(line, s) != NULL;
				va_end(ap);
			}
			free(text);
		}
		if (found)
			return true;
		nanosleep(&pause, NULL);
	}
	return false;
}

pid_t serve_one(int tool, const char *answer)
{
	pid_t pid = fork();

	if (pid == 0) {
		int c = accept_timeout(tool, 5000);
		char buf[64];

		if (c < 0)
			_exit(1);
		if (read(c, buf, sizeof(buf)) <= 0 || write(c, answer, strlen(answer)) < 0)
			_exit(2);
		close(c);
		_exit(0);
	}
	return pid;
}

int run_capture(char **out, const char *fmt, ...)
{
	char cmd[4096];
	size_t cap = 4096, n = 0;
	va_list ap;
	FILE *p;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	*out = calloc(1, cap);
	p = popen(cmd, "r");
	if (!p || !*out)
		return -1;
	while (!feof(p)) {
		if (n + 1 >= cap) {
			char *nb = realloc(*out, cap * 2);

			if (!nb)
				break;
			*out = nb;
			cap *= 2;
		}
		n += fread(*out + n, 1, cap - n - 1, p);
		(*out)[n] = '\0';
	}
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long long held_approval_id(const struct ag_instance *in)
{
	for (int i = 0; i < 200; i++) {
		char *out = NULL, *p;
		long long id = 0;

		run_capture(&out, "%s/agentgatectl --instance %s approvals --json",
			    testlib_build_dir(), in->name);
		if (out && (p = strstr(out, "\"id\":")))
			id = atoll(p + 5);
		free(out);
		if (id)
			return id;
		usleep(50000);
	}
	return 0;
}

size_t tls_client_hello(const char *name, unsigned char *buf, size_t cap)
{
	struct ag_err err;
	SSL_CTX *ctx = ag_tls_client_ctx(NULL, &err);
	struct ag_tls *c = ctx ? ag_tls_new_client(ctx, name, &err) : NULL;
	const void *p;
	size_t n = 0;

	if (c && ag_tls_handshake(c, &err) == -EAGAIN) {
		n = ag_tls_out(c, &p);
		if (n > cap)
			n = 0;
		memcpy(buf, p, n);
	}
	ag_tls_free(c);
	SSL_CTX_free(ctx);
	return n;
}

int node_peer_start(char *const argv[], const char *e2e_dir, pid_t *pid)
{
	char line[512] = "";
	int pipefd[2], port;
	size_t n = 0;
	json_t *j;

	*pid = -1;
	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	*pid = fork();
	if (*pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pipefd[1], 1);
		if (!test__verbose()) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, 2);
		}
		setenv("AGENTGATE_E2E_DIR", e2e_dir, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (*pid > 0 && n < sizeof(line) - 1) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };

		if (poll(&pfd, 1, 15000) <= 0 || read(pipefd[0], line + n, 1) <= 0 ||
		    line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	close(pipefd[0]);
	j = json_loads(line, 0, NULL);
	port = (int)json_integer_value(json_object_get(j, "port"));
	json_decref(j);
	return port > 0 ? port : -ETIMEDOUT;
}

int tconf_load(const char *json, struct ag_conf *c, struct ag_err *err)
{
	char path[] = "/tmp/agentgate-conf-XXXXXX";
	int fd = mkstemp(path), ret;

	if (fd < 0 || write(fd, json, strlen(json)) != (ssize_t)strlen(json)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	ret = ag_conf_load(c, path, err);
	unlink(path);
	return ret;
}
