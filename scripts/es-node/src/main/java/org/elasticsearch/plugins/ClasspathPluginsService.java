package org.elasticsearch.plugins;

import org.elasticsearch.Version;
import org.elasticsearch.common.settings.Settings;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * Loads plugins from classes already on the classpath instead of from a plugins directory,
 * because the node is assembled from Maven artifacts, not unpacked from a distribution.
 */
public final class ClasspathPluginsService extends PluginsService {
    private final List<LoadedPlugin> loaded;

    public ClasspathPluginsService(Settings settings, PluginsLoader loader, Collection<Class<? extends Plugin>> classes) {
        super(settings, null, loader);
        loaded = new ArrayList<>(classes.size());
        for (Class<? extends Plugin> type : classes) {
            Plugin plugin = loadPlugin(type, settings, null);
            PluginDescriptor descriptor = new PluginDescriptor(
                type.getName(), "classpath plugin", "NA", Version.CURRENT.toString(), "17",
                type.getName(), null, List.of(), false, false, false, false);
            loaded.add(new LoadedPlugin(descriptor, plugin, Thread.currentThread().getContextClassLoader()));
        }
        loadExtensions(loaded);
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return loaded;
    }
}
