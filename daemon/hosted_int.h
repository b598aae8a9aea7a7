/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hosted stdio servers, private to daemon/hosted*.c: the keeper process
 * (hosted.c), its stdio children (hosted_child.c) and the Streamable HTTP
 * bridge in front of them (hosted_http.c).  Everything here lives in the
 * keeper, never in agentgated itself.
 */
#ifndef AG_HOSTED_INT_H
#define AG_HOSTED_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"
#include "spawn.h"

#define HOSTED_LINE_MAX (4u << 20)  /* one JSON-RPC message either way */
#define HOSTED_INFLIGHT 64	    /* calls waiting on one child */
#define HOSTED_CALL_MS (120 * 1000) /* a call's answer, then a JSON-RPC error */
#define HOSTED_WRITE_MS (10 * 1000) /* a child that reads no stdin for this long is killed */
#define HOSTED_CONNS 64		    /* bridge connections per server */
#define HOSTED_BACKOFF_MIN_MS 500   /* after the first crash; doubled per crash */
#define HOSTED_BACKOFF_MAX_MS 30000
#define HOSTED_STABLE_MS 60000 /* a child that lived this long resets the backoff */
#define HOSTED_SID_LEN 32      /* hex of Mcp-Session-Id */

/* One call's slot: FREE -> WAIT (id sent) -> DONE (answer read) -> FREE. */
struct hosted_pending {
	uint64_t id;
	int state; /* 0 free, 1 waiting, 2 answered */
	json_t *resp;
};

/*
 * One stdio process.  Its references: the slot that serves it (shared or a
 * session), each call in flight, and its two reader threads; the last put
 * frees it.  The stdout reader owns its end: it kills the cgroup, reaps the
 * process and releases its uid, in that order (hosted_child.c).
 */
struct hosted_child {
	struct hosted_srv *srv;
	pid_t pid;
	int in_fd, out_fd, err_fd;
	char cg[PATH_MAX];
	struct ag_user u;
	uint64_t started_ns;
	pthread_mutex_t lock; /* refs, dead, pend */
	pthread_cond_t cond;
	pthread_mutex_t wlock; /* one line at a time into stdin */
	int refs;
	bool dead;
	bool stopping; /* killed by the bridge: not a crash */
	uint64_t next_id;
	struct hosted_pending pend[HOSTED_INFLIGHT];
};

struct hosted_session {
	char sid[HOSTED_SID_LEN + 1]; /* "": free */
	struct hosted_child *c;
};

/* The daemon's side of the keeper (struct ag_daemon.hosted). */
struct ag_hosted {
	pid_t pid;
	int life_fd; /* the write end: open while the daemon lives */
	struct hosted_srv *srv;
	int n;
};

struct hosted_srv {
	const struct ag_server_conf *conf;
	const struct ag_hosted_conf *h;
	char cg_parent[PATH_MAX]; /* <instance>/agents/<agent> */
	int lfd;
	uint32_t uid_min, uid_max; /* agent_uids, for a uid of the child's own */
	pthread_mutex_t lock;	   /* everything below */
	struct hosted_child *shared;
	json_t *init; /* shared: the first initialize, replayed to a restarted child */
	struct hosted_session sessions[AG_HOSTED_MAX_SESSIONS];
	uint64_t seq;
	uint32_t crashes;
	uint64_t not_before_ns; /* restart backoff */
	int nr_conns;
	bool closing; /* the keeper exits: nothing more starts */
};

/* hosted_child.c */
/* A new child for s, its one reference the caller's; under s->lock. */
int hosted_child_start(struct hosted_srv *s, struct hosted_child **out, char *why, size_t cap);
/* Another reference to c unless it is dead. */
bool hosted_child_ref(struct hosted_child *c);
void hosted_child_put(struct hosted_child *c);
void hosted_child_stop(struct hosted_child *c);
/* A request: msg's id replaced on the way in, restored on the way out. */
json_t *hosted_call(struct hosted_child *c, json_t *msg, char *why, size_t cap);
/* A notification or a response: written, nothing awaited. */
int hosted_send(struct hosted_child *c, json_t *msg, char *why, size_t cap);
/* Kills what runs in cg and removes it, waiting up to 1 s for the reaps. */
void hosted_cgroup_remove(const char *cg, const char *server);
/* Removes the cgroups of s's children (all of them: a keeper's exit, a daemon's start). */
void hosted_sweep(const char *cg_parent, const char *server);

/* hosted_http.c: serves one bridge connection, then closes fd. */
void hosted_serve(struct hosted_srv *s, int fd);

#endif
