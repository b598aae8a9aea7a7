// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz a call's records given as members (lib/audit_canon.c) against the
 * tree path they replace.  Input: a mode byte, a tool name up to the first
 * newline, then JSON text for the arguments (as the agent sends them).
 * The mode picks the redaction, the target key and which members are null
 * or absent.  Both paths must agree: the same refusal, or the same bytes
 * and the same places for the writer's own members.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const reserved[] = { "kind", "prev", "seq", "ts" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const flags[] = { "first_tool", "rate" };
	static const char *const targets[] = { "tool", "resource", "prompt", "route" };
	static struct ag_audit_buf buf;
	struct ag_audit_member agent[3], f[16];
	uint32_t at_tree[4], at_members[4];
	struct ag_audit_text t = { 0 };
	const char *nl;
	char *tool;
	json_t *args, *tree;
	size_t n = 0;
	int mode, r_tree = -1, r_members;

	if (size < 1 || size > 1 << 16)
		return 0;
	mode = data[0];
	nl = memchr(data + 1, '\n', size - 1);
	if (!nl)
		return 0;
	tool = strndup((const char *)data + 1, (size_t)(nl - (const char *)data - 1));
	args = json_loadb(nl + 1, size - (size_t)(nl + 1 - (const char *)data),
			  JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (!tool)
		abort();
	agent[0] = AG_AM_S("name", tool);
	agent[1] = AG_AM_I("pid", -(long long)size);
	agent[2] = (struct ag_audit_member){
		.key = "delegation", .type = AG_AM_STRV, .strv = flags, .n = (size_t)mode % 3
	};
	f[n++] = (struct ag_audit_member){ .key = "agent", .type = AG_AM_OBJ, .obj = agent, .n = 3 };
	f[n++] = (struct ag_audit_member){
		.key = "args", .type = AG_AM_JSON, .j = args, .redact = (mode >> 2) % 3
	};
	f[n++] = AG_AM_S(targets[(mode >> 4) & 3], mode & 64 ? NULL : tool);
	f[n++] = AG_AM_J("id", mode & 128 ? NULL : json_object_get(args, "id"));
	f[n++] = AG_AM_B("hidden", mode & 1);
	f[n++] = (struct ag_audit_member){ .key = "policies", .type = AG_AM_CSV, .s = tool };
	f[n++] = AG_AM_I("latency_us", (long long)((uint64_t)mode << 56));
	tree = ag_audit_members_json(f, n);
	if (tree)
		r_tree = ag_audit_canon(tree, AG_AUDIT_MAX_LINE - 256, reserved, 4, at_tree, &t);
	r_members = ag_audit_canon_members(&buf, AG_AUDIT_MAX_LINE - 256, f, n, reserved, 4,
					   at_members);
	if (!r_tree != !r_members)
		abort();
	if (!r_tree && (t.len != buf.len || memcmp(t.text, buf.b, t.len) || t.nul != buf.nul ||
			memcmp(at_tree, at_members, sizeof(at_tree))))
		abort();
	ag_audit_buf_trim(&buf);
	free(t.text);
	json_decref(tree);
	json_decref(args);
	free(tool);
	return 0;
}
