// SPDX-License-Identifier: GPL-2.0
/*
 * "policy_source": the git repository the policy set comes from
 * (agentgate.conf(5), daemon/policy_git.c).  Only the shape is checked
 * here; the daemon runs git.  Every value ends up on a git command line
 * as one argv element, never through a shell, so the checks are about
 * what git itself would read as something else: an option (a leading
 * '-'), a refspec mapping (':'), a revision expression ("..", '^', '~').
 */
#include <errno.h>
#include <string.h>

#include "conf_int.h"

/* A branch or tag name, or a path in the tree: plain name characters only. */
static bool plain_name(const char *s, bool path)
{
	if (!*s || *s == '-' || *s == '/' || strstr(s, "..") || strstr(s, "//") ||
	    s[strlen(s) - 1] == '/')
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr(path ? "._-/ " : "._-/", *s))
			return false;
	return true;
}

static int parse_interval(struct parse *p, json_t *v, struct ag_policy_source_conf *s)
{
	uint64_t n;
	int ret;

	s->interval_s = AG_GIT_INTERVAL_DEFAULT;
	if (!(v = json_object_get(v, "interval_s")))
		return 0;
	if ((ret = conf_get_uint(p, "$.policy_source.interval_s", v, AG_GIT_INTERVAL_MAX, &n)))
		return ret;
	if (!n)
		return conf_bad(p, "$.policy_source.interval_s", "must be at least 1");
	s->interval_s = (uint32_t)n;
	return 0;
}

int conf_parse_policy_source(struct parse *p, json_t *v, struct ag_policy_source_conf *s)
{
	json_t *signers = json_object_get(v, "allowed_signers");
	int ret;

	if ((ret = conf_check_keys(p, "$.policy_source", v, conf_policy_source_keys)))
		return ret;
	if (!json_object_get(v, "url"))
		return conf_bad(p, "$.policy_source.url",
				"missing: the git repository to pull from");
	if ((ret = conf_get_optional(p, "$.policy_source", v, "url", s->url, sizeof(s->url))))
		return ret;
	if (s->url[0] == '-')
		return conf_bad(p, "$.policy_source.url", "must not start with '-'");
	/* Fail closed: no unsigned policy ever, so no source without its signers. */
	if (!signers)
		return conf_bad(p, "$.policy_source.allowed_signers",
				"missing: an ssh allowed-signers file is required");
	if ((ret = conf_path(p, "$.policy_source.allowed_signers", signers, s->allowed_signers)))
		return ret;
	snprintf(s->ref, sizeof(s->ref), "main");
	if ((ret = conf_get_optional(p, "$.policy_source", v, "ref", s->ref, sizeof(s->ref))))
		return ret;
	if (!plain_name(s->ref, false) || strstr(s->ref, ".lock"))
		return conf_bad(p, "$.policy_source.ref",
				"expected a branch or tag name ([A-Za-z0-9._/-], no \"..\")");
	if ((ret = conf_get_optional(p, "$.policy_source", v, "path", s->path, sizeof(s->path))))
		return ret;
	if (s->path[0] && !plain_name(s->path, true))
		return conf_bad(p, "$.policy_source.path",
				"expected a relative directory ([A-Za-z0-9._/ -], no \"..\")");
	return parse_interval(p, v, s);
}
