"""What an application that sends mail with smtplib sees when the server
refuses it, tested against smtp-emulator (see conftest.py)."""

import smtplib

import pytest

MESSAGE = b"Subject: test\r\n\r\nHello.\r\n"


def test_exchange_ip_allowlist_refuses_the_recipient(smtp_emulator):
    emu = smtp_emulator("--scenario", "ip-allowlist")
    with smtplib.SMTP(emu.host, emu.port) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
            smtp.sendmail("app@example.com", ["user@tenant.example"], MESSAGE)
    code, text = exc.value.recipients["user@tenant.example"]
    assert code == 550
    assert text.startswith(b"5.7.51 TenantInboundAttribution; Rejecting.")
    # The control API says what the scenario did, and where.
    outcome = emu.api("/api/v1/sessions?limit=1")[0]["outcome"]
    assert (outcome["result"], outcome["code"], outcome["stage"]) == (
        "rejected", 550, "rcpt")


def test_connection_closed_before_the_greeting(smtp_emulator):
    emu = smtp_emulator("--scenario", "ip-allowlist", "--set", "style=eof")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP(emu.host, emu.port)


def test_accepted_mail_is_captured(smtp_emulator):
    emu = smtp_emulator()
    with smtplib.SMTP(emu.host, emu.port) as smtp:
        smtp.sendmail("app@example.com", ["user@example.org"], MESSAGE)
    [msg] = emu.api("/api/v1/messages?to=user@example.org&wait=5")
    assert msg["subject"] == "test"
