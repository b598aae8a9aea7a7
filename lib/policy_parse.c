// SPDX-License-Identifier: GPL-2.0
/*
 * Parser for the Cedar subset: the token primitives, then policies (scope,
 * annotations, conditions) and whole sets; expressions are policy_expr.c's.
 */
#include "policy_parser.h"
#include "buf.h"

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
void *pp_perr(struct parser *p, const char *fmt, ...)
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

void *pp_expected(struct parser *p, const char *what)
{
	char found[128];

	if (p->tok.kind == AGP_T_ERROR)
		return pp_perr(p, "%s", p->lx.err);
	describe(&p->tok, found, sizeof(found));
	return pp_perr(p, "expected %s, found %s", what, found);
}

void *pp_oom(struct parser *p)
{
	return pp_perr(p, "out of memory");
}

void pp_next(struct parser *p)
{
	agp_lex_next(&p->lx, &p->tok);
}

bool pp_is_punct(const struct parser *p, const char *op)
{
	return p->tok.kind == AGP_T_PUNCT && !strcmp(p->tok.op, op);
}

bool pp_is_kw(const struct parser *p, const char *kw)
{
	size_t n = strlen(kw);

	return p->tok.kind == AGP_T_IDENT && p->tok.len == n && !memcmp(p->tok.s, kw, n);
}

bool pp_accept(struct parser *p, const char *op)
{
	if (!pp_is_punct(p, op))
		return false;
	pp_next(p);
	return true;
}

bool pp_expect(struct parser *p, const char *op)
{
	char what[16];

	if (pp_accept(p, op))
		return true;
	snprintf(what, sizeof(what), "`%s`", op);
	pp_expected(p, what);
	return false;
}

struct agp_expr *pp_node(struct parser *p, enum agp_ekind kind, const struct agp_token *at)
{
	struct agp_expr *e = agp_alloc(p->a, sizeof(*e));

	if (!e)
		return pp_oom(p);
	e->kind = kind;
	e->line = at->line;
	e->col = at->col;
	e->height = 1;
	return e;
}

/* Tracks tree height so evaluation recursion stays bounded on long chains. */
bool pp_adopt(struct parser *p, struct agp_expr *parent, const struct agp_expr *kid)
{
	if (kid->height + 1 > parent->height)
		parent->height = kid->height + 1;
	if (parent->height > AGP_MAX_HEIGHT) {
		pp_perr(p, "expression too large (tree deeper than %d)", AGP_MAX_HEIGHT);
		return false;
	}
	return true;
}

struct agp_expr *pp_binary(struct parser *p, enum agp_ekind kind, int op,
			   const struct agp_token *at, struct agp_expr *l, struct agp_expr *r)
{
	struct agp_expr *e;

	if (!l || !r)
		return NULL;
	e = pp_node(p, kind, at);
	if (!e)
		return NULL;
	e->op = (uint8_t)op;
	e->kid[0] = l;
	e->kid[1] = r;
	if (!pp_adopt(p, e, l) || !pp_adopt(p, e, r))
		return NULL;
	return e;
}

char *pp_take_ident(struct parser *p)
{
	char *s = agp_strndup(p->a, p->tok.s, p->tok.len);

	if (!s)
		return pp_oom(p);
	pp_next(p);
	return s;
}

char *pp_take_string(struct parser *p, uint32_t *len)
{
	const char *msg = NULL;
	char *s;
	long n = agp_unescape(p->a, p->tok.s, p->tok.len, &s, NULL, &msg);

	if (n < 0)
		return pp_perr(p, "%s", msg);
	if (len)
		*len = (uint32_t)n;
	pp_next(p);
	return s;
}

/* Path `A::B` continuing after an already consumed first identifier; stops
 * before `::"`. */
char *pp_path_rest(struct parser *p, char *first, uint32_t *len)
{
	char *path = first;
	size_t n = strlen(first);

	while (pp_is_punct(p, "::")) {
		struct agp_lexer save = p->lx;
		struct agp_token savet = p->tok;
		char *joined;

		pp_next(p);
		if (p->tok.kind != AGP_T_IDENT) {
			p->lx = save;
			p->tok = savet;
			break;
		}
		if (n + 2 + p->tok.len > AGP_MAX_FILE)
			return pp_perr(p, "name too long");
		joined = agp_alloc(p->a, n + 2 + p->tok.len + 1);
		if (!joined)
			return pp_oom(p);
		memcpy(joined, path, n);
		memcpy(joined + n, "::", 2);
		memcpy(joined + n + 2, p->tok.s, p->tok.len);
		n += 2 + p->tok.len;
		path = joined;
		pp_next(p);
	}
	*len = (uint32_t)n;
	return path;
}

bool pp_parse_uid_after_path(struct parser *p, char *type, uint32_t tlen, struct agp_uid *uid)
{
	if (!pp_accept(p, "::")) {
		pp_expected(p, "`::\"id\"` after entity type");
		return false;
	}
	if (p->tok.kind != AGP_T_STRING) {
		pp_expected(p, "entity id string");
		return false;
	}
	uid->type = type;
	uid->tlen = tlen;
	uid->id = pp_take_string(p, &uid->ilen);
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
		pp_expected(p, "entity reference `Type::\"id\"`");
		return false;
	}
	type = pp_take_ident(p);
	if (!type)
		return false;
	type = pp_path_rest(p, type, &tlen);
	return type && pp_parse_uid_after_path(p, type, tlen, uid);
}

static bool parse_scope(struct parser *p, int which, struct agp_scope *sc)
{
	static const char *const names[] = { "`principal`", "`action`", "`resource`" };

	if (!pp_is_kw(p, vars[which])) {
		pp_expected(p, names[which]);
		return false;
	}
	pp_next(p);
	sc->op = AGP_SC_ANY;
	sc->which = (uint8_t)which;
	if (pp_accept(p, "==")) {
		sc->op = AGP_SC_EQ;
		return parse_uid(p, &sc->uid);
	}
	if (which != 1 && pp_is_kw(p, "is")) {
		uint32_t tlen;
		char *type;

		pp_next(p);
		if (p->tok.kind != AGP_T_IDENT) {
			pp_expected(p, "entity type after `is`");
			return false;
		}
		type = pp_take_ident(p);
		type = type ? pp_path_rest(p, type, &tlen) : NULL;
		if (!type)
			return false;
		sc->op = AGP_SC_IS;
		sc->is_type = type;
		sc->is_tlen = tlen;
		if (!pp_is_kw(p, "in"))
			return true;
		pp_next(p);
		sc->op = AGP_SC_IS_IN;
		return parse_uid(p, &sc->uid);
	}
	if (!pp_is_kw(p, "in"))
		return true;
	pp_next(p);
	if (which == 1 && pp_accept(p, "[")) {
		size_t cap = 0;

		sc->op = AGP_SC_IN_SET;
		if (pp_accept(p, "]"))
			return true;
		do {
			if (sc->n_set == cap) {
				size_t ncap = cap ? cap * 2 : 4;
				struct agp_uid *grown = agp_alloc_array(p->a, ncap, sizeof(*grown));

				if (!grown || ncap > UINT32_MAX) {
					pp_oom(p);
					return false;
				}
				if (sc->n_set)
					memcpy(grown, sc->set, sc->n_set * sizeof(*grown));
				sc->set = grown;
				cap = ncap;
			}
			if (!parse_uid(p, &sc->set[sc->n_set++]))
				return false;
		} while (pp_accept(p, ","));
		return pp_expect(p, "]");
	}
	sc->op = AGP_SC_IN;
	return parse_uid(p, &sc->uid);
}

static bool parse_annotation(struct parser *p, struct agp_policy *pol, size_t *cap)
{
	struct agp_annotation an = { 0 };

	if (p->tok.kind != AGP_T_IDENT) {
		pp_expected(p, "annotation name after `@`");
		return false;
	}
	for (uint32_t i = 0; i < pol->n_annots; i++) {
		if (strlen(pol->annots[i].name) == p->tok.len &&
		    !memcmp(pol->annots[i].name, p->tok.s, p->tok.len)) {
			pp_perr(p, "duplicate annotation @%s", pol->annots[i].name);
			return false;
		}
	}
	an.name = pp_take_ident(p);
	if (!an.name)
		return false;
	an.value = "";
	if (pp_accept(p, "(")) {
		if (p->tok.kind != AGP_T_STRING) {
			pp_expected(p, "annotation value string");
			return false;
		}
		an.value = pp_take_string(p, NULL);
		if (!an.value || !pp_expect(p, ")"))
			return false;
	}
	if (pol->n_annots == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct agp_annotation *grown = agp_alloc_array(p->a, ncap, sizeof(*grown));

		if (!grown || ncap > UINT32_MAX) {
			pp_oom(p);
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

	while (pp_is_kw(p, "when") || pp_is_kw(p, "unless")) {
		struct agp_token at = p->tok;
		bool unless = pp_is_kw(p, "unless");
		struct agp_expr *e;

		pp_next(p);
		if (!pp_expect(p, "{"))
			return false;
		e = pp_parse_expr(p);
		if (!e || !pp_expect(p, "}"))
			return false;
		if (unless) {
			struct agp_expr *neg = pp_node(p, AGP_E_NOT, &at);

			if (!neg)
				return false;
			neg->kid[0] = e;
			e = neg;
		}
		if (pol->n_conds == cap) {
			size_t ncap = cap ? cap * 2 : 2;
			struct agp_expr **grown = agp_alloc_array(p->a, ncap, sizeof(*grown));

			if (!grown || ncap > UINT32_MAX) {
				pp_oom(p);
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
	while (pp_accept(p, "@"))
		if (!parse_annotation(p, pol, &annot_cap))
			return false;
	if (pp_is_kw(p, "permit")) {
		pol->effect = AG_PERMIT;
	} else if (pp_is_kw(p, "forbid")) {
		pol->effect = AG_FORBID;
	} else {
		pp_expected(p, "`permit` or `forbid`");
		return false;
	}
	if (pol->escalate && pol->effect == AG_FORBID) {
		pp_perr(p, "@escalate applies only to permit policies");
		return false;
	}
	pp_next(p);
	if (!pp_expect(p, "("))
		return false;
	for (int i = 0; i < 3; i++) {
		if (!parse_scope(p, i, &pol->scope[i]))
			return false;
		if (i < 2 && !pp_expect(p, ","))
			return false;
	}
	if (!pp_expect(p, ")") || !parse_conditions(p, pol) || !pp_expect(p, ";"))
		return false;
	if (!pol->id) {
		snprintf(defid, sizeof(defid), "%s:%u", idname, start.line);
		pol->id = agp_strndup(p->a, defid, strlen(defid));
		if (!pol->id) {
			pp_oom(p);
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
	pp_next(&p);
	while (p.tok.kind != AGP_T_EOF) {
		struct agp_token start = p.tok;
		struct agp_policy *pol;

		if (ag_grow(&set->policies, &set->cap, set->n + 1, sizeof(*set->policies), 16, 0)) {
			pp_oom(&p);
			return -1;
		}
		pol = &set->policies[set->n];
		if (!parse_policy(&p, pol, idname))
			return -1;
		for (size_t i = 0; i < set->n; i++) {
			if (!strcmp(set->policies[i].id, pol->id)) {
				p.tok = start;
				pp_perr(&p, "duplicate policy id \"%s\"", pol->id);
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
	pp_next(&p);
	if (!parse_uid(&p, &uid))
		goto out;
	if (p.tok.kind != AGP_T_EOF) {
		pp_expected(&p, "end of entity reference");
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
