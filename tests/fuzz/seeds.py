#!/usr/bin/python3
"""Write the hand-made seed inputs of tests/fuzz/corpus/<target>/.

Each seed is a real protocol element (an SMTP line, a PROXY header, an
AUTH blob, a command line, an API body...) or, for the targets whose input
is a small program, an input that spells out one meaningful case. Files
this script does not name (crash regressions, merged fuzzer finds) are
left alone. Run from anywhere: python3 tests/fuzz/seeds.py"""

import base64
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def smtp_parse():
    lines = {
        "ehlo": "EHLO client.example.com",
        "helo-literal": "HELO [192.0.2.1]",
        "mail-params": "MAIL FROM:<alice@example.com> SIZE=1024 BODY=8BITMIME",
        "mail-null-dsn": "MAIL FROM:<> RET=HDRS ENVID=QQ+2B1234",
        "mail-space-quoted": 'MAIL FROM: <"john doe"@example.com>',
        "mail-source-route": "MAIL FROM:<@relay1,@relay2:bob@example.org>",
        "mail-utf8": "mail from:<jürgen@bücher.de> SMTPUTF8",
        "mail-no-brackets": "MAIL FROM:bob@example.org AUTH=<>",
        "mail-bad-escape": 'MAIL FROM:<"a\\"b"@example.com>',
        "rcpt-postmaster": "RCPT TO:<postmaster>",
        "rcpt-dsn": "RCPT TO:<bob@[IPv6:2001:db8::1]> NOTIFY=SUCCESS,FAILURE "
                    "ORCPT=rfc822;bob+2B1@example.org",
        "rcpt-too-many": "RCPT TO:<a@b> " + " ".join(
            "P%d=%d" % (i, i) for i in range(17)),
        "bdat-last": "BDAT 1024 LAST",
        "bdat-max": "BDAT 18446744073709551615",
        "bdat-overflow": "BDAT 18446744073709551616 LAST",
        "auth-plain": "AUTH PLAIN " + base64.b64encode(
            b"\0alice\0secret").decode(),
        "auth-login": "AUTH LOGIN",
        "auth-cancel": "AUTH PLAIN =",
        "xclient": "XCLIENT ADDR=192.0.2.10 NAME=spike.example PORT=25 "
                   "HELO=x+20y PROTO=ESMTP",
        "xclient-v6": "XCLIENT ADDR=IPV6:2001:db8::5 NAME=[UNAVAILABLE]",
        "starttls": "STARTTLS",
        "quit": "QUIT",
        "http": "GET / HTTP/1.1",
        "header": "Subject: hello",
        "blank": "   ",
        "tabs": "\tEHLO\tx\t",
        "vrfy": "VRFY <postmaster@example.com>",
        "nul": "MAIL FROM:<a\0b@example.com>",
        "long-local": "RCPT TO:<" + "a" * 600 + "@example.com>",
    }
    for name, line in lines.items():
        write("smtp_parse", name, line)


def data_reader():
    # 5 bytes: size limit, then four split points (x/255 of the body).
    bodies = {
        "message": (7, b"Subject: hi\r\n\r\nbody\r\n..stuffed\r\n.\r\nQUIT\r\n"),
        "smuggle-lf": (7, b"a\n.\nb\r\n.\r\n"),
        "smuggle-lf-crlf": (7, b"x\n.\r\nstill data\r\n.\r\n"),
        "bare-cr": (7, b"a\rb\r\n.\r\n"),
        "nul": (7, b"a\0b\r\n.\r\n"),
        "first-line-end": (7, b".\r\nRSET\r\n"),
        "dot-dot": (7, b"..\r\n...\r\n.\r\n"),
        "unfinished-cr": (7, b"abc\r"),
        "dot-cr-x": (7, b".\rx\r\n.\r\n"),
        "over-limit": (3, b"0123456789" * 20 + b"\r\n.\r\n"),
        "limit-at-crlf": (4, b"0123456789abcde\r\n.\r\n"),
        "zero-limit": (0, b"x\r\n.\r\n"),
    }
    for name, (limit, body) in bodies.items():
        write("data_reader", name, bytes([limit, 40, 90, 91, 200]) + body)
    write("data_reader", "byte-splits", bytes([7, 1, 2, 3, 4]) +
          b"\r\n.\r\n")


def address():
    for i, s in enumerate([
            "alice@example.com", '"a b"@example.com', "postmaster",
            "jürgen@bücher.de", "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]",
            "<a@b.c>", "a@b..c", ".a@b", "a@", "@b", '"unterminated@b',
            "192.0.2.1", "::ffff:192.0.2.1", "[::1]", "2001:db8::/32",
            "10.0.0.0/8, 192.168.0.0/16,::1/128", "::ffff:10.0.0.0/104",
            "10.1.2.3/8", "1.2.3.4/33", "1.2.3.4/", "fe80::1%eth0",
            "127.0.0.1,,", b"\x80\xff"]):
        write("address", "seed-%02d" % i, s.encode("utf-8", "surrogateescape")
              if isinstance(s, str) else s)


V2SIG = b"\r\n\r\n\0\r\nQUIT\n"


def proxy():
    write("proxy", "v1-tcp4",
          "PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\nEHLO x\r\n")
    write("proxy", "v1-tcp6",
          "PROXY TCP6 2001:db8::1 2001:db8::2 4000 25\r\n")
    write("proxy", "v1-unknown", "PROXY UNKNOWN\r\n")
    write("proxy", "v1-unknown-addrs",
          "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")
    write("proxy", "v1-leading-zero",
          "PROXY TCP4 192.0.2.1 198.51.100.1 056324 25\r\n")
    write("proxy", "v1-mapped", "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n")
    write("proxy", "v1-partial", "PROXY TCP4 192.0.2.1 198.5")
    write("proxy", "v1-max", "PROXY TCP6 " + "f" * 39 + " " + "f" * 39 +
          " 65535 65535\r\n")
    addr4 = bytes([192, 0, 2, 1, 198, 51, 100, 1]) + struct.pack(">HH",
                                                               56324, 25)
    write("proxy", "v2-tcp4", V2SIG + b"\x21\x11" + struct.pack(">H", 12) +
          addr4 + b"EHLO x\r\n")
    addr6 = bytes(range(1, 17)) + bytes(range(17, 33)) + b"\x0f\xa0\x00\x19"
    write("proxy", "v2-tcp6", V2SIG + b"\x21\x21" + struct.pack(">H", 36) +
          addr6)
    write("proxy", "v2-local", V2SIG + b"\x20\x00\x00\x00")
    tlv = b"\x04\x00\x04abcd"  # PP2_TYPE_NOOP with 4 bytes
    write("proxy", "v2-tlv", V2SIG + b"\x21\x11" +
          struct.pack(">H", 12 + len(tlv)) + addr4 + tlv)
    write("proxy", "v2-unix", V2SIG + b"\x21\x31" + struct.pack(">H", 216) +
          b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0"))
    write("proxy", "v2-short-body", V2SIG + b"\x21\x11\x00\x08" + addr4[:8])
    write("proxy", "v2-truncated", V2SIG + b"\x21\x11\x00\x0c" + addr4[:5])
    write("proxy", "v2-bad-version", V2SIG + b"\x11\x11\x00\x0c" + addr4)


def sasl():
    b = base64.b64encode
    write("sasl", "plain", b(b"\0alice\0secret"))
    write("sasl", "plain-authzid", b(b"admin\0alice\0pw"))
    write("sasl", "plain-no-user", b(b"\0\0pw"))
    write("sasl", "plain-extra-nul", b(b"\0a\0b\0c"))
    write("sasl", "xoauth2", b(b"user=alice@example.com\x01auth=Bearer "
                               b"ya29.token\x01\x01"))
    write("sasl", "xoauth2-no-end", b(b"user=a\x01auth=Bearer t\x01"))
    write("sasl", "raw-plain", b"\0user\0pass")
    write("sasl", "raw-xoauth2", b"user=u\x01auth=bearer T\x01\x01")
    write("sasl", "login-user", b(b"alice"))
    write("sasl", "non-canonical", b"QR==")
    write("sasl", "padding-middle", b"QQ==QQ==")
    write("sasl", "cancel", b"*")
    write("sasl", "empty", b"")
    write("sasl", "mech", b"XOAUTH2")


def config():
    args = {
        "listen-scenario": "--listen\n127.0.0.1:2525=greylisting\n--set\n"
                           "greylisting.delay=60",
        "listen-tls-v6": "--listen-tls=[::1]:465",
        "proxy": "--proxy-protocol\n0.0.0.0:2526\n--listen\n*:0",
        "sizes": "--max-message-size\n10M\n--max-store-bytes=1G",
        "xclient": "--xclient-from\n10.0.0.0/8, ::1",
        "spool": "--spool\n/tmp/x\n--max-messages\n5\n--max-sessions\n0",
        "help": "--help",
        "api": "--api\n127.0.0.1:8025\n--api-token\nsecret",
        "log": "--log-level=trace\n--log-format=json\n--log-file\n/dev/null",
        "seed": "--seed\n18446744073709551615",
        "clock": "--clock-offset\n-1e300",
        "lone-cert": "--tls-cert\nx.pem",
        "huge-size": "--max-message-size\n99999999999999999999G",
        "bad-host": "--listen\n[::1:25",
        "set-no-eq": "--set\nnokey",
        "timeouts": "--idle-timeout\n1\n--shutdown-grace\n0.5\n--error-delay\n"
                    "0.1\n--max-errors\n3",
        "lua": "--lua-memory\n4M\n--lua-instructions\n1000",
        "actions": "--describe\naccept\n--check-scenario\nx.lua\n"
                   "--list-scenarios",
        "no-value": "--workers",
        "value-on-flag": "--no-tls=1",
        "ctrl": "--banner\nhi\x01there\x7f",
    }
    for name, a in args.items():
        write("config", name, a)


def reply():
    # byte 0: code (low 4 bits) and enhanced code (high 4 bits); byte 1:
    # with bit 7, the enhanced code is taken from the text (length %12).
    def seed(name, code_i, esc_i, text, esc_from_text=None):
        b1 = 0
        if esc_from_text is not None:
            b1 = 0x80 | next(x for x in range(0, 128)
                             if (0x80 | x) % 12 == esc_from_text)
        write("reply", name, bytes([code_i | esc_i << 4, b1]) + text.encode())
    seed("simple", 8, 0, "550 5.7.1 denied")
    seed("multi", 0, 1, "250-one\n250 two\n")
    seed("esc-from-text", 3, 0, "5.7.26Unauthenticated email\nline two", 6)
    seed("mixed-codes", 8, 3, "550-a\n551 b")
    seed("bare-code", 0, 0, "250")
    seed("bad-sep", 8, 0, "550x no")
    seed("cr", 8, 0, "550 a\rb")
    seed("empty-lines", 5, 2, "\n\n")
    seed("long", 8, 3, "x" * 4090)
    seed("many-lines", 0, 0, "\n".join("250-l%d" % i for i in range(70)))
    seed("bad-code", 10, 0, "199 nope")


def json_bodies():
    routes = {"put": 0, "put-listener": 1, "clock": 2}
    bodies = [
        ("put", "selection", '{"name": "greylisting", "params": {"delay": '
                             '"60", "keywords": ["a", "b", 3, true, null, '
                             '{"x": 1}], "n": 5, "f": 1.5, "b": false}}'),
        ("put-listener", "follow-default", '{"name": null}'),
        ("put", "null-name", '{"name": null}'),
        ("put", "object-param", '{"name": "x", "params": {"a": {"b": 1}}}'),
        ("put", "params-array", '{"name": "x", "params": [1]}'),
        ("put", "not-object", "[]"),
        ("put", "unicode", '{"name": "\\ud83d\\ude00\\u00e9", "params": '
                           '{"k\\u0001": "v\\u0000"}}'),
        ("put", "duplicate-keys", '{"name": "a", "name": "b"}'),
        ("put", "deep", "[" * 3000 + "]" * 3000),
        ("put", "big-numbers", '{"name": "x", "params": {"a": 1e400, '
                               '"b": -0, "c": 123456789012345678901234}}'),
        ("clock", "advance", '{"advance": 300}'),
        ("clock", "offset", '{"offset": -5.5}'),
        ("clock", "advance-string", '{"advance": "x", "offset": 1}'),
        ("clock", "huge", '{"advance": 1e11}'),
        ("clock", "garbage", '{"advance": 3'),
    ]
    for route, name, body in bodies:
        write("json", name, bytes([routes[route]]) + body.encode())


# The Lua bridge's input drives a small interpreter (PROGRAM in
# fuzz_lua_bridge.c); these mirror its tables.
W = ['reply', 'drop', 'reset', 'hang', 'partial', 'default', 'close', 'none',
     'close_on_input', 'reset_on_input', 'explode', '250 2.0.0 Ok',
     '550 5.7.1 Denied', '421 4.4.2 Bye\n421 4.4.2 x', '451-a\n451 b', '250',
     '25', '5.7.1', '2.0.0', '9.9.9', '', 'x', '\r\n', 'a\0b', '10.0.0.0/8',
     '::1', '192.0.2.1', '1.5', '-1', 'nan', '1e400', '0x10', 'accept',
     'greylisting', 'gmail', 'postfix', 'exchange', '../x', 'a,b, c', 'true',
     'yes', 'integer', 'number', 'boolean', 'list', 'cidrs', 'string',
     'user@example.com', '<a@b>']
DK = ['kind', 'text', 'delay', 'hang', 'next', 'cut', 'cut_mode',
      'line_delay', 'tls_cert', 'tls_versions', 1, 'x']
F = ['reply', '_decision', 'now', 'utc', 'random', 'random_hex',
     'random_string', 'log', 'print', 'base64_encode', 'base64_decode', 'lib',
     '_scenario', 'state.get', 'state.set', 'state.incr', 'state.del',
     'net.cidrs', 'net.match', 'net.prefix', 'net.valid', 'addr.parse',
     '_build_params', '_describe_params', '_check_scenario']
PK = ['default', 'type', 'choices', 'help', 'min', 'max']
NAMES = ['a', 'b', 'mode', 'list', 'n']


def w(s):
    return bytes([4, W.index(s)])


def s(text):
    text = text.encode()
    return bytes([3, len(text)]) + text


def num(k, extra=b""):
    return bytes([2, k]) + extra


def dtable(**fields):
    out = bytes([5, len(fields)])
    for k, v in fields.items():
        out += bytes([DK.index(k)]) + v
    return out


def call(fn, *args):
    args = list(args) + [b"\0"] * (3 - len(args))
    return bytes([2, F.index(fn)]) + b"".join(args)


def lua_bridge():
    def seed(name, ops, tail=b"\x01\x00", sets=b"\x00"):
        write("lua_bridge", name, sets + bytes([len(ops)]) + b"".join(ops) +
              tail)
    seed("reply-close", [b"\0" + dtable(kind=w("reply"),
                                        text=s("550 5.7.1 no"),
                                        next=w("close"))])
    seed("partial-no-text", [b"\0" + dtable(kind=w("partial"))])
    seed("bad-kind", [b"\0" + dtable(kind=w("explode"), delay=num(5))])
    seed("huge-delay", [b"\0" + dtable(kind=w("hang"), hang=num(3),
                                       delay=num(4))])
    seed("nan-cut", [b"\0" + dtable(kind=w("default"), cut=num(5),
                                    cut_mode=w("reset"))])
    seed("reply-calls", [call("reply", w("421 4.4.2 Bye\n421 4.4.2 x")),
                         call("reply", num(10, b"\x02\x26"), w("5.7.1"),
                              s("a\nb")),
                         call("reply", num(10, b"\x02\x26"), w("9.9.9"),
                              s("x"))])
    seed("constructors", [b"\1" + bytes([k, 0, 0, 0]) for k in range(12)])
    seed("net-helpers", [call("net.match", w("192.0.2.1"), w("10.0.0.0/8")),
                         call("net.prefix", w("::1"), num(6)),
                         call("net.cidrs", w("a,b, c")),
                         call("addr.parse", w("<a@b>"))])
    seed("libs", [call("lib", w("gmail")), call("lib", w("../x")),
                  call("_scenario", w("greylisting")),
                  call("state.set", w("x"), w("x"))])
    seed("random", [call("random_hex", num(10, b"\x01\x00")),
                    call("random_string", num(10, b"\x00\x05"), w("")),
                    call("base64_decode", w("a\0b")), call("log", w("\r\n")),
                    call("print", w("x"), num(5))])
    # --set a=7 with a declared integer parameter a.
    spec = b"\x01" + b"\x01" + bytes([PK.index("default")]) + num(10, b"\0\5") \
        + bytes([NAMES.index("a")])
    write("lua_bridge", "params", b"\x01\x00\x017" + b"\x00" + b"\x01" + spec)
    write("lua_bridge", "params-bad", b"\x01\x00\x03abc" + b"\x00" + b"\x01" +
          spec)
    seed("not-a-table", [], tail=b"\x00" + w("250"))
    seed("bad-shape", [], tail=b"\x02" + b"\x00" * 6 + num(3) + w("x"))
    seed("bad-hook-field", [], tail=b"\x03" + b"\x00" + bytes([4]) +
         bytes([W.index("x")]) + s("y"))


if __name__ == "__main__":
    smtp_parse()
    data_reader()
    address()
    proxy()
    sasl()
    config()
    reply()
    json_bodies()
    lua_bridge()
