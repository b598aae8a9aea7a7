// SPDX-License-Identifier: GPL-2.0
/* Output rules: field paths, secret detectors, regexes, refusal; one-shot and streaming. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "redact.h"
#include "redact_int.h"

enum seg_kind { SEG_KEY, SEG_INDEX, SEG_ANY };

struct path_seg {
	enum seg_kind kind;
	char *key;
	size_t index;
};

struct rule {
	char *name;
	char *mask; /* "[REDACTED:<name>]" */
	size_t mask_len;
	enum ag_redact_kind kind;
	enum ag_redact_action action;
	struct path_seg *segs;
	size_t n_segs;
	enum ag_redact_detector det;
	regex_t re;
};

struct ag_redactor {
	struct rule rules[AG_REDACT_MAX_RULES];
	size_t n;
	size_t max_match;	  /* decisions look at most this far from a start */
	unsigned char start[256]; /* bit d: detector d may begin at this byte */
	bool has_paths;
};

/* A growable output buffer; on allocation failure it records the error once. */
struct obuf {
	struct ag_buf b;
	bool oom; /* a put failed: the output is incomplete */
};

static void ob_put(struct obuf *o, const char *s, size_t n)
{
	if (!o->oom && ag_buf_put(&o->b, s, n, 0))
		o->oom = true;
}

/* Hands the buffer to the caller; an empty result is still a valid string. */
static int ob_finish(struct obuf *o, char **out, size_t *outlen, struct ag_err *err)
{
	ob_put(o, "", 0);
	if (o->oom) {
		ag_buf_free(&o->b);
		*out = NULL;
		*outlen = 0;
		return ag_errf(err, ENOMEM, "redact: out of memory");
	}
	*out = o->b.p;
	*outlen = o->b.len;
	return 0;
}

static void report_hit(struct ag_redact_report *rep, const struct rule *ru, const char *path,
		       size_t off, size_t len)
{
	struct ag_redact_hit *h;
	size_t n;

	if (!rep)
		return;
	rep->total++;
	if (ru->action == AG_ACT_REFUSE && !rep->refused_by)
		rep->refused_by = ru->name;
	if (rep->n_hits >= AG_REDACT_MAX_HITS)
		return;
	h = &rep->hits[rep->n_hits++];
	h->rule = ru->name;
	n = strnlen(path, sizeof(h->path) - 1);
	memcpy(h->path, path, n);
	h->path[n] = '\0';
	h->offset = off;
	h->len = len;
}

/* ---- the positional scanner -------------------------------------------- */

struct match {
	size_t s, e;
	int state; /* 0 unknown, 1 found, 2 none */
};

struct scan {
	const struct ag_redactor *r;
	struct view v;
	size_t base; /* stream offset of v.b[0] */
	bool eof;
	bool oom;      /* the regex window copy could not be allocated */
	char *scratch; /* regex window copy, 2 * max_match + 2 bytes */
	struct match cache[AG_REDACT_MAX_RULES];
};

static size_t lim_of(const struct scan *sc, size_t s)
{
	size_t room = sc->r->max_match - 1;

	return sc->v.len - s < room ? sc->v.len : s + room;
}

static bool find_detector(struct scan *sc, enum ag_redact_detector d, size_t from, struct match *m)
{
	const unsigned char *start = sc->r->start, bit = 1u << d;

	for (size_t s = from; s < sc->v.len; s++) {
		if (!(start[sc->v.b[s]] & bit))
			continue;
		if (redact_detectors[d].fn(&sc->v, s, lim_of(sc, s), &m->e)) {
			m->s = s;
			return true;
		}
	}
	return false;
}

static int regex_flags(const struct scan *sc, size_t so, size_t eo)
{
	int fl = REG_STARTEND;

	if (sc->base + so)
		fl |= REG_NOTBOL;
	if (!sc->eof || eo != sc->v.len)
		fl |= REG_NOTEOL;
	return fl;
}

/*
 * Runs re over v.b[so, eo) through a NUL-terminated copy that starts one
 * byte early for context: some regexec implementations (and sanitizer
 * interceptors) call strlen() despite REG_STARTEND.
 */
static bool regex_at(struct scan *sc, const regex_t *re, size_t so, size_t eo, regmatch_t *pm)
{
	size_t from = so ? so - 1 : 0;

	if (!sc->scratch) {
		sc->scratch = malloc(2 * sc->r->max_match + 2);
		if (!sc->scratch) {
			sc->oom = true;
			return false;
		}
	}
	memcpy(sc->scratch, sc->v.b + from, eo - from);
	sc->scratch[eo - from] = '\0';
	pm[0].rm_so = (regoff_t)(so - from);
	pm[0].rm_eo = (regoff_t)(eo - from);
	if (regexec(re, sc->scratch, 1, pm, regex_flags(sc, so, eo)))
		return false;
	pm[0].rm_so += (regoff_t)from;
	pm[0].rm_eo += (regoff_t)from;
	return true;
}

/*
 * The leftmost start s whose own window [s, lim_of(s)) holds a non-empty
 * match beginning at s.  Every regexec call sees at most 2 * max_match bytes.
 */
static bool find_regex(struct scan *sc, const regex_t *re, size_t from, struct match *m)
{
	size_t room = sc->r->max_match - 1;
	regmatch_t pm[1];

	while (from < sc->v.len) {
		size_t w_end = sc->v.len - from < 2 * room ? sc->v.len : from + 2 * room;
		size_t s;

		if (!regex_at(sc, re, from, w_end, pm)) {
			if (w_end == sc->v.len)
				return false;
			from = w_end - room;
			continue;
		}
		s = (size_t)pm[0].rm_so;
		/* Windows of starts past w_end - room reach beyond this search window. */
		if (w_end != sc->v.len && s > w_end - room) {
			from = w_end - room;
			continue;
		}
		if (regex_at(sc, re, s, lim_of(sc, s), pm) && (size_t)pm[0].rm_so == s &&
		    pm[0].rm_eo > pm[0].rm_so) {
			m->s = s;
			m->e = (size_t)pm[0].rm_eo;
			return true;
		}
		from = s + 1;
	}
	return false;
}

static bool find_rule(struct scan *sc, size_t i, size_t from, struct match *out)
{
	const struct rule *ru = &sc->r->rules[i];
	struct match *c = &sc->cache[i];

	if (c->state == 2 || (c->state == 1 && c->s >= from)) {
		*out = *c;
		return c->state == 1;
	}
	if (ru->kind == AG_RULE_DETECTOR ? find_detector(sc, ru->det, from, c)
					 : find_regex(sc, &ru->re, from, c)) {
		c->state = 1;
		*out = *c;
		return true;
	}
	c->state = 2;
	return false;
}

/*
 * Emits v.b[*pos..] with matches masked, as far as decisions are final: a
 * start s is final when max_match bytes from it are present, or at eof.
 */
static void scan_run(struct scan *sc, size_t *pos, struct obuf *o, struct ag_redact_report *rep,
		     const char *path)
{
	const struct ag_redactor *r = sc->r;
	size_t len = sc->v.len, safe;

	memset(sc->cache, 0, sizeof(sc->cache));
	for (;;) {
		struct match best = { 0 }, m;
		const struct rule *bru = NULL;

		for (size_t i = 0; i < r->n; i++) {
			if (r->rules[i].kind == AG_RULE_PATH || !find_rule(sc, i, *pos, &m))
				continue;
			if (!bru || m.s < best.s || (m.s == best.s && m.e > best.e)) {
				best = m;
				bru = &r->rules[i];
			}
		}
		safe = sc->eof ? len : len >= r->max_match ? len - r->max_match + 1 : 0;
		if (bru && best.s < safe) {
			ob_put(o, (const char *)sc->v.b + *pos, best.s - *pos);
			ob_put(o, bru->mask, bru->mask_len);
			report_hit(rep, bru, path, sc->base + best.s, best.e - best.s);
			*pos = best.e;
			continue;
		}
		/* Any match left starts at or after safe: what precedes it is final. */
		if (safe > *pos) {
			ob_put(o, (const char *)sc->v.b + *pos, safe - *pos);
			*pos = safe;
		}
		o->oom |= sc->oom;
		return;
	}
}

static bool has_text_rules(const struct ag_redactor *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->rules[i].kind != AG_RULE_PATH)
			return true;
	return false;
}

/* Masks one string; returns 1 and a new buffer in *out if anything changed. */
/*
 * Masks one whole string with sc, whose regex scratch buffer is reused
 * across the strings of a result; returns 1 if anything was masked.
 */
static int redact_str(struct scan *sc, const char *in, size_t len, struct obuf *o,
		      struct ag_redact_report *rep, const char *path)
{
	unsigned long before = rep->total;
	size_t pos = 0;

	sc->v.b = (const unsigned char *)in;
	sc->v.len = len;
	sc->eof = true;
	scan_run(sc, &pos, o, rep, path);
	return !o->oom && rep->total != before;
}

int ag_redact_text(const struct ag_redactor *r, const char *in, size_t len, char **out,
		   size_t *outlen, struct ag_redact_report *rep, struct ag_err *err)
{
	struct ag_redact_report local;
	struct scan sc = { .r = r };
	struct obuf o = { 0 };

	if (!rep)
		rep = &local;
	memset(rep, 0, sizeof(*rep));
	redact_str(&sc, in, len, &o, rep, "$");
	free(sc.scratch);
	return ob_finish(&o, out, outlen, err);
}

bool ag_redact_has_paths(const struct ag_redactor *r)
{
	return r->has_paths;
}

bool ag_redact_text_hit(const struct ag_redactor *r, const char *in, size_t len)
{
	struct scan sc = { .r = r, .v = { (const unsigned char *)in, len }, .eof = true };
	struct match m;
	bool hit = false;

	/* The first iteration of scan_run: at eof every match found is final. */
	for (size_t i = 0; i < r->n && !hit; i++)
		hit = r->rules[i].kind != AG_RULE_PATH && find_rule(&sc, i, 0, &m);
	free(sc.scratch);
	/* Fail closed: a search that ran out of memory may have missed one. */
	return hit || sc.oom;
}

/* ---- streaming --------------------------------------------------------- */

struct ag_redact_stream {
	struct scan sc;
	char *buf;
	size_t len, cap, pos;
};

struct ag_redact_stream *ag_redact_stream_new(const struct ag_redactor *r, struct ag_err *err)
{
	struct ag_redact_stream *s = calloc(1, sizeof(*s));

	if (!s) {
		ag_errf(err, ENOMEM, "redact stream: out of memory");
		return NULL;
	}
	s->sc.r = r;
	return s;
}

void ag_redact_stream_free(struct ag_redact_stream *s)
{
	if (!s)
		return;
	free(s->sc.scratch);
	free(s->buf);
	free(s);
}

static int stream_run(struct ag_redact_stream *s, bool eof, char **out, size_t *outlen,
		      struct ag_redact_report *rep, struct ag_err *err)
{
	struct obuf o = { 0 };
	size_t keep;

	if (rep)
		memset(rep, 0, sizeof(*rep));
	s->sc.v.b = (const unsigned char *)s->buf;
	s->sc.v.len = s->len;
	s->sc.eof = eof;
	/* Nothing is final until max_match bytes follow the scan position. */
	if (eof || s->len - s->pos >= s->sc.r->max_match)
		scan_run(&s->sc, &s->pos, &o, rep, "$");
	/* Keep one byte before the scan position: detectors look at it. */
	keep = s->pos ? s->pos - 1 : 0;
	if (keep)
		memmove(s->buf, s->buf + keep, s->len - keep);
	s->len -= keep;
	s->pos -= keep;
	s->sc.base += keep;
	return ob_finish(&o, out, outlen, err);
}

int ag_redact_stream_feed(struct ag_redact_stream *s, const char *data, size_t len, char **out,
			  size_t *outlen, struct ag_redact_report *rep, struct ag_err *err)
{
	/* Fail closed: s->len + len must not wrap. */
	if (len > SIZE_MAX - s->len ||
	    ag_grow(&s->buf, &s->cap, s->len + len, 1, 2 * s->sc.r->max_match, 0)) {
		*out = NULL;
		*outlen = 0;
		return ag_errf(err, ENOMEM, "redact stream: out of memory");
	}
	if (len)
		memcpy(s->buf + s->len, data, len);
	s->len += len;
	return stream_run(s, false, out, outlen, rep, err);
}

int ag_redact_stream_finish(struct ag_redact_stream *s, char **out, size_t *outlen,
			    struct ag_redact_report *rep, struct ag_err *err)
{
	return stream_run(s, true, out, outlen, rep, err);
}

/* ---- JSON: field paths and string walk --------------------------------- */

struct walk {
	const struct ag_redactor *r;
	struct scan sc;
	struct ag_redact_report *rep;
	char path[AG_REDACT_PATH_LEN];
	size_t plen;
	int error;
};

/* Appends a path segment; returns the old length for walk_pop. */
static size_t walk_push(struct walk *w, const char *key, size_t index)
{
	size_t old = w->plen;
	int n;

	if (key)
		n = snprintf(w->path + old, sizeof(w->path) - old, ".%s", key);
	else
		n = snprintf(w->path + old, sizeof(w->path) - old, "[%zu]", index);
	w->plen = n < 0 || (size_t)n >= sizeof(w->path) - old ? sizeof(w->path) - 1 : old + n;
	return old;
}

static void walk_pop(struct walk *w, size_t old)
{
	w->plen = old;
	w->path[old] = '\0';
}

static void apply_path(struct walk *w, const struct rule *ru, json_t *node, size_t seg);

static void apply_child(struct walk *w, const struct rule *ru, json_t *node, const char *key,
			size_t index, json_t *child, size_t seg)
{
	size_t old = walk_push(w, key, index);

	if (seg + 1 < ru->n_segs) {
		apply_path(w, ru, child, seg + 1);
	} else {
		json_t *m = json_stringn(ru->mask, ru->mask_len);

		if (!m ||
		    (key ? json_object_set_new(node, key, m) : json_array_set_new(node, index, m)))
			w->error = -ENOMEM;
		report_hit(w->rep, ru, w->path, 0, 0);
	}
	walk_pop(w, old);
}

/* Segments bound the recursion: a path has at most AG_REDACT_MAX_DEPTH of them. */
static void apply_path(struct walk *w, const struct rule *ru, json_t *node, size_t seg)
{
	const struct path_seg *ps = &ru->segs[seg];
	const char *key;
	json_t *child;
	void *tmp;

	if (ps->kind == SEG_INDEX) {
		child = json_array_get(node, ps->index);
		if (child)
			apply_child(w, ru, node, NULL, ps->index, child, seg);
	} else if (ps->kind == SEG_KEY) {
		child = json_object_get(node, ps->key);
		if (child)
			apply_child(w, ru, node, ps->key, 0, child, seg);
	} else if (json_is_array(node)) {
		for (size_t i = 0; i < json_array_size(node); i++)
			apply_child(w, ru, node, NULL, i, json_array_get(node, i), seg);
	} else if (json_is_object(node)) {
		json_object_foreach_safe(node, tmp, key, child)
		    apply_child(w, ru, node, key, 0, child, seg);
	}
}

static void apply_paths(struct walk *w, json_t *root)
{
	for (size_t i = 0; i < w->r->n; i++)
		if (w->r->rules[i].kind == AG_RULE_PATH)
			apply_path(w, &w->r->rules[i], root, 0);
}

static void walk_value(struct walk *w, json_t *v, int depth, const char *skip_key);

static void walk_string(struct walk *w, json_t *v)
{
	struct obuf o = { 0 };

	if (!has_text_rules(w->r))
		return;
	if (redact_str(&w->sc, json_string_value(v), json_string_length(v), &o, w->rep, w->path) &&
	    json_string_setn(v, o.b.p, o.b.len))
		w->error = -ENOMEM;
	if (o.oom)
		w->error = -ENOMEM;
	ag_buf_free(&o.b);
}

/* A text that is itself JSON gets the path rules at its root, then the string walk. */
static bool walk_json_text(struct walk *w, json_t *item, int depth)
{
	json_t *text = json_object_get(item, "text"), *doc;
	const char *t = json_string_value(text);
	size_t n = json_string_length(text), i = 0, old;
	unsigned long before = w->rep->total;
	char *dump;

	while (t && i < n && strchr(" \t\r\n", t[i]))
		i++;
	if (!t || i == n || (t[i] != '{' && t[i] != '['))
		return false;
	doc = json_loadb(t, n, 0, NULL);
	if (!doc)
		return false;
	old = walk_push(w, "text#$", 0);
	apply_paths(w, doc);
	walk_value(w, doc, depth + 1, NULL);
	walk_pop(w, old);
	if (!w->error && w->rep->total != before) {
		dump = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!dump || json_object_set_new(item, "text", json_string(dump)))
			w->error = -ENOMEM;
		free(dump);
	}
	json_decref(doc);
	return true;
}

static void walk_value(struct walk *w, json_t *v, int depth, const char *skip_key)
{
	const char *key;
	json_t *child;
	size_t old;

	if (w->error)
		return;
	if (depth > AG_REDACT_MAX_DEPTH) {
		w->error = -E2BIG;
		return;
	}
	if (json_is_string(v)) {
		walk_string(w, v);
	} else if (json_is_array(v)) {
		bool content = depth == 1 && !strcmp(w->path, "$.content");

		for (size_t i = 0; i < json_array_size(v) && !w->error; i++) {
			child = json_array_get(v, i);
			old = walk_push(w, NULL, i);
			if (content && json_is_object(child) && walk_json_text(w, child, depth + 1))
				walk_value(w, child, depth + 1, "text");
			else
				walk_value(w, child, depth + 1, NULL);
			walk_pop(w, old);
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, child)
		{
			if (skip_key && !strcmp(key, skip_key))
				continue;
			old = walk_push(w, key, 0);
			walk_value(w, child, depth + 1, NULL);
			walk_pop(w, old);
			if (w->error)
				return;
		}
	}
}

static json_t *refusal(const char *name)
{
	char msg[AG_REDACT_PATH_LEN];

	snprintf(msg, sizeof(msg), "Refused by output rule %s", name);
	return json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", msg, "isError",
			 1);
}

json_t *ag_redact_result(const struct ag_redactor *r, const json_t *result,
			 struct ag_redact_report *rep, struct ag_err *err)
{
	struct ag_redact_report local;
	struct walk w = { .r = r, .sc.r = r, .rep = rep ? rep : &local, .path = "$", .plen = 1 };
	json_t *copy;

	memset(w.rep, 0, sizeof(*w.rep));
	copy = json_deep_copy(result);
	if (!copy) {
		ag_errf(err, ENOMEM, "redact: cannot copy result");
		return NULL;
	}
	if (r->has_paths)
		apply_paths(&w, copy);
	if (!w.error)
		walk_value(&w, copy, 0, NULL);
	free(w.sc.scratch);
	if (w.error) {
		json_decref(copy);
		ag_errf(err, -w.error, "redact: %s",
			w.error == -E2BIG ? "result nested too deep" : "out of memory");
		return NULL;
	}
	if (w.rep->refused_by) {
		json_decref(copy);
		copy = refusal(w.rep->refused_by);
		if (!copy)
			ag_errf(err, ENOMEM, "redact: out of memory");
	}
	return copy;
}

/* ---- rule sets --------------------------------------------------------- */

static int parse_path(struct rule *ru, const char *path, struct ag_err *err)
{
	const char *p = path;

	if (!path || p[0] != '$')
		return ag_errf(err, EINVAL, "output rule %s: path must start with $", ru->name);
	ru->segs = calloc(AG_REDACT_MAX_DEPTH, sizeof(*ru->segs));
	if (!ru->segs)
		return ag_errf(err, ENOMEM, "output rule %s: out of memory", ru->name);
	for (p++; *p;) {
		struct path_seg *ps = &ru->segs[ru->n_segs];
		size_t n;

		if (ru->n_segs == AG_REDACT_MAX_DEPTH)
			return ag_errf(err, E2BIG, "output rule %s: path too deep", ru->name);
		if (!strncmp(p, "[*]", 3) || !strncmp(p, ".*", 2)) {
			ps->kind = SEG_ANY;
			p += p[0] == '[' ? 3 : 2;
		} else if (*p == '[') {
			char *end;

			ps->kind = SEG_INDEX;
			errno = 0;
			ps->index = strtoul(p + 1, &end, 10);
			if (end == p + 1 || *end != ']' || errno || p[1] == '-')
				return ag_errf(err, EINVAL, "output rule %s: bad index in path",
					       ru->name);
			p = end + 1;
		} else if (*p == '.') {
			n = strcspn(p + 1, ".[");
			if (!n)
				return ag_errf(err, EINVAL, "output rule %s: empty key in path",
					       ru->name);
			ps->kind = SEG_KEY;
			ps->key = strndup(p + 1, n);
			if (!ps->key)
				return ag_errf(err, ENOMEM, "output rule %s: out of memory",
					       ru->name);
			p += n + 1;
		} else {
			return ag_errf(err, EINVAL, "output rule %s: bad path syntax", ru->name);
		}
		ru->n_segs++;
	}
	if (!ru->n_segs)
		return ag_errf(err, EINVAL, "output rule %s: path selects the whole result",
			       ru->name);
	return 0;
}

static int add_rule(struct ag_redactor *r, const struct ag_redact_rule *spec, struct ag_err *err)
{
	static const char name_chars[] = "abcdefghijklmnopqrstuvwxyz"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
	struct rule *ru = &r->rules[r->n];
	regmatch_t pm[1] = { { 0, 0 } };
	int rc;

	/* Names end up in tool output and audit records: keep them plain. */
	if (!spec->name || !*spec->name || strlen(spec->name) > 64 ||
	    strspn(spec->name, name_chars) != strlen(spec->name))
		return ag_errf(err, EINVAL, "output rule: name must be 1-64 of [A-Za-z0-9_.-]");
	r->n++;			 /* from here on ag_redactor_free releases what the rule holds */
	ru->kind = AG_RULE_PATH; /* regfree only once regcomp succeeded */
	ru->action = spec->action;
	ru->name = strdup(spec->name);
	if (!ru->name || asprintf(&ru->mask, "[REDACTED:%s]", spec->name) < 0) {
		ru->mask = NULL;
		return ag_errf(err, ENOMEM, "output rule %s: out of memory", spec->name);
	}
	ru->mask_len = strlen(ru->mask);
	switch (spec->kind) {
	case AG_RULE_PATH:
		r->has_paths = true;
		return parse_path(ru, spec->path, err);
	case AG_RULE_DETECTOR:
		if (spec->detector < AG_DET_PEM_KEY || spec->detector > AG_DET_EMAIL)
			return ag_errf(err, EINVAL, "output rule %s: unknown detector", ru->name);
		ru->kind = AG_RULE_DETECTOR;
		ru->det = spec->detector;
		return 0;
	case AG_RULE_REGEX:
		if (!spec->regex)
			return ag_errf(err, EINVAL, "output rule %s: no regex", ru->name);
		rc = regcomp(&ru->re, spec->regex, REG_EXTENDED);
		if (rc) {
			char msg[128];

			regerror(rc, NULL, msg, sizeof(msg));
			return ag_errf(err, EINVAL, "output rule %s: regex: %s", ru->name, msg);
		}
		ru->kind = AG_RULE_REGEX;
		/* A pattern matching nothing would fire at every offset. */
		if (regexec(&ru->re, "", 1, pm, REG_STARTEND) == 0)
			return ag_errf(err, EINVAL,
				       "output rule %s: regex matches the empty string", ru->name);
		return 0;
	}
	return ag_errf(err, EINVAL, "output rule %s: unknown kind", ru->name);
}

void ag_redactor_free(struct ag_redactor *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		struct rule *ru = &r->rules[i];

		for (size_t k = 0; k < ru->n_segs; k++)
			free(ru->segs[k].key);
		free(ru->segs);
		if (ru->kind == AG_RULE_REGEX)
			regfree(&ru->re);
		free(ru->name);
		free(ru->mask);
	}
	free(r);
}

struct ag_redactor *ag_redactor_new(const struct ag_redact_rule *rules, size_t n,
				    size_t max_match_len, struct ag_err *err)
{
	struct ag_redactor *r;

	if (!max_match_len)
		max_match_len = AG_REDACT_DEFAULT_MATCH_LEN;
	if (max_match_len < AG_REDACT_MIN_MATCH_LEN || max_match_len > AG_REDACT_MAX_MATCH_LEN) {
		ag_errf(err, EINVAL, "output rules: max_match_len %zu out of range", max_match_len);
		return NULL;
	}
	if (n > AG_REDACT_MAX_RULES) {
		ag_errf(err, E2BIG, "output rules: more than %d", AG_REDACT_MAX_RULES);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		ag_errf(err, ENOMEM, "output rules: out of memory");
		return NULL;
	}
	r->max_match = max_match_len;
	for (int d = AG_DET_PEM_KEY; d <= AG_DET_EMAIL; d++)
		for (int c = 1; c < 256; c++)
			if (redact_detectors[d].starts
				? strchr(redact_detectors[d].starts, c) != NULL
				: redact_is_local(c))
				r->start[c] |= 1u << d;
	for (size_t i = 0; i < n; i++) {
		if (add_rule(r, &rules[i], err)) {
			ag_redactor_free(r);
			return NULL;
		}
	}
	return r;
}

int ag_redact_detector_parse(const char *name, enum ag_redact_detector *out)
{
	for (int d = AG_DET_PEM_KEY; d <= AG_DET_EMAIL; d++)
		if (!strcmp(name, redact_detectors[d].name)) {
			*out = d;
			return 0;
		}
	return -EINVAL;
}

const char *ag_redact_detector_name(enum ag_redact_detector d)
{
	return d >= AG_DET_PEM_KEY && d <= AG_DET_EMAIL ? redact_detectors[d].name : "?";
}

struct ag_redactor *ag_redactor_all_detectors(size_t max_match_len, struct ag_err *err)
{
	struct ag_redact_rule rules[AG_DET_EMAIL];

	for (int d = AG_DET_PEM_KEY; d <= AG_DET_EMAIL; d++)
		rules[d - 1] = (struct ag_redact_rule){ .name = redact_detectors[d].name,
							.kind = AG_RULE_DETECTOR,
							.detector = d };
	return ag_redactor_new(rules, AG_ARRAY_SIZE(rules), max_match_len, err);
}
