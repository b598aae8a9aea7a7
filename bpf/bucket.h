/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The token bucket both kernel objects use: the hooks' per-agent connect
 * bucket (struct ag_quota) and the XDP guard's per-source bucket (struct
 * ag_guard_source).  Tokens are held in thousandths (AG_QUOTA_MILLI, one
 * token, from agentgate.h) so slow rates refill smoothly.  The caller
 * holds whatever serialises the bucket's fields.
 */
#ifndef AG_BPF_BUCKET_H
#define AG_BPF_BUCKET_H

/*
 * Refills rate tokens per second up to burst, as of now, and takes one.
 * Past the time an empty bucket takes to fill it is full; below that time
 * elapsed * rate < burst * 1e9, which cannot overflow.  Rate 0 never
 * refills.  Returns whether a token was taken.
 */
static __always_inline bool ag_bucket_take(__u64 *tokens_milli, __u64 *refill_ns, __u64 now,
					   __u32 rate, __u32 burst)
{
	__u64 cap = (__u64)burst * AG_QUOTA_MILLI, elapsed = now - *refill_ns;

	if (rate) {
		__u64 fill_ns = (__u64)burst * 1000000000ull / rate;

		if (elapsed >= fill_ns)
			*tokens_milli = cap;
		else
			*tokens_milli += elapsed * rate / 1000000;
	}
	if (*tokens_milli > cap)
		*tokens_milli = cap;
	*refill_ns = now;
	if (*tokens_milli < AG_QUOTA_MILLI)
		return false;
	*tokens_milli -= AG_QUOTA_MILLI;
	return true;
}

#endif
