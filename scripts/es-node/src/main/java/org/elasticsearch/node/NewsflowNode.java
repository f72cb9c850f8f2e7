package org.elasticsearch.node;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.netty4.Netty4Plugin;

import java.util.Collections;
import java.util.List;

/**
 * A node built from the server core with the Netty4 HTTP transport as its only plugin.
 *
 * <p>It lives in {@code org.elasticsearch.node} because {@link Node}'s constructor that takes a prepared
 * {@link NodeConstruction} is package-private: this is how Elastic's own embedded test nodes are made.
 * No other module is loaded, so only what the core offers exists here (see docs/decisions.md).
 */
public final class NewsflowNode extends Node {
    public NewsflowNode(Settings settings) {
        super(NodeConstruction.prepareConstruction(
            new Environment(settings, null),
            PluginsLoader.createPluginsLoader(Collections.emptySet(), Collections.emptySet(), Collections.emptyMap(), false),
            new NodeServiceProvider() {
                @Override
                PluginsService newPluginService(Environment environment, PluginsLoader loader) {
                    return new ClasspathPluginsService(settings, loader, List.of(Netty4Plugin.class));
                }
            },
            true));
    }
}
