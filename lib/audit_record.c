// SPDX-License-Identifier: GPL-2.0
/* Audit records: event kinds, timestamps and argument redaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"

static const char *const kinds[] = {
	"connect",	  "decision",	       "result",
	"approval",	  "policy_reload",     "checkpoint",
	"kernel_refusal", "daemon_start",      "daemon_stop",
	"tool",		  "credential_reload", "dns",
	"anomaly",	  "policy_source",
};

const char *ag_audit_kind_name(const char *kind)
{
	for (size_t i = 0; kind && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kind, kinds[i]))
			return kinds[i];
	return NULL;
}

void ag_audit_format_ts(const struct timespec *ts, char out[AG_AUDIT_TS_LEN])
{
	/* The committer stamps many records per second: convert each second once. */
	static __thread char date[20];
	static __thread time_t date_sec;
	static __thread bool date_ok;
	unsigned long ns = (unsigned long)ts->tv_nsec % 1000000000UL;
	struct tm tm;

	if (!date_ok || ts->tv_sec != date_sec) {
		/* Years beyond 9999 would not fit: such a clock is wrong anyway. */
		date_ok = gmtime_r(&ts->tv_sec, &tm) && tm.tm_year + 1900 <= 9999 &&
			  tm.tm_year + 1900 >= 0 &&
			  strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 19;
		if (!date_ok) {
			snprintf(out, AG_AUDIT_TS_LEN, "%s", "0000-00-00T00:00:00.000000000Z");
			return;
		}
		date_sec = ts->tv_sec;
	}
	memcpy(out, date, 19);
	out[19] = '.';
	for (int i = 28; i > 19; i--, ns /= 10)
		out[i] = (char)('0' + ns % 10);
	out[29] = 'Z';
	out[30] = '\0';
}

static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

void ag_audit_ts_add_us(struct timespec *t, uint64_t us)
{
	t->tv_sec += (time_t)(us / 1000000);
	t->tv_nsec += (long)(us % 1000000) * 1000;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

bool ag_audit_ts_reached(const struct timespec *now, const struct timespec *t)
{
	return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

/*
 * Accepts "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (UTC only, as the writer emits)
 * and a bare "YYYY-MM-DD" meaning midnight, for query bounds.
 */
int ag_audit_parse_ts(const char *s, struct timespec *ts)
{
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0;
	long nsec = 0;
	size_t len = strlen(s);
	const char *p;

	if (len < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return -EINVAL;
	p = s + 10;
	if (*p) {
		if ((*p != 'T' && *p != 't') || len < 20 || !digits(p + 1, 2, &h) || p[3] != ':' ||
		    !digits(p + 4, 2, &mi) || p[6] != ':' || !digits(p + 7, 2, &sec))
			return -EINVAL;
		p += 9;
		if (*p == '.') {
			long scale = 100000000L;
			int n = 0;

			for (p++; *p >= '0' && *p <= '9'; p++, n++)
				if (n < 9) {
					nsec += (*p - '0') * scale;
					scale /= 10;
				}
			if (!n)
				return -EINVAL;
		}
		if ((*p != 'Z' && *p != 'z') || p[1])
			return -EINVAL;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	ts->tv_sec = timegm(&tm);
	ts->tv_nsec = nsec;
	return 0;
}

int ag_audit_redact_parse(const char *name, enum ag_audit_redact *mode)
{
	if (!strcmp(name, "full"))
		*mode = AG_AUDIT_REDACT_FULL;
	else if (!strcmp(name, "hash"))
		*mode = AG_AUDIT_REDACT_HASH;
	else if (!strcmp(name, "drop"))
		*mode = AG_AUDIT_REDACT_DROP;
	else
		return -EINVAL;
	return 0;
}

char *ag_audit_u64(uint64_t v, char *end)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

/* {"sha256": hex of the value's compact, key-sorted JSON}. */
static json_t *hashed(const json_t *v)
{
	char hex[AG_AUDIT_HEX_LEN + 1];

	if (ag_audit_canon_hash(v, hex))
		return NULL;
	return json_pack("{ss}", "sha256", hex);
}

int ag_audit_redact(json_t *fields, const char *key, enum ag_audit_redact mode, struct ag_err *err)
{
	json_t *v = json_object_get(fields, key), *nv;
	const char *name;
	json_t *member;

	if (!json_is_object(fields))
		return ag_errf(err, -EINVAL, "audit redaction: fields is not an object");
	if (!v || mode == AG_AUDIT_REDACT_FULL)
		return 0;
	if (mode == AG_AUDIT_REDACT_DROP)
		return json_object_del(fields, key) ? -ENOMEM : 0;
	if (json_is_object(v)) {
		json_object_foreach(v, name, member)
		{
			nv = hashed(member);
			if (!nv || json_object_set_new(v, name, nv))
				goto nomem;
		}
		return 0;
	}
	nv = hashed(v);
	if (!nv || json_object_set_new(fields, key, nv))
		goto nomem;
	return 0;
nomem:
	return ag_errf(err, -ENOMEM, "audit redaction of \"%s\": out of memory", key);
}
