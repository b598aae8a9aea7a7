// SPDX-License-Identifier: GPL-2.0
/* The control socket, client side; the server is daemon/control.c. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "ctl.h"

/* Responses are small today; the cap only stops a runaway peer. */
#define CTL_MAX_RESPONSE (1 << 20)

/* Waits for fd to become ready for events before deadline (ag_now_ns). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now = ag_now_ns();
	int ret;

	if (now >= deadline)
		return -ETIMEDOUT;
	ret = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
	if (ret < 0)
		return errno == EINTR ? 0 : -errno;
	return ret ? 0 : -ETIMEDOUT;
}

static int ctl_connect(const struct ag_instance *in, struct ag_err *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(in->control_path) >= sizeof(sun.sun_path))
		return ag_errf(err, ENAMETOOLONG, "%s: path too long for a socket",
			       in->control_path);
	strcpy(sun.sun_path, in->control_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ag_errf(err, errno, "%s: socket: %s", in->control_path, strerror(errno));
	if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
		return fd;
	e = errno;
	close(fd);
	if (e == ENOENT)
		return ag_errf(err, e, "instance %s: agentgated is not running (no %s)", in->name,
			       in->control_path);
	if (e == ECONNREFUSED)
		return ag_errf(err, e, "instance %s: agentgated is not running (%s: %s)", in->name,
			       in->control_path, strerror(e));
	/* EAGAIN: the daemon's backlog is full, it is alive but not keeping up. */
	return ag_errf(err, e, "instance %s: %s: %s", in->name, in->control_path, strerror(e));
}

static int send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		int ret;

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n < 0) {
			if ((ret = wait_fd(fd, POLLOUT, deadline)))
				return ret;
			continue;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* One line, without its newline, NUL-terminated; caller frees *out. */
static int recv_line(int fd, char **out, size_t *out_len, uint64_t deadline)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nl = NULL;
	int ret = 0;

	while (!nl) {
		ssize_t n;

		if (len + 1 >= cap) {
			/* Fail closed: a response longer than CTL_MAX_RESPONSE is refused. */
			ret = ag_grow(&buf, &cap, cap + 1, 1, 4096, CTL_MAX_RESPONSE);
			if (ret) {
				ret = ret == -E2BIG ? -EMSGSIZE : -ENOMEM;
				break;
			}
		}
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((ret = wait_fd(fd, POLLIN, deadline)))
				break;
			continue;
		}
		if (n <= 0) {
			ret = n ? -errno : -ECONNRESET;
			break;
		}
		nl = memchr(buf + len, '\n', n);
		len += n;
	}
	if (ret) {
		free(buf);
		return ret;
	}
	*nl = '\0';
	*out = buf;
	*out_len = nl - buf;
	return 0;
}

static int parse_response(const struct ag_instance *in, const char *line, size_t len,
			  json_t **response, struct ag_err *err)
{
	json_error_t jerr;
	json_t *resp = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	const char *msg;

	if (!resp)
		return ag_errf(err, EPROTO, "instance %s: unreadable response from agentgated: %s",
			       in->name, jerr.text);
	if (!json_is_object(resp) || !json_is_boolean(json_object_get(resp, "ok"))) {
		json_decref(resp);
		return ag_errf(err, EPROTO, "instance %s: response from agentgated has no \"ok\"",
			       in->name);
	}
	if (json_is_false(json_object_get(resp, "ok"))) {
		msg = json_string_value(json_object_get(resp, "error"));
		ag_errf(err, EREMOTEIO, "instance %s: agentgated: %s", in->name,
			msg ? msg : "request failed");
		json_decref(resp);
		return -EREMOTEIO;
	}
	*response = resp;
	return 0;
}

int ag_ctl_call(const struct ag_instance *in, json_t *request, json_t **response,
		struct ag_err *err)
{
	uint64_t deadline = ag_now_ns() + AG_CTL_TIMEOUT_MS * 1000000ull;
	size_t len = json_dumpb(request, NULL, 0, JSON_COMPACT), line_len;
	char *req, *line;
	int fd, ret;

	*response = NULL;
	if (!len)
		return ag_errf(err, EINVAL, "control request: not serialisable");
	if ((fd = ctl_connect(in, err)) < 0)
		return fd;
	req = malloc(len + 1);
	if (!req) {
		close(fd);
		return ag_errf(err, ENOMEM, "control request: out of memory");
	}
	json_dumpb(request, req, len, JSON_COMPACT);
	req[len] = '\n';
	ret = send_all(fd, req, len + 1, deadline);
	free(req);
	if (!ret)
		ret = recv_line(fd, &line, &line_len, deadline);
	close(fd);
	if (ret)
		return ag_errf(err, -ret, "instance %s: %s: %s%s", in->name, in->control_path,
			       strerror(-ret),
			       ret == -ETIMEDOUT ? " (agentgated did not answer within 5 s)" : "");
	ret = parse_response(in, line, line_len, response, err);
	free(line);
	return ret;
}

int ag_ctl_budgets_changed(const struct ag_instance *in, struct ag_err *err)
{
	json_t *req = json_pack("{s:s}", "cmd", "budgets_changed"), *resp = NULL;
	int ret;

	if (!req)
		return ag_errf(err, ENOMEM, "control request: out of memory");
	ret = ag_ctl_call(in, req, &resp, err);
	json_decref(req);
	json_decref(resp);
	/* A daemon that is not running reads the quota map when it starts. */
	return ret == -ENOENT || ret == -ECONNREFUSED ? 0 : ret;
}
