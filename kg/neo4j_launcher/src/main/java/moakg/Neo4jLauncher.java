package moakg;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.server.CommunityBootstrapper;
import org.neo4j.server.NeoBootstrapper;

/**
 * Starts a real Neo4j 5.26 Community server (the same bootstrapper the neo4j binary runs: Cypher,
 * Bolt, HTTP and, when its jar is on the classpath, the Neo4j Browser) for moakg.
 *
 * <p>Usage: {@code java -cp classes:lib/* moakg.Neo4jLauncher HOME PASSWORD_FILE [key=value ...]}.
 * HOME holds data/ and logs/; PASSWORD_FILE holds the password of the {@code neo4j} user (read
 * from a file so that it never appears on a command line); key=value pairs are Neo4j settings,
 * e.g. {@code server.bolt.listen_address=127.0.0.1:7687}. Runs until SIGTERM/SIGINT, on which it
 * shuts the DBMS down cleanly.
 */
public final class Neo4jLauncher {
    private Neo4jLauncher() {}

    /**
     * Embedded access to the system database bypasses auth, so the password is set here, on every
     * start, instead of through a first-login password change. Setting the current password again
     * is refused by Neo4j ("Old password and new password cannot be the same"), which means it is
     * already right.
     */
    static void setPassword(DatabaseManagementService dbms, String password) {
        try {
            dbms.database("system").executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
        } catch (QueryExecutionException e) {
            if (e.getMessage() == null || !e.getMessage().contains("cannot be the same")) {
                throw e;
            }
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Neo4jLauncher HOME PASSWORD_FILE [setting=value ...]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        String password = Files.readString(Path.of(args[1]), StandardCharsets.UTF_8).strip();
        Map<String, String> settings = new HashMap<>();
        settings.put("server.directories.data", home.resolve("data").toString());
        settings.put("server.directories.logs", home.resolve("logs").toString());
        settings.put("server.directories.run", home.resolve("run").toString());
        settings.put("dbms.security.auth_enabled", "true");
        settings.put("server.https.enabled", "false");
        settings.put("dbms.usage_report.enabled", "false");
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("setting must be key=value: " + args[i]);
                System.exit(2);
            }
            settings.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Files.createDirectories(home.resolve("conf"));
        Path conf = home.resolve("conf").resolve("neo4j.conf");
        if (!Files.exists(conf)) {
            Files.writeString(conf, "# written by moakg; settings come from the launcher's arguments\n");
        }

        // The ready file appears only once the password is set: clients that log in before would
        // fail authentication and trip Neo4j's rate limit on failed logins.
        Path ready = home.resolve("run").resolve("moakg.ready");
        Files.deleteIfExists(ready);
        NeoBootstrapper bootstrapper = new CommunityBootstrapper();
        // allowRootUser=true: CI and sandboxes run as root; the server only listens on loopback.
        int status = bootstrapper.start(home, conf, settings, false, true);
        if (status != NeoBootstrapper.OK) {
            System.err.println("Neo4j failed to start (status " + status + "); see " + home.resolve("logs"));
            System.exit(status);
        }
        try {
            setPassword(bootstrapper.getDatabaseManagementService(), password);
        } catch (RuntimeException e) {
            System.err.println("moakg-neo4j: could not set the password: " + e.getMessage());
            bootstrapper.stop();
            System.exit(1);
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                Files.deleteIfExists(ready);
            } catch (java.io.IOException ignored) {
                // best effort: a stale file is removed at the next start
            }
            bootstrapper.stop();
            stopped.countDown();
        }, "moakg-neo4j-shutdown"));
        Files.createDirectories(ready.getParent());
        Files.writeString(ready, Long.toString(ProcessHandle.current().pid()));
        stopped.await();
    }
}
