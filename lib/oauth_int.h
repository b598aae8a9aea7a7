/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What lib/oauth.c (the token protocol and its thread) and lib/oauth_conn.c
 * (the thread's blocking connection, plain or TLS) share.
 */
#ifndef AG_OAUTH_INT_H
#define AG_OAUTH_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "oauth.h"
#include "tls.h"

#define URL_MAX 2048
#define PARAM_MAX 2048 /* client_id, scope, resource, audience */
#define CLIENT_SECRET_MAX 4096
#define REQ_MAX (64 * 1024)
#define RESP_MAX (64 * 1024) /* response body, NUL included */
#define IO_CHUNK (16 * 1024)
#define CRED_MAX (3 * PARAM_MAX + 1 + 3 * CLIENT_SECRET_MAX) /* urlenc(id) ":" urlenc(secret) */
#define MAX_ADDRS 8
#define SERVER_TEXT_MAX 160 /* of the server's error or error_description in a message */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define EXPIRES_IN_MAX (10 * 365 * 86400) /* seconds; beyond is a broken server */
/* Refresh no later than this before a token stops being used, when the lifetime allows. */
#define REFRESH_MARGIN_NS (10 * NS_PER_S)

struct ag_oauth {
	/* Set by start, read-only afterwards. */
	char url[URL_MAX];	    /* as configured, for messages */
	char host[AG_TLS_NAME_MAX]; /* without brackets: TLS name to verify */
	char host_hdr[AG_TLS_NAME_MAX + 16];
	char target[URL_MAX]; /* path and query */
	bool https;
	SSL_CTX *ctx;
	struct sockaddr_storage addrs[MAX_ADDRS];
	socklen_t addr_lens[MAX_ADDRS];
	int naddrs;
	char *form; /* the request body: no secret in it */
	size_t form_len;
	const char *client_id;
	const struct ag_secret *secret;
	uint32_t mark;
	unsigned int timeout_ms;
	int notify_fd;
	int wake_fd;
	pthread_t thread;
	bool started;

	/* The thread's alone. */
	uint64_t rng;
	bool noted_no_expiry;

	pthread_mutex_t lock;
	/* Under lock. */
	bool stopping;
	bool last_failed;      /* the last fetch that ended failed */
	size_t token_len;      /* 0: none cached */
	uint64_t usable_until; /* CLOCK_MONOTONIC ns */
	uint64_t generation;   /* of the cached token; 0 before the first */
	uint64_t invalidated;  /* the newest generation invalidated */
	uint64_t next_fetch;   /* CLOCK_MONOTONIC ns; 0: now */
	uint64_t requests, failures;
	char last_error[sizeof(((struct ag_err *)0)->msg)];

	/*
	 * Everything a token or the client secret passes through; the whole
	 * object is mapped out of core dumps.  token is under lock, the rest
	 * the thread's, wiped after each request.
	 */
	char token[AG_OAUTH_TOKEN_MAX + 1];
	char fresh[AG_OAUTH_TOKEN_MAX + 1]; /* the token just received */
	unsigned char cred[CRED_MAX];
	char req[REQ_MAX];
	char body[RESP_MAX];
	char io[IO_CHUNK];
	char raw[IO_CHUNK]; /* ciphertext under TLS */
};

/* One request's connection. */
struct conn {
	struct ag_oauth *o;
	int fd;
	struct ag_tls *tls;
	uint64_t deadline;
	bool tls_closed; /* close_notify received */
};

/*
 * The endpoint url for a new o: parsed, resolved, the TLS context made
 * (ca_file NULL: the system store), the wake eventfd open; no thread.
 * What ag_oauth_start() and the JWKS fetch (oauth_rs_jwks.c) share.
 */
int oauth_endpoint_new(const char *url, const char *ca_file, uint32_t mark,
		       unsigned int timeout_ms, struct ag_oauth **out, struct ag_err *err);
void oauth_free(struct ag_oauth *o);
/* GET o's URL: *status, and the body in o->body (NUL-terminated, *body_len bytes). */
int oauth_get(struct ag_oauth *o, int *status, size_t *body_len, struct ag_err *err);
/* Rings the eventfd fd (if >= 0): "look again". */
void oauth_ring(int fd);
/*
 * Sleeps until deadline or the wake eventfd rings; fd >= 0: or until fd
 * has events.  1: fd is ready; 0: deadline or woken (look again).
 */
int oauth_wait_for(struct ag_oauth *o, int fd, short events, uint64_t deadline);
/* Connects c to the first of o's addresses that answers before c->deadline. */
int oauth_conn_open(struct conn *c, struct ag_err *err);
/* The TLS handshake over c, verifying o->host. */
int oauth_conn_tls(struct conn *c, struct ag_err *err);
int oauth_conn_send(struct conn *c, const void *buf, size_t len, struct ag_err *err);
ssize_t oauth_conn_recv(struct conn *c, void *buf, size_t cap, struct ag_err *err);
void oauth_conn_close(struct conn *c);

#endif
