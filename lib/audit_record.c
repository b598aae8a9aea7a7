// SPDX-License-Identifier: GPL-2.0
/* Audit records: event kinds, timestamps, canonical JSON and argument redaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "buf.h"

static const char *const kinds[] = {
	"connect",	  "decision",	       "result",
	"approval",	  "policy_reload",     "checkpoint",
	"kernel_refusal", "daemon_start",      "daemon_stop",
	"tool",		  "credential_reload", "dns",
	"anomaly",	  "policy_source",
};

const char *ag_audit_kind_name(const char *kind)
{
	for (size_t i = 0; kind && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kind, kinds[i]))
			return kinds[i];
	return NULL;
}

void ag_audit_format_ts(const struct timespec *ts, char out[AG_AUDIT_TS_LEN])
{
	/* The committer stamps many records per second: convert each second once. */
	static __thread char date[20];
	static __thread time_t date_sec;
	static __thread bool date_ok;
	unsigned long ns = (unsigned long)ts->tv_nsec % 1000000000UL;
	struct tm tm;

	if (!date_ok || ts->tv_sec != date_sec) {
		/* Years beyond 9999 would not fit: such a clock is wrong anyway. */
		date_ok = gmtime_r(&ts->tv_sec, &tm) && tm.tm_year + 1900 <= 9999 &&
			  tm.tm_year + 1900 >= 0 &&
			  strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 19;
		if (!date_ok) {
			snprintf(out, AG_AUDIT_TS_LEN, "%s", "0000-00-00T00:00:00.000000000Z");
			return;
		}
		date_sec = ts->tv_sec;
	}
	memcpy(out, date, 19);
	out[19] = '.';
	for (int i = 28; i > 19; i--, ns /= 10)
		out[i] = (char)('0' + ns % 10);
	out[29] = 'Z';
	out[30] = '\0';
}

static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

void ag_audit_ts_add_us(struct timespec *t, uint64_t us)
{
	t->tv_sec += (time_t)(us / 1000000);
	t->tv_nsec += (long)(us % 1000000) * 1000;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

bool ag_audit_ts_reached(const struct timespec *now, const struct timespec *t)
{
	return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

/*
 * Accepts "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (UTC only, as the writer emits)
 * and a bare "YYYY-MM-DD" meaning midnight, for query bounds.
 */
int ag_audit_parse_ts(const char *s, struct timespec *ts)
{
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0;
	long nsec = 0;
	size_t len = strlen(s);
	const char *p;

	if (len < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return -EINVAL;
	p = s + 10;
	if (*p) {
		if ((*p != 'T' && *p != 't') || len < 20 || !digits(p + 1, 2, &h) || p[3] != ':' ||
		    !digits(p + 4, 2, &mi) || p[6] != ':' || !digits(p + 7, 2, &sec))
			return -EINVAL;
		p += 9;
		if (*p == '.') {
			long scale = 100000000L;
			int n = 0;

			for (p++; *p >= '0' && *p <= '9'; p++, n++)
				if (n < 9) {
					nsec += (*p - '0') * scale;
					scale /= 10;
				}
			if (!n)
				return -EINVAL;
		}
		if ((*p != 'Z' && *p != 'z') || p[1])
			return -EINVAL;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	ts->tv_sec = timegm(&tm);
	ts->tv_nsec = nsec;
	return 0;
}

int ag_audit_redact_parse(const char *name, enum ag_audit_redact *mode)
{
	if (!strcmp(name, "full"))
		*mode = AG_AUDIT_REDACT_FULL;
	else if (!strcmp(name, "hash"))
		*mode = AG_AUDIT_REDACT_HASH;
	else if (!strcmp(name, "drop"))
		*mode = AG_AUDIT_REDACT_DROP;
	else
		return -EINVAL;
	return 0;
}

char *ag_audit_u64(uint64_t v, char *end)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

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
	bool nul;
};

struct member {
	const char *key;
	size_t klen;
	const json_t *v;
};

/* Room for n more bytes and the final NUL. */
static int __attribute__((noinline)) canon_grow(struct canon *c, size_t n)
{
	if (n > c->max - c->len)
		return -E2BIG;
	/* Never past max + 1, so that a put beyond max always lands here. */
	return ag_grow(&c->b, &c->cap, c->len + n + 1, 1, 0, c->max + 1);
}

/* Inlined: it runs for every token, and nearly always fits. */
static inline int canon_put(struct canon *c, const void *p, size_t n)
{
	int ret;

	if (n >= c->cap - c->len && (ret = canon_grow(c, n)))
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
	int r = memcmp(a, b, alen < blen ? alen : blen);

	return r ? r : (alen > blen) - (alen < blen);
}

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	return key_order(x->key, x->klen, y->key, y->klen);
}

static int canon_value(struct canon *c, const json_t *v, int depth, const char *const *names,
		       size_t nnames, uint32_t *at);

static int canon_object(struct canon *c, const json_t *v, int depth, const char *const *names,
			size_t nnames, uint32_t *at)
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
	if (n > CANON_SORT_SMALL) {
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
			ret = canon_value(c, m[i].v, depth + 1, NULL, 0, NULL);
	}
	for (; r < nnames; r++)
		at[r] = (uint32_t)c->len;
	if (m != small)
		free(m);
	return ret ? ret : canon_put(c, "}", 1);
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
		return canon_object(c, v, depth, names, nnames, at);
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
	case JSON_INTEGER: {
		json_int_t iv = json_integer_value(v);
		/* Negated as unsigned: LLONG_MIN has no positive twin. */
		char *p =
		    ag_audit_u64(iv < 0 ? 0ULL - (uint64_t)iv : (uint64_t)iv, num + sizeof(num));

		if (iv < 0)
			*--p = '-';
		return canon_put(c, p, (size_t)(num + sizeof(num) - p));
	}
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

int ag_audit_canon(const json_t *v, size_t max, const char *const *names, size_t nnames,
		   uint32_t *at, struct ag_audit_text *out)
{
	struct canon c = { .cap = max < 512 ? max + 1 : 512, .max = max };
	int ret;

	if (!v || (nnames && !json_is_object(v)))
		return -EINVAL;
	c.b = malloc(c.cap);
	if (!c.b)
		return -ENOMEM;
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

/* {"sha256": hex of the value's compact, key-sorted JSON}. */
static json_t *hashed(const json_t *v)
{
	uint8_t h[AG_AUDIT_HASH_LEN];
	char hex[AG_AUDIT_HEX_LEN + 1];
	struct ag_audit_text t;

	/* No bound beyond memory, as with json_dumps: any size hashes to 64 bytes. */
	if (ag_audit_canon(v, SIZE_MAX / 2, NULL, 0, NULL, &t))
		return NULL;
	ag_audit_line_hash(t.text, t.len, h);
	free(t.text);
	ag_audit_hex(h, hex);
	return json_pack("{ss}", "sha256", hex);
}

int ag_audit_redact(json_t *fields, const char *key, enum ag_audit_redact mode, struct ag_err *err)
{
	json_t *v = json_object_get(fields, key), *nv;
	const char *name;
	json_t *member;

	if (!json_is_object(fields))
		return ag_errf(err, -EINVAL, "audit redaction: fields is not an object");
	if (!v || mode == AG_AUDIT_REDACT_FULL)
		return 0;
	if (mode == AG_AUDIT_REDACT_DROP)
		return json_object_del(fields, key) ? -ENOMEM : 0;
	if (json_is_object(v)) {
		json_object_foreach(v, name, member)
		{
			nv = hashed(member);
			if (!nv || json_object_set_new(v, name, nv))
				goto nomem;
		}
		return 0;
	}
	nv = hashed(v);
	if (!nv || json_object_set_new(fields, key, nv))
		goto nomem;
	return 0;
nomem:
	return ag_errf(err, -ENOMEM, "audit redaction of \"%s\": out of memory", key);
}
