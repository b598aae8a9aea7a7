// SPDX-License-Identifier: GPL-2.0
/* HTTP services' requests in canonical form, matched to routes (http_route.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "http_route.h"
#include "mcp_request.h"

/* The whole canonical target; the agent's head is bounded far below it. */
#define TARGET_MAX (64 * 1024)

struct segs {
	char s[AG_ROUTE_MAX_SEGS][AG_ROUTE_SEG_MAX];
	size_t len[AG_ROUTE_MAX_SEGS];
	int n;
};

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Unreserved bytes as they are, every other byte %XX: one spelling per value. */
static int put_encoded(struct ag_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[3] = { '%', hex[c >> 4], hex[c & 15] };

		ret = unreserved(c) ? ag_buf_put(b, &c, 1, TARGET_MAX)
				    : ag_buf_put(b, e, 3, TARGET_MAX);
	}
	return ret;
}

/* A decoded segment, key or value: control bytes would be read differently. */
static bool decoded_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* The path of t, decoded segment by segment; -EINVAL with err. */
static int split_path(const char *p, size_t len, struct segs *sg, struct ag_err *err)
{
	size_t i = 1;

	sg->n = 0;
	/* "/" alone is the root: no segment. */
	while (i < len) {
		const char *slash = memchr(p + i, '/', len - i);
		size_t end = slash ? (size_t)(slash - p) : len, dlen;
		json_t *u;
		char *d;

		/* Fail closed: "//" is a path that servers read differently.  A
		 * trailing '/' ends the loop: it is dropped. */
		if (end == i)
			return ag_errf(err, EINVAL, "path: an empty segment (\"//\")");
		if (memchr(p + i, ';', end - i))
			return ag_errf(err, EINVAL, "path: ';' (path parameters) is refused");
		if (sg->n == AG_ROUTE_MAX_SEGS)
			return ag_errf(err, EINVAL, "path: more than %d segments",
				       AG_ROUTE_MAX_SEGS);
		d = sg->s[sg->n];
		if (ag_pct_decode(p + i, end - i, false, d, AG_ROUTE_SEG_MAX, &dlen))
			return ag_errf(err, EINVAL,
				       "path: a malformed escape, a NUL or a segment over %d bytes",
				       AG_ROUTE_SEG_MAX - 1);
		/* Fail closed: a decoded separator or dot segment moves the path. */
		if (memchr(d, '/', dlen) || memchr(d, '\\', dlen) || !decoded_ok(d, dlen))
			return ag_errf(err, EINVAL, "path: an encoded '/', '\\' or control byte");
		if (!strcmp(d, ".") || !strcmp(d, ".."))
			return ag_errf(err, EINVAL, "path: a \".\" or \"..\" segment");
		/* Fail closed: bytes that are not UTF-8 have no one reading. */
		if (!(u = json_stringn(d, dlen)))
			return ag_errf(err, EINVAL, "path: a segment that is not UTF-8");
		json_decref(u);
		sg->len[sg->n++] = dlen;
		i = end + 1;
	}
	return 0;
}

/* The next segment of a pattern at *p ("/a/{b}"): its text and length. */
static bool pattern_next(const char **p, const char **seg, size_t *n)
{
	if (**p != '/' || !(*p)[1])
		return false;
	*seg = *p + 1;
	*n = strcspn(*seg, "/");
	*p = *seg + *n;
	return true;
}

static bool is_param(const char *seg, size_t n)
{
	return n > 2 && seg[0] == '{' && seg[n - 1] == '}';
}

int ag_route_pattern_check(const char *pat, struct ag_err *err)
{
	const char *p = pat, *seg;
	size_t n;
	int count = 0;

	if (pat[0] != '/')
		return ag_errf(err, EINVAL, "expected a path starting with '/'");
	if (!strcmp(pat, "/"))
		return 0;
	while (pattern_next(&p, &seg, &n)) {
		size_t lo = is_param(seg, n) ? 1 : 0;

		if (++count > AG_ROUTE_MAX_SEGS)
			return ag_errf(err, EINVAL, "more than %d segments", AG_ROUTE_MAX_SEGS);
		if (!n || (n == 1 && seg[0] == '.') || (n == 2 && !memcmp(seg, "..", 2)))
			return ag_errf(err, EINVAL, "an empty, \".\" or \"..\" segment");
		/* Literal segments are plain text: what an agent's decoded segment equals. */
		for (size_t i = lo; i < n - lo; i++)
			if (!unreserved((unsigned char)seg[i]) || (lo && seg[i] == '.') ||
			    (lo && seg[i] == '~') || (lo && seg[i] == '-'))
				return ag_errf(err, EINVAL,
					       "segment \"%.*s\": expected [A-Za-z0-9._~-] or "
					       "\"{name}\" of [A-Za-z0-9_]",
					       (int)n, seg);
	}
	if (*p)
		return ag_errf(err, EINVAL, "a trailing '/'");
	return 0;
}

/* 1 when route r takes the decoded segments; params filled from them. */
static int route_take(const struct ag_http_route_conf *r, const struct segs *sg, json_t *params)
{
	const char *p = r->path, *seg;
	size_t n;
	int i = 0;

	while (pattern_next(&p, &seg, &n)) {
		if (i == sg->n)
			return 0;
		if (is_param(seg, n)) {
			/* UTF-8 already (split_path): only memory can fail. */
			if (json_object_setn_new(params, seg + 1, n - 2,
						 json_stringn(sg->s[i], sg->len[i])))
				return -ENOMEM;
		} else if (n != sg->len[i] || strncasecmp(seg, sg->s[i], n)) {
			return 0;
		}
		i++;
	}
	return i == sg->n;
}

static const struct ag_http_route_conf *find_route(const struct ag_http_svc_conf *svc,
						   const char *method, const struct segs *sg,
						   json_t *params, int *ret)
{
	for (int i = 0; i < svc->nr_routes; i++) {
		const struct ag_http_route_conf *r = &svc->routes[i];

		if (strcmp(r->method, method))
			continue;
		json_object_clear(params);
		if ((*ret = route_take(r, sg, params)) < 0)
			return NULL;
		if (*ret)
			return r;
	}
	*ret = 0;
	json_object_clear(params);
	return NULL;
}

/* The canonical path: the route's literals as it spells them, the rest re-encoded. */
static int put_path(struct ag_buf *b, const struct ag_http_route_conf *r, const struct segs *sg)
{
	const char *p = r ? r->path : "", *seg;
	size_t n;
	int ret = 0;

	if (!sg->n)
		return ag_buf_put(b, "/", 1, TARGET_MAX);
	for (int i = 0; i < sg->n && !ret; i++) {
		bool literal = r && pattern_next(&p, &seg, &n) && !is_param(seg, n);

		ret = ag_buf_put(b, "/", 1, TARGET_MAX);
		if (!ret)
			ret = literal ? ag_buf_put(b, seg, n, TARGET_MAX)
				      : put_encoded(b, sg->s[i], sg->len[i]);
	}
	return ret;
}

/* One "key[=value]" of a query, decoded into k and v. */
static int query_pair(const char *s, size_t n, char *k, size_t *klen, char *v, size_t *vlen,
		      struct ag_err *err)
{
	const char *eq = memchr(s, '=', n);
	size_t kn = eq ? (size_t)(eq - s) : n;

	if (ag_pct_decode(s, kn, true, k, AG_ROUTE_SEG_MAX, klen) ||
	    ag_pct_decode(eq ? eq + 1 : "", eq ? n - kn - 1 : 0, true, v, AG_ROUTE_SEG_MAX, vlen))
		return ag_errf(err, EINVAL,
			       "query: a malformed escape, a NUL or a part over %d bytes",
			       AG_ROUTE_SEG_MAX - 1);
	/* Fail closed: brackets make an object or an array of it to some parsers. */
	if (!*klen || strpbrk(k, "[]") || !decoded_ok(k, *klen) || !decoded_ok(v, *vlen))
		return ag_errf(err, EINVAL, "query: an empty key, brackets or a control byte");
	return 0;
}

/* The query into out->query and, re-encoded, onto b. */
static int read_query(const char *q, size_t len, struct ag_buf *b, json_t *query,
		      struct ag_err *err)
{
	char k[AG_ROUTE_SEG_MAX], v[AG_ROUTE_SEG_MAX];
	size_t i = 0, klen, vlen;
	int ret;

	/* Fail closed: ';' separates parameters to some servers, not to others. */
	if (memchr(q, ';', len))
		return ag_errf(err, EINVAL, "query: ';' is refused");
	while (i < len) {
		const char *amp = memchr(q + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - q) : len;
		json_t *jv;

		if (end == i)
			return ag_errf(err, EINVAL, "query: an empty parameter");
		if ((ret = query_pair(q + i, end - i, k, &klen, v, &vlen, err)))
			return ret;
		if (json_object_size(query) == AG_ROUTE_MAX_QUERY)
			return ag_errf(err, EINVAL, "query: more than %d parameters",
				       AG_ROUTE_MAX_QUERY);
		/* Fail closed: the first, the last or both, by server: given once only. */
		if (json_object_getn(query, k, klen))
			return ag_errf(err, EINVAL, "query: \"%.64s\" given more than once", k);
		if (!(jv = json_stringn(v, vlen)) || json_object_setn_new(query, k, klen, jv))
			return ag_errf(err, EINVAL, "query: not UTF-8");
		if ((ret =
			 ag_buf_put(b, json_object_size(query) == 1 ? "?" : "&", 1, TARGET_MAX)) ||
		    (ret = put_encoded(b, k, klen)) || (ret = ag_buf_put(b, "=", 1, TARGET_MAX)) ||
		    (ret = put_encoded(b, v, vlen)))
			return ag_errf(err, -ret, "query: too long");
		i = end + 1;
	}
	return 0;
}

int ag_route_match(const struct ag_http_svc_conf *svc, const char *method, const char *t,
		   size_t len, struct ag_route_req *out, struct ag_err *err)
{
	struct ag_buf b = { 0 };
	struct ag_target tg;
	struct segs *sg = malloc(sizeof(*sg));
	int ret, found;

	memset(out, 0, sizeof(*out));
	out->params = json_object();
	out->query = json_object();
	if (!sg || !out->params || !out->query) {
		ret = ag_errf(err, ENOMEM, "route: out of memory");
		goto fail;
	}
	if ((ret = ag_target_split(t, len, &tg, err)) ||
	    (ret = split_path(tg.path, tg.path_len, sg, err)))
		goto fail;
	out->route = find_route(svc, method, sg, out->params, &found);
	if (found < 0) {
		ret = ag_errf(err, ENOMEM, "route: out of memory");
		goto fail;
	}
	if ((ret = put_path(&b, out->route, sg)) || !(out->path = strdup(b.p))) {
		ret = ag_errf(err, ret == -ENOMEM || !ret ? ENOMEM : EINVAL, "path: too long");
		goto fail;
	}
	if (tg.query && (ret = read_query(tg.query, tg.query_len, &b, out->query, err)))
		goto fail;
	out->target = b.p;
	free(sg);
	return 0;
fail:
	free(sg);
	ag_buf_free(&b);
	ag_route_req_free(out);
	return ret;
}

void ag_route_req_free(struct ag_route_req *r)
{
	free(r->path);
	free(r->target);
	json_decref(r->params);
	json_decref(r->query);
	memset(r, 0, sizeof(*r));
}
