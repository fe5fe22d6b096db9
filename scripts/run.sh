#!/usr/bin/env bash
# THE run command (README): installs what it needs, starts Asterisk and the IVR/ACD app with the sample
# config, flows and embedded CRM, and prints how a softphone registers and what to dial. Ctrl-C stops what
# it started (an Asterisk already running for the instance, e.g. after the app died, is reused and left running).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
IVR_WITH_BROWSER=${IVR_WITH_BROWSER:-0} bash scripts/install.sh
CONFIG=${IVR_CONFIG:-config/ivr.yaml}
STATE=${IVR_STATE_DIR:-/var/lib/ivr}
mkdir -p "$STATE"; chmod 700 "$STATE"
# Secrets: taken from the environment, else generated once and kept in $STATE/secrets.env (mode 600); a
# secret the config needs and the file lacks (a new agent or user) is added to it.
umask 077
touch "$STATE/secrets.env"
add_secret() {   # NAME BYTES
  grep -q "^$1=" "$STATE/secrets.env" || echo "$1=$(head -c "$2" /dev/urandom | base64 | tr -d '/+=')" >> "$STATE/secrets.env"
}
add_secret IVR_ARI_PASSWORD 18
add_secret IVR_ADMIN_TOKEN 18
for v in $(.venv/bin/python -c "
from ivr.config import load_config
cfg = load_config('$CONFIG', env={})
up = lambda s: s.upper().replace('-', '_').replace('.', '_')
print(' '.join([f'IVR_AGENT_{up(a.id)}_PASSWORD' for a in cfg.agent_sip()] +
               [f'IVR_USER_{up(str(u[\"username\"]))}_PASSWORD' for u in cfg.users]))"); do
  add_secret "$v" 15
done
set -a; . "$STATE/secrets.env"; set +a
.venv/bin/python - "$CONFIG" <<'PY'
import os, sys
from ivr.config import load_config
cfg = load_config(sys.argv[1])
a = cfg.asterisk
print(f"""
==========================================================================================
 IVR/ACD server starting (Asterisk in its chroot + the ARI app), everything on {a.bind_address}
 Call the IVR from any SIP softphone on this machine (no registration needed):
     sip:{next(iter(cfg.flows.routes), '100')}@{a.bind_address}:{a.sip_port}   (From user 'caller'; routes: {dict(cfg.flows.routes)})
     (the support line keeps Paris business hours, Mon-Fri 08:00-18:00 and Sat 09:00-12:00 Europe/Paris:
      out of hours it plays the after-hours message; try it with: ./scripts/run.sh --at 2026-12-05T22:00:00+01:00)
 Register an agent softphone (then it is offered calls):
     server {a.bind_address}:{a.sip_port}, UDP""")
for ag in cfg.agent_sip():
    if not ag.webrtc:
        print(f"     user {ag.endpoint.split('/',1)[1]:<10} password {ag.sip_password}")
web = f"http://{cfg.http.bind_address}:{cfg.http.port}"
browser = {ag.id for ag in cfg.agent_sip() if ag.webrtc}
for u in cfg.users:
    if u.get("agent_id") in browser:
        var = "IVR_USER_" + str(u["username"]).upper().replace("-", "_").replace(".", "_") + "_PASSWORD"
        pw = os.environ.get(var, "")
        print(f"""
 Or take calls in this machine's browser (no softphone; docs/webrtc.md): open {web}/agent
     log in as {u['username']} / {pw}  (agent {u['agent_id']}: the page's phone rings, answer there),
     then call the support line and press 2 (technical support).""")
print(f"""
 Agent page / wallboard / admin API / metrics: {web}/
 Log in at {web}/login as {', '.join(str(u.get('username')) for u in cfg.users) or '-'} (an agent lands on /agent)
 Login passwords (IVR_USER_*), admin token and SIP passwords: {os.environ.get('IVR_STATE_DIR', '/var/lib/ivr')}/secrets.env
==========================================================================================
""")
PY
exec .venv/bin/ivr run --with-asterisk --config "$CONFIG" "$@"
