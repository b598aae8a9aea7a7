// SPDX-License-Identifier: GPL-2.0
/* Spare buffers (see spares.h). */
#include <stdlib.h>

#include "spares.h"

void *ag_spares_get(struct ag_spares *sp)
{
	if (sp->nr)
		return sp->buf[--sp->nr];
	return malloc(sp->size);
}

void ag_spares_put(struct ag_spares *sp, void *buf)
{
	if (!buf)
		return;
	if (sp->nr < AG_SPARES_MAX)
		sp->buf[sp->nr++] = buf;
	else
		free(buf);
}

void ag_spares_drain(struct ag_spares *sp)
{
	while (sp->nr)
		free(sp->buf[--sp->nr]);
}
