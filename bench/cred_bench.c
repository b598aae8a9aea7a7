// SPDX-License-Identifier: GPL-2.0
/*
 * Credential injection cost per call: what the gateway adds to a forwarded
 * request to produce the credential's header (lib/creds.h
 * ag_creds_header, as the MCP path calls it for every request), side by
 * side for a static bearer secret, a cached OAuth 2.0 token (its token
 * endpoint a thread of this bench, so the cache is filled once and then
 * only read, as between refreshes) and assertions minted per call with
 * EdDSA and ES256.  Median and p99 of single calls, and calls/s over the
 * run (CPU time).  The remaining cost of a forwarded request (the header
 * going into the serialised head) is the same for every type.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>

#include "config.h"
#include "creds.h"

#define CALLS 20000

static volatile int stop;

/* A token endpoint: every POST gets a one-hour bearer token. */
static void *token_endpoint(void *arg)
{
	static const char resp[] =
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 123\r\n"
		"Connection: close\r\n\r\n"
		"{\"access_token\":\"eyJhbGciOiJub25lIn0.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJlLXBhZGRpbmc\","
		"\"expires_in\":3600,\"token_type\":\"Bearer\"}";
	int lfd = *(int *)arg;

	while (!stop) {
		char buf[4096];
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		(void)!read(fd, buf, sizeof(buf));
		(void)!write(fd, resp, sizeof(resp) - 1);
		close(fd);
	}
	return NULL;
}

static int listen_any(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len))
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void measure(struct ag_creds *cr, const struct ag_server_conf *s, const char *label)
{
	static uint64_t t[CALLS];
	const char *chain[] = { "orchestrator", "worker" };
	struct ag_cred_call call = { .operator = "alice",
				     .chain = chain,
				     .chain_len = 2,
				     .session = "s-1",
				     .tool = "create_expense_report" };
	uint64_t cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), cpu;
	size_t vlen = 0;

	for (int i = 0; i < CALLS; i++) {
		uint64_t t0 = now_ns(CLOCK_MONOTONIC), gen;
		const char *name;
		char *value;
		struct ag_err err;

		if (ag_creds_header(cr, s, &call, &name, &value, &vlen, &gen, &err)) {
			fprintf(stderr, "%s: %s\n", label, err.msg);
			exit(1);
		}
		OPENSSL_cleanse(value, vlen);
		free(value);
		t[i] = now_ns(CLOCK_MONOTONIC) - t0;
	}
	cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	qsort(t, CALLS, sizeof(t[0]), cmp);
	printf("%-22s %9.2f %9.2f %12.0f %8zu\n", label, t[CALLS / 2] / 1000.0,
	       t[CALLS * 99 / 100] / 1000.0, CALLS / (cpu / 1e9), vlen);
}

static int write_secret(const char *dir, const char *name, const char *value, char *path,
			size_t len)
{
	int fd;

	snprintf(path, len, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		return -1;
	return close(fd);
}

int main(void)
{
	char dir[] = "/tmp/agt-cred-bench.XXXXXX", conf_path[PATH_MAX], bearer[PATH_MAX],
	     client[PATH_MAX], cmd[PATH_MAX + 16];
	struct ag_conf conf = { 0 };
	struct ag_creds *cr = NULL;
	struct ag_err err;
	pthread_t th;
	uint16_t port;
	int lfd, efd = eventfd(0, EFD_CLOEXEC), ret = 1;
	uint64_t v;
	FILE *f;

	if (geteuid() != 0) {
		fprintf(stderr, "cred_bench: run as root (secret files must be root's)\n");
		return 2;
	}
	if (!mkdtemp(dir) || (lfd = listen_any(&port)) < 0 || efd < 0 ||
	    write_secret(dir, "bearer", "static-bench-token-0123456789abcdef", bearer,
			 sizeof(bearer)) ||
	    write_secret(dir, "client", "client-secret", client, sizeof(client))) {
		perror("cred_bench: setup");
		return 1;
	}
	pthread_create(&th, NULL, token_endpoint, &lfd);
	snprintf(conf_path, sizeof(conf_path), "%s/agentgate.json", dir);
	f = fopen(conf_path, "w");
	if (!f)
		goto out;
	fprintf(f,
		"{\"tool_servers\": ["
		"{\"name\": \"static\", \"upstream\": \"http://127.0.0.1:9\", \"match\": "
		"{\"addresses\": [\"127.0.0.1\"], \"ports\": [1001]}, \"credential\": {\"type\": \"bearer\", \"secret_file\": "
		"\"%s\"}},"
		"{\"name\": \"oauth\", \"upstream\": \"http://127.0.0.1:9\", \"match\": "
		"{\"addresses\": [\"127.0.0.1\"], \"ports\": [1002]}, \"credential\": {\"type\": \"oauth2_client_credentials\", "
		"\"token_url\": \"http://127.0.0.1:%u/token\", \"client_id\": \"bench\", "
		"\"client_secret_file\": \"%s\", \"resource\": \"https://tools.example/mcp\"}},"
		"{\"name\": \"eddsa\", \"upstream\": \"http://127.0.0.1:9\", \"match\": "
		"{\"addresses\": [\"127.0.0.1\"], \"ports\": [1003]}, \"credential\": {\"type\": \"assertion\", \"alg\": \"EdDSA\"}},"
		"{\"name\": \"es256\", \"upstream\": \"http://127.0.0.1:9\", \"match\": "
		"{\"addresses\": [\"127.0.0.1\"], \"ports\": [1004]}, \"credential\": {\"type\": \"assertion\", \"alg\": "
		"\"ES256\"}}]}\n",
		bearer, port, client);
	fclose(f);
	if (ag_conf_load(&conf, conf_path, &err) ||
	    ag_creds_new(&conf, dir, "bench", efd, &cr, &err)) {
		fprintf(stderr, "cred_bench: %s\n", err.msg);
		goto out;
	}
	/* The first token, so the OAuth rows read a warm cache. */
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		goto out;
	printf("credential injection, %d calls each: microseconds per call (median, p99), calls/s "
	       "of one core, header value bytes\n",
	       CALLS);
	printf("%-22s %9s %9s %12s %8s\n", "type", "p50_us", "p99_us", "calls/s", "bytes");
	measure(cr, &conf.servers[0], "bearer (static)");
	measure(cr, &conf.servers[1], "oauth2 (cached token)");
	measure(cr, &conf.servers[2], "assertion EdDSA");
	measure(cr, &conf.servers[3], "assertion ES256");
	ret = 0;
out:
	ag_creds_free(cr);
	ag_conf_free(&conf);
	stop = 1;
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(th, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ret |= system(cmd) != 0;
	return ret;
}
