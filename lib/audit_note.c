// SPDX-License-Identifier: GPL-2.0
/* Audit signing: the Ed25519 instance key and C2SP signed-note checkpoints. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit.h"
#include "fileio.h"

#define ED25519_PUB_LEN 32
#define ED25519_SIG_LEN 64
#define KEY_ID_LEN 4
#define SIG_ALG_ED25519 0x01
/* U+2014 EM DASH and a space start every signature line. */
#define SIG_PREFIX "\xe2\x80\x94 "
#define MAX_KEY_FILE (64 * 1024)

struct ag_audit_key {
	EVP_PKEY *pkey;
	uint8_t pub[ED25519_PUB_LEN];
};

void ag_audit_key_free(struct ag_audit_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

static int key_wrap(EVP_PKEY *pkey, const char *path, struct ag_audit_key **out, struct ag_err *err)
{
	struct ag_audit_key *key;
	size_t len = ED25519_PUB_LEN;

	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return ag_errf(err, -EINVAL, "%s: not an Ed25519 key", path);
	}
	key = calloc(1, sizeof(*key));
	if (!key || !EVP_PKEY_get_raw_public_key(pkey, key->pub, &len) || len != ED25519_PUB_LEN) {
		free(key);
		EVP_PKEY_free(pkey);
		return ag_errf(err, -ENOMEM, "%s: cannot read the public key", path);
	}
	key->pkey = pkey;
	*out = key;
	return 0;
}

static int key_create(const char *path, struct ag_audit_key **out, struct ag_err *err)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *bio = NULL;
	char *pem;
	long len;
	int ret;

	if (!pkey)
		return ag_errf(err, -ENOMEM, "%s: cannot generate an Ed25519 key", path);
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
		ret = ag_errf(err, -ENOMEM, "%s: cannot encode the new key", path);
		goto out;
	}
	len = BIO_get_mem_data(bio, &pem);
	ret = ag_file_create(path, pem, (size_t)len, 0600, err);
	if (ret)
		goto out;
	BIO_free(bio);
	return key_wrap(pkey, path, out, err);
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return ret;
}

int ag_audit_key_open(const char *path, bool create, struct ag_audit_key **out, struct ag_err *err)
{
	EVP_PKEY *pkey = NULL;
	struct stat st;
	char *buf;
	size_t len;
	BIO *bio;
	int fd, ret;

	fd = ag_file_open(AT_FDCWD, NULL, path, AG_FILE_NOFOLLOW, &st, err);
	if (fd == -ENOENT && create)
		return key_create(path, out, err);
	if (fd < 0)
		return fd;
	if (st.st_mode & 077) {
		close(fd);
		return ag_errf(err, -EPERM,
			       "%s: audit key has mode %04o, readable beyond its owner; "
			       "run chmod 600 on it",
			       path, (unsigned int)(st.st_mode & 07777));
	}
	ret = ag_file_read_fd(fd, path, MAX_KEY_FILE, &buf, &len, err);
	close(fd);
	if (ret)
		return ret;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(buf, len);
	free(buf);
	ERR_clear_error();
	if (!pkey)
		return ag_errf(err, -EINVAL, "%s: not a PEM private key", path);
	return key_wrap(pkey, path, out, err);
}

/* Canonical base64 of at most max bytes; -1 if not. */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t max)
{
	uint8_t tmp[128];
	char enc[4 * sizeof(tmp) / 3 + 4];
	size_t pad = 0;
	int n;

	if (!len || len % 4 || len / 4 * 3 > sizeof(tmp))
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '=' && i + 2 >= len)
			pad++;
		else if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				  (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return -1;
	}
	if (len / 4 * 3 - pad > max)
		return -1;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -1;
	n -= (int)pad;
	/*
	 * Unused low bits before the padding must be zero: otherwise several
	 * spellings decode alike and a changed byte would go unnoticed.
	 */
	if (EVP_EncodeBlock((unsigned char *)enc, tmp, n) != (int)len || memcmp(enc, s, len))
		return -1;
	memcpy(out, tmp, (size_t)n);
	return n;
}

/* C2SP key names: non-empty, no spaces, no '+', no control characters. */
static bool name_valid(const char *name)
{
	if (!*name || strlen(name) > 255)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p <= ' ' || *p == '+' || *p == 0x7f)
			return false;
	return true;
}

/* C2SP: SHA-256(name || 0x0A || 0x01 || public key)[:4]; names are <= 255. */
static void key_id(const char *name, const uint8_t pub[ED25519_PUB_LEN], uint8_t id[KEY_ID_LEN])
{
	uint8_t buf[256 + 2 + ED25519_PUB_LEN], h[AG_AUDIT_HASH_LEN];
	size_t nlen = strnlen(name, 256);

	memcpy(buf, name, nlen);
	buf[nlen] = '\n';
	buf[nlen + 1] = SIG_ALG_ED25519;
	memcpy(buf + nlen + 2, pub, ED25519_PUB_LEN);
	ag_audit_line_hash(buf, nlen + 2 + ED25519_PUB_LEN, h);
	memcpy(id, h, KEY_ID_LEN);
}

/* vkey: "<name>+<8 hex key id>+<base64(0x01 || public key)>". */
static int vkey_parse(const char *s, const char *path, struct ag_audit_key **out,
		      struct ag_err *err)
{
	const char *p1 = strchr(s, '+'), *p2 = p1 ? strchr(p1 + 1, '+') : NULL;
	uint8_t raw[1 + ED25519_PUB_LEN + 2], id[KEY_ID_LEN];
	char name[256], want[2 * KEY_ID_LEN + 1];
	size_t end = strcspn(s, "\r\n");
	EVP_PKEY *pkey;

	if (!p1 || !p2 || p1 == s || (size_t)(p1 - s) >= sizeof(name) || p2 - p1 != 9 ||
	    (size_t)(p2 - s) > end ||
	    b64_decode(p2 + 1, end - (size_t)(p2 + 1 - s), raw, sizeof(raw)) !=
		1 + ED25519_PUB_LEN ||
	    raw[0] != SIG_ALG_ED25519)
		return ag_errf(err, -EINVAL, "%s: not a PEM key nor a verifier key (name+id+key)",
			       path);
	memcpy(name, s, (size_t)(p1 - s));
	name[p1 - s] = '\0';
	key_id(name, raw + 1, id);
	snprintf(want, sizeof(want), "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
	if (strncmp(p1 + 1, want, 8))
		return ag_errf(err, -EINVAL, "%s: verifier key id does not match its key", path);
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw + 1, ED25519_PUB_LEN);
	if (!pkey)
		return ag_errf(err, -EINVAL, "%s: invalid Ed25519 public key", path);
	return key_wrap(pkey, path, out, err);
}

int ag_audit_pubkey_load(const char *path, struct ag_audit_key **out, struct ag_err *err)
{
	EVP_PKEY *pkey = NULL;
	char *buf;
	size_t len;
	BIO *bio;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ag_errf(err, -errno, "%s: cannot open the public key: %s", path,
			       strerror(errno));
	/* Not ag_file_open(): a public key may come down a pipe (<(...)). */
	ret = ag_file_read_fd(fd, path, MAX_KEY_FILE, &buf, &len, err);
	close(fd);
	if (ret)
		return ret;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio)
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (bio && !pkey) {
		(void)BIO_reset(bio);
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (pkey)
		ret = key_wrap(pkey, path, out, err);
	else
		ret = vkey_parse(buf, path, out, err);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return ret;
}

char *ag_audit_key_pem(const struct ag_audit_key *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem = NULL;
	long len;

	if (bio && PEM_write_bio_PUBKEY(bio, key->pkey)) {
		len = BIO_get_mem_data(bio, &data);
		pem = strndup(data, (size_t)len);
	}
	BIO_free(bio);
	return pem;
}

char *ag_audit_key_vkey(const struct ag_audit_key *key, const char *name)
{
	uint8_t raw[1 + ED25519_PUB_LEN], id[KEY_ID_LEN];
	char b64[4 * ((sizeof(raw) + 2) / 3) + 1];
	char *s;

	if (!name_valid(name))
		return NULL;
	raw[0] = SIG_ALG_ED25519;
	memcpy(raw + 1, key->pub, ED25519_PUB_LEN);
	EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
	key_id(name, key->pub, id);
	if (asprintf(&s, "%s+%02x%02x%02x%02x+%s", name, id[0], id[1], id[2], id[3], b64) < 0)
		return NULL;
	return s;
}

int ag_audit_note_sign(const struct ag_audit_key *key, const char *name, const char *text,
		       char **note, struct ag_err *err)
{
	uint8_t blob[KEY_ID_LEN + ED25519_SIG_LEN];
	char b64[4 * ((sizeof(blob) + 2) / 3) + 1];
	size_t tlen = strlen(text), siglen = ED25519_SIG_LEN;
	EVP_MD_CTX *ctx;
	bool ok;

	if (!name_valid(name))
		return ag_errf(err, -EINVAL, "audit key name \"%s\" is not a valid note name",
			       name);
	if (!tlen || text[tlen - 1] != '\n')
		return ag_errf(err, -EINVAL, "note text must end with a newline");
	key_id(name, key->pub, blob);
	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) &&
	     EVP_DigestSign(ctx, blob + KEY_ID_LEN, &siglen, (const unsigned char *)text, tlen) &&
	     siglen == ED25519_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok)
		return ag_errf(err, -EINVAL, "cannot sign the checkpoint with the audit key");
	EVP_EncodeBlock((unsigned char *)b64, blob, sizeof(blob));
	if (asprintf(note, "%s\n" SIG_PREFIX "%s %s\n", text, name, b64) < 0)
		return ag_errf(err, -ENOMEM, "out of memory signing a checkpoint");
	return 0;
}

static bool sig_ok(const struct ag_audit_key *key, const char *text, size_t tlen,
		   const uint8_t *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok =
	    ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) &&
	    EVP_DigestVerify(ctx, sig, ED25519_SIG_LEN, (const unsigned char *)text, tlen) == 1;

	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* Parses "<origin>\n<size>\n<base64 root>\n" exactly (no extension lines). */
static bool text_parse(const char *t, size_t len, struct ag_audit_checkpoint *cp)
{
	const char *nl1 = memchr(t, '\n', len), *nl2, *nl3;
	uint8_t root[AG_AUDIT_HASH_LEN + 2];
	uint64_t size = 0;

	if (!nl1 || nl1 == t || (size_t)(nl1 - t) >= sizeof(cp->origin))
		return false;
	nl2 = memchr(nl1 + 1, '\n', len - (size_t)(nl1 + 1 - t));
	if (!nl2 || nl2 == nl1 + 1 || nl2 - nl1 - 1 > 20 || (nl1[1] == '0' && nl2 - nl1 > 2))
		return false;
	for (const char *p = nl1 + 1; p < nl2; p++) {
		if (*p < '0' || *p > '9' || size > (UINT64_MAX - 9) / 10)
			return false;
		size = size * 10 + (uint64_t)(*p - '0');
	}
	nl3 = memchr(nl2 + 1, '\n', len - (size_t)(nl2 + 1 - t));
	if (!nl3 || nl3 + 1 != t + len ||
	    b64_decode(nl2 + 1, (size_t)(nl3 - nl2 - 1), root, sizeof(root)) != AG_AUDIT_HASH_LEN)
		return false;
	memcpy(cp->origin, t, (size_t)(nl1 - t));
	cp->origin[nl1 - t] = '\0';
	if (!name_valid(cp->origin))
		return false;
	cp->size = size;
	memcpy(cp->root, root, AG_AUDIT_HASH_LEN);
	return true;
}

enum ag_audit_note_status ag_audit_note_open(const char *note, size_t len,
					     const struct ag_audit_key *key,
					     struct ag_audit_checkpoint *cp, struct ag_err *err)
{
	const char *sep = NULL, *p, *end = note + len;
	uint8_t id[KEY_ID_LEN], blob[KEY_ID_LEN + ED25519_SIG_LEN + 2];
	size_t tlen, plen = sizeof(SIG_PREFIX) - 1;
	bool other_key = false;
	int nsig = 0, n;

	/* Text and signatures split at the last blank line. */
	for (p = note; p + 1 < end; p++)
		if (p[0] == '\n' && p[1] == '\n')
			sep = p;
	if (!sep || !len || end[-1] != '\n' || memchr(note, '\0', len)) {
		ag_errf(err, EBADMSG, "checkpoint note is not text, a blank line and signatures");
		return AG_AUDIT_NOTE_MALFORMED;
	}
	tlen = (size_t)(sep + 1 - note);
	if (!text_parse(note, tlen, cp)) {
		ag_errf(err, EBADMSG, "checkpoint note text is not origin, size and root hash");
		return AG_AUDIT_NOTE_MALFORMED;
	}
	key_id(cp->origin, key ? key->pub : (const uint8_t[ED25519_PUB_LEN]){ 0 }, id);
	for (p = sep + 2; p < end; nsig++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp;
		size_t nlen;

		if (nsig >= 100 || (size_t)(nl - p) < plen || memcmp(p, SIG_PREFIX, plen)) {
			ag_errf(err, EBADMSG, "checkpoint signature line %d is malformed",
				nsig + 1);
			return AG_AUDIT_NOTE_MALFORMED;
		}
		sp = memchr(p + plen, ' ', (size_t)(nl - p - plen));
		n = sp ? b64_decode(sp + 1, (size_t)(nl - sp - 1), blob, sizeof(blob)) : -1;
		if (sp == p + plen || n < KEY_ID_LEN) {
			ag_errf(err, EBADMSG, "checkpoint signature line %d is malformed",
				nsig + 1);
			return AG_AUDIT_NOTE_MALFORMED;
		}
		nlen = (size_t)(sp - p - plen);
		if (key && nlen == strlen(cp->origin) && !memcmp(p + plen, cp->origin, nlen) &&
		    !memcmp(blob, id, KEY_ID_LEN)) {
			if (n != KEY_ID_LEN + ED25519_SIG_LEN ||
			    !sig_ok(key, note, tlen, blob + KEY_ID_LEN)) {
				ag_errf(err, EBADMSG, "checkpoint signature by %s does not verify",
					cp->origin);
				return AG_AUDIT_NOTE_BAD_SIG;
			}
			return AG_AUDIT_NOTE_OK;
		}
		other_key = true;
		p = nl + 1;
	}
	if (!nsig) {
		ag_errf(err, EBADMSG, "checkpoint note has no signature");
		return AG_AUDIT_NOTE_MALFORMED;
	}
	if (key && other_key) {
		ag_errf(err, EBADMSG,
			"checkpoint is not signed by the given key (%s+%02x%02x%02x%02x)",
			cp->origin, id[0], id[1], id[2], id[3]);
		return AG_AUDIT_NOTE_OTHER_KEY;
	}
	return AG_AUDIT_NOTE_OK;
}
