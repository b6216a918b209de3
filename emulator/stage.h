/*
 * stage: the names of the points in an SMTP session where a scenario may
 * decide (issue 4's list). One set of names is used everywhere: hooks, logs,
 * the API and the docs. Pure.
 */
#ifndef EMU_STAGE_H
#define EMU_STAGE_H

enum smtp_stage {
    STAGE_CONNECT,    /* accepted, before the greeting */
    STAGE_EHLO,       /* HELO or EHLO */
    STAGE_STARTTLS,   /* after the TLS handshake */
    STAGE_AUTH,       /* AUTH, once credentials are complete */
    STAGE_MAIL,       /* MAIL FROM */
    STAGE_RCPT,       /* RCPT TO */
    STAGE_DATA,       /* the DATA or BDAT command */
    STAGE_MESSAGE,    /* after the end of the data, before the reply */
    STAGE_QUIT,       /* QUIT */
    STAGE_DISCONNECT, /* the connection ended (bookkeeping only) */
    STAGE_COUNT
};

static inline const char *
stage_name(enum smtp_stage s)
{
    switch (s) {
    case STAGE_CONNECT:
        return "connect";
    case STAGE_EHLO:
        return "ehlo";
    case STAGE_STARTTLS:
        return "starttls";
    case STAGE_AUTH:
        return "auth";
    case STAGE_MAIL:
        return "mail";
    case STAGE_RCPT:
        return "rcpt";
    case STAGE_DATA:
        return "data";
    case STAGE_MESSAGE:
        return "message";
    case STAGE_QUIT:
        return "quit";
    case STAGE_DISCONNECT:
        return "disconnect";
    case STAGE_COUNT:
        break;
    }
    return "?";
}

#endif
