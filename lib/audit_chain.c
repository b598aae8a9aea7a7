// SPDX-License-Identifier: GPL-2.0
/* Audit hashes: the line chain, RFC 6962 leaves and the compact-range tree. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "audit.h"

static EVP_MD *sha256_md;
static pthread_key_t sha256_key;
static bool sha256_key_ok;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

/*
 * Fetching once avoids the implicit per-call fetch of EVP_sha256(); a
 * context per thread, reset by each init, avoids an allocation and a free
 * per hash (the committer hashes every record twice plus tree nodes).
 */
static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	sha256_key_ok = !pthread_key_create(&sha256_key, sha256_ctx_free);
}

static EVP_MD_CTX *sha256_ctx(void)
{
	static __thread EVP_MD_CTX *ctx;

	pthread_once(&sha256_once, sha256_fetch);
	if (ctx || !sha256_key_ok)
		return ctx;
	ctx = EVP_MD_CTX_new();
	/* The key frees the context when the thread exits. */
	if (ctx && pthread_setspecific(sha256_key, ctx)) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* SHA-256 of a prefix byte (if prefix >= 0) followed by two buffers. */
static void sha256(int prefix, const void *a, size_t alen, const void *b, size_t blen,
		   uint8_t out[AG_AUDIT_HASH_LEN])
{
	EVP_MD_CTX *ctx = sha256_ctx();
	uint8_t p = (uint8_t)prefix;
	bool ok;

	ok = ctx && sha256_md && EVP_DigestInit_ex2(ctx, sha256_md, NULL) &&
	     (prefix < 0 || EVP_DigestUpdate(ctx, &p, 1)) && EVP_DigestUpdate(ctx, a, alen) &&
	     (!blen || EVP_DigestUpdate(ctx, b, blen)) && EVP_DigestFinal_ex(ctx, out, NULL);
	/*
	 * SHA-256 only fails when OpenSSL cannot allocate; a wrong hash would
	 * silently break the chain, so stop instead.
	 */
	if (!ok) {
		fprintf(stderr, "agentgate audit: SHA-256 failed (out of memory)\n");
		abort();
	}
}

void ag_audit_line_hash(const void *line, size_t len, uint8_t out[AG_AUDIT_HASH_LEN])
{
	sha256(-1, line, len, NULL, 0, out);
}

void ag_audit_leaf_hash(const void *line, size_t len, uint8_t out[AG_AUDIT_HASH_LEN])
{
	sha256(0x00, line, len, NULL, 0, out);
}

static void node_hash(const uint8_t *left, const uint8_t *right, uint8_t out[AG_AUDIT_HASH_LEN])
{
	sha256(0x01, left, AG_AUDIT_HASH_LEN, right, AG_AUDIT_HASH_LEN, out);
}

void ag_audit_hex(const uint8_t h[AG_AUDIT_HASH_LEN], char out[AG_AUDIT_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < AG_AUDIT_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[AG_AUDIT_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Only the canonical lowercase form is accepted: the chain hashes bytes. */
int ag_audit_unhex(const char *s, uint8_t out[AG_AUDIT_HASH_LEN])
{
	if (strlen(s) != AG_AUDIT_HEX_LEN)
		return -EINVAL;
	for (int i = 0; i < AG_AUDIT_HASH_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void ag_audit_tree_init(struct ag_audit_tree *t)
{
	memset(t, 0, sizeof(*t));
}

void ag_audit_tree_append(struct ag_audit_tree *t, const uint8_t leaf[AG_AUDIT_HASH_LEN])
{
	int top = __builtin_popcountll(t->size);

	/* Each trailing one bit of size is a subtree as large as the new one. */
	memcpy(t->node[top], leaf, AG_AUDIT_HASH_LEN);
	for (uint64_t n = t->size; n & 1; n >>= 1, top--)
		node_hash(t->node[top - 1], t->node[top], t->node[top - 1]);
	t->size++;
}

void ag_audit_tree_root(const struct ag_audit_tree *t, uint8_t root[AG_AUDIT_HASH_LEN])
{
	int n = __builtin_popcountll(t->size);

	if (!n) {
		sha256(-1, "", 0, NULL, 0, root);
		return;
	}
	memcpy(root, t->node[n - 1], AG_AUDIT_HASH_LEN);
	for (int i = n - 2; i >= 0; i--)
		node_hash(t->node[i], root, root);
}
