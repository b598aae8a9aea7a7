/* SPDX-License-Identifier: GPL-2.0 */
/* Decoders shared by the maps and agents commands. */
#ifndef AG_CLI_MAPS_H
#define AG_CLI_MAPS_H

#include <stddef.h>
#include <jansson.h>

#include "agentgate.h"

json_t *map_config_json(const struct ag_config *cfg);
json_t *map_stats_json(const struct ag_stats *s);
/* cli/quota.c: an agent's quota, limits and usage. */
json_t *quota_json(const char *name, const struct ag_quota *q);
int map_foreach(int fd, size_t key_size, void (*fn)(const void *key, void *arg), void *arg);

#endif
