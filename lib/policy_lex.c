// SPDX-License-Identifier: GPL-2.0
/* Cedar tokens and string escapes. */
#define AG_POLICY_INTERNAL
#include "policy.h"
#include "util.h"

#include <string.h>

void agp_lex_init(struct agp_lexer *lx, const char *src, size_t len)
{
	memset(lx, 0, sizeof(*lx));
	lx->src = src;
	lx->len = len;
	lx->line = 1;
	lx->col = 1;
}

static void advance(struct agp_lexer *lx)
{
	if (lx->src[lx->pos] == '\n') {
		lx->line++;
		lx->col = 1;
	} else {
		lx->col++;
	}
	lx->pos++;
}

static void skip_space(struct agp_lexer *lx)
{
	while (lx->pos < lx->len) {
		char c = lx->src[lx->pos];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			advance(lx);
		} else if (c == '/' && lx->pos + 1 < lx->len && lx->src[lx->pos + 1] == '/') {
			while (lx->pos < lx->len && lx->src[lx->pos] != '\n')
				advance(lx);
		} else {
			break;
		}
	}
}

static bool is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void lex_error(struct agp_lexer *lx, struct agp_token *t, const char *msg)
{
	t->kind = AGP_T_ERROR;
	lx->err = msg;
}

static void lex_string(struct agp_lexer *lx, struct agp_token *t)
{
	size_t start;

	advance(lx);
	start = lx->pos;
	while (lx->pos < lx->len && lx->src[lx->pos] != '"') {
		if (lx->src[lx->pos] == '\\' && lx->pos + 1 < lx->len)
			advance(lx);
		advance(lx);
	}
	if (lx->pos >= lx->len)
		return lex_error(lx, t, "unterminated string");
	if (lx->pos - start > UINT32_MAX / 2)
		return lex_error(lx, t, "string too long");
	t->kind = AGP_T_STRING;
	t->s = lx->src + start;
	t->len = (uint32_t)(lx->pos - start);
	advance(lx);
}

static void lex_number(struct agp_lexer *lx, struct agp_token *t)
{
	uint64_t v = 0;

	while (lx->pos < lx->len && is_digit(lx->src[lx->pos])) {
		unsigned d = (unsigned)(lx->src[lx->pos] - '0');

		/* 2^63 itself is accepted so that -9223372036854775808 parses. */
		if (v > ((uint64_t)INT64_MAX + 1 - d) / 10)
			return lex_error(lx, t, "integer literal too large");
		v = v * 10 + d;
		advance(lx);
	}
	if (lx->pos < lx->len && is_ident_start(lx->src[lx->pos]))
		return lex_error(lx, t, "malformed number");
	t->kind = AGP_T_LONG;
	t->num = v;
}

void agp_lex_next(struct agp_lexer *lx, struct agp_token *t)
{
	static const char *const two[] = { "==", "!=", "<=", ">=", "&&", "||", "::" };
	static const char one[] = "()[]{},;.@:<>!+-*";
	char c;

	skip_space(lx);
	memset(t, 0, sizeof(*t));
	t->line = lx->line;
	t->col = lx->col;
	t->s = lx->src + lx->pos;
	if (lx->pos >= lx->len) {
		t->kind = AGP_T_EOF;
		return;
	}
	c = lx->src[lx->pos];
	if (c == '"')
		return lex_string(lx, t);
	if (is_digit(c)) {
		lex_number(lx, t);
		t->len = (uint32_t)(lx->src + lx->pos - t->s);
		return;
	}
	if (is_ident_start(c)) {
		while (lx->pos < lx->len &&
		       (is_ident_start(lx->src[lx->pos]) || is_digit(lx->src[lx->pos])))
			advance(lx);
		t->kind = AGP_T_IDENT;
		t->len = (uint32_t)(lx->src + lx->pos - t->s);
		return;
	}
	if (lx->pos + 1 < lx->len) {
		for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++) {
			if (c == two[i][0] && lx->src[lx->pos + 1] == two[i][1]) {
				t->kind = AGP_T_PUNCT;
				memcpy(t->op, two[i], 2);
				t->len = 2;
				advance(lx);
				advance(lx);
				return;
			}
		}
	}
	if (c && strchr(one, c)) {
		t->kind = AGP_T_PUNCT;
		t->op[0] = c;
		t->len = 1;
		advance(lx);
		return;
	}
	t->len = 1;
	lex_error(lx, t, "unexpected character");
}

static int utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes one escape after the backslash at raw[*i]; advances *i past it. */
static int unescape_one(const char *raw, uint32_t len, uint32_t *i, char *out, const char **err)
{
	char c = raw[(*i)++];
	uint32_t cp = 0;
	int h1, h2;

	switch (c) {
	case 'n':
		*out = '\n';
		return 1;
	case 'r':
		*out = '\r';
		return 1;
	case 't':
		*out = '\t';
		return 1;
	case '0':
		*out = '\0';
		return 1;
	case '\\':
	case '\'':
	case '"':
		*out = c;
		return 1;
	case 'x':
		if (*i + 2 > len || (h1 = ag_hex_digit(raw[*i])) < 0 ||
		    (h2 = ag_hex_digit(raw[*i + 1])) < 0 || h1 > 7) {
			*err = "invalid \\x escape (two hex digits, at most \\x7f)";
			return -1;
		}
		*i += 2;
		*out = (char)(h1 * 16 + h2);
		return 1;
	case 'u':
		if (*i >= len || raw[*i] != '{') {
			*err = "invalid \\u escape (expected \\u{hex})";
			return -1;
		}
		(*i)++;
		for (int digits = 0;; digits++) {
			if (*i >= len || digits > 6) {
				*err = "invalid \\u escape (expected \\u{hex})";
				return -1;
			}
			if (raw[*i] == '}' && digits) {
				(*i)++;
				break;
			}
			if ((h1 = ag_hex_digit(raw[*i])) < 0) {
				*err = "invalid \\u escape (expected \\u{hex})";
				return -1;
			}
			cp = cp * 16 + (uint32_t)h1;
			(*i)++;
		}
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			*err = "\\u escape is not a Unicode scalar value";
			return -1;
		}
		return utf8_put(out, cp);
	}
	*err = "invalid escape sequence";
	return -1;
}

long agp_unescape(struct ag_arena *a, const char *raw, uint32_t len, char **out, uint8_t **star,
		  const char **err)
{
	/* Every escape decodes to no more bytes than it occupies (\u{X} needs 5
	 * source bytes for at most 4 output bytes), so len bounds the output. */
	char *buf = agp_alloc(a, (size_t)len + 1);
	uint8_t *stars = star ? agp_alloc(a, (size_t)len + 1) : NULL;
	uint32_t i = 0;
	long n = 0;

	if (!buf || (star && !stars)) {
		*err = "out of memory";
		return -1;
	}
	while (i < len) {
		int k;

		if (raw[i] != '\\') {
			if (stars && raw[i] == '*')
				stars[n] = 1;
			buf[n++] = raw[i++];
			continue;
		}
		i++;
		if (i >= len) {
			*err = "invalid escape sequence";
			return -1;
		}
		if (stars && raw[i] == '*') {
			buf[n++] = '*';
			i++;
			continue;
		}
		k = unescape_one(raw, len, &i, buf + n, err);
		if (k < 0)
			return -1;
		n += k;
	}
	*out = buf;
	if (star)
		*star = stars;
	return n;
}
