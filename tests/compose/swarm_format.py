"""What `docker stack deploy` accepts, for the static checks of docker-compose.ha.yml.

The stack command reads the older "version 3" compose format, not the Compose Specification: it refuses
keys the specification added (a top-level `name`, `profiles`, `depends_on` with conditions, `bind` options
other than propagation ...) and silently ignores some it knows (`build`, `restart`, `container_name` ...).
These sets are the keys that format defines (as of format 3.13, the default of current Docker CLIs); a
file that keeps to them and avoids the ignored ones behaves the same under `docker compose` and Swarm.
"""

from __future__ import annotations

from typing import Any

TOP_LEVEL = {"version", "services", "networks", "volumes", "configs", "secrets"}

SERVICE = {
    "deploy", "build", "cap_add", "cap_drop", "cgroupns_mode", "cgroup_parent", "command", "configs",
    "container_name", "credential_spec", "depends_on", "devices", "dns", "dns_search", "domainname",
    "entrypoint", "env_file", "environment", "expose", "external_links", "extra_hosts", "group_add",
    "healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "links", "logging",
    "mac_address", "network_mode", "networks", "pid", "ports", "privileged", "read_only", "restart",
    "security_opt", "shm_size", "secrets", "sysctls", "stdin_open", "stop_grace_period", "stop_signal",
    "tmpfs", "tty", "ulimits", "oom_score_adj", "user", "userns_mode", "volumes", "working_dir",
}  # fmt: skip

# Known to the format, but a stack leaves them out (with a warning at most): the file would mean one
# thing to `docker compose` and another to Swarm.
IGNORED_BY_SWARM = {
    "build", "restart", "container_name", "links", "external_links", "network_mode", "privileged",
    "devices", "cgroup_parent", "cgroupns_mode", "security_opt", "userns_mode", "shm_size", "mac_address",
    "domainname", "cap_add", "cap_drop",
}  # fmt: skip

HEALTHCHECK = {"disable", "interval", "retries", "test", "timeout", "start_period", "start_interval"}
DEPLOY = {
    "mode", "endpoint_mode", "replicas", "labels", "rollback_config", "update_config", "resources",
    "restart_policy", "placement",
}  # fmt: skip
RESTART_POLICY = {"condition", "delay", "max_attempts", "window"}
PLACEMENT = {"constraints", "preferences", "max_replicas_per_node"}
RESOURCES = {"limits": {"cpus", "memory", "pids"}, "reservations": {"cpus", "memory", "generic_resources"}}
VOLUME_MOUNT = {"type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs"}
FILE_MOUNT = {"source", "target", "uid", "gid", "mode"}  # configs and secrets of a service
PORT = {"mode", "target", "published", "protocol"}
TOP_CONFIG = {"name", "file", "external", "labels", "template_driver"}
TOP_VOLUME = {"name", "driver", "driver_opts", "external", "labels"}
TOP_NETWORK = {"name", "driver", "driver_opts", "ipam", "external", "internal", "attachable", "labels"}


def _extra(where: str, mapping: Any, allowed: set[str]) -> list[str]:
    if not isinstance(mapping, dict):
        return [f"{where}: must be a mapping"]
    return [f"{where}: {key!r} is not in the stack format" for key in mapping if key not in allowed]


def _scalar_env(where: str, env: Any) -> list[str]:
    values = env.values() if isinstance(env, dict) else []
    return [f"{where}: environment values must be strings or numbers" for v in values if isinstance(v, bool)]


def stack_format_errors(doc: dict[str, Any]) -> list[str]:
    """Everything in `doc` (interpolated) that `docker stack deploy` would refuse or ignore."""
    errors = [
        f"top level: {k!r} is not in the stack format" for k in doc if k not in TOP_LEVEL and not k.startswith("x-")
    ]
    for name, svc in (doc.get("services") or {}).items():
        at = f"services/{name}"
        errors += [
            f"{at}: {k!r} is not in the stack format" for k in svc if k not in SERVICE and not k.startswith("x-")
        ]
        errors += [f"{at}: Swarm ignores {k!r}" for k in svc if k in IGNORED_BY_SWARM]
        if "image" not in svc:
            errors.append(f"{at}: a stack service needs an image (it builds nothing)")
        deps = svc.get("depends_on", [])
        if not (isinstance(deps, list) and all(isinstance(d, str) for d in deps)):
            errors.append(f"{at}/depends_on: must be a plain list of service names")
        if "healthcheck" in svc:
            errors += _extra(f"{at}/healthcheck", svc["healthcheck"], HEALTHCHECK)
        errors += _scalar_env(at, svc.get("environment"))
        for key in ("configs", "secrets"):
            for item in svc.get(key, []):
                if isinstance(item, dict):
                    errors += _extra(f"{at}/{key}", item, FILE_MOUNT)
        for vol in svc.get("volumes", []):
            if isinstance(vol, dict):
                errors += _extra(f"{at}/volumes", vol, VOLUME_MOUNT)
                errors += _extra(f"{at}/volumes/bind", vol.get("bind", {}), {"propagation"})
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                errors += _extra(f"{at}/ports", port, PORT)
        deploy = svc.get("deploy") or {}
        errors += _extra(f"{at}/deploy", deploy, DEPLOY)
        if "replicas" in deploy and not isinstance(deploy["replicas"], int):
            errors.append(f"{at}/deploy/replicas: must be an integer")
        errors += _extra(f"{at}/deploy/restart_policy", deploy.get("restart_policy", {}), RESTART_POLICY)
        errors += _extra(f"{at}/deploy/placement", deploy.get("placement", {}), PLACEMENT)
        for kind, allowed in RESOURCES.items():
            errors += _extra(f"{at}/deploy/resources/{kind}", deploy.get("resources", {}).get(kind, {}), allowed)
    for section, allowed in (("configs", TOP_CONFIG), ("volumes", TOP_VOLUME), ("networks", TOP_NETWORK)):
        for name, item in (doc.get(section) or {}).items():
            errors += _extra(f"{section}/{name}", item or {}, allowed | {k for k in (item or {}) if k.startswith("x-")})
    return errors
