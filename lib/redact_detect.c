// SPDX-License-Identifier: GPL-2.0
/*
 * Secret detectors of the output rules: character classes and one matcher
 * per detector (PEM key, JWT, bearer token, cloud key, card, email), each
 * bounded by the view it is given.
 */
#include <string.h>

#include "redact_int.h"

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_upper_alnum(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z');
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool is_word(unsigned char c)
{
	return is_alnum(c) || c == '_' || c == '-';
}

static bool is_token(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
	       c == '/' || c == '=';
}

static bool is_label(unsigned char c)
{
	return is_alnum(c) || c == '-';
}

bool redact_is_local(unsigned char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static size_t span(const struct view *v, size_t i, size_t lim, size_t max,
		   bool (*cls)(unsigned char))
{
	size_t n = 0;

	while (i + n < lim && n < max && cls(v->b[i + n]))
		n++;
	return n;
}

static bool prev_is(const struct view *v, size_t s, bool (*cls)(unsigned char))
{
	return s > 0 && cls(v->b[s - 1]);
}

static bool next_is(const struct view *v, size_t e, bool (*cls)(unsigned char))
{
	return e < v->len && cls(v->b[e]);
}

static bool has(const struct view *v, size_t i, size_t lim, const char *lit)
{
	size_t n = strlen(lit);

	return i + n <= lim && memcmp(v->b + i, lit, n) == 0;
}

static bool is_pem_label(unsigned char c)
{
	return is_upper_alnum(c) || c == ' ';
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool det_pem(const struct view *v, size_t s, size_t lim, size_t *e)
{
	static const char tail[] = "PRIVATE KEY-----";
	const unsigned char *end;
	size_t i = s + 11;

	if (!has(v, s, lim, "-----BEGIN "))
		return false;
	i += span(v, i, lim, 64, is_pem_label);
	if (i < s + 11 + 11 || !has(v, i - 11, lim, tail))
		return false;
	i += 5;
	/* Without an END in reach the key is masked up to the limit: fail closed. */
	end = memmem(v->b + i, lim - i, "-----END ", 9);
	if (!end) {
		*e = lim;
		return true;
	}
	i = (size_t)(end - v->b) + 9;
	end = memmem(v->b + i, lim - i, "-----", 5);
	*e = end ? (size_t)(end - v->b) + 5 : lim;
	return true;
}

/* JWT: three base64url segments, the first a JSON header ("eyJ" is '{"'). */
static bool det_jwt(const struct view *v, size_t s, size_t lim, size_t *e)
{
	size_t i = s, n;

	if (!has(v, s, lim, "eyJ") || prev_is(v, s, is_word))
		return false;
	n = span(v, i, lim, lim, is_word);
	if (n < 10 || i + n >= lim || v->b[i + n] != '.')
		return false;
	i += n + 1;
	n = span(v, i, lim, lim, is_word);
	if (n < 2 || i + n >= lim || v->b[i + n] != '.')
		return false;
	i += n + 1;
	i += span(v, i, lim, lim, is_word);
	*e = i;
	return true;
}

static bool det_bearer(const struct view *v, size_t s, size_t lim, size_t *e)
{
	size_t i, n;

	if (v->b[s] == 'e')
		return det_jwt(v, s, lim, e);
	if (lim - s < 7 || strncasecmp((const char *)v->b + s, "bearer", 6) ||
	    prev_is(v, s, is_alnum))
		return false;
	i = s + 6;
	n = span(v, i, lim, 8, is_space);
	if (!n)
		return false;
	i += n;
	n = span(v, i, lim, lim, is_token);
	if (n < 8)
		return false;
	*e = i + n;
	return true;
}

/* A fixed prefix followed by exactly n characters of cls, then a non-cls byte. */
static bool key_exact(const struct view *v, size_t s, size_t lim, const char *prefix, size_t n,
		      bool (*cls)(unsigned char), size_t *e)
{
	size_t i = s + strlen(prefix);

	if (!has(v, s, lim, prefix) || span(v, i, lim, n, cls) != n || next_is(v, i + n, cls))
		return false;
	*e = i + n;
	return true;
}

/* A fixed prefix followed by min..255 characters of cls. */
static bool key_var(const struct view *v, size_t s, size_t lim, const char *prefix, size_t min,
		    bool (*cls)(unsigned char), size_t *e)
{
	size_t i = s + strlen(prefix), n;

	if (!has(v, s, lim, prefix))
		return false;
	n = span(v, i, lim, 255, cls);
	if (n < min || next_is(v, i + n, cls))
		return false;
	*e = i + n;
	return true;
}

static bool det_cloud(const struct view *v, size_t s, size_t lim, size_t *e)
{
	static const char *const slack[] = { "xoxa-", "xoxb-", "xoxp-", "xoxr-" };

	if (prev_is(v, s, is_word))
		return false;
	switch (v->b[s]) {
	case 'A':
		return key_exact(v, s, lim, "AKIA", 16, is_upper_alnum, e) ||
		       key_exact(v, s, lim, "ASIA", 16, is_upper_alnum, e) ||
		       key_exact(v, s, lim, "AIza", 35, is_word, e);
	case 'g':
		return key_exact(v, s, lim, "ghp_", 36, is_alnum, e) ||
		       key_exact(v, s, lim, "gho_", 36, is_alnum, e) ||
		       key_var(v, s, lim, "github_pat_", 22, is_word, e);
	case 'x':
		for (size_t i = 0; i < AG_ARRAY_SIZE(slack); i++)
			if (key_var(v, s, lim, slack[i], 10, is_word, e))
				return true;
		return false;
	default:
		return false;
	}
}

static bool luhn_ok(const unsigned char *digits, size_t n)
{
	unsigned int sum = 0;

	for (size_t k = 0; k < n; k++) {
		unsigned int d = digits[n - 1 - k];

		if (k & 1)
			d = d * 2 > 9 ? d * 2 - 9 : d * 2;
		sum += d;
	}
	return sum % 10 == 0;
}

static bool det_card(const struct view *v, size_t s, size_t lim, size_t *e)
{
	unsigned char digits[20];
	size_t n = 0, i = s;

	if (prev_is(v, s, is_digit))
		return false;
	while (i < lim && n < AG_ARRAY_SIZE(digits)) {
		unsigned char c = v->b[i];

		if (is_digit(c)) {
			digits[n++] = c - '0';
			i++;
		} else if ((c == ' ' || c == '-') && n && i + 1 < lim && is_digit(v->b[i + 1])) {
			i++;
		} else {
			break;
		}
	}
	if (n < 13 || n > 19 || next_is(v, i, is_digit) || !luhn_ok(digits, n))
		return false;
	*e = i;
	return true;
}

static bool det_email(const struct view *v, size_t s, size_t lim, size_t *e)
{
	size_t i = s, n, labels = 0, good_end = 0;

	if (prev_is(v, s, redact_is_local))
		return false;
	n = span(v, i, lim, 64, redact_is_local);
	i += n;
	if (!n || i >= lim || v->b[i] != '@')
		return false;
	i++;
	/* The match ends after the last label that can be a TLD (alphabetic, 2+). */
	while (i < lim && i - s < 64 + 1 + 253) {
		n = span(v, i, lim, 63, is_label);
		if (!n)
			break;
		labels++;
		if (labels >= 2 && n >= 2 && span(v, i, lim, n, is_alpha) == n)
			good_end = i + n;
		i += n;
		if (i + 1 >= lim || v->b[i] != '.' || !is_label(v->b[i + 1]))
			break;
		i++;
	}
	if (!good_end || (good_end == i && next_is(v, i, is_label)))
		return false;
	*e = good_end;
	return true;
}

const struct redact_det redact_detectors[] = {
	[AG_DET_PEM_KEY] = { "pem_private_key", det_pem, "-" },
	[AG_DET_BEARER] = { "bearer_token", det_bearer, "Bbe" },
	[AG_DET_CLOUD_KEY] = { "cloud_access_key", det_cloud, "Agx" },
	[AG_DET_CARD] = { "credit_card", det_card, "0123456789" },
	[AG_DET_EMAIL] = { "email", det_email, NULL },
};
