"""A minimal JSON Schema for Compose files, vendored because no PyPI package we can lock ships
the Compose Specification's compose-spec.json.

Key names and enums follow the Compose Specification (compose-spec.json, Nov 2026). It covers
the top level, every service key name (so a typo such as `enviroment` is caught), and the
shapes of the keys this project uses; other keys are accepted with any value.
"""

from __future__ import annotations

DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"}
STRING_OR_LIST = {
    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
}
LIST_OR_DICT = {
    "oneOf": [
        {
            "type": "object",
            "patternProperties": {
                ".+": {"type": ["string", "number", "boolean", "null"]},
            },
            "additionalProperties": False,
        },
        {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    ]
}

# fmt: off
SERVICE_KEYS = [
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset",
    "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
    "dns_opt", "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose",
    "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname",
    "image", "init", "ipc", "isolation", "label_file", "labels", "links", "logging", "mac_address",
    "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models", "network_mode",
    "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports",
    "post_start", "pre_stop", "privileged", "profiles", "provider", "pull_policy",
    "pull_refresh_after", "read_only", "restart", "runtime", "scale", "secrets", "security_opt",
    "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls",
    "tmpfs", "tty", "ulimits", "umask", "use_api_socket", "user", "userns_mode", "uts", "volumes",
    "volumes_from", "working_dir",
]
# fmt: on

HEALTHCHECK = {
    "type": "object",
    "properties": {
        "disable": {"type": "boolean"},
        "test": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "prefixItems": [{"enum": ["NONE", "CMD", "CMD-SHELL"]}],
                },
            ]
        },
        "interval": DURATION,
        "timeout": DURATION,
        "start_period": DURATION,
        "start_interval": DURATION,
        "retries": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
}

PORT_OBJECT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "mode": {"enum": ["host", "ingress"]},
        "host_ip": {"type": "string"},
        "target": {"type": ["integer", "string"]},
        "published": {"type": ["integer", "string"]},
        "protocol": {"enum": ["tcp", "udp"]},
        "app_protocol": {"type": "string"},
    },
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
}

VOLUME_OBJECT = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["bind", "volume", "tmpfs", "cluster", "npipe", "image"]},
        "source": {"type": "string"},
        "target": {"type": "string"},
        "read_only": {"type": "boolean"},
        "consistency": {"type": "string"},
        "bind": {"type": "object"},
        "volume": {"type": "object"},
        "tmpfs": {"type": "object"},
        "image": {"type": "object"},
    },
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
}

DEPENDS_ON = {
    "oneOf": [
        {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        {
            "type": "object",
            "additionalProperties": False,
            "patternProperties": {
                "^[a-zA-Z0-9._-]+$": {
                    "type": "object",
                    "properties": {
                        "condition": {
                            "enum": [
                                "service_started",
                                "service_healthy",
                                "service_completed_successfully",
                            ]
                        },
                        "restart": {"type": "boolean"},
                        "required": {"type": "boolean"},
                    },
                    "required": ["condition"],
                    "additionalProperties": False,
                    "patternProperties": {"^x-": {}},
                }
            },
        },
    ]
}

BUILD = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {
                "context": {"type": "string"},
                "dockerfile": {"type": "string"},
                "dockerfile_inline": {"type": "string"},
                "args": LIST_OR_DICT,
                "target": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "platforms": {"type": "array", "items": {"type": "string"}},
                "cache_from": {"type": "array", "items": {"type": "string"}},
                "cache_to": {"type": "array", "items": {"type": "string"}},
                "labels": LIST_OR_DICT,
                "network": {"type": "string"},
                "pull": {"type": "boolean"},
                "no_cache": {"type": "boolean"},
                "secrets": {"type": "array"},
                "ssh": LIST_OR_DICT,
                "additional_contexts": LIST_OR_DICT,
            },
            "additionalProperties": False,
            "patternProperties": {"^x-": {}},
        },
    ]
}

SERVICE = {
    "type": "object",
    "propertyNames": {"anyOf": [{"enum": SERVICE_KEYS}, {"pattern": "^x-"}]},
    "properties": {
        "image": {"type": "string", "minLength": 1},
        "build": BUILD,
        "command": {"oneOf": [{"type": "null"}, *STRING_OR_LIST["oneOf"]]},
        "entrypoint": {"oneOf": [{"type": "null"}, *STRING_OR_LIST["oneOf"]]},
        "environment": LIST_OR_DICT,
        "env_file": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": ["string", "object"]}},
            ]
        },
        "ports": {
            "type": "array",
            "items": {"oneOf": [{"type": "number"}, {"type": "string"}, PORT_OBJECT]},
            "uniqueItems": True,
        },
        "expose": {"type": "array", "items": {"type": ["string", "number"]}, "uniqueItems": True},
        "volumes": {
            "type": "array",
            "items": {"oneOf": [{"type": "string"}, VOLUME_OBJECT]},
            "uniqueItems": True,
        },
        "depends_on": DEPENDS_ON,
        "healthcheck": HEALTHCHECK,
        "profiles": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"},
            "uniqueItems": True,
        },
        "restart": {
            "type": "string",
            "pattern": "^(no|always|unless-stopped|on-failure(:[0-9]+)?)$",
        },
        "pull_policy": {
            "type": "string",
            "pattern": (
                "^(always|never|build|if_not_present|missing|refresh|daily|weekly"
                "|every_([0-9]+[wdhms])+)$"
            ),
        },
        "init": {"type": "boolean"},
        "hostname": {"type": "string"},
        "working_dir": {"type": "string"},
        "user": {"type": "string"},
        "stop_grace_period": DURATION,
        "read_only": {"type": "boolean"},
    },
}

COMPOSE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["services"],
    "properties": {
        "version": {"type": "string"},
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "include": {"type": "array"},
        "services": {
            "type": "object",
            "patternProperties": {"^[a-zA-Z0-9._-]+$": SERVICE},
            "additionalProperties": False,
        },
        "networks": {"type": "object"},
        "volumes": {
            "type": "object",
            "patternProperties": {"^[a-zA-Z0-9._-]+$": {"type": ["object", "null"]}},
            "additionalProperties": False,
        },
        "secrets": {"type": "object"},
        "configs": {"type": "object"},
        "models": {"type": "object"},
    },
    "patternProperties": {"^x-": {}},
    "additionalProperties": False,
}
