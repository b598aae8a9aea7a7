// SPDX-License-Identifier: GPL-2.0
/* The authorization server of the credential tests (see idplib.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "idplib.h"
#include "test.h"
#include "testlib.h"

bool idp_installed(char *dir, size_t len)
{
	char p[PATH_MAX + 64], *out = NULL;
	struct stat st;
	int r;

	snprintf(dir, len, "%s/e2e", testlib_build_dir());
	snprintf(p, sizeof(p), "%s/node_modules/oidc-provider", dir);
	if (stat(p, &st))
		return false;
	r = run_capture(&out, "command -v node");
	free(out);
	return r == 0;
}

/*
 * Starts oidc_server.mjs (over TLS with tls_dir's cert.pem and key.pem) and
 * reads its {"port":N,...} line; it dies with us.
 */
int idp_start(struct idp *s, const char *e2e_dir, const char *tls_dir)
{
	return idp_start_args(s, e2e_dir, tls_dir, NULL);
}

int idp_start_args(struct idp *s, const char *e2e_dir, const char *tls_dir,
		   const char *const *extra)
{
	char script[PATH_MAX], cert[PATH_MAX + 16], key[PATH_MAX + 16];
	char *argv[32] = {
		"node", script, "--client-id", IDP_CLIENT_ID, "--client-secret", IDP_CLIENT_SECRET
	};
	int argc = 6;

	snprintf(script, sizeof(script), "%s/selftests/e2e/oidc_server.mjs", testlib_src_dir());
	if (tls_dir) {
		snprintf(cert, sizeof(cert), "%s/cert.pem", tls_dir);
		snprintf(key, sizeof(key), "%s/key.pem", tls_dir);
		argv[argc++] = "--tls-cert";
		argv[argc++] = cert;
		argv[argc++] = "--tls-key";
		argv[argc++] = key;
	}
	for (int i = 0; extra && extra[i] && argc < (int)AG_ARRAY_SIZE(argv) - 1; i++)
		argv[argc++] = (char *)extra[i];
	s->port = node_peer_start(argv, e2e_dir, &s->pid);
	snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d/token", tls_dir ? "https" : "http",
		 s->port);
	return s->port > 0 ? 0 : -ETIMEDOUT;
}

void idp_stop(struct idp *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = -1;
}

/* GET path on the server's control endpoints; the JSON body, or NULL. */
json_t *idp_get(struct idp *s, const char *path)
{
	struct timeval tv = { .tv_sec = 5 };
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)s->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char buf[4096];
	size_t len = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	json_t *j = NULL;
	char *body;

	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write(fd, buf, (size_t)n) != n)
		goto out;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (body)
		j = json_loads(body + 4, 0, NULL);
out:
	close(fd);
	return j;
}

int idp_token_requests(struct idp *s)
{
	json_t *j = idp_get(s, "/count");
	int n = j ? (int)json_integer_value(json_object_get(j, "token_requests")) : -1;

	json_decref(j);
	return n;
}

bool idp_set(struct idp *s, const char *path)
{
	json_t *j = idp_get(s, path);

	json_decref(j);
	return j != NULL;
}

int jwks_save(const struct tdaemon *d, char *path, size_t len)
{
	char *out = NULL;
	int r;

	snprintf(path, len, "%s/jwks.json", d->dir);
	r = run_capture(&out, "%s/agentgatectl --instance %s --state-dir %s keys jwks > %s",
			testlib_build_dir(), d->in.name, d->state, path);
	free(out);
	return r;
}

int jose_verify(const char *e2e, const char *jwks, const char *token, const char *aud,
		const char *chain_json, char **out)
{
	free(*out);
	*out = NULL;
	return run_capture(out,
			   "cd %s && AGENTGATE_E2E_DIR=%s node %s/selftests/e2e/jose_verify.mjs "
			   "%s '%s' '%s' %s%s%s 2>&1",
			   e2e, e2e, testlib_src_dir(), jwks, token, aud, chain_json ? "'" : "",
			   chain_json ? chain_json : "", chain_json ? "'" : "");
}
