/*
 * net_int.h: declarations shared by net.c, net_tls.c and net_http.c only.
 * May mention OpenSSL and libevent types; nothing outside net*.c includes it.
 */
#ifndef EMU_NET_INT_H
#define EMU_NET_INT_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "net.h"

struct event_base *net_base(struct net *n);
/* A fresh SSL for one accepted connection; NULL on failure. */
SSL *net_tls_ssl_new(struct net_tls *t);
/* Fill `out` from a connection whose handshake finished. */
void net_tls_describe(SSL *ssl, struct net_tls_info *out);

#endif
