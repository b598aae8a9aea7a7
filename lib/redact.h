/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Output governance: redaction of secrets and personal data in tool results.
 *
 * A redactor is built once from rules; each rule has a name and an action
 * (mask, or refuse the whole result) and is one of:
 *  - a field path: "$.a.b", "$.items[*].email", "$.list[0]", "$.obj.*";
 *    applied to the result object and to every content[].text that parses
 *    as JSON (the value becomes "[REDACTED:<rule>]");
 *  - a detector (AG_DET_*), run over every string value (not object keys);
 *  - a POSIX extended regular expression, compiled once.
 *
 * Text matching is positional: at each offset the detectors and regexes are
 * asked whether a match starts there, looking at one byte before and at
 * most max_match_len bytes from it (a match is at most max_match_len - 1
 * bytes long; the byte after it decides word boundaries).  The leftmost
 * match wins (then the longest, then the first rule) and scanning resumes
 * after it.  Since no decision needs more than max_match_len bytes ahead, a
 * stream holds back at most that much (plus the one byte of context before
 * it) and its output equals the one-shot output for any chunking.  A secret
 * longer than that is cut: a PEM key whose END line lies beyond the limit is
 * masked up to the limit only.  Regexes run on windows of at most
 * 2 * max_match_len bytes per regexec call; object keys are not scanned.
 * A content[].text that was JSON and had something masked is re-serialised
 * compactly.
 *
 * Reports name the rule and where (JSON path, byte offset, length) but never
 * the matched text.
 */
#ifndef AG_REDACT_H
#define AG_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util.h"

enum ag_redact_detector {
	AG_DET_PEM_KEY = 1, /* -----BEGIN ... PRIVATE KEY----- ... -----END ...----- */
	AG_DET_BEARER,	    /* "Bearer <token>" and JWT-shaped eyJ... */
	AG_DET_CLOUD_KEY,   /* AKIA/ASIA, ghp_/gho_/github_pat_, xox[abpr]-, AIza */
	AG_DET_CARD,	    /* 13-19 digits, single space/dash separators, Luhn-valid */
	AG_DET_EMAIL,	    /* local@label.tld, TLD alphabetic, 2+ letters */
};

enum ag_redact_kind { AG_RULE_PATH, AG_RULE_DETECTOR, AG_RULE_REGEX };
enum ag_redact_action { AG_ACT_MASK, AG_ACT_REFUSE };

struct ag_redact_rule {
	const char *name; /* in "[REDACTED:name]", reports and refusals */
	enum ag_redact_kind kind;
	enum ag_redact_action action;
	const char *path;		  /* AG_RULE_PATH */
	enum ag_redact_detector detector; /* AG_RULE_DETECTOR */
	const char *regex;		  /* AG_RULE_REGEX, REG_EXTENDED */
};

#define AG_REDACT_DEFAULT_MATCH_LEN 4096
#define AG_REDACT_MIN_MATCH_LEN 64
#define AG_REDACT_MAX_MATCH_LEN (1u << 20)
#define AG_REDACT_MAX_RULES 64
#define AG_REDACT_MAX_DEPTH 64 /* JSON nesting walked; deeper results are an error */
#define AG_REDACT_MAX_HITS 32  /* hits kept in a report; total counts all */
#define AG_REDACT_PATH_LEN 160

struct ag_redact_hit {
	const char *rule;	       /* owned by the redactor */
	char path[AG_REDACT_PATH_LEN]; /* "$.content[0].text" or "$.a#$.b" for JSON-in-text */
	size_t offset;		       /* byte offset in the string (stream offset) */
	size_t len;		       /* bytes replaced; 0 for a field path */
};

struct ag_redact_report {
	struct ag_redact_hit hits[AG_REDACT_MAX_HITS];
	unsigned int n_hits;
	unsigned long total;
	const char *refused_by; /* first refusing rule that fired, or NULL */
};

struct ag_redactor;

/* max_match_len 0 selects AG_REDACT_DEFAULT_MATCH_LEN. */
struct ag_redactor *ag_redactor_new(const struct ag_redact_rule *rules, size_t n,
				    size_t max_match_len, struct ag_err *err);
void ag_redactor_free(struct ag_redactor *r);
/* A detector by its name: "pem_private_key", "bearer_token",
 * "cloud_access_key", "credit_card", "email".  -EINVAL when unknown. */
int ag_redact_detector_parse(const char *name, enum ag_redact_detector *out);
const char *ag_redact_detector_name(enum ag_redact_detector d);
/* Every detector as a masking rule named after it, for tests and benches. */
struct ag_redactor *ag_redactor_all_detectors(size_t max_match_len, struct ag_err *err);

/*
 * Returns a new redacted copy of result, or when a refusing rule fired the
 * MCP tool error {"content":[{"type":"text","text":"Refused by output rule
 * <name>"}],"isError":true}.  NULL on error (too deep, out of memory): fail
 * closed.  rep may be NULL; it is reset first.
 */
json_t *ag_redact_result(const struct ag_redactor *r, const json_t *result,
			 struct ag_redact_report *rep, struct ag_err *err);

/*
 * Whether ag_redact_text would mask or refuse anything of text (a detector
 * or regex matches; true also when it cannot tell, out of memory), without
 * making the copy.  Path rules are not asked: ag_redact_has_paths.
 */
bool ag_redact_text_hit(const struct ag_redactor *r, const char *in, size_t len);
bool ag_redact_has_paths(const struct ag_redactor *r);
/* Detectors and regexes over one text; *out is malloc'd and NUL-terminated. */
int ag_redact_text(const struct ag_redactor *r, const char *in, size_t len, char **out,
		   size_t *outlen, struct ag_redact_report *rep, struct ag_err *err);

/*
 * Streaming: feed chunks split anywhere; each call sets *out to a malloc'd,
 * NUL-terminated buffer (caller frees) with the text that became final, and
 * holds back at most max_match_len bytes.  finish flushes the tail.
 * rep (reset by each call) has this call's hits, with stream offsets.  A refusing rule sets
 * rep->refused_by; the caller must then abort the stream (what was already sent is masked).
 */
struct ag_redact_stream;
struct ag_redact_stream *ag_redact_stream_new(const struct ag_redactor *r, struct ag_err *err);
int ag_redact_stream_feed(struct ag_redact_stream *s, const char *data, size_t len, char **out,
			  size_t *outlen, struct ag_redact_report *rep, struct ag_err *err);
int ag_redact_stream_finish(struct ag_redact_stream *s, char **out, size_t *outlen,
			    struct ag_redact_report *rep, struct ag_err *err);
void ag_redact_stream_free(struct ag_redact_stream *s);

#endif
