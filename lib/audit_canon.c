// SPDX-License-Identifier: GPL-2.0
/*
 * Canonical JSON, the form of every record in the log: from a jansson tree
 * (ag_audit_canon), or straight from a record's members
 * (ag_audit_canon_members), as the per-call records are written: no tree is
 * built, copied, redacted and freed for each call, and a request's
 * arguments are canonicalised (or hashed) from the request's own tree.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"

/* ---- Canonical JSON ------------------------------------------------------ */

/*
 * The log's canonical form is what json_dumps(v, JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENCODE_ANY) produces; this writes the same bytes
 * without jansson's per-call loop-check table, its "%p" and "%lld"
 * formatting, its qsort and its growing buffer (most of an appender's time
 * in the audit benchmark).  The verifier keeps using jansson, so any
 * difference would show as a non-canonical record in every test log.
 */

/* The parser's nesting limit (JSON_PARSER_MAX_DEPTH): deeper would not read back. */
#define CANON_MAX_DEPTH 2048
#define CANON_SORT_SMALL 16 /* members sorted by insertion on the stack */

struct canon {
	char *b;
	size_t len, cap, max;
	size_t lim; /* min(cap, max + 1): a put past it goes through canon_grow */
	bool nul;
	bool ordered; /* objects' members as they are, not sorted (ag_json_compact) */
};

struct member {
	const char *key;
	size_t klen;
	const json_t *v;
};

/* A reused buffer may be larger than this record's max: the bound is lim's. */
static void canon_set_lim(struct canon *c)
{
	c->lim = c->cap < c->max + 1 ? c->cap : c->max + 1;
}

/* Room for n more bytes and the final NUL. */
static int __attribute__((noinline)) canon_grow(struct canon *c, size_t n)
{
	int ret;

	if (n > c->max - c->len)
		return -E2BIG;
	ret = ag_grow(&c->b, &c->cap, c->len + n + 1, 1, 512, c->max + 1);
	canon_set_lim(c);
	return ret;
}

/* Inlined: it runs for every token, and nearly always fits. */
static inline int canon_put(struct canon *c, const void *p, size_t n)
{
	int ret;

	if (n >= c->lim - c->len && (ret = canon_grow(c, n)))
		return ret;
	memcpy(c->b + c->len, p, n);
	c->len += n;
	return 0;
}

/*
 * Length of the UTF-8 sequence at p (first byte >= 0x80), 0 if jansson's
 * utf8_iterate() refuses it: the same strings fail to dump.
 */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
	uint32_t v;
	size_t n;

	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2, v = p[0] & 0x1F;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3, v = p[0] & 0x0F;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4, v = p[0] & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3F);
	}
	if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
	    (n == 4 && v < 0x10000))
		return 0;
	return n;
}

/* jansson's escapes: \\ \" \b \f \n \r \t, \u00XX (upper case) for other controls. */
static int canon_string(struct canon *c, const char *str, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)str, *end = p + len, *run = p;
	char esc[6] = { '\\', 'u', '0', '0' };
	int ret = canon_put(c, "\"", 1);

	while (!ret && p < end) {
		size_t n = 1, elen = 2;

		/* Most of a record is plain ASCII: skip it a byte at a time, tightly. */
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p == end)
			break;
		if (*p >= 0x80 && !(n = utf8_seq(p, (size_t)(end - p))))
			return -EILSEQ;
		if (*p >= 0x20 && *p != '"' && *p != '\\') {
			p += n;
			continue;
		}
		switch (*p) {
		case '"':
		case '\\':
			esc[1] = (char)*p;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			c->nul |= !*p;
			esc[1] = 'u';
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			elen = 6;
		}
		ret = canon_put(c, run, (size_t)(p - run));
		if (!ret)
			ret = canon_put(c, esc, elen);
		run = ++p;
	}
	if (!ret)
		ret = canon_put(c, run, (size_t)(p - run));
	return ret ? ret : canon_put(c, "\"", 1);
}

/* jansson's compare_keys(): bytes, then the shorter first. */
static int key_order(const char *a, size_t alen, const char *b, size_t blen)
{
	int r;

	/* Keys mostly differ in their first byte: no call for those. */
	if (alen && blen && *a != *b)
		return (unsigned char)*a - (unsigned char)*b;
	r = memcmp(a, b, alen < blen ? alen : blen);
	return r ? r : (alen > blen) - (alen < blen);
}

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	return key_order(x->key, x->klen, y->key, y->klen);
}

static int canon_value(struct canon *c, const json_t *v, int depth, const char *const *names,
		       size_t nnames, uint32_t *at);
static int canon_digest(struct canon *c, const json_t *v);

/* hashed: each member's value as its digest (AG_AUDIT_REDACT_HASH). */
static int canon_object(struct canon *c, const json_t *v, int depth, const char *const *names,
			size_t nnames, uint32_t *at, bool hashed)
{
	struct member small[CANON_SORT_SMALL], *m = small;
	size_t n = json_object_size(v), i = 0, r = 0;
	void *it;
	int ret;

	if (n > CANON_SORT_SMALL && !(m = malloc(n * sizeof(*m))))
		return -ENOMEM;
	for (it = json_object_iter((json_t *)v); it && i < n;
	     it = json_object_iter_next((json_t *)v, it), i++)
		m[i] = (struct member){ json_object_iter_key(it), json_object_iter_key_len(it),
					json_object_iter_value(it) };
	n = i;
	if (c->ordered) {
		/* As they came: insertion order, which jansson iterates in. */
	} else if (n > CANON_SORT_SMALL) {
		qsort(m, n, sizeof(*m), member_cmp);
	} else {
		for (i = 1; i < n; i++) {
			struct member t = m[i];
			size_t j = i;

			for (; j && member_cmp(&m[j - 1], &t) > 0; j--)
				m[j] = m[j - 1];
			m[j] = t;
		}
	}
	ret = canon_put(c, "{", 1);
	for (i = 0; !ret && i < n; i++) {
		if (i)
			ret = canon_put(c, ",", 1);
		for (; r < nnames && key_order(names[r], strlen(names[r]), m[i].key, m[i].klen) < 0;
		     r++)
			at[r] = (uint32_t)c->len;
		if (!ret)
			ret = canon_string(c, m[i].key, m[i].klen);
		if (!ret)
			ret = canon_put(c, ":", 1);
		if (!ret)
			ret = hashed ? canon_digest(c, m[i].v)
				     : canon_value(c, m[i].v, depth + 1, NULL, 0, NULL);
	}
	for (; r < nnames; r++)
		at[r] = (uint32_t)c->len;
	if (m != small)
		free(m);
	return ret ? ret : canon_put(c, "}", 1);
}

static int canon_int(struct canon *c, long long iv)
{
	char num[24];
	/* Negated as unsigned: LLONG_MIN has no positive twin. */
	char *p = ag_audit_u64(iv < 0 ? 0ULL - (uint64_t)iv : (uint64_t)iv, num + sizeof(num));

	if (iv < 0)
		*--p = '-';
	return canon_put(c, p, (size_t)(num + sizeof(num) - p));
}

static int canon_value(struct canon *c, const json_t *v, int depth, const char *const *names,
		       size_t nnames, uint32_t *at)
{
	char num[100];
	size_t n;
	int ret = 0;

	if (depth > CANON_MAX_DEPTH)
		return -ELOOP;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return canon_object(c, v, depth, names, nnames, at, false);
	case JSON_ARRAY:
		n = json_array_size(v);
		ret = canon_put(c, "[", 1);
		for (size_t i = 0; !ret && i < n; i++) {
			if (i)
				ret = canon_put(c, ",", 1);
			if (!ret)
				ret =
				    canon_value(c, json_array_get(v, i), depth + 1, NULL, 0, NULL);
		}
		return ret ? ret : canon_put(c, "]", 1);
	case JSON_STRING:
		return canon_string(c, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return canon_int(c, json_integer_value(v));
	case JSON_REAL:
		/* Rare in records; jansson's own %.17g clean-up keeps them exact. */
		n = json_dumpb(v, num, sizeof(num), JSON_COMPACT | JSON_ENCODE_ANY);
		return n && n <= sizeof(num) ? canon_put(c, num, n) : -EINVAL;
	case JSON_TRUE:
		return canon_put(c, "true", 4);
	case JSON_FALSE:
		return canon_put(c, "false", 5);
	case JSON_NULL:
		return canon_put(c, "null", 4);
	}
	return -EINVAL;
}

/*
 * The hex SHA-256 of v's canonical form, which is written past the end of
 * what c holds and dropped again: hashing needs no buffer of its own.  No
 * bound beyond memory, as with json_dumps: any size hashes to 64 bytes.
 */
static int canon_hash(struct canon *c, const json_t *v, char hex[AG_AUDIT_HEX_LEN + 1])
{
	size_t start = c->len, max = c->max;
	uint8_t h[AG_AUDIT_HASH_LEN];
	bool nul = c->nul;
	int ret;

	c->max = SIZE_MAX / 2;
	canon_set_lim(c);
	ret = canon_value(c, v, 1, NULL, 0, NULL);
	if (!ret)
		ag_audit_line_hash(c->b + start, c->len - start, h);
	c->len = start;
	c->max = max;
	c->nul = nul;
	canon_set_lim(c);
	if (!ret)
		ag_audit_hex(h, hex);
	return ret;
}

/* {"sha256":"<hex>"}: v as ag_audit_redact's hash mode replaces it. */
static int canon_digest(struct canon *c, const json_t *v)
{
	char hex[AG_AUDIT_HEX_LEN + 1];
	int ret = canon_hash(c, v, hex);

	if (!ret)
		ret = canon_put(c, "{\"sha256\":\"", 11);
	if (!ret)
		ret = canon_put(c, hex, AG_AUDIT_HEX_LEN);
	return ret ? ret : canon_put(c, "\"}", 2);
}

int ag_audit_canon(const json_t *v, size_t max, const char *const *names, size_t nnames,
		   uint32_t *at, struct ag_audit_text *out)
{
	struct canon c = { .max = max };
	int ret;

	if (!v || (nnames && !json_is_object(v)))
		return -EINVAL;
	ret = canon_value(&c, v, 1, names, nnames, at);
	if (ret) {
		free(c.b);
		return ret;
	}
	c.b[c.len] = '\0';
	out->text = c.b;
	out->len = c.len;
	out->nul = c.nul;
	return 0;
}

int ag_json_compact(const json_t *v, size_t max, struct ag_audit_text *out)
{
	struct canon c = { .max = max, .ordered = true };
	int ret;

	if (!v)
		return -EINVAL;
	ret = canon_value(&c, v, 1, NULL, 0, NULL);
	if (ret) {
		free(c.b);
		return ret;
	}
	c.b[c.len] = '\0';
	out->text = c.b;
	out->len = c.len;
	out->nul = c.nul;
	return 0;
}

int ag_audit_canon_hash(const json_t *v, char hex[AG_AUDIT_HEX_LEN + 1])
{
	struct canon c = { .max = 0 };
	int ret = canon_hash(&c, v, hex);

	free(c.b);
	return ret;
}

/* ---- Members ------------------------------------------------------------- */

static bool member_dropped(const struct ag_audit_member *m)
{
	return m->type == AG_AM_JSON && m->redact == AG_AUDIT_REDACT_DROP;
}

/* NULL is null, as json_pack's "O?" has it (jansson's null is static). */
static const json_t *json_value(const struct ag_audit_member *m)
{
	return m->j ? m->j : json_null();
}

/* "a,b" as ["a","b"]; calls fn for each name (not NUL-terminated). */
static int csv_each(const char *list, int (*fn)(void *ctx, const char *s, size_t n), void *ctx)
{
	int ret = 0;

	for (const char *p = list; !ret && *p;) {
		size_t n = strcspn(p, ",");

		ret = fn(ctx, p, n);
		p += n + (p[n] == ',');
	}
	return ret;
}

struct strings {
	struct canon *c;
	size_t i;
};

static int canon_csv_one(void *ctx, const char *s, size_t n)
{
	struct strings *a = ctx;
	int ret = a->i++ ? canon_put(a->c, ",", 1) : 0;

	return ret ? ret : canon_string(a->c, s, n);
}

static int canon_members(struct canon *c, const struct ag_audit_member *m, size_t n, int depth,
			 const char *const *names, size_t nnames, uint32_t *at);

static int canon_member(struct canon *c, const struct ag_audit_member *m, int depth)
{
	struct strings a = { c, 0 };
	int ret;

	if (depth > CANON_MAX_DEPTH)
		return -ELOOP;
	switch (m->type) {
	case AG_AM_STR:
		return m->s ? canon_string(c, m->s, strlen(m->s)) : canon_put(c, "null", 4);
	case AG_AM_INT:
		return canon_int(c, m->i);
	case AG_AM_BOOL:
		return m->b ? canon_put(c, "true", 4) : canon_put(c, "false", 5);
	case AG_AM_JSON:
		if (m->redact == AG_AUDIT_REDACT_FULL)
			return canon_value(c, json_value(m), depth, NULL, 0, NULL);
		return json_is_object(m->j) ? canon_object(c, m->j, depth, NULL, 0, NULL, true)
					    : canon_digest(c, json_value(m));
	case AG_AM_OBJ:
		return canon_members(c, m->obj, m->n, depth, NULL, 0, NULL);
	case AG_AM_STRV:
		ret = canon_put(c, "[", 1);
		for (size_t i = 0; !ret && i < m->n; i++)
			ret = canon_csv_one(&a, m->strv[i], strlen(m->strv[i]));
		return ret ? ret : canon_put(c, "]", 1);
	case AG_AM_CSV:
		ret = canon_put(c, "[", 1);
		if (!ret)
			ret = csv_each(m->s, canon_csv_one, &a);
		return ret ? ret : canon_put(c, "]", 1);
	}
	return -EINVAL;
}

struct sorted {
	const struct ag_audit_member *m;
	size_t klen;
};

static int sorted_cmp(const struct sorted *x, const struct sorted *y)
{
	return key_order(x->m->key, x->klen, y->m->key, y->klen);
}

/*
 * As canon_object, from the members (in any order, each key once); a
 * member named like one of names (the writer's own) is -EEXIST.
 */
static int canon_members(struct canon *c, const struct ag_audit_member *m, size_t n, int depth,
			 const char *const *names, size_t nnames, uint32_t *at)
{
	struct sorted s[AG_AUDIT_MEMBERS_MAX];
	size_t k = 0, r = 0, nlen = nnames ? strlen(names[0]) : 0;
	int ret, cmp = 0;

	if (n > AG_AUDIT_MEMBERS_MAX)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		struct sorted t = { &m[i], strlen(m[i].key) };
		size_t j = k;

		if (member_dropped(&m[i]))
			continue;
		while (j && (cmp = sorted_cmp(&s[j - 1], &t)) >= 0) {
			/* Fail closed: a record's shape is the code's, and names a key once. */
			if (!cmp)
				return -EINVAL;
			s[j] = s[j - 1];
			j--;
		}
		s[j] = t;
		k++;
	}
	ret = canon_put(c, "{", 1);
	for (size_t i = 0; !ret && i < k; i++) {
		if (i)
			ret = canon_put(c, ",", 1);
		for (; r < nnames && (cmp = key_order(names[r], nlen, s[i].m->key, s[i].klen)) <= 0;
		     nlen = ++r < nnames ? strlen(names[r]) : 0) {
			if (!cmp)
				return -EEXIST;
			at[r] = (uint32_t)c->len;
		}
		if (!ret)
			ret = canon_string(c, s[i].m->key, s[i].klen);
		if (!ret)
			ret = canon_put(c, ":", 1);
		if (!ret)
			ret = canon_member(c, s[i].m, depth + 1);
	}
	for (; r < nnames; r++)
		at[r] = (uint32_t)c->len;
	return ret ? ret : canon_put(c, "}", 1);
}

int ag_audit_canon_members(struct ag_audit_buf *out, size_t max, const struct ag_audit_member *m,
			   size_t n, const char *const *names, size_t nnames, uint32_t *at)
{
	struct canon c = { .b = out->b, .cap = out->cap, .max = max };
	int ret;

	canon_set_lim(&c);
	ret = canon_members(&c, m, n, 1, names, nnames, at);
	out->b = c.b;
	out->cap = c.cap;
	out->len = ret ? 0 : c.len;
	out->nul = c.nul;
	if (!ret)
		c.b[c.len] = '\0';
	return ret;
}

void ag_audit_buf_trim(struct ag_audit_buf *b)
{
	/* A rare large record does not keep its memory. */
	if (b->cap > AG_AUDIT_BUF_KEEP) {
		free(b->b);
		*b = (struct ag_audit_buf){ 0 };
	}
}

void ag_audit_buf_free(struct ag_audit_buf *b)
{
	free(b->b);
	*b = (struct ag_audit_buf){ 0 };
}

const struct ag_audit_member *ag_audit_member_get(const struct ag_audit_member *m, size_t n,
						  const char *key)
{
	/* The first byte first: most keys differ there, and a record is
	 * searched for every reserved key, then by the metrics. */
	for (size_t i = 0; i < n; i++)
		if (m[i].key[0] == key[0] && !strcmp(m[i].key, key) && !member_dropped(&m[i]))
			return &m[i];
	return NULL;
}

/* ---- The same record as a jansson tree ----------------------------------- */

static int csv_json_one(void *ctx, const char *s, size_t n)
{
	return json_array_append_new(ctx, json_stringn(s, n));
}

static json_t *member_json(const struct ag_audit_member *m)
{
	json_t *v = NULL;

	switch (m->type) {
	case AG_AM_STR:
		return m->s ? json_string(m->s) : json_null();
	case AG_AM_INT:
		return json_integer(m->i);
	case AG_AM_BOOL:
		return json_boolean(m->b);
	case AG_AM_JSON:
		return json_deep_copy(json_value(m));
	case AG_AM_OBJ:
		return ag_audit_members_json(m->obj, m->n);
	case AG_AM_STRV:
		v = json_array();
		for (size_t i = 0; v && i < m->n; i++)
			if (json_array_append_new(v, json_string(m->strv[i]))) {
				json_decref(v);
				v = NULL;
			}
		return v;
	case AG_AM_CSV:
		v = json_array();
		if (v && csv_each(m->s, csv_json_one, v)) {
			json_decref(v);
			v = NULL;
		}
		return v;
	}
	return NULL;
}

json_t *ag_audit_members_json(const struct ag_audit_member *m, size_t n)
{
	json_t *o = json_object();
	struct ag_err err;

	for (size_t i = 0; o && i < n; i++) {
		if (member_dropped(&m[i]))
			continue;
		/* Each key once, as ag_audit_canon_members wants. */
		if (json_object_get(o, m[i].key) ||
		    json_object_set_new(o, m[i].key, member_json(&m[i])) ||
		    (m[i].type == AG_AM_JSON && ag_audit_redact(o, m[i].key, m[i].redact, &err))) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}
