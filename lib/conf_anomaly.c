// SPDX-License-Identifier: GPL-2.0
/*
 * "anomaly": {"enabled": BOOL, "rate_multiple": N, "min_rate_per_min": N,
 * "rate_window_s": N, "baseline_s": N, "denials": N, "denial_window_s": N}
 * (agentgate.conf(5), lib/anomaly.h).  Absent keys keep their defaults
 * (ag_anomaly_conf_default).
 */
#include <stddef.h>

#include "conf_int.h"

int conf_parse_anomaly(struct parse *p, json_t *v, struct ag_anomaly_conf *a)
{
	static const struct {
		const char *key, *path;
		uint64_t min, max;
		size_t off;
	} f[] = {
		{ "rate_multiple", "$.anomaly.rate_multiple", 2, 1000,
		  offsetof(struct ag_anomaly_conf, rate_multiple) },
		{ "min_rate_per_min", "$.anomaly.min_rate_per_min", 1, 1000000,
		  offsetof(struct ag_anomaly_conf, min_rate_per_min) },
		{ "rate_window_s", "$.anomaly.rate_window_s", 1, 86400,
		  offsetof(struct ag_anomaly_conf, rate_window_s) },
		{ "baseline_s", "$.anomaly.baseline_s", 60, 30 * 86400,
		  offsetof(struct ag_anomaly_conf, baseline_s) },
		{ "denials", "$.anomaly.denials", 1, AG_ANOMALY_DENIALS_MAX,
		  offsetof(struct ag_anomaly_conf, denials) },
		{ "denial_window_s", "$.anomaly.denial_window_s", 1, 86400,
		  offsetof(struct ag_anomaly_conf, denial_window_s) },
	};
	json_t *e;
	uint64_t n;
	int ret;

	if ((ret = conf_check_keys(p, "$.anomaly", v, conf_anomaly_keys)))
		return ret;
	if ((e = json_object_get(v, "enabled"))) {
		if (!json_is_boolean(e))
			return conf_bad(p, "$.anomaly.enabled", "expected true or false");
		a->enabled = json_is_true(e);
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (!(e = json_object_get(v, f[i].key)))
			continue;
		if ((ret = conf_get_uint(p, f[i].path, e, f[i].max, &n)))
			return ret;
		if (n < f[i].min)
			return conf_badf(p, f[i].path, "must be at least %llu",
					 (unsigned long long)f[i].min);
		*(uint32_t *)((char *)a + f[i].off) = (uint32_t)n;
	}
	/* The current rate must be shorter-lived than the baseline it is held against. */
	if (a->rate_window_s >= a->baseline_s)
		return conf_bad(p, "$.anomaly.rate_window_s", "must be less than baseline_s");
	return 0;
}
