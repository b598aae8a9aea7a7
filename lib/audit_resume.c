// SPDX-License-Identifier: GPL-2.0
/*
 * The writer's state at its last durable checkpoint and at a clean close
 * (audit_writer_commit.c saves it), so that the next open reads only
 * what was written after it instead of hashing the whole series again
 * (lib/audit_open.c): the segment and offset the log had reached, the
 * record count, the chain head and the Merkle tree's frontier, in
 * <log>-resume (JSON, replaced atomically, 0600).
 *
 * It is trusted only where the log still agrees with it: the segment holds
 * at least the offset, the line that ends there is a checkpoint (nothing
 * unsigned before it) and hashes to the saved chain head, and its seq is the
 * saved count less one.  Anything else (no file, a log moved aside, a
 * truncated or rewritten one) means reading the whole series, as without
 * it.  A crash leaves the last one valid: what the crashed daemon wrote
 * after that checkpoint is read as the tail.  A tampered file can only make the
 * writer chain or sign wrongly, which `agentgatectl audit verify` reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_writer_int.h"
#include "fileio.h"

#define RESUME_VERSION 1
#define TREE_NODES (sizeof(((struct ag_audit_tree *)0)->node) / AG_AUDIT_HASH_LEN)

static char *resume_path(const char *base)
{
	char *p;

	return asprintf(&p, "%s-resume", base) < 0 ? NULL : p;
}

static json_t *hex_json(const uint8_t h[AG_AUDIT_HASH_LEN])
{
	char hex[AG_AUDIT_HEX_LEN + 1];

	ag_audit_hex(h, hex);
	return json_string(hex);
}

int ag_audit_resume_save(const struct ag_audit_resume *rs, const char *base, struct ag_err *err)
{
	json_t *tree = json_array(), *obj;
	char *path = resume_path(base), *text = NULL;
	int ret = -ENOMEM;

	for (size_t i = 0; tree && i < TREE_NODES; i++)
		if (json_array_append_new(tree, hex_json(rs->tree.node[i])))
			break;
	obj = json_pack("{s:i, s:I, s:I, s:I, s:o, s:I, s:o*}", "version", RESUME_VERSION,
			"segment", (json_int_t)rs->segment, "offset", (json_int_t)rs->offset,
			"count", (json_int_t)rs->count, "prev", hex_json(rs->prev), "tree_size",
			(json_int_t)rs->tree.size, "tree", tree);
	if (obj && path && json_array_size(tree) == TREE_NODES &&
	    (text = json_dumps(obj, JSON_COMPACT)))
		ret = ag_file_write_atomic(path, text, strlen(text), 0600, err);
	else
		ret = ag_errf(err, ret, "%s: out of memory", base);
	json_decref(obj);
	free(text);
	free(path);
	return ret;
}

static int get_u64(json_t *obj, const char *key, uint64_t *v)
{
	json_t *j = json_object_get(obj, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -EINVAL;
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int get_hash(json_t *j, uint8_t out[AG_AUDIT_HASH_LEN])
{
	return json_is_string(j) ? ag_audit_unhex(json_string_value(j), out) : -EINVAL;
}

int ag_audit_resume_load(const char *base, struct ag_audit_resume *rs)
{
	char *path = resume_path(base);
	json_t *obj = path ? ag_json_load_file(path, JSON_REJECT_DUPLICATES, NULL) : NULL;
	json_t *tree = json_object_get(obj, "tree");
	uint64_t version = 0;
	int ret = obj ? 0 : -ENOENT;

	if (!ret &&
	    (get_u64(obj, "version", &version) || version != RESUME_VERSION ||
	     get_u64(obj, "segment", &rs->segment) || get_u64(obj, "offset", &rs->offset) ||
	     get_u64(obj, "count", &rs->count) || get_u64(obj, "tree_size", &rs->tree.size) ||
	     get_hash(json_object_get(obj, "prev"), rs->prev) ||
	     json_array_size(tree) != TREE_NODES || rs->tree.size != rs->count))
		ret = -EINVAL;
	for (size_t i = 0; !ret && i < TREE_NODES; i++)
		ret = get_hash(json_array_get(tree, i), rs->tree.node[i]);
	json_decref(obj);
	free(path);
	return ret;
}

void ag_audit_resume_remove(const char *base)
{
	char *path = resume_path(base);

	if (path)
		unlink(path);
	free(path);
}

/*
 * The line that ends at off in path (its newline not included) into *buf:
 * 0, or -errno when there is none whole (a short file, no newline at off).
 */
int ag_audit_resume_last_line(const char *path, uint64_t off, char **buf, size_t *len)
{
	size_t want = off < AG_AUDIT_MAX_LINE + 1 ? (size_t)off : AG_AUDIT_MAX_LINE + 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *b = malloc(want + 1), *nl;
	ssize_t n;

	if (fd < 0 || !b || !want) {
		if (fd >= 0)
			close(fd);
		free(b);
		return -EINVAL;
	}
	n = pread(fd, b, want, (off_t)(off - want));
	close(fd);
	if (n != (ssize_t)want || b[want - 1] != '\n') {
		free(b);
		return -EINVAL;
	}
	nl = memrchr(b, '\n', want - 1);
	if (!nl && want < off) {
		/* Longer than any line the writer writes. */
		free(b);
		return -EINVAL;
	}
	*len = want - 1 - (nl ? (size_t)(nl + 1 - b) : 0);
	memmove(b, nl ? nl + 1 : b, *len);
	b[*len] = '\0';
	*buf = b;
	return 0;
}
