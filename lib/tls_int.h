/* SPDX-License-Identifier: GPL-2.0 */
/* What lib/tls.c (contexts, connections) and lib/tls_ca.c (the CA, leaves) share. */
#ifndef AG_TLS_INT_H
#define AG_TLS_INT_H

#include "tls.h"

/* The most specific OpenSSL reason, then an empty queue: no error leaks to the next caller. */
int ag_tls_ossl_err(struct ag_err *err, int code, const char *what);
/* The key every leaf of ca certifies: what a server connection proves possession of. */
EVP_PKEY *ag_tls_ca_leaf_key(const struct ag_tls_ca *ca);

#endif
