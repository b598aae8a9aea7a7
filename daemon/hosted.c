// SPDX-License-Identifier: GPL-2.0
/*
 * Hosted stdio servers (hosted.h): agentgated's side and the keeper's main.
 *
 * Why a process of its own: the daemon drops its capabilities before it
 * serves, and starting a server on demand as another user needs setuid;
 * the keeper, forked before the drop, keeps only what that takes.  It also
 * keeps the bridge's threads and the servers' bytes out of the daemon: a
 * server that floods or crashes costs the keeper, never the io_uring loop.
 *
 *	agentgated ──fork──> keeper ──fork──> server (cgroup <agents>/<agent>/hosted-<name>-<n>)
 *	     │ life pipe (write end)   │ accept at upstream, threads per connection
 *	     └── exit, even kill -9: EOF on the pipe ──> keeper kills every
 *	         server's cgroup and exits
 *
 * Ordering hazards:
 *  - the agent is registered (its verdict and rules in the kernel) before
 *    the keeper exists, so no server ever runs ungoverned; an agent not in
 *    "agents" is registered with verdict deny: it connects nowhere;
 *  - the listeners are bound by the daemon, so a taken address fails the
 *    start with a message, not a keeper later;
 *  - stop closes the pipe and waits for the keeper; if it does not go,
 *    SIGKILL, then the daemon removes what is left of the cgroups itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "hosted.h"
#include "hosted_int.h"
#include "kern.h"
#include "runuid.h"

#define KEEPER_EXIT_MS 10000


static int count_hosted(const struct ag_conf *c)
{
	int n = 0;

	for (int i = 0; i < c->nr_servers; i++)
		n += c->servers[i].hosted != NULL;
	return n;
}

static int bind_upstream(const struct ag_server_conf *sc, struct ag_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len = ag_addr_sockaddr(sc->upstream_addr, sc->upstream_port,
					 (struct sockaddr *)&ss, sizeof(ss));
	int one = 1, fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return ag_errf(err, errno, "tool server %s: socket: %s", sc->name, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/*
	 * A live upgrade's new daemon binds beside the old one's keeper, which
	 * goes with the old daemon; only root's sockets that also ask may join.
	 */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64)) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "tool server %s: command: serving at %s: %s", sc->name,
			       sc->upstream_url, strerror(e));
	}
	return fd;
}

/* The agent whose rules govern s: configured ones keep theirs, others may connect nowhere. */
static int register_agent(struct ag_daemon *d, struct hosted_srv *s, struct ag_err *err)
{
	uint32_t verdict = AG_VERDICT_DENY;

	for (int a = 0; a < d->conf.nr_agents; a++)
		if (!strcmp(d->conf.agents[a].name, s->h->agent))
			verdict = AG_VERDICT_KEEP;
	if (snprintf(s->cg_parent, sizeof(s->cg_parent), "%s/%s", d->inst.cg_agents, s->h->agent) >=
	    (int)sizeof(s->cg_parent))
		return ag_errf(err, ENAMETOOLONG, "tool server %s: cgroup path too long",
			       s->conf->name);
	return ag_agent_register(&d->kern, &d->inst, s->h->agent, verdict, NULL, err);
}

/*
 * Fail closed: a keeper that cannot shed the daemon's capabilities (or get
 * the ones it needs) serves nothing; the bridge's address then refuses and
 * the agent's call fails.
 */
static __attribute__((noreturn)) void keeper_fail(const char *what, int cap)
{
	ag_log(AG_LOG_ERROR, "hosted", "keeper=%d %s=\"%s\" cap=%d serving=no", getpid(), what,
	       strerror(errno), cap);
	_exit(1);
}

/*
 * What the keeper keeps of root: users (setuid, setgid), a per-run uid's
 * home (chown, and fowner to remove it from sticky /tmp), and kill.
 * Threads made after this inherit the same sets.
 */
static void keeper_caps(void)
{
	static const int keep[] = { CAP_CHOWN, CAP_FOWNER, CAP_SETUID, CAP_SETGID, CAP_KILL };
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };

	for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
		bool kept = false;

		for (size_t i = 0; i < AG_ARRAY_SIZE(keep); i++)
			kept |= keep[i] == cap;
		if (!kept && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL)
			keeper_fail("bounding set", cap);
	}
	for (size_t i = 0; i < AG_ARRAY_SIZE(keep); i++) {
		data[CAP_TO_INDEX(keep[i])].effective |= CAP_TO_MASK(keep[i]);
		data[CAP_TO_INDEX(keep[i])].permitted |= CAP_TO_MASK(keep[i]);
	}
	if (syscall(SYS_capset, &hdr, data))
		keeper_fail("capset", -1);
}

struct conn_arg {
	struct hosted_srv *s;
	int fd;
};

static void *conn_thread(void *arg)
{
	struct conn_arg a = *(struct conn_arg *)arg;

	free(arg);
	hosted_serve(a.s, a.fd);
	pthread_mutex_lock(&a.s->lock);
	a.s->nr_conns--;
	pthread_mutex_unlock(&a.s->lock);
	return NULL;
}

static void *accept_thread(void *arg)
{
	struct hosted_srv *s = arg;
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		struct conn_arg *a;
		pthread_t th;
		bool full;

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				nanosleep(&pause, NULL); /* EMFILE and the like: not a spin */
			continue;
		}
		pthread_mutex_lock(&s->lock);
		full = s->nr_conns >= HOSTED_CONNS;
		s->nr_conns += !full;
		pthread_mutex_unlock(&s->lock);
		a = full ? NULL : malloc(sizeof(*a));
		if (a) {
			*a = (struct conn_arg){ .s = s, .fd = fd };
			if (!pthread_create(&th, &at, conn_thread, a))
				continue;
			free(a);
		}
		/* Fail closed: a connection nobody can serve is closed, not queued forever. */
		close(fd);
		if (!full) {
			pthread_mutex_lock(&s->lock);
			s->nr_conns--;
			pthread_mutex_unlock(&s->lock);
		}
	}
	return NULL;
}

/* Every server killed, reaped (the keeper is their parent) and its cgroup removed. */
static __attribute__((noreturn)) void keeper_exit(struct ag_hosted *k)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	/*
	 * Starts happen under s->lock: once closing is set under it, no
	 * server starts after the sweep below, none is left running.
	 */
	for (int i = 0; i < k->n; i++) {
		pthread_mutex_lock(&k->srv[i].lock);
		k->srv[i].closing = true;
		pthread_mutex_unlock(&k->srv[i].lock);
	}
	/* The stdout readers reap what the sweep kills, so its cgroup can go. */
	for (int i = 0; i < k->n; i++)
		hosted_sweep(k->srv[i].cg_parent, k->srv[i].conf->name);
	/* And what no reader reaped (bounded: 0 while one is left, -1 once none is). */
	for (int i = 0; i < 100 && waitpid(-1, NULL, WNOHANG) >= 0; i++)
		nanosleep(&pause, NULL);
	for (int i = 0; i < k->n; i++)
		hosted_sweep(k->srv[i].cg_parent, k->srv[i].conf->name);
	_exit(0);
}

/* The keeper: serves until the daemon's end of the pipe closes, then kills every server. */
static __attribute__((noreturn)) void keeper_run(struct ag_hosted *k, int life_fd)
{
	int keep[1 + AG_MAX_CONF_SERVERS], nr = 0;
	struct pollfd pfd = { .fd = life_fd, .events = POLLIN };

	prctl(PR_SET_NAME, "agentgated-host", 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	keep[nr++] = life_fd;
	for (int i = 0; i < k->n; i++)
		keep[nr++] = k->srv[i].lfd;
	ag_close_inherited(keep, nr);
	keeper_caps();
	for (int i = 0; i < k->n; i++) {
		pthread_t th;

		if (pthread_create(&th, NULL, accept_thread, &k->srv[i])) {
			ag_log(AG_LOG_ERROR, "hosted", "server=%s error=\"no accept thread\"",
			       k->srv[i].conf->name);
			break;
		}
	}
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	keeper_exit(k);
}

static int prepare(struct ag_daemon *d, struct ag_hosted *k, struct ag_err *err)
{
	struct ag_config kcfg;
	uint32_t min, max;
	int ret = 0;

	ag_conf_to_kernel(&d->conf, &kcfg);
	ag_runuid_range(&kcfg, &min, &max);
	for (int i = 0, j = 0; i < d->conf.nr_servers && !ret; i++) {
		struct hosted_srv *s = &k->srv[j];

		if (!d->conf.servers[i].hosted)
			continue;
		s->conf = &d->conf.servers[i];
		s->h = s->conf->hosted;
		s->uid_min = min;
		s->uid_max = max;
		pthread_mutex_init(&s->lock, NULL);
		k->n = ++j;
		if ((ret = register_agent(d, s, err)))
			break;
		/* A previous keeper killed with its daemon may have left servers behind. */
		hosted_sweep(s->cg_parent, s->conf->name);
		s->lfd = bind_upstream(s->conf, err);
		ret = s->lfd < 0 ? s->lfd : 0;
	}
	return ret;
}

int ag_hosted_start(struct ag_daemon *d, struct ag_err *err)
{
	int n = count_hosted(&d->conf), life[2], ret;
	struct ag_hosted *k;

	if (!n)
		return 0;
	if (!(k = d->hosted = calloc(1, sizeof(*k))) ||
	    !(k->srv = calloc((size_t)n, sizeof(*k->srv))))
		return ag_errf(err, ENOMEM, "hosted servers: out of memory");
	k->pid = -1;
	k->life_fd = -1;
	for (int i = 0; i < n; i++)
		k->srv[i].lfd = -1;
	if ((ret = prepare(d, k, err)))
		return ret;
	if (pipe2(life, O_CLOEXEC))
		return ag_errf(err, errno, "hosted servers: pipe: %s", strerror(errno));
	k->pid = fork();
	if (k->pid == 0) {
		close(life[1]);
		keeper_run(k, life[0]);
	}
	close(life[0]);
	if (k->pid < 0) {
		close(life[1]);
		return ag_errf(err, errno, "hosted servers: fork: %s", strerror(errno));
	}
	k->life_fd = life[1];
	for (int i = 0; i < k->n; i++) {
		close(k->srv[i].lfd);
		k->srv[i].lfd = -1;
		ag_log(AG_LOG_INFO, "hosted",
		       "server=%s serving=%s agent=%s processes=%s keeper=%d", k->srv[i].conf->name,
		       k->srv[i].conf->upstream_url, k->srv[i].h->agent,
		       k->srv[i].h->per_session ? "per_session" : "shared", k->pid);
	}
	return 0;
}

/* Reaps the keeper within KEEPER_EXIT_MS; false if it is still there. */
static bool keeper_reaped(struct ag_hosted *k)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	for (int i = 0; i < KEEPER_EXIT_MS / 10; i++) {
		pid_t r = waitpid(k->pid, NULL, WNOHANG);

		if (r == k->pid || (r < 0 && errno == ECHILD))
			return true;
		nanosleep(&pause, NULL);
	}
	return false;
}

void ag_hosted_stop(struct ag_daemon *d)
{
	struct ag_hosted *k = d->hosted;

	if (!k)
		return;
	for (int i = 0; i < k->n; i++)
		if (k->srv[i].lfd >= 0)
			close(k->srv[i].lfd);
	if (k->life_fd >= 0)
		close(k->life_fd);
	k->life_fd = -1;
	if (k->pid > 0 && !keeper_reaped(k)) {
		ag_log(AG_LOG_WARN, "hosted", "keeper=%d exit=timeout", k->pid);
		kill(k->pid, SIGKILL);
		waitpid(k->pid, NULL, 0);
	}
	k->pid = -1;
	/* Whatever a keeper that had to be killed left. */
	for (int i = 0; i < k->n; i++)
		hosted_sweep(k->srv[i].cg_parent, k->srv[i].conf->name);
	free(k->srv);
	free(k);
	d->hosted = NULL;
}
