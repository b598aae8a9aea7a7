// SPDX-License-Identifier: GPL-2.0
/* Recursive-descent parser for the Cedar subset. */
#define AG_POLICY_INTERNAL
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	struct agp_lexer lx;
	struct agp_token tok;
	struct ag_arena *a;
	const char *file;
	struct ag_policy_error *err;
	int depth;
	bool failed;
};

void agp_error(struct ag_policy_error *err, int line, int col, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->line = line;
	err->column = col;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static void describe(const struct agp_token *t, char *buf, size_t len)
{
	switch (t->kind) {
	case AGP_T_EOF:
		snprintf(buf, len, "end of input");
		break;
	case AGP_T_IDENT:
		snprintf(buf, len, "`%.*s`", (int)(t->len > 40 ? 40 : t->len), t->s);
		break;
	case AGP_T_STRING:
		snprintf(buf, len, "string \"%.*s\"", (int)(t->len > 40 ? 40 : t->len), t->s);
		break;
	case AGP_T_LONG:
		snprintf(buf, len, "number %.*s", (int)(t->len > 40 ? 40 : t->len), t->s);
		break;
	case AGP_T_PUNCT:
		snprintf(buf, len, "`%s`", t->op);
		break;
	case AGP_T_ERROR:
		if (t->s[0] > ' ' && t->s[0] < 127)
			snprintf(buf, len, "`%c`", t->s[0]);
		else
			snprintf(buf, len, "byte 0x%02x", (unsigned char)t->s[0]);
		break;
	}
}

/* Reports at the current token; only the first error of a parse is kept. */
static void *perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *perr(struct parser *p, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (p->failed)
		return NULL;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	agp_error(p->err, (int)p->tok.line, (int)p->tok.col, "%s:%u:%u: %s", p->file, p->tok.line,
		  p->tok.col, what);
	return NULL;
}

static void *expected(struct parser *p, const char *what)
{
	char found[128];

	if (p->tok.kind == AGP_T_ERROR)
		return perr(p, "%s", p->lx.err);
	describe(&p->tok, found, sizeof(found));
	return perr(p, "expected %s, found %s", what, found);
}

static void *oom(struct parser *p)
{
	return perr(p, "out of memory");
}

static void next(struct parser *p)
{
	agp_lex_next(&p->lx, &p->tok);
}

static bool is_punct(const struct parser *p, const char *op)
{
	return p->tok.kind == AGP_T_PUNCT && !strcmp(p->tok.op, op);
}

static bool is_kw(const struct parser *p, const char *kw)
{
	size_t n = strlen(kw);

	return p->tok.kind == AGP_T_IDENT && p->tok.len == n && !memcmp(p->tok.s, kw, n);
}

static bool accept(struct parser *p, const char *op)
{
	if (!is_punct(p, op))
		return false;
	next(p);
	return true;
}

static bool expect(struct parser *p, const char *op)
{
	char what[16];

	if (accept(p, op))
		return true;
	snprintf(what, sizeof(what), "`%s`", op);
	expected(p, what);
	return false;
}

static struct agp_expr *node(struct parser *p, enum agp_ekind kind, const struct agp_token *at)
{
	struct agp_expr *e = agp_alloc(p->a, sizeof(*e));

	if (!e)
		return oom(p);
	e->kind = kind;
	e->line = at->line;
	e->col = at->col;
	e->height = 1;
	return e;
}

/* Tracks tree height so evaluation recursion stays bounded on long chains. */
static bool adopt(struct parser *p, struct agp_expr *parent, const struct agp_expr *kid)
{
	if (kid->height + 1 > parent->height)
		parent->height = kid->height + 1;
	if (parent->height > AGP_MAX_HEIGHT) {
		perr(p, "expression too large (tree deeper than %d)", AGP_MAX_HEIGHT);
		return false;
	}
	return true;
}

static struct agp_expr *binary(struct parser *p, enum agp_ekind kind, int op,
			       const struct agp_token *at, struct agp_expr *l, struct agp_expr *r)
{
	struct agp_expr *e;

	if (!l || !r)
		return NULL;
	e = node(p, kind, at);
	if (!e)
		return NULL;
	e->op = (uint8_t)op;
	e->kid[0] = l;
	e->kid[1] = r;
	if (!adopt(p, e, l) || !adopt(p, e, r))
		return NULL;
	return e;
}

static char *take_ident(struct parser *p)
{
	char *s = agp_strndup(p->a, p->tok.s, p->tok.len);

	if (!s)
		return oom(p);
	next(p);
	return s;
}

static char *take_string(struct parser *p, uint32_t *len)
{
	const char *msg = NULL;
	char *s;
	long n = agp_unescape(p->a, p->tok.s, p->tok.len, &s, NULL, &msg);

	if (n < 0)
		return perr(p, "%s", msg);
	if (len)
		*len = (uint32_t)n;
	next(p);
	return s;
}

/* Path `A::B` continuing after an already consumed first identifier; stops
 * before `::"`. */
static char *path_rest(struct parser *p, char *first, uint32_t *len)
{
	char *path = first;
	size_t n = strlen(first);

	while (is_punct(p, "::")) {
		struct agp_lexer save = p->lx;
		struct agp_token savet = p->tok;
		char *joined;

		next(p);
		if (p->tok.kind != AGP_T_IDENT) {
			p->lx = save;
			p->tok = savet;
			break;
		}
		if (n + 2 + p->tok.len > AGP_MAX_FILE)
			return perr(p, "name too long");
		joined = agp_alloc(p->a, n + 2 + p->tok.len + 1);
		if (!joined)
			return oom(p);
		memcpy(joined, path, n);
		memcpy(joined + n, "::", 2);
		memcpy(joined + n + 2, p->tok.s, p->tok.len);
		n += 2 + p->tok.len;
		path = joined;
		next(p);
	}
	*len = (uint32_t)n;
	return path;
}

static bool parse_uid_after_path(struct parser *p, char *type, uint32_t tlen, struct agp_uid *uid)
{
	if (!accept(p, "::")) {
		expected(p, "`::\"id\"` after entity type");
		return false;
	}
	if (p->tok.kind != AGP_T_STRING) {
		expected(p, "entity id string");
		return false;
	}
	uid->type = type;
	uid->tlen = tlen;
	uid->id = take_string(p, &uid->ilen);
	if (!uid->id)
		return false;
	agp_uid_seal(uid);
	return true;
}

static bool parse_uid(struct parser *p, struct agp_uid *uid)
{
	char *type;
	uint32_t tlen;

	if (p->tok.kind != AGP_T_IDENT) {
		expected(p, "entity reference `Type::\"id\"`");
		return false;
	}
	type = take_ident(p);
	if (!type)
		return false;
	type = path_rest(p, type, &tlen);
	return type && parse_uid_after_path(p, type, tlen, uid);
}

static struct agp_expr *parse_expr(struct parser *p);
static struct agp_expr *parse_add(struct parser *p);

/* Comma-separated expressions up to close; returns the count or -1. */
static long parse_list(struct parser *p, const char *close, struct agp_expr ***out)
{
	struct agp_expr **items = NULL, **grown;
	size_t n = 0, cap = 0;

	if (accept(p, close)) {
		*out = NULL;
		return 0;
	}
	for (;;) {
		struct agp_expr *e = parse_expr(p);

		if (!e)
			return -1;
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			grown = agp_alloc_array(p->a, cap, sizeof(*grown));
			if (!grown || cap > UINT32_MAX) {
				oom(p);
				return -1;
			}
			if (n)
				memcpy(grown, items, n * sizeof(*items));
			items = grown;
		}
		items[n++] = e;
		if (accept(p, close))
			break;
		if (!expect(p, ","))
			return -1;
	}
	*out = items;
	return (long)n;
}

static struct agp_expr *finish_list(struct parser *p, struct agp_expr *e, long n,
				    struct agp_expr **items)
{
	if (n < 0)
		return NULL;
	e->kids = items;
	e->n = (uint32_t)n;
	for (long i = 0; i < n; i++)
		if (!adopt(p, e, items[i]))
			return NULL;
	return e;
}

static struct agp_expr *parse_record(struct parser *p, const struct agp_token *at)
{
	struct agp_expr *e = node(p, AGP_E_RECORD, at);
	size_t cap = 0;

	if (!e)
		return NULL;
	if (accept(p, "}"))
		return e;
	for (;;) {
		const char *key;
		uint32_t klen;
		struct agp_expr *v;

		if (p->tok.kind == AGP_T_IDENT) {
			klen = p->tok.len;
			key = take_ident(p);
		} else if (p->tok.kind == AGP_T_STRING) {
			key = take_string(p, &klen);
		} else {
			return expected(p, "record key");
		}
		if (!key)
			return NULL;
		for (uint32_t i = 0; i < e->n; i++)
			if (e->klens[i] == klen && !memcmp(e->keys[i], key, klen))
				return perr(p, "duplicate record key \"%s\"", key);
		if (!expect(p, ":"))
			return NULL;
		v = parse_expr(p);
		if (!v)
			return NULL;
		if (e->n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			const char **keys = agp_alloc_array(p->a, ncap, sizeof(*keys));
			uint32_t *klens = agp_alloc_array(p->a, ncap, sizeof(*klens));
			struct agp_expr **kids = agp_alloc_array(p->a, ncap, sizeof(*kids));

			if (!keys || !klens || !kids || ncap > UINT32_MAX)
				return oom(p);
			if (e->n) {
				memcpy(keys, e->keys, e->n * sizeof(*keys));
				memcpy(klens, e->klens, e->n * sizeof(*klens));
				memcpy(kids, e->kids, e->n * sizeof(*kids));
			}
			e->keys = keys;
			e->klens = klens;
			e->kids = kids;
			cap = ncap;
		}
		e->keys[e->n] = key;
		e->klens[e->n] = klen;
		e->kids[e->n++] = v;
		if (!adopt(p, e, v))
			return NULL;
		if (accept(p, "}"))
			return e;
		if (!expect(p, ","))
			return NULL;
	}
}

static const char *const vars[] = { "principal", "action", "resource", "context" };

static struct agp_expr *parse_name_primary(struct parser *p, const struct agp_token *at)
{
	struct agp_expr *e;
	uint32_t tlen;
	char *first, *path;
	struct agp_uid *uid;

	for (size_t i = 0; i < 4; i++) {
		if (is_kw(p, vars[i])) {
			next(p);
			e = node(p, AGP_E_VAR, at);
			if (e)
				e->op = (uint8_t)i;
			return e;
		}
	}
	if (is_kw(p, "true") || is_kw(p, "false")) {
		e = node(p, AGP_E_LIT, at);
		if (!e)
			return NULL;
		e->lit.type = AGP_BOOL;
		e->lit.b = is_kw(p, "true");
		next(p);
		return e;
	}
	first = take_ident(p);
	if (!first)
		return NULL;
	path = path_rest(p, first, &tlen);
	if (!path)
		return NULL;
	if (is_punct(p, "(")) {
		long n;
		struct agp_expr **args;

		if (strcmp(path, "ip"))
			return perr(p, "unknown function `%s` (supported: ip)", path);
		next(p);
		e = node(p, AGP_E_IP, at);
		if (!e)
			return NULL;
		n = parse_list(p, ")", &args);
		if (n < 0)
			return NULL;
		if (n != 1)
			return perr(p, "ip() takes one argument, %ld given", n);
		e->kid[0] = args[0];
		return adopt(p, e, args[0]) ? e : NULL;
	}
	if (!is_punct(p, "::"))
		return expected(p, "`::` after entity type (or `(` for a function call)");
	uid = agp_alloc(p->a, sizeof(*uid));
	if (!uid)
		return oom(p);
	if (!parse_uid_after_path(p, path, tlen, uid))
		return NULL;
	e = node(p, AGP_E_LIT, at);
	if (!e)
		return NULL;
	e->lit.type = AGP_ENTITY;
	e->lit.uid = uid;
	return e;
}

static struct agp_expr *parse_primary(struct parser *p)
{
	struct agp_token at = p->tok;
	struct agp_expr *e, **items;
	long n;

	switch (p->tok.kind) {
	case AGP_T_LONG:
		if (p->tok.num > INT64_MAX)
			return perr(p, "integer literal too large");
		e = node(p, AGP_E_LIT, &at);
		if (!e)
			return NULL;
		e->lit.type = AGP_LONG;
		e->lit.l = (int64_t)p->tok.num;
		next(p);
		return e;
	case AGP_T_STRING:
		e = node(p, AGP_E_LIT, &at);
		if (!e)
			return NULL;
		e->lit.type = AGP_STRING;
		e->lit.s = take_string(p, &e->lit.n);
		return e->lit.s ? e : NULL;
	case AGP_T_IDENT:
		return parse_name_primary(p, &at);
	case AGP_T_PUNCT:
		if (accept(p, "(")) {
			e = parse_expr(p);
			return e && expect(p, ")") ? e : NULL;
		}
		if (accept(p, "[")) {
			e = node(p, AGP_E_SET, &at);
			if (!e)
				return NULL;
			n = parse_list(p, "]", &items);
			return finish_list(p, e, n, items);
		}
		if (accept(p, "{"))
			return parse_record(p, &at);
		break;
	default:
		break;
	}
	return expected(p, "expression");
}

static const struct {
	const char *name;
	enum agp_method m;
	int nargs;
} methods[] = {
	{ "contains", AGP_M_CONTAINS, 1 },	  { "containsAll", AGP_M_CONTAINS_ALL, 1 },
	{ "containsAny", AGP_M_CONTAINS_ANY, 1 }, { "isInRange", AGP_M_IS_IN_RANGE, 1 },
	{ "isIpv4", AGP_M_IS_IPV4, 0 },		  { "isIpv6", AGP_M_IS_IPV6, 0 },
	{ "isLoopback", AGP_M_IS_LOOPBACK, 0 },
};

static struct agp_expr *parse_method(struct parser *p, struct agp_expr *recv,
				     const struct agp_token *name)
{
	struct agp_expr *e, **args;
	long n;

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strlen(methods[i].name) != name->len ||
		    memcmp(methods[i].name, name->s, name->len))
			continue;
		e = node(p, AGP_E_METHOD, name);
		if (!e)
			return NULL;
		e->op = (uint8_t)methods[i].m;
		e->kid[0] = recv;
		n = parse_list(p, ")", &args);
		if (n < 0)
			return NULL;
		if (n != methods[i].nargs)
			return perr(p, "%s() takes %d argument(s), %ld given", methods[i].name,
				    methods[i].nargs, n);
		if (n)
			e->kid[1] = args[0];
		if (!adopt(p, e, recv) || (n && !adopt(p, e, args[0])))
			return NULL;
		return e;
	}
	p->tok = *name; /* report at the name; the parse stops here anyway */
	return perr(p, "unknown method `%.*s`", (int)(name->len > 40 ? 40 : name->len), name->s);
}

static struct agp_expr *attr_node(struct parser *p, struct agp_expr *recv,
				  const struct agp_token *at, const char *name, uint32_t nlen)
{
	struct agp_expr *e = node(p, AGP_E_ATTR, at);

	if (!e)
		return NULL;
	e->kid[0] = recv;
	e->name = name;
	e->nlen = nlen;
	return adopt(p, e, recv) ? e : NULL;
}

static struct agp_expr *parse_member(struct parser *p)
{
	struct agp_expr *e = parse_primary(p);

	while (e) {
		struct agp_token at = p->tok;

		if (accept(p, ".")) {
			struct agp_token name = p->tok;
			char *s;

			if (p->tok.kind != AGP_T_IDENT)
				return expected(p, "attribute or method name after `.`");
			next(p);
			if (accept(p, "(")) {
				e = parse_method(p, e, &name);
				continue;
			}
			s = agp_strndup(p->a, name.s, name.len);
			e = s ? attr_node(p, e, &at, s, name.len) : oom(p);
		} else if (accept(p, "[")) {
			uint32_t len;
			char *s;

			if (p->tok.kind != AGP_T_STRING)
				return expected(p, "string attribute name in `[...]`");
			s = take_string(p, &len);
			if (!s || !expect(p, "]"))
				return NULL;
			e = attr_node(p, e, &at, s, len);
		} else {
			break;
		}
	}
	return e;
}

static bool enter(struct parser *p)
{
	if (++p->depth > AGP_MAX_DEPTH) {
		perr(p, "expression nested too deeply (limit %d)", AGP_MAX_DEPTH);
		return false;
	}
	return true;
}

static struct agp_expr *parse_unary(struct parser *p)
{
	struct agp_token at = p->tok;
	struct agp_expr *e, *kid;

	if (!enter(p))
		return NULL;
	if (accept(p, "!") || accept(p, "-")) {
		bool neg = at.op[0] == '-';

		/* -9223372036854775808 is a literal, not the negation of an
		 * out-of-range one. */
		if (neg && p->tok.kind == AGP_T_LONG) {
			e = node(p, AGP_E_LIT, &at);
			if (e) {
				e->lit.type = AGP_LONG;
				e->lit.l = (int64_t)(0 - p->tok.num);
				next(p);
			}
		} else {
			kid = parse_unary(p);
			e = kid ? node(p, neg ? AGP_E_NEG : AGP_E_NOT, &at) : NULL;
			if (e) {
				e->kid[0] = kid;
				if (!adopt(p, e, kid))
					e = NULL;
			}
		}
	} else {
		e = parse_member(p);
	}
	p->depth--;
	return e;
}

static struct agp_expr *parse_mult(struct parser *p)
{
	struct agp_expr *e = parse_unary(p);

	while (e && is_punct(p, "*")) {
		struct agp_token at = p->tok;

		next(p);
		e = binary(p, AGP_E_BIN, AGP_OP_MUL, &at, e, parse_unary(p));
	}
	return e;
}

static struct agp_expr *parse_add(struct parser *p)
{
	struct agp_expr *e = parse_mult(p);

	while (e && (is_punct(p, "+") || is_punct(p, "-"))) {
		struct agp_token at = p->tok;

		next(p);
		e = binary(p, AGP_E_BIN, at.op[0] == '+' ? AGP_OP_ADD : AGP_OP_SUB, &at, e,
			   parse_mult(p));
	}
	return e;
}

static struct agp_expr *parse_pattern(struct parser *p, struct agp_expr *lhs,
				      const struct agp_token *at)
{
	struct agp_expr *e;
	const char *msg = NULL;
	uint8_t *star;
	char *pat;
	long n;

	if (p->tok.kind != AGP_T_STRING)
		return expected(p, "pattern string after `like`");
	n = agp_unescape(p->a, p->tok.s, p->tok.len, &pat, &star, &msg);
	if (n < 0)
		return perr(p, "%s", msg);
	next(p);
	e = node(p, AGP_E_LIKE, at);
	if (!e)
		return NULL;
	e->kid[0] = lhs;
	e->lit.s = pat;
	e->n = (uint32_t)n;
	e->star = star;
	return adopt(p, e, lhs) ? e : NULL;
}

static struct agp_expr *parse_relation(struct parser *p)
{
	static const char *const relops[] = { "==", "!=", "<", "<=", ">", ">=" };
	static const enum agp_binop binops[] = { AGP_OP_EQ, AGP_OP_NE, AGP_OP_LT,
						 AGP_OP_LE, AGP_OP_GT, AGP_OP_GE };
	struct agp_expr *e = parse_add(p);
	struct agp_token at = p->tok;

	if (!e)
		return NULL;
	for (size_t i = 0; i < 6; i++)
		if (accept(p, relops[i]))
			return binary(p, AGP_E_BIN, binops[i], &at, e, parse_add(p));
	if (is_kw(p, "in")) {
		next(p);
		return binary(p, AGP_E_BIN, AGP_OP_IN, &at, e, parse_add(p));
	}
	if (is_kw(p, "has")) {
		struct agp_expr *h;
		uint32_t len;
		char *name;

		next(p);
		len = p->tok.len;
		if (p->tok.kind == AGP_T_IDENT)
			name = take_ident(p);
		else if (p->tok.kind == AGP_T_STRING)
			name = take_string(p, &len);
		else
			return expected(p, "attribute name after `has`");
		h = name ? node(p, AGP_E_HAS, &at) : NULL;
		if (!h)
			return NULL;
		h->kid[0] = e;
		h->name = name;
		h->nlen = len;
		return adopt(p, h, e) ? h : NULL;
	}
	if (is_kw(p, "like")) {
		next(p);
		return parse_pattern(p, e, &at);
	}
	if (is_kw(p, "is")) {
		struct agp_expr *is;
		char *type;
		uint32_t tlen;

		next(p);
		if (p->tok.kind != AGP_T_IDENT)
			return expected(p, "entity type after `is`");
		type = take_ident(p);
		type = type ? path_rest(p, type, &tlen) : NULL;
		is = type ? node(p, AGP_E_IS, &at) : NULL;
		if (!is)
			return NULL;
		is->kid[0] = e;
		is->name = type;
		is->nlen = tlen;
		if (!adopt(p, is, e))
			return NULL;
		if (is_kw(p, "in")) {
			next(p);
			is->kid[1] = parse_add(p);
			if (!is->kid[1] || !adopt(p, is, is->kid[1]))
				return NULL;
		}
		return is;
	}
	return e;
}

/* && and || chains become one n-ary node so long conjunctions stay shallow. */
static struct agp_expr *parse_chain(struct parser *p, const char *op, enum agp_ekind kind,
				    struct agp_expr *(*sub)(struct parser *))
{
	struct agp_expr *first = sub(p), *e, **items;
	size_t n = 1, cap = 4;

	if (!first || !is_punct(p, op))
		return first;
	e = node(p, kind, &p->tok);
	items = agp_alloc_array(p->a, cap, sizeof(*items));
	if (!e || !items)
		return oom(p);
	items[0] = first;
	while (accept(p, op)) {
		struct agp_expr *k = sub(p);

		if (!k)
			return NULL;
		if (n == cap) {
			struct agp_expr **grown = agp_alloc_array(p->a, cap * 2, sizeof(*grown));

			if (!grown || cap * 2 > UINT32_MAX)
				return oom(p);
			memcpy(grown, items, n * sizeof(*items));
			items = grown;
			cap *= 2;
		}
		items[n++] = k;
	}
	return finish_list(p, e, (long)n, items);
}

static struct agp_expr *parse_and(struct parser *p)
{
	return parse_chain(p, "&&", AGP_E_AND, parse_relation);
}

static struct agp_expr *parse_or(struct parser *p)
{
	return parse_chain(p, "||", AGP_E_OR, parse_and);
}

/* One part of `if A then B else C`, after its keyword, into e->kid[i]. */
static bool if_part(struct parser *p, struct agp_expr *e, int i, const char *kw)
{
	char what[16];

	if (kw) {
		if (!is_kw(p, kw)) {
			snprintf(what, sizeof(what), "`%s`", kw);
			expected(p, what);
			return false;
		}
		next(p);
	}
	e->kid[i] = parse_expr(p);
	return e->kid[i] && adopt(p, e, e->kid[i]);
}

static struct agp_expr *parse_expr(struct parser *p)
{
	struct agp_token at = p->tok;
	struct agp_expr *e;

	if (!enter(p))
		return NULL;
	if (is_kw(p, "if")) {
		next(p);
		e = node(p, AGP_E_IF, &at);
		if (e && !(if_part(p, e, 0, NULL) && if_part(p, e, 1, "then") &&
			   if_part(p, e, 2, "else")))
			e = NULL;
	} else {
		e = parse_or(p);
	}
	p->depth--;
	return e;
}

static bool parse_scope(struct parser *p, int which, struct agp_scope *sc)
{
	static const char *const names[] = { "`principal`", "`action`", "`resource`" };

	if (!is_kw(p, vars[which])) {
		expected(p, names[which]);
		return false;
	}
	next(p);
	sc->op = AGP_SC_ANY;
	sc->which = (uint8_t)which;
	if (accept(p, "==")) {
		sc->op = AGP_SC_EQ;
		return parse_uid(p, &sc->uid);
	}
	if (which != 1 && is_kw(p, "is")) {
		uint32_t tlen;
		char *type;

		next(p);
		if (p->tok.kind != AGP_T_IDENT) {
			expected(p, "entity type after `is`");
			return false;
		}
		type = take_ident(p);
		type = type ? path_rest(p, type, &tlen) : NULL;
		if (!type)
			return false;
		sc->op = AGP_SC_IS;
		sc->is_type = type;
		sc->is_tlen = tlen;
		if (!is_kw(p, "in"))
			return true;
		next(p);
		sc->op = AGP_SC_IS_IN;
		return parse_uid(p, &sc->uid);
	}
	if (!is_kw(p, "in"))
		return true;
	next(p);
	if (which == 1 && accept(p, "[")) {
		size_t cap = 0;

		sc->op = AGP_SC_IN_SET;
		if (accept(p, "]"))
			return true;
		do {
			if (sc->n_set == cap) {
				size_t ncap = cap ? cap * 2 : 4;
				struct agp_uid *grown = agp_alloc_array(p->a, ncap, sizeof(*grown));

				if (!grown || ncap > UINT32_MAX) {
					oom(p);
					return false;
				}
				if (sc->n_set)
					memcpy(grown, sc->set, sc->n_set * sizeof(*grown));
				sc->set = grown;
				cap = ncap;
			}
			if (!parse_uid(p, &sc->set[sc->n_set++]))
				return false;
		} while (accept(p, ","));
		return expect(p, "]");
	}
	sc->op = AGP_SC_IN;
	return parse_uid(p, &sc->uid);
}

static bool parse_annotation(struct parser *p, struct agp_policy *pol, size_t *cap)
{
	struct agp_annotation an = { 0 };

	if (p->tok.kind != AGP_T_IDENT) {
		expected(p, "annotation name after `@`");
		return false;
	}
	for (uint32_t i = 0; i < pol->n_annots; i++) {
		if (strlen(pol->annots[i].name) == p->tok.len &&
		    !memcmp(pol->annots[i].name, p->tok.s, p->tok.len)) {
			perr(p, "duplicate annotation @%s", pol->annots[i].name);
			return false;
		}
	}
	an.name = take_ident(p);
	if (!an.name)
		return false;
	an.value = "";
	if (accept(p, "(")) {
		if (p->tok.kind != AGP_T_STRING) {
			expected(p, "annotation value string");
			return false;
		}
		an.value = take_string(p, NULL);
		if (!an.value || !expect(p, ")"))
			return false;
	}
	if (pol->n_annots == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct agp_annotation *grown = agp_alloc_array(p->a, ncap, sizeof(*grown));

		if (!grown || ncap > UINT32_MAX) {
			oom(p);
			return false;
		}
		if (pol->n_annots)
			memcpy(grown, pol->annots, pol->n_annots * sizeof(*grown));
		pol->annots = grown;
		*cap = ncap;
	}
	pol->annots[pol->n_annots++] = an;
	if (!strcmp(an.name, "id"))
		pol->id = an.value;
	else if (!strcmp(an.name, "escalate"))
		pol->escalate = an.value;
	return true;
}

static bool parse_conditions(struct parser *p, struct agp_policy *pol)
{
	size_t cap = 0;

	while (is_kw(p, "when") || is_kw(p, "unless")) {
		struct agp_token at = p->tok;
		bool unless = is_kw(p, "unless");
		struct agp_expr *e;

		next(p);
		if (!expect(p, "{"))
			return false;
		e = parse_expr(p);
		if (!e || !expect(p, "}"))
			return false;
		if (unless) {
			struct agp_expr *neg = node(p, AGP_E_NOT, &at);

			if (!neg)
				return false;
			neg->kid[0] = e;
			e = neg;
		}
		if (pol->n_conds == cap) {
			size_t ncap = cap ? cap * 2 : 2;
			struct agp_expr **grown = agp_alloc_array(p->a, ncap, sizeof(*grown));

			if (!grown || ncap > UINT32_MAX) {
				oom(p);
				return false;
			}
			if (pol->n_conds)
				memcpy(grown, pol->conds, pol->n_conds * sizeof(*grown));
			pol->conds = grown;
			cap = ncap;
		}
		pol->conds[pol->n_conds++] = e;
	}
	return true;
}

static bool parse_policy(struct parser *p, struct agp_policy *pol, const char *idname)
{
	struct agp_token start = p->tok;
	size_t annot_cap = 0;
	char defid[320];

	memset(pol, 0, sizeof(*pol));
	while (accept(p, "@"))
		if (!parse_annotation(p, pol, &annot_cap))
			return false;
	if (is_kw(p, "permit")) {
		pol->effect = AG_PERMIT;
	} else if (is_kw(p, "forbid")) {
		pol->effect = AG_FORBID;
	} else {
		expected(p, "`permit` or `forbid`");
		return false;
	}
	if (pol->escalate && pol->effect == AG_FORBID) {
		perr(p, "@escalate applies only to permit policies");
		return false;
	}
	next(p);
	if (!expect(p, "("))
		return false;
	for (int i = 0; i < 3; i++) {
		if (!parse_scope(p, i, &pol->scope[i]))
			return false;
		if (i < 2 && !expect(p, ","))
			return false;
	}
	if (!expect(p, ")") || !parse_conditions(p, pol) || !expect(p, ";"))
		return false;
	if (!pol->id) {
		snprintf(defid, sizeof(defid), "%s:%u", idname, start.line);
		pol->id = agp_strndup(p->a, defid, strlen(defid));
		if (!pol->id) {
			oom(p);
			return false;
		}
	}
	return true;
}

int agp_parse_into(struct ag_policy_set *set, const char *name, const char *idname,
		   const char *text, size_t len, struct ag_policy_error *err)
{
	struct parser p = { .a = set->arena, .file = name, .err = err };

	if (len > AGP_MAX_FILE) {
		agp_error(err, 0, 0, "%s: policy file larger than %u bytes", name, AGP_MAX_FILE);
		return -1;
	}
	agp_lex_init(&p.lx, text, len);
	next(&p);
	while (p.tok.kind != AGP_T_EOF) {
		struct agp_token start = p.tok;
		struct agp_policy *pol;

		if (set->n == set->cap) {
			size_t ncap = set->cap ? set->cap * 2 : 16;
			struct agp_policy *grown = NULL;

			if (ncap <= SIZE_MAX / sizeof(*grown))
				grown = realloc(set->policies, ncap * sizeof(*grown));
			if (!grown) {
				oom(&p);
				return -1;
			}
			set->policies = grown;
			set->cap = ncap;
		}
		pol = &set->policies[set->n];
		if (!parse_policy(&p, pol, idname))
			return -1;
		for (size_t i = 0; i < set->n; i++) {
			if (!strcmp(set->policies[i].id, pol->id)) {
				p.tok = start;
				perr(&p, "duplicate policy id \"%s\"", pol->id);
				return -1;
			}
		}
		set->n++;
	}
	return 0;
}

int ag_entity_ref_parse(const char *text, struct ag_entity_ref *ref, struct ag_policy_error *err)
{
	struct ag_arena *a = agp_arena_new(AGP_MAX_FILE);
	struct parser p = { .a = a, .file = "entity reference", .err = err };
	struct agp_uid uid;
	size_t len = strlen(text);
	int ret = -1;

	ref->type = ref->id = NULL;
	if (!a) {
		agp_error(err, 0, 0, "entity reference: out of memory");
		return -1;
	}
	if (len > AGP_MAX_FILE) {
		agp_error(err, 0, 0, "entity reference: longer than %u bytes", AGP_MAX_FILE);
		goto out;
	}
	agp_lex_init(&p.lx, text, len);
	next(&p);
	if (!parse_uid(&p, &uid))
		goto out;
	if (p.tok.kind != AGP_T_EOF) {
		expected(&p, "end of entity reference");
		goto out;
	}
	/* Ids may contain NUL through \0 escapes; a C string cannot carry them. */
	if (strlen(uid.id) != uid.ilen) {
		agp_error(err, 0, 0, "entity reference: id contains a NUL character");
		goto out;
	}
	ref->type = strdup(uid.type);
	ref->id = strdup(uid.id);
	if (!ref->type || !ref->id) {
		free((char *)ref->type);
		free((char *)ref->id);
		ref->type = ref->id = NULL;
		agp_error(err, 0, 0, "entity reference: out of memory");
		goto out;
	}
	ret = 0;
out:
	agp_arena_free(a);
	return ret;
}
