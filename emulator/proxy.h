/*
 * proxy: parser for the PROXY protocol header, versions 1 (text) and 2
 * (binary), as specified in HAProxy's doc/proxy-protocol.txt. Pure. The
 * session feeds it the first bytes of a connection on listeners given with
 * --proxy-protocol; on PROXY_OK the advertised source becomes the client
 * address everywhere.
 */
#ifndef EMU_PROXY_H
#define EMU_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

/* v1 lines are at most 107 bytes; v2 headers 16 + 65535. */
#define PROXY_V1_MAX 107
#define PROXY_V2_HEADER 16

enum proxy_result {
    PROXY_OK,
    PROXY_INCOMPLETE, /* need more bytes */
    PROXY_INVALID,    /* abort the connection */
};

const char *proxy_result_name(enum proxy_result r);

struct proxy_info {
    int version;        /* 1 or 2 */
    bool has_addresses; /* false for UNKNOWN (v1), LOCAL or UNSPEC (v2) */
    struct ip_addr src, dst;
    uint16_t src_port, dst_port;
    size_t header_len; /* bytes to drain */
};

enum proxy_result proxy_parse(const unsigned char *buf, size_t len,
                              struct proxy_info *out);

#endif
