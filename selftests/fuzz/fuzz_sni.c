// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the ClientHello SNI parser, which reads the first bytes an agent
 * sends before anything else has looked at them.  Beyond memory safety:
 * a name found is NUL-terminated, lower-case and a valid DNS name; bytes
 * after the record never change a complete answer; a prefix of an input
 * with a complete answer only ever asks for more or refuses.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int r, const char *out)
{
	size_t n;

	if (r != 1 && r != 0 && r != -EAGAIN && r != -EPROTO)
		abort();
	if (r != 1)
		return;
	n = strnlen(out, AG_TLS_NAME_MAX);
	if (n == AG_TLS_NAME_MAX || !ag_tls_dns_name_valid(out, n))
		abort();
	for (size_t i = 0; i < n; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[AG_TLS_NAME_MAX], again[AG_TLS_NAME_MAX];
	uint8_t *more;
	int r, r2;

	r = ag_tls_client_hello_sni(data, size, out, sizeof(out));
	check(r, out);
	if (ag_tls_looks_like(data, size) && r == -EPROTO && size >= 3 && data[1] != 3)
		abort();
	if (r == 0 || r == 1) {
		/* Whatever follows the first record is not the parser's business. */
		more = malloc(size + 7);
		if (!more)
			return 0;
		memcpy(more, data, size);
		memset(more + size, 0xa5, 7);
		r2 = ag_tls_client_hello_sni(more, size + 7, again, sizeof(again));
		free(more);
		if (r2 != r || (r == 1 && strcmp(out, again)))
			abort();
		/* Shorter inputs: waiting or refusing, never a different answer. */
		for (size_t cut = size > 64 ? size - 64 : 0; cut < size; cut++) {
			r2 = ag_tls_client_hello_sni(data, cut, again, sizeof(again));
			check(r2, again);
			if (r2 != -EAGAIN && r2 != -EPROTO && r2 != r)
				abort();
		}
	}
	return 0;
}
