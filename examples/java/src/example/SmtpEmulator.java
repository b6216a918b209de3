package example;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Runs smtp-emulator for a test: started on a free port (port 0, read back
 * from its "listening smtp HOST:PORT" line), stopped with SIGTERM by
 * close(). The binary is $SMTP_EMULATOR_BIN, else smtp-emulator on PATH.
 */
public final class SmtpEmulator implements AutoCloseable {
    private static final Pattern LISTENING =
            Pattern.compile("listening smtp .*:(\\d+)");

    private final Process process;
    private final int port;

    public SmtpEmulator(String... options) throws IOException {
        String bin = System.getenv().getOrDefault("SMTP_EMULATOR_BIN",
                "smtp-emulator");
        List<String> cmd = new ArrayList<>(List.of(bin, "--hostname",
                "mx.test", "--listen", "127.0.0.1:0"));
        cmd.addAll(Arrays.asList(options));
        process = new ProcessBuilder(cmd)
                .redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
        BufferedReader out = new BufferedReader(new InputStreamReader(
                process.getInputStream(), StandardCharsets.UTF_8));
        Integer found = null;
        for (String line; found == null && (line = out.readLine()) != null;) {
            Matcher m = LISTENING.matcher(line);
            if (m.matches()) {
                found = Integer.valueOf(m.group(1));
            }
        }
        if (found == null) {
            throw new IOException("smtp-emulator exited before listening");
        }
        port = found;
    }

    public String host() {
        return "127.0.0.1";
    }

    public int port() {
        return port;
    }

    @Override
    public void close() {
        process.destroy(); // SIGTERM
        boolean exited;
        try {
            exited = process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            exited = false;
        }
        if (!exited) {
            process.destroyForcibly();
            throw new IllegalStateException("smtp-emulator did not stop");
        }
        if (process.exitValue() != 0) {
            throw new IllegalStateException(
                    "smtp-emulator exited with " + process.exitValue());
        }
    }
}
