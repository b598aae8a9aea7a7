// SPDX-License-Identifier: GPL-2.0
/*
 * Policies from git (policy_git.h).  Two parties share struct
 * ag_policy_git: the poller thread, which runs git (lib/git.h: blocking,
 * bounded, killed at stop), and the loop, which alone touches the
 * decider.  A poll goes
 *
 *	thread: WAITING --interval_s, or a pull--> FETCH --new commit--> VERIFY
 *	        --signed by an allowed key--> EXPORT (trees/<commit>) --> POSTED
 *	        (any step failing, or the commit unchanged, posts at once)
 *	loop:   POSTED --ready_fd read--> LOAD (ag_decide_load_tree) --> report
 *	        (log, audit, status) --> the thread is released to WAITING
 *
 * Ordering hazards:
 *  - The thread posts one result and waits until the loop took it, so a
 *    result is never overwritten, and it never removes a tree the loop
 *    may still load: it prunes trees/ (all but the one in force) only at
 *    the start of its next poll, after the loop said which one that is.
 *  - The loop holds mu only to copy: loading a set is never done under
 *    it, and the thread never holds it across a git run.
 *  - Stopping: stop_fd kills a running git at once; a posted result the
 *    loop no longer reads is dropped, and fini joins before freeing.
 *  - The thread blocks every signal: the loop's signalfd must get them.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "decide.h"
#include "fileio.h"
#include "git.h"
#include "loop.h"
#include "policy_git.h"
#include "secret.h"
#include "trail.h"

#define GIT_POLL_TIMEOUT_S 60 /* one poll: fetch, verify and export together */
#define CURRENT_MAX 128	      /* <state>/policy_git/current: a commit id and '\n' */

enum { OP_READY = 1 };

/* Where a poll stopped; GS_EXPORTED goes on to the loop's load. */
enum stage { GS_FETCH, GS_VERIFY, GS_EXPORT, GS_LOAD, GS_UNCHANGED, GS_EXPORTED, GS_OK };

static const char *const stage_names[] = { "fetch",	"verify",   "export", "load",
					   "unchanged", "exported", "ok" };

struct outcome {
	uint64_t serial;     /* pulls asked for when the poll started */
	const char *trigger; /* "start", "interval", "control", "resume" */
	enum stage stage;
	char commit[AG_GIT_COMMIT_LEN]; /* "" : the fetch failed */
	char signer[256];
	char error[sizeof(((struct ag_err *)0)->msg)];
	char tree[PATH_MAX]; /* GS_EXPORTED: the set's directory */
	time_t at;
};

struct ag_policy_git {
	struct ag_io io; /* the loop's read of ready_fd */
	struct ag_daemon *d;
	struct ag_loop *l;
	const struct ag_policy_source_conf *conf;
	char dir[PATH_MAX]; /* <state>/policy_git: repo.git, home, trees, current */
	int ready_fd;	    /* eventfd, thread -> loop: a result is posted */
	int wake_fd;	    /* eventfd, loop -> thread: a pull was asked for */
	int stop_fd;	    /* eventfd, loop -> thread: stop, kill git */
	uint64_t ready_val;
	pthread_t thread;
	bool started, reading;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu. */
	bool stopping, posted;
	uint64_t asked, done;
	struct outcome res;
	char in_force[AG_GIT_COMMIT_LEN];
	/* The loop's alone. */
	struct outcome last, refused;
	uint64_t polls;
};

/* ---- the thread ------------------------------------------------------- */

/* Every entry of trees/ but keep: refused exports, superseded commits. */
static void prune(const char *dir, const char *keep)
{
	char trees[PATH_MAX + 8], path[2 * PATH_MAX];
	struct dirent *de;
	DIR *dd;

	snprintf(trees, sizeof(trees), "%s/trees", dir);
	if (!(dd = opendir(trees)))
		return;
	while ((de = readdir(dd)))
		if (de->d_name[0] != '.' && strcmp(de->d_name, keep)) {
			snprintf(path, sizeof(path), "%s/%s", trees, de->d_name);
			ag_file_remove_tree(path);
		}
	closedir(dd);
}

static void fail(struct outcome *r, enum stage st, const struct ag_err *err)
{
	r->stage = st;
	snprintf(r->error, sizeof(r->error), "%s", err->msg);
}

/* One poll: the steps up to the export; the loop loads. */
static void poll_once(struct ag_policy_git *g, struct outcome *r, const char *in_force)
{
	const struct ag_policy_source_conf *c = g->conf;
	struct ag_git git = { .dir = g->dir,
			      .stop_fd = g->stop_fd,
			      .deadline_ns = ag_now_ns() + GIT_POLL_TIMEOUT_S * 1000000000ull };
	char dest[PATH_MAX + 128];
	struct ag_err err = { 0 };
	struct stat st;

	prune(g->dir, in_force);
	if (ag_git_prepare(&git, &err) || ag_git_fetch(&git, c->url, c->ref, r->commit, &err))
		return fail(r, GS_FETCH, &err);
	if (!strcmp(r->commit, in_force)) {
		r->stage = GS_UNCHANGED;
		return;
	}
	/* Fail closed: nothing of a commit is read before its signature is good. */
	if (ag_git_verify(&git, c->allowed_signers, r->commit, r->signer, sizeof(r->signer), &err))
		return fail(r, GS_VERIFY, &err);
	snprintf(dest, sizeof(dest), "%s/trees/%s", g->dir, r->commit);
	ag_file_remove_tree(dest);
	if (ag_git_export(&git, r->commit, dest, &err))
		return fail(r, GS_EXPORT, &err);
	if (snprintf(r->tree, sizeof(r->tree), "%s%s%s", dest, c->path[0] ? "/" : "", c->path) >=
	    (int)sizeof(r->tree))
		return fail(r, GS_EXPORT, &(struct ag_err){ .msg = "path too long" });
	if (stat(r->tree, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err.msg, sizeof(err.msg), "\"%s\" is not a directory of commit %s",
			 c->path, r->commit);
		return fail(r, GS_EXPORT, &err);
	}
	r->stage = GS_EXPORTED;
}

/* Waits for interval_s or a pull; false when stopping. */
static bool wait_next(struct ag_policy_git *g, const char **trigger)
{
	struct pollfd p[2] = { { g->wake_fd, POLLIN, 0 }, { g->stop_fd, POLLIN, 0 } };
	uint64_t v;
	int n;

	do
		n = poll(p, 2, (int)g->conf->interval_s * 1000);
	while (n < 0 && errno == EINTR);
	if (p[1].revents)
		return false;
	*trigger = "interval";
	if (p[0].revents && read(g->wake_fd, &v, sizeof(v)) == sizeof(v))
		*trigger = "control";
	return true;
}

static void *thread_main(void *arg)
{
	struct ag_policy_git *g = arg;
	const char *trigger = "start";
	char in_force[AG_GIT_COMMIT_LEN];
	struct outcome r;
	uint64_t one = 1;

	do {
		memset(&r, 0, sizeof(r));
		r.trigger = trigger;
		pthread_mutex_lock(&g->mu);
		r.serial = g->asked;
		memcpy(in_force, g->in_force, sizeof(in_force));
		pthread_mutex_unlock(&g->mu);
		poll_once(g, &r, in_force);
		r.at = time(NULL);
		pthread_mutex_lock(&g->mu);
		g->res = r;
		g->posted = true;
		if (write(g->ready_fd, &one, sizeof(one)) != sizeof(one))
			g->posted = false; /* cannot happen short of a bug: the poll is lost */
		while (g->posted && !g->stopping)
			pthread_cond_wait(&g->cv, &g->mu);
		pthread_mutex_unlock(&g->mu);
	} while (wait_next(g, &trigger));
	return NULL;
}

/* ---- the loop --------------------------------------------------------- */

static void ready_arm(struct ag_policy_git *g)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&g->l->ring, &g->io, OP_READY);

	if (!sqe) {
		/* Then no commit is taken any more: said loudly, the set stays. */
		ag_log(AG_LOG_ERROR, "policy_source", "error=\"no submission queue entry\"");
		g->reading = false;
		return;
	}
	io_uring_prep_read(sqe, g->ready_fd, &g->ready_val, sizeof(g->ready_val), 0);
	g->reading = true;
}

static bool same(const struct outcome *a, const struct outcome *b)
{
	return a->stage == b->stage && !strcmp(a->commit, b->commit) && !strcmp(a->error, b->error);
}

/* The log line and the audit record of an accepted or refused commit. */
static void report(struct ag_policy_git *g, const struct outcome *r, const char *previous,
		   const struct ag_policy_info *info)
{
	const struct ag_policy_source_conf *c = g->conf;
	bool ok = r->stage == GS_OK;
	char q[2 * sizeof(r->error)], qs[2 * sizeof(r->signer)];

	if (ok)
		ag_log(AG_LOG_INFO, "policy_source",
		       "result=ok trigger=%s commit=%s policies=%zu digest=%s signer=%s",
		       r->trigger, r->commit, info->policies, info->digest,
		       ag_logq(qs, sizeof(qs), r->signer));
	else
		ag_log(AG_LOG_ERROR, "policy_source",
		       "result=refused trigger=%s commit=%s stage=%s running=%s error=%s",
		       r->trigger, r->commit[0] ? r->commit : "-", stage_names[r->stage],
		       previous[0] ? previous : "none", ag_logq(q, sizeof(q), r->error));
	ag_daemon_audit(
	    g->d, "policy_source",
	    json_pack("{s:b,s:s,s:s,s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:o?}", "ok", ok, "trigger",
		      r->trigger, "url", c->url, "ref", c->ref, "commit",
		      r->commit[0] ? r->commit : NULL, "previous", previous[0] ? previous : NULL,
		      "stage", ok ? NULL : stage_names[r->stage], "error", ok ? NULL : r->error,
		      "signer", ok ? r->signer : NULL, "digest", ok ? info->digest : NULL,
		      "policies", ok ? json_integer((json_int_t)info->policies) : NULL));
}

/* Remembers the commit in force, for the next start and the thread. */
static void set_in_force(struct ag_policy_git *g, const char *commit)
{
	char path[PATH_MAX + 16], line[AG_GIT_COMMIT_LEN + 1];
	struct ag_err err = { 0 };

	pthread_mutex_lock(&g->mu);
	snprintf(g->in_force, sizeof(g->in_force), "%s", commit);
	pthread_mutex_unlock(&g->mu);
	snprintf(path, sizeof(path), "%s/current", g->dir);
	snprintf(line, sizeof(line), "%s\n", commit);
	if (ag_file_write_atomic(path, line, strlen(line), 0600, &err))
		ag_log(AG_LOG_WARN, "policy_source", "error=\"%s\"", err.msg);
}

/* An exported commit becomes the set in force, or is refused. */
static void take(struct ag_policy_git *g, struct outcome *r)
{
	struct ag_decider *p = g->d->decider;
	char previous[AG_GIT_COMMIT_LEN];
	struct ag_policy_info info = { 0 };
	struct ag_err err = { 0 };
	bool quiet;

	snprintf(previous, sizeof(previous), "%s", p->commit);
	if (r->stage == GS_EXPORTED) {
		/* Fail closed: a set that does not load never replaces the running one. */
		if (ag_decide_load_tree(g->d, r->tree, r->commit, &info, &err))
			fail(r, GS_LOAD, &err);
		else
			r->stage = GS_OK;
	}
	g->polls++;
	/* A refusal the interval repeats is said once, not every interval_s. */
	quiet = r->stage == GS_UNCHANGED ||
		(r->stage != GS_OK && !strcmp(r->trigger, "interval") && same(r, &g->refused));
	if (r->stage == GS_OK)
		set_in_force(g, r->commit);
	if (r->stage != GS_OK && r->stage != GS_UNCHANGED)
		g->refused = *r;
	if (!quiet)
		report(g, r, previous, &info);
	g->last = *r;
}

static void ready_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_policy_git *g = ag_container_of(io, struct ag_policy_git, io);
	struct outcome r;
	bool posted;

	g->reading = false;
	if (g->l->stopping)
		return;
	if (cqe->res != sizeof(g->ready_val)) {
		ag_log(AG_LOG_ERROR, "policy_source", "error=\"eventfd read: %s\"",
		       cqe->res < 0 ? strerror(-cqe->res) : "short read");
		return;
	}
	pthread_mutex_lock(&g->mu);
	posted = g->posted;
	r = g->res;
	pthread_mutex_unlock(&g->mu);
	if (posted)
		take(g, &r);
	/* Released only now: the thread prunes trees/ on its next poll. */
	pthread_mutex_lock(&g->mu);
	g->posted = false;
	if (posted && r.serial > g->done)
		g->done = r.serial;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	ready_arm(g);
}

/* The commit the previous run accepted: in force again before the loop serves. */
static void resume(struct ag_policy_git *g)
{
	char path[PATH_MAX + 16], *text = NULL;
	struct outcome r = { .trigger = "resume", .at = time(NULL) };
	struct ag_err err = { 0 };

	snprintf(path, sizeof(path), "%s/current", g->dir);
	if (ag_read_file(path, CURRENT_MAX, &text, NULL, &err))
		return; /* none yet: the empty set refuses until the first commit */
	snprintf(r.commit, sizeof(r.commit), "%.*s", (int)strcspn(text, "\n"), text);
	free(text);
	if (snprintf(r.tree, sizeof(r.tree), "%s/trees/%s%s%s", g->dir, r.commit,
		     g->conf->path[0] ? "/" : "", g->conf->path) >= (int)sizeof(r.tree))
		return;
	snprintf(r.signer, sizeof(r.signer), "verified when first accepted");
	r.stage = GS_EXPORTED;
	take(g, &r);
}

static int make_fds(struct ag_policy_git *g, struct ag_err *err)
{
	g->ready_fd = eventfd(0, EFD_CLOEXEC);
	g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	g->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->ready_fd < 0 || g->wake_fd < 0 || g->stop_fd < 0)
		return ag_errf(err, errno, "policy_source: eventfd: %s", strerror(errno));
	return 0;
}

static int start(struct ag_policy_git *g, struct ag_err *err)
{
	char trees[PATH_MAX + 8];
	sigset_t all, old;
	int ret;

	snprintf(g->dir, sizeof(g->dir), "%s/policy_git", g->d->inst.state_dir);
	snprintf(trees, sizeof(trees), "%s/trees", g->dir);
	if ((ret = ag_secret_dir_check(g->dir, 0700, err)) ||
	    (mkdir(trees, 0700) && errno != EEXIST &&
	     (ret = ag_errf(err, errno, "%s: mkdir: %s", trees, strerror(errno)))) ||
	    (ret = make_fds(g, err)))
		return ret;
	resume(g);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&g->thread, NULL, thread_main, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return ag_errf(err, ret, "policy_source: thread: %s", strerror(ret));
	g->started = true;
	ready_arm(g);
	return 0;
}

void ag_policy_git_start(struct ag_loop *l)
{
	struct ag_daemon *d = l->d;
	struct ag_policy_git *g;
	struct ag_err err = { 0 };
	char q[2 * sizeof(err.msg)];

	if (!d->conf.policy_source.url[0])
		return;
	if (!(g = calloc(1, sizeof(*g)))) {
		ag_log(AG_LOG_ERROR, "policy_source", "error=\"out of memory\"");
		return;
	}
	*g = (struct ag_policy_git){ .io.complete = ready_complete,
				     .d = d,
				     .l = l,
				     .conf = &d->conf.policy_source,
				     .ready_fd = -1,
				     .wake_fd = -1,
				     .stop_fd = -1 };
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	d->policy_git = g;
	if (start(g, &err))
		ag_log(AG_LOG_ERROR, "policy_source", "result=error error=%s",
		       ag_logq(q, sizeof(q), err.msg));
}

void ag_policy_git_stop(struct ag_loop *l)
{
	struct ag_policy_git *g = l->d->policy_git;
	uint64_t one = 1;

	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	g->stopping = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (g->stop_fd >= 0 && write(g->stop_fd, &one, sizeof(one)) != sizeof(one))
		ag_log(AG_LOG_WARN, "policy_source", "error=\"stop: %s\"", strerror(errno));
	if (g->reading)
		ag_ring_cancel_fd(&l->ring, g->ready_fd);
}

void ag_policy_git_fini(struct ag_loop *l)
{
	struct ag_policy_git *g = l->d->policy_git;

	if (!g)
		return;
	if (g->started)
		pthread_join(g->thread, NULL);
	for (int *fd = &g->ready_fd; fd <= &g->stop_fd; fd++)
		if (*fd >= 0)
			close(*fd);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
	l->d->policy_git = NULL;
}

json_t *ag_policy_git_pull(struct ag_daemon *d)
{
	struct ag_policy_git *g = d->policy_git;
	uint64_t one = 1, n;

	if (!g || !g->started)
		return json_pack("{s:b,s:s}", "ok", 0, "error",
				 g ? "the policy source is not running (see the daemon's log)"
				   : "no \"policy_source\" in the configuration");
	pthread_mutex_lock(&g->mu);
	n = ++g->asked;
	pthread_mutex_unlock(&g->mu);
	if (write(g->wake_fd, &one, sizeof(one)) != sizeof(one))
		return json_pack("{s:b,s:s}", "ok", 0, "error", strerror(errno));
	return json_pack("{s:b,s:I}", "ok", 1, "pull", (json_int_t)n);
}

static json_t *outcome_json(const struct outcome *r)
{
	if (!r->trigger)
		return json_null();
	return json_pack("{s:b,s:s,s:s,s:s?,s:s?,s:I}", "ok",
			 r->stage == GS_OK || r->stage == GS_UNCHANGED, "trigger", r->trigger,
			 "stage", stage_names[r->stage], "commit", r->commit[0] ? r->commit : NULL,
			 "error", r->error[0] ? r->error : NULL, "at", (json_int_t)r->at);
}

json_t *ag_policy_git_status(struct ag_daemon *d)
{
	struct ag_policy_git *g = d->policy_git;
	const char *commit = d->decider ? d->decider->commit : "";
	uint64_t done;

	if (!g)
		return NULL;
	pthread_mutex_lock(&g->mu);
	done = g->done;
	pthread_mutex_unlock(&g->mu);
	return json_pack("{s:s,s:s,s:s?,s:i,s:s?,s:b,s:I,s:I,s:o,s:o}", "url", g->conf->url, "ref",
			 g->conf->ref, "path", g->conf->path[0] ? g->conf->path : NULL,
			 "interval_s", (int)g->conf->interval_s, "commit",
			 commit[0] ? commit : NULL, "running", g->started, "polls",
			 (json_int_t)g->polls, "pulls_done", (json_int_t)done, "last",
			 outcome_json(&g->last), "last_refusal", outcome_json(&g->refused));
}
