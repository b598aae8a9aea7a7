/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Cedar-subset parser's private header: the parser state and the token
 * and node primitives that policy_parse.c (policies, scopes, annotations,
 * the set) and policy_expr.c (the recursive-descent expression grammar)
 * share.
 */
#ifndef AG_POLICY_PARSER_H
#define AG_POLICY_PARSER_H

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

/* The four request variables, in scope order. */
static const char *const vars[] = { "principal", "action", "resource", "context" };

void *pp_perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *pp_expected(struct parser *p, const char *what);
void *pp_oom(struct parser *p);
void pp_next(struct parser *p);
bool pp_is_punct(const struct parser *p, const char *op);
bool pp_is_kw(const struct parser *p, const char *kw);
bool pp_accept(struct parser *p, const char *op);
bool pp_expect(struct parser *p, const char *op);
struct agp_expr *pp_node(struct parser *p, enum agp_ekind kind, const struct agp_token *at);
bool pp_adopt(struct parser *p, struct agp_expr *parent, const struct agp_expr *kid);
struct agp_expr *pp_binary(struct parser *p, enum agp_ekind kind, int op,
			   const struct agp_token *at, struct agp_expr *l, struct agp_expr *r);
char *pp_take_ident(struct parser *p);
char *pp_take_string(struct parser *p, uint32_t *len);
char *pp_path_rest(struct parser *p, char *first, uint32_t *len);
bool pp_parse_uid_after_path(struct parser *p, char *type, uint32_t tlen, struct agp_uid *uid);
/* An expression (policy_expr.c), NULL after an error. */
struct agp_expr *pp_parse_expr(struct parser *p);

#endif
