package dev.newsflow.esnode;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.node.Node;
import org.elasticsearch.node.NewsflowNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts one Elasticsearch node on loopback: {@code Main HOME HTTP_PORT [-Ekey=value ...]}.
 *
 * <p>HOME holds config/ (with hunspell/), data/ and logs/. The node binds 127.0.0.1 only, which is what
 * makes running it without security acceptable. SIGTERM closes the node so that shards are flushed.
 *
 * <p>Without {@code -E} settings the node is a single-node cluster, as the tests and {@code make run} use it.
 * {@code -E} settings, as Elasticsearch's own command line takes them, override the defaults below: the
 * cluster mode of scripts/elasticsearch.sh gives each node its name, transport port, seed hosts and, on the
 * first start only, the initial master nodes.
 */
public final class Main {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Main HOME HTTP_PORT [-Ekey=value ...]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        String httpPort = args[1];
        Files.createDirectories(home.resolve("config").resolve("hunspell"));
        Files.createDirectories(home.resolve("logs"));
        Settings.Builder builder = Settings.builder()
            .put("cluster.name", "newsflow")
            .put("node.name", "newsflow-local")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", "0")
            .put("discovery.type", "single-node")
            .put("node.portsfile", true)
            // The hunspell dictionaries are loaded when an analyzer first asks for them, not all at start.
            .put("indices.analysis.hunspell.dictionary.lazy", true)
            // German nouns are capitalised in the dictionary; analyzers lowercase first, so look up
            // without case or "raketen" never stems. docker-compose.yml sets the same.
            .put("indices.analysis.hunspell.dictionary.ignore_case", true)
            // A developer disk is often fuller than a server's: do not turn indices read-only at 90 %.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.destructive_requires_name", false);
        for (int i = 2; i < args.length; i++) {
            String arg = args[i];
            int eq = arg.indexOf('=');
            if (!arg.startsWith("-E") || eq < 3) {
                System.err.println("not a -Ekey=value setting: " + arg);
                System.exit(2);
            }
            // List settings (discovery.seed_hosts, cluster.initial_master_nodes) accept a comma-separated
            // string, as they do on Elasticsearch's own command line.
            builder.put(arg.substring(2, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(settings.get("node.name"));
        LogConfigurator.configureESLogging();
        LogConfigurator.configureWithoutConfig(settings);

        Node node = new NewsflowNode(settings);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "newsflow-node-shutdown"));
        node.start();
        System.out.println("newsflow-es-node " + settings.get("node.name") + " started on 127.0.0.1:" + httpPort);
        stopped.await();
    }
}
