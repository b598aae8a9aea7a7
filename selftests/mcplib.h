/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the MCP end-to-end tests (test_mcp.c, test_mcp_policy.c): a
 * tool server played by a thread of the test (so every byte that reaches
 * it can be checked), an agent process in the instance's agent cgroup,
 * and a daemon whose tool server "t" is that thread.
 */
#ifndef AG_SELFTEST_MCPLIB_H
#define AG_SELFTEST_MCPLIB_H

#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "testlib.h"

#define MAX_SEEN 16
#define BIG 65536
#define MAX_IDS 4096

enum reply_kind {
	REPLY_JSON,	/* answers each JSON-RPC request of the body */
	REPLY_SSE_SLOW, /* progress event, waits for the agent to see it, result */
	REPLY_SSE_SPLIT, /* the answer as one SSE event sent in two pieces, then EOF */
};

struct seen {
	char head[4096];
	char body[8192];
	size_t body_len; /* all of it, though body holds only the start */
	unsigned int segs; /* TCP segments with data it came in (plain TCP only) */
};

#define TOOL_BODY_MAX (256 * 1024) /* a request body the tool server takes whole */

struct tool {
	int lfd;
	uint16_t port;
	pthread_t th;
	volatile bool stop;
	enum reply_kind kind;
	pthread_mutex_t lock;
	int nseen;
	struct seen seen[MAX_SEEN];
	/* REPLY_SSE_SLOW: set by the agent child (shared memory) once it has
	 * read the progress event. */
	volatile int *progress_seen;
	int progress_waited_ms;
	/* Set before the first connection: the tool server speaks TLS. */
	SSL_CTX *tls;
	int tls_failures; /* handshakes the gateway broke off */
	/* Connections open now, and accepted in all (each has a thread). */
	int conns_open, conns_total;
	/* The "result" of tools/list answers (JSON text); NULL: echo, secret, add. */
	const char *list_result;
	/* The "result" of every answer but tools/list (JSON text); NULL: "served". */
	const char *call_result;
	size_t sse_split; /* REPLY_SSE_SPLIT: bytes of the message in the first piece */
	/* A request whose head contains this (a revoked token) gets a 401. */
	char reject_auth[4096];
	/* The JSON-RPC id of every request that arrived (beyond MAX_SEEN too). */
	int ids[MAX_IDS];
	int nids;
	/* Each connection ends after its first answer, and a GET (a client's
	 * standalone SSE stream) gets 405: clients that open several
	 * connections at once (the SDK's) never wait behind one another. */
	bool one_shot;
	/* JSON answers say "Connection: close", and the connection ends. */
	bool conn_close;
	/* Bytes the server sends after each answer: in the same send, or (smuggle_late)
	 * 100 ms later, when the connection idles: a second answer nobody asked for. */
	const char *smuggle;
	bool smuggle_late;
	/* Set: connections waiting for a request end (a server's keep-alive timeout). */
	volatile bool close_idle;
};

struct exchange {
	char addr[INET6_ADDRSTRLEN]; /* where the agent connects; "" : 127.0.0.1 */
	uint16_t port;		     /* the tool server's original port, as the agent knows it */
	char request[8192];	     /* sent as is */
	const char *big;	     /* big_len bytes sent instead of request when set */
	size_t big_len;
	char response[BIG]; /* everything read until EOF */
	int len;
	int err;
	volatile int *progress_seen; /* set once "notifications/progress" arrived */
};

struct mcp_env {
	struct tdaemon d;
	struct tool tool;
	uint16_t orig_port; /* where the agent believes the tool server is */
	const char *server_json; /* more members of tool server "t", or NULL */
	char agent_cg[PATH_MAX];
};

int tool_start(struct tool *t, enum reply_kind kind);
void tool_stop(struct tool *t);
/* The bearer token of the tool server's nth request ("" if none). */
void tool_seen_bearer(struct tool *t, int nth, char *out, size_t len);
/* Requests the tool server has received so far. */
int tool_nseen(struct tool *t);
bool send_all(int fd, const char *buf, size_t len);

/* Runs in the agent's cgroup: sends x->request, reads until EOF. */
int agent_exchange(void *arg);
/* An MCP POST as an agent sends it, ending the connection after the answer. */
void post(struct exchange *x, uint16_t port, const char *extra_headers, const char *body);

/*
 * The tool server is "t", known to the agent as 127.0.0.1:orig_port
 * (nothing listens there: only the redirect makes it reachable); agent
 * "a" is agent_json.  more_json: more top-level members of agentgate.json.
 */
/* The same with TDAEMON_* flags for the daemon. */
int env_start_flags(struct mcp_env *e, const char *suffix, enum reply_kind kind,
		    const char *agent_json, const char *more_json, unsigned int flags);
int env_start_with(struct mcp_env *e, const char *suffix, enum reply_kind kind,
		   const char *agent_json, const char *more_json);
int env_start(struct mcp_env *e, const char *suffix, enum reply_kind kind, const char *agent_json);
void env_stop(struct mcp_env *e);
/* A tools/call of tool with no arguments, answered into x->response. */
void call_tool(struct mcp_env *e, struct exchange *x, const char *tool, int id);
/* x sent and answered by an agent process in the cgroup of agent "a". */
struct exchange *run_agent(struct mcp_env *e, struct exchange *x);

#endif
