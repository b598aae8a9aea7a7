// SPDX-License-Identifier: GPL-2.0
/*
 * The JSON-RPC envelope of a response body without a tree (jsonrpc_scan.h).
 *
 * A recursive descent over RFC 8259 with jansson 2.14's decoding rules
 * where RFC 8259 leaves a choice: a string is strict UTF-8 without
 * control characters, \u0000 or an unpaired surrogate escape; an integer
 * is what fits a long long (18 digits here), a real what does not overflow
 * a double (an integer part and exponent summing to at most 300 here).
 * Every limit below refuses, never truncates: the caller asks jansson.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc_scan.h"

#define SCAN_DEPTH 64
#define SCAN_KEYS 128 /* keys of the objects open at once */
#define INT_DIGITS 18 /* always fits a long long */
#define REAL_MAGNITUDE 300

enum role {
	R_NONE,
	R_MSG,	  /* a message: its id, method, error, result are noted */
	R_RESULT, /* a message's result: its isError and tools are noted */
};

enum vtype { V_OBJECT, V_ARRAY, V_STRING, V_INT, V_REAL, V_TRUE, V_FALSE, V_NULL };

struct val {
	enum vtype type;
	const char *str; /* V_STRING: the raw bytes between the quotes */
	size_t len;
	bool escaped;
	long long i;		 /* V_INT */
	const char *start, *end; /* the value's bytes */
};

struct key {
	const char *p;
	size_t len;
};

struct scanner {
	const unsigned char *p, *end;
	int depth;
	size_t nr_keys;
	struct key keys[SCAN_KEYS];
};

static int value(struct scanner *s, enum role role, struct ag_scan_msg *m, struct val *v);

static void ws(struct scanner *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool peek(const struct scanner *s, unsigned char c)
{
	return s->p < s->end && *s->p == c;
}

static int hex4(struct scanner *s, unsigned int *out)
{
	unsigned int v = 0;

	if (s->end - s->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = *s->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* After "\u": one code point, a surrogate pair as one; jansson refuses U+0000. */
static int unicode_escape(struct scanner *s)
{
	unsigned int v, lo;

	if (hex4(s, &v) || !v || (v >= 0xDC00 && v <= 0xDFFF))
		return -1;
	if (v < 0xD800 || v > 0xDBFF)
		return 0;
	if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
		return -1;
	s->p += 2;
	return hex4(s, &lo) || lo < 0xDC00 || lo > 0xDFFF ? -1 : 0;
}

/* One UTF-8 sequence of 2 to 4 bytes: no overlong form, surrogate or value over U+10FFFF. */
static int utf8_seq(struct scanner *s)
{
	unsigned char c = *s->p;
	unsigned int n, v;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2, v = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, v = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, v = c & 0x07;
	else
		return -1;
	if ((size_t)(s->end - s->p) < n)
		return -1;
	for (unsigned int i = 1; i < n; i++) {
		if ((s->p[i] & 0xC0) != 0x80)
			return -1;
		v = v << 6 | (s->p[i] & 0x3F);
	}
	if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
	    (n == 4 && (v < 0x10000 || v > 0x10FFFF)))
		return -1;
	s->p += n;
	return 0;
}

static int string(struct scanner *s, struct val *v)
{
	v->type = V_STRING;
	v->escaped = false;
	v->str = (const char *)++s->p;
	while (s->p < s->end) {
		unsigned char c = *s->p;

		if (c == '"') {
			v->len = (size_t)((const char *)s->p - v->str);
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			if (utf8_seq(s))
				return -1;
			continue;
		}
		s->p++;
		if (c != '\\')
			continue;
		v->escaped = true;
		if (s->p == s->end)
			return -1;
		c = *s->p++;
		if (c == 'u') {
			if (unicode_escape(s))
				return -1;
		} else if (!c || !strchr("\"\\/bfnrt", c)) {
			return -1;
		}
	}
	return -1;
}

static size_t digits(struct scanner *s)
{
	const unsigned char *start = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return (size_t)(s->p - start);
}

static int number(struct scanner *s, struct val *v)
{
	const unsigned char *start;
	bool neg = peek(s, '-'), exp_neg = false;
	size_t int_digits, exp_digits;
	unsigned long exp = 0;

	if (neg)
		s->p++;
	start = s->p;
	int_digits = digits(s);
	/* No leading zero, as jansson: "01" is not a number. */
	if (!int_digits || (int_digits > 1 && *start == '0'))
		return -1;
	v->type = V_INT;
	if (peek(s, '.')) {
		s->p++;
		if (!digits(s))
			return -1;
		v->type = V_REAL;
	}
	if (peek(s, 'e') || peek(s, 'E')) {
		s->p++;
		if (peek(s, '+') || peek(s, '-'))
			exp_neg = *s->p++ == '-';
		while (peek(s, '0'))
			s->p++;
		exp_digits = digits(s);
		if (exp_digits > 4)
			return -1;
		for (size_t i = exp_digits; i; i--)
			exp = exp * 10 + (s->p[-(long)i] - '0');
		if (!exp_digits && s->p[-1] != '0')
			return -1; /* no digit at all */
		v->type = V_REAL;
	}
	if (v->type == V_REAL)
		/* |value| < 10^(int_digits + exp): no overflow that far. */
		return int_digits + (exp_neg ? 0 : exp) <= REAL_MAGNITUDE ? 0 : -1;
	if (int_digits > INT_DIGITS)
		return -1;
	v->i = 0;
	for (size_t i = 0; i < int_digits; i++)
		v->i = v->i * 10 + (start[i] - '0');
	if (neg)
		v->i = -v->i;
	return 0;
}

static int literal(struct scanner *s, const char *word, enum vtype type, struct val *v)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
		return -1;
	s->p += n;
	v->type = type;
	return 0;
}

static bool key_is(const struct val *k, const char *name)
{
	return k->len == strlen(name) && !memcmp(k->str, name, k->len);
}

/* A member of a message; the id is one the pending set can be keyed by, or refused. */
static int note_msg(struct ag_scan_msg *m, const struct val *k, const struct val *v)
{
	if (key_is(k, "method")) {
		m->kind = AG_SCAN_METHOD;
	} else if (key_is(k, "error")) {
		m->has_error = true;
	} else if (key_is(k, "result")) {
		m->has_result = true;
		m->result_object = v->type == V_OBJECT;
		m->result = v->start;
		m->result_len = v->end - v->start;
	} else if (key_is(k, "id")) {
		if (v->type == V_STRING && v->escaped)
			return -1;
		m->id_type = v->type == V_STRING ? AG_SCAN_ID_STRING
			     : v->type == V_INT	 ? AG_SCAN_ID_INT
						 : AG_SCAN_ID_OTHER;
		m->id_int = v->i;
		m->id_str = v->str;
		m->id_len = v->len;
	}
	return 0;
}

static void note_result(struct ag_scan_msg *m, const struct val *k, const struct val *v)
{
	if (key_is(k, "isError"))
		m->result_is_error = v->type == V_TRUE;
	else if (key_is(k, "tools"))
		m->result_tools = v->type == V_ARRAY;
}

/* Past an opening bracket: 1 if the container is empty (and closed), 0 if a member follows. */
static int open_container(struct scanner *s, unsigned char close)
{
	if (++s->depth > SCAN_DEPTH)
		return -1;
	s->p++;
	ws(s);
	if (!peek(s, close))
		return 0;
	s->p++;
	s->depth--;
	return 1;
}

/* After a member: 1 past the closing bracket, 0 past a comma, -1 at anything else. */
static int next_member(struct scanner *s, unsigned char close)
{
	ws(s);
	if (peek(s, close)) {
		s->p++;
		s->depth--;
		return 1;
	}
	if (!peek(s, ','))
		return -1;
	s->p++;
	ws(s);
	return 0;
}

static int object(struct scanner *s, enum role role, struct ag_scan_msg *m)
{
	size_t base = s->nr_keys;
	int ret = open_container(s, '}');

	while (!ret) {
		struct val k, v;

		/* Keys compared as bytes: an escaped one could equal another decoded. */
		if (!peek(s, '"') || string(s, &k) || k.escaped || s->nr_keys == SCAN_KEYS)
			return -1;
		for (size_t i = base; i < s->nr_keys; i++)
			if (s->keys[i].len == k.len && !memcmp(s->keys[i].p, k.str, k.len))
				return -1;
		s->keys[s->nr_keys++] = (struct key){ k.str, k.len };
		ws(s);
		if (!peek(s, ':'))
			return -1;
		s->p++;
		ws(s);
		if (value(s, role == R_MSG && key_is(&k, "result") ? R_RESULT : R_NONE, m, &v))
			return -1;
		if (role == R_MSG && note_msg(m, &k, &v))
			return -1;
		if (role == R_RESULT)
			note_result(m, &k, &v);
		ret = next_member(s, '}');
	}
	s->nr_keys = base;
	return ret < 0 ? -1 : 0;
}

/* An array; a batch's elements are messages (batch non-NULL). */
static int array(struct scanner *s, struct ag_scan *batch)
{
	int ret = open_container(s, ']');

	while (!ret) {
		struct ag_scan_msg *m = NULL;
		struct val v;

		if (batch) {
			if (batch->nr == AG_JSONRPC_SCAN_MAX)
				return -1;
			m = &batch->msg[batch->nr++];
			memset(m, 0, sizeof(*m));
		}
		if (value(s, m ? R_MSG : R_NONE, m, &v))
			return -1;
		ret = next_member(s, ']');
	}
	return ret < 0 ? -1 : 0;
}

static int one_value(struct scanner *s, enum role role, struct ag_scan_msg *m, struct val *v)
{
	switch (*s->p) {
	case '{':
		v->type = V_OBJECT;
		if (role == R_MSG)
			m->kind = AG_SCAN_REPLY;
		return object(s, role, m);
	case '[':
		v->type = V_ARRAY;
		return array(s, NULL);
	case '"':
		return string(s, v);
	case 't':
		return literal(s, "true", V_TRUE, v);
	case 'f':
		return literal(s, "false", V_FALSE, v);
	case 'n':
		return literal(s, "null", V_NULL, v);
	default:
		return number(s, v);
	}
}

static int value(struct scanner *s, enum role role, struct ag_scan_msg *m, struct val *v)
{
	int ret;

	if (s->p == s->end)
		return -1;
	v->start = (const char *)s->p;
	ret = one_value(s, role, m, v);
	v->end = (const char *)s->p;
	return ret;
}

int ag_jsonrpc_scan(const void *data, size_t len, struct ag_scan *out)
{
	struct scanner s = { .p = data, .end = (const unsigned char *)data + len };
	struct val v;
	int ret;

	memset(out, 0, offsetof(struct ag_scan, msg));
	ws(&s);
	/* jansson without JSON_DECODE_ANY: an array or an object. */
	if (peek(&s, '[')) {
		out->batch = true;
		ret = array(&s, out);
	} else if (peek(&s, '{')) {
		out->nr = 1;
		memset(&out->msg[0], 0, sizeof(out->msg[0]));
		ret = value(&s, R_MSG, &out->msg[0], &v);
	} else {
		return -EINVAL;
	}
	ws(&s);
	return ret || s.p != s.end ? -EINVAL : 0;
}

static unsigned int hex_value(const char *p)
{
	unsigned int v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 4 | (unsigned int)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
	return v;
}

/* An escaped string the scanner accepted, decoded into out (at most len bytes). */
static size_t decode(const char *in, size_t len, char *out)
{
	static const char plain[] = "\"\\/\b\f\n\r\t", esc[] = "\"\\/bfnrt";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned int cp;

		if (in[i] != '\\') {
			out[o++] = in[i];
			continue;
		}
		if (in[++i] != 'u') {
			out[o++] = plain[strchr(esc, in[i]) - esc];
			continue;
		}
		/* \uXXXX, 6 bytes, makes at most 3; a pair, 12, makes 4. */
		cp = hex_value(in + i + 1);
		i += 4;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			cp = 0x10000 + ((cp - 0xD800) << 10) + (hex_value(in + i + 3) - 0xDC00);
			i += 6;
		}
		if (cp < 0x80) {
			out[o++] = (char)cp;
		} else if (cp < 0x800) {
			out[o++] = (char)(0xC0 | cp >> 6);
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out[o++] = (char)(0xE0 | cp >> 12);
			out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else {
			out[o++] = (char)(0xF0 | cp >> 18);
			out[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
			out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	return o;
}

int ag_jsonrpc_scan_strings(const char *value, size_t len,
			    int (*fn)(void *arg, const char *s, size_t len), void *arg)
{
	const char *p = value, *end = value + len;
	char *copy = NULL;
	int ret = 0;

	/* Accepted JSON: every '"' outside a string opens one, and a key is followed by ':'. */
	while (!ret && (p = memchr(p, '"', (size_t)(end - p)))) {
		const char *start = ++p, *q;
		bool escaped = false;

		for (; p < end && *p != '"'; p++)
			if (*p == '\\') {
				escaped = true;
				p++;
			}
		if (p >= end) {
			ret = -EINVAL; /* not what the scanner accepted */
			break;
		}
		for (q = p + 1; q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n');
		     q++)
			;
		p++;
		if (q < end && *q == ':')
			continue;
		if (!escaped) {
			ret = fn(arg, start, (size_t)(p - 1 - start));
			continue;
		}
		/* Decoded, a string is never longer than its escaped form. */
		if (!copy && !(copy = malloc(len)))
			return -ENOMEM;
		ret = fn(arg, copy, decode(start, (size_t)(p - 1 - start), copy));
	}
	free(copy);
	return ret;
}
