"""Application config: YAML file + environment overrides -> frozen dataclasses, validated at start.

Secrets (ARI password, admin token, SIP passwords) come from the file or the environment, never from code;
`redacted()` gives the config in effect with every secret masked, for logs and the admin API.

Environment overrides:
  IVR_ARI_PASSWORD, IVR_ADMIN_TOKEN      the two secrets the app itself uses
  IVR_AGENT_<ID>_PASSWORD                 SIP password of agent <ID> (upper case, '-' -> '_')
  IVR_TRUNK_<NAME>_USERNAME / _PASSWORD   credentials of outbound trunk <NAME> (upper case, '-' -> '_')
  IVR_WEB_CALLBACK_KEY                    the website's key for POST /api/callbacks
  IVR__<SECTION>__<KEY>=value             any scalar, e.g. IVR__ASTERISK__SIP_PORT=5070
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .admission import AdmissionConfigError, AdmissionPolicy
from .tasks.policy import CallbackConfigError, CallbackPolicy, WebCallbackConfigError, WebCallbackPolicy
from .voicemail import VoicemailConfigError, VoicemailPolicy

SECRET_KEYS = {"password", "token", "admin_token", "sip_password", "auth_value", "api_key"}


PHONES = ("sip", "webrtc")    # an agent's ``phone:`` (docs/webrtc.md)


class ConfigError(ValueError):
    """The config file or an override is invalid; the message says where and why."""


@dataclass(frozen=True)
class AsteriskConfig:
    bind_address: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8088
    rtp_start: int = 20000
    rtp_end: int = 20999
    root: str = "/var/cache/ivr/asterisk-sid"   # the chroot built by scripts/install.sh
    instance: str = "default"                   # instance dir /srv/ivr-<instance> inside the chroot
    # Static contact for every agent endpoint instead of registration ("{name}" = the endpoint name), e.g.
    # "sip:{name}@127.0.0.1:5090" for load tests where one sipp UAS answers for all agents. Empty: agents
    # register (the normal case).
    agent_contact: str = ""
    # Browser phones (agents with ``phone: webrtc``, docs/webrtc.md): the one address Asterisk binds their
    # media to and offers as its ICE candidate. Empty: every non-loopback address of the machine (a browser
    # never reaches a loopback candidate: Asterisk does not offer one).
    webrtc_media_address: str = ""


@dataclass(frozen=True)
class AriConfig:
    url: str = ""            # default: http://<asterisk.bind_address>:<asterisk.http_port>
    user: str = "ivr"
    password: str = ""
    app: str = "ivr"
    reconnect_min: float = 0.2
    reconnect_max: float = 5.0
    request_timeout: float = 10.0   # seconds before a REST request counts as failed (ARI unavailable)
    rest_websockets: int = 2        # REST over this many ARI websockets (0: HTTP); docs/architecture.md


@dataclass(frozen=True)
class FlowsConfig:
    dir: str = "flows"
    default: str = "support"
    routes: Mapping[str, str] = field(default_factory=dict)   # dialed number -> flow name
    watch: bool = True                                         # hot reload on file change


@dataclass(frozen=True)
class HttpConfig:
    bind_address: str = "127.0.0.1"
    port: int = 8080
    admin_token: str = ""


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    file: str = ""


@dataclass(frozen=True)
class StorageConfig:
    path: str = "var/ivr.sqlite"      # call records, voicemails, callbacks (relative to the project dir)


@dataclass(frozen=True)
class AgentSipConfig:
    id: str
    endpoint: str
    sip_password: str
    phone: str = "sip"          # sip: a SIP softphone over UDP | webrtc: the agent page's browser phone

    @property
    def webrtc(self) -> bool:
        return self.phone == "webrtc"


@dataclass(frozen=True)
class TrunkConfig:
    """An outbound SIP trunk (a carrier): the flows' transfer nodes reach outside numbers through it."""

    name: str
    host: str
    port: int = 5060
    caller_id: str = ""          # the number presented to the called party (From and P-Asserted-Identity)
    caller_name: str = ""
    username: str = ""           # digest credentials, when the carrier asks for them
    password: str = ""           # only from IVR_TRUNK_<NAME>_PASSWORD, never from the file
    from_domain: str = ""        # host part of From (default: Asterisk's address)

    @property
    def endpoint(self) -> str:
        """The PJSIP endpoint (and aor) name Asterisk knows this trunk by."""
        return f"trunk-{self.name}"


@dataclass(frozen=True)
class Config:
    asterisk: AsteriskConfig = AsteriskConfig()
    ari: AriConfig = AriConfig()
    flows: FlowsConfig = FlowsConfig()
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    storage: StorageConfig = StorageConfig()
    # Sections owned by other modules (acd, crm): kept as plain data and validated by those modules.
    agents: tuple[Mapping[str, Any], ...] = ()
    queues: tuple[Mapping[str, Any], ...] = ()
    crm: Mapping[str, Any] = field(default_factory=dict)
    routing: Mapping[str, Any] = field(default_factory=dict)
    acd: Mapping[str, Any] = field(default_factory=dict)
    admission: Mapping[str, Any] = field(default_factory=dict)   # see ivr/admission.py, docs/overload.md
    voicemail: Mapping[str, Any] = field(default_factory=dict)   # retention, see ivr/voicemail.py
    callbacks: Mapping[str, Any] = field(default_factory=dict)   # see ivr/tasks/policy.py, docs/callbacks.md
    web_callbacks: Mapping[str, Any] = field(default_factory=dict)   # website requests, docs/callbacks.md
    trunks: tuple[TrunkConfig, ...] = ()                          # outbound SIP trunks (transfers)
    extensions: Mapping[str, str] = field(default_factory=dict)   # internal extension -> PJSIP/<endpoint>
    users: tuple[Mapping[str, Any], ...] = ()     # the first users, seeded once (ivr/users, docs/api.md)
    auth: Mapping[str, Any] = field(default_factory=dict)         # sessions, login limits (ivr/users)
    base_dir: str = "."      # relative paths in the file are resolved against the file's directory

    @property
    def ari_url(self) -> str:
        return self.ari.url or f"http://{self.asterisk.bind_address}:{self.asterisk.http_port}"

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else Path(self.base_dir) / q

    def agent_sip(self) -> list[AgentSipConfig]:
        out = []
        for a in self.agents:
            aid = str(a["id"])
            endpoint = str(a.get("endpoint", f"PJSIP/{aid}"))
            env = f"IVR_AGENT_{aid.upper().replace('-', '_')}_PASSWORD"
            pw = os.environ.get(env) or str(a.get("sip_password", ""))
            phone = a.get("phone", "sip")
            if phone not in PHONES:
                raise ConfigError(f"agent {aid}: phone: expected one of {', '.join(PHONES)}, got {phone!r}")
            out.append(AgentSipConfig(aid, endpoint, pw, phone))
        return out

    def transfer_destinations(self) -> tuple[frozenset[str], frozenset[str]]:
        """(internal destinations, trunk names) a flow's transfer node may name: the extensions, the agents'
        endpoints (``PJSIP/agent1``), and the trunks."""
        internal = set(self.extensions) | {a.endpoint for a in self.agent_sip()}
        return frozenset(internal), frozenset(t.name for t in self.trunks)

    def redacted(self) -> dict[str, Any]:
        return _redact(asdict(self))


_SECTIONS = {"asterisk": AsteriskConfig, "ari": AriConfig, "flows": FlowsConfig, "http": HttpConfig,
             "log": LogConfig, "storage": StorageConfig}
_RAW_LIST_SECTIONS = {"agents", "queues"}
_RAW_MAP_SECTIONS = {"crm", "routing", "acd", "admission", "voicemail", "callbacks", "web_callbacks", "auth"}
_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}\Z")
_NUMBER = re.compile(r"\+?[0-9]{3,20}\Z")
_HOST = re.compile(r"[A-Za-z0-9_.:\[\]-]{1,253}\Z")


def _redact(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: ("***" if k in SECRET_KEYS and v else _redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_redact(v) for v in obj]
    return obj


def _coerce(section: str, key: str, value: Any, typ: Any) -> Any:
    name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    where = f"{section}.{key}"
    if name == "int":
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if name == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if name == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if name == "str":
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
        return "" if value is None else str(value)
    if "Mapping" in name:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping")
        return {str(k): str(v) for k, v in value.items()}
    return value


def _build_section(name: str, cls: type, data: Any) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{name}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {k: _coerce(name, k, v, known[k].type) for k, v in data.items()}
    return cls(**kwargs)


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file (or defaults when None), apply environment overrides, validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    base_dir = "."
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config: {e.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: the config must be a mapping of sections")
        base_dir = str(p.resolve().parent.parent if p.resolve().parent.name == "config" else p.resolve().parent)
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}

    for key, value in env.items():
        if not key.startswith("IVR__"):
            continue
        parts = key[5:].lower().split("__")
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            raise ConfigError(f"environment {key}: expected IVR__<SECTION>__<KEY> with a known section")
        raw.setdefault(parts[0], {})
        if raw[parts[0]] is None:
            raw[parts[0]] = {}
        raw[parts[0]][parts[1]] = value
    if env.get("IVR_ARI_PASSWORD"):
        raw.setdefault("ari", {})["password"] = env["IVR_ARI_PASSWORD"]
    if env.get("IVR_ADMIN_TOKEN"):
        raw.setdefault("http", {})["admin_token"] = env["IVR_ADMIN_TOKEN"]
    web_cb = raw.get("web_callbacks")
    if isinstance(web_cb, dict) and web_cb.get("api_key"):
        raise ConfigError("web_callbacks.api_key: the website key comes only from IVR_WEB_CALLBACK_KEY, "
                          "never from the file")
    if env.get("IVR_WEB_CALLBACK_KEY"):
        raw["web_callbacks"] = {**(web_cb if isinstance(web_cb, dict) else {}),
                                "api_key": env["IVR_WEB_CALLBACK_KEY"]}

    unknown = sorted(set(raw) - set(_SECTIONS) - _RAW_LIST_SECTIONS - _RAW_MAP_SECTIONS - {"trunks", "extensions", "users"})
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {"base_dir": base_dir}
    for name, cls in _SECTIONS.items():
        kwargs[name] = _build_section(name, cls, raw.get(name))
    for name in _RAW_LIST_SECTIONS:
        items = raw.get(name) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) and ("id" in i or "name" in i)
                                                   for i in items):
            raise ConfigError(f"{name}: expected a list of mappings each with an id/name")
        kwargs[name] = tuple(items)
    for name in _RAW_MAP_SECTIONS:
        m = raw.get(name) or {}
        if not isinstance(m, dict):
            raise ConfigError(f"{name}: expected a mapping")
        kwargs[name] = m
    kwargs["trunks"] = _trunks(raw.get("trunks"), env)
    kwargs["extensions"] = _extensions(raw.get("extensions"))
    kwargs["users"] = _users(raw.get("users"), raw.get("auth"), kwargs["agents"], kwargs["queues"])
    cfg = Config(**kwargs)
    _check(cfg)
    return cfg


def _trunks(data: Any, env: Mapping[str, str]) -> tuple[TrunkConfig, ...]:
    """The ``trunks:`` list. Credentials: ``username`` in the file or IVR_TRUNK_<NAME>_USERNAME, the
    password only in IVR_TRUNK_<NAME>_PASSWORD (a secret never sits in the file)."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError("trunks: expected a list of trunks, each a mapping with a name")
    known = {f.name for f in fields(TrunkConfig)} - {"password"}
    out: list[TrunkConfig] = []
    for i, item in enumerate(data):
        where = f"trunks[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{where}: expected a mapping with a name")
        name = item["name"]
        where = f"trunks.{name}"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: a trunk name is letters, digits, '_' and '-'")
        if name in {t.name for t in out}:
            raise ConfigError(f"{where}: defined twice")
        if item.get("password"):       # an empty one (a dump of the config in effect) is no secret
            raise ConfigError(f"{where}: the password is a secret: set IVR_TRUNK_"
                              f"{name.upper().replace('-', '_')}_PASSWORD in the environment instead")
        item = {k: v for k, v in item.items() if k != "password"}
        unknown = sorted(set(item) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {k: _coerce("trunks", f"{name}.{k}", v, "int" if k == "port" else "str") for k, v in item.items()}
        env_key = f"IVR_TRUNK_{name.upper().replace('-', '_')}_"
        values["username"] = env.get(env_key + "USERNAME") or values.get("username", "")
        values["password"] = env.get(env_key + "PASSWORD", "")
        trunk = TrunkConfig(**values)
        if not trunk.host or not _HOST.match(trunk.host):
            raise ConfigError(f"{where}.host: expected a host name or address, got {trunk.host!r}")
        if not 0 < trunk.port < 65536:
            raise ConfigError(f"{where}.port: {trunk.port} is not a valid port")
        if trunk.caller_id and not _NUMBER.match(trunk.caller_id):
            raise ConfigError(f"{where}.caller_id: expected a phone number (digits, optional leading '+'), "
                              f"got {trunk.caller_id!r}")
        if trunk.from_domain and not _HOST.match(trunk.from_domain):
            raise ConfigError(f"{where}.from_domain: expected a host name, got {trunk.from_domain!r}")
        if any(c in trunk.caller_name for c in '"\\\r\n<>'):
            raise ConfigError(f"{where}.caller_name: quotes, backslashes, <> and line breaks are not allowed")
        if trunk.password and not trunk.username:
            raise ConfigError(f"{where}: a password ({env_key}PASSWORD) needs a username")
        if any(c in trunk.username + trunk.password for c in "\r\n;"):
            raise ConfigError(f"{where}: line breaks and ';' are not allowed in the credentials")
        out.append(trunk)
    return tuple(out)


def _extensions(data: Any) -> dict[str, str]:
    """The ``extensions:`` mapping: an internal extension name -> the PJSIP endpoint of a phone."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("extensions: expected a mapping of extension name -> PJSIP/<endpoint>")
    out = {}
    for name, endpoint in data.items():
        name = str(name)
        if not _NAME.match(name):
            raise ConfigError(f"extensions.{name}: an extension name is letters, digits, '_' and '-'")
        if not isinstance(endpoint, str) or not re.match(r"PJSIP/[A-Za-z0-9_-]+\Z", endpoint):
            raise ConfigError(f"extensions.{name}: expected PJSIP/<endpoint>, got {endpoint!r}")
        out[name] = endpoint
    return out


def _users(data: Any, auth: Any, agents: tuple[Mapping[str, Any], ...],
           queues: tuple[Mapping[str, Any], ...]) -> tuple[Mapping[str, Any], ...]:
    """The ``users:`` list (who is seeded at the first start: known agents and queues only) and the
    ``auth:`` section, checked here."""
    from .users.accounts import AuthPolicy, check_seed
    from .users.model import UserError
    items = data or []
    try:
        if not isinstance(items, list):
            raise UserError("invalid-user", "expected a list of {username, role, agent_id?, queues?}")
        check_seed(items)
        agent_ids, queue_names = {str(a.get("id")) for a in agents}, {str(q.get("name")) for q in queues}
        for u in items:
            if u.get("agent_id") is not None and u["agent_id"] not in agent_ids:
                raise UserError("unknown-agent", f"{u['username']}: no agent {u['agent_id']!r}")
            if set(u.get("queues") or ()) - queue_names:
                raise UserError("unknown-queue", f"{u['username']}: unknown queue(s)")
        AuthPolicy.from_dict(auth if isinstance(auth, dict) else None)
    except (UserError, ValueError, TypeError) as e:
        raise ConfigError(f"users/auth: {e}") from None
    return tuple(dict(i) for i in items)


def _check(cfg: Config) -> None:
    a = cfg.asterisk
    for name in ("sip_port", "http_port", "rtp_start", "rtp_end"):
        v = getattr(a, name)
        if not 0 < v < 65536:
            raise ConfigError(f"asterisk.{name}: {v} is not a valid port")
    if a.rtp_start >= a.rtp_end:
        raise ConfigError("asterisk.rtp_start must be below asterisk.rtp_end")
    if not 0 <= cfg.http.port < 65536:
        raise ConfigError(f"http.port: {cfg.http.port} is not a valid port")
    if not 0 <= cfg.ari.rest_websockets <= 16:
        raise ConfigError(f"ari.rest_websockets: {cfg.ari.rest_websockets} is not between 0 and 16")
    endpoints = {a.endpoint for a in cfg.agent_sip()}
    for name, endpoint in cfg.extensions.items():
        if endpoint not in endpoints:
            raise ConfigError(f"extensions.{name}: {endpoint} is not a configured phone (the agents' endpoints: "
                              f"{', '.join(sorted(endpoints)) or 'none'})")
    try:
        AdmissionPolicy.from_dict(cfg.admission)
    except (AdmissionConfigError, TypeError) as e:
        raise ConfigError(str(e)) from None
    try:
        vm = VoicemailPolicy.from_dict(cfg.voicemail)
    except (VoicemailConfigError, TypeError) as e:
        raise ConfigError(str(e)) from None
    known_queues = {str(q.get("name")) for q in cfg.queues}
    for mailbox, queue in vm.queues.items():
        if queue not in known_queues:
            raise ConfigError(f"voicemail.queues.{mailbox}: no queue {queue!r}")
    try:
        cb = CallbackPolicy.from_dict(cfg.callbacks)
        web = WebCallbackPolicy.from_dict(cfg.web_callbacks)
    except (CallbackConfigError, WebCallbackConfigError, TypeError) as e:
        raise ConfigError(str(e)) from None
    trunks = {t.name for t in cfg.trunks}
    if cb.trunk is not None and cb.trunk not in trunks:
        raise ConfigError(f"callbacks.trunk: no trunk {cb.trunk!r} (trunks: {', '.join(sorted(trunks)) or 'none'})")
    queues = {str(q.get("name")) for q in cfg.queues}
    for topic, queue in web.topics.items():
        if queue not in queues:
            raise ConfigError(f"web_callbacks.topics.{topic}: no queue {queue!r}")
    _check_queues(cfg.queues)


def _check_queues(queues: tuple[Mapping[str, Any], ...]) -> None:
    """Every queue's keys (``ivr.acd.queue``) and the overflows between them (unknown target, loop), so a
    bad queue is a config error at start-up naming the queue and the key, not a traceback."""
    from .acd.errors import ConfigError as QueueConfigError
    from .acd.queue import check_overflows, queue_from_dict
    try:
        check_overflows([queue_from_dict(q) for q in queues])
    except QueueConfigError as e:
        raise ConfigError(f"queues: {e}") from None


def with_overrides(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of cfg with some fields of some sections replaced (used by tests and the run script)."""
    changes = {name: replace(getattr(cfg, name), **values) for name, values in sections.items()}
    return replace(cfg, **changes)
