/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Output rules, private: the secret detectors (redact_detect.c) as the
 * scanner and the rule sets (redact.c) use them.
 */
#ifndef AG_REDACT_INT_H
#define AG_REDACT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "redact.h"

/*
 * A view of text for detectors: a match may start at s and end at most at
 * lim; b[s - 1] (if s > 0) and b[lim] (if lim < len) may be looked at.
 */
struct view {
	const unsigned char *b;
	size_t len;
};

typedef bool (*detector_fn)(const struct view *v, size_t s, size_t lim, size_t *e);

struct redact_det {
	const char *name;
	detector_fn fn;
	const char *starts; /* bytes a match can begin with; NULL: see redact_is_local */
};

/* By enum ag_redact_detector, AG_DET_PEM_KEY to AG_DET_EMAIL. */
extern const struct redact_det redact_detectors[AG_DET_EMAIL + 1];
/* A byte of an email address's local part. */
bool redact_is_local(unsigned char c);

#endif
