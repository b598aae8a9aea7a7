// SPDX-License-Identifier: GPL-2.0
/* Canonical JSON (RFC 8785 in spirit) and SHA-256 of MCP tool definitions. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "toolhash.h"

static const char *const tool_fields[] = {
	"name", "title", "description", "inputSchema", "outputSchema", "annotations",
};

/* Decodes one UTF-8 sequence; invalid bytes sort as themselves. */
static unsigned int utf8_next(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *s = *p;
	unsigned int cp = *s, n = 0;

	if (cp >= 0xf0 && cp < 0xf8)
		n = 3, cp &= 0x07;
	else if (cp >= 0xe0)
		n = 2, cp &= 0x0f;
	else if (cp >= 0xc0)
		n = 1, cp &= 0x1f;
	if (cp >= 0x80 && n == 0) {
		*p = s + 1;
		return cp;
	}
	if ((size_t)(end - s) <= n) {
		*p = end;
		return *s;
	}
	for (unsigned int i = 1; i <= n; i++)
		cp = cp << 6 | (s[i] & 0x3f);
	*p = s + 1 + n;
	return cp;
}

/* The first UTF-16 code unit, scaled so that the second unit breaks ties. */
static unsigned long utf16_key(unsigned int cp)
{
	if (cp < 0x10000)
		return (unsigned long)cp << 16;
	cp -= 0x10000;
	return (unsigned long)(0xd800 + (cp >> 10)) << 16 | (0xdc00 + (cp & 0x3ff));
}

static int key_cmp(const void *a, const void *b)
{
	const char *ka = *(const char *const *)a, *kb = *(const char *const *)b;
	const unsigned char *pa = (const unsigned char *)ka, *pb = (const unsigned char *)kb;
	const unsigned char *ea = pa + strlen(ka), *eb = pb + strlen(kb);

	while (pa < ea && pb < eb) {
		unsigned long ua = utf16_key(utf8_next(&pa, ea));
		unsigned long ub = utf16_key(utf8_next(&pb, eb));

		if (ua != ub)
			return ua < ub ? -1 : 1;
	}
	return (pa < ea) - (pb < eb);
}

static void put_string(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];

		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

static int put_real(FILE *f, double v, struct ag_err *err)
{
	char buf[40];

	if (!isfinite(v))
		return ag_errf(err, EINVAL, "tool definition: non-finite number");
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		fprintf(f, "%lld", (long long)v);
		return 0;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, f);
	return 0;
}

static int put_value(FILE *f, const json_t *v, int depth, struct ag_err *err);

static int put_object(FILE *f, const json_t *obj, int depth, struct ag_err *err)
{
	size_t n = json_object_size(obj), i = 0;
	const char **keys;
	const char *k;
	json_t *v;
	int ret = 0;

	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return ag_errf(err, ENOMEM, "tool definition: out of memory");
	json_object_foreach((json_t *)obj, k, v) keys[i++] = k;
	qsort(keys, n, sizeof(*keys), key_cmp);
	fputc('{', f);
	for (i = 0; i < n && !ret; i++) {
		if (i)
			fputc(',', f);
		put_string(f, keys[i], strlen(keys[i]));
		fputc(':', f);
		ret = put_value(f, json_object_get(obj, keys[i]), depth + 1, err);
	}
	fputc('}', f);
	free(keys);
	return ret;
}

static int put_value(FILE *f, const json_t *v, int depth, struct ag_err *err)
{
	int ret = 0;

	if (depth > AG_TOOLHASH_MAX_DEPTH)
		return ag_errf(err, E2BIG, "tool definition: nested deeper than %d",
			       AG_TOOLHASH_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return put_object(f, v, depth, err);
	case JSON_ARRAY:
		fputc('[', f);
		for (size_t i = 0; i < json_array_size(v) && !ret; i++) {
			if (i)
				fputc(',', f);
			ret = put_value(f, json_array_get(v, i), depth + 1, err);
		}
		fputc(']', f);
		return ret;
	case JSON_STRING:
		put_string(f, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return 0;
	case JSON_REAL:
		return put_real(f, json_real_value(v), err);
	case JSON_TRUE:
		fputs("true", f);
		return 0;
	case JSON_FALSE:
		fputs("false", f);
		return 0;
	default:
		fputs("null", f);
		return 0;
	}
}

int ag_tool_canonical(const json_t *tool, char **out, size_t *len, struct ag_err *err)
{
	json_t *def;
	FILE *f;
	int ret;

	*out = NULL;
	*len = 0;
	if (!json_is_object(tool))
		return ag_errf(err, EINVAL, "tool definition: not an object");
	def = json_object();
	if (!def)
		return ag_errf(err, ENOMEM, "tool definition: out of memory");
	for (size_t i = 0; i < AG_ARRAY_SIZE(tool_fields); i++) {
		json_t *v = json_object_get(tool, tool_fields[i]);

		if (v && json_object_set(def, tool_fields[i], v)) {
			json_decref(def);
			return ag_errf(err, ENOMEM, "tool definition: out of memory");
		}
	}
	f = open_memstream(out, len);
	if (!f) {
		json_decref(def);
		return ag_errf(err, errno, "tool definition: open_memstream: %m");
	}
	ret = put_value(f, def, 0, err);
	if (fclose(f) && !ret)
		ret = ag_errf(err, ENOMEM, "tool definition: out of memory");
	json_decref(def);
	if (ret) {
		free(*out);
		*out = NULL;
		*len = 0;
	}
	return ret;
}

int ag_tool_hash(const json_t *tool, char hex[AG_TOOLHASH_HEX_LEN + 1], struct ag_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *canon;
	size_t len;
	int ret;

	hex[0] = '\0';
	ret = ag_tool_canonical(tool, &canon, &len, err);
	if (ret)
		return ret;
	if (!EVP_Digest(canon, len, md, &mdlen, EVP_sha256(), NULL)) {
		free(canon);
		return ag_errf(err, EIO, "tool definition: SHA-256 failed");
	}
	free(canon);
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}
