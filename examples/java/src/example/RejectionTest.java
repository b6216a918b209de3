package example;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.mail.smtp.SMTPAddressFailedException;
import jakarta.mail.Message;
import jakarta.mail.MessagingException;
import jakarta.mail.SendFailedException;
import jakarta.mail.Session;
import jakarta.mail.Transport;
import jakarta.mail.internet.InternetAddress;
import jakarta.mail.internet.MimeMessage;
import java.util.Properties;
import org.junit.jupiter.api.Test;

/** What Jakarta Mail reports when the server refuses a message. */
class RejectionTest {

    private static MimeMessage message(SmtpEmulator emu) throws Exception {
        Properties props = new Properties();
        props.put("mail.smtp.host", emu.host());
        props.put("mail.smtp.port", String.valueOf(emu.port()));
        props.put("mail.smtp.connectiontimeout", "5000");
        props.put("mail.smtp.timeout", "5000");
        MimeMessage msg = new MimeMessage(Session.getInstance(props));
        msg.setFrom(new InternetAddress("app@example.com"));
        msg.setRecipient(Message.RecipientType.TO,
                new InternetAddress("user@tenant.example"));
        msg.setSubject("test");
        msg.setText("Hello.");
        return msg;
    }

    @Test
    void exchangeIpAllowlistRefusesTheRecipientWith5751() throws Exception {
        try (SmtpEmulator emu = new SmtpEmulator("--scenario", "ip-allowlist")) {
            MimeMessage msg = message(emu);
            SendFailedException e = assertThrows(SendFailedException.class,
                    () -> Transport.send(msg));
            assertEquals("Invalid Addresses", e.getMessage());
            SMTPAddressFailedException cause = assertInstanceOf(
                    SMTPAddressFailedException.class, e.getNextException());
            assertEquals(550, cause.getReturnCode());
            assertTrue(cause.getMessage().startsWith(
                    "550 5.7.51 TenantInboundAttribution; Rejecting."),
                    cause.getMessage());
            assertEquals("user@tenant.example",
                    cause.getAddress().getAddress());
        }
    }

    @Test
    void connectionClosedBeforeTheGreetingIsABadGreeting() throws Exception {
        try (SmtpEmulator emu = new SmtpEmulator("--scenario", "ip-allowlist",
                "--set", "style=eof")) {
            MimeMessage msg = message(emu);
            MessagingException e = assertThrows(MessagingException.class,
                    () -> Transport.send(msg));
            assertEquals("Got bad greeting from SMTP host: " + emu.host()
                    + ", port: " + emu.port() + ", response: [EOF]",
                    e.getMessage());
        }
    }
}
