// SPDX-License-Identifier: GPL-2.0
/* Policy engine memory (arenas) and Cedar values: equality, JSON conversion, IPs. */
#define AG_POLICY_INTERNAL
#include "policy.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN 4096

struct ag_arena_chunk {
	struct ag_arena_chunk *next;
	size_t size, used;
	max_align_t data[];
};

struct ag_arena *agp_arena_new(size_t limit)
{
	struct ag_arena *a = calloc(1, sizeof(*a));

	if (a)
		a->limit = limit;
	return a;
}

/* Keeps only the largest chunk so a steady stream of similar requests reuses it. */
void agp_arena_reset(struct ag_arena *a)
{
	struct ag_arena_chunk *c, *next, *keep = NULL;

	for (c = a->head; c; c = next) {
		next = c->next;
		if (!keep || c->size > keep->size) {
			free(keep);
			keep = c;
		} else {
			free(c);
		}
	}
	a->head = keep;
	a->total = 0;
	if (keep) {
		keep->next = NULL;
		keep->used = 0;
		a->total = keep->size;
	}
}

void agp_arena_free(struct ag_arena *a)
{
	struct ag_arena_chunk *c, *next;

	if (!a)
		return;
	for (c = a->head; c; c = next) {
		next = c->next;
		free(c);
	}
	free(a);
}

void *agp_alloc(struct ag_arena *a, size_t size)
{
	const size_t align = sizeof(max_align_t);
	struct ag_arena_chunk *c = a->head;
	size_t need, csize;
	void *p;

	if (size > a->limit)
		return NULL;
	need = (size + align - 1) & ~(align - 1);
	if (!need)
		need = align;
	if (!c || c->size - c->used < need) {
		csize = need > CHUNK_MIN ? need : CHUNK_MIN;
		if (c && c->size * 2 > csize && c->size <= a->limit / 4)
			csize = c->size * 2;
		if (a->total + csize > a->limit)
			return NULL;
		c = malloc(sizeof(*c) + csize);
		if (!c)
			return NULL;
		c->size = csize;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		a->total += csize;
	}
	p = (char *)c->data + c->used;
	c->used += need;
	memset(p, 0, size);
	return p;
}

void *agp_alloc_array(struct ag_arena *a, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return agp_alloc(a, n * size);
}

char *agp_strndup(struct ag_arena *a, const char *s, size_t n)
{
	char *p;

	if (n == SIZE_MAX)
		return NULL;
	p = agp_alloc(a, n + 1);
	if (p)
		memcpy(p, s, n);
	return p;
}

const char *agp_type_name(enum agp_vtype t)
{
	static const char *const names[] = {
		[AGP_BOOL] = "bool",	 [AGP_LONG] = "long",	    [AGP_STRING] = "string",
		[AGP_ENTITY] = "entity", [AGP_SET] = "set",	    [AGP_RECORD] = "record",
		[AGP_IP] = "ipaddr",	 [AGP_DECIMAL] = "decimal",
	};
	return (size_t)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

void agp_uid_seal(struct agp_uid *u)
{
	uint32_t h = 2166136261u;

	for (uint32_t i = 0; i < u->tlen; i++)
		h = (h ^ (uint8_t)u->type[i]) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (uint32_t i = 0; i < u->ilen; i++)
		h = (h ^ (uint8_t)u->id[i]) * 16777619u;
	u->hash = h;
}

bool agp_uid_eq(const struct agp_uid *a, const struct agp_uid *b)
{
	return a == b || (a->hash == b->hash && a->tlen == b->tlen && a->ilen == b->ilen &&
			  !memcmp(a->id, b->id, a->ilen) && !memcmp(a->type, b->type, a->tlen));
}

static bool set_has(const struct agp_value *set, const struct agp_value *v)
{
	for (uint32_t i = 0; i < set->n; i++)
		if (agp_value_eq(&set->items[i], v))
			return true;
	return false;
}

/* Sets are compared as sets: [1, 1] == [1]. */
static bool set_eq(const struct agp_value *a, const struct agp_value *b)
{
	for (uint32_t i = 0; i < a->n; i++)
		if (!set_has(b, &a->items[i]))
			return false;
	for (uint32_t i = 0; i < b->n; i++)
		if (!set_has(a, &b->items[i]))
			return false;
	return true;
}

const struct agp_value *agp_record_get(const struct agp_value *rec, const char *key, uint32_t klen)
{
	for (uint32_t i = 0; i < rec->n; i++) {
		const struct agp_field *f = &rec->fields[i];

		/* The first-byte test avoids a memcmp call for most misses. */
		if (f->klen == klen && (!klen || f->key[0] == key[0]) && !memcmp(f->key, key, klen))
			return &f->v;
	}
	return NULL;
}

static bool record_eq(const struct agp_value *a, const struct agp_value *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++) {
		const struct agp_value *o = agp_record_get(b, a->fields[i].key, a->fields[i].klen);

		if (!o || !agp_value_eq(&a->fields[i].v, o))
			return false;
	}
	return true;
}

bool agp_value_eq(const struct agp_value *a, const struct agp_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case AGP_BOOL:
		return a->b == b->b;
	case AGP_LONG:
		return a->l == b->l;
	case AGP_STRING:
	case AGP_DECIMAL:
		return a->n == b->n && !memcmp(a->s, b->s, a->n);
	case AGP_ENTITY:
		return agp_uid_eq(a->uid, b->uid);
	case AGP_SET:
		return set_eq(a, b);
	case AGP_RECORD:
		return record_eq(a, b);
	case AGP_IP:
		return a->ip->v6 == b->ip->v6 && a->ip->prefix == b->ip->prefix &&
		       !memcmp(a->ip->addr, b->ip->addr, 16);
	}
	return false;
}

static int fail(struct agp_json_conv *cv, const char *what)
{
	snprintf(cv->msg, sizeof(cv->msg), "%s", what);
	return -1;
}

static const char *keep(struct agp_json_conv *cv, const char *s, size_t len)
{
	return cv->borrow ? s : agp_strndup(cv->a, s, len);
}

static int uid_from_json(struct agp_json_conv *cv, json_t *j, struct agp_value *out)
{
	json_t *t = json_object_get(j, "type"), *id = json_object_get(j, "id");
	struct agp_uid *uid;

	if (!json_is_string(t) || !json_is_string(id))
		return fail(cv, "__entity needs string \"type\" and \"id\"");
	if (json_string_length(t) > UINT32_MAX || json_string_length(id) > UINT32_MAX)
		return fail(cv, "entity type or id too long");
	uid = agp_alloc(cv->a, sizeof(*uid));
	if (!uid)
		return fail(cv, "out of memory converting JSON");
	uid->tlen = (uint32_t)json_string_length(t);
	uid->ilen = (uint32_t)json_string_length(id);
	uid->type = keep(cv, json_string_value(t), uid->tlen);
	uid->id = keep(cv, json_string_value(id), uid->ilen);
	if (!uid->type || !uid->id)
		return fail(cv, "out of memory converting JSON");
	agp_uid_seal(uid);
	out->type = AGP_ENTITY;
	out->uid = uid;
	return 0;
}

static int string_from_json(struct agp_json_conv *cv, const char *s, size_t len,
			    enum agp_vtype type, struct agp_value *out)
{
	if (len > UINT32_MAX)
		return fail(cv, "JSON string too long");
	out->s = keep(cv, s, len);
	if (!out->s)
		return fail(cv, "out of memory converting JSON");
	out->type = type;
	out->n = (uint32_t)len;
	return 0;
}

int agp_value_from_json(struct agp_json_conv *cv, json_t *j, struct agp_value *out, int depth)
{
	char num[64];
	size_t i, n;
	const char *key;
	json_t *v;

	memset(out, 0, sizeof(*out));
	if (depth > AGP_MAX_DEPTH)
		return fail(cv, "JSON nested deeper than 64 levels");
	switch (json_typeof(j)) {
	case JSON_TRUE:
	case JSON_FALSE:
		out->type = AGP_BOOL;
		out->b = json_is_true(j);
		return 0;
	case JSON_INTEGER:
		out->type = AGP_LONG;
		out->l = json_integer_value(j);
		return 0;
	case JSON_REAL:
		/* The text is formatted here, so it is always copied. */
		n = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(j));
		out->s = agp_strndup(cv->a, num, n);
		if (!out->s)
			return fail(cv, "out of memory converting JSON");
		out->type = AGP_DECIMAL;
		out->n = (uint32_t)n;
		return 0;
	case JSON_STRING:
		return string_from_json(cv, json_string_value(j), json_string_length(j), AGP_STRING,
					out);
	case JSON_NULL:
		/* Only reachable at the top: nulls inside arrays and objects are
		 * dropped, as absent optional arguments. */
		return fail(cv, "JSON null has no Cedar value");
	case JSON_ARRAY: {
		struct agp_value *items;

		n = json_array_size(j);
		if (n > UINT32_MAX)
			return fail(cv, "JSON array too long");
		items = agp_alloc_array(cv->a, n, sizeof(*items));
		if (!items && n)
			return fail(cv, "out of memory converting JSON");
		n = 0;
		json_array_foreach(j, i, v)
		{
			if (json_is_null(v))
				continue;
			if (agp_value_from_json(cv, v, &items[n++], depth + 1))
				return -1;
		}
		out->type = AGP_SET;
		out->items = items;
		out->n = (uint32_t)n;
		return 0;
	}
	case JSON_OBJECT: {
		struct agp_field *fields;

		/* Size first: a lookup per object would cost more than the rest. */
		v = json_object_size(j) == 1 ? json_object_get(j, "__entity") : NULL;
		if (v) {
			if (!json_is_object(v))
				return fail(cv, "__entity must be an object");
			return uid_from_json(cv, v, out);
		}
		n = json_object_size(j);
		if (n > UINT32_MAX)
			return fail(cv, "JSON object too large");
		fields = agp_alloc_array(cv->a, n, sizeof(*fields));
		if (!fields && n)
			return fail(cv, "out of memory converting JSON");
		i = 0;
		json_object_foreach(j, key, v)
		{
			size_t klen = strlen(key);

			if (json_is_null(v))
				continue;
			if (klen > UINT32_MAX)
				return fail(cv, "JSON key too long");
			fields[i].klen = (uint32_t)klen;
			fields[i].key = keep(cv, key, klen);
			if (!fields[i].key)
				return fail(cv, "out of memory converting JSON");
			if (agp_value_from_json(cv, v, &fields[i].v, depth + 1))
				return -1;
			i++;
		}
		out->type = AGP_RECORD;
		out->fields = fields;
		out->n = (uint32_t)i;
		return 0;
	}
	}
	return fail(cv, "unsupported JSON value");
}

static int parse_v4(const char *s, size_t len, uint8_t *out)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0, digits = 0;

		if (part) {
			if (i >= len || s[i] != '.')
				return -1;
			i++;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(s[i++] - '0');
			digits++;
		}
		/* Leading zeros are ambiguous (octal in some parsers): refuse them. */
		if (!digits || v > 255 || (digits > 1 && s[i - digits] == '0'))
			return -1;
		out[part] = (uint8_t)v;
	}
	return i == len ? 0 : -1;
}

static int parse_v6(const char *s, size_t len, uint8_t *out)
{
	uint16_t words[8];
	int n = 0, gap = -1;
	size_t i = 0;

	if (len >= 2 && s[0] == ':' && s[1] == ':') {
		gap = 0;
		i = 2;
	} else if (len && s[0] == ':') {
		return -1;
	}
	while (i < len) {
		unsigned v = 0;
		int digits = 0, h;

		if (n >= 8)
			return -1;
		while (i < len && digits < 4 && (h = ag_hex_digit(s[i])) >= 0) {
			v = v * 16 + (unsigned)h;
			digits++;
			i++;
		}
		if (!digits)
			return -1;
		words[n++] = (uint16_t)v;
		if (i == len)
			break;
		if (s[i] != ':')
			return -1;
		i++;
		if (i < len && s[i] == ':') {
			if (gap >= 0)
				return -1;
			gap = n;
			i++;
		} else if (i == len) {
			return -1;
		}
	}
	if ((gap < 0 && n != 8) || (gap >= 0 && n > 7))
		return -1;
	memset(out, 0, 16);
	for (int k = 0, pos = 0; k < n; k++, pos++) {
		if (k == gap)
			pos += 8 - n;
		out[pos * 2] = (uint8_t)(words[k] >> 8);
		out[pos * 2 + 1] = (uint8_t)words[k];
	}
	return 0;
}

int agp_ip_parse(const char *s, size_t len, struct agp_ip *out)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	unsigned prefix = 0, max;

	memset(out, 0, sizeof(*out));
	if (memchr(s, ':', alen)) {
		if (parse_v6(s, alen, out->addr))
			return -1;
		out->v6 = 1;
		max = 128;
	} else {
		if (parse_v4(s, alen, out->addr))
			return -1;
		max = 32;
	}
	if (slash) {
		size_t i = alen + 1;

		if (i == len || len - i > 3)
			return -1;
		for (; i < len; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			prefix = prefix * 10 + (unsigned)(s[i] - '0');
		}
		if (prefix > max)
			return -1;
	} else {
		prefix = max;
	}
	out->prefix = (uint8_t)prefix;
	return 0;
}

/* ip is in range when the range's prefix covers all of ip's addresses. */
bool agp_ip_in_range(const struct agp_ip *ip, const struct agp_ip *range)
{
	unsigned bits = range->prefix;

	if (ip->v6 != range->v6 || ip->prefix < range->prefix)
		return false;
	for (unsigned i = 0; bits; i++) {
		unsigned take = bits >= 8 ? 8 : bits;
		uint8_t mask = (uint8_t)(0xff00u >> take);

		if ((ip->addr[i] & mask) != (range->addr[i] & mask))
			return false;
		bits -= take;
	}
	return true;
}

bool agp_ip_is_loopback(const struct agp_ip *ip)
{
	static const uint8_t v6_loop[16] = { [15] = 1 };

	if (!ip->v6)
		return ip->addr[0] == 127 && ip->prefix >= 8;
	return ip->prefix == 128 && !memcmp(ip->addr, v6_loop, 16);
}
