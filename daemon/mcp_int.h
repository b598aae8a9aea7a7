/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The MCP path's private interface, shared by its files (mcp.h is the
 * public one):
 *
 *	mcp_conn.c	connection life cycle and the request/response state
 *			machine (its diagram and ordering hazards are there)
 *	mcp_head.c	a request head: checks applied, upstream target chosen
 *	mcp_verdict.c	a POST body: every message decided, answered or kept;
 *			escalated calls held in the approval registry
 *	mcp_upstream.c	upstream connections and their per-server pools,
 *			forward, credentials
 *	mcp_response.c	response modes: stream, buffer, SSE
 *	mcp_govern.c	what the gateway reads in a response: list filtering,
 *			output rules
 *	mcp_legacy.c	legacy (2024-11-05) HTTP+SSE sessions
 *	mcp_audit.c	the JSON of every audit record the MCP path writes
 *	mcp_hold.c	calls held until their decision records are written
 *			(sync: durable), strict's answers until durable
 *	http_svc.c	HTTP services: the hooks that take JSON-RPC's places
 *			for a plain REST API (http_svc.h)
 *
 * Pure request checks are lib/mcp_check.c and lib/mcp_request.c; the
 * approval registry is approvals.c, the eventfd wait queues waitq.c.
 */
#ifndef AG_MCP_INT_H
#define AG_MCP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "approvals.h"
#include "buf.h"
#include "config.h"
#include "decide.h"
#include "delegation.h"
#include "fair.h"
#include "http.h"
#include "http_route.h"
#include "jsonrpc.h"
#include "loop.h"
#include "mcp.h"
#include "mcp_request.h"
#include "outrules.h"
#include "redact.h"
#include "sse.h"
#include "stream.h"
#include "tls.h"
#include "waitq.h"

#define HEAD_MAX (40 * 1024)
#define SSE_EVENT_MAX (4 * 1024 * 1024)
#define SESSION_ID_MAX 128
#define ENDPOINT_MAX 512 /* a legacy session's message endpoint */
#define MAX_PENDING 1024 /* answers a connection or legacy session may be owed */

enum mc_state {
	MC_REQUEST,
	MC_APPROVAL,   /* an escalated call, waiting for agentgatectl approve/deny */
	MC_AUDIT_WAIT, /* decided and allowed, held until its record is written (sync: durable) */
	MC_CRED_WAIT,  /* held until the tool server's first OAuth token arrives */
	MC_RESPONSE,
	MC_CLOSING,
};

enum resp_mode {
	RM_STREAM,
	RM_SSE,
	RM_BUFFER,
};

struct session;

/*
 * What a request in progress holds, from its first byte to the end of its
 * response: NULL between requests, so an idle connection keeps none of it
 * (mcp_req_begin, mcp_req_next).
 */
struct mcp_req {
	struct ag_http_parser req, resp;
	bool resp_init;
	bool up_reuse; /* the response ended, keeping its connection alive */
	/* The request being handled (reset by mcp_request_reset). */
	struct {
		uint64_t ns;
		enum ag_mcp_verb verb;
		char *fwd_target; /* what the gateway sends upstream: the endpoint's */
		bool keep_alive, v2026;
		char host[AG_HOST_LEN]; /* Host, for policies (context.request) */
		char version[32];	/* MCP-Protocol-Version, likewise */
		struct ag_buf body;	/* as the agent sent it, bounded by the parser */
		char *fwd_body; /* the canonical body: the allowed messages, re-serialised */
		size_t fwd_len;
		json_t *extra;	  /* the gateway's own answers to merge in, or NULL */
		bool extra_batch; /* the request was a batch: answer with an array */
		json_t *pending;  /* the answers owed (see remember_request) */
		char session_id[SESSION_ID_MAX];
		char tool[256]; /* the tool of a lone tools/call, for minted assertions */
		json_t *id;	/* the id of a lone request, for the gateway's own errors */
	} call;
	/* Its decision records: the call waits for them (MC_AUDIT_WAIT). */
	struct {
		uint64_t seq;	  /* the last decision record of the request, +1 (0: none) */
		bool lost;	  /* a decision record could not be written */
		uint64_t held_ns; /* when MC_AUDIT_WAIT began (metrics) */
		bool result_held; /* strict: the answer waits in audit_q (mcp_result_hold) */
	} audit;
	/* The credential for the request being forwarded (creds.h): wiped once
	 * it is in the upstream's send queue. */
	struct {
		bool ready;
		const char *name;
		char *value;
		size_t len;
		uint64_t gen;
	} cred;
	/* An escalated call: held in MC_APPROVAL until a human decides. */
	struct {
		char tool[256];
		char reason[256];
		bool waiting; /* the lone request (call.id) waits for a human */
		struct ag_approval *approval;
	} esc;
	/* A legacy (mcp_legacy.c) POST: its session's id, from the query; the
	 * session itself only while the POST is decided: it goes with its GET
	 * stream, which may close any time. */
	struct {
		char sid[SESSION_ID_MAX];
		struct session *post;
	} legacy;
	/* The response (mcp_response.c). */
	struct {
		enum resp_mode mode;
		int status;
		bool chunked_down;
		bool head_sent;
		struct ag_buf body; /* RM_BUFFER: the whole body */
		struct ag_sse_parser sse;
		bool sse_init;
		struct ag_buf held; /* raw bytes of an SSE event not yet complete */
	} reply;
	/* An HTTP service's request (http_svc.h), reset with the call. */
	struct {
		struct ag_route_req req; /* its route and canonical target */
		bool owed;		 /* forwarded: its result record is owed */
	} http;
};

struct mcp_conn {
	struct ag_stream_owner own;
	struct ag_list node;   /* in mcp->conns */
	struct ag_watch watch; /* header and idle timeouts, until MC_CLOSING */
	bool head_started;     /* a byte of the next request head came */
	struct ag_loop *l;
	enum mc_state state;
	struct ag_stream a;
	/* The upstream carrying the request (&mcp_up.s): taken from its tool
	 * server's pool or connected when the request is forwarded, given
	 * back when its response ends (mcp_upstream.c). */
	struct ag_stream *u;
	bool up_ready;	    /* u connected (and TLS up) */
	bool closing_after; /* end the agent connection after this response */
	struct mcp_req *r;  /* the request in progress, NULL between requests */
	const struct ag_server_conf *srv;
	const struct ag_agent_conf *ac;
	struct ag_origin o;
	char agent[AG_NAME_LEN];
	struct ag_delegation *dg; /* a sub-agent's chain (admit.h), NULL for none */
	bool agent_tls;
	uint64_t start_ns;
	unsigned int requests;
	struct ag_list wait; /* in audit_turn, audit_q (MC_AUDIT_WAIT) or cred_q (MC_CRED_WAIT) */
	struct {
		struct session *stream; /* the legacy session whose GET stream this is */
	} legacy;
	/* What the connection log line says. */
	const char *result;
	char error[192];
	/* An outside agent's connection (inbound.h): who its token names; NULL: a local agent. */
	struct ag_inbound_id *in;
};

/* A legacy (2024-11-05) HTTP+SSE session: the POSTs of a session are
 * answered on its GET stream, so denials and list filtering reach there. */
struct session {
	struct ag_list node;
	char id[SESSION_ID_MAX]; /* decoded, as the server reads it */
	const struct ag_server_conf *srv;
	char agent[AG_NAME_LEN]; /* whose stream: no other agent posts into it */
	/* The message endpoint the server announced (origin-form): what every
	 * POST of the session is sent to, whatever target the agent used. */
	char target[ENDPOINT_MAX];
	size_t path_len;
	struct mcp_conn *stream;
	json_t *pending; /* the answers owed on the stream (see remember_request) */
	json_t *inject;	 /* messages waiting for an event boundary */
};

struct ag_mcp {
	struct ag_loop *l;
	struct ag_list audit_turn;     /* calls whose decision record the turn's end writes */
	struct ag_waitq audit_q;       /* calls waiting for their decision record (MC_AUDIT_WAIT) */
	struct ag_approvals approvals; /* calls held for a human (MC_APPROVAL) */
	struct ag_list conns;
	struct ag_list sessions;
	unsigned int active;
	struct ag_tls_ca *ca;
	SSL_CTX *server_ctx;
	SSL_CTX **client_ctx; /* per tool server with an https upstream */
	struct mcp_pool *pools;	     /* per tool server: its idle upstreams */
	unsigned int upstreams_open; /* upstream connections, in use, idle or closing */
	struct ag_creds *creds;
	struct ag_waitq cred_q; /* calls waiting for an OAuth token (MC_CRED_WAIT) */
	struct ag_outrules *outrules;
	char head[HEAD_MAX];
};

static inline struct ag_mcp *mcp_of(const struct mcp_conn *c)
{
	return c->l->mcp;
}

/* mcp_conn.c */
void mcp_request_reset(struct mcp_conn *c);
void mcp_conn_close(struct mcp_conn *c, const char *result, const char *why);
/* A response of the gateway's own: JSON body (or none), with a length. */
int mcp_send_local(struct mcp_conn *c, int status, const json_t *body, bool keep_alive);
/* The same with extra header lines (each ending in CRLF; NULL: none). */
int mcp_send_local_hdr(struct mcp_conn *c, int status, const char *extra, const json_t *body,
		       bool keep_alive);
/* Answers status (extra header lines, body) and ends the connection after it. */
void mcp_answer_close(struct mcp_conn *c, int status, const char *extra, const json_t *body);
/* The agent's request cannot be served: answer and end the connection. */
void mcp_refuse(struct mcp_conn *c, int status, int code, const char *msg);
/* The same, and the connection's record says why (result "refused"). */
void mcp_refuse_request(struct mcp_conn *c, int status, int code, const char *msg);
/* The session policies count calls in. */
const char *mcp_policy_session(const struct mcp_conn *c);
/* What decide.h is told of the request being handled. */
struct ag_decide_ctx mcp_decide_ctx(const struct mcp_conn *c);
/* mcp_hold.c: holds an allowed call until its decision records are
 * written (sync: durable); true if held. */
bool mcp_audit_hold(struct mcp_conn *c);
/* Strict durability: holds the answer until the decision records are durable; true if held. */
bool mcp_result_hold(struct mcp_conn *c);
/* The writer made progress, failed or recovered (audit_q's waker). */
void mcp_audit_woken(struct ag_waitq *q);
/* The response ended (or the gateway answered): on to the next request. */
void mcp_req_next(struct mcp_conn *c);

/* mcp_head.c: checks a request head before any of its body is read. */
bool mcp_request_head(struct mcp_conn *c);

/* mcp_verdict.c */
int mcp_list_append(json_t **list, json_t *v);
json_t *mcp_take_pending(struct mcp_conn *c, json_t *id);
json_t *mcp_peek_pending(struct mcp_conn *c, json_t *id);
bool mcp_owes_answer(const struct mcp_conn *c);
void mcp_approval_cancel(struct mcp_conn *c);
/* A POST body: decide each message, then forward, answer, or both. */
void mcp_request_decide(struct mcp_conn *c);

/* mcp_upstream.c */
struct mcp_pool;
int mcp_pools_new(struct ag_mcp *mcp, int nr_servers);
/* Closes the idle upstreams: the loop is stopping. */
void mcp_pools_stop(struct ag_mcp *mcp);
/* The request is over (done: its response ended): its upstream goes back
 * to the pool when it can carry another, else it is closed. */
void mcp_upstream_done(struct mcp_conn *c, bool done);
void mcp_cred_wipe(struct mcp_conn *c);
void mcp_no_delay(int fd);
void mcp_request_forward(struct mcp_conn *c);
void mcp_cred_woken(struct ag_waitq *q);
void mcp_credential_refused(struct mcp_conn *c);

/* mcp_response.c */
int mcp_send_event(struct mcp_conn *c, const char *id, size_t id_len, json_t *msg);
void mcp_response_fail(struct mcp_conn *c, const char *why);
/* MC_RESPONSE: parses the upstream's bytes and passes them on. */
void mcp_resp_parse(struct mcp_conn *c);

/* mcp_govern.c: looks at each JSON-RPC message of a response; 1 if one
 * was rewritten. */
int mcp_inspect_messages(struct mcp_conn *c, json_t *root);
/*
 * The same from a response body's bytes: 0 when its messages were governed
 * from the scan alone (the bytes pass as they are, *root NULL), else as
 * mcp_inspect_messages on the tree left in *root (want_tree: always);
 * -EBADMSG for a body that is not one JSON value.
 */
int mcp_inspect_body(struct mcp_conn *c, const void *data, size_t len, bool want_tree,
		     json_t **root);

/* mcp_legacy.c */
void mcp_session_drop(struct session *s);
struct session *mcp_legacy_find(struct mcp_conn *c, const char *sid);
int mcp_legacy_answer(struct mcp_conn *c);
int mcp_inject_pending(struct mcp_conn *c);
void mcp_register_session(struct mcp_conn *c, const char *data, size_t len);

/* mcp_audit.c */
void mcp_audit_connect(struct mcp_conn *c, const char *dst, double ms);
void mcp_audit_decision(struct mcp_conn *c, const struct ag_jsonrpc_msg *m,
			const struct ag_decision *dec);
void mcp_audit_result(struct mcp_conn *c, json_t *msg, const char *tool,
		      const struct ag_redact_report *rep);
void mcp_audit_cred_refused(struct mcp_conn *c);
void mcp_audit_approval(struct mcp_conn *c, uint64_t id, bool allow, const char *by,
			const char *why);
void mcp_audit_cred_reload(struct ag_loop *l, int ret, const char *trigger,
			   const struct ag_err *err);

#endif
