// SPDX-License-Identifier: GPL-2.0
/*
 * Cedar-subset expressions by recursive descent, one function per
 * precedence level (or, and, relation, add, mult, unary, member, primary),
 * with the nesting depth bounded (enter()).
 */
#include "policy_parser.h"

static struct agp_expr *parse_add(struct parser *p);

/* Comma-separated expressions up to close; returns the count or -1. */
static long parse_list(struct parser *p, const char *close, struct agp_expr ***out)
{
	struct agp_expr **items = NULL, **grown;
	size_t n = 0, cap = 0;

	if (pp_accept(p, close)) {
		*out = NULL;
		return 0;
	}
	for (;;) {
		struct agp_expr *e = pp_parse_expr(p);

		if (!e)
			return -1;
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			grown = agp_alloc_array(p->a, cap, sizeof(*grown));
			if (!grown || cap > UINT32_MAX) {
				pp_oom(p);
				return -1;
			}
			if (n)
				memcpy(grown, items, n * sizeof(*items));
			items = grown;
		}
		items[n++] = e;
		if (pp_accept(p, close))
			break;
		if (!pp_expect(p, ","))
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
		if (!pp_adopt(p, e, items[i]))
			return NULL;
	return e;
}

static struct agp_expr *parse_record(struct parser *p, const struct agp_token *at)
{
	struct agp_expr *e = pp_node(p, AGP_E_RECORD, at);
	size_t cap = 0;

	if (!e)
		return NULL;
	if (pp_accept(p, "}"))
		return e;
	for (;;) {
		const char *key;
		uint32_t klen;
		struct agp_expr *v;

		if (p->tok.kind == AGP_T_IDENT) {
			klen = p->tok.len;
			key = pp_take_ident(p);
		} else if (p->tok.kind == AGP_T_STRING) {
			key = pp_take_string(p, &klen);
		} else {
			return pp_expected(p, "record key");
		}
		if (!key)
			return NULL;
		for (uint32_t i = 0; i < e->n; i++)
			if (e->klens[i] == klen && !memcmp(e->keys[i], key, klen))
				return pp_perr(p, "duplicate record key \"%s\"", key);
		if (!pp_expect(p, ":"))
			return NULL;
		v = pp_parse_expr(p);
		if (!v)
			return NULL;
		if (e->n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			const char **keys = agp_alloc_array(p->a, ncap, sizeof(*keys));
			uint32_t *klens = agp_alloc_array(p->a, ncap, sizeof(*klens));
			struct agp_expr **kids = agp_alloc_array(p->a, ncap, sizeof(*kids));

			if (!keys || !klens || !kids || ncap > UINT32_MAX)
				return pp_oom(p);
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
		if (!pp_adopt(p, e, v))
			return NULL;
		if (pp_accept(p, "}"))
			return e;
		if (!pp_expect(p, ","))
			return NULL;
	}
}

static struct agp_expr *parse_name_primary(struct parser *p, const struct agp_token *at)
{
	struct agp_expr *e;
	uint32_t tlen;
	char *first, *path;
	struct agp_uid *uid;

	for (size_t i = 0; i < 4; i++) {
		if (pp_is_kw(p, vars[i])) {
			pp_next(p);
			e = pp_node(p, AGP_E_VAR, at);
			if (e)
				e->op = (uint8_t)i;
			return e;
		}
	}
	if (pp_is_kw(p, "true") || pp_is_kw(p, "false")) {
		e = pp_node(p, AGP_E_LIT, at);
		if (!e)
			return NULL;
		e->lit.type = AGP_BOOL;
		e->lit.b = pp_is_kw(p, "true");
		pp_next(p);
		return e;
	}
	first = pp_take_ident(p);
	if (!first)
		return NULL;
	path = pp_path_rest(p, first, &tlen);
	if (!path)
		return NULL;
	if (pp_is_punct(p, "(")) {
		long n;
		struct agp_expr **args;

		if (strcmp(path, "ip"))
			return pp_perr(p, "unknown function `%s` (supported: ip)", path);
		pp_next(p);
		e = pp_node(p, AGP_E_IP, at);
		if (!e)
			return NULL;
		n = parse_list(p, ")", &args);
		if (n < 0)
			return NULL;
		if (n != 1)
			return pp_perr(p, "ip() takes one argument, %ld given", n);
		e->kid[0] = args[0];
		return pp_adopt(p, e, args[0]) ? e : NULL;
	}
	if (!pp_is_punct(p, "::"))
		return pp_expected(p, "`::` after entity type (or `(` for a function call)");
	uid = agp_alloc(p->a, sizeof(*uid));
	if (!uid)
		return pp_oom(p);
	if (!pp_parse_uid_after_path(p, path, tlen, uid))
		return NULL;
	e = pp_node(p, AGP_E_LIT, at);
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
			return pp_perr(p, "integer literal too large");
		e = pp_node(p, AGP_E_LIT, &at);
		if (!e)
			return NULL;
		e->lit.type = AGP_LONG;
		e->lit.l = (int64_t)p->tok.num;
		pp_next(p);
		return e;
	case AGP_T_STRING:
		e = pp_node(p, AGP_E_LIT, &at);
		if (!e)
			return NULL;
		e->lit.type = AGP_STRING;
		e->lit.s = pp_take_string(p, &e->lit.n);
		return e->lit.s ? e : NULL;
	case AGP_T_IDENT:
		return parse_name_primary(p, &at);
	case AGP_T_PUNCT:
		if (pp_accept(p, "(")) {
			e = pp_parse_expr(p);
			return e && pp_expect(p, ")") ? e : NULL;
		}
		if (pp_accept(p, "[")) {
			e = pp_node(p, AGP_E_SET, &at);
			if (!e)
				return NULL;
			n = parse_list(p, "]", &items);
			return finish_list(p, e, n, items);
		}
		if (pp_accept(p, "{"))
			return parse_record(p, &at);
		break;
	default:
		break;
	}
	return pp_expected(p, "expression");
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
		e = pp_node(p, AGP_E_METHOD, name);
		if (!e)
			return NULL;
		e->op = (uint8_t)methods[i].m;
		e->kid[0] = recv;
		n = parse_list(p, ")", &args);
		if (n < 0)
			return NULL;
		if (n != methods[i].nargs)
			return pp_perr(p, "%s() takes %d argument(s), %ld given", methods[i].name,
				       methods[i].nargs, n);
		if (n)
			e->kid[1] = args[0];
		if (!pp_adopt(p, e, recv) || (n && !pp_adopt(p, e, args[0])))
			return NULL;
		return e;
	}
	p->tok = *name; /* report at the name; the parse stops here anyway */
	return pp_perr(p, "unknown method `%.*s`", (int)(name->len > 40 ? 40 : name->len), name->s);
}

static struct agp_expr *attr_node(struct parser *p, struct agp_expr *recv,
				  const struct agp_token *at, const char *name, uint32_t nlen)
{
	struct agp_expr *e = pp_node(p, AGP_E_ATTR, at);

	if (!e)
		return NULL;
	e->kid[0] = recv;
	e->name = name;
	e->nlen = nlen;
	return pp_adopt(p, e, recv) ? e : NULL;
}

static struct agp_expr *parse_member(struct parser *p)
{
	struct agp_expr *e = parse_primary(p);

	while (e) {
		struct agp_token at = p->tok;

		if (pp_accept(p, ".")) {
			struct agp_token name = p->tok;
			char *s;

			if (p->tok.kind != AGP_T_IDENT)
				return pp_expected(p, "attribute or method name after `.`");
			pp_next(p);
			if (pp_accept(p, "(")) {
				e = parse_method(p, e, &name);
				continue;
			}
			s = agp_strndup(p->a, name.s, name.len);
			e = s ? attr_node(p, e, &at, s, name.len) : pp_oom(p);
		} else if (pp_accept(p, "[")) {
			uint32_t len;
			char *s;

			if (p->tok.kind != AGP_T_STRING)
				return pp_expected(p, "string attribute name in `[...]`");
			s = pp_take_string(p, &len);
			if (!s || !pp_expect(p, "]"))
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
		pp_perr(p, "expression nested too deeply (limit %d)", AGP_MAX_DEPTH);
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
	if (pp_accept(p, "!") || pp_accept(p, "-")) {
		bool neg = at.op[0] == '-';

		/* -9223372036854775808 is a literal, not the negation of an
		 * out-of-range one. */
		if (neg && p->tok.kind == AGP_T_LONG) {
			e = pp_node(p, AGP_E_LIT, &at);
			if (e) {
				e->lit.type = AGP_LONG;
				e->lit.l = (int64_t)(0 - p->tok.num);
				pp_next(p);
			}
		} else {
			kid = parse_unary(p);
			e = kid ? pp_node(p, neg ? AGP_E_NEG : AGP_E_NOT, &at) : NULL;
			if (e) {
				e->kid[0] = kid;
				if (!pp_adopt(p, e, kid))
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

	while (e && pp_is_punct(p, "*")) {
		struct agp_token at = p->tok;

		pp_next(p);
		e = pp_binary(p, AGP_E_BIN, AGP_OP_MUL, &at, e, parse_unary(p));
	}
	return e;
}

static struct agp_expr *parse_add(struct parser *p)
{
	struct agp_expr *e = parse_mult(p);

	while (e && (pp_is_punct(p, "+") || pp_is_punct(p, "-"))) {
		struct agp_token at = p->tok;

		pp_next(p);
		e = pp_binary(p, AGP_E_BIN, at.op[0] == '+' ? AGP_OP_ADD : AGP_OP_SUB, &at, e,
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
		return pp_expected(p, "pattern string after `like`");
	n = agp_unescape(p->a, p->tok.s, p->tok.len, &pat, &star, &msg);
	if (n < 0)
		return pp_perr(p, "%s", msg);
	pp_next(p);
	e = pp_node(p, AGP_E_LIKE, at);
	if (!e)
		return NULL;
	e->kid[0] = lhs;
	e->lit.s = pat;
	e->n = (uint32_t)n;
	e->star = star;
	return pp_adopt(p, e, lhs) ? e : NULL;
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
		if (pp_accept(p, relops[i]))
			return pp_binary(p, AGP_E_BIN, binops[i], &at, e, parse_add(p));
	if (pp_is_kw(p, "in")) {
		pp_next(p);
		return pp_binary(p, AGP_E_BIN, AGP_OP_IN, &at, e, parse_add(p));
	}
	if (pp_is_kw(p, "has")) {
		struct agp_expr *h;
		uint32_t len;
		char *name;

		pp_next(p);
		len = p->tok.len;
		if (p->tok.kind == AGP_T_IDENT)
			name = pp_take_ident(p);
		else if (p->tok.kind == AGP_T_STRING)
			name = pp_take_string(p, &len);
		else
			return pp_expected(p, "attribute name after `has`");
		h = name ? pp_node(p, AGP_E_HAS, &at) : NULL;
		if (!h)
			return NULL;
		h->kid[0] = e;
		h->name = name;
		h->nlen = len;
		return pp_adopt(p, h, e) ? h : NULL;
	}
	if (pp_is_kw(p, "like")) {
		pp_next(p);
		return parse_pattern(p, e, &at);
	}
	if (pp_is_kw(p, "is")) {
		struct agp_expr *is;
		char *type;
		uint32_t tlen;

		pp_next(p);
		if (p->tok.kind != AGP_T_IDENT)
			return pp_expected(p, "entity type after `is`");
		type = pp_take_ident(p);
		type = type ? pp_path_rest(p, type, &tlen) : NULL;
		is = type ? pp_node(p, AGP_E_IS, &at) : NULL;
		if (!is)
			return NULL;
		is->kid[0] = e;
		is->name = type;
		is->nlen = tlen;
		if (!pp_adopt(p, is, e))
			return NULL;
		if (pp_is_kw(p, "in")) {
			pp_next(p);
			is->kid[1] = parse_add(p);
			if (!is->kid[1] || !pp_adopt(p, is, is->kid[1]))
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

	if (!first || !pp_is_punct(p, op))
		return first;
	e = pp_node(p, kind, &p->tok);
	items = agp_alloc_array(p->a, cap, sizeof(*items));
	if (!e || !items)
		return pp_oom(p);
	items[0] = first;
	while (pp_accept(p, op)) {
		struct agp_expr *k = sub(p);

		if (!k)
			return NULL;
		if (n == cap) {
			struct agp_expr **grown = agp_alloc_array(p->a, cap * 2, sizeof(*grown));

			if (!grown || cap * 2 > UINT32_MAX)
				return pp_oom(p);
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
		if (!pp_is_kw(p, kw)) {
			snprintf(what, sizeof(what), "`%s`", kw);
			pp_expected(p, what);
			return false;
		}
		pp_next(p);
	}
	e->kid[i] = pp_parse_expr(p);
	return e->kid[i] && pp_adopt(p, e, e->kid[i]);
}

struct agp_expr *pp_parse_expr(struct parser *p)
{
	struct agp_token at = p->tok;
	struct agp_expr *e;

	if (!enter(p))
		return NULL;
	if (pp_is_kw(p, "if")) {
		pp_next(p);
		e = pp_node(p, AGP_E_IF, &at);
		if (e && !(if_part(p, e, 0, NULL) && if_part(p, e, 1, "then") &&
			   if_part(p, e, 2, "else")))
			e = NULL;
	} else {
		e = parse_or(p);
	}
	p->depth--;
	return e;
}
