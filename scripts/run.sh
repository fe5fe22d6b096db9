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
# Secrets: taken from the environment, else generated once and kept in $STATE/secrets.env (mode 600).
if [ ! -f "$STATE/secrets.env" ]; then
  umask 077
  {
    echo "IVR_ARI_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    echo "IVR_ADMIN_TOKEN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    for a in $(.venv/bin/python -c "
from ivr.config import load_config
print(' '.join(a.id for a in load_config('$CONFIG').agent_sip()))"); do
      v=IVR_AGENT_$(echo "$a" | tr 'a-z-' 'A-Z_')_PASSWORD
      echo "$v=$(head -c 9 /dev/urandom | base64 | tr -d '/+=')"
    done
  } > "$STATE/secrets.env"
fi
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
    print(f"     user {ag.endpoint.split('/',1)[1]:<10} password {ag.sip_password}")
print(f"""
 Agent page / wallboard / admin API / metrics: http://{cfg.http.bind_address}:{cfg.http.port}/
 Admin token and passwords: {os.environ.get('IVR_STATE_DIR', '/var/lib/ivr')}/secrets.env
==========================================================================================
""")
PY
exec .venv/bin/ivr run --with-asterisk --config "$CONFIG" "$@"
