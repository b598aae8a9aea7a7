// SPDX-License-Identifier: GPL-2.0
/*
 * One hosted stdio process (hosted_int.h): started into a cgroup of its own
 * below its agent's, as its user, sandboxed like an agent run; one JSON-RPC
 * message per line on stdin and stdout, stderr to the daemon log.
 *
 * A child's life:
 *
 *	start ──> running ──(EOF on stdout: exit, kill, garbage)──> dead
 *	                                                              │
 *	   reaped <── uid released <── cgroup killed and removed <────┘
 *
 * Ordering hazards:
 *  - the cgroup goes before the uid: a per-run uid is free for another run
 *    only once nothing of this one is left running as it;
 *  - dead is set before the reap, under c->lock, so no call waits on a
 *    child that will never answer, and no new call is written to it;
 *  - the id a call's answer is found by is the bridge's own, never the
 *    agent's: two sessions sharing a child may send the same ids.
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
#include <dirent.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "hosted_int.h"
#include "runuid.h"
#include "sandbox.h"

#define STDERR_LINE 512 /* logged bytes of one stderr line */
#define STDERR_BURST 50 /* lines logged per window */
#define STDERR_WINDOW_NS (10ull * 1000 * 1000 * 1000)
#define CHILD_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void child_get(struct hosted_child *c)
{
	pthread_mutex_lock(&c->lock);
	c->refs++;
	pthread_mutex_unlock(&c->lock);
}

bool hosted_child_ref(struct hosted_child *c)
{
	bool alive;

	pthread_mutex_lock(&c->lock);
	alive = !c->dead;
	if (alive)
		c->refs++;
	pthread_mutex_unlock(&c->lock);
	return alive;
}

void hosted_child_put(struct hosted_child *c)
{
	bool last;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	for (int i = 0; i < HOSTED_INFLIGHT; i++)
		json_decref(c->pend[i].resp);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->wlock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Kills every process of the child; the stdout reader then sees EOF and cleans up. */
static void child_kill(struct hosted_child *c, const char *why)
{
	struct ag_err err;

	ag_log(AG_LOG_WARN, "hosted", "server=%s pid=%d kill=\"%s\"", c->srv->conf->name, c->pid,
	       why);
	if (ag_cgroup_destroy(c->cg, &err))
		ag_log(AG_LOG_ERROR, "hosted", "server=%s error=\"%s\"", c->srv->conf->name,
		       err.msg);
}

void hosted_child_stop(struct hosted_child *c)
{
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_mutex_unlock(&c->lock);
	child_kill(c, "session ended");
}

/* The whole line or an error; the child is killed if it stops reading. */
static int child_write(struct hosted_child *c, const char *buf, size_t len, char *why, size_t cap)
{
	uint64_t deadline = ag_now_ns() + HOSTED_WRITE_MS * 1000000ull;
	size_t off = 0;

	pthread_mutex_lock(&c->wlock);
	while (off < len) {
		struct pollfd pfd = { .fd = c->in_fd, .events = POLLOUT };
		uint64_t now = ag_now_ns();
		ssize_t n;

		if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) == 0) {
			pthread_mutex_unlock(&c->wlock);
			child_kill(c, "stdin not read");
			snprintf(why, cap, "the server stopped reading its input");
			return -ETIMEDOUT;
		}
		n = write(c->in_fd, buf + off, len - off);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			int e = errno;

			pthread_mutex_unlock(&c->wlock);
			snprintf(why, cap, "the server's input: %s", strerror(e));
			return -e;
		}
		off += (size_t)n;
	}
	pthread_mutex_unlock(&c->wlock);
	return 0;
}

static int write_msg(struct hosted_child *c, json_t *msg, char *why, size_t cap)
{
	char *line = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = line ? strlen(line) : 0;
	int ret;

	/* Compact JSON escapes every control byte: the line ends at the newline added here. */
	if (!line || n >= HOSTED_LINE_MAX) {
		free(line);
		snprintf(why, cap, "message too large for the server");
		return -EMSGSIZE;
	}
	line[n] = '\n';
	ret = child_write(c, line, n + 1, why, cap);
	free(line);
	return ret;
}

int hosted_send(struct hosted_child *c, json_t *msg, char *why, size_t cap)
{
	return write_msg(c, msg, why, cap);
}

static struct hosted_pending *pend_take(struct hosted_child *c)
{
	for (int i = 0; i < HOSTED_INFLIGHT; i++)
		if (c->pend[i].state == 0) {
			c->pend[i].state = 1;
			c->pend[i].id = ++c->next_id;
			return &c->pend[i];
		}
	return NULL;
}

/* Waits for p's answer under c->lock, bounded; NULL with why set when none came. */
static json_t *pend_wait(struct hosted_child *c, struct hosted_pending *p, char *why, size_t cap)
{
	struct timespec ts;
	json_t *r = NULL;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += HOSTED_CALL_MS / 1000;
	while (p->state == 1 && !c->dead)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
			break;
	if (p->state == 2) {
		r = p->resp;
		p->resp = NULL;
	} else {
		snprintf(why, cap,
			 c->dead ? "the server exited before it answered"
				 : "the server did not answer within %d s",
			 HOSTED_CALL_MS / 1000);
	}
	p->state = 0;
	return r;
}

json_t *hosted_call(struct hosted_child *c, json_t *msg, char *why, size_t cap)
{
	json_t *orig = json_incref(json_object_get(msg, "id")), *r = NULL;
	struct hosted_pending *p;

	pthread_mutex_lock(&c->lock);
	p = c->dead ? NULL : pend_take(c);
	if (!p)
		snprintf(why, cap,
			 c->dead ? "the server is not running" : "too many calls in flight");
	pthread_mutex_unlock(&c->lock);
	if (p && !json_object_set_new(msg, "id", json_integer((json_int_t)p->id)) &&
	    !write_msg(c, msg, why, cap)) {
		pthread_mutex_lock(&c->lock);
		r = pend_wait(c, p, why, cap);
		pthread_mutex_unlock(&c->lock);
	} else if (p) {
		pthread_mutex_lock(&c->lock);
		p->state = 0;
		pthread_mutex_unlock(&c->lock);
	}
	if (r && json_object_set(r, "id", orig)) {
		json_decref(r);
		r = NULL;
		snprintf(why, cap, "out of memory");
	}
	json_object_set(msg, "id", orig);
	json_decref(orig);
	return r;
}

/* An answer to one of ours, a request of the server's, or a notification. */
static void child_line(struct hosted_child *c, const char *line, size_t len, unsigned *garbage)
{
	json_t *m = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL), *id, *method;
	char why[128];

	if (!json_is_object(m)) {
		if ((*garbage)++ < 5)
			ag_log(AG_LOG_WARN, "hosted",
			       "server=%s pid=%d stdout=not_jsonrpc bytes=%zu", c->srv->conf->name,
			       c->pid, len);
		json_decref(m);
		return;
	}
	id = json_object_get(m, "id");
	method = json_object_get(m, "method");
	if (method && id) {
		/* No agent is on the other end of a server's request: refused, so it does not hang.
		 */
		json_t *e =
		    json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
			      -32601, "message", "not available through agentgate's stdio bridge");

		if (e)
			write_msg(c, e, why, sizeof(why));
		json_decref(e);
	} else if (!method && json_is_integer(id)) {
		pthread_mutex_lock(&c->lock);
		for (int i = 0; i < HOSTED_INFLIGHT; i++) {
			struct hosted_pending *p = &c->pend[i];

			if (p->state == 1 && (json_int_t)p->id == json_integer_value(id)) {
				p->resp = json_incref(m);
				p->state = 2;
				pthread_cond_broadcast(&c->cond);
				break;
			}
		}
		pthread_mutex_unlock(&c->lock);
	}
	json_decref(m);
}

/* Lines of stdout until EOF; a line over HOSTED_LINE_MAX kills the child. */
static void read_stdout(struct hosted_child *c)
{
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap), *nl;
	unsigned garbage = 0;
	ssize_t n;

	while (buf) {
		if (len == cap) {
			char *bigger = cap < HOSTED_LINE_MAX ? realloc(buf, cap * 2) : NULL;

			if (!bigger) {
				child_kill(c, "a stdout line over 4 MiB");
				break;
			}
			buf = bigger;
			cap *= 2;
		}
		n = read(c->out_fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		while ((nl = memchr(buf, '\n', len))) {
			size_t l = (size_t)(nl - buf);

			child_line(c, buf, l, &garbage);
			memmove(buf, nl + 1, len - l - 1);
			len -= l + 1;
		}
	}
	free(buf);
}

/* The backoff before the server's next start, from how long this child lived. */
static void note_exit(struct hosted_child *c, int status)
{
	struct hosted_srv *s = c->srv;
	uint64_t lived_ms = (ag_now_ns() - c->started_ns) / 1000000;
	uint32_t delay = 0;
	bool crash;

	pthread_mutex_lock(&c->lock);
	crash = !c->stopping;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&s->lock);
	/* Killed by the bridge or by the keeper's exit: no crash, no backoff. */
	crash = crash && !s->closing;
	if (crash) {
		s->crashes = lived_ms >= HOSTED_STABLE_MS ? 1 : s->crashes + 1;
		delay = HOSTED_BACKOFF_MIN_MS;
		for (uint32_t i = 1; i < s->crashes && delay < HOSTED_BACKOFF_MAX_MS; i++)
			delay *= 2;
		if (delay > HOSTED_BACKOFF_MAX_MS)
			delay = HOSTED_BACKOFF_MAX_MS;
		s->not_before_ns = ag_now_ns() + delay * 1000000ull;
	}
	pthread_mutex_unlock(&s->lock);
	ag_log(crash ? AG_LOG_WARN : AG_LOG_INFO, "hosted",
	       "server=%s pid=%d exit=%s%d lived_ms=%llu restart_in_ms=%u", s->conf->name, c->pid,
	       WIFSIGNALED(status) ? "signal:" : "",
	       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
	       (unsigned long long)lived_ms, delay);
}

static void *stdout_thread(void *arg)
{
	struct hosted_child *c = arg;
	struct ag_err err;
	int status = 0;

	read_stdout(c);
	pthread_mutex_lock(&c->lock);
	c->dead = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	/*
	 * Whatever it left running goes with it: killed, reaped (a zombie
	 * still populates its cgroup), the cgroup removed, then the uid freed.
	 */
	ag_cgroup_destroy(c->cg, &err);
	while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
		;
	hosted_cgroup_remove(c->cg, c->srv->conf->name);
	note_exit(c, status);
	ag_runuid_release(&c->u);
	close(c->out_fd);
	close(c->in_fd);
	hosted_child_put(c);
	return NULL;
}

/* One stderr line into the log: bounded, printable, without quotes. */
static void log_stderr(struct hosted_child *c, const char *line, size_t len)
{
	char out[STDERR_LINE + 1];
	size_t n = len < STDERR_LINE ? len : STDERR_LINE;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)line[i];

		out[i] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
	}
	out[n] = '\0';
	ag_log(AG_LOG_INFO, "hosted", "server=%s pid=%d stderr=\"%s\"%s", c->srv->conf->name,
	       c->pid, out, len > n ? " truncated=1" : "");
}

/* stderr lines to the log: STDERR_BURST per window, the rest counted. */
static void *stderr_thread(void *arg)
{
	struct hosted_child *c = arg;
	char buf[STDERR_LINE * 2];
	size_t len = 0;
	uint64_t window = ag_now_ns();
	unsigned logged = 0, dropped = 0;
	ssize_t n;

	while ((n = read(c->err_fd, buf + len, sizeof(buf) - len)) > 0 ||
	       (n < 0 && errno == EINTR)) {
		char *nl;

		len += n > 0 ? (size_t)n : 0;
		if (ag_now_ns() - window > STDERR_WINDOW_NS) {
			if (dropped)
				ag_log(AG_LOG_WARN, "hosted", "server=%s pid=%d stderr_dropped=%u",
				       c->srv->conf->name, c->pid, dropped);
			window = ag_now_ns();
			logged = dropped = 0;
		}
		/* A line longer than the buffer is logged in pieces, each bounded. */
		while ((nl = memchr(buf, '\n', len)) || len == sizeof(buf)) {
			size_t l = nl ? (size_t)(nl - buf) : len;

			if (logged++ < STDERR_BURST)
				log_stderr(c, buf, l);
			else
				dropped++;
			l += nl ? 1 : 0;
			memmove(buf, buf + l, len - l);
			len -= l;
		}
	}
	close(c->err_fd);
	hosted_child_put(c);
	return NULL;
}

/* The environment the server starts with: no variable of the daemon's. */
static char **child_env(const struct hosted_srv *s, const struct ag_user *u)
{
	char **env = calloc((size_t)s->h->nr_env + 5, sizeof(*env));
	int n = 0;

	if (!env)
		return NULL;
	env[n++] = strdup(CHILD_PATH);
	if (asprintf(&env[n++], "HOME=%s", u->home[0] ? u->home : "/") < 0 ||
	    asprintf(&env[n++], "USER=%s", u->name) < 0 ||
	    asprintf(&env[n++], "LOGNAME=%s", u->name) < 0)
		env[n - 1] = NULL;
	for (int i = 0; i < s->h->nr_env; i++)
		env[n++] = strdup(s->h->env[i]);
	for (int i = 0; i < n; i++)
		if (!env[i]) {
			for (int j = 0; j < n; j++)
				free(env[j]);
			free(env);
			return NULL;
		}
	return env;
}

/* In the forked child: confined as agentgatectl run confines an agent, then exec. */
static void child_exec(const struct hosted_child *c, int in, int out, int err, char **env)
{
	const struct ag_hosted_conf *h = c->srv->h;
	struct ag_err e;
	sigset_t all;
	int ret;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(err, 2) < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(126);
	ret = ag_cgroup_enter(c->cg, 0, &e);
	if (!ret)
		ret = ag_user_become(&c->u, &e);
	if (!ret && chdir(h->cwd))
		ret = ag_errf(&e, errno, "cwd %s: %s", h->cwd, strerror(errno));
	ag_close_inherited(NULL, 0);
	if (!ret)
		ret = ag_sandbox_apply(!c->u.per_run, &e);
	if (ret) {
		/* Fail closed: a server that is not confined does not start. */
		dprintf(2, "agentgated: hosted server: %s\n", e.msg);
		_exit(126);
	}
	execve(h->argv[0], h->argv, env);
	dprintf(2, "agentgated: hosted server: %s: %s\n", h->argv[0], strerror(errno));
	_exit(127);
}

static int child_user(struct hosted_srv *s, struct ag_user *u, struct ag_err *err)
{
	int ret;

	if (!s->h->user[0])
		return ag_runuid_claim(s->uid_min, s->uid_max, u, err);
	if ((ret = ag_user_resolve(s->h->user, u, err)))
		return ret;
	/* Fail closed: a tool server is untrusted code, never root's. */
	if (!u->uid)
		return ag_errf(err, EPERM, "user %s: a hosted server never runs as root",
			       s->h->user);
	return 0;
}

static void close_pipes(int p[3][2])
{
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++)
			if (p[i][j] >= 0)
				close(p[i][j]);
}

/* The process with its pipes (c->pid set) or an error; the cgroup exists already. */
static int child_spawn(struct hosted_child *c, struct ag_err *err)
{
	int p[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
	char **env = child_env(c->srv, &c->u);

	for (int i = 0; i < 3 && env; i++)
		if (pipe2(p[i], O_CLOEXEC)) {
			close_pipes(p);
			return ag_errf(err, errno, "pipe: %s", strerror(errno));
		}
	if (!env)
		return ag_errf(err, ENOMEM, "out of memory");
	c->pid = fork();
	if (c->pid == 0)
		child_exec(c, p[0][0], p[1][1], p[2][1], env);
	for (int i = 0; env[i]; i++)
		free(env[i]);
	free(env);
	if (c->pid < 0) {
		close_pipes(p);
		return ag_errf(err, errno, "fork: %s", strerror(errno));
	}
	close(p[0][0]);
	close(p[1][1]);
	close(p[2][1]);
	c->in_fd = p[0][1];
	c->out_fd = p[1][0];
	c->err_fd = p[2][0];
	fcntl(c->in_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

static struct hosted_child *child_new(struct hosted_srv *s)
{
	struct hosted_child *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;

	if (!c)
		return NULL;
	c->srv = s;
	c->u.lock_fd = -1;
	c->in_fd = c->out_fd = c->err_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	c->refs = 1; /* the caller's */
	return c;
}

/* The stdout reader is the one that must run: it reaps the child. */
static int start_readers(struct hosted_child *c)
{
	pthread_attr_t at;
	pthread_t th;
	int ret;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	child_get(c);
	if ((ret = pthread_create(&th, &at, stdout_thread, c))) {
		hosted_child_put(c);
	} else {
		child_get(c);
		if (pthread_create(&th, &at, stderr_thread, c)) {
			ag_log(AG_LOG_WARN, "hosted", "server=%s pid=%d stderr=unread",
			       c->srv->conf->name, c->pid);
			close(c->err_fd);
			hosted_child_put(c);
		}
	}
	pthread_attr_destroy(&at);
	return ret;
}

int hosted_child_start(struct hosted_srv *s, struct hosted_child **out, char *why, size_t cap)
{
	struct hosted_child *c = child_new(s);
	struct ag_err err = { 0 };
	int ret;

	if (!c)
		return snprintf(why, cap, "out of memory"), -ENOMEM;
	ret = snprintf(c->cg, sizeof(c->cg), "%s/hosted-%s-%llu", s->cg_parent, s->conf->name,
		       (unsigned long long)++s->seq) >= (int)sizeof(c->cg)
		  ? ag_errf(&err, ENAMETOOLONG, "cgroup path too long")
		  : 0;
	if (!ret)
		ret = ag_cgroup_mkdir(c->cg, &err);
	if (!ret && (ret = child_user(s, &c->u, &err)))
		rmdir(c->cg);
	if (!ret && (ret = child_spawn(c, &err))) {
		ag_runuid_release(&c->u);
		rmdir(c->cg);
	}
	if (ret) {
		ag_log(AG_LOG_ERROR, "hosted", "server=%s error=\"%s\"", s->conf->name, err.msg);
		snprintf(why, cap, "the server could not start: %s", err.msg);
		hosted_child_put(c);
		return ret;
	}
	c->started_ns = ag_now_ns();
	ag_log(AG_LOG_INFO, "hosted", "server=%s pid=%d start uid=%u cgroup=%s", s->conf->name,
	       c->pid, c->u.uid, c->cg);
	if (start_readers(c)) {
		/* Without its stdout reader nobody would reap it: it goes now. */
		child_kill(c, "no reader thread");
		close(c->in_fd);
		close(c->out_fd);
		close(c->err_fd);
		waitpid(c->pid, NULL, 0);
		ag_runuid_release(&c->u);
		hosted_child_put(c);
		snprintf(why, cap, "out of threads");
		return -EAGAIN;
	}
	*out = c;
	return 0;
}

void hosted_cgroup_remove(const char *cg, const char *server)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	struct ag_err err;
	int ret = ag_cgroup_destroy(cg, &err);

	/* EBUSY: its processes are dead, not yet reaped by their parent; bounded to 1 s. */
	for (int i = 0; i < 100 && ret == -EBUSY; i++) {
		nanosleep(&pause, NULL);
		ret = ag_cgroup_rmtree(cg, &err);
	}
	if (ret)
		ag_log(AG_LOG_ERROR, "hosted", "server=%s error=\"%s\"", server, err.msg);
}

void hosted_sweep(const char *cg_parent, const char *server)
{
	char prefix[AG_NAME_LEN + 16], path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(cg_parent);
	int n = snprintf(prefix, sizeof(prefix), "hosted-%s-", server);

	if (!d)
		return;
	while ((de = readdir(d))) {
		/* "hosted-<server>-<seq>": not another server's whose name starts alike. */
		if (de->d_type != DT_DIR || strncmp(de->d_name, prefix, (size_t)n) ||
		    !de->d_name[n] ||
		    strspn(de->d_name + n, "0123456789") != strlen(de->d_name + n))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", cg_parent, de->d_name) >=
		    (int)sizeof(path))
			continue;
		hosted_cgroup_remove(path, server);
	}
	closedir(d);
}
