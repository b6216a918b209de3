/*
 * decision: the decision value's name table and lifetime. Pure.
 */
#include "decision.h"

#include <string.h>

const char *
decide_kind_name(enum decide_kind k)
{
    switch (k) {
    case DECIDE_DEFAULT:
        return "default";
    case DECIDE_REPLY:
        return "reply";
    case DECIDE_REPLY_CLOSE:
        return "reply_close";
    case DECIDE_DROP:
        return "drop";
    case DECIDE_RESET:
        return "reset";
    case DECIDE_HANG:
        return "hang";
    case DECIDE_PARTIAL:
        return "partial";
    }
    return "?";
}

const char *
decide_then_name(enum decide_then t)
{
    switch (t) {
    case THEN_NONE:
        return "none";
    case THEN_CLOSE:
        return "close";
    case THEN_RESET:
        return "reset";
    case THEN_HANG:
        return "hang";
    case THEN_CLOSE_ON_INPUT:
        return "close_on_input";
    case THEN_RESET_ON_INPUT:
        return "reset_on_input";
    }
    return "?";
}

void
decision_init(struct decision *d)
{
    memset(d, 0, sizeof(*d));
}

void
decision_cleanup(struct decision *d)
{
    buf_cleanup(&d->reply);
    memset(d, 0, sizeof(*d));
}
